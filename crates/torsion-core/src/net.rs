//! One way to listen and one way to connect, under Twisted's many names.
//!
//! [`Reactor::listen`] takes a [`Listen`] (a TCP port, with TLS or without, or a Unix socket,
//! each with its options) and [`Reactor::connect`] a [`Connect`]; every kind of stream
//! listener and connection goes through them. Twisted's names (`listen_tcp`, `listen_tls_on`,
//! `connect_unix_timeout`, ...) are one-line wrappers over the two, for code that reads as
//! Twisted's does.
//!
//! ```
//! use torsion::net::{Connect, Listen};
//! use torsion::{factory, ConnectionEnd, Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
//! }
//!
//! struct Hello;
//! impl Protocol for Hello {
//!     fn connection_made(&mut self, t: &Transport) { t.write(b"hello") }
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) {
//!         assert_eq!(data, b"hello");
//!         t.lose_connection();
//!     }
//!     fn connection_lost(&mut self, _: ConnectionEnd) { torsion::reactor().stop().unwrap() }
//! }
//!
//! let r = Reactor::new();
//! let port = r.listen(Listen::tcp(0).interface("127.0.0.1"), factory(|| Echo)).unwrap();
//! let number = port.get_host().port().unwrap();
//! r.connect(Connect::tcp("127.0.0.1", number).timeout(5.0), factory(|| Hello));
//! r.run().unwrap();
//! ```

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use socket2::{Domain, Socket, Type};

use crate::datagram::{DatagramProtocol, DatagramTransport};
use crate::error::CannotListenError;
use crate::reactor::Delay;
use crate::tcp::{Connector, ListenOptions, ListeningPort, DEFAULT_CONNECT_TIMEOUT};
#[cfg(feature = "tls")]
use crate::tls::{ClientContext, ServerContext};
use crate::unix::UnixListenOptions;
use crate::{ClientFactory, Factory, Failure, Reactor};

/// Where to listen, and how: a TCP port ([`Listen::tcp`], with TLS or without) or a Unix
/// socket ([`Listen::unix`]), for [`Reactor::listen`].
#[derive(Debug, Clone)]
pub struct Listen {
    kind: ListenKind,
}

#[derive(Debug, Clone)]
enum ListenKind {
    Tcp(TcpListen),
    Unix(UnixListen),
}

impl Listen {
    /// A TCP port on every IPv4 interface (port 0: any free port); narrow it with
    /// [`TcpListen::interface`], add TLS with [`TcpListen::tls`].
    pub fn tcp(port: u16) -> TcpListen {
        TcpListen {
            port,
            interface: "0.0.0.0".into(),
            options: ListenOptions::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// A Unix socket at `path` (a path starting with `@` or a NUL byte is a Linux abstract
    /// name).
    pub fn unix(path: impl AsRef<Path>) -> UnixListen {
        UnixListen {
            path: path.as_ref().to_path_buf(),
            options: UnixListenOptions::default(),
        }
    }
}

/// A TCP port to listen on: made by [`Listen::tcp`].
#[derive(Debug, Clone)]
pub struct TcpListen {
    port: u16,
    interface: String,
    options: ListenOptions,
    #[cfg(feature = "tls")]
    tls: Option<ServerContext>,
}

impl TcpListen {
    /// Listens on one interface (Twisted's `interface=`): an IPv4 or IPv6 address such as
    /// `"127.0.0.1"`, `"::1"`, or `"::"` for every IPv6 (and, on Linux, IPv4) interface.
    pub fn interface(mut self, interface: &str) -> TcpListen {
        self.interface = interface.to_owned();
        self
    }

    /// The socket's [`ListenOptions`] (backlog, `SO_REUSEPORT`, the driver).
    pub fn options(mut self, options: ListenOptions) -> TcpListen {
        self.options = options;
        self
    }

    /// Speaks TLS with these server settings (Twisted's `listenSSL`).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, context: ServerContext) -> TcpListen {
        self.tls = Some(context);
        self
    }
}

impl From<TcpListen> for Listen {
    fn from(tcp: TcpListen) -> Listen {
        Listen {
            kind: ListenKind::Tcp(tcp),
        }
    }
}

/// A Unix socket to listen on: made by [`Listen::unix`].
#[derive(Debug, Clone)]
pub struct UnixListen {
    path: PathBuf,
    options: UnixListenOptions,
}

impl UnixListen {
    /// The socket's [`UnixListenOptions`] (the file's mode, stale socket clean-up, backlog).
    pub fn options(mut self, options: UnixListenOptions) -> UnixListen {
        self.options = options;
        self
    }
}

impl From<UnixListen> for Listen {
    fn from(unix: UnixListen) -> Listen {
        Listen {
            kind: ListenKind::Unix(unix),
        }
    }
}

/// Where to connect, and how: a TCP address ([`Connect::tcp`], with TLS or without) or a Unix
/// socket ([`Connect::unix`]), for [`Reactor::connect`].
#[derive(Debug, Clone)]
pub struct Connect {
    kind: ConnectKind,
}

#[derive(Debug, Clone)]
enum ConnectKind {
    Tcp(TcpConnect),
    Unix(UnixConnect),
}

impl Connect {
    /// `host:port` over TCP (host names are resolved), with the default 30 s time-out.
    pub fn tcp(host: &str, port: u16) -> TcpConnect {
        TcpConnect {
            host: host.to_owned(),
            port,
            timeout: DEFAULT_CONNECT_TIMEOUT,
            bind: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The Unix socket at `path`, with the default 30 s time-out.
    pub fn unix(path: impl AsRef<Path>) -> UnixConnect {
        UnixConnect {
            path: path.as_ref().to_path_buf(),
            timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// A TCP address to connect to: made by [`Connect::tcp`].
#[derive(Debug, Clone)]
pub struct TcpConnect {
    host: String,
    port: u16,
    timeout: f64,
    bind: Option<SocketAddr>,
    #[cfg(feature = "tls")]
    tls: Option<ClientContext>,
}

impl TcpConnect {
    /// How long the connection attempt may take (Twisted's `timeout`).
    pub fn timeout(mut self, timeout: impl Into<Delay>) -> TcpConnect {
        self.timeout = timeout.into().as_secs_f64();
        self
    }

    /// Binds the connection's own end to `address` (port 0 for any port) before connecting
    /// (Twisted's `bindAddress`); only addresses of its family are tried.
    pub fn bind(mut self, address: SocketAddr) -> TcpConnect {
        self.bind = Some(address);
        self
    }

    /// Speaks TLS with these client settings (Twisted's `connectSSL`), checking the server's
    /// certificate against the host (or the context's own server name).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, context: ClientContext) -> TcpConnect {
        self.tls = Some(context);
        self
    }
}

impl From<TcpConnect> for Connect {
    fn from(tcp: TcpConnect) -> Connect {
        Connect {
            kind: ConnectKind::Tcp(tcp),
        }
    }
}

/// A Unix socket to connect to: made by [`Connect::unix`].
#[derive(Debug, Clone)]
pub struct UnixConnect {
    path: PathBuf,
    timeout: f64,
}

impl UnixConnect {
    /// How long the connection attempt may take.
    pub fn timeout(mut self, timeout: impl Into<Delay>) -> UnixConnect {
        self.timeout = timeout.into().as_secs_f64();
        self
    }
}

impl From<UnixConnect> for Connect {
    fn from(unix: UnixConnect) -> Connect {
        Connect {
            kind: ConnectKind::Unix(unix),
        }
    }
}

impl Reactor {
    /// Listens where `at` says with `factory`: every kind of stream listener goes through
    /// here. Port 0 picks a free port, readable with [`ListeningPort::get_host`]. Fails with
    /// [`CannotListenError`] naming the address.
    pub fn listen<F: Factory>(
        &self,
        at: impl Into<Listen>,
        factory: F,
    ) -> Result<ListeningPort, Failure> {
        match at.into().kind {
            ListenKind::Tcp(tcp) => {
                let (listener, host) = self.bind_tcp(tcp.port, &tcp.interface, tcp.options)?;
                #[cfg(feature = "tls")]
                if let Some(context) = &tcp.tls {
                    let wrap = crate::tcp::tls::server_layer(context);
                    let port = listener.listen(self, host, factory, wrap)?;
                    port.set_send_timeout(tcp.options.send_timeout);
                    port.set_write_limit(tcp.options.write_limit);
                    return Ok(port);
                }
                let port = listener.listen(self, host, factory, crate::tcp::Plain)?;
                // Set before the accept loop first runs, so every connection gets it.
                port.set_send_timeout(tcp.options.send_timeout);
                port.set_write_limit(tcp.options.write_limit);
                Ok(port)
            }
            ListenKind::Unix(unix) => self.unix_listen(&unix.path, factory, unix.options),
        }
    }

    /// Connects where `to` says with `factory`: every kind of outgoing stream connection goes
    /// through here. The factory hears how it goes: `build_protocol` on success,
    /// `client_connection_failed` with a [`Failure`] on refusal, time-out or error,
    /// `client_connection_lost` when an established connection ends.
    pub fn connect<F: ClientFactory>(&self, to: impl Into<Connect>, factory: F) -> Connector {
        match to.into().kind {
            ConnectKind::Tcp(tcp) => {
                #[cfg(feature = "tls")]
                let prepare = tcp.tls.map(crate::tcp::tls::client_layer);
                #[cfg(not(feature = "tls"))]
                let prepare = None;
                self.connect_tcp_prepared(
                    &tcp.host,
                    tcp.port,
                    factory,
                    tcp.timeout,
                    tcp.bind,
                    prepare,
                )
            }
            ConnectKind::Unix(unix) => self.unix_connect(&unix.path, factory, unix.timeout),
        }
    }

    /// Listens on `port` on all IPv4 interfaces (Twisted's `listenTCP(port, factory)`); port 0
    /// picks a free port, readable with [`ListeningPort::get_host`].
    pub fn listen_tcp<F: Factory>(&self, port: u16, factory: F) -> Result<ListeningPort, Failure> {
        self.listen(Listen::tcp(port), factory)
    }

    /// Listens on `port` on one interface (Twisted's `interface=` argument): an IPv4 or IPv6
    /// address such as `"127.0.0.1"`, `"::1"`, or `"::"` for every IPv6 (and, on Linux,
    /// IPv4) interface.
    pub fn listen_tcp_on<F: Factory>(
        &self,
        port: u16,
        factory: F,
        interface: &str,
    ) -> Result<ListeningPort, Failure> {
        self.listen(Listen::tcp(port).interface(interface), factory)
    }

    /// [`listen_tcp_on`](Self::listen_tcp_on) with socket [`ListenOptions`] (such as
    /// `SO_REUSEPORT`, for several reactor threads sharing one port).
    pub fn listen_tcp_with<F: Factory>(
        &self,
        port: u16,
        factory: F,
        interface: &str,
        options: ListenOptions,
    ) -> Result<ListeningPort, Failure> {
        let at = Listen::tcp(port).interface(interface).options(options);
        self.listen(at, factory)
    }

    /// Listens for TLS connections on `port` on all IPv4 interfaces (Twisted's
    /// `listenSSL(port, factory, contextFactory)`); port 0 picks a free port.
    #[cfg(feature = "tls")]
    pub fn listen_tls<F: Factory>(
        &self,
        port: u16,
        factory: F,
        context: ServerContext,
    ) -> Result<ListeningPort, Failure> {
        self.listen(Listen::tcp(port).tls(context), factory)
    }

    /// [`listen_tls`](Self::listen_tls) on one interface (an IPv4 or IPv6 address).
    #[cfg(feature = "tls")]
    pub fn listen_tls_on<F: Factory>(
        &self,
        port: u16,
        factory: F,
        context: ServerContext,
        interface: &str,
    ) -> Result<ListeningPort, Failure> {
        self.listen(Listen::tcp(port).interface(interface).tls(context), factory)
    }

    /// [`listen_tls_on`](Self::listen_tls_on) with socket [`ListenOptions`] (the listen
    /// backlog, Twisted's `backlog=`; `SO_REUSEPORT`).
    #[cfg(feature = "tls")]
    pub fn listen_tls_with<F: Factory>(
        &self,
        port: u16,
        factory: F,
        context: ServerContext,
        interface: &str,
        options: ListenOptions,
    ) -> Result<ListeningPort, Failure> {
        let at = Listen::tcp(port)
            .interface(interface)
            .options(options)
            .tls(context);
        self.listen(at, factory)
    }

    /// Listens on the Unix socket `path` (Twisted's `listenUNIX(path, factory)`) with the
    /// default [`UnixListenOptions`]. A path starting with `@` or a NUL byte is a Linux
    /// abstract name.
    pub fn listen_unix<F: Factory>(
        &self,
        path: impl AsRef<Path>,
        factory: F,
    ) -> Result<ListeningPort, Failure> {
        self.listen(Listen::unix(path), factory)
    }

    /// [`listen_unix`](Self::listen_unix) with options: the file's mode, and whether to
    /// remove a stale socket file. Fails with
    /// [`CannotListenError`] naming the path.
    pub fn listen_unix_with<F: Factory>(
        &self,
        path: impl AsRef<Path>,
        factory: F,
        options: UnixListenOptions,
    ) -> Result<ListeningPort, Failure> {
        self.listen(Listen::unix(path).options(options), factory)
    }

    /// Connects to `host:port` (Twisted's `connectTCP`), resolving host names, with the
    /// default 30 s timeout. The factory hears how it goes: `build_protocol` on success,
    /// `client_connection_failed` with a [`Failure`] on refusal, time-out or error.
    pub fn connect_tcp<F: ClientFactory>(&self, host: &str, port: u16, factory: F) -> Connector {
        self.connect(Connect::tcp(host, port), factory)
    }

    /// [`connect_tcp`](Self::connect_tcp) with a time-out in seconds.
    pub fn connect_tcp_timeout<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        timeout: f64,
    ) -> Connector {
        self.connect(Connect::tcp(host, port).timeout(timeout), factory)
    }

    /// [`connect_tcp_timeout`](Self::connect_tcp_timeout) from a local address (Twisted's
    /// `bindAddress`): the connection's own end is bound to `bind_address` (port 0 for any
    /// port) before connecting; `None` lets the system choose. Only addresses of the same
    /// family as `bind_address` are tried.
    pub fn connect_tcp_from<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        timeout: f64,
        bind_address: Option<SocketAddr>,
    ) -> Connector {
        let mut to = Connect::tcp(host, port).timeout(timeout);
        to.bind = bind_address;
        self.connect(to, factory)
    }

    /// Connects to `host:port` over TLS (Twisted's `connectSSL`), checking the server's
    /// certificate against `host` (or the context's own server name), with the default 30 s
    /// time-out for the TCP connection.
    #[cfg(feature = "tls")]
    pub fn connect_tls<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        context: ClientContext,
    ) -> Connector {
        self.connect(Connect::tcp(host, port).tls(context), factory)
    }

    /// [`connect_tls`](Self::connect_tls) with a time-out in seconds.
    #[cfg(feature = "tls")]
    pub fn connect_tls_timeout<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        context: ClientContext,
        timeout: f64,
    ) -> Connector {
        let to = Connect::tcp(host, port).timeout(timeout).tls(context);
        self.connect(to, factory)
    }

    /// [`connect_tls_timeout`](Self::connect_tls_timeout) from a local address (Twisted's
    /// `bindAddress`; see [`connect_tcp_from`](Self::connect_tcp_from)).
    #[cfg(feature = "tls")]
    pub fn connect_tls_from<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        context: ClientContext,
        timeout: f64,
        bind_address: Option<SocketAddr>,
    ) -> Connector {
        let mut to = Connect::tcp(host, port).timeout(timeout).tls(context);
        to.bind = bind_address;
        self.connect(to, factory)
    }

    /// Connects to the Unix socket `path` (Twisted's `connectUNIX`), with the default 30 s
    /// time-out. The factory hears how it goes as with [`connect_tcp`](Self::connect_tcp):
    /// `client_connection_failed` with
    /// [`ConnectionRefusedError`](crate::error::ConnectionRefusedError) when nobody listens
    /// there, [`ConnectError`](crate::error::ConnectError) when the path does not exist;
    /// `client_connection_lost` when an established connection ends.
    pub fn connect_unix<F: ClientFactory>(&self, path: impl AsRef<Path>, factory: F) -> Connector {
        self.connect(Connect::unix(path), factory)
    }

    /// [`connect_unix`](Self::connect_unix) with a time-out in seconds.
    pub fn connect_unix_timeout<F: ClientFactory>(
        &self,
        path: impl AsRef<Path>,
        factory: F,
        timeout: f64,
    ) -> Connector {
        self.connect(Connect::unix(path).timeout(timeout), factory)
    }

    /// Listens on a stream socket that something else bound and set listening — a parent
    /// process, a launcher, a privileged helper that passed it over a Unix socket — (Twisted's
    /// `adoptStreamPort`). The family (TCP over IPv4 or IPv6, or a Unix socket) is read from
    /// the socket itself; it is made non-blocking and close-on-exec, and closed when the port
    /// stops (a Unix socket's file is left where it is). Fails with a
    /// [`CannotListenError`] when it is not a listening
    /// stream socket.
    ///
    /// Anything that owns a descriptor converts: a `std::net::TcpListener`, a
    /// `UnixListener`, a `socket2::Socket`, an `OwnedFd`. For a descriptor number inherited
    /// from a parent, `OwnedFd::from_raw_fd` (whose `unsafe` says the number is this
    /// program's to own) or the `listenfd` crate makes the `OwnedFd`; systemd's sockets have
    /// their own endpoint, `systemd:domain=INET:index=0`.
    ///
    /// ```
    /// use torsion::{factory, Protocol, Reactor, Transport};
    ///
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
    /// }
    ///
    /// let r = Reactor::new();
    /// let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap(); // made elsewhere
    /// let port = r.adopt_stream_port(socket, factory(|| Echo)).unwrap();
    /// assert!(port.get_host().port().unwrap() > 0);
    /// ```
    pub fn adopt_stream_port<F: Factory>(
        &self,
        socket: impl Into<OwnedFd>,
        factory: F,
    ) -> Result<ListeningPort, Failure> {
        let socket = Socket::from(socket.into());
        let refuse = |why: String| -> Failure {
            let name = match socket.local_addr().ok().and_then(|a| a.as_socket()) {
                Some(addr) => format!("adopted socket {addr}"),
                None => "adopted socket".to_owned(),
            };
            Failure::new(CannotListenError::new(
                name,
                io::Error::new(io::ErrorKind::InvalidInput, why),
            ))
        };
        match socket.r#type() {
            Ok(t) if t == Type::STREAM => {}
            Ok(_) => return Err(refuse("not a stream socket".to_owned())),
            Err(e) => return Err(refuse(format!("not a socket: {e}"))),
        }
        match socket.is_listener() {
            Ok(true) => {}
            Ok(false) => return Err(refuse("the socket is not listening".to_owned())),
            Err(e) => return Err(refuse(format!("not a socket: {e}"))),
        }
        let domain = socket
            .local_addr()
            .map_err(|e| refuse(format!("its address is unknown: {e}")))?
            .domain();
        if domain == Domain::IPV4 || domain == Domain::IPV6 {
            self.listen_tcp_adopt(socket.into(), factory)
        } else if domain == Domain::UNIX {
            let fd: OwnedFd = socket.into();
            self.listen_unix_adopt(fd.into(), factory)
        } else {
            Err(refuse("neither TCP nor a Unix socket".to_owned()))
        }
    }
}

/// Something TCP servers and clients can be started on (Twisted's `IReactorTCP`): the
/// [`Reactor`], or, in a test, a [`MemoryReactor`](crate::testing::MemoryReactor) that only
/// records the calls. Code that takes `&impl ReactorTcp` instead of using the reactor
/// directly can be tested without sockets. `Reactor`'s inherent `listen_tcp`/`connect_tcp`
/// are the same methods; this trait only names them.
///
/// ```
/// use torsion::net::ReactorTcp;
/// use torsion::{factory, Failure, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
/// }
///
/// /// The code under test: starts the echo service on port 8007.
/// fn start<R: ReactorTcp>(reactor: &R) -> Result<R::Port, Failure> {
///     reactor.listen_tcp(8007, factory(|| Echo))
/// }
/// # let _ = start::<torsion::Reactor>;
/// ```
#[doc(alias = "IReactorTCP")]
pub trait ReactorTcp {
    /// What `listen_tcp` returns ([`ListeningPort`] on the reactor).
    type Port;
    /// What `connect_tcp` returns ([`Connector`] on the reactor).
    type Connector;

    /// Listens on `port` on every IPv4 interface (see [`Reactor::listen_tcp`]).
    fn listen_tcp<F: Factory>(&self, port: u16, factory: F) -> Result<Self::Port, Failure>;

    /// Connects to `host`:`port` (see [`Reactor::connect_tcp`]).
    fn connect_tcp<F: ClientFactory>(&self, host: &str, port: u16, factory: F) -> Self::Connector;
}

/// Something Unix-socket servers and clients can be started on (Twisted's `IReactorUNIX`):
/// the [`Reactor`], or a [`MemoryReactor`](crate::testing::MemoryReactor) in a test.
#[doc(alias = "IReactorUNIX")]
pub trait ReactorUnix {
    /// What `listen_unix` returns ([`ListeningPort`] on the reactor).
    type Port;
    /// What `connect_unix` returns ([`Connector`] on the reactor).
    type Connector;

    /// Listens on the Unix socket `path` (see [`Reactor::listen_unix`]).
    fn listen_unix<F: Factory>(&self, path: &Path, factory: F) -> Result<Self::Port, Failure>;

    /// Connects to the Unix socket `path` (see [`Reactor::connect_unix`]).
    fn connect_unix<F: ClientFactory>(&self, path: &Path, factory: F) -> Self::Connector;
}

impl ReactorUnix for Reactor {
    type Port = ListeningPort;
    type Connector = Connector;

    fn listen_unix<F: Factory>(&self, path: &Path, factory: F) -> Result<ListeningPort, Failure> {
        self.listen(Listen::unix(path), factory)
    }

    fn connect_unix<F: ClientFactory>(&self, path: &Path, factory: F) -> Connector {
        self.connect(Connect::unix(path), factory)
    }
}

/// Something TLS servers and clients can be started on (Twisted's `IReactorSSL`): the
/// [`Reactor`], or a [`MemoryReactor`](crate::testing::MemoryReactor) in a test.
#[cfg(feature = "tls")]
#[doc(alias = "IReactorSSL")]
pub trait ReactorTls {
    /// What `listen_tls` returns ([`ListeningPort`] on the reactor).
    type Port;
    /// What `connect_tls` returns ([`Connector`] on the reactor).
    type Connector;

    /// Listens with TLS on `port` on every IPv4 interface (see [`Reactor::listen_tls`]).
    fn listen_tls<F: Factory>(
        &self,
        port: u16,
        factory: F,
        context: ServerContext,
    ) -> Result<Self::Port, Failure>;

    /// Connects with TLS to `host`:`port` (see [`Reactor::connect_tls`]).
    fn connect_tls<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        context: ClientContext,
    ) -> Self::Connector;
}

#[cfg(feature = "tls")]
impl ReactorTls for Reactor {
    type Port = ListeningPort;
    type Connector = Connector;

    fn listen_tls<F: Factory>(
        &self,
        port: u16,
        factory: F,
        context: ServerContext,
    ) -> Result<ListeningPort, Failure> {
        self.listen(Listen::tcp(port).tls(context), factory)
    }

    fn connect_tls<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        context: ClientContext,
    ) -> Connector {
        self.connect(Connect::tcp(host, port).tls(context), factory)
    }
}

/// Something UDP ports can be opened on (Twisted's `IReactorUDP`): the [`Reactor`], or a
/// [`MemoryReactor`](crate::testing::MemoryReactor) in a test.
#[doc(alias = "IReactorUDP")]
pub trait ReactorUdp {
    /// What `listen_udp` returns ([`DatagramTransport`] on the reactor).
    type Port;

    /// Opens UDP `port` on every IPv4 interface for `protocol` (see [`Reactor::listen_udp`]).
    fn listen_udp<P: DatagramProtocol>(
        &self,
        port: u16,
        protocol: P,
    ) -> Result<Self::Port, Failure>;
}

impl ReactorUdp for Reactor {
    type Port = DatagramTransport;

    fn listen_udp<P: DatagramProtocol>(
        &self,
        port: u16,
        protocol: P,
    ) -> Result<DatagramTransport, Failure> {
        Reactor::listen_udp(self, port, protocol)
    }
}

impl ReactorTcp for Reactor {
    type Port = ListeningPort;
    type Connector = Connector;

    fn listen_tcp<F: Factory>(&self, port: u16, factory: F) -> Result<ListeningPort, Failure> {
        self.listen(Listen::tcp(port), factory)
    }

    fn connect_tcp<F: ClientFactory>(&self, host: &str, port: u16, factory: F) -> Connector {
        self.connect(Connect::tcp(host, port), factory)
    }
}
