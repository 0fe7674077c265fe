//! [`TimerService`]: a function called every N seconds while the service runs (Twisted's
//! `twisted.application.internet.TimerService`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use super::{Service, ServiceState};
use crate::defer::{succeed, Deferred, Trigger};
use crate::reactor::{CallOutcome, Delay, ReactorTime, SharedClock};
use crate::task::LoopingCall;

type Body = Box<dyn FnMut() -> Option<Deferred<()>>>;

/// Whether a call's Deferred is pending, and who waits for it to end.
#[derive(Default)]
struct InFlight {
    busy: Cell<bool>,
    idle: RefCell<Vec<Trigger<()>>>,
}

/// A service that calls a function every `step` seconds while it runs (Twisted's
/// `TimerService`, a [`LoopingCall`] started with the service): the first call when it
/// starts, then every `step` seconds. The function may return `()` or a [`Deferred`]; the
/// next call waits for that Deferred, and stopping the service waits for it too. A call that
/// fails (or panics) is logged and ends the calls; the service counts as running until it
/// is stopped.
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use torsion::application::{Service, TimerService};
/// use torsion::testing::Clock;
///
/// let clock = Clock::new();
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// let service = TimerService::new(5.0, move || t.set(t.get() + 1));
/// service.set_clock(clock.clone());
/// service.start_service(); // calls at once
/// clock.pump(&[5.0, 5.0]);
/// assert_eq!(ticks.get(), 3);
/// assert!(service.stop_service().result().unwrap().is_ok());
/// clock.advance(60.0);
/// assert_eq!(ticks.get(), 3);
/// ```
pub struct TimerService {
    service: ServiceState,
    step: f64,
    body: Rc<RefCell<Body>>,
    clock: RefCell<Option<Rc<dyn ReactorTime>>>,
    looping: RefCell<Option<LoopingCall>>,
    in_flight: Rc<InFlight>,
}

impl TimerService {
    /// A stopped service that will call `f` every `step` seconds, on the current reactor
    /// unless [`set_clock`](Self::set_clock) gives another clock.
    ///
    /// # Panics
    /// If `step` is negative or not a number, as [`LoopingCall::start`] does.
    pub fn new<R: CallOutcome>(
        step: impl Into<Delay>,
        mut f: impl FnMut() -> R + 'static,
    ) -> TimerService {
        let step = step.into().as_secs_f64();
        assert!(
            step >= 0.0,
            "TimerService step must be 0 or more, got {step}"
        );
        TimerService {
            service: ServiceState::new(),
            step,
            body: Rc::new(RefCell::new(Box::new(move || f().into_wait()))),
            clock: RefCell::new(None),
            looping: RefCell::new(None),
            in_flight: Rc::default(),
        }
    }

    /// Uses `clock` instead of the current reactor (Twisted's `clock` attribute), such as a
    /// [`testing::Clock`](crate::testing::Clock); set it before starting.
    pub fn set_clock(&self, clock: impl ReactorTime + 'static) {
        *self.clock.borrow_mut() = Some(Rc::new(clock));
    }

    /// Sets the name (Twisted's `setName`).
    pub fn set_name(&self, name: impl Into<String>) {
        self.service.set_name(name);
    }

    /// The seconds between calls.
    pub fn step(&self) -> f64 {
        self.step
    }

    /// True while calls go on: started, not stopped, and no call has failed.
    pub fn looping(&self) -> bool {
        self.looping
            .borrow()
            .as_ref()
            .is_some_and(LoopingCall::running)
    }
}

impl Service for TimerService {
    fn name(&self) -> Option<String> {
        self.service.name()
    }

    fn running(&self) -> bool {
        self.service.running()
    }

    /// Starts the calls, the first at once (a new [`LoopingCall`] each start, as Twisted).
    fn start_service(&self) {
        if self.service.running() {
            return;
        }
        self.service.set_running(true);
        let body = self.body.clone();
        let in_flight = self.in_flight.clone();
        let lc = LoopingCall::new(move || -> Deferred<()> {
            let outcome = (body.borrow_mut())();
            match outcome {
                None => succeed(()),
                Some(d) => {
                    in_flight.busy.set(true);
                    let flight = in_flight.clone();
                    d.add_both(move |r| {
                        flight.busy.set(false);
                        for t in std::mem::take(&mut *flight.idle.borrow_mut()) {
                            let _ = t.try_callback(());
                        }
                        r
                    })
                }
            }
        });
        if let Some(clock) = self.clock.borrow().clone() {
            lc.set_clock(SharedClock::from_rc(clock));
        }
        *self.looping.borrow_mut() = Some(lc.clone());
        // Twisted's `_failed`: a failing call ends the loop and is logged.
        drop(lc.start(self.step, true).add_errback(|f| {
            crate::log::err(&f, "a TimerService call failed; its calls have stopped:");
            Ok(())
        }));
    }

    /// Stops the calls; fires at once, or, while a call's Deferred is pending, once it has
    /// fired.
    fn stop_service(&self) -> Deferred<()> {
        self.service.set_running(false);
        if let Some(lc) = self.looping.borrow_mut().take() {
            if lc.running() {
                lc.stop();
            }
        }
        if self.in_flight.busy.get() {
            let d = Deferred::new();
            self.in_flight.idle.borrow_mut().push(d.trigger());
            d
        } else {
            succeed(())
        }
    }
}

impl fmt::Debug for TimerService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerService")
            .field("name", &self.name())
            .field("step", &self.step)
            .field("running", &self.running())
            .field("looping", &self.looping())
            .finish()
    }
}
