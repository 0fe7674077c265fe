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
    crate::testing::keep_logged_copy(failure);
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
