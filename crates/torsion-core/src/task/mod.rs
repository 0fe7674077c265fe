//! Time and task helpers (Twisted's `twisted.internet.task`): [`LoopingCall`],
//! [`defer_later`], [`cooperate`] and [`react`].
//!
//! ```
//! use torsion::{task::defer_later, testing::Clock};
//!
//! let clock = Clock::new();
//! let d = defer_later(&clock, 2.0, || "ding");
//! clock.advance(2.0);
//! assert_eq!(d.result().unwrap().unwrap(), "ding");
//! ```

mod cooperate;
mod looping;

use std::cell::RefCell;
use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;

pub use cooperate::{cooperate, CooperativeTask, Cooperator};
pub use looping::LoopingCall;

use crate::defer::Deferred;
use crate::reactor::{reactor, Delay, DelayedCall, ReactorTime};
use crate::Reactor;

/// A Deferred that fires with `f()` after `seconds` on `clock` (Twisted's `deferLater`).
/// Cancelling it cancels the call. A panic in `f` becomes the Deferred's failure.
#[doc(alias = "deferLater")]
pub fn defer_later<T: 'static>(
    clock: &dyn ReactorTime,
    seconds: impl Into<Delay>,
    f: impl FnOnce() -> T + 'static,
) -> Deferred<T> {
    let seconds = seconds.into().as_secs_f64();
    let call: Rc<RefCell<Option<DelayedCall>>> = Rc::default();
    let to_cancel = call.clone();
    let d = Deferred::with_canceller(move |_| {
        if let Some(c) = to_cancel.borrow_mut().take() {
            let _ = c.cancel();
        }
    });
    let trigger = d.trigger();
    let done = call.clone();
    *call.borrow_mut() = Some(clock.call_later_boxed(
        seconds,
        Box::new(move || {
            done.borrow_mut().take();
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .map_err(crate::Failure::from_panic);
            let _ = trigger.fire(out);
        }),
    ));
    d
}

/// Runs the current thread's reactor for `main`, stops it when `main`'s Deferred fires, and
/// returns the exit code: success, or failure after printing the failure's report to
/// standard error (Twisted's `task.react`).
///
/// ```no_run
/// use std::process::ExitCode;
/// use torsion::{defer::ensure_deferred, task::react, Failure};
///
/// fn main() -> ExitCode {
///     react(|_reactor| ensure_deferred(async {
///         println!("hello from the reactor");
///         Ok::<_, Failure>(())
///     }))
/// }
/// ```
pub fn react<T: 'static>(main: impl FnOnce(&Reactor) -> Deferred<T> + 'static) -> ExitCode {
    let r = reactor();
    let code: Rc<RefCell<ExitCode>> = Rc::new(RefCell::new(ExitCode::SUCCESS));
    let set = code.clone();
    let me = r.clone();
    r.call_when_running(move || {
        main(&me).add_both(move |out| {
            if let Err(f) = out {
                let _ = writeln!(
                    std::io::stderr(),
                    "main function encountered error\n{}",
                    f.report()
                );
                *set.borrow_mut() = ExitCode::FAILURE;
            }
            if reactor().running() {
                let _ = reactor().stop();
            }
            Ok::<(), crate::Failure>(())
        });
    });
    if let Err(f) = r.run() {
        let _ = writeln!(std::io::stderr(), "{}", f.report());
        return ExitCode::FAILURE;
    }
    let code = *code.borrow();
    code
}
