//! Logging: Twisted's `log.msg` and `log.err`, on top of [`tracing`].
//!
//! Everything the framework reports (unhandled errors in Deferreds, panics contained to one
//! connection, connection errors) goes through here with its context. When the program has
//! installed a `tracing` subscriber the events go to it; when it has not, errors still reach
//! standard error, as Twisted prints unhandled errors even before `startLogging`.
//!
//! ```
//! use torsion::{log, Failure};
//!
//! log::msg("starting up");
//! log::err(&Failure::new(std::io::Error::other("disk full")), "while saving scores");
//! ```

use crate::Failure;

/// Logs an informational message (Twisted's `log.msg`).
pub fn msg(message: &str) {
    tracing::info!(target: "torsion", "{message}");
}

/// Logs a failure with the reason it is being logged (Twisted's `log.err(failure, why)`): the
/// failure's full report at error level.
pub fn err(failure: &Failure, why: &str) {
    error_event(format_args!("{why}\n{}", failure.report()));
    kept::keep_copy(failure);
}

/// Logs an error-level line; falls back to standard error when no subscriber (global or
/// scoped to this thread) is installed.
pub(crate) fn error_event(args: std::fmt::Arguments<'_>) {
    let silent = tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>());
    if silent {
        // Not eprintln!: a closed stderr must not turn a log line into a panic.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "torsion: {args}");
    } else {
        tracing::error!(target: "torsion", "{args}");
    }
}

/// The failures a test logged (trial's `flushLoggedErrors`): while `#[torsion::test]` runs,
/// Deferred failures nobody handled and failures given to [`err`] are kept here as well as
/// logged. It lives with logging, the ground floor, because Deferreds and `err` feed it; the
/// testing kit reads it.
pub(crate) mod kept {
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
    /// [`flush_logged_errors`](crate::testing::flush_logged_errors) returns: `log::err` only borrows the failure, and a [`Failure`]
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

    /// Removes and returns the kept failures whose error is of one of the types in `L`, oldest
    /// first (see [`flush_logged_errors`](crate::testing::flush_logged_errors)).
    pub(crate) fn flush<L: ErrorTypes>() -> Vec<Failure> {
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
}
