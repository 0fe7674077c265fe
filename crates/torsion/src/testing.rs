//! Test helpers (Twisted's `twisted.internet.task.Clock` and friends).
//!
//! [`Clock`] is a [`ReactorTime`] whose time moves only when the test says so, so code that
//! schedules work is tested without real waiting:
//!
//! ```
//! use torsion::{testing::Clock, defer::Deferred, error::TimeoutError};
//!
//! let clock = Clock::new();
//! let d: Deferred<()> = Deferred::new();
//! let d = d.add_timeout(5.0, &clock);
//! clock.advance(4.9);
//! assert!(!d.called());
//! clock.advance(0.1);
//! assert!(d.result().unwrap().unwrap_err().check::<TimeoutError>());
//! ```

use std::rc::Rc;

use crate::reactor::{DelayedCall, ReactorTime, TimerCore};

/// A manual clock (Twisted's `task.Clock`): time starts at 0 and moves with
/// [`advance`](Clock::advance); due calls run then, in order.
#[derive(Clone)]
pub struct Clock {
    core: Rc<TimerCore>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock at time 0 with nothing scheduled.
    pub fn new() -> Clock {
        Clock {
            core: TimerCore::new_manual(),
        }
    }

    /// Schedules `f` in `seconds` of clock time.
    pub fn call_later(&self, seconds: f64, f: impl FnOnce() + 'static) -> DelayedCall {
        self.core.schedule(seconds, Box::new(f))
    }

    /// The clock's current time.
    pub fn seconds(&self) -> f64 {
        self.core.seconds()
    }

    /// Moves time forward by `seconds` and runs every call that is due, including calls that
    /// those calls schedule within the new time.
    pub fn advance(&self, seconds: f64) {
        let ns = if seconds > 0.0 {
            (seconds * 1e9).round() as u64
        } else {
            0
        };
        self.core.advance_manual(ns);
        self.core.run_due(self.core.now_ns(), false);
    }

    /// Advances through `steps`, one after another (Twisted's `Clock.pump`).
    pub fn pump(&self, steps: &[f64]) {
        for s in steps {
            self.advance(*s);
        }
    }

    /// The due times of the pending calls, soonest first (Twisted's `getDelayedCalls`).
    pub fn pending_call_times(&self) -> Vec<f64> {
        self.core.pending_times()
    }
}

impl ReactorTime for Clock {
    fn seconds(&self) -> f64 {
        self.core.seconds()
    }

    fn call_later_boxed(&self, seconds: f64, f: Box<dyn FnOnce()>) -> DelayedCall {
        self.core.schedule(seconds, f)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("seconds", &self.seconds())
            .field("pending", &self.core.pending())
            .finish()
    }
}
