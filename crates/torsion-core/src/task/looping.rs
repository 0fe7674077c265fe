//! `LoopingCall`: call a function every N seconds (Twisted's `task.LoopingCall`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use crate::defer::{Deferred, Trigger};
use crate::reactor::{reactor, CallOutcome, DelayedCall, ReactorTime};
use crate::Failure;

type Body = Box<dyn FnMut(u64) -> Option<Deferred<()>>>;

struct Inner {
    body: RefCell<Option<Body>>,
    clock: RefCell<Option<Rc<dyn ReactorTime>>>,
    interval: Cell<f64>,
    start_time: Cell<f64>,
    /// The interval number of the last call (calls happen at start + k * interval).
    last_interval: Cell<u64>,
    running: Cell<bool>,
    call: RefCell<Option<DelayedCall>>,
    done: RefCell<Option<Trigger<()>>>,
    /// A call's Deferred is pending: the next call waits for it.
    waiting: Cell<bool>,
    skipped: Cell<u64>,
    calls: Cell<u64>,
}

/// Calls a function repeatedly, every `interval` seconds (Twisted's `LoopingCall`).
///
/// Calls are aligned to `start + k × interval`. When a call runs late (the reactor was busy, or
/// a call's Deferred took longer than the interval), the missed intervals are skipped, not
/// run in a burst, as in Twisted; [`skipped`](Self::skipped) counts them and
/// [`with_count`](Self::with_count) passes the number of intervals since the last call. If the
/// function returns a Deferred, the next call waits for it; a failure (or panic) stops the loop
/// and fails the Deferred [`start`](Self::start) returned.
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use torsion::{task::LoopingCall, testing::Clock};
///
/// let clock = Clock::new();
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// let lc = LoopingCall::new(move || t.set(t.get() + 1));
/// lc.set_clock(clock.clone());
/// let done = lc.start(1.0, true); // calls now, then every second
/// clock.pump(&[1.0, 1.0, 1.0]);
/// assert_eq!(ticks.get(), 4);
/// clock.advance(3.5);             // the reactor was busy: 2 intervals skipped
/// assert_eq!((ticks.get(), lc.skipped()), (5, 2));
/// lc.stop();
/// assert!(done.result().unwrap().is_ok());
/// ```
#[derive(Clone)]
pub struct LoopingCall {
    inner: Rc<Inner>,
}

impl LoopingCall {
    /// A looping call of `f`, which may return `()` or a `Deferred` to wait for.
    pub fn new<R: CallOutcome>(mut f: impl FnMut() -> R + 'static) -> LoopingCall {
        LoopingCall::with_count(move |_| f())
    }

    /// A looping call of `f(count)`, where `count` is the number of intervals since the last
    /// call (1 unless calls were skipped) — Twisted's `LoopingCall.withCount`.
    pub fn with_count<R: CallOutcome>(mut f: impl FnMut(u64) -> R + 'static) -> LoopingCall {
        LoopingCall {
            inner: Rc::new(Inner {
                body: RefCell::new(Some(Box::new(move |n| f(n).into_wait()))),
                clock: RefCell::new(None),
                interval: Cell::new(0.0),
                start_time: Cell::new(0.0),
                last_interval: Cell::new(0),
                running: Cell::new(false),
                call: RefCell::new(None),
                done: RefCell::new(None),
                waiting: Cell::new(false),
                skipped: Cell::new(0),
                calls: Cell::new(0),
            }),
        }
    }

    /// Uses `clock` instead of the current reactor (Twisted's `lc.clock = clock`), for tests.
    pub fn set_clock(&self, clock: impl ReactorTime + 'static) {
        *self.inner.clock.borrow_mut() = Some(Rc::new(clock));
    }

    fn clock(&self) -> Rc<dyn ReactorTime> {
        self.inner
            .clock
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(reactor()))
            .clone()
    }

    /// Starts calling every `interval` seconds, the first time at once if `now`. The Deferred
    /// fires when [`stop`](Self::stop) is called, or fails if a call fails.
    ///
    /// # Panics
    /// If already running, or if `interval` is negative or not a number.
    pub fn start(&self, interval: impl Into<crate::reactor::Delay>, now: bool) -> Deferred<()> {
        let interval = interval.into().as_secs_f64();
        assert!(!self.inner.running.get(), "LoopingCall is already running");
        assert!(
            interval >= 0.0,
            "LoopingCall interval must be 0 or more, got {interval}"
        );
        let d = Deferred::new();
        *self.inner.done.borrow_mut() = Some(d.trigger());
        self.inner.running.set(true);
        self.inner.interval.set(interval);
        self.inner.start_time.set(self.clock().seconds());
        self.inner.last_interval.set(0);
        if now {
            self.fire();
        } else {
            self.schedule_next();
        }
        d
    }

    /// Stops calling; the Deferred from `start` fires.
    ///
    /// # Panics
    /// If the loop is not running: never started, stopped already, or ended by a failing
    /// call. Twisted raises `AssertionError` ("Tried to stop a LoopingCall that was not
    /// running."), and [`start`](Self::start) panics the other way round; cleanup code that
    /// may run twice checks [`running`](Self::running) first. See docs/design.md,
    /// "Differences from Twisted".
    pub fn stop(&self) {
        assert!(
            self.inner.running.replace(false),
            "Tried to stop a LoopingCall that was not running"
        );
        if let Some(call) = self.inner.call.borrow_mut().take() {
            let _ = call.cancel();
        }
        if let Some(t) = self.inner.done.borrow_mut().take() {
            let _ = t.fire(Ok(()));
        }
    }

    /// Restarts the interval from now (Twisted's `reset`).
    pub fn reset(&self) {
        if !self.inner.running.get() || self.inner.waiting.get() {
            return;
        }
        if let Some(call) = self.inner.call.borrow_mut().take() {
            let _ = call.cancel();
        }
        self.inner.start_time.set(self.clock().seconds());
        self.inner.last_interval.set(0);
        self.schedule_next();
    }

    /// True between `start` and `stop` (or a failure).
    pub fn running(&self) -> bool {
        self.inner.running.get()
    }

    /// How many intervals were skipped because calls ran late.
    pub fn skipped(&self) -> u64 {
        self.inner.skipped.get()
    }

    /// How many times the function has been called.
    pub fn calls(&self) -> u64 {
        self.inner.calls.get()
    }

    /// The interval, in seconds.
    pub fn interval(&self) -> f64 {
        self.inner.interval.get()
    }

    /// Which interval `now` falls in.
    fn interval_at(&self, now: f64) -> u64 {
        let interval = self.inner.interval.get();
        if interval == 0.0 {
            return self.inner.last_interval.get() + 1;
        }
        let k = ((now - self.inner.start_time.get()) / interval + 1e-9).floor();
        if k < 0.0 {
            0
        } else {
            k as u64
        }
    }

    fn fire(&self) {
        self.inner.call.borrow_mut().take();
        if !self.inner.running.get() {
            return;
        }
        let now_interval = self.interval_at(self.clock().seconds());
        let count = now_interval
            .saturating_sub(self.inner.last_interval.get())
            .max(1);
        if self.inner.calls.get() > 0 {
            self.inner.skipped.set(self.inner.skipped.get() + count - 1);
        }
        self.inner.last_interval.set(now_interval);
        self.inner.calls.set(self.inner.calls.get() + 1);
        let mut body = self.inner.body.borrow_mut().take().expect("body present");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(count)));
        *self.inner.body.borrow_mut() = Some(body);
        match outcome {
            Err(payload) => self.fail(Failure::from_panic(payload)),
            Ok(None) => self.schedule_next(),
            Ok(Some(d)) => {
                self.inner.waiting.set(true);
                let me = self.clone();
                d.on_result(move |out| {
                    me.inner.waiting.set(false);
                    match out {
                        Ok(()) => me.schedule_next(),
                        Err(f) => me.fail(f),
                    }
                });
            }
        }
    }

    fn fail(&self, failure: Failure) {
        self.inner.running.set(false);
        match self.inner.done.borrow_mut().take() {
            Some(t) => {
                let _ = t.fire(Err(failure));
            }
            None => crate::log::err(&failure, "LoopingCall failed"),
        }
    }

    fn schedule_next(&self) {
        if !self.inner.running.get() {
            return;
        }
        let clock = self.clock();
        let interval = self.inner.interval.get();
        let delay = if interval == 0.0 {
            0.0
        } else {
            let now = clock.seconds();
            let next = self.interval_at(now).max(self.inner.last_interval.get()) + 1;
            (self.inner.start_time.get() + next as f64 * interval - now).max(0.0)
        };
        let me = self.clone();
        let call = clock.call_later_boxed(delay, Box::new(move || me.fire()));
        *self.inner.call.borrow_mut() = Some(call);
    }
}

impl fmt::Debug for LoopingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopingCall")
            .field("running", &self.running())
            .field("interval", &self.interval())
            .field("calls", &self.calls())
            .field("skipped", &self.skipped())
            .finish()
    }
}
