//! Unix datagram sockets (Twisted's `listenUNIXDatagram` and `connectUNIXDatagram`).
//!
//! The same [`DatagramProtocol`] and [`DatagramTransport`] as UDP, with
//! [`Address::Unix`] addresses: `Some(path)` for a socket file, `Some("@name")` for a Linux
//! abstract name, `None` for an unnamed sender (which cannot be answered). A stale socket
//! file left by a dead process is removed before binding, and the file is removed when the
//! port closes. The UDP-only options (multicast, TTL, broadcast) answer `Unsupported`.
//!
//! A server and a client that connects to it; the client's socket gets an automatic abstract
//! name (Linux autobind), so the server can answer it:
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! use torsion::datagram::{DatagramProtocol, DatagramTransport};
//! use torsion::transport::Address;
//! use torsion::{reactor, Reactor};
//!
//! struct Echo;
//! impl DatagramProtocol for Echo {
//!     fn datagram_received(&mut self, t: &DatagramTransport, data: &[u8], addr: &Address) {
//!         t.write(data, addr).unwrap();
//!     }
//! }
//!
//! struct Client;
//! impl DatagramProtocol for Client {
//!     fn start_protocol(&mut self, t: &DatagramTransport) {
//!         t.send(b"ping").unwrap(); // a connected socket: no address needed
//!     }
//!     fn datagram_received(&mut self, _: &DatagramTransport, data: &[u8], _: &Address) {
//!         assert_eq!(data, b"ping");
//!         reactor().stop().unwrap();
//!     }
//! }
//!
//! let path = std::env::temp_dir().join(format!("torsion-doc-dgram-{}.sock", std::process::id()));
//! let r = Reactor::new();
//! let server = r.listen_unix_datagram(&path, Echo).unwrap();
//! assert_eq!(server.get_host(), Address::Unix(Some(path.clone())));
//! let client = r.connect_unix_datagram(&path, Client, None).unwrap();
//! r.run().unwrap();
//! assert!(!path.exists()); // reactor shutdown closed the port and removed its file
//! # let _ = client;
//! # }
//! ```

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::{Interest, Ready};
use tokio::net::UnixDatagram;

use crate::datagram::{
    DatagramProtocol, DatagramSocket, DatagramTransport, DatagramTransportImpl, Port,
    DEFAULT_MAX_PACKET_SIZE, MAX_PACKET_SIZE_LIMIT,
};
use crate::defer::Deferred;
use crate::error::{
    CannotListenError, ConnectError, ConnectionRefusedError, ReactorNotRestartable,
};
use crate::reactor::Reactor;
use crate::transport::Address;
use crate::Failure;

/// Options for [`Reactor::listen_unix_datagram_with`] (Twisted's `mode` and
/// `maxPacketSize`, and stale-socket clean-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixDatagramOptions {
    /// Permissions given to the socket file after binding (for example `0o660`); `None`
    /// leaves what the umask gives. Ignored for abstract names.
    pub mode: Option<u32>,
    /// If the path already exists as a socket nobody has bound (sending to it is refused),
    /// remove it and bind. A socket in use is never removed: listening fails with
    /// [`CannotListenError`] "address in use". Defaults to `true`.
    pub cleanup_stale: bool,
    /// The largest datagram delivered (default 8192, at most 65535); longer ones are dropped
    /// with a debug log line.
    pub max_packet_size: usize,
}

impl Default for UnixDatagramOptions {
    fn default() -> Self {
        UnixDatagramOptions {
            mode: None,
            cleanup_stale: true,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
        }
    }
}

/// A Unix datagram socket that removes its socket file when dropped, if the file is still
/// the one it made.
pub(crate) struct UnixDatagramSocket {
    sock: UnixDatagram,
    file: Option<(PathBuf, (u64, u64))>,
}

impl Drop for UnixDatagramSocket {
    fn drop(&mut self) {
        if let Some((path, id)) = &self.file {
            if file_id(path) == Some(*id) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl AsFd for UnixDatagramSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl DatagramSocket for UnixDatagramSocket {
    type Peer = tokio::net::unix::SocketAddr;

    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + '_ {
        self.sock.ready(interest)
    }

    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.sock.try_io(interest, f)
    }

    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Self::Peer)> {
        self.sock.try_recv_from(buf)
    }

    fn cache_peer(peer: &Self::Peer, cached: &mut Address) {
        let same = match (cached_bytes(cached), peer_bytes(peer)) {
            (None, None) => true,
            (Some(a), Some((prefix, b))) => match prefix {
                Some(p) => a.len() == b.len() + 1 && a[0] == p && a[1..] == *b,
                None => a == b,
            },
            _ => false,
        };
        if !same {
            *cached = address_of(peer);
        }
    }

    fn blank_peer() -> Address {
        Address::Unix(None)
    }
}

/// The bytes of a cached Unix address (`None` when unnamed).
fn cached_bytes(cached: &Address) -> Option<&[u8]> {
    match cached {
        Address::Unix(Some(p)) => Some(p.as_os_str().as_bytes()),
        _ => None,
    }
}

/// The bytes of a peer's address, with `b'@'` as the prefix an abstract name is shown with.
fn peer_bytes(peer: &tokio::net::unix::SocketAddr) -> Option<(Option<u8>, &[u8])> {
    if let Some(p) = peer.as_pathname() {
        return Some((None, p.as_os_str().as_bytes()));
    }
    peer.as_abstract_name().map(|name| (Some(b'@'), name))
}

/// A socket address as an [`Address`]: the path, `@name` for an abstract name, or `None`.
fn address_of(addr: &tokio::net::unix::SocketAddr) -> Address {
    match peer_bytes(addr) {
        None => Address::Unix(None),
        Some((None, path)) => Address::Unix(Some(PathBuf::from(OsStr::from_bytes(path)))),
        Some((Some(prefix), name)) => {
            let mut bytes = Vec::with_capacity(name.len() + 1);
            bytes.push(prefix);
            bytes.extend_from_slice(name);
            Address::Unix(Some(PathBuf::from(OsStr::from_bytes(&bytes))))
        }
    }
}

/// True for `@name` or `\0name`: a Linux abstract socket name.
fn is_abstract(path: &Path) -> bool {
    matches!(path.as_os_str().as_bytes().first(), Some(b'@' | 0))
}

/// The system's address for `path`, `@name` and `\0name` being abstract names.
fn sock_addr(path: &Path) -> io::Result<SockAddr> {
    let bytes = path.as_os_str().as_bytes();
    match bytes {
        [b'@', name @ ..] => {
            if !cfg!(target_os = "linux") {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "abstract socket names are Linux-only",
                ));
            }
            let mut raw = Vec::with_capacity(name.len() + 1);
            raw.push(0);
            raw.extend_from_slice(name);
            SockAddr::unix(OsStr::from_bytes(&raw))
        }
        _ => SockAddr::unix(path),
    }
}

/// The socket file's identity, so that only our own file is removed.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Removes `path` if it is a socket nobody has bound; fails if somebody has.
fn remove_stale(path: &Path) -> io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Ok(()); // let bind report the problem
    }
    let probe = std::os::unix::net::UnixDatagram::unbound()?;
    match probe.connect(path) {
        Ok(()) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "address in use: another process has bound this socket",
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

/// Makes a non-blocking datagram socket bound to `path` (`None`: autobind on Linux, unbound
/// elsewhere), removing a stale file first if allowed and setting the file's mode.
fn bind(
    path: Option<&Path>,
    mode: Option<u32>,
    cleanup_stale: bool,
) -> io::Result<UnixDatagramSocket> {
    let socket = Socket::new(Domain::UNIX, Type::DGRAM, None)?;
    let mut file = FileGuard(None);
    match path {
        Some(p) if is_abstract(p) => socket.bind(&sock_addr(p)?)?,
        Some(p) => {
            if cleanup_stale {
                remove_stale(p)?;
            }
            socket.bind(&sock_addr(p)?)?;
            let id = file_id(p).ok_or_else(|| io::Error::other("the socket file vanished"))?;
            // From here on, the file goes when the socket does (or when binding fails).
            file.0 = Some((p.to_path_buf(), id));
            if let Some(mode) = mode {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
            }
        }
        // An empty address asks Linux for an automatic abstract name.
        None if cfg!(target_os = "linux") => socket.bind(&SockAddr::unix("")?)?,
        None => {}
    }
    socket.set_nonblocking(true)?;
    let sock = UnixDatagram::from_std(socket.into())?;
    Ok(UnixDatagramSocket {
        sock,
        file: file.disarm(),
    })
}

/// Removes a bound socket's file if binding fails half-way.
struct FileGuard(Option<(PathBuf, (u64, u64))>);

impl FileGuard {
    fn disarm(mut self) -> Option<(PathBuf, (u64, u64))> {
        self.0.take()
    }
}

impl Drop for FileGuard {
    fn drop(&mut self) {
        if let Some((p, id)) = &self.0 {
            if file_id(p) == Some(*id) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

fn describe(path: &Path) -> String {
    path.display().to_string()
}

impl Reactor {
    /// Opens a Unix datagram socket at `path` for `protocol` (Twisted's
    /// `listenUNIXDatagram`) with the default [`UnixDatagramOptions`]. A path starting with
    /// `@` or a NUL byte is a Linux abstract name.
    pub fn listen_unix_datagram<P: DatagramProtocol>(
        &self,
        path: impl AsRef<Path>,
        protocol: P,
    ) -> Result<DatagramTransport, Failure> {
        self.listen_unix_datagram_with(path, protocol, UnixDatagramOptions::default())
    }

    /// [`listen_unix_datagram`](Self::listen_unix_datagram) with options: the file's mode,
    /// stale-file clean-up, and the largest datagram. Fails with [`CannotListenError`] naming
    /// the path.
    pub fn listen_unix_datagram_with<P: DatagramProtocol>(
        &self,
        path: impl AsRef<Path>,
        protocol: P,
        options: UnixDatagramOptions,
    ) -> Result<DatagramTransport, Failure> {
        let path = path.as_ref();
        let cannot = |e| CannotListenError::new(describe(path), e);
        check_max_packet_size(options.max_packet_size).map_err(cannot)?;
        let sock = self
            .with_context(|| bind(Some(path), options.mode, options.cleanup_stale))
            .ok_or(ReactorNotRestartable)?
            .map_err(cannot)?;
        let host = Address::Unix(Some(path.to_path_buf()));
        crate::datagram::open(
            self,
            sock,
            host,
            None,
            options.max_packet_size,
            protocol,
            |port| DatagramTransport::new(port),
        )
    }

    /// Opens a Unix datagram socket connected to `path` (Twisted's `connectUNIXDatagram`):
    /// [`send`](DatagramTransportImpl::send) goes there and only its datagrams arrive. The
    /// socket is bound to `bind_to` (a path or `@name`, removed again when the port closes)
    /// or, with `None`, to an automatic abstract name on Linux so the peer can answer.
    ///
    /// Fails with [`ConnectionRefusedError`] when nobody has bound `path`, and
    /// [`ConnectError`] for other errors (the path does not exist, say).
    pub fn connect_unix_datagram<P: DatagramProtocol>(
        &self,
        path: impl AsRef<Path>,
        protocol: P,
        bind_to: Option<&Path>,
    ) -> Result<DatagramTransport, Failure> {
        self.connect_unix_datagram_with(path, protocol, bind_to, UnixDatagramOptions::default())
    }

    /// [`connect_unix_datagram`](Self::connect_unix_datagram) with options for this end: the
    /// mode of its socket file, stale-file clean-up for `bind_to`, and the largest datagram
    /// (Twisted's `maxPacketSize` and `mode`).
    pub fn connect_unix_datagram_with<P: DatagramProtocol>(
        &self,
        path: impl AsRef<Path>,
        protocol: P,
        bind_to: Option<&Path>,
        options: UnixDatagramOptions,
    ) -> Result<DatagramTransport, Failure> {
        let path = path.as_ref();
        let dest = describe(path);
        check_max_packet_size(options.max_packet_size)
            .map_err(|e| ConnectError::new(dest.clone(), e))?;
        let sock = self
            .with_context(|| bind(bind_to, options.mode, options.cleanup_stale))
            .ok_or(ReactorNotRestartable)?
            .map_err(|e| ConnectError::new(dest.clone(), e))?;
        let connected = sock_addr(path).and_then(|a| socket2::SockRef::from(&sock).connect(&a));
        match connected {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(ConnectionRefusedError::new(dest).into())
            }
            Err(e) => return Err(ConnectError::new(dest, e).into()),
        }
        let host = match sock.sock.local_addr() {
            Ok(a) => address_of(&a),
            Err(e) => return Err(ConnectError::new(dest, e).into()),
        };
        crate::datagram::open(
            self,
            sock,
            host,
            Some(Address::Unix(Some(path.to_path_buf()))),
            options.max_packet_size,
            protocol,
            |port| DatagramTransport::new(port),
        )
    }
}

fn check_max_packet_size(size: usize) -> io::Result<()> {
    if (1..=MAX_PACKET_SIZE_LIMIT).contains(&size) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("max_packet_size must be 1 to {MAX_PACKET_SIZE_LIMIT}"),
        ))
    }
}

fn unix_target(addr: &Address) -> io::Result<(&Path, SockAddr)> {
    match addr {
        Address::Unix(Some(p)) => Ok((p, sock_addr(p)?)),
        Address::Unix(None) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an unnamed Unix socket cannot be written to",
        )),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a Unix datagram socket sends to Unix addresses only",
        )),
    }
}

impl DatagramTransportImpl for Port<UnixDatagramSocket> {
    fn write(&self, data: &[u8], addr: &Address) -> io::Result<()> {
        self.check_destination(addr, |peer, addr| peer == addr)?;
        let (path, to) = unix_target(addr)?;
        self.send_with(data.len(), &path.display(), false, |s| s.send_to(data, &to))
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        let Some(peer) = self.peer.borrow().clone() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "send needs a connected socket; use write(data, addr)",
            ));
        };
        self.send_with(data.len(), &peer, false, |s| s.send(data))
    }

    fn connect(&self, addr: &Address) -> io::Result<()> {
        let (_, to) = unix_target(addr)?;
        let sock = self.socket()?;
        socket2::SockRef::from(&*sock).connect(&to)?;
        *self.peer.borrow_mut() = Some(addr.clone());
        Ok(())
    }

    fn get_host(&self) -> Address {
        self.host.clone()
    }

    fn get_peer(&self) -> Option<Address> {
        self.peer.borrow().clone()
    }

    fn stop_listening(&self) -> Deferred<()> {
        Port::stop_listening(self)
    }

    fn listening(&self) -> bool {
        Port::listening(self)
    }

    fn dropped_writes(&self) -> u64 {
        Port::dropped_writes(self)
    }
}
