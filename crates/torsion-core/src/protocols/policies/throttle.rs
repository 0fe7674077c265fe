//! `ThrottlingFactory`: limit the bytes per second read and written by all of a factory's
//! connections together (Twisted's `ThrottlingFactory` and `ThrottlingProtocol`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};

use bytes::{Buf, BytesMut};

use super::wrapper::{Next, ProtocolWrapper, Wrapped, Wrapper, Wrapping, WrappingFactory};
use crate::producer::{Producer, ProducerError};
use crate::protocol::Factory;
use crate::reactor::{reactor, DelayedCall, ReactorTime};
use crate::transport::Address;

/// How a connection is to be closed once its held-back writes are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Lose,
    LoseWrite,
}

/// A throttled connection's state: writes held back, and whether the protocol itself paused
/// reading.
#[derive(Debug, Default)]
pub struct ThrottledConnection {
    /// The wrapped protocol called `pause_producing` (a throttle lifted must not resume it).
    protocol_paused: Cell<bool>,
    /// Bytes written beyond the write limit, sent in the following seconds.
    held: RefCell<BytesMut>,
    /// `lose_connection` (or `lose_write_connection`) waiting for `held` to drain.
    close: Cell<Option<Close>>,
    /// The wrapped protocol's producer, as registered with the real transport.
    producer: RefCell<Option<Rc<ThrottledProducer>>>,
}

impl ThrottledConnection {
    /// How many written bytes are held back by the write limit.
    pub fn held_back(&self) -> usize {
        self.held.borrow().len()
    }

    /// Tells the registered producer (later, from a timer) whether writes are held back.
    fn throttle_producer(&self, held: bool, clock: &Rc<dyn ReactorTime>) {
        let producer = self.producer.borrow().clone();
        if let Some(p) = producer {
            p.throttled.set(held);
            p.schedule_sync(clock);
        }
    }
}

/// A producer registered through a throttled connection (Twisted's
/// `ThrottlingProtocol.registerProducer`): registered with the real transport, which pauses
/// it at its watermarks, and paused as well while the write limit holds writes back — each
/// reason on its own, so that neither undoes the other. A pull producer is not asked for
/// more while writes are held back; it is asked once they are sent.
struct ThrottledProducer {
    inner: Rc<dyn Producer>,
    streaming: bool,
    /// The real transport paused it.
    transport_paused: Cell<bool>,
    /// The write limit holds this connection's writes back.
    throttled: Cell<bool>,
    /// What `inner` last heard.
    delivered_paused: Cell<bool>,
    /// A pull producer was asked for more while throttled.
    pull_owed: Cell<bool>,
    detached: Cell<bool>,
    sync_scheduled: Cell<bool>,
    me: Weak<ThrottledProducer>,
}

impl ThrottledProducer {
    /// Makes the calls the throttle owes on a timer turn of its own, never from inside the
    /// write that changed the state.
    fn schedule_sync(&self, clock: &Rc<dyn ReactorTime>) {
        if self.sync_scheduled.replace(true) {
            return;
        }
        let me = self.me.clone();
        clock.call_later_boxed(
            0.0,
            Box::new(move || {
                if let Some(p) = me.upgrade() {
                    p.sync_scheduled.set(false);
                    p.sync();
                }
            }),
        );
    }

    fn sync(&self) {
        if self.detached.get() {
            return;
        }
        if self.streaming {
            let want = self.transport_paused.get() || self.throttled.get();
            if want != self.delivered_paused.replace(want) {
                if want {
                    self.inner.pause_producing();
                } else {
                    self.inner.resume_producing();
                }
            }
        } else if !self.throttled.get() && self.pull_owed.replace(false) {
            self.inner.resume_producing();
        }
    }
}

impl fmt::Debug for ThrottledProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottledProducer")
            .field("streaming", &self.streaming)
            .field("transport_paused", &self.transport_paused.get())
            .field("throttled", &self.throttled.get())
            .finish()
    }
}

impl Producer for ThrottledProducer {
    fn pause_producing(&self) {
        self.transport_paused.set(true);
        self.sync();
    }

    fn resume_producing(&self) {
        if self.streaming {
            self.transport_paused.set(false);
        } else {
            self.pull_owed.set(true);
        }
        self.sync();
    }

    fn stop_producing(&self) {
        if !self.detached.replace(true) {
            self.inner.stop_producing();
        }
    }
}

/// The [`Wrapper`] of a [`ThrottlingFactory`]: per-second byte counts shared by all its
/// connections, and the one timer that starts each new second.
pub struct ThrottlingPolicy {
    read_limit: Cell<Option<u64>>,
    write_limit: Cell<Option<u64>>,
    max_connection_count: Cell<usize>,
    connection_count: Cell<usize>,
    read_this_second: Cell<u64>,
    written_this_second: Cell<u64>,
    reads_throttled: Cell<bool>,
    /// Connections holding back writes.
    holding: Cell<usize>,
    clock: RefCell<Option<Rc<dyn ReactorTime>>>,
    tick: RefCell<Option<DelayedCall>>,
}

impl ThrottlingPolicy {
    fn clock(&self) -> Rc<dyn ReactorTime> {
        self.clock
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(reactor()))
            .clone()
    }

    fn ticking(&self) -> bool {
        self.tick.borrow().is_some()
    }

    /// Starts the per-second timer if it is not running.
    fn ensure_ticking(&self, conn: &Wrapped<Self>) {
        if self.ticking() {
            return;
        }
        let Some(wrapping) = conn.wrapping() else {
            return;
        };
        let weak: Weak<Wrapping<Self>> = Rc::downgrade(&wrapping);
        self.schedule_tick(weak);
    }

    fn schedule_tick(&self, weak: Weak<Wrapping<Self>>) {
        let call = self.clock().call_later_boxed(
            1.0,
            Box::new(move || {
                if let Some(wrapping) = weak.upgrade() {
                    ThrottlingPolicy::tick(&wrapping);
                }
            }),
        );
        *self.tick.borrow_mut() = Some(call);
    }

    /// A new second: the read count keeps only what exceeded the last second's limit (so
    /// the long-run rate is the limit, as Twisted's proportional pause), reading resumes
    /// when that is under the limit, and held-back writes are sent up to the write limit.
    fn tick(wrapping: &Rc<Wrapping<Self>>) {
        let this = wrapping.wrapper();
        this.tick.borrow_mut().take();
        match this.read_limit.get() {
            Some(limit) => {
                let carried = this.read_this_second.get().saturating_sub(limit);
                this.read_this_second.set(carried);
                if this.reads_throttled.get() && carried < limit {
                    this.unthrottle_reads(wrapping);
                }
            }
            None => {
                this.read_this_second.set(0);
                if this.reads_throttled.get() {
                    this.unthrottle_reads(wrapping);
                }
            }
        }
        this.written_this_second.set(0);
        if this.holding.get() > 0 {
            this.release_held(wrapping);
        }
        let busy = this.read_this_second.get() > 0
            || this.written_this_second.get() > 0
            || this.reads_throttled.get()
            || this.holding.get() > 0;
        if busy {
            this.schedule_tick(Rc::downgrade(wrapping));
        }
    }

    /// Pauses reading on every connection (Twisted's `throttleReads`).
    fn throttle_reads(&self, wrapping: &Wrapping<Self>) {
        self.reads_throttled.set(true);
        for conn in wrapping.protocols() {
            conn.transport().pause_producing();
        }
    }

    /// Resumes reading on every connection whose protocol has not paused it itself
    /// (Twisted's `unthrottleReads`).
    fn unthrottle_reads(&self, wrapping: &Wrapping<Self>) {
        self.reads_throttled.set(false);
        for conn in wrapping.protocols() {
            if !conn.state().protocol_paused.get() {
                conn.transport().resume_producing();
            }
        }
    }

    /// Bytes that may still be written this second.
    fn write_room(&self) -> usize {
        match self.write_limit.get() {
            Some(limit) => {
                let room = limit.saturating_sub(self.written_this_second.get());
                usize::try_from(room).unwrap_or(usize::MAX)
            }
            None => usize::MAX,
        }
    }

    fn count_written(&self, n: usize) {
        if self.write_limit.get().is_some() {
            let n = n as u64;
            self.written_this_second
                .set(self.written_this_second.get().saturating_add(n));
        }
    }

    /// Sends up to `max` held-back bytes of one connection; closes it if it asked to be
    /// closed and nothing is held any more. Returns how many bytes were sent.
    fn send_held(&self, conn: &Wrapped<Self>, max: usize) -> usize {
        let state = conn.state();
        let (n, drained) = {
            let mut held = state.held.borrow_mut();
            let n = held.len().min(max);
            if n > 0 {
                conn.transport().write(&held[..n]);
                held.advance(n);
            }
            if held.is_empty() && held.capacity() > 64 * 1024 {
                *held = BytesMut::new();
            }
            (n, held.is_empty())
        };
        self.count_written(n);
        if drained {
            self.holding.set(self.holding.get().saturating_sub(1));
            state.throttle_producer(false, &self.clock());
            match state.close.take() {
                Some(Close::Lose) => conn.transport().lose_connection(),
                Some(Close::LoseWrite) => conn.transport().lose_write_connection(),
                None => {}
            }
        }
        n
    }

    /// Shares this second's write budget among the connections holding writes back, in
    /// equal parts, until the budget or the held data runs out.
    fn release_held(&self, wrapping: &Wrapping<Self>) {
        let mut waiting: Vec<Rc<Wrapped<Self>>> = wrapping
            .protocols()
            .into_iter()
            .filter(|c| c.state().held_back() > 0)
            .collect();
        loop {
            let room = self.write_room();
            if waiting.is_empty() || room == 0 {
                break;
            }
            let share = (room / waiting.len()).max(1);
            for conn in &waiting {
                let room = self.write_room();
                if room == 0 {
                    break;
                }
                self.send_held(conn, share.min(room));
            }
            waiting.retain(|c| c.state().held_back() > 0);
        }
    }

    /// Writes what the limit allows now and holds back the rest.
    fn write_limited(&self, conn: &Wrapped<Self>, data: &[u8]) {
        let state = conn.state();
        let held_before = state.held_back() > 0;
        let n = if held_before {
            0 // keep the order: behind what is already held
        } else {
            self.write_room().min(data.len())
        };
        if n > 0 {
            self.count_written(n);
            conn.transport().write(&data[..n]);
        }
        if n < data.len() {
            state.held.borrow_mut().extend_from_slice(&data[n..]);
            if !held_before {
                self.holding.set(self.holding.get() + 1);
                state.throttle_producer(true, &self.clock());
            }
            self.ensure_ticking(conn);
        } else if n > 0 {
            self.ensure_ticking(conn);
        }
    }
}

impl fmt::Debug for ThrottlingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottlingPolicy")
            .field("read_limit", &self.read_limit.get())
            .field("write_limit", &self.write_limit.get())
            .field("max_connection_count", &self.max_connection_count.get())
            .field("connection_count", &self.connection_count.get())
            .field("read_this_second", &self.read_this_second.get())
            .field("written_this_second", &self.written_this_second.get())
            .field("reads_throttled", &self.reads_throttled.get())
            .finish()
    }
}

impl Wrapper for ThrottlingPolicy {
    type State = ThrottledConnection;

    fn admit(&self, addr: &Address) -> Option<ThrottledConnection> {
        let count = self.connection_count.get();
        if count >= self.max_connection_count.get() {
            tracing::debug!(target: "torsion", "max connection count reached; refusing {addr}");
            return None;
        }
        self.connection_count.set(count + 1);
        Some(ThrottledConnection::default())
    }

    fn release(&self, conn: &Wrapped<Self>) {
        self.connection_count
            .set(self.connection_count.get().saturating_sub(1));
        let state = conn.state();
        let mut held = state.held.borrow_mut();
        if !held.is_empty() {
            *held = BytesMut::new();
            self.holding.set(self.holding.get().saturating_sub(1));
        }
        state.close.set(None);
        drop(state.producer.borrow_mut().take());
    }

    fn connection_made(&self, conn: &Wrapped<Self>, mut next: Next<'_>) {
        if self.reads_throttled.get() {
            conn.transport().pause_producing();
        }
        next.connection_made();
    }

    fn data_received(&self, conn: &Wrapped<Self>, mut next: Next<'_>, data: &[u8]) {
        if let Some(limit) = self.read_limit.get() {
            let read = self
                .read_this_second
                .get()
                .saturating_add(data.len() as u64);
            self.read_this_second.set(read);
            if read > limit && !self.reads_throttled.get() {
                if let Some(wrapping) = conn.wrapping() {
                    self.throttle_reads(&wrapping);
                }
            }
            self.ensure_ticking(conn);
        }
        next.data_received(data);
    }

    fn write(&self, conn: &Wrapped<Self>, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.write_limit.get().is_none() && conn.state().held_back() == 0 {
            conn.transport().write(data);
        } else {
            self.write_limited(conn, data);
        }
    }

    fn write_sequence(&self, conn: &Wrapped<Self>, data: &[&[u8]]) {
        if self.write_limit.get().is_none() && conn.state().held_back() == 0 {
            conn.transport().write_sequence(data);
        } else {
            for chunk in data.iter().filter(|c| !c.is_empty()) {
                self.write_limited(conn, chunk);
            }
        }
    }

    fn lose_connection(&self, conn: &Wrapped<Self>) {
        if conn.state().held_back() > 0 {
            conn.state().close.set(Some(Close::Lose));
        } else {
            conn.transport().lose_connection();
        }
    }

    fn lose_write_connection(&self, conn: &Wrapped<Self>) {
        let state = conn.state();
        if state.held_back() > 0 {
            if state.close.get().is_none() {
                state.close.set(Some(Close::LoseWrite));
            }
        } else {
            conn.transport().lose_write_connection();
        }
    }

    fn abort_connection(&self, conn: &Wrapped<Self>) {
        let state = conn.state();
        state.close.set(None);
        let had = {
            let mut held = state.held.borrow_mut();
            let had = !held.is_empty();
            *held = BytesMut::new();
            had
        };
        if had {
            self.holding.set(self.holding.get().saturating_sub(1));
        }
        conn.transport().abort_connection();
    }

    fn pause_producing(&self, conn: &Wrapped<Self>) {
        conn.state().protocol_paused.set(true);
        conn.transport().pause_producing();
    }

    fn resume_producing(&self, conn: &Wrapped<Self>) {
        conn.state().protocol_paused.set(false);
        if !self.reads_throttled.get() {
            conn.transport().resume_producing();
        }
    }

    fn register_producer(
        &self,
        conn: &Wrapped<Self>,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        let state = conn.state();
        if state.producer.borrow().is_some() {
            return Err(ProducerError::AlreadyRegistered);
        }
        let adapter = Rc::new_cyclic(|me| ThrottledProducer {
            inner: producer,
            streaming,
            transport_paused: Cell::new(false),
            throttled: Cell::new(false),
            delivered_paused: Cell::new(false),
            pull_owed: Cell::new(false),
            detached: Cell::new(false),
            sync_scheduled: Cell::new(false),
            me: me.clone(),
        });
        conn.transport()
            .register_producer(adapter.clone(), streaming)?;
        *state.producer.borrow_mut() = Some(adapter);
        if state.held_back() > 0 {
            state.throttle_producer(true, &self.clock());
        }
        Ok(())
    }

    fn unregister_producer(&self, conn: &Wrapped<Self>) {
        let adapter = conn.state().producer.borrow_mut().take();
        if let Some(a) = adapter {
            a.detached.set(true);
            conn.transport().unregister_producer();
        }
    }

    fn buffered_size(&self, conn: &Wrapped<Self>) -> usize {
        conn.state().held_back() + conn.transport().buffered_size()
    }

    fn disconnecting(&self, conn: &Wrapped<Self>) -> bool {
        conn.state().close.get() == Some(Close::Lose) || conn.transport().disconnecting()
    }
}

/// The protocol a [`ThrottlingFactory`] makes (Twisted's `ThrottlingProtocol`).
pub type ThrottlingProtocol<P> = ProtocolWrapper<P, ThrottlingPolicy>;

/// Limits the bytes per second that all of a factory's connections read and write together,
/// and optionally how many connections are open at once (Twisted's `ThrottlingFactory`).
///
/// Bytes are counted per second, on one timer that runs while there is traffic (a
/// [`Clock`](crate::testing::Clock) in tests, see [`set_clock`](Self::set_clock)):
///
/// - **Reads**: once more than the read limit has arrived in the current second, every
///   connection is paused (`pause_producing`). Each new second takes the limit off the
///   count, and reading resumes when what is left is under the limit: a burst of twice the
///   limit pauses reading for about a second, as Twisted's pause of `read/limit - 1`
///   seconds. A connection the protocol paused itself stays paused.
/// - **Writes**: bytes past the write limit are held back by the wrapper, in order, and
///   sent in the following seconds, each second's budget shared equally among the waiting
///   connections. The wrapped protocol's `buffered_size` includes them; `lose_connection`
///   waits until they are sent, `abort_connection` drops them. A producer the wrapped
///   protocol registers (see [`producer`](crate::producer)) is paused while its writes are
///   held back and resumed once they are sent (a pull producer is not asked for more
///   meanwhile), on top of the transport's own watermarks — Twisted's `throttleWrites`.
///   Holding back still bounds protocols that write without a producer.
///
/// ```
/// use torsion::protocols::policies::ThrottlingFactory;
/// use torsion::{factory, testing::{Clock, StringTransport}};
/// use torsion::{transport::Address, Factory, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
/// }
///
/// let clock = Clock::new();
/// let f = ThrottlingFactory::new(factory(|| Echo));
/// f.set_read_limit(Some(100));
/// f.set_write_limit(Some(60));
/// f.set_clock(clock.clone());
/// let mut p = f.build_protocol(&Address::Named("peer".into())).unwrap();
/// let st = StringTransport::new();
/// p.connection_made(&st.transport());
/// p.data_received(&st.transport(), &[b'x'; 150]);
/// assert!(st.paused());                 // over the read limit
/// assert_eq!(st.value().len(), 60);     // the echo is held back past 60 bytes
/// clock.advance(1.0);
/// assert!(!st.paused());                // 50 carried over: under the limit
/// assert_eq!(st.value().len(), 120);
/// clock.advance(1.0);
/// assert_eq!(st.value().len(), 150);
/// ```
pub struct ThrottlingFactory<F> {
    inner: WrappingFactory<F, ThrottlingPolicy>,
}

impl<F: Factory> ThrottlingFactory<F> {
    /// Wraps `wrapped`, with no limits yet (set them with the setters).
    pub fn new(wrapped: F) -> ThrottlingFactory<F> {
        let policy = ThrottlingPolicy {
            read_limit: Cell::new(None),
            write_limit: Cell::new(None),
            max_connection_count: Cell::new(usize::MAX),
            connection_count: Cell::new(0),
            read_this_second: Cell::new(0),
            written_this_second: Cell::new(0),
            reads_throttled: Cell::new(false),
            holding: Cell::new(0),
            clock: RefCell::new(None),
            tick: RefCell::new(None),
        };
        ThrottlingFactory {
            inner: WrappingFactory::new(wrapped, policy),
        }
    }
}

impl<F> ThrottlingFactory<F> {
    fn policy(&self) -> &ThrottlingPolicy {
        self.inner.wrapper()
    }

    /// Counts seconds with `clock` (a test [`Clock`](crate::testing::Clock)) instead of the
    /// current reactor. Set it before traffic starts.
    pub fn set_clock(&self, clock: impl ReactorTime + 'static) {
        *self.policy().clock.borrow_mut() = Some(Rc::new(clock));
    }

    /// Sets the bytes read per second by all connections (Twisted's `readLimit`); `None`
    /// removes the limit (reading resumes at the next second).
    pub fn set_read_limit(&self, limit: Option<u64>) {
        self.policy().read_limit.set(limit);
    }

    /// The read limit, in bytes per second.
    pub fn read_limit(&self) -> Option<u64> {
        self.policy().read_limit.get()
    }

    /// Sets the bytes written per second by all connections (Twisted's `writeLimit`);
    /// `None` removes the limit (held-back bytes are sent at the next second).
    pub fn set_write_limit(&self, limit: Option<u64>) {
        self.policy().write_limit.set(limit);
    }

    /// The write limit, in bytes per second.
    pub fn write_limit(&self) -> Option<u64> {
        self.policy().write_limit.get()
    }

    /// Sets how many connections may be open at once (Twisted's `maxConnectionCount`); more
    /// are refused.
    pub fn set_max_connection_count(&self, max: usize) {
        self.policy().max_connection_count.set(max);
    }

    /// How many connections may be open at once.
    pub fn max_connection_count(&self) -> usize {
        self.policy().max_connection_count.get()
    }

    /// How many connections are open (Twisted's `connectionCount`).
    pub fn connection_count(&self) -> usize {
        self.policy().connection_count.get()
    }

    /// The bytes counted as read in the current second (with what the last seconds carried
    /// over past the limit); counted only while a read limit is set.
    pub fn read_this_second(&self) -> u64 {
        self.policy().read_this_second.get()
    }

    /// The bytes written in the current second; counted only while a write limit is set.
    pub fn written_this_second(&self) -> u64 {
        self.policy().written_this_second.get()
    }

    /// True while reading is paused for being over the read limit.
    pub fn reads_throttled(&self) -> bool {
        self.policy().reads_throttled.get()
    }

    /// True while the per-second timer is pending (it stops when traffic stops).
    pub fn is_ticking(&self) -> bool {
        self.policy().ticking()
    }
}

wrapping_newtype!(ThrottlingFactory, ThrottlingPolicy);

impl<F> fmt::Debug for ThrottlingFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottlingFactory")
            .field("policy", self.policy())
            .finish()
    }
}

impl Drop for ThrottlingPolicy {
    fn drop(&mut self) {
        // The factory and all its connections are gone: no second to count any more.
        if let Some(call) = self.tick.get_mut().take() {
            let _ = call.cancel();
        }
    }
}
