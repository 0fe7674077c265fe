//! The failures a test logged (trial's `flushLoggedErrors`): while `#[torsion::test]` runs,
//! Deferred failures nobody handled and failures given to [`log::err`](crate::log::err) are
//! kept here as well as logged.

use std::cell::RefCell;
use std::error::Error as StdError;
use std::fmt;

use crate::{ErrorTypes, Failure};

/// How a failure came to be logged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum How {
    /// A Deferred failure nobody handled: the test is dirty unless it is flushed.
    Unhandled,
    /// Given to `log::err`: kept so that a test can look at it.
    Logged,
}

struct Entry {
    how: How,
    failure: Failure,
    /// The type name of the original error, for `log::err`'s copies.
    type_name: &'static str,
}

thread_local! {
    /// `Some` while a test runs on this thread.
    static RECORD: RefCell<Option<Vec<Entry>>> = const { RefCell::new(None) };
}

/// Starts keeping logged failures on this thread (a test begins); drops what was kept.
pub(crate) fn start() {
    RECORD.with_borrow_mut(|r| *r = Some(Vec::new()));
}

/// Stops keeping logged failures (the test ended) and says how many unhandled Deferred
/// failures were neither flushed nor handled.
pub(crate) fn stop() -> usize {
    RECORD.with_borrow_mut(|r| r.take()).map_or(0, |entries| {
        entries.iter().filter(|e| e.how == How::Unhandled).count()
    })
}

/// Keeps an unhandled Deferred failure, if a test is running.
pub(crate) fn keep(how: How, failure: Failure) {
    let type_name = failure.type_name();
    // try_with: a chain dropped while the thread's locals are torn down is only logged.
    let _ = RECORD.try_with(|r| {
        if let Ok(mut r) = r.try_borrow_mut() {
            if let Some(entries) = r.as_mut() {
                entries.push(Entry {
                    how,
                    failure,
                    type_name,
                });
            }
        }
    });
}

/// True while a test runs on this thread (so `log::err` knows whether to keep a copy).
pub(crate) fn recording() -> bool {
    RECORD
        .try_with(|r| r.try_borrow().is_ok_and(|r| r.is_some()))
        .unwrap_or(false)
}

/// The copy of a failure given to [`log::err`](crate::log::err) that
/// [`flush_logged_errors`] returns: `log::err` only borrows the failure, and a [`Failure`]
/// cannot be cloned, so the copy keeps the original's type name, message and causes.
#[derive(Debug)]
pub struct LoggedError {
    type_name: &'static str,
    message: String,
}

impl LoggedError {
    /// The type name of the error that was logged.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

impl fmt::Display for LoggedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for LoggedError {}

/// Keeps a copy of a failure given to `log::err`, if a test is running.
pub(crate) fn keep_copy(failure: &Failure) {
    if !recording() {
        return;
    }
    let type_name = failure.type_name();
    let copy = if failure.check::<LoggedError>() {
        failure.error_message()
    } else {
        let mut message = failure.error_message();
        let mut source = failure.error().source();
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    };
    let _ = RECORD.try_with(|r| {
        if let Ok(mut r) = r.try_borrow_mut() {
            if let Some(entries) = r.as_mut() {
                entries.push(Entry {
                    how: How::Logged,
                    failure: Failure::new(LoggedError {
                        type_name,
                        message: copy,
                    }),
                    type_name,
                });
            }
        }
    });
}

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
    RECORD.with_borrow_mut(|r| {
        let Some(entries) = r.as_mut() else {
            return Vec::new();
        };
        let names = L::type_names();
        let (flushed, kept): (Vec<Entry>, Vec<Entry>) =
            entries.drain(..).partition(|e| match e.how {
                How::Unhandled => e.failure.check_any::<L>(),
                How::Logged => names.contains(&e.type_name),
            });
        *entries = kept;
        flushed.into_iter().map(|e| e.failure).collect()
    })
}
