//! Producers and consumers: flow control between code that makes bytes and the transports
//! that send them (Twisted's `IProducer`, `IPushProducer`, `IPullProducer` and `IConsumer`).
//!
//! A transport is a *consumer*: it takes bytes with `write`. Something that makes a lot of
//! bytes (a file, a proxied connection, a generated response) is a [`Producer`], registered
//! with the transport by [`register_producer`](crate::transport::TransportImpl::register_producer):
//!
//! - A **streaming** (push) producer writes whenever it likes. When the transport's write
//!   buffer passes its *high watermark* the transport calls
//!   [`pause_producing`](Producer::pause_producing); when the buffer drains to the *low
//!   watermark* it calls [`resume_producing`](Producer::resume_producing). A server that
//!   writes faster than its client reads pauses instead of buffering without bound. A write
//!   that crosses the high watermark always earns a pause (and then a resume), even if the
//!   socket drains the buffer before the call is made.
//! - A **pull** producer writes only when asked: the transport calls `resume_producing` once
//!   at registration and again each time its write buffer is empty after a write. Each call
//!   should write one chunk (or finish, and unregister).
//! - When the connection ends, the registered producer gets
//!   [`stop_producing`](Producer::stop_producing), before the protocol's `connection_lost`.
//!
//! The watermarks default to [`DEFAULT_HIGH_WATER`] and [`DEFAULT_LOW_WATER`] and are set per
//! transport with
//! [`set_write_buffer_limits`](crate::transport::TransportImpl::set_write_buffer_limits).
//! Pausing a producer is how a transport slows a writer that can slow down; for writes that
//! nothing can slow down (a broadcast to a peer that never reads), a
//! [write limit](crate::transport::TransportImpl::set_write_limit) caps the buffer instead,
//! by disconnecting the peer or dropping the writes.
//!
//! **Calls are never re-entrant.** A transport never calls its producer from inside `write`
//! or from inside another callback of the same connection: the call is made by the
//! connection's task once the current callback has returned, as protocol events are. So a
//! producer may keep `RefCell` state borrowed while it writes, and a protocol may register
//! (an `Rc` of) itself. The flip side: a streaming producer learns that it must pause only
//! after the write that filled the buffer returns, so it should write a chunk at a time
//! (one per reactor turn, or one per resume), not loop until paused.
//!
//! A pull producer that sends a few chunks to a [`StringTransport`](crate::testing::StringTransport),
//! driven by hand as a test would:
//!
//! ```
//! use std::{cell::Cell, rc::Rc};
//! use torsion::producer::Producer;
//! use torsion::{testing::StringTransport, Transport};
//!
//! struct Countdown { t: Transport, left: Cell<u32> }
//!
//! impl Producer for Countdown {
//!     fn resume_producing(&self) {
//!         match self.left.get() {
//!             0 => self.t.unregister_producer(),
//!             n => { self.t.write(format!("{n}..").as_bytes()); self.left.set(n - 1); }
//!         }
//!     }
//!     fn stop_producing(&self) { self.left.set(0) }
//! }
//!
//! let st = StringTransport::new();
//! let p = Rc::new(Countdown { t: st.transport(), left: Cell::new(3) });
//! st.transport().register_producer(p, false).unwrap();
//! while let Some(p) = st.producer() {
//!     p.resume_producing();
//! }
//! assert_eq!(st.value(), b"3..2..1..");
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use crate::transport::Transport;
pub use crate::transport::{Producer, ProducerError, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER};
use crate::transport::{WriteLimit, WritePolicy};

/// A transport is itself a producer of the bytes it receives, so one connection can be
/// registered as the producer for another (a proxy): pausing it stops reading, stopping it
/// closes it (as Twisted's transports).
impl Producer for Transport {
    fn pause_producing(&self) {
        (**self).pause_producing();
    }

    fn resume_producing(&self) {
        (**self).resume_producing();
    }

    fn stop_producing(&self) {
        self.lose_connection();
    }
}

/// What a consumer owes its producer next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    Pause,
    Resume,
}

/// A consumer's side of flow control: the registered producer, its kind, and the
/// watermarks. Transports keep one and ask it what is [due](ProducerSlot::due) whenever the
/// size of their write buffer may have changed, outside their callbacks.
///
/// Made on first use (a producer registered or limits set): until then a slot is one null
/// pointer, which every connection carries, and the checks on the write path are one test.
#[derive(Default)]
pub(crate) struct ProducerSlot(std::cell::OnceCell<Box<SlotState>>);

struct SlotState {
    producer: RefCell<Option<Rc<dyn Producer>>>,
    streaming: Cell<bool>,
    /// The streaming producer was paused by the watermark and not yet resumed.
    paused: Cell<bool>,
    /// The pull producer is owed a `resume_producing` once the buffer is empty.
    pull_due: Cell<bool>,
    /// A write took the buffer over the high watermark: the streaming producer is owed a
    /// pause even if the buffer drains before the consumer gets to make the call.
    pause_owed: Cell<bool>,
    high: Cell<usize>,
    low: Cell<usize>,
    /// The write limit (`usize::MAX`: none) and its policy.
    limit: Cell<usize>,
    policy: Cell<WritePolicy>,
    /// Bytes `WritePolicy::DropWrites` discarded.
    dropped: Cell<u64>,
    /// A write was dropped (the warning is logged at the first).
    dropping: Cell<bool>,
    /// The limit aborted the connection.
    tripped: Cell<bool>,
}

impl Default for SlotState {
    fn default() -> Self {
        SlotState {
            producer: RefCell::new(None),
            streaming: Cell::new(false),
            paused: Cell::new(false),
            pull_due: Cell::new(false),
            pause_owed: Cell::new(false),
            high: Cell::new(DEFAULT_HIGH_WATER),
            low: Cell::new(DEFAULT_LOW_WATER),
            limit: Cell::new(usize::MAX),
            policy: Cell::new(WritePolicy::Disconnect),
            dropped: Cell::new(0),
            dropping: Cell::new(false),
            tripped: Cell::new(false),
        }
    }
}

impl ProducerSlot {
    fn state(&self) -> &SlotState {
        self.0.get_or_init(Box::default)
    }

    /// The state, if a producer is registered.
    fn registered(&self) -> Option<&SlotState> {
        self.0
            .get()
            .map(|s| &**s)
            .filter(|s| s.producer.borrow().is_some())
    }

    pub(crate) fn register(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        let st = self.state();
        let mut slot = st.producer.borrow_mut();
        if slot.is_some() {
            return Err(ProducerError::AlreadyRegistered);
        }
        *slot = Some(producer);
        st.streaming.set(streaming);
        st.paused.set(false);
        st.pause_owed.set(false);
        // A pull producer is asked for its first chunk at once (Twisted does the same).
        st.pull_due.set(!streaming);
        Ok(())
    }

    /// Forgets the producer, without telling it.
    pub(crate) fn unregister(&self) -> Option<Rc<dyn Producer>> {
        let st = self.0.get()?;
        st.paused.set(false);
        st.pause_owed.set(false);
        st.pull_due.set(false);
        st.producer.borrow_mut().take()
    }

    /// The registered producer.
    pub(crate) fn producer(&self) -> Option<Rc<dyn Producer>> {
        self.0.get()?.producer.borrow().clone()
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.registered().is_some()
    }

    pub(crate) fn streaming(&self) -> bool {
        self.0.get().is_some_and(|s| s.streaming.get())
    }

    /// True while the watermark keeps the streaming producer paused.
    pub(crate) fn paused(&self) -> bool {
        self.0.get().is_some_and(|s| s.paused.get())
    }

    /// Notes a write. True when a pull producer is registered: it is owed a call once the
    /// buffer is empty, so the consumer should look even if the write went straight out.
    pub(crate) fn wrote(&self) -> bool {
        match self.registered() {
            Some(st) if !st.streaming.get() => {
                st.pull_due.set(true);
                true
            }
            _ => false,
        }
    }

    /// Notes the buffer's size after a write: past the high watermark, a streaming producer
    /// is owed a pause (then a resume at the low watermark), however fast the buffer drains.
    pub(crate) fn note_buffered(&self, buffered: usize) {
        let Some(st) = self.0.get() else { return };
        if buffered > st.high.get() && st.streaming.get() && !st.paused.get() {
            st.pause_owed.set(st.producer.borrow().is_some());
        }
    }

    pub(crate) fn set_limits(&self, high: usize, low: usize) {
        let st = self.state();
        st.high.set(high);
        st.low.set(low.min(high));
    }

    pub(crate) fn limits(&self) -> (usize, usize) {
        match self.0.get() {
            Some(st) => (st.high.get(), st.low.get()),
            None => (DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER),
        }
    }

    /// The write limit in bytes, `usize::MAX` when there is none: one load on the write
    /// path (a null test when the slot was never made).
    #[inline]
    pub(crate) fn write_limit(&self) -> usize {
        self.0.get().map_or(usize::MAX, |s| s.limit.get())
    }

    pub(crate) fn set_write_limit(&self, limit: Option<WriteLimit>) {
        match limit {
            Some(l) => {
                let st = self.state();
                st.limit.set(l.bytes);
                st.policy.set(l.policy);
            }
            None => {
                if let Some(st) = self.0.get() {
                    st.limit.set(usize::MAX);
                }
            }
        }
    }

    pub(crate) fn write_limit_setting(&self) -> Option<WriteLimit> {
        let st = self.0.get()?;
        (st.limit.get() != usize::MAX).then(|| WriteLimit::new(st.limit.get(), st.policy.get()))
    }

    /// A write of `len` bytes with `buffered` waiting: `None` when it fits under the limit.
    /// Otherwise what the policy says is noted (bytes dropped, or the connection tripped) and
    /// the caller acts on the [`LimitHit`].
    pub(crate) fn over_limit(&self, buffered: usize, len: usize) -> Option<LimitHit> {
        let st = self.0.get()?;
        if buffered.saturating_add(len) <= st.limit.get() {
            return None;
        }
        Some(match st.policy.get() {
            WritePolicy::Disconnect => {
                let first = !st.tripped.replace(true);
                LimitHit::Disconnect { first }
            }
            WritePolicy::DropWrites => {
                st.dropped.set(st.dropped.get().saturating_add(len as u64));
                LimitHit::Dropped {
                    first: !st.dropping.replace(true),
                }
            }
        })
    }

    /// Bytes dropped by `WritePolicy::DropWrites`.
    pub(crate) fn dropped(&self) -> u64 {
        self.0.get().map_or(0, |s| s.dropped.get())
    }

    /// True once the write limit aborted the connection.
    pub(crate) fn tripped(&self) -> bool {
        self.0.get().is_some_and(|s| s.tripped.get())
    }

    /// True when [`due`](Self::due) would return a call for this buffer size.
    pub(crate) fn is_due(&self, buffered: usize) -> bool {
        let Some(st) = self.registered() else {
            return false;
        };
        if st.streaming.get() {
            if st.paused.get() {
                buffered <= st.low.get()
            } else {
                st.pause_owed.get() || buffered > st.high.get()
            }
        } else {
            st.pull_due.get() && buffered == 0
        }
    }

    /// The call the producer is owed now that `buffered` bytes wait to be sent, if any, with
    /// the state updated as if it were made. The caller makes the call, outside any borrow.
    pub(crate) fn due(&self, buffered: usize) -> Option<(Rc<dyn Producer>, Due)> {
        if !self.is_due(buffered) {
            return None;
        }
        let st = self.0.get()?;
        let producer = st.producer.borrow().clone()?;
        let call = if st.streaming.get() {
            let pause = !st.paused.get();
            st.paused.set(pause);
            st.pause_owed.set(false);
            if pause {
                Due::Pause
            } else {
                Due::Resume
            }
        } else {
            st.pull_due.set(false);
            Due::Resume
        };
        Some((producer, call))
    }
}

/// What a write over the write limit met ([`ProducerSlot::over_limit`]); `first` is true
/// the first time on the connection (the one to log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHit {
    /// The connection is to be aborted.
    Disconnect { first: bool },
    /// The write was dropped and counted.
    Dropped { first: bool },
}

impl fmt::Debug for ProducerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerSlot")
            .field("registered", &self.is_registered())
            .field("streaming", &self.streaming())
            .field("paused", &self.paused())
            .field("limits", &self.limits())
            .finish()
    }
}

/// The consumer stopped a producer before it had written everything (the connection ended):
/// what a [`FileSender`](crate::protocols::basic::FileSender) transfer fails with then
/// (Twisted's "Consumer asked us to stop producing").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProducerStopped;

impl fmt::Display for ProducerStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the consumer asked the producer to stop producing")
    }
}

impl std::error::Error for ProducerStopped {}

/// A streaming producer for async code that writes in a loop: register it with the
/// transport, and `await` [`ready`](Backpressure::ready) before each write. It is paused and
/// resumed by the transport's watermarks like any streaming producer; `ready` waits while it
/// is paused, without polling.
///
/// The transport pauses it from its own task, after the write that filled the buffer, and an
/// async loop whose data is always ready might not let that task run in between. A gate made
/// with [`register`](Backpressure::register) knows its transport, so `ready` also waits when
/// the buffer is over the high watermark and the pause is still on its way:
///
/// ```
/// use torsion::producer::Backpressure;
/// use torsion::testing::{success_result_of, StringTransport};
///
/// let st = StringTransport::new();
/// st.transport().set_write_buffer_limits(100, 10);
/// let gate = Backpressure::register(&st.transport()).unwrap();
/// assert!(success_result_of(&gate.ready()));      // room to write
/// st.set_buffered_size(500);                         // the peer is slow
/// let ready = gate.ready();
/// assert!(ready.result().is_none());                 // an async writer would wait here
/// st.set_buffered_size(0);
/// assert!(success_result_of(&ready));
/// st.stop_producer();                                // the connection ended
/// assert!(!success_result_of(&gate.ready()));
/// ```
#[derive(Default)]
pub struct Backpressure {
    paused: Cell<bool>,
    stopped: Cell<bool>,
    waiters: RefCell<Vec<crate::defer::Trigger<bool>>>,
    /// The transport it is registered with, if made by `register` (dropped when stopped).
    consumer: RefCell<Option<Transport>>,
}

impl Backpressure {
    /// A gate that is open (not paused) until whoever it is registered with says otherwise
    /// (for consumers other than a transport, such as a web request).
    pub fn new() -> Rc<Backpressure> {
        Rc::new(Backpressure::default())
    }

    /// A gate registered with `transport` as its streaming producer.
    pub fn register(transport: &Transport) -> Result<Rc<Backpressure>, ProducerError> {
        let gate = Backpressure::new();
        transport.register_producer(gate.clone(), true)?;
        *gate.consumer.borrow_mut() = Some(transport.clone());
        Ok(gate)
    }

    /// True while the transport has it paused.
    pub fn is_paused(&self) -> bool {
        self.paused.get()
    }

    /// True once the transport stopped it (the connection ended).
    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Fires with `true` when writing may go on (at once if it is not paused and, for a
    /// registered gate, its transport's buffer is not over the high watermark), or `false`
    /// once production was stopped.
    pub fn ready(&self) -> crate::Deferred<bool> {
        let d = crate::Deferred::new();
        let pause_due = self
            .consumer
            .borrow()
            .as_ref()
            .is_some_and(|t| t.buffered_size() > t.write_buffer_limits().0);
        if self.stopped.get() {
            d.callback(false);
        } else if !self.paused.get() && !pause_due {
            d.callback(true);
        } else {
            self.waiters.borrow_mut().push(d.trigger());
        }
        d
    }

    fn wake(&self, value: bool) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            let _ = w.try_callback(value);
        }
    }
}

impl Producer for Backpressure {
    fn pause_producing(&self) {
        self.paused.set(true);
    }

    fn resume_producing(&self) {
        self.paused.set(false);
        self.wake(true);
    }

    fn stop_producing(&self) {
        self.stopped.set(true);
        drop(self.consumer.borrow_mut().take());
        self.wake(false);
    }
}

impl fmt::Debug for Backpressure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backpressure")
            .field("paused", &self.paused.get())
            .field("stopped", &self.stopped.get())
            .field("waiting", &self.waiters.borrow().len())
            .finish()
    }
}
