//! The test runner behind `#[torsion::test]`, and helpers to look at Deferreds in tests.

use std::cell::{Cell, RefCell};
use std::fmt::Write;
use std::future::Future;
use std::rc::Rc;

use crate::defer::Deferred;
use crate::{ErrorTypes, Failure, Reactor};

/// What a test may return: `()` or a `Result` whose error fails the test.
pub trait TestResult {
    /// The test's outcome.
    fn into_result(self) -> Result<(), Failure>;
}

impl TestResult for () {
    fn into_result(self) -> Result<(), Failure> {
        Ok(())
    }
}

impl<T, E: Into<Failure>> TestResult for Result<T, E> {
    fn into_result(self) -> Result<(), Failure> {
        self.map(|_| ()).map_err(Into::into)
    }
}

/// Runs a test the way `#[torsion::test]` does: in a fresh reactor (signal handlers off),
/// failing on an error result, on `timeout` seconds passing, or on a dirty reactor — delayed
/// calls still pending, ports or connections still open, or Deferred failures nobody handled
/// and the test did not take with [`flush_logged_errors`](super::flush_logged_errors) —
/// after giving the reactor a few turns to finish closing what the test closed.
///
/// # Panics
/// That is how it fails the test, with a message naming what went wrong.
pub fn run_test<F, R>(name: &str, timeout: f64, test: F)
where
    F: FnOnce() -> R + 'static,
    R: Future + 'static,
    R::Output: TestResult,
{
    let r = Reactor::new();
    r.set_install_signal_handlers(false);
    crate::log::kept::start();
    let outcome: Rc<RefCell<Option<Result<(), Failure>>>> = Rc::default();
    let dirt: Rc<RefCell<Vec<String>>> = Rc::default();
    let timed_out = Rc::new(Cell::new(false));

    let flag = timed_out.clone();
    let guard = r.call_later(timeout, move || {
        flag.set(true);
        let _ = crate::reactor().stop();
    });
    let (out, found) = (outcome.clone(), dirt.clone());
    r.call_when_running(move || {
        let me = crate::reactor();
        me.spawn(async move { test().await.into_result() })
            .add_both(move |result| {
                *out.borrow_mut() = Some(result.and_then(|r| r));
                let _ = guard.cancel();
                let me = crate::reactor();
                let r2 = me.clone();
                me.spawn(async move {
                    // A few turns for connections the test closed to finish closing.
                    for _ in 0..8 {
                        tokio::task::yield_now().await;
                    }
                    let calls = r2.pending_call_times();
                    if !calls.is_empty() {
                        let now = r2.seconds();
                        let due: Vec<String> =
                            calls.iter().map(|t| format!("{:+.3}s", t - now)).collect();
                        found.borrow_mut().push(format!(
                            "{} pending delayed call(s), due in {}",
                            calls.len(),
                            due.join(", ")
                        ));
                    }
                    let open = r2.open_handles();
                    if open > 0 {
                        found
                            .borrow_mut()
                            .push(format!("{open} port(s) or connection(s) still open"));
                    }
                    let _ = r2.stop();
                });
                Ok(())
            });
    });
    let run = r.run();
    let unhandled = crate::log::kept::stop();
    if unhandled > 0 {
        dirt.borrow_mut().push(format!(
            "{unhandled} Deferred failure(s) nobody handled (logged above; \
             flush_logged_errors takes the ones a test expects)"
        ));
    }
    let mut report = String::new();
    if let Err(f) = run {
        let _ = write!(report, "\nthe reactor failed: {}", f.report());
    }
    if timed_out.get() {
        let _ = write!(report, "\ntimed out after {timeout} s");
    }
    match outcome.borrow_mut().take() {
        Some(Err(f)) => {
            let _ = write!(report, "\n{}", f.report());
        }
        None if !timed_out.get() => report.push_str("\nthe test did not finish"),
        _ => {}
    }
    for d in dirt.borrow().iter() {
        let _ = write!(report, "\nreactor left dirty: {d}");
    }
    if !report.is_empty() {
        panic!("{name} failed:{report}");
    }
}

/// The value of a Deferred that has succeeded (trial's `successResultOf`).
///
/// # Panics
/// If it has not fired, or failed (with the failure's report).
#[track_caller]
pub fn success_result_of<T: 'static>(d: &Deferred<T>) -> T {
    match d.result() {
        Some(Ok(v)) => v,
        Some(Err(f)) => panic!("expected a result, got a failure:\n{}", f.report()),
        None => panic!("expected a result, but the Deferred has not fired"),
    }
}

/// The failure of a Deferred that has failed (trial's `failureResultOf`).
///
/// # Panics
/// If it has not fired, or succeeded.
#[track_caller]
pub fn failure_result_of<T: 'static>(d: &Deferred<T>) -> Failure {
    match d.result() {
        Some(Err(f)) => f,
        Some(Ok(_)) => panic!("expected a failure, got a result"),
        None => panic!("expected a failure, but the Deferred has not fired"),
    }
}

/// Checks a Deferred has not fired yet (trial's `assertNoResult`).
///
/// # Panics
/// If it has fired.
#[track_caller]
pub fn assert_no_result<T: 'static>(d: &Deferred<T>) {
    assert!(
        !d.called(),
        "expected no result, but the Deferred has fired"
    );
}

/// The error of a failed test assertion, with what was expected and what happened (trial's
/// `failureException`).
#[derive(Debug)]
pub struct AssertionError(String);

impl AssertionError {
    /// An assertion error saying `message`.
    pub fn new(message: impl Into<String>) -> AssertionError {
        AssertionError(message.into())
    }
}

impl std::fmt::Display for AssertionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AssertionError {}

/// Waits for `d` and gives its failure back if its error is of one of the types in the tuple
/// `L` (trial's `assertFailure`); otherwise an [`AssertionError`] saying what was expected and
/// what happened, so that `?` in a `#[torsion::test]` fails the test with that message. The
/// failure of `d` is consumed either way, so it is never logged as unhandled.
///
/// ```
/// use torsion::defer::{fail, succeed};
/// use torsion::error::{ConnectionDone, TimeoutError};
/// use torsion::testing::{assert_failure, run_test, AssertionError};
/// use torsion::Failure;
///
/// run_test("times_out", 5.0, || async {
///     let f = assert_failure::<(TimeoutError,), _>(fail::<u32>(TimeoutError)).await?;
///     assert!(f.check::<TimeoutError>());
///
///     let wrong = assert_failure::<(TimeoutError,), _>(succeed(7)).await.unwrap_err();
///     assert!(wrong.check::<AssertionError>());
///     let other = assert_failure::<(TimeoutError,), _>(fail::<()>(ConnectionDone)).await;
///     assert!(other.unwrap_err().error_message().contains("ConnectionDone"));
///     Ok::<(), Failure>(())
/// });
/// ```
#[doc(alias = "assertFailure")]
pub async fn assert_failure<L: ErrorTypes, T: 'static>(d: Deferred<T>) -> Result<Failure, Failure> {
    let expected = L::type_names().join(" or ");
    match d.await {
        Ok(_) => Err(Failure::new(AssertionError(format!(
            "expected a failure of type {expected}, got a result"
        )))),
        Err(f) if f.check_any::<L>() => Ok(f),
        Err(f) => Err(Failure::new(AssertionError(format!(
            "expected a failure of type {expected}, got a failure of type {}:\n{}",
            f.type_name(),
            f.report()
        )))),
    }
}
