//! The sockets the engine runs a connection on: their I/O ([`SocketIo`]), how a driver wakes
//! the connection ([`StreamSocket`]), and the tokio-task driver's socket ([`Tasked`]).

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::task::{Context, Poll, Waker};

use super::Connection;
use crate::protocol::Protocol;
use crate::reactor::Reactor;
use crate::transport::{PeerCredentials, Transport};

/// The I/O the engine needs of a non-blocking stream socket.
pub(crate) trait SocketIo: 'static {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Reads what is there, or registers for readiness. Sockets whose readiness can be
    /// cleared after a short read (tokio's `AsyncRead`) override it, which saves the read
    /// that would only return `EAGAIN` after every message.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.poll_read_ready(cx))?;
            match self.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Writes from several buffers in one system call (`writev`), as far as the socket takes
    /// them; sockets without it write the first non-empty buffer. TLS sends its records
    /// with it, straight from rustls.
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.try_write(b),
            None => Ok(0),
        }
    }
    /// Writes `buf` telling the kernel that more follows at once (`MSG_MORE`), so that it
    /// goes out in one packet with what follows: a response head before a file segment.
    fn try_write_more(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_write(buf)
    }
    /// Whether [`send_file`](Self::send_file) works on this socket.
    const SENDS_FILES: bool = false;
    /// Sends up to `len` bytes of `file` from `offset` (`sendfile(2)`); how many went, 0 when
    /// the file ends at `offset`. `WouldBlock` when the socket is full.
    fn send_file(&self, _file: &std::fs::File, _offset: u64, _len: usize) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn shutdown_write(&self) -> io::Result<()>;
    /// A TCP socket: its connection offers [`TcpOptions`].
    const TCP: bool = false;
    /// The peer process's credentials, on a Unix socket.
    fn peer_credentials(&self) -> Option<PeerCredentials> {
        None
    }
    fn set_no_delay(&self, _on: bool) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn no_delay(&self) -> io::Result<bool> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn set_keep_alive(&self, _on: bool) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn keep_alive(&self) -> io::Result<bool> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// A socket the engine can run a connection on: its I/O, and how the connection's driver is
/// woken. A socket tokio drives ([`Tasked`]) runs each connection as a task of its own; a
/// socket in the reactor's poller ([`crate::poller`]) runs in the poller's one task.
pub(crate) trait StreamSocket: SocketIo {
    /// Whether the reactor's registry of live handles must hold the connection (for
    /// shutdown and `open_handles`); the poller answers for the connections it runs.
    const REGISTER_LIVE: bool = true;
    /// Remembers what to wake for [`wake`](Self::wake); called each time the connection
    /// returns `Pending`.
    fn park(&self, cx: &mut Context<'_>);
    /// Wakes the connection's driver (a transport call made outside its callbacks needs it).
    fn wake(&self);
    /// Asks to be driven again after the other connections: the fair share of one turn is
    /// used.
    fn wake_soon(&self, cx: &mut Context<'_>) {
        cx.waker().wake_by_ref();
    }
    /// Runs the connection to its end: as a task of its own, or in the poller that drives
    /// this socket.
    fn start<P: Protocol, M: FnOnce(&Transport) + 'static>(
        reactor: &Reactor,
        connection: Connection<Self, P, M>,
    ) where
        Self: Sized;
}

/// A socket tokio drives: its connection runs as a task of its own, woken through the waker
/// kept here.
pub(crate) struct Tasked<T> {
    io: T,
    waker: RefCell<Option<Waker>>,
}

impl<T> Tasked<T> {
    pub(crate) fn new(io: T) -> Tasked<T> {
        Tasked {
            io,
            waker: RefCell::new(None),
        }
    }
}

impl<T: SocketIo> SocketIo for Tasked<T> {
    const TCP: bool = T::TCP;
    fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.io.peer_credentials()
    }
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_read_ready(cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_write_ready(cx)
    }
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_read(buf)
    }
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_read(cx, buf)
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_write(buf)
    }
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.io.try_write_vectored(bufs)
    }
    fn try_write_more(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_write_more(buf)
    }
    const SENDS_FILES: bool = T::SENDS_FILES;
    fn send_file(&self, file: &std::fs::File, offset: u64, len: usize) -> io::Result<usize> {
        self.io.send_file(file, offset, len)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.io.shutdown_write()
    }
    fn set_no_delay(&self, on: bool) -> io::Result<()> {
        self.io.set_no_delay(on)
    }
    fn no_delay(&self) -> io::Result<bool> {
        self.io.no_delay()
    }
    fn set_keep_alive(&self, on: bool) -> io::Result<()> {
        self.io.set_keep_alive(on)
    }
    fn keep_alive(&self) -> io::Result<bool> {
        self.io.keep_alive()
    }
}

impl<T: SocketIo> StreamSocket for Tasked<T> {
    fn park(&self, cx: &mut Context<'_>) {
        let mut w = self.waker.borrow_mut();
        match w.as_ref() {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *w = Some(cx.waker().clone()),
        }
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }

    fn start<P: Protocol, M: FnOnce(&Transport) + 'static>(
        reactor: &Reactor,
        connection: Connection<Self, P, M>,
    ) {
        // If the reactor has finished, the connection is dropped (its socket closed) here.
        reactor.spawn_task(discard_output(connection));
    }
}

/// `fut` with its output dropped, at no cost in size.
pub(crate) fn discard_output<F: Future + Unpin>(fut: F) -> impl Future<Output = ()> {
    struct Ignore<F>(F);
    impl<F: Future + Unpin> Future for Ignore<F> {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            std::pin::Pin::new(&mut self.0).poll(cx).map(|_| ())
        }
    }
    Ignore(fut)
}

/// `sendfile(2)` from `file` at `offset` to `out`: up to `len` bytes, how many went.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn sendfile(
    out: impl std::os::fd::AsFd,
    file: &std::fs::File,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    // A copy: the kernel moves it on, the engine keeps its own count.
    let mut at = offset;
    Ok(rustix::fs::sendfile(out, file, Some(&mut at), len)?)
}

/// `send(2)` with `MSG_MORE` on a TCP socket: `buf` waits to go out with what follows.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn send_more(out: impl std::os::fd::AsFd, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::net::send(out, buf, rustix::net::SendFlags::MORE)?)
}

/// Reads through tokio's `AsyncRead`, for sockets tokio drives: tokio clears the readiness
/// after a short read, so the next wait goes straight to epoll instead of through a read that
/// returns `EAGAIN`.
pub(crate) fn poll_read_tokio<T: tokio::io::AsyncRead + Unpin>(
    io: &mut T,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    let mut buf = tokio::io::ReadBuf::new(buf);
    std::task::ready!(tokio::io::AsyncRead::poll_read(
        std::pin::Pin::new(io),
        cx,
        &mut buf
    ))?;
    Poll::Ready(Ok(buf.filled().len()))
}
