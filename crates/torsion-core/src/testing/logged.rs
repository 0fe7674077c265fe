//! trial's `flushLoggedErrors`: the failures a test logged, kept by the logging layer
//! (`crate::log::kept`) while `#[torsion::test]` runs.

use crate::{ErrorTypes, Failure};

pub use crate::log::kept::LoggedError;

/// Removes and returns the failures logged so far in this test whose error is of one of the
/// types in the tuple `L` (trial's `flushLoggedErrors`), oldest first: Deferred failures
/// nobody handled — which otherwise make the test fail as dirty — and failures given to
/// [`log::err`](crate::log::err).
///
/// A Deferred failure comes back as it was; a `log::err` failure comes back as a copy whose
/// error is a [`LoggedError`] (its [`type_name`](Failure::type_name) is the original's), as
/// `log::err` only borrows the failure. Outside a `#[torsion::test]` nothing is kept and the
/// list is empty.
///
/// ```
/// use torsion::defer::fail;
/// use torsion::error::TimeoutError;
/// use torsion::testing::{flush_logged_errors, run_test};
///
/// // Without the flush, the test would fail: "1 Deferred failure(s) nobody handled".
/// run_test("expects_a_timeout", 5.0, || async {
///     drop(fail::<()>(TimeoutError));
///     let flushed = flush_logged_errors::<(TimeoutError,)>();
///     assert_eq!(flushed.len(), 1);
///     assert!(flushed[0].check::<TimeoutError>());
/// });
/// ```
#[doc(alias = "flushLoggedErrors")]
pub fn flush_logged_errors<L: ErrorTypes>() -> Vec<Failure> {
    crate::log::kept::flush::<L>()
}
