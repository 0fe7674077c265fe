//! TCP: listening ports and outgoing connections (Twisted's `listenTCP` and `connectTCP`).
//!
//! ```
//! use torsion::{factory, Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
//! }
//!
//! let r = Reactor::new();
//! let port = r.listen_tcp(0, factory(|| Echo)).unwrap(); // port 0: any free port
//! let addr = port.get_host().socket_addr().unwrap();
//! assert_ne!(addr.port(), 0);
//! ```

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

#[cfg(target_os = "linux")]
use crate::poller::PolledListener;
use crate::port::{listen, Accepted, Acceptor};

pub use crate::connector::Connector;
use crate::connector::{connector_hook, ConnectorInner, ConnectorState};
use crate::error::{
    CannotListenError, ConnectError, ConnectionRefusedError, ReactorNotRestartable, TimeoutError,
};
pub use crate::port::{ListeningPort, DEFAULT_SEND_TIMEOUT};
use crate::protocol::Protocol;
use crate::protocol::{ClientFactory, Factory};
use crate::reactor::{HostnameResolver, Reactor};
use crate::stream::{run_connection, Conn, SocketIo, StreamSocket, Tasked};
use crate::transport::{Address, WriteLimit};
use crate::Failure;

/// The default time allowed for a connection attempt, in seconds (Twisted's 30).
pub const DEFAULT_CONNECT_TIMEOUT: f64 = 30.0;

/// The listen backlog.
const BACKLOG: u32 = 1024;

impl SocketIo for TcpStream {
    const TCP: bool = true;
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_write_ready(self, cx)
    }
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::try_read(self, buf)
    }
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        crate::stream::poll_read_tokio(self, cx, buf)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        TcpStream::try_write_vectored(self, bufs)
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn try_write_more(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_io(tokio::io::Interest::WRITABLE, || {
            crate::stream::send_more(self, buf)
        })
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const SENDS_FILES: bool = true;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn send_file(&self, file: &std::fs::File, offset: u64, len: usize) -> io::Result<usize> {
        // Through tokio, so that `WouldBlock` clears its readiness.
        self.try_io(tokio::io::Interest::WRITABLE, || {
            crate::stream::sendfile(self, file, offset, len)
        })
    }
    fn shutdown_write(&self) -> io::Result<()> {
        SockRef::from(self).shutdown(std::net::Shutdown::Write)
    }
    fn set_no_delay(&self, on: bool) -> io::Result<()> {
        self.set_nodelay(on)
    }
    fn no_delay(&self) -> io::Result<bool> {
        self.nodelay()
    }
    fn set_keep_alive(&self, on: bool) -> io::Result<()> {
        SockRef::from(self).set_keepalive(on)
    }
    fn keep_alive(&self) -> io::Result<bool> {
        SockRef::from(self).keepalive()
    }
}

/// Socket options for a TCP listening port, beyond the address.
///
/// ```
/// use torsion::tcp::ListenOptions;
/// use torsion::{factory, Protocol, Reactor, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
/// }
///
/// let r = Reactor::new();
/// let options = ListenOptions::default().reuse_port(true);
/// let a = r.listen_tcp_with(0, factory(|| Echo), "127.0.0.1", options).unwrap();
/// let port = a.get_host().port().unwrap();
/// // With SO_REUSEPORT on both, a second socket binds the same port; the kernel spreads
/// // the incoming connections over the two.
/// let b = r.listen_tcp_with(port, factory(|| Echo), "127.0.0.1", options).unwrap();
/// assert_eq!(b.get_host().port(), Some(port));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ListenOptions {
    /// Sets `SO_REUSEPORT`: several sockets (in one process or several) may listen on the
    /// same address and port, each with its own accept queue, and the kernel balances new
    /// connections between them. Every socket sharing the port must set it.
    pub reuse_port: bool,
    /// The listen backlog (Twisted's `backlog=`): how many connections the system queues
    /// before they are accepted, capped by the system's `somaxconn`. Default 1024.
    pub backlog: u32,
    /// What runs the accepted connections (see [`Driver`]).
    pub driver: Driver,
    /// How long a connection's writes may stay blocked with no progress before it is
    /// aborted (`None`: no limit, as Twisted). Default [`DEFAULT_SEND_TIMEOUT`], 60 s as
    /// nginx's `send_timeout`; see [`ListeningPort::set_send_timeout`].
    pub send_timeout: Option<Duration>,
    /// The write limit every accepted connection gets (`None`, the default: none, as
    /// Twisted); see [`TransportImpl::set_write_limit`](crate::transport::TransportImpl::set_write_limit)
    /// and [`ListeningPort::set_write_limit`].
    pub write_limit: Option<WriteLimit>,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            reuse_port: false,
            backlog: BACKLOG,
            driver: Driver::default(),
            send_timeout: Some(DEFAULT_SEND_TIMEOUT),
            write_limit: None,
        }
    }
}

/// What runs a listener's accepted connections. The engine that reads, calls the protocol and
/// writes is the same under both; only how a connection is woken differs.
///
/// ```
/// use torsion::tcp::{Driver, ListenOptions};
/// use torsion::{factory, Protocol, Reactor, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
/// }
///
/// let r = Reactor::new();
/// let options = ListenOptions::default().driver(Driver::Tasks);
/// let port = r.listen_tcp_with(0, factory(|| Echo), "127.0.0.1", options).unwrap();
/// # let _ = port;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Driver {
    /// The reactor's own epoll poller (Linux only): one epoll set and one task for every
    /// accepted connection, about 0.2 KiB per idle connection. The default on Linux.
    Poller,
    /// One tokio task per connection, woken by tokio's own reactor: any platform tokio runs
    /// on, about 0.7 KiB more per idle connection. The default elsewhere; client connections
    /// always run this way.
    Tasks,
}

impl Default for Driver {
    fn default() -> Driver {
        if cfg!(target_os = "linux") {
            Driver::Poller
        } else {
            Driver::Tasks
        }
    }
}

impl ListenOptions {
    /// These options with `SO_REUSEPORT` on or off.
    pub fn reuse_port(mut self, on: bool) -> ListenOptions {
        self.reuse_port = on;
        self
    }

    /// These options with another listen backlog.
    pub fn backlog(mut self, backlog: u32) -> ListenOptions {
        self.backlog = backlog;
        self
    }

    /// These options with another send timeout (`None`: no limit).
    pub fn send_timeout(mut self, timeout: Option<Duration>) -> ListenOptions {
        self.send_timeout = timeout;
        self
    }

    /// These options with a write limit for every accepted connection (`None`: none).
    ///
    /// ```
    /// use torsion::tcp::ListenOptions;
    /// use torsion::transport::{WriteLimit, WritePolicy};
    ///
    /// let options = ListenOptions::default().write_limit(Some(WriteLimit::new(
    ///     1 << 20,
    ///     WritePolicy::Disconnect,
    /// )));
    /// assert_eq!(options.write_limit.map(|l| l.bytes), Some(1 << 20));
    /// ```
    pub fn write_limit(mut self, limit: Option<WriteLimit>) -> ListenOptions {
        self.write_limit = limit;
        self
    }

    /// These options with another [`Driver`] for the accepted connections.
    pub fn driver(mut self, driver: Driver) -> ListenOptions {
        self.driver = driver;
        self
    }
}

/// A listening TCP socket whose connections each run as a tokio task ([`Driver::Tasks`]).
pub(crate) struct TaskListener(TcpListener);

impl Acceptor for TaskListener {
    type Stream = Tasked<TcpStream>;

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Accepted<Self::Stream>>> {
        let (sock, peer) = std::task::ready!(self.0.poll_accept(cx))?;
        let _ = sock.set_nodelay(true);
        // This end's address is the accepted socket's, as Twisted's getHost.
        let host = sock.local_addr().or_else(|_| self.0.local_addr())?;
        Poll::Ready(Ok((
            Tasked::new(sock),
            Address::Tcp(peer),
            Address::Tcp(host),
        )))
    }

    fn serve<P: Protocol>(
        reactor: &Reactor,
        stream: Self::Stream,
        peer: Address,
        host: Address,
        proto: P,
        send_timeout: Option<std::time::Duration>,
    ) {
        crate::stream::start(reactor, Conn::new(stream, peer, host), proto, send_timeout);
    }
}

/// A bound, listening TCP socket, on its way to the [`Driver`] chosen for it.
pub(crate) enum TcpAcceptor {
    #[cfg(target_os = "linux")]
    Polled(PolledListener),
    Tasked(TaskListener),
}

impl TcpAcceptor {
    /// Takes a bound, listening, non-blocking socket for `driver`.
    fn new(reactor: &Reactor, listener: std::net::TcpListener, driver: Driver) -> io::Result<Self> {
        let made = reactor.with_context(|| match driver {
            #[cfg(target_os = "linux")]
            Driver::Poller => PolledListener::new(reactor, listener).map(TcpAcceptor::Polled),
            #[cfg(not(target_os = "linux"))]
            Driver::Poller => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the epoll driver is Linux-only; use Driver::Tasks",
            )),
            Driver::Tasks => {
                TcpListener::from_std(listener).map(|l| TcpAcceptor::Tasked(TaskListener(l)))
            }
        });
        made.ok_or_else(|| io::Error::other("the reactor has finished"))?
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            #[cfg(target_os = "linux")]
            TcpAcceptor::Polled(l) => l.local_addr(),
            TcpAcceptor::Tasked(l) => l.0.local_addr(),
        }
    }

    /// Listens with `factory`, each acceptor wrapped by `wrap` (TLS puts its layer there).
    pub(crate) fn listen<F: Factory, W: AcceptorWrap>(
        self,
        reactor: &Reactor,
        host: SocketAddr,
        factory: F,
        wrap: W,
    ) -> Result<ListeningPort, Failure> {
        match self {
            #[cfg(target_os = "linux")]
            TcpAcceptor::Polled(l) => listen(reactor, wrap.wrap(l), Address::Tcp(host), factory),
            TcpAcceptor::Tasked(l) => listen(reactor, wrap.wrap(l), Address::Tcp(host), factory),
        }
    }
}

/// Something that wraps a TCP acceptor of either driver (TLS's acceptor), or nothing.
pub(crate) trait AcceptorWrap {
    /// The wrapped acceptor.
    type Out<A: Acceptor<Stream: StreamSocket>>: Acceptor;
    /// Wraps `inner`.
    fn wrap<A: Acceptor<Stream: StreamSocket>>(self, inner: A) -> Self::Out<A>;
}

/// No wrapping: plain TCP.
pub(crate) struct Plain;

impl AcceptorWrap for Plain {
    type Out<A: Acceptor<Stream: StreamSocket>> = A;
    fn wrap<A: Acceptor<Stream: StreamSocket>>(self, inner: A) -> A {
        inner
    }
}

fn bind_listener(addr: SocketAddr, options: ListenOptions) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(options.backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

impl Reactor {
    /// Binds a listening TCP socket on `interface:port`, for this reactor: the socket and
    /// the address it got.
    pub(crate) fn bind_tcp(
        &self,
        port: u16,
        interface: &str,
        options: ListenOptions,
    ) -> Result<(TcpAcceptor, SocketAddr), Failure> {
        let ip: IpAddr = interface
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .map_err(|_| {
                CannotListenError::new(
                    format!("{interface}:{port}"),
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "interface is not an IP address",
                    ),
                )
            })?;
        let addr = SocketAddr::new(ip, port);
        let std_listener = bind_listener(addr, options)
            .map_err(|e| CannotListenError::new(addr.to_string(), e))?;
        if self.finished() {
            return Err(ReactorNotRestartable.into());
        }
        let listener = TcpAcceptor::new(self, std_listener, options.driver)
            .map_err(|e| CannotListenError::new(addr.to_string(), e))?;
        let host = listener
            .local_addr()
            .map_err(|e| CannotListenError::new(addr.to_string(), e))?;
        Ok((listener, host))
    }

    /// Listens on a TCP socket that is already bound and listening (one inherited from
    /// systemd socket activation). It is made non-blocking and close-on-exec.
    pub(crate) fn listen_tcp_adopt<F: Factory>(
        &self,
        listener: std::net::TcpListener,
        factory: F,
    ) -> Result<ListeningPort, Failure> {
        let name = listener
            .local_addr()
            .map_or_else(|_| "inherited socket".to_owned(), |a| a.to_string());
        let prepare = |l: &std::net::TcpListener| -> io::Result<()> {
            l.set_nonblocking(true)?;
            SockRef::from(l).set_cloexec(true)
        };
        prepare(&listener).map_err(|e| CannotListenError::new(&*name, e))?;
        if self.finished() {
            return Err(ReactorNotRestartable.into());
        }
        let listener = TcpAcceptor::new(self, listener, Driver::default())
            .map_err(|e| CannotListenError::new(&*name, e))?;
        let host = listener
            .local_addr()
            .map_err(|e| CannotListenError::new(&*name, e))?;
        listener.listen(self, host, factory, Plain)
    }

    /// Connects to `host:port` (what [`Reactor::connect`] does for TCP and TLS), with work
    /// done on each new connection before its protocol is built (TLS installs its layer
    /// there).
    pub(crate) fn connect_tcp_prepared<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        timeout: f64,
        bind_address: Option<SocketAddr>,
        prepare: Option<Prepare>,
    ) -> Connector {
        let factory = Rc::new(factory);
        let attempt_factory = factory.clone();
        let connector = Connector {
            inner: Rc::new(ConnectorInner {
                host: host.trim_matches(|c| c == '[' || c == ']').to_owned(),
                port,
                timeout,
                reactor: self.clone(),
                state: Cell::new(ConnectorState::Disconnected),
                attempt: RefCell::new(None),
                transport: RefCell::new(None),
                start: Box::new(move |c: &Connector| {
                    start_attempt(c, attempt_factory.clone(), bind_address, prepare.clone())
                }),
            }),
        };
        connector.connect();
        connector
    }
}

/// Guards an attempt: if the attempt's task is dropped before it finishes (stop_connecting,
/// reactor shutdown), the factory still hears that it failed.
pub(crate) struct AttemptGuard<F: ClientFactory> {
    pub(crate) connector: Connector,
    pub(crate) factory: Rc<F>,
    pub(crate) armed: bool,
}

impl<F: ClientFactory> AttemptGuard<F> {
    pub(crate) fn fail(&mut self, reason: Failure) {
        self.armed = false;
        self.connector.inner.state.set(ConnectorState::Disconnected);
        self.connector.inner.attempt.borrow_mut().take();
        let (c, f) = (&self.connector, &self.factory);
        connector_hook(c, "client_connection_failed", || {
            f.client_connection_failed(c, reason)
        });
    }
}

impl<F: ClientFactory> Drop for AttemptGuard<F> {
    fn drop(&mut self) {
        if self.armed {
            self.fail(Failure::new(crate::error::CancelledError));
        }
    }
}

/// Work done on a new outgoing connection (given the host it was asked for) before its
/// protocol is built; an error fails the attempt.
pub(crate) type Prepare = Rc<dyn Fn(&Conn<Tasked<TcpStream>>, &str) -> Result<(), Failure>>;

fn start_attempt<F: ClientFactory>(
    connector: &Connector,
    factory: Rc<F>,
    bind_address: Option<SocketAddr>,
    prepare: Option<Prepare>,
) {
    connector_hook(connector, "started_connecting", || {
        factory.started_connecting(connector)
    });
    if connector.inner.state.get() != ConnectorState::Connecting {
        return; // the hook stopped it
    }
    let mut guard = AttemptGuard {
        connector: connector.clone(),
        factory,
        armed: true,
    };
    let reactor = connector.inner.reactor.clone();
    let task = async move {
        let c = guard.connector.clone();
        let dest = c.destination();
        let timeout = Duration::try_from_secs_f64(c.inner.timeout.max(0.0))
            .unwrap_or(Duration::from_secs(u32::MAX as u64));
        let resolver = c.inner.reactor.name_resolver();
        let connected = tokio::time::timeout(timeout, async {
            let addrs = resolve(&*resolver, &c.inner.host, c.inner.port).await?;
            Ok::<_, Failure>(open_stream(&c.inner.host, addrs, bind_address).await)
        })
        .await;
        let stream = match connected {
            Err(_) => return guard.fail(Failure::new(TimeoutError)),
            Ok(Err(failure)) => return guard.fail(failure),
            Ok(Ok(connected)) => connected,
        };
        let stream = match stream {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return guard.fail(Failure::new(ConnectionRefusedError::new(dest)))
            }
            Err(e) => return guard.fail(Failure::new(ConnectError::new(dest, e))),
            Ok(s) => s,
        };
        let _ = stream.set_nodelay(true);
        let (peer, host) = match (stream.peer_addr(), stream.local_addr()) {
            (Ok(p), Ok(h)) => (p, h),
            (Err(e), _) | (_, Err(e)) => {
                return guard.fail(Failure::new(ConnectError::new(dest, e)))
            }
        };
        let peer = Address::Tcp(peer);
        let conn = Conn::new(Tasked::new(stream), peer.clone(), Address::Tcp(host));
        if let Some(prepare) = &prepare {
            if let Err(f) = prepare(&conn, &c.inner.host) {
                return guard.fail(f);
            }
        }
        let proto = match catch_unwind(AssertUnwindSafe(|| guard.factory.build_protocol(&peer))) {
            Ok(Some(p)) => p,
            Ok(None) => {
                let e = io::Error::new(io::ErrorKind::ConnectionAborted, "build_protocol refused");
                return guard.fail(Failure::new(ConnectError::new(dest, e)));
            }
            Err(payload) => return guard.fail(Failure::from_panic(payload)),
        };
        guard.armed = false;
        c.inner.attempt.borrow_mut().take();
        c.inner.state.set(ConnectorState::Connected);
        let r = c.inner.reactor.clone();
        let keep = c.clone();
        let end = run_connection(&r, conn, proto, move |t| {
            *keep.inner.transport.borrow_mut() = Some(t.clone());
        })
        .await;
        c.inner.transport.borrow_mut().take();
        c.inner.state.set(ConnectorState::Disconnected);
        let f = guard.factory.clone();
        connector_hook(&c, "client_connection_lost", || {
            let reason = end.unwrap_or_else(|| unreachable!("a client connection reports its end"));
            f.client_connection_lost(&c, reason)
        });
    };
    // If the reactor has finished, the task (and its guard) is dropped at once and the
    // factory hears CancelledError.
    if let Some(abort) = reactor.spawn_task(task) {
        if connector.inner.state.get() == ConnectorState::Connecting {
            *connector.inner.attempt.borrow_mut() = Some(abort);
        }
    }
}

/// The addresses of `host` (an IP address as it is, an empty host as 127.0.0.1, a name
/// through the reactor's resolver).
async fn resolve(
    resolver: &dyn HostnameResolver,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Failure> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(vec![SocketAddr::new(ip, port)]),
        Err(_) if host.is_empty() => {
            Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)])
        }
        Err(_) => resolver.resolve_host_name(host, port).await,
    }
}

/// Connects to the first of `addrs` that answers.
async fn open_stream(
    host: &str,
    addrs: Vec<SocketAddr>,
    bind_address: Option<SocketAddr>,
) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("no address for {host}"));
    for addr in addrs {
        let attempt = match bind_address {
            None => TcpStream::connect(addr).await,
            Some(local) if local.is_ipv4() != addr.is_ipv4() => continue,
            Some(local) => connect_from(local, addr).await,
        };
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Connects to `addr` from the local address `local`.
async fn connect_from(local: SocketAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(local)?;
    socket.connect(addr).await
}

#[cfg(feature = "tls")]
pub(crate) mod tls;
