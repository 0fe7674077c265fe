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
//! Protocol methods are never re-entered: transport calls made inside a callback only move the
//! connection's [`Lifecycle`] on, and the engine acts on it after the callback returns.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};

use crate::engine::{Callbacks, Closing, Drain, Lifecycle, Reading, Writing};
use crate::producer::{Due, ProducerSlot};
use crate::protocol::{ConnectionEnd, Protocol};
use crate::reactor::{Disconnect, Reactor};
use crate::transport::{Address, Transport};
use crate::Failure;

mod socket;
#[cfg(feature = "tls")]
mod tls;
mod transport;

pub(crate) use socket::{poll_read_tokio, SocketIo, StreamSocket, Tasked};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use socket::{send_more, sendfile};

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
/// instead of a `BytesMut`. The send timeout's state lives with it, so a connection that
/// never blocks pays nothing for it.
#[derive(Default)]
struct WriteBuf(RefCell<Option<Box<WriteState>>>);

/// The buffer, the file segments queued after it, and the send timeout's state.
#[derive(Default)]
struct WriteState {
    /// What goes out first.
    buf: BytesMut,
    /// File segments ([`Transport::write_file`](crate::transport::TransportImpl::write_file))
    /// to send after `buf`, in order, each with the bytes written after it. Empty (and
    /// unallocated) unless a protocol sends files.
    files: VecDeque<QueuedFile>,
    /// When the writes last blocked with no progress since (reactor seconds); `None` after
    /// progress.
    stalled_since: Option<f64>,
    /// The pending send-timeout check, cancelled when the buffer goes.
    timer: Option<crate::reactor::DelayedCall>,
}

/// A file segment waiting to be sent by `sendfile(2)`, and what was written after it.
struct QueuedFile {
    file: Rc<std::fs::File>,
    /// Where the unsent part starts in the file.
    offset: u64,
    /// How many of its bytes are unsent.
    left: u64,
    /// The bytes written after the segment (and before the next one).
    after: BytesMut,
}

/// The most one `sendfile(2)` call is asked for (Linux's own ceiling per call).
const SENDFILE_MAX: usize = 0x7fff_f000;

impl WriteState {
    /// Unsent bytes: the buffer's, the segments' and the bytes after them.
    fn pending(&self) -> usize {
        let mut n = self.buf.len();
        for f in &self.files {
            let left = usize::try_from(f.left).unwrap_or(usize::MAX);
            n = n.saturating_add(left).saturating_add(f.after.len());
        }
        n
    }

    /// Unsent bytes held in memory (the segments' are in their files).
    fn held(&self) -> usize {
        self.buf.len() + self.files.iter().map(|f| f.after.len()).sum::<usize>()
    }

    /// Where the next write goes: after the last segment, or the buffer when there is none.
    fn tail(&mut self) -> &mut BytesMut {
        match self.files.back_mut() {
            Some(f) => &mut f.after,
            None => &mut self.buf,
        }
    }
}

impl Drop for WriteState {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            let _ = t.cancel();
        }
    }
}

impl WriteBuf {
    /// Unsent bytes, file segments' included.
    #[inline]
    fn len(&self) -> usize {
        self.0.borrow().as_ref().map_or(0, |b| {
            if b.files.is_empty() {
                b.buf.len()
            } else {
                b.pending()
            }
        })
    }

    /// Unsent bytes held in memory (what the write limit counts).
    #[inline]
    fn held(&self) -> usize {
        self.0.borrow().as_ref().map_or(0, |b| b.held())
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the next write goes (after everything queued), the buffer made now if there is
    /// none.
    fn borrow_mut(&self) -> std::cell::RefMut<'_, BytesMut> {
        std::cell::RefMut::map(self.0.borrow_mut(), |b| {
            b.get_or_insert_with(Box::default).tail()
        })
    }

    /// Queues a file segment after everything queued.
    fn push_file(&self, segment: crate::transport::FileSegment) {
        let mut b = self.0.borrow_mut();
        b.get_or_insert_with(Box::default)
            .files
            .push_back(QueuedFile {
                file: segment.file,
                offset: segment.offset,
                left: segment.len,
                after: BytesMut::new(),
            });
    }

    /// The buffer and its state, if there is one.
    fn state(&self) -> Option<std::cell::RefMut<'_, WriteState>> {
        std::cell::RefMut::filter_map(self.0.borrow_mut(), |b| b.as_deref_mut()).ok()
    }

    /// Frees the buffer.
    fn release(&self) {
        *self.0.borrow_mut() = None;
    }

    /// Frees a large drained buffer's memory; the state stays while a timer is pending.
    fn shrink(&self) {
        let mut b = self.0.borrow_mut();
        match b.as_deref_mut() {
            Some(w) if w.timer.is_some() => w.buf = BytesMut::new(),
            _ => *b = None,
        }
    }
}

/// One connection's shared state: the socket, the write buffer, and flags set by transport
/// calls. The connection's task and every `Transport` handle point here.
pub(crate) struct Conn<S> {
    sock: RefCell<Option<S>>,
    wbuf: WriteBuf,
    /// Where the connection is in its life ([`Lifecycle`]), and the guard around its
    /// callbacks.
    state: Cell<Lifecycle>,
    callbacks: Callbacks,
    /// Bytes written in the current callback wait in the thread's gathering buffer
    /// ([`STAGED`]), after everything in the connection's own write buffer.
    staged: Cell<bool>,
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
            state: Cell::new(Lifecycle::default()),
            callbacks: Callbacks::default(),
            staged: Cell::new(false),
            write_error: Cell::new(None),
            addrs: ConnAddrs::new(peer, host),
            producer: ProducerSlot::default(),
            #[cfg(feature = "tls")]
            tls: tls::TlsSlot::default(),
        })
    }

    /// The connection's lifecycle now.
    #[inline]
    pub(crate) fn state(&self) -> Lifecycle {
        self.state.get()
    }

    /// Moves the lifecycle on.
    #[inline]
    pub(crate) fn update(&self, f: impl FnOnce(Lifecycle) -> Lifecycle) {
        self.state.set(f(self.state.get()));
    }

    /// Wakes the connection's task, unless the event happened inside its own callback (the
    /// task looks at the flags when the callback returns).
    fn notify(&self) {
        if !self.callbacks.running() {
            if let Some(s) = self.sock.borrow().as_ref() {
                s.wake();
            }
        }
    }

    /// Sends as much of the write buffer, and of the file segments queued after it, as the
    /// socket takes. Ok(true) when all is sent.
    fn flush(&self) -> io::Result<bool> {
        let sock = self.sock.borrow();
        let Some(sock) = sock.as_ref() else {
            return Ok(true);
        };
        let Some(mut guard) = self.wbuf.state() else {
            return Ok(true);
        };
        let state = &mut *guard;
        loop {
            // Bytes before a file segment (a response head) go out in its first packet.
            let more = !state.files.is_empty();
            while !state.buf.is_empty() {
                let written = if more {
                    sock.try_write_more(&state.buf)
                } else {
                    sock.try_write(&state.buf)
                };
                match written {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        state.buf.advance(n);
                        // Progress: the send timeout starts again from the next block.
                        state.stalled_since = None;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            let Some(f) = state.files.front_mut() else {
                break;
            };
            while f.left > 0 {
                let want = usize::try_from(f.left).map_or(SENDFILE_MAX, |n| n.min(SENDFILE_MAX));
                match sock.send_file(&f.file, f.offset, want) {
                    Ok(0) => return Err(self.file_shrank(f.left)),
                    Ok(n) => {
                        f.offset += n as u64;
                        f.left -= n as u64;
                        state.stalled_since = None;
                        crate::transport::segment::count_file_bytes(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            // Sent: what was written after it goes next (the buffer is empty here).
            if let Some(done) = state.files.pop_front() {
                if !done.after.is_empty() {
                    state.buf = done.after;
                }
            }
        }
        // Drained: no check is needed until the writes block again.
        if let Some(t) = state.timer.take() {
            let _ = t.cancel();
        }
        if state.buf.capacity() > KEEP_WRITE_CAPACITY {
            drop(guard);
            self.wbuf.shrink();
        }
        Ok(true)
    }

    /// A file segment's file ended `left` bytes early: it shrank while it was sent. The peer
    /// was promised those bytes (a `Content-Length`, say), so the connection ends here; the
    /// error says why.
    #[cold]
    fn file_shrank(&self, left: u64) -> io::Error {
        tracing::warn!(
            target: "torsion",
            "a file being sent to {} ended {left} bytes before the segment did (it shrank \
             while it was sent); closing that connection",
            self.addrs
        );
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file shrank while it was being sent",
        )
    }

    /// Calls into the protocol with panics contained; what it wrote is sent when it returns.
    fn call(&self, f: impl FnOnce()) -> Result<(), crate::error::PanicError> {
        let r = self.callbacks.call(f);
        // A TLS connection's writes in the callback become records now, together.
        #[cfg(feature = "tls")]
        self.tls_seal(r.is_ok());
        // After a panic the connection closes; what the callback wrote is dropped with it.
        self.unstage(r.is_ok());
        r
    }

    /// The address that marks this connection's bytes in the gathering buffer.
    fn stage_key(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    /// Gathers a write made in a callback (its parts, in order) in the thread's buffer; false
    /// when the buffer holds another connection's bytes (the caller buffers them itself then).
    fn stage(&self, parts: impl transport::WriteParts) -> bool {
        let key = self.stage_key();
        STAGED.with_borrow_mut(|s| {
            if !s.bytes.is_empty() && s.owner != key {
                return false;
            }
            s.owner = key;
            parts.each(|data| s.bytes.extend_from_slice(data));
            self.staged.set(true);
            true
        })
    }

    /// How many bytes this connection has gathered.
    fn staged_len(&self) -> usize {
        if !self.staged.get() {
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
        if !self.staged.replace(false) {
            return;
        }
        let key = self.stage_key();
        STAGED.with_borrow_mut(|s| {
            if s.owner != key || s.bytes.is_empty() {
                return;
            }
            if !matches!(self.state().closing, Closing::Aborting | Closing::Closed) {
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
            let state = self.state();
            match state.closing {
                Closing::Aborting if self.producer.tripped() => {
                    return Poll::Ready(End::WriteLimit {
                        limit: self.producer.write_limit(),
                    })
                }
                Closing::Aborting => return Poll::Ready(End::Aborted),
                Closing::ShuttingDown => return Poll::Ready(End::Shutdown),
                _ => {}
            }
            if let Some(e) = self.write_error.take() {
                return Poll::Ready(End::from_io(e));
            }
            if state.drain == Drain::Requested {
                self.update(Lifecycle::drained);
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
                let state = self.state();
                if state.closing == Closing::Losing {
                    return Poll::Ready(End::Done);
                }
                if state.writing == Writing::ShutRequested {
                    self.update(Lifecycle::write_shut);
                    if let Some(s) = self.sock.borrow().as_ref() {
                        if let Err(e) = s.shutdown_write() {
                            return Poll::Ready(End::from_io(e));
                        }
                    }
                    if let Err(p) = self.call(|| proto.write_connection_lost(transport)) {
                        return Poll::Ready(End::Panicked(p));
                    }
                    // What it asked for (lose_connection) is decided on from the top.
                    continue;
                }
                let state = self.state();
                if state.writing == Writing::Shut && state.reading == Reading::Closed {
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
            if !self.state().reads() {
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
                self.update(Lifecycle::read_closed);
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
            self.update(Lifecycle::abort);
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
        self.update(Lifecycle::closed);
        let sock = self.sock.borrow_mut().take();
        drop(sock);
        self.wbuf.release();
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
pub(crate) fn start<S: StreamSocket, P: Protocol>(
    reactor: &Reactor,
    conn: Rc<Conn<S>>,
    proto: P,
    send_timeout: Option<std::time::Duration>,
) {
    let mut connection = run_connection(reactor, conn, proto, |_: &Transport| {});
    connection.report = false;
    connection.send_timeout_ms = send_timeout.map_or(0, |t| {
        u32::try_from(t.as_millis()).unwrap_or(u32::MAX).max(1)
    });
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
        send_timeout_ms: 0,
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
    /// The send timeout in milliseconds (0: none); a `u32` fits beside the fields above.
    send_timeout_ms: u32,
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
            Poll::Pending => {
                if this.send_timeout_ms != 0 {
                    watch_stalled_writes(&this.reactor, conn, this.send_timeout_ms);
                }
                Poll::Pending
            }
        }
    }
}

/// A connection that has just gone to sleep: if its writes are blocked, notes since when
/// (unless it already knows) and makes sure a check is pending. Nothing is done per write;
/// progress only clears the mark ([`Conn::flush`]).
fn watch_stalled_writes<S: StreamSocket>(reactor: &Reactor, conn: &Rc<Conn<S>>, timeout_ms: u32) {
    let Some(mut state) = conn.wbuf.state() else {
        return;
    };
    if state.pending() == 0 {
        return;
    }
    if state.stalled_since.is_none() {
        state.stalled_since = Some(reactor.seconds());
    }
    if state.timer.is_none() {
        let timeout = f64::from(timeout_ms) / 1000.0;
        state.timer = Some(send_timer(reactor, Rc::downgrade(conn), timeout, timeout));
    }
}

/// The send-timeout check, due in `delay` seconds: aborts the connection if its writes have
/// been blocked with no progress for `timeout` seconds, else checks again when they would
/// have been.
fn send_timer<S: StreamSocket>(
    reactor: &Reactor,
    conn: std::rc::Weak<Conn<S>>,
    delay: f64,
    timeout: f64,
) -> crate::reactor::DelayedCall {
    reactor.call_later(delay, move || {
        let Some(conn) = conn.upgrade() else {
            return;
        };
        let r = crate::reactor::reactor();
        let Some(mut state) = conn.wbuf.state() else {
            return;
        };
        state.timer = None;
        if state.pending() == 0 {
            state.stalled_since = None;
            return;
        }
        let now = r.seconds();
        let since = *state.stalled_since.get_or_insert(now);
        let left = since + timeout - now;
        if left > 0.0 {
            state.timer = Some(send_timer(&r, Rc::downgrade(&conn), left, timeout));
            return;
        }
        let pending = state.pending();
        drop(state);
        tracing::info!(
            target: "torsion",
            peer = %conn.addrs,
            "send timed out: {pending} bytes not taken by the peer for {timeout} s; aborting \
             that connection"
        );
        conn.update(Lifecycle::abort);
        conn.notify();
    })
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Every idle connection in the poller carries one: it must stay within the 96-byte heap
    /// chunk it has had (glibc rounds a request up to 16 bytes and adds 8), so idle memory per
    /// connection does not grow.
    #[test]
    fn an_idle_connections_state_fits_its_heap_chunk() {
        let size = std::mem::size_of::<Conn<crate::poller::PolledTcp>>();
        assert!(size <= 88, "Conn<PolledTcp> is {size} bytes");
    }
}
