//! The testing kit (Twisted's trial, `proto_helpers`, `iosim` and `task.Clock`).
//!
//! - [`#[torsion::test]`](crate::test) runs an async test in a fresh reactor, with a
//!   time-out, and fails it if it leaves the reactor dirty.
//! - [`Clock`]: time that moves only when the test says so.
//! - [`StringTransport`]: a transport that records writes, to drive a protocol by hand.
//! - [`FakeDatagramTransport`]: the same for datagram protocols.
//! - [`connected_pair`]: two protocols talking through memory, moved along by a [`Pump`].
//! - [`success_result_of`], [`failure_result_of`], [`assert_no_result`]: look at a Deferred
//!   without running a reactor; [`assert_failure`] waits for one to fail with a given error.
//! - [`MemoryReactor`]: records TCP, TLS, Unix-socket and UDP listens and connects (through
//!   [`ReactorTcp`](crate::net::ReactorTcp), [`ReactorTls`](crate::net::ReactorTls),
//!   [`ReactorUnix`](crate::net::ReactorUnix), [`ReactorUdp`](crate::net::ReactorUdp))
//!   without opening sockets.
//! - [`flush_logged_errors`]: take the failures a test expects to log, so they do not fail it.
//! - [`skip`]: skip a test whose peer or host feature is missing, loudly (trial's `SkipTest`).
//! - [`TempDir`]: a scratch folder removed when dropped (trial's `mktemp`).
//!
//! [`Clock`] is a [`ReactorTime`], so code that schedules work is tested without waiting:
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

mod datagram;
mod iosim;
mod logged;
mod memory_reactor;
mod peer;
mod python;
mod skip;
mod string_transport;
mod temp_dir;
mod trial;

use std::rc::Rc;

pub use datagram::FakeDatagramTransport;
pub use iosim::{connected_pair, Pump};
pub use logged::{flush_logged_errors, LoggedError};
pub use memory_reactor::{
    MemoryConnector, MemoryPort, MemoryReactor, RecordedDatagram, RecordedFactory,
};
pub use peer::run_with_peer;
pub use python::python_venv;
pub use skip::{skip, Missing};
pub use string_transport::StringTransport;
pub use temp_dir::TempDir;
pub use trial::{
    assert_failure, assert_no_result, failure_result_of, run_test, success_result_of,
    AssertionError, TestResult,
};

use crate::time::{DelayedCall, ReactorTime, TimerCore};

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

    /// Schedules `f` in `seconds` of clock time (see [`Reactor::call_later`](crate::Reactor::call_later)).
    ///
    /// # Panics
    /// If `seconds` is negative or NaN, as the reactor's `call_later` (Twisted's `Clock`
    /// does not check, its reactor does: the test clock catches the bug the reactor would).
    pub fn call_later<R: crate::reactor::CallOutcome>(
        &self,
        seconds: impl Into<crate::reactor::Delay>,
        f: impl FnOnce() -> R + 'static,
    ) -> DelayedCall {
        self.core.schedule(
            seconds.into().for_call_later(),
            Box::new(move || drop(f().into_wait())),
        )
    }

    /// The clock's current time.
    pub fn seconds(&self) -> f64 {
        self.core.seconds()
    }

    /// Moves time forward by `seconds` and runs every call that is due, including calls that
    /// those calls schedule within the new time.
    pub fn advance(&self, seconds: impl Into<crate::reactor::Delay>) {
        let seconds = seconds.into().as_secs_f64();
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

    /// How many entries the timer heap holds, stale ones included (to test that rescheduling
    /// does not grow it without bound).
    #[doc(hidden)]
    pub fn heap_len_for_tests(&self) -> usize {
        self.core.heap_len()
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
