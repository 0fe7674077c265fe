//! Unix domain sockets (Twisted's `listenUNIX`/`connectUNIX`).
//!
//! [`Reactor::listen_unix`] listens on a socket file and [`Reactor::connect_unix`] connects
//! to one; connections run on the same engine as TCP, so protocols, half-close,
//! `lose_connection` and flow control behave exactly as over TCP (the TCP-only options such
//! as `set_tcp_no_delay` answer `Unsupported`). A stale socket file left by a dead server is
//! removed before binding, and [`UnixListeningPort::stop_listening`] removes the file.
//!
//! ```
//! use torsion::transport::Address;
//! use torsion::{factory, Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
//! }
//!
//! let path = std::env::temp_dir().join(format!("torsion-doc-{}.sock", std::process::id()));
//! let r = Reactor::new();
//! let port = r.listen_unix(&path, factory(|| Echo)).unwrap();
//! assert_eq!(port.get_host(), Address::Unix(Some(path.clone())));
//! assert!(path.exists() && port.listening());
//! port.stop_listening();
//! assert!(!port.listening());
//! assert!(!path.exists()); // stop_listening removes the socket file
//! ```
//!
//! [`Reactor::listen_unix_with`] takes [`UnixListenOptions`]: the socket file's permissions,
//! and whether to clean up a stale file. A name starting with `@` (or a NUL byte) is a Linux
//! abstract socket name, which has no file at all:
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! use torsion::unix::UnixListenOptions;
//! use torsion::{factory, Protocol, Reactor, Transport};
//!
//! struct Quiet;
//! impl Protocol for Quiet {
//!     fn data_received(&mut self, _: &Transport, _: &[u8]) {}
//! }
//!
//! let r = Reactor::new();
//! let path = std::env::temp_dir().join(format!("torsion-doc-mode-{}.sock", std::process::id()));
//! let options = UnixListenOptions { mode: Some(0o600), ..UnixListenOptions::default() };
//! let port = r.listen_unix_with(&path, factory(|| Quiet), options).unwrap();
//! use std::os::unix::fs::PermissionsExt;
//! assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
//! port.stop_listening();
//!
//! let name = format!("@torsion-doc-{}", std::process::id());
//! let abstract_port = r.listen_unix(&name, factory(|| Quiet)).unwrap();
//! abstract_port.stop_listening();
//! # }
//! ```
//!
//! A client connects with any [`ClientFactory`]; the [`Connector`] it gets is the same as
//! TCP's (its `get_destination()` is `(path, 0)`). A protocol reads the peer process's
//! credentials with [`peer_credentials`]:
//!
//! ```
//! use torsion::unix::{peer_credentials, PeerCredentials};
//! use torsion::{Protocol, Transport};
//!
//! struct WhoIsThere;
//! impl Protocol for WhoIsThere {
//!     fn connection_made(&mut self, t: &Transport) {
//!         if let Some(PeerCredentials { uid, .. }) = peer_credentials(t) {
//!             t.write(format!("hello, uid {uid}\n").as_bytes());
//!         }
//!     }
//!     fn data_received(&mut self, _: &Transport, _: &[u8]) {}
//! }
//! ```
//!
//! A whole exchange: a client connects (here with a 5 s time-out), checks the server's
//! credentials, sends a line, and stops the reactor when the echo server closes on it.
//!
//! ```
//! use torsion::unix::peer_credentials;
//! use torsion::{factory, ConnectionEnd, Failure, Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) {
//!         t.write(data);
//!         t.lose_connection();
//!     }
//! }
//!
//! struct Client;
//! impl Protocol for Client {
//!     fn connection_made(&mut self, t: &Transport) {
//!         assert_eq!(peer_credentials(t).unwrap().pid, Some(std::process::id() as i32));
//!         t.write(b"hello\n");
//!     }
//!     fn data_received(&mut self, _: &Transport, data: &[u8]) {
//!         assert_eq!(data, b"hello\n");
//!     }
//!     fn connection_lost(&mut self, _: ConnectionEnd) {
//!         torsion::reactor().stop().unwrap();
//!     }
//! }
//!
//! let path = std::env::temp_dir().join(format!("torsion-doc-c-{}.sock", std::process::id()));
//! let r = Reactor::new();
//! let port = r.listen_unix(&path, factory(|| Echo)).unwrap();
//! let connector = r.connect_unix_timeout(&path, factory(|| Client), 5.0);
//! assert_eq!(connector.get_destination().0, path.display().to_string());
//! r.run().unwrap();
//! port.stop_listening();
//! ```

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::SockRef;
use tokio::net::{UnixListener, UnixStream};

use crate::connector::{hook, Connector, ConnectorInner, ConnectorState};
use crate::error::{
    CannotListenError, ConnectError, ConnectionRefusedError, ReactorNotRestartable, TimeoutError,
};
use crate::port::{Acceptor, ListeningPort};
use crate::protocol::{ClientFactory, Factory, Protocol};
use crate::reactor::Reactor;
use crate::stream::{run_connection, Conn, SocketIo, Tasked};
use crate::tcp::AttemptGuard;
pub use crate::transport::PeerCredentials;
use crate::transport::{Address, Transport};
use crate::Failure;

impl SocketIo for UnixStream {
    fn peer_credentials(&self) -> Option<PeerCredentials> {
        credentials_of(self)
    }
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        UnixStream::poll_read_ready(self, cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        UnixStream::poll_write_ready(self, cx)
    }
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        UnixStream::try_read(self, buf)
    }
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        crate::stream::poll_read_tokio(self, cx, buf)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        UnixStream::try_write(self, buf)
    }
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        UnixStream::try_write_vectored(self, bufs)
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
}

/// Options for [`Reactor::listen_unix_with`] (Twisted's `mode=` argument, and its stale
/// socket clean-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixListenOptions {
    /// Permissions given to the socket file after binding (for example `0o660`); `None`
    /// leaves what the umask gives. Ignored for abstract names.
    pub mode: Option<u32>,
    /// If the path already exists as a socket that nobody accepts on (a connection to it is
    /// refused), remove it and bind. A socket somebody listens on is never removed: listening
    /// fails with [`CannotListenError`] "address in use". Defaults to `true`.
    pub cleanup_stale: bool,
    /// The listen backlog (Twisted's `backlog=`); `None` keeps the standard library's.
    pub backlog: Option<u32>,
}

impl Default for UnixListenOptions {
    fn default() -> Self {
        UnixListenOptions {
            mode: None,
            cleanup_stale: true,
            backlog: None,
        }
    }
}

/// The credentials of the peer process of `transport`'s Unix connection (`SO_PEERCRED`),
/// while it is open; `None` for other transports or where the platform does not tell them.
/// Call it from any protocol method (`connection_made` included) but `connection_lost`. The
/// same as [`TransportImpl::peer_credentials`](crate::transport::TransportImpl::peer_credentials).
pub fn peer_credentials(transport: &Transport) -> Option<PeerCredentials> {
    transport.peer_credentials()
}

/// Where a Unix socket is: a file, or (Linux) an abstract name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Target {
    fn new(path: &Path) -> Target {
        match path.as_os_str().as_bytes() {
            [b'@' | 0, name @ ..] => Target::Abstract(name.to_vec()),
            _ => Target::Path(path.to_path_buf()),
        }
    }

    /// For messages: the path, or `@name`.
    fn describe(&self) -> String {
        match self {
            Target::Path(p) => p.display().to_string(),
            Target::Abstract(name) => format!("@{}", String::from_utf8_lossy(name)),
        }
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names are Linux-only",
    ))
}

fn address_of(addr: &tokio::net::unix::SocketAddr) -> Address {
    Address::Unix(addr.as_pathname().map(Path::to_path_buf))
}

fn credentials_of(stream: &UnixStream) -> Option<PeerCredentials> {
    stream.peer_cred().ok().map(|c| PeerCredentials {
        pid: c.pid(),
        uid: c.uid(),
        gid: c.gid(),
    })
}

/// Binds a listening socket file, removing a stale one first if allowed.
fn bind_path(
    path: &Path,
    options: &UnixListenOptions,
) -> io::Result<std::os::unix::net::UnixListener> {
    if options.cleanup_stale {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if meta.file_type().is_socket() {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            "address in use: another process listens on this socket",
                        ))
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        std::fs::remove_file(path)?;
                    }
                    Err(_) => {} // let bind report the problem
                }
            }
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    if let Some(mode) = options.mode {
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            drop(listener);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
    }
    Ok(listener)
}

fn bind(
    target: &Target,
    options: &UnixListenOptions,
) -> io::Result<std::os::unix::net::UnixListener> {
    let listener = match target {
        Target::Path(path) => bind_path(path, options)?,
        Target::Abstract(name) => {
            std::os::unix::net::UnixListener::bind_addr(&abstract_addr(name)?)?
        }
    };
    if let Some(backlog) = options.backlog {
        // Listening again on a listening socket changes its backlog.
        SockRef::from(&listener).listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The socket file's identity, so that only our own file is removed.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// A Unix listener as a port's acceptor. Dropping it (the port closing, or the reactor
/// finishing) removes the socket file, if it is still the one this port created.
struct UnixAcceptor {
    listener: UnixListener,
    path: PathBuf,
    target: Target,
    file: Option<(u64, u64)>,
}

impl Drop for UnixAcceptor {
    fn drop(&mut self) {
        if let Target::Path(path) = &self.target {
            if self.file.is_some() && file_id(path) == self.file {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl Acceptor for UnixAcceptor {
    type Stream = UnixStream;

    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(UnixStream, Address, Address)>> {
        let (stream, peer) = std::task::ready!(self.listener.poll_accept(cx))?;
        Poll::Ready(Ok((
            stream,
            address_of(&peer),
            Address::Unix(Some(self.path.clone())),
        )))
    }

    fn serve<P: Protocol>(
        reactor: &Reactor,
        stream: UnixStream,
        peer: Address,
        host: Address,
        proto: P,
        _send_timeout: Option<std::time::Duration>,
    ) {
        // A task of its own, which keeps the connection's credentials on record.
        let r = reactor.clone();
        reactor.spawn_task(async move {
            run_unix(&r, stream, peer, host, proto, |_| {}).await;
        });
    }
}

/// A listening Unix socket: the same [`ListeningPort`] as every stream transport. Stopping
/// it, or reactor shutdown, removes the socket file.
pub type UnixListeningPort = ListeningPort;

impl Reactor {
    /// Listens on the Unix socket `path` (what [`Reactor::listen`] does for Unix sockets).
    /// Fails with [`CannotListenError`] naming the path.
    pub(crate) fn unix_listen<F: Factory>(
        &self,
        path: impl AsRef<Path>,
        factory: F,
        options: UnixListenOptions,
    ) -> Result<UnixListeningPort, Failure> {
        let path = path.as_ref();
        let target = Target::new(path);
        let name = target.describe();
        let std_listener =
            bind(&target, &options).map_err(|e| CannotListenError::new(&*name, e))?;
        let file = match &target {
            Target::Path(p) => file_id(p),
            Target::Abstract(_) => None,
        };
        let listener = match self.with_context(|| UnixListener::from_std(std_listener)) {
            Some(Ok(l)) => l,
            failed => {
                if let Target::Path(p) = &target {
                    let _ = std::fs::remove_file(p);
                }
                return match failed {
                    Some(Err(e)) => Err(CannotListenError::new(name, e).into()),
                    _ => Err(ReactorNotRestartable.into()),
                };
            }
        };

        let acceptor = UnixAcceptor {
            listener,
            path: path.to_path_buf(),
            target,
            file,
        };
        crate::port::listen(
            self,
            acceptor,
            Address::Unix(Some(path.to_path_buf())),
            factory,
        )
    }

    /// Listens on a Unix socket that is already bound and listening (one inherited from
    /// systemd socket activation). The socket file belongs to whoever made it: it is not
    /// removed when the port stops.
    pub(crate) fn listen_unix_adopt<F: Factory>(
        &self,
        listener: std::os::unix::net::UnixListener,
        factory: F,
    ) -> Result<UnixListeningPort, Failure> {
        let path = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            .unwrap_or_default();
        let name = path.display().to_string();
        let prepare = |l: &std::os::unix::net::UnixListener| -> io::Result<()> {
            l.set_nonblocking(true)?;
            SockRef::from(l).set_cloexec(true)
        };
        prepare(&listener).map_err(|e| CannotListenError::new(&*name, e))?;
        let listener = match self.with_context(|| UnixListener::from_std(listener)) {
            Some(Ok(l)) => l,
            Some(Err(e)) => return Err(CannotListenError::new(name, e).into()),
            None => return Err(ReactorNotRestartable.into()),
        };
        let acceptor = UnixAcceptor {
            listener,
            path: path.clone(),
            target: Target::Path(path.clone()),
            file: None, // not ours: never removed
        };
        let host = Address::Unix((!path.as_os_str().is_empty()).then_some(path));
        crate::port::listen(self, acceptor, host, factory)
    }

    /// Connects to the Unix socket `path` (what [`Reactor::connect`] does for Unix sockets).
    pub(crate) fn unix_connect<F: ClientFactory>(
        &self,
        path: impl AsRef<Path>,
        factory: F,
        timeout: f64,
    ) -> Connector {
        let path = path.as_ref().to_path_buf();
        let target = Rc::new(Target::new(&path));
        let factory = Rc::new(factory);
        let connector = Connector {
            inner: Rc::new(ConnectorInner {
                host: lossy(path.as_os_str()),
                port: 0,
                timeout,
                reactor: self.clone(),
                state: Cell::new(ConnectorState::Disconnected),
                attempt: RefCell::new(None),
                transport: RefCell::new(None),
                start: Box::new(move |c: &Connector| {
                    start_attempt(c, path.clone(), target.clone(), factory.clone())
                }),
            }),
        };
        connector.connect();
        connector
    }
}

fn lossy(s: &OsStr) -> String {
    s.to_string_lossy().into_owned()
}

/// Runs one accepted or connected stream to its end, with its credentials on record.
async fn run_unix<P: Protocol>(
    reactor: &Reactor,
    stream: UnixStream,
    peer: Address,
    host: Address,
    proto: P,
    on_made: impl FnOnce(&Transport),
) -> Option<Failure> {
    let conn = Conn::new(Tasked::new(stream), peer, host);
    run_connection(reactor, conn, proto, on_made).await
}

/// Opens a stream to `target`.
async fn open_stream(target: &Target) -> io::Result<UnixStream> {
    match target {
        Target::Path(path) => UnixStream::connect(path).await,
        Target::Abstract(name) => {
            // A Unix connect completes at once (or fails with EAGAIN when the backlog is full).
            let std = std::os::unix::net::UnixStream::connect_addr(&abstract_addr(name)?)?;
            std.set_nonblocking(true)?;
            UnixStream::from_std(std)
        }
    }
}

fn start_attempt<F: ClientFactory>(
    connector: &Connector,
    path: PathBuf,
    target: Rc<Target>,
    factory: Rc<F>,
) {
    hook("started_connecting", || {
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
        let dest = target.describe();
        let timeout = Duration::try_from_secs_f64(c.inner.timeout.max(0.0))
            .unwrap_or(Duration::from_secs(u32::MAX as u64));
        let stream = match tokio::time::timeout(timeout, open_stream(&target)).await {
            Err(_) => return guard.fail(Failure::new(TimeoutError)),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return guard.fail(Failure::new(ConnectionRefusedError::new(dest)))
            }
            Ok(Err(e)) => return guard.fail(Failure::new(ConnectError::new(dest, e))),
            Ok(Ok(s)) => s,
        };
        let host = match stream.local_addr() {
            Ok(a) => address_of(&a),
            Err(e) => return guard.fail(Failure::new(ConnectError::new(dest, e))),
        };
        let peer = Address::Unix(Some(path));
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
        let end = run_unix(&r, stream, peer, host, proto, move |t| {
            *keep.inner.transport.borrow_mut() = Some(t.clone());
        })
        .await;
        c.inner.transport.borrow_mut().take();
        c.inner.state.set(ConnectorState::Disconnected);
        let f = guard.factory.clone();
        hook("client_connection_lost", || {
            let reason = end.unwrap_or_else(|| unreachable!("a client connection reports its end"));
            f.client_connection_lost(&c, reason)
        });
    };
    if let Some(abort) = reactor.spawn_task(task) {
        if connector.inner.state.get() == ConnectorState::Connecting {
            *connector.inner.attempt.borrow_mut() = Some(abort);
        }
    }
}
