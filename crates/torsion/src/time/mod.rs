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

pub use timer::DelayedCall;
pub(crate) use timer::TimerCore;

/// Something that knows the time and can schedule calls (Twisted's `IReactorTime`).
///
/// Implemented by [`Reactor`] and by the test [`Clock`](crate::testing::Clock), so code written
/// against it (timeouts, `add_timeout`, looping calls) is tested without waiting.
pub trait ReactorTime {
    /// The current time in seconds.
    fn seconds(&self) -> f64;

    /// Schedules `f` to run `seconds` from now.
    fn call_later_boxed(&self, seconds: f64, f: Box<dyn FnOnce()>) -> DelayedCall;
}
