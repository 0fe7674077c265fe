//! Time: what knows the time and schedules calls (Twisted's `IReactorTime`), and the timer
//! structure behind both the reactor and the test [`Clock`](crate::testing::Clock).
//!
//! Code written against [`ReactorTime`] runs the same on the real reactor and under a test
//! clock that only moves when told:
//!
//! ```
//! use std::{cell::Cell, rc::Rc};
//! use torsion::reactor::ReactorTime;
//! use torsion::testing::Clock;
//!
//! fn remind(time: &dyn ReactorTime, fired: Rc<Cell<bool>>) {
//!     time.call_later_boxed(5.0, Box::new(move || fired.set(true)));
//! }
//!
//! let clock = Clock::new();
//! let fired = Rc::new(Cell::new(false));
//! remind(&clock, fired.clone());
//! clock.advance(4.9);
//! assert!(!fired.get());
//! clock.advance(0.1);
//! assert!(fired.get());
//! ```

mod timer;

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

pub use timer::DelayedCall;
pub(crate) use timer::TimerCore;

/// Something that knows the time and can schedule calls (Twisted's `IReactorTime`).
///
/// Implemented by [`Reactor`](crate::Reactor) and by the test [`Clock`](crate::testing::Clock), so code written
/// against it (timeouts, `add_timeout`, looping calls) is tested without waiting.
pub trait ReactorTime {
    /// The current time in seconds.
    fn seconds(&self) -> f64;

    /// Schedules `f` to run `seconds` from now.
    fn call_later_boxed(&self, seconds: f64, f: Box<dyn FnOnce()>) -> DelayedCall;
}

/// A clock many timers share: the running reactor's by default (looked up at each call, so a
/// factory made before its reactor runs still times its connections on it), or one given,
/// such as a test [`Clock`](crate::testing::Clock). Cloning shares the same clock. A server
/// factory keeps one so that every connection's idle time-out runs on the clock the factory
/// was given.
///
/// ```
/// use torsion::reactor::{ReactorTime, SharedClock};
/// use torsion::testing::Clock;
///
/// let test_clock = Clock::new();
/// let shared = SharedClock::new(test_clock.clone());
/// let copy = shared.clone();
/// test_clock.advance(7.0);
/// assert_eq!(copy.seconds(), 7.0);
/// assert!(format!("{:?}", SharedClock::running()).contains("running"));
/// ```
#[derive(Clone, Default)]
pub struct SharedClock(Option<Rc<dyn ReactorTime>>);

impl SharedClock {
    /// The running reactor's clock ([`reactor()`](crate::reactor())).
    pub fn running() -> SharedClock {
        SharedClock(None)
    }

    /// `clock`, to be shared.
    pub fn new(clock: impl ReactorTime + 'static) -> SharedClock {
        SharedClock(Some(Rc::new(clock)))
    }

    /// A clock that is already shared.
    pub fn from_rc(clock: Rc<dyn ReactorTime>) -> SharedClock {
        SharedClock(Some(clock))
    }
}

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            None => "SharedClock(running reactor)",
            Some(_) => "SharedClock(given)",
        })
    }
}

impl ReactorTime for SharedClock {
    fn seconds(&self) -> f64 {
        match &self.0 {
            Some(c) => c.seconds(),
            None => crate::reactor().seconds(),
        }
    }

    fn call_later_boxed(&self, seconds: f64, f: Box<dyn FnOnce()>) -> DelayedCall {
        match &self.0 {
            Some(c) => c.call_later_boxed(seconds, f),
            None => crate::reactor().call_later_boxed(seconds, f),
        }
    }
}

/// A delay or an interval: seconds as an `f64`, Twisted's way (`call_later(1.5, ..)`), or a
/// [`Duration`] (`call_later(Duration::from_millis(1500), ..)`). Every method that waits takes
/// `impl Into<Delay>`.
///
/// ```
/// use std::time::Duration;
/// use torsion::reactor::Delay;
///
/// assert_eq!(Delay::from(1.5), Delay::from(Duration::from_millis(1500)));
/// assert_eq!(Delay::from(Duration::from_secs(2)).as_secs_f64(), 2.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Delay(f64);

impl Delay {
    /// The delay in seconds.
    pub fn as_secs_f64(self) -> f64 {
        self.0
    }

    /// The delay in seconds for a `call_later`.
    ///
    /// # Panics
    /// If it is negative or NaN: Twisted's `callLater` refuses it too (`AssertionError`),
    /// and so does `Duration::from_secs_f64`.
    pub(crate) fn for_call_later(self) -> f64 {
        let seconds = self.0;
        assert!(
            seconds >= 0.0,
            "call_later: the delay must be 0 seconds or more, not {seconds}"
        );
        seconds
    }
}

impl From<f64> for Delay {
    fn from(seconds: f64) -> Delay {
        Delay(seconds)
    }
}

impl From<Duration> for Delay {
    fn from(d: Duration) -> Delay {
        Delay(d.as_secs_f64())
    }
}
