//! The engine under every stream connection (TCP, TLS, Unix sockets, stdio): it reads into a
//! buffer owned by the thread, calls the protocol, and flushes the connection's write buffer.
//!
//! Accepted TCP connections run in the reactor's own poller ([`crate::poller`]): one epoll
//! set and one task for all of them. Other sockets ([`Tasked`]) run each connection as a
//! tokio task of its own. The engine is the same; only how it is woken differs.
//!
//! Hot path per readiness event: one `read` into the shared buffer, one call into the
//! protocol, one `write` of everything the protocol wrote meanwhile. Nothing is allocated per
//! message; a connection's own write buffer is allocated on its first buffered write and kept
//! small. Reads are bounded per wake-up, so one busy connection cannot starve the others.
//!
//! Protocol methods are never re-entered: transport calls made inside a callback only set
//! flags, which the engine acts on after the callback returns.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};

use crate::producer::{Due, Producer, ProducerError, ProducerSlot};
use crate::protocol::{ConnectionEnd, Protocol};
use crate::reactor::{Disconnect, Reactor};
#[cfg(feature = "tls")]
use crate::transport::TlsTransport;
use crate::transport::{Address, PeerCredentials, TcpOptions, Transport, TransportImpl};
use crate::Failure;

#[cfg(feature = "tls")]
mod tls;

/// Size of the thread's shared read buffer.
pub(crate) const READ_BUF_SIZE: usize = 64 * 1024;
/// Reads per wake-up before yielding to other connections.
const READS_PER_POLL: usize = 16;
/// A write buffer larger than this is released once it drains.
const KEEP_WRITE_CAPACITY: usize = 64 * 1024;
/// Calls into the registered producer per wake-up before yielding to other connections.
const PRODUCER_CALLS_PER_POLL: usize = 16;

thread_local! {
    pub(crate) static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// What the connection now in a callback wrote, gathered so that it goes out in one
    /// system call when the callback returns, without a buffer of the connection's own.
    static STAGED: RefCell<Staged> = const {
        RefCell::new(Staged {
            owner: 0,
            bytes: Vec::new(),
        })
    };
}

/// The thread's write-gathering buffer and the connection whose bytes it holds.
struct Staged {
    /// The address of the owning `Conn` (only compared, never followed).
    owner: usize,
    bytes: Vec<u8>,
}

/// The thread's gathering buffer is released when it drains if it grew past this.
const KEEP_STAGED_CAPACITY: usize = 64 * 1024;

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

const IN_CALLBACK: u16 = 1;
const LOSE: u16 = 1 << 1;
const ABORT: u16 = 1 << 2;
const SHUT_WRITE_REQUESTED: u16 = 1 << 3;
const WRITE_SHUT: u16 = 1 << 4;
const READ_CLOSED: u16 = 1 << 5;
const CLOSED: u16 = 1 << 6;
const PAUSED: u16 = 1 << 7;
const SHUTDOWN: u16 = 1 << 8;
/// A graceful drain was requested; the protocol's `drain` has not been called yet.
const DRAIN: u16 = 1 << 9;
/// The protocol's `drain` has been called.
const DRAINED: u16 = 1 << 10;
/// Bytes written in the current callback wait in the thread's gathering buffer ([`STAGED`]),
/// after everything in the connection's own write buffer.
const STAGED_WRITES: u16 = 1 << 11;

/// How a connection ended (the engine's name for [`ConnectionEnd`]).
pub(crate) type End = ConnectionEnd;

/// A connection's two addresses (the peer's, then its own), kept small: two IPv4 addresses
/// in place (12 bytes), any others boxed. Every connection holds them for its whole life.
enum ConnAddrs {
    V4(std::net::SocketAddrV4, std::net::SocketAddrV4),
    Other(Box<(Address, Address)>),
}

impl ConnAddrs {
    fn new(peer: Address, host: Address) -> ConnAddrs {
        use std::net::SocketAddr::V4;
        match (peer, host) {
            (Address::Tcp(V4(peer)), Address::Tcp(V4(host))) => ConnAddrs::V4(peer, host),
            other => ConnAddrs::Other(Box::new(other)),
        }
    }

    fn peer(&self) -> Address {
        match self {
            ConnAddrs::V4(peer, _) => Address::Tcp(std::net::SocketAddr::V4(*peer)),
            ConnAddrs::Other(a) => a.0.clone(),
        }
    }

    fn host(&self) -> Address {
        match self {
            ConnAddrs::V4(_, host) => Address::Tcp(std::net::SocketAddr::V4(*host)),
            ConnAddrs::Other(a) => a.1.clone(),
        }
    }
}

/// Shows the peer's address (what a log line about the connection names).
impl std::fmt::Display for ConnAddrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.peer().fmt(f)
    }
}

/// A connection's write buffer, made on first use: most connections send everything they
/// write at once (from the thread's gathering buffer), and an idle one then holds a pointer
/// instead of a `BytesMut`.
#[derive(Default)]
struct WriteBuf(RefCell<Option<Box<BytesMut>>>);

impl WriteBuf {
    #[inline]
    fn len(&self) -> usize {
        self.0.borrow().as_ref().map_or(0, |b| b.len())
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer, made now if there is none.
    fn borrow_mut(&self) -> std::cell::RefMut<'_, BytesMut> {
        std::cell::RefMut::map(self.0.borrow_mut(), |b| {
            &mut **b.get_or_insert_with(Box::default)
        })
    }

    /// The buffer, if there is one.
    fn existing(&self) -> Option<std::cell::RefMut<'_, BytesMut>> {
        std::cell::RefMut::filter_map(self.0.borrow_mut(), |b| b.as_deref_mut()).ok()
    }

    /// Frees the buffer.
    fn release(&self) {
        *self.0.borrow_mut() = None;
    }
}

/// One connection's shared state: the socket, the write buffer, and flags set by transport
/// calls. The connection's task and every `Transport` handle point here.
pub(crate) struct Conn<S> {
    sock: RefCell<Option<S>>,
    wbuf: WriteBuf,
    flags: Cell<u16>,
    write_error: Cell<Option<io::Error>>,
    /// The peer's address and this end's.
    addrs: ConnAddrs,
    /// Flow control: the registered producer and the watermarks.
    producer: ProducerSlot,
    #[cfg(feature = "tls")]
    tls: tls::TlsSlot,
}

impl<S: StreamSocket> Conn<S> {
    pub(crate) fn new(sock: S, peer: Address, host: Address) -> Rc<Conn<S>> {
        Rc::new(Conn {
            sock: RefCell::new(Some(sock)),
            wbuf: WriteBuf::default(),
            flags: Cell::new(0),
            write_error: Cell::new(None),
            addrs: ConnAddrs::new(peer, host),
            producer: ProducerSlot::default(),
            #[cfg(feature = "tls")]
            tls: tls::TlsSlot::default(),
        })
    }

    fn has(&self, flag: u16) -> bool {
        self.flags.get() & flag != 0
    }

    fn set(&self, flag: u16) {
        self.flags.set(self.flags.get() | flag);
    }

    fn clear(&self, flag: u16) {
        self.flags.set(self.flags.get() & !flag);
    }

    /// Wakes the connection's task, unless the event happened inside its own callback (the
    /// task looks at the flags when the callback returns).
    fn notify(&self) {
        if !self.has(IN_CALLBACK) {
            if let Some(s) = self.sock.borrow().as_ref() {
                s.wake();
            }
        }
    }

    /// Sends as much of the write buffer as the socket takes. Ok(true) when it is empty.
    fn flush(&self) -> io::Result<bool> {
        let sock = self.sock.borrow();
        let Some(sock) = sock.as_ref() else {
            return Ok(true);
        };
        let Some(mut buf) = self.wbuf.existing() else {
            return Ok(true);
        };
        while !buf.is_empty() {
            match sock.try_write(&buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if buf.capacity() > KEEP_WRITE_CAPACITY {
            drop(buf);
            self.wbuf.release();
        }
        Ok(true)
    }

    /// Calls into the protocol with panics contained; what it wrote is sent when it returns.
    fn call(&self, f: impl FnOnce()) -> Result<(), crate::error::PanicError> {
        self.set(IN_CALLBACK);
        let r = catch_unwind(AssertUnwindSafe(f));
        self.clear(IN_CALLBACK);
        // After a panic the connection closes; what the callback wrote is dropped with it.
        self.unstage(r.is_ok());
        r.map_err(|payload| crate::failure::panic_error(payload.as_ref()))
    }

    /// The address that marks this connection's bytes in the gathering buffer.
    fn stage_key(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    /// Gathers a write made in a callback in the thread's buffer; false when the buffer holds
    /// another connection's bytes (the caller buffers them itself then).
    fn stage(&self, data: &[u8]) -> bool {
        let key = self.stage_key();
        STAGED.with_borrow_mut(|s| {
            if !s.bytes.is_empty() && s.owner != key {
                return false;
            }
            s.owner = key;
            s.bytes.extend_from_slice(data);
            self.set(STAGED_WRITES);
            true
        })
    }

    /// How many bytes this connection has gathered.
    fn staged_len(&self) -> usize {
        if !self.has(STAGED_WRITES) {
            return 0;
        }
        let key = self.stage_key();
        STAGED.with_borrow(|s| if s.owner == key { s.bytes.len() } else { 0 })
    }

    /// Takes this connection's gathered bytes out of the thread's buffer: sent now (`send`),
    /// what the socket does not take kept in the connection's own buffer; or, without `send`,
    /// all moved to the connection's buffer (to keep them ahead of a write that does not go
    /// through the gathering buffer). Dropped if the connection was aborted or closed.
    fn unstage(&self, send: bool) {
        if !self.has(STAGED_WRITES) {
            return;
        }
        self.clear(STAGED_WRITES);
        let key = self.stage_key();
        STAGED.with_borrow_mut(|s| {
            if s.owner != key || s.bytes.is_empty() {
                return;
            }
            if !self.has(ABORT | CLOSED) {
                self.send_staged(&s.bytes, send);
            }
            s.bytes.clear();
            if s.bytes.capacity() > KEEP_STAGED_CAPACITY {
                s.bytes = Vec::new();
            }
        });
    }

    fn send_staged(&self, bytes: &[u8], send: bool) {
        if send && self.wbuf.is_empty() {
            self.send_or_keep(bytes);
        } else {
            self.wbuf.borrow_mut().extend_from_slice(bytes);
        }
    }

    /// Sends `data` at once; what the socket does not take is copied into `buf` (the
    /// connection's write buffer, empty on entry), and an error is kept for the engine. True
    /// when nothing is left to do: all of it went out, or the socket is closed.
    fn send_or_keep(&self, data: &[u8]) -> bool {
        let sock = self.sock.borrow();
        let Some(sock) = sock.as_ref() else {
            return true;
        };
        match sock.try_write(data) {
            Ok(n) if n == data.len() => return true,
            Ok(n) => self.wbuf.borrow_mut().extend_from_slice(&data[n..]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                self.wbuf.borrow_mut().extend_from_slice(data);
            }
            Err(e) => self.write_error.set(Some(e)),
        }
        false
    }

    /// Drives the connection until it ends.
    fn poll_drive<P: Protocol>(
        &self,
        cx: &mut Context<'_>,
        proto: &mut P,
        transport: &Transport,
    ) -> Poll<End> {
        let mut reads = 0;
        let mut producer_calls = 0;
        loop {
            if self.has(ABORT) {
                return Poll::Ready(End::Aborted);
            }
            if self.has(SHUTDOWN) {
                return Poll::Ready(End::Shutdown);
            }
            if let Some(e) = self.write_error.take() {
                return Poll::Ready(End::from_io(e));
            }
            if self.has(DRAIN) && !self.has(DRAINED) {
                self.set(DRAINED);
                if let Err(p) = self.call(|| proto.drain(transport)) {
                    return Poll::Ready(End::Panicked(p));
                }
            }
            // Write side.
            if !self.wbuf.is_empty() {
                match self.flush() {
                    Ok(true) => {}
                    Ok(false) => {
                        let ready = match self.sock.borrow().as_ref() {
                            Some(s) => s.poll_write_ready(cx),
                            None => Poll::Ready(Ok(())),
                        };
                        match ready {
                            Poll::Ready(Ok(())) => continue,
                            Poll::Ready(Err(e)) => return Poll::Ready(End::from_io(e)),
                            Poll::Pending => {}
                        }
                    }
                    Err(e) => return Poll::Ready(End::from_io(e)),
                }
            }
            if self.wbuf.is_empty() {
                if self.has(LOSE) {
                    return Poll::Ready(End::Done);
                }
                if self.has(SHUT_WRITE_REQUESTED) && !self.has(WRITE_SHUT) {
                    self.set(WRITE_SHUT);
                    if let Some(s) = self.sock.borrow().as_ref() {
                        if let Err(e) = s.shutdown_write() {
                            return Poll::Ready(End::from_io(e));
                        }
                    }
                }
                if self.has(WRITE_SHUT) && self.has(READ_CLOSED) {
                    return Poll::Ready(End::Done);
                }
            }
            // Flow control: pause, resume or pull the registered producer, now that the
            // buffer's size is known; then flush what it wrote.
            if self.producer.is_due(self.wbuf.len()) {
                if producer_calls < PRODUCER_CALLS_PER_POLL {
                    producer_calls += 1;
                    self.call_producer();
                    continue;
                }
                // Fair share used: come back after the other connections.
                self.wake_soon(cx);
            }
            // Read side.
            if self.has(READ_CLOSED | PAUSED | LOSE) {
                // Closing (as Twisted, stop reading once lose_connection is called) or paused.
                break;
            }
            if reads >= READS_PER_POLL {
                // Fair share used: let other connections run, then come back.
                self.wake_soon(cx);
                break;
            }
            reads += 1;
            match self.read_once(cx, proto, transport) {
                Ok(true) => {}
                Ok(false) => break,
                Err(end) => return Poll::Ready(end),
            }
        }
        if let Some(s) = self.sock.borrow().as_ref() {
            s.park(cx);
        }
        Poll::Pending
    }

    fn wake_soon(&self, cx: &mut Context<'_>) {
        if let Some(s) = self.sock.borrow().as_ref() {
            s.wake_soon(cx);
        }
    }

    /// One read into the shared buffer and one delivery to the protocol; `Ok(false)` when
    /// there was nothing to read (the task is registered for readiness then).
    fn read_once<P: Protocol>(
        &self,
        cx: &mut Context<'_>,
        proto: &mut P,
        transport: &Transport,
    ) -> Result<bool, End> {
        READ_BUF.with_borrow_mut(|buf| {
            if buf.len() < READ_BUF_SIZE {
                buf.resize(READ_BUF_SIZE, 0);
            }
            let n = {
                let mut sock = self.sock.borrow_mut();
                let Some(sock) = sock.as_mut() else {
                    return Err(End::Done);
                };
                match sock.poll_read(cx, buf) {
                    Poll::Pending => return Ok(false),
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(true)
                    }
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                        return Ok(true)
                    }
                    Poll::Ready(Err(e)) => return Err(End::from_io(e)),
                }
            };
            #[cfg(feature = "tls")]
            if let Some(r) = self.tls_received(&buf[..n], proto, transport) {
                return r.map(|()| true);
            }
            if n == 0 {
                self.set(READ_CLOSED);
                return self
                    .call(|| proto.read_connection_lost(transport))
                    .map(|()| true)
                    .map_err(End::Panicked);
            }
            self.call(|| proto.data_received(transport, &buf[..n]))
                .map(|()| true)
                .map_err(End::Panicked)
        })
    }

    /// Makes the call the producer is owed. A panic in it is logged and aborts the
    /// connection; the producer is dropped and not called again.
    fn call_producer(&self) {
        let Some((producer, due)) = self.producer.due(self.wbuf.len()) else {
            return;
        };
        let r = self.call(|| match due {
            Due::Pause => producer.pause_producing(),
            Due::Resume => producer.resume_producing(),
        });
        if let Err(p) = r {
            crate::log::error_event(format_args!(
                "producer for {} panicked in {} ({}); aborting that connection",
                self.addrs,
                if due == Due::Pause {
                    "pause_producing"
                } else {
                    "resume_producing"
                },
                p.message()
            ));
            self.producer.unregister();
            self.set(ABORT);
        }
    }

    /// The connection has ended: tells the registered producer to stop (Twisted does so
    /// before the protocol's `connectionLost`).
    fn stop_producer(&self) {
        let Some(producer) = self.producer.unregister() else {
            return;
        };
        if let Err(p) = self.call(|| producer.stop_producing()) {
            crate::log::error_event(format_args!(
                "producer for {} panicked in stop_producing ({})",
                self.addrs,
                p.message()
            ));
        }
    }

    fn close_socket(&self) {
        self.set(CLOSED);
        let sock = self.sock.borrow_mut().take();
        drop(sock);
        self.wbuf.release();
    }
}

impl<S: StreamSocket> TransportImpl for Conn<S> {
    fn write(&self, data: &[u8]) {
        if data.is_empty() || self.has(CLOSED | WRITE_SHUT | ABORT) {
            return;
        }
        if self.producer.wrote() {
            // A pull producer is owed a call once this is sent, even if it goes out at once.
            self.notify();
        }
        #[cfg(feature = "tls")]
        if self.tls_write(data) {
            // The ciphertext is in the write buffer: the watermarks apply to it.
            self.producer.note_buffered(self.wbuf.len());
            return;
        }
        let large = data.len() >= crate::transport::LARGE_WRITE;
        // A small write in a callback, with nothing of the connection's own waiting, is
        // gathered in the thread's buffer and sent when the callback returns.
        if !large && self.has(IN_CALLBACK) && self.wbuf.is_empty() && self.stage(data) {
            self.producer.note_buffered(self.staged_len());
            return;
        }
        // Anything else goes after what was gathered.
        self.unstage(false);
        if large && !self.wbuf.is_empty() {
            // Send what is buffered first, so that this write can follow it straight out.
            if let Err(e) = self.flush() {
                self.write_error.set(Some(e));
                self.notify();
                return;
            }
        }
        if self.wbuf.is_empty() && (!self.has(IN_CALLBACK) || large) {
            // Written from outside this connection's callbacks, or too large to gain from
            // being gathered with what the callback writes next: send at once.
            if self.send_or_keep(data) {
                return;
            }
        } else {
            self.wbuf.borrow_mut().extend_from_slice(data);
        }
        self.producer.note_buffered(self.wbuf.len());
        self.notify();
    }

    fn lose_connection(&self) {
        #[cfg(feature = "tls")]
        if self.tls_close(crate::tls::layer::PendingClose::Full) {
            return;
        }
        self.set(LOSE);
        self.notify();
    }

    fn abort_connection(&self) {
        self.set(ABORT);
        self.notify();
    }

    fn lose_write_connection(&self) {
        #[cfg(feature = "tls")]
        if self.tls_close(crate::tls::layer::PendingClose::Write) {
            return;
        }
        self.set(SHUT_WRITE_REQUESTED);
        self.notify();
    }

    fn get_peer(&self) -> Address {
        self.addrs.peer()
    }

    fn get_host(&self) -> Address {
        self.addrs.host()
    }

    fn buffered_size(&self) -> usize {
        self.wbuf.len() + self.staged_len()
    }

    fn is_connected(&self) -> bool {
        !self.has(CLOSED)
    }

    fn disconnecting(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls_closing() {
            return true;
        }
        self.has(CLOSED | LOSE | ABORT | SHUTDOWN)
    }

    fn request_drain(&self) {
        if !self.has(DRAIN | DRAINED | CLOSED) {
            self.set(DRAIN);
            self.notify();
        }
    }

    fn pause_producing(&self) {
        self.set(PAUSED);
    }

    fn resume_producing(&self) {
        if self.has(PAUSED) {
            self.clear(PAUSED);
            self.notify();
        }
    }

    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        if self.has(CLOSED | LOSE | ABORT | SHUTDOWN | WRITE_SHUT) {
            return Err(ProducerError::Disconnected);
        }
        self.producer.register(producer, streaming)?;
        // The task makes the first calls (a pull producer's first resume) after the current
        // callback returns, never from here.
        self.notify();
        Ok(())
    }

    fn unregister_producer(&self) {
        drop(self.producer.unregister());
    }

    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.producer.set_limits(high, low);
        self.notify();
    }

    fn write_buffer_limits(&self) -> (usize, usize) {
        self.producer.limits()
    }

    fn tcp(&self) -> Option<&dyn TcpOptions> {
        if S::TCP {
            Some(self)
        } else {
            None
        }
    }

    #[cfg(feature = "tls")]
    fn tls(&self) -> Option<&dyn TlsTransport> {
        Some(self)
    }

    fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.sock.borrow().as_ref()?.peer_credentials()
    }
}

impl<S: StreamSocket> TcpOptions for Conn<S> {
    fn set_no_delay(&self, enabled: bool) -> io::Result<()> {
        match self.sock.borrow().as_ref() {
            Some(s) => s.set_no_delay(enabled),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn no_delay(&self) -> io::Result<bool> {
        match self.sock.borrow().as_ref() {
            Some(s) => s.no_delay(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn set_keep_alive(&self, enabled: bool) -> io::Result<()> {
        match self.sock.borrow().as_ref() {
            Some(s) => s.set_keep_alive(enabled),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn keep_alive(&self) -> io::Result<bool> {
        match self.sock.borrow().as_ref() {
            Some(s) => s.keep_alive(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

#[cfg(feature = "tls")]
impl<S: StreamSocket> TlsTransport for Conn<S> {
    fn start_tls(&self, context: crate::tls::TlsContext) -> io::Result<()> {
        let layer = context
            .layer_for(&self.addrs.peer())
            .map_err(io::Error::other)?;
        self.install_tls(layer)
    }

    fn peer_certificate(&self) -> Option<Vec<u8>> {
        self.with_tls(|l| l.peer_certificate()).flatten()
    }

    fn negotiated_protocol(&self) -> Option<Vec<u8>> {
        self.with_tls(|l| l.negotiated_protocol()).flatten()
    }
}

impl<S: StreamSocket> Disconnect for Conn<S> {
    fn disconnect_for_shutdown(&self) {
        self.set(SHUTDOWN);
        if let Some(s) = self.sock.borrow().as_ref() {
            s.wake();
        }
    }
}

/// The protocol's type name for log lines, without the wrapper a listening port adds to
/// count its connections.
fn protocol_name<P>() -> &'static str {
    let name = std::any::type_name::<P>();
    name.strip_prefix("torsion::port::Tracked<")
        .and_then(|inner| inner.strip_suffix('>'))
        .unwrap_or(name)
}

/// Starts a server-side connection on the engine its socket uses; it then runs to its end on
/// its own.
pub(crate) fn start<S: StreamSocket, P: Protocol>(reactor: &Reactor, conn: Rc<Conn<S>>, proto: P) {
    let mut connection = run_connection(reactor, conn, proto, |_: &Transport| {});
    connection.report = false;
    S::start(reactor, connection);
}

/// Runs a connection from `connection_made` to `connection_lost`, and gives how it ended as
/// the [`Failure`] a client factory's `client_connection_lost` hears.
///
/// `on_made` runs after `connection_made` (a client connector keeps the transport there).
pub(crate) fn run_connection<S: StreamSocket, P: Protocol, M: FnOnce(&Transport)>(
    reactor: &Reactor,
    conn: Rc<Conn<S>>,
    proto: P,
    on_made: M,
) -> Connection<S, P, M> {
    Connection {
        reactor: reactor.clone(),
        conn,
        proto,
        on_made: Some(on_made),
        live_id: None,
        report: true,
    }
}

/// The future of one connection, written out by hand rather than as an `async fn`: it is
/// the body of every connection's task, so its size is paid per connection, and a compiler-
/// made state machine would hold the protocol twice (as an argument and as a local) and every
/// argument for the whole life of the connection. This one holds each thing once.
pub(crate) struct Connection<S: StreamSocket, P, M> {
    reactor: Reactor,
    conn: Rc<Conn<S>>,
    proto: P,
    /// Taken when the connection starts (`None`: started).
    on_made: Option<M>,
    /// The reactor's registration, for a socket the registry holds (`u32` keeps the engine,
    /// in every connection, 8 bytes smaller).
    live_id: Option<u32>,
    /// Whether the end is wanted as a `Failure` (a client factory hears it); a server
    /// connection's is not, and is not made.
    report: bool,
}

impl<S: StreamSocket, P, M> Connection<S, P, M> {
    /// Calls `f` with the connection's socket, unless it is closed.
    pub(crate) fn with_socket<R>(&self, f: impl FnOnce(&S) -> R) -> Option<R> {
        self.conn.sock.borrow().as_ref().map(f)
    }
}

// No field is ever pinned: the protocol is only reached through `&mut`.
impl<S: StreamSocket, P, M> Unpin for Connection<S, P, M> {}

impl<S: StreamSocket, P: Protocol, M: FnOnce(&Transport)> std::future::Future
    for Connection<S, P, M>
{
    type Output = Option<Failure>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Failure>> {
        let this = self.get_mut();
        let conn = &this.conn;
        let proto = &mut this.proto;
        // The handle the protocol is given: the connection itself, made for each turn rather
        // than kept (every idle connection would carry it).
        let transport = Transport::new(conn.clone());
        if let Some(on_made) = this.on_made.take() {
            if S::REGISTER_LIVE {
                let weak: std::rc::Weak<dyn Disconnect> = {
                    let w: std::rc::Weak<Conn<S>> = Rc::downgrade(conn);
                    w
                };
                let id = this.reactor.register_live(weak);
                this.live_id = Some(u32::try_from(id).expect("over 4 billion live connections"));
            }
            if let Err(p) = conn.call(|| proto.connection_made(&transport)) {
                let end = End::Panicked(p);
                return Poll::Ready(finish(
                    &this.reactor,
                    conn,
                    proto,
                    this.live_id,
                    end,
                    this.report,
                ));
            }
            on_made(&transport);
        }
        match conn.poll_drive(cx, proto, &transport) {
            Poll::Ready(end) => Poll::Ready(finish(
                &this.reactor,
                conn,
                proto,
                this.live_id,
                end,
                this.report,
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A connection's engine as a driver runs it: polled to its end, and reachable at shutdown.
pub(crate) trait Engine: Future<Output = Option<Failure>> + Unpin {
    /// The connection, to tell it the reactor is shutting down.
    fn shutdown_handle(&self) -> Rc<dyn Disconnect>;
}

impl<S: StreamSocket, P: Protocol, M: FnOnce(&Transport)> Engine for Connection<S, P, M> {
    fn shutdown_handle(&self) -> Rc<dyn Disconnect> {
        self.conn.clone()
    }
}

impl<S: StreamSocket, P, M> Drop for Connection<S, P, M> {
    /// Breaks the producer <-> transport reference cycle even if the connection's task is
    /// dropped before the connection ended.
    fn drop(&mut self) {
        drop(self.conn.producer.unregister());
    }
}

/// The end of a connection: the socket closed, the protocol told why; the end as a
/// `Failure` if `report`.
fn finish<S: StreamSocket, P: Protocol>(
    reactor: &Reactor,
    conn: &Rc<Conn<S>>,
    proto: &mut P,
    live_id: Option<u32>,
    end: End,
    report: bool,
) -> Option<Failure> {
    #[cfg(feature = "tls")]
    let end = conn.tls_end(end);
    if let End::Panicked(p) = &end {
        crate::log::error_event(format_args!(
            "protocol {} for {} panicked ({}); closing that connection",
            protocol_name::<P>(),
            conn.addrs,
            p.message()
        ));
    }
    conn.close_socket();
    conn.stop_producer();
    if let Some(id) = live_id {
        reactor.unregister_live(id as usize);
    }
    let reported = report.then(|| end.failure());
    if let Err(p) = conn.call(|| proto.connection_lost(end)) {
        crate::log::error_event(format_args!(
            "protocol {} for {} panicked in connection_lost ({})",
            protocol_name::<P>(),
            conn.addrs,
            p.message()
        ));
    }
    reported
}
