//! The reactor's own poller for accepted TCP connections: one epoll set, driven by one tokio
//! task, with every connection's state in a slab.
//!
//! Run as tokio tasks, each connection would cost a task cell (256 bytes, 128-byte aligned)
//! and a tokio registration (a 256-byte `ScheduledIo`) before any state of its own: a floor
//! of half a kilobyte per idle connection. Here a connection costs a slot in the slab (its
//! boxed engine future and its readiness) and nothing else: the epoll set itself is one
//! descriptor registered with tokio ([`AsyncFd`]), and when it is readable the driver takes
//! the ready connections from it and polls each one directly, as nginx's event loop does.
//!
//! Sockets are registered edge-triggered for reading and writing once, when the connection
//! starts, and leave the set when the engine closes them. A connection is polled when one of
//! its sockets' readiness events is one it waits for (it read or wrote until `EAGAIN`), when
//! a transport call from outside its callbacks wakes it, or after its fair share of a turn.
//!
//! No `unsafe`: epoll comes from rustix.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use socket2::SockRef;
use tokio::io::unix::AsyncFd;

use crate::protocol::Protocol;
use crate::reactor::Reactor;
use crate::reactor::{Disconnect, Driver};
use crate::stream::{Conn, Connection, Engine, SocketIo, StreamSocket};
use crate::transport::{Address, Transport};
use crate::util::Slab;

/// Readiness events taken from the epoll set per system call.
const EVENTS: usize = 256;
/// Rounds of events-then-connections per turn of the driver before it yields to the other
/// tasks of the reactor (timers, client connections, user tasks).
const ROUNDS_PER_TURN: usize = 4;

const READABLE: u8 = 1;
const WRITABLE: u8 = 1 << 1;
/// The peer closed its side (or the socket failed): reads no longer wait. Unlike
/// `READABLE` this is never cleared, so a short read before a pending end of stream does
/// not leave the connection waiting for an event that has already come.
const READ_CLOSED: u8 = 1 << 2;
/// The socket hung up or failed: writes no longer wait.
const WRITE_CLOSED: u8 = 1 << 3;

/// The readiness bits that let `what` proceed.
fn proceeds(what: u8) -> u8 {
    match what {
        READABLE => READABLE | READ_CLOSED,
        _ => WRITABLE | WRITE_CLOSED,
    }
}

/// One connection's engine, as the driver polls it.
type Task = Box<dyn Engine>;

struct Entry {
    /// The engine; `None` while the driver polls it.
    task: Option<Task>,
    /// Tells this connection's events from those of an earlier one in the same slot.
    generation: u32,
    /// What the socket is ready for, as far as the driver knows.
    ready: u8,
    /// What the engine waits for: it got `EAGAIN` (or `Pending`) for it.
    waiting: u8,
    /// In the run queue.
    queued: bool,
}

#[derive(Default)]
struct State {
    entries: Slab<Entry>,
    /// Connections to poll in the driver's next round.
    queue: Vec<u32>,
    generation: u32,
    /// The driver task, when it waits.
    driver: Option<Waker>,
    /// The driver is polling connections: a wake-up needs no waker.
    running: bool,
    /// The driver is gone (the reactor finished): no connection can start.
    closed: bool,
}

impl State {
    fn enqueue(&mut self, key: u32) {
        if let Some(e) = self.entries.get_mut(key as usize) {
            if !e.queued {
                e.queued = true;
                self.queue.push(key);
                if !self.running {
                    if let Some(w) = &self.driver {
                        w.wake_by_ref();
                    }
                }
            }
        }
    }
}

/// A reactor's poller: the epoll set and the connections in it.
pub(crate) struct Poller {
    epoll: AsyncFd<OwnedFd>,
    state: RefCell<State>,
}

impl Poller {
    /// The reactor's poller, started on first use; `None` when the reactor's event loop is
    /// gone.
    pub(crate) fn of(reactor: &Reactor) -> io::Result<Option<Rc<Poller>>> {
        if let Some(p) = reactor
            .driver()
            .and_then(|d| d.as_any().downcast::<Poller>().ok())
        {
            return Ok(Some(p));
        }
        let p = Poller::start(reactor)?;
        if let Some(p) = &p {
            let weak: std::rc::Weak<dyn Driver> = Rc::downgrade(p) as _;
            reactor.set_driver(weak);
        }
        Ok(p)
    }

    /// A new poller with its driver task spawned on `reactor`; `None` when the reactor's
    /// event loop is gone.
    pub(crate) fn start(reactor: &Reactor) -> io::Result<Option<Rc<Poller>>> {
        let fd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let Some(epoll) = reactor.with_context(|| watch(fd)) else {
            return Ok(None);
        };
        let poller = Rc::new(Poller {
            epoll: epoll?,
            state: RefCell::default(),
        });
        let driver = DriverTask {
            poller: poller.clone(),
            events: Vec::with_capacity(EVENTS),
            batch: Vec::new(),
        };
        Ok(reactor.spawn_task(driver).map(|_| poller))
    }

    /// Registers a new connection's socket for readiness and gives it a slot, whose key is
    /// stored in `key_of`; false when that fails (the connection is then dropped).
    fn register(&self, fd: impl AsFd, key_of: &Cell<u32>) -> bool {
        let mut st = self.state.borrow_mut();
        if st.closed {
            return false;
        }
        st.generation = st.generation.wrapping_add(1);
        let generation = st.generation;
        let key = st.entries.insert(Entry {
            task: None,
            generation,
            // The first poll tries both; EAGAIN says what to wait for.
            ready: READABLE | WRITABLE,
            waiting: 0,
            queued: false,
        });
        let Ok(key32) = u32::try_from(key) else {
            st.entries.remove(key);
            return false;
        };
        let data = epoll::EventData::new_u64(u64::from(generation) << 32 | u64::from(key32));
        let flags = epoll::EventFlags::IN
            | epoll::EventFlags::OUT
            | epoll::EventFlags::RDHUP
            | epoll::EventFlags::ET;
        if let Err(e) = epoll::add(self.epoll.get_ref(), fd, data, flags) {
            st.entries.remove(key);
            drop(st);
            crate::log::error_event(format_args!(
                "cannot register a connection for readiness: {e}; closing it"
            ));
            return false;
        }
        key_of.set(key32);
        true
    }

    /// How many connections the poller runs (the reactor's `open_handles` counts them).
    pub(crate) fn connections(&self) -> usize {
        self.state.borrow().entries.len()
    }

    /// Tells every connection the reactor is shutting down (the reactor's registry does not
    /// hold them: one registry per connection is enough).
    pub(crate) fn disconnect_all(&self) {
        let handles: Vec<Rc<dyn Disconnect>> = {
            let st = self.state.borrow();
            st.entries
                .iter()
                .filter_map(|e| e.task.as_ref().map(|t| t.shutdown_handle()))
                .collect()
        };
        for h in handles {
            h.disconnect_for_shutdown();
        }
    }

    /// Puts a registered connection's engine in its slot and queues its first poll.
    fn attach(&self, key: u32, task: Task) {
        let mut st = self.state.borrow_mut();
        let Some(e) = st.entries.get_mut(key as usize) else {
            return;
        };
        e.task = Some(task);
        st.enqueue(key);
    }

    fn enqueue(&self, key: u32) {
        self.state.borrow_mut().enqueue(key);
    }

    /// Whether the socket in slot `key` is ready for `what`; when not, the connection is
    /// polled again once it is.
    fn check(&self, key: u32, what: u8) -> bool {
        let mut st = self.state.borrow_mut();
        match st.entries.get_mut(key as usize) {
            Some(e) if e.ready & proceeds(what) != 0 => true,
            Some(e) => {
                e.waiting |= what;
                false
            }
            None => false,
        }
    }

    /// Reads from the socket in slot `key` if it is ready (one look at the slot, the hot
    /// path's). A short read empties the socket as surely as `EAGAIN` does: either way the
    /// connection waits for the next event rather than make a read that would only return
    /// `EAGAIN` (data that arrives after this read raises a new edge).
    fn read(
        &self,
        key: u32,
        sock: &std::net::TcpStream,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.state.borrow_mut();
        let Some(e) = st.entries.get_mut(key as usize) else {
            return Poll::Pending;
        };
        if e.ready & proceeds(READABLE) == 0 {
            e.waiting |= READABLE;
            return Poll::Pending;
        }
        let r = (&*sock).read(buf);
        let drained = match &r {
            Ok(n) => *n < buf.len(),
            Err(err) => err.kind() == io::ErrorKind::WouldBlock,
        };
        if drained {
            e.ready &= !READABLE;
            e.waiting |= READABLE;
        }
        match r {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            r => Poll::Ready(r),
        }
    }

    /// The socket in slot `key` returned `EAGAIN` for `what`: wait for its next event.
    fn exhausted(&self, key: u32, what: u8) {
        if let Some(e) = self.state.borrow_mut().entries.get_mut(key as usize) {
            e.ready &= !what;
            e.waiting |= what;
        }
    }

    /// Takes what the epoll set holds now (without waiting) into `events` and marks it; how
    /// many events.
    fn take_events(&self, events: &mut Vec<epoll::Event>) -> rustix::io::Result<usize> {
        events.clear();
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let n = epoll::wait(self.epoll.get_ref(), spare_capacity(events), Some(&zero))?;
        self.mark(events);
        Ok(n)
    }

    /// Applies a batch of readiness events: each connection that waited for what its socket
    /// became ready for is queued.
    fn mark(&self, events: &[epoll::Event]) {
        let mut st = self.state.borrow_mut();
        for ev in events {
            let data = ev.data.u64();
            let (key, generation) = (data as u32, (data >> 32) as u32);
            let flags = ev.flags;
            let mut bits = 0;
            if flags.intersects(epoll::EventFlags::IN | epoll::EventFlags::PRI) {
                bits |= READABLE;
            }
            if flags.contains(epoll::EventFlags::OUT) {
                bits |= WRITABLE;
            }
            if flags.intersects(
                epoll::EventFlags::RDHUP | epoll::EventFlags::HUP | epoll::EventFlags::ERR,
            ) {
                bits |= READABLE | READ_CLOSED;
            }
            if flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR) {
                bits |= WRITABLE | WRITE_CLOSED;
            }
            let Some(e) = st.entries.get_mut(key as usize) else {
                continue;
            };
            if e.generation != generation {
                continue;
            }
            e.ready |= bits;
            if e.waiting & bits != 0 {
                e.waiting &= !bits;
                st.enqueue(key);
            }
        }
    }

    /// Polls the connection in slot `key` once; removes it when it has ended.
    fn run(&self, key: u32, cx: &mut Context<'_>) {
        let task = {
            let mut st = self.state.borrow_mut();
            match st.entries.get_mut(key as usize) {
                Some(e) => {
                    e.queued = false;
                    e.task.take()
                }
                None => None,
            }
        };
        let Some(mut task) = task else { return };
        // The engine contains the protocol's panics; this catches the engine's own, so that
        // one connection's bug cannot take the others with it.
        let done = match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut task).poll(cx))) {
            Ok(p) => p.is_ready(),
            Err(payload) => {
                crate::log::error_event(format_args!(
                    "a connection's engine panicked ({}); dropping that connection",
                    crate::failure::panic_error(payload.as_ref()).message()
                ));
                true
            }
        };
        let mut st = self.state.borrow_mut();
        if done {
            st.entries.remove(key as usize);
            drop(st);
            // Dropped with no borrow held (the protocol's drop may start new connections),
            // and with a panic in it contained, as a task's would be.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(task))) {
                crate::log::error_event(format_args!(
                    "dropping a finished connection panicked ({})",
                    crate::failure::panic_error(payload.as_ref()).message()
                ));
            }
        } else if let Some(e) = st.entries.get_mut(key as usize) {
            e.task = Some(task);
        }
    }
}

/// Registers a descriptor that this value owns with tokio's event loop.
///
/// tokio 1.54 deprecated `AsyncFd::new` for `AsyncFd::register`, which is `unsafe` because an
/// arbitrary `AsRawFd` type could hand out a different descriptor later, or close it while
/// registered. Both types used here own their descriptor and always return it: that
/// requirement holds by construction, and this crate forbids `unsafe`, so the safe
/// (deprecated) constructor is used, for these two types only.
trait Owned: std::os::fd::AsRawFd {}
impl Owned for OwnedFd {}
impl Owned for std::net::TcpListener {}

#[allow(deprecated)]
fn watch<T: Owned>(fd: T) -> io::Result<AsyncFd<T>> {
    AsyncFd::new(fd)
}

/// The poller's task: takes readiness events from the epoll set and polls the connections
/// that are due.
struct DriverTask {
    poller: Rc<Poller>,
    events: Vec<epoll::Event>,
    /// The queue being worked through (swapped with the poller's, to keep both allocations).
    batch: Vec<u32>,
}

impl DriverTask {
    /// Takes what the epoll set holds and marks it. True when the set may hold more than was
    /// taken (the driver must come back); otherwise tokio will wake the driver when the set
    /// becomes readable again. With `speculate`, the set is asked first whatever tokio last
    /// saw of it: events that came while the last round ran are taken without a trip through
    /// tokio's event loop (which would make its own epoll_wait first).
    fn harvest(&mut self, cx: &mut Context<'_>, speculate: bool) -> bool {
        let poller = &*self.poller;
        if speculate {
            if let Ok(n @ 1..) = poller.take_events(&mut self.events) {
                return n == EVENTS;
            }
        }
        loop {
            let mut guard = match poller.epoll.poll_read_ready(cx) {
                Poll::Pending => return false,
                Poll::Ready(Ok(guard)) => guard,
                Poll::Ready(Err(e)) => {
                    crate::log::error_event(format_args!("epoll readiness failed: {e}"));
                    return false;
                }
            };
            match poller.take_events(&mut self.events) {
                Ok(EVENTS) => return true,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => crate::log::error_event(format_args!("epoll_wait failed: {e}")),
            }
            // Drained: clear the readiness and ask again, which registers this task for
            // the next event (a later event raises a new edge on the epoll descriptor).
            guard.clear_ready();
        }
    }
}

impl Future for DriverTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // While the driver runs, connections queued (by events or by each other) need no
        // wake-up: the next round takes them.
        this.poller.state.borrow_mut().running = true;
        // After a round that served several connections, more events have likely come
        // meanwhile: the next round asks the epoll set at once instead of going through
        // tokio's loop (which would make an epoll_wait of its own first). After a round of
        // one connection (a lone client, say) that would mostly be a wasted system call.
        let mut busy = false;
        for _ in 0..ROUNDS_PER_TURN {
            let more = this.harvest(cx, busy);
            let poller = &*this.poller;
            {
                let mut st = poller.state.borrow_mut();
                std::mem::swap(&mut st.queue, &mut this.batch);
                if this.batch.is_empty() && !more {
                    st.running = false;
                    match &st.driver {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => st.driver = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
            }
            for &key in &this.batch {
                poller.run(key, cx);
            }
            busy = this.batch.len() > 1;
            this.batch.clear();
        }
        // Fair share used: the other tasks run, then this one again.
        this.poller.state.borrow_mut().running = false;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for DriverTask {
    /// The reactor has finished: every connection still in the set is dropped (its socket
    /// closed, its protocol dropped), as its task would be.
    fn drop(&mut self) {
        let tasks: Vec<Entry> = {
            let mut st = self.poller.state.borrow_mut();
            st.closed = true;
            st.queue.clear();
            st.driver = None;
            st.entries.drain()
        };
        drop(tasks);
    }
}

/// An accepted TCP socket in the reactor's poller.
pub(crate) struct PolledTcp {
    sock: std::net::TcpStream,
    /// The connection's slot in the poller, once it has started.
    key: Cell<u32>,
    poller: Rc<Poller>,
}

impl PolledTcp {
    fn poll_ready(&self, what: u8) -> Poll<io::Result<()>> {
        if self.poller.check(self.key.get(), what) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn would_block<T>(&self, what: u8, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r {
            if e.kind() == io::ErrorKind::WouldBlock {
                self.poller.exhausted(self.key.get(), what);
            }
        }
        r
    }
}

impl SocketIo for PolledTcp {
    const TCP: bool = true;
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(READABLE)
    }

    fn poll_write_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(WRITABLE)
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.would_block(READABLE, (&self.sock).read(buf))
    }

    fn poll_read(&mut self, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poller.read(self.key.get(), &self.sock, buf)
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.would_block(WRITABLE, (&self.sock).write(buf))
    }

    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.would_block(WRITABLE, (&self.sock).write_vectored(bufs))
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn try_write_more(&self, buf: &[u8]) -> io::Result<usize> {
        let r = crate::stream::send_more(&self.sock, buf);
        self.would_block(WRITABLE, r)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    const SENDS_FILES: bool = true;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn send_file(&self, file: &std::fs::File, offset: u64, len: usize) -> io::Result<usize> {
        let r = crate::stream::sendfile(&self.sock, file, offset, len);
        self.would_block(WRITABLE, r)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.sock.shutdown(std::net::Shutdown::Write)
    }

    fn set_no_delay(&self, on: bool) -> io::Result<()> {
        self.sock.set_nodelay(on)
    }

    fn no_delay(&self) -> io::Result<bool> {
        self.sock.nodelay()
    }

    fn set_keep_alive(&self, on: bool) -> io::Result<()> {
        SockRef::from(&self.sock).set_keepalive(on)
    }

    fn keep_alive(&self) -> io::Result<bool> {
        SockRef::from(&self.sock).keepalive()
    }
}

impl StreamSocket for PolledTcp {
    const REGISTER_LIVE: bool = false;

    fn park(&self, _cx: &mut Context<'_>) {}

    fn wake(&self) {
        self.poller.enqueue(self.key.get());
    }

    fn wake_soon(&self, _cx: &mut Context<'_>) {
        self.wake();
    }

    fn start<P: Protocol, M: FnOnce(&Transport) + 'static>(
        _reactor: &Reactor,
        connection: Connection<Self, P, M>,
    ) {
        let registered = connection.with_socket(|s| {
            s.poller
                .register(s.sock.as_fd(), &s.key)
                .then(|| (s.poller.clone(), s.key.get()))
        });
        // Otherwise the connection is dropped here, its socket closed.
        if let Some((poller, key)) = registered.flatten() {
            poller.attach(key, Box::new(connection));
        }
    }
}

/// A listening TCP socket whose connections run in the reactor's poller.
pub(crate) struct PolledListener {
    io: AsyncFd<std::net::TcpListener>,
    poller: RefCell<Option<Rc<Poller>>>,
    reactor: Reactor,
}

impl PolledListener {
    /// Takes a bound, listening, non-blocking socket; must run inside the reactor's context.
    pub(crate) fn new(reactor: &Reactor, listener: std::net::TcpListener) -> io::Result<Self> {
        Ok(PolledListener {
            io: watch(listener)?,
            poller: RefCell::new(None),
            reactor: reactor.clone(),
        })
    }

    pub(crate) fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.io.get_ref().local_addr()
    }

    fn poller(&self) -> io::Result<Rc<Poller>> {
        if let Some(p) = self.poller.borrow().as_ref() {
            return Ok(p.clone());
        }
        let p = Poller::of(&self.reactor)?
            .ok_or_else(|| io::Error::other("the reactor has finished"))?;
        *self.poller.borrow_mut() = Some(p.clone());
        Ok(p)
    }
}

impl Driver for Poller {
    fn disconnect_all(&self) {
        Poller::disconnect_all(self);
    }

    fn connections(&self) -> usize {
        Poller::connections(self)
    }

    fn as_any(self: Rc<Self>) -> Rc<dyn std::any::Any> {
        self
    }
}

impl crate::port::Acceptor for PolledListener {
    type Stream = PolledTcp;

    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<crate::port::Accepted<PolledTcp>>> {
        loop {
            let mut guard = std::task::ready!(self.io.poll_read_ready(cx))?;
            let (sock, peer) = match self.io.get_ref().accept() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) => return Poll::Ready(Err(e)),
            };
            sock.set_nonblocking(true)?;
            let _ = sock.set_nodelay(true);
            // This end's address is the accepted socket's (127.0.0.1 for a loopback client of
            // a port bound to 0.0.0.0), as Twisted's getHost.
            let host = sock.local_addr().or_else(|_| self.local_addr())?;
            let sock = PolledTcp {
                sock,
                key: Cell::new(u32::MAX),
                poller: self.poller()?,
            };
            return Poll::Ready(Ok((sock, Address::Tcp(peer), Address::Tcp(host))));
        }
    }

    fn serve<P: Protocol>(
        reactor: &Reactor,
        stream: PolledTcp,
        peer: Address,
        host: Address,
        proto: P,
        send_timeout: Option<std::time::Duration>,
    ) {
        crate::stream::start(reactor, Conn::new(stream, peer, host), proto, send_timeout);
    }
}
