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
