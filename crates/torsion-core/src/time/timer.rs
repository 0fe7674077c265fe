//! The reactor's timers: one binary heap per reactor, with lazy cancellation.
//!
//! Scheduling is O(log n); cancelling is O(1) (the heap entry is left behind and skipped when it
//! surfaces; the heap is rebuilt without them when it would otherwise grow or when they are
//! more than half of it at the top, and emptied when no call is pending). `reset` and `delay`
//! push a new heap entry and leave the old one stale. The same structure runs the real reactor
//! (driven by one tokio sleep to the earliest deadline) and the test
//! [`Clock`](crate::testing::Clock) (driven by `advance`).

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::task::Waker;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::DelayedCallError;
use crate::util::Slab;
use crate::Failure;

/// `CLOCK_MONOTONIC` in nanoseconds, the clock `std::time::Instant` reads on Linux. Read
/// directly, it skips `Instant`'s checked subtraction on every `call_later` (~70 of ~500
/// instructions for a `call_later` + `cancel`, callgrind).
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// Where a timer core reads the time from.
enum TimeSource {
    /// Monotonic time since `base`, reported as wall-clock seconds from `epoch`.
    Real {
        base: tokio::time::Instant,
        /// `CLOCK_MONOTONIC` at `base`, in nanoseconds (the clock `Instant` reads on Linux).
        base_raw: u64,
        epoch: f64,
    },
    /// Time that moves only when told to (the test clock), in nanoseconds.
    Manual(Cell<u64>),
}

struct Entry {
    deadline: u64,
    id: u64,
    /// The insertion order of this entry's live heap item; older items are stale.
    order: u64,
    callback: Box<dyn FnOnce()>,
}

/// (deadline ns, insertion order, slab index). The insertion order is unique, so it names both
/// the entry and which of its items is live.
type HeapItem = Reverse<(u64, u64, usize)>;

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<HeapItem>,
    entries: Slab<Entry>,
    order: u64,
    next_id: u64,
    stale: usize,
}

impl Queue {
    /// Pushes the heap item `(deadline, order, index)`. When the heap is full and at least half
    /// of it is stale, the stale items are dropped instead of the heap growing: the heap never
    /// holds more than twice the pending calls beyond what it held already, and rebuilds cost
    /// nothing while the calls in it are merely being cancelled (a million calls scheduled and
    /// then cancelled: no rebuild, where rebuilding on cancel filtered 1.3 to 2 million items).
    fn push_item(&mut self, deadline: u64, order: u64, index: usize) {
        if self.heap.len() == self.heap.capacity() && self.stale >= self.heap.len() / 2 {
            self.drop_stale();
        }
        self.heap.push(Reverse((deadline, order, index)));
    }

    /// The insertion order for the next heap item.
    fn next_order(&mut self) -> u64 {
        self.order += 1;
        self.order
    }

    /// Makes the live entry `index` due at `deadline`. A move to a later time only notes the
    /// new deadline: the entry's heap item, due sooner, is put where it belongs when it
    /// surfaces (Twisted's reactor defers later moves the same way), so a call moved later
    /// again and again (a keep-alive time-out, once per request) costs no heap push and leaves
    /// no stale item. A move sooner pushes a new item and leaves the old one stale.
    fn move_to(&mut self, index: usize, deadline: u64) {
        let Some(e) = self.entries.get_mut(index) else {
            return;
        };
        // The entry's heap item is never due later than the entry itself.
        if deadline >= e.deadline {
            e.deadline = deadline;
            return;
        }
        let order = self.order + 1;
        self.order = order;
        e.deadline = deadline;
        e.order = order;
        self.push_item(deadline, order, index);
        self.one_more_stale();
    }

    /// Counts one more stale heap item (a call cancelled or moved); when no call is pending
    /// any more, every item is stale and the heap is emptied at once.
    fn one_more_stale(&mut self) {
        self.stale += 1;
        if self.entries.len() == 0 {
            self.heap.clear();
            self.stale = 0;
        }
    }

    /// Rebuilds the heap without its stale items, in place (it keeps its allocation).
    fn drop_stale(&mut self) {
        let Queue { heap, entries, .. } = self;
        heap.retain(|item| is_live(entries, item));
        self.stale = 0;
    }

    /// Drops stale items from the top; returns the earliest live deadline. Stale items are
    /// popped one by one while they are few; when more than half the heap is stale, one
    /// rebuild in O(n) replaces up to n pops in O(log n) each, so that cancelling most of a
    /// million calls costs the next reactor turn milliseconds, not a second.
    fn peek_deadline(&mut self) -> Option<u64> {
        while let Some(&Reverse((due, order, index))) = self.heap.peek() {
            if let Some(e) = self.entries.get(index).filter(|e| e.order == order) {
                if e.deadline == due {
                    return Some(due);
                }
                // Moved later while this item waited: put it where it now belongs.
                let later = Reverse((e.deadline, order, index));
                if let Some(mut top) = self.heap.peek_mut() {
                    *top = later;
                }
                continue;
            }
            if self.stale > 1024 && self.stale > self.heap.len() / 2 {
                self.drop_stale();
                continue;
            }
            self.heap.pop();
            self.stale = self.stale.saturating_sub(1);
        }
        None
    }
}

/// Whether `item` is its entry's live heap item (the insertion order names both).
fn is_live(entries: &Slab<Entry>, item: &HeapItem) -> bool {
    let (_, order, index) = item.0;
    matches!(entries.get(index), Some(e) if e.order == order)
}

/// A reactor's (or test clock's) timers and its notion of the current time.
pub(crate) struct TimerCore {
    queue: RefCell<Queue>,
    source: TimeSource,
    /// The deadline the driver's sleep is armed for (u64::MAX when none).
    armed: Cell<u64>,
    driver: RefCell<Option<Waker>>,
}

impl TimerCore {
    pub(crate) fn new_real() -> Rc<TimerCore> {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        // Raw clock first: `base` is then a few nanoseconds later, so a sleep until
        // `base + deadline` never wakes before the raw clock reaches the deadline.
        let base_raw = monotonic_ns();
        TimerCore::with_source(TimeSource::Real {
            base: tokio::time::Instant::now(),
            base_raw,
            epoch,
        })
    }

    pub(crate) fn new_manual() -> Rc<TimerCore> {
        TimerCore::with_source(TimeSource::Manual(Cell::new(0)))
    }

    fn with_source(source: TimeSource) -> Rc<TimerCore> {
        Rc::new(TimerCore {
            queue: RefCell::new(Queue::default()),
            source,
            armed: Cell::new(u64::MAX),
            driver: RefCell::new(None),
        })
    }

    /// Nanoseconds since this core's base.
    pub(crate) fn now_ns(&self) -> u64 {
        match &self.source {
            TimeSource::Real { base_raw, .. } => monotonic_ns().saturating_sub(*base_raw),
            TimeSource::Manual(t) => t.get(),
        }
    }

    /// The current time in seconds (Twisted's `seconds()`).
    pub(crate) fn seconds(&self) -> f64 {
        self.ns_to_seconds(self.now_ns())
    }

    fn ns_to_seconds(&self, ns: u64) -> f64 {
        let epoch = match &self.source {
            TimeSource::Real { epoch, .. } => *epoch,
            TimeSource::Manual(_) => 0.0,
        };
        epoch + ns as f64 / 1e9
    }

    pub(crate) fn instant_of(&self, ns: u64) -> Option<tokio::time::Instant> {
        match &self.source {
            TimeSource::Real { base, .. } => Some(*base + Duration::from_nanos(ns)),
            TimeSource::Manual(_) => None,
        }
    }

    /// Moves manual time forward (the test clock).
    pub(crate) fn advance_manual(&self, ns: u64) {
        if let TimeSource::Manual(t) = &self.source {
            t.set(t.get().saturating_add(ns));
        }
    }

    /// A delay in seconds as nanoseconds, rounded to the nearest; negative and NaN delays are
    /// 0, and delays beyond ~146 years are capped (a deadline never overflows).
    fn delay_ns(seconds: f64) -> u64 {
        const CAP: u64 = u64::MAX / 2;
        let ns = seconds * 1e9 + 0.5;
        if ns >= 1.0 {
            // `as` saturates, so a huge or infinite delay lands on the cap.
            (ns as u64).min(CAP)
        } else {
            0
        }
    }

    /// Schedules `callback` to run `seconds` from now.
    pub(crate) fn schedule(
        self: &Rc<Self>,
        seconds: f64,
        callback: Box<dyn FnOnce()>,
    ) -> DelayedCall {
        let deadline = self.now_ns().saturating_add(Self::delay_ns(seconds));
        let (index, id) = {
            let mut q = self.queue.borrow_mut();
            q.next_id += 1;
            let id = q.next_id;
            let order = q.next_order();
            let index = q.entries.insert(Entry {
                deadline,
                id,
                order,
                callback,
            });
            q.push_item(deadline, order, index);
            (index, id)
        };
        self.poke(deadline);
        DelayedCall {
            core: Rc::downgrade(self),
            index: u32::try_from(index).expect("over 4 billion pending delayed calls"),
            id,
            cancelled: Cell::new(false),
        }
    }

    /// Wakes the driver if `deadline` is earlier than what it sleeps for.
    fn poke(&self, deadline: u64) {
        if deadline < self.armed.get() {
            if let Some(w) = self.driver.borrow().as_ref() {
                w.wake_by_ref();
            }
        }
    }

    pub(crate) fn set_driver(&self, waker: &Waker, armed: u64) {
        self.armed.set(armed);
        let mut d = self.driver.borrow_mut();
        match d.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *d = Some(waker.clone()),
        }
    }

    /// The earliest pending deadline, in nanoseconds.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.queue.borrow_mut().peek_deadline()
    }

    /// Runs the calls due at `now`. With `only_existing`, calls scheduled while this runs wait
    /// for the next pass (so a call that reschedules itself with delay 0 cannot starve I/O);
    /// without it (the test clock), they run too if due, as Twisted's `Clock.advance` does.
    /// Returns how many ran.
    pub(crate) fn run_due(&self, now: u64, only_existing: bool) -> usize {
        let limit = self.queue.borrow().order;
        let mut ran = 0;
        loop {
            let callback = {
                let mut q = self.queue.borrow_mut();
                let Some(deadline) = q.peek_deadline() else {
                    break;
                };
                let Reverse((_, order, index)) = *q.heap.peek().expect("peeked");
                if deadline > now || (only_existing && order > limit) {
                    break;
                }
                q.heap.pop();
                q.entries.remove(index).expect("live entry").callback
            };
            ran += 1;
            if let Err(payload) = catch_unwind(AssertUnwindSafe(callback)) {
                crate::log::err(
                    &Failure::from_panic(payload),
                    "Unhandled error in a delayed call:",
                );
            }
        }
        ran
    }

    /// How many heap entries there are, stale ones included.
    pub(crate) fn heap_len(&self) -> usize {
        self.queue.borrow().heap.len()
    }

    /// How many calls are pending.
    pub(crate) fn pending(&self) -> usize {
        self.queue.borrow().entries.len()
    }

    /// The times (in seconds) of the pending calls, soonest first.
    pub(crate) fn pending_times(&self) -> Vec<f64> {
        let q = self.queue.borrow();
        let mut times: Vec<u64> = q.entries.iter().map(|e| e.deadline).collect();
        times.sort_unstable();
        times.into_iter().map(|t| self.ns_to_seconds(t)).collect()
    }

    /// Drops every pending call (when the reactor is done), breaking reference cycles.
    pub(crate) fn clear(&self) {
        let old = std::mem::take(&mut *self.queue.borrow_mut());
        drop(old);
    }
}

/// A call scheduled with `call_later` (Twisted's `IDelayedCall`): cancel it, move it, or ask
/// whether it is still pending.
///
/// ```
/// use torsion::testing::Clock;
/// use std::{cell::Cell, rc::Rc};
///
/// let clock = Clock::new();
/// let rang = Rc::new(Cell::new(false));
/// let r = rang.clone();
/// let call = clock.call_later(5.0, move || r.set(true));
/// call.delay(2.0).unwrap();           // now due at 7
/// clock.advance(6.0);
/// assert!(!rang.get() && call.active());
/// clock.advance(1.0);
/// assert!(rang.get() && !call.active());
/// ```
pub struct DelayedCall {
    core: Weak<TimerCore>,
    id: u64,
    /// The entry's slab index (`u32`, so that the handle, kept by every connection with a
    /// time-out, is 24 bytes).
    index: u32,
    cancelled: Cell<bool>,
}

impl DelayedCall {
    fn with_entry<R>(
        &self,
        f: impl FnOnce(&mut Queue, &TimerCore) -> R,
    ) -> Result<R, DelayedCallError> {
        let gone = if self.cancelled.get() {
            DelayedCallError::AlreadyCancelled
        } else {
            DelayedCallError::AlreadyCalled
        };
        let Some(core) = self.core.upgrade() else {
            return Err(gone);
        };
        let mut q = core.queue.borrow_mut();
        match q.entries.get(self.index as usize) {
            Some(e) if e.id == self.id => Ok(f(&mut q, &core)),
            _ => Err(gone),
        }
    }

    /// True while the call has neither run nor been cancelled.
    pub fn active(&self) -> bool {
        self.with_entry(|_, _| ()).is_ok()
    }

    /// Cancels the call.
    pub fn cancel(&self) -> Result<(), DelayedCallError> {
        let callback = self.with_entry(|q, _| {
            let entry = q.entries.remove(self.index as usize).expect("live entry");
            q.one_more_stale();
            entry.callback
        })?;
        self.cancelled.set(true);
        drop(callback);
        Ok(())
    }

    /// Reschedules the call to run `seconds` from now.
    pub fn reset(&self, seconds: impl Into<super::Delay>) -> Result<(), DelayedCallError> {
        let seconds = seconds.into().as_secs_f64();
        let (core, deadline) = self
            .with_entry(|q, core| {
                let deadline = core.now_ns().saturating_add(TimerCore::delay_ns(seconds));
                q.move_to(self.index as usize, deadline);
                deadline
            })
            .map(|d| (self.core.upgrade(), d))?;
        if let Some(core) = core {
            core.poke(deadline);
        }
        Ok(())
    }

    /// Moves the call `seconds` later than it was due.
    pub fn delay(&self, seconds: impl Into<super::Delay>) -> Result<(), DelayedCallError> {
        let seconds = seconds.into().as_secs_f64();
        self.with_entry(|q, _| {
            let due = q.entries.get(self.index as usize).expect("live").deadline;
            q.move_to(
                self.index as usize,
                due.saturating_add(TimerCore::delay_ns(seconds)),
            );
        })
    }

    /// When the call is due, in the same seconds as `seconds()`.
    pub fn get_time(&self) -> Result<f64, DelayedCallError> {
        self.with_entry(|q, core| {
            let e = q.entries.get(self.index as usize).expect("live");
            core.ns_to_seconds(e.deadline)
        })
    }
}

impl fmt::Debug for DelayedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayedCall")
            .field("active", &self.active())
            .field("time", &self.get_time().ok())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::TimerCore;

    #[test]
    fn delays_round_to_the_nearest_nanosecond_and_never_overflow() {
        assert_eq!(TimerCore::delay_ns(0.3), 300_000_000);
        assert_eq!(TimerCore::delay_ns(1.0), 1_000_000_000);
        assert_eq!(TimerCore::delay_ns(1.5e-9), 2);
        assert_eq!(TimerCore::delay_ns(0.4e-9), 0);
        assert_eq!(TimerCore::delay_ns(0.0), 0);
        assert_eq!(TimerCore::delay_ns(-5.0), 0);
        assert_eq!(TimerCore::delay_ns(f64::NAN), 0);
        assert_eq!(TimerCore::delay_ns(f64::INFINITY), u64::MAX / 2);
        assert_eq!(TimerCore::delay_ns(1e300), u64::MAX / 2);
    }
}
