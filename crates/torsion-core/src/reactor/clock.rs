//! [`SharedClock`]: the running reactor's clock, or one given, shared by many timers.

use std::fmt;
use std::rc::Rc;

use super::{reactor, DelayedCall, ReactorTime};

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
            None => reactor().seconds(),
        }
    }

    fn call_later_boxed(&self, seconds: f64, f: Box<dyn FnOnce()>) -> DelayedCall {
        match &self.0 {
            Some(c) => c.call_later_boxed(seconds, f),
            None => reactor().call_later_boxed(seconds, f),
        }
    }
}
