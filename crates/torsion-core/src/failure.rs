//! [`Failure`]: an error travelling through a Deferred chain, with where it arose.
//!
//! Twisted wraps every exception that passes through a Deferred in a `Failure`, which
//! remembers the exception, its type and its traceback. Torsion's `Failure` does the same for
//! any Rust error (`std::error::Error + Send + Sync`) and for a caught panic: it keeps the
//! error, its type name, the source location where the `Failure` was made, and a backtrace when
//! `RUST_BACKTRACE` asks for one.
//!
//! Errbacks use [`Failure::check`] to test the error's type and [`Failure::trap`] to take it
//! out or pass the failure on with `?` ([`Failure::check_any`] and [`Failure::trap_any`] take
//! several types at once, as Twisted's `check(A, B)` and `trap(A, B)` do):
//!
//! ```
//! use torsion::{Failure, error::ConnectionRefusedError};
//!
//! fn handle(f: Failure) -> Result<&'static str, Failure> {
//!     f.trap::<ConnectionRefusedError>()?; // any other error goes on down the chain
//!     Ok("the server is down, try later")
//! }
//!
//! let refused = Failure::new(ConnectionRefusedError::new("127.0.0.1:1"));
//! assert_eq!(handle(refused).unwrap(), "the server is down, try later");
//!
//! let other = Failure::new(std::io::Error::other("disk full"));
//! let passed_on = handle(other).unwrap_err();
//! assert!(passed_on.check::<std::io::Error>());
//! ```

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::error::Error as StdError;
use std::fmt;
use std::panic::Location;

/// The error type a [`Failure`] can carry: any thread-safe error.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error with its context: the error value, its type name, where the failure was made, and
/// (when enabled by `RUST_BACKTRACE`) a backtrace.
///
/// Any `E: Error + Send + Sync + 'static` converts into a `Failure` with `?` or `.into()`, so
/// async code and errbacks can use ordinary error handling. `Failure` is `Send`, so failures made
/// on worker threads can be delivered to the reactor.
pub struct Failure {
    inner: Box<Inner>,
}

struct Inner {
    error: BoxError,
    type_name: &'static str,
    location: &'static Location<'static>,
    backtrace: Backtrace,
}

impl Failure {
    /// Wraps `error`, remembering the caller's location as where the failure arose.
    #[track_caller]
    pub fn new<E: StdError + Send + Sync + 'static>(error: E) -> Failure {
        Failure::from_parts(
            Box::new(error),
            std::any::type_name::<E>(),
            Location::caller(),
        )
    }

    /// Wraps `error` as [`Failure::new`] does, but never captures a backtrace, whatever
    /// `RUST_BACKTRACE` says: for errors that are ordinary outcomes on a hot path (a DNS
    /// name that does not exist, a resolver saying "not my zone"), where capturing one stack
    /// per query would cost more than answering it. The location is still kept.
    ///
    /// ```
    /// use torsion::Failure;
    ///
    /// let f = Failure::without_backtrace(std::io::Error::other("no such name"));
    /// assert!(!f.has_backtrace());
    /// assert!(f.check::<std::io::Error>());
    /// ```
    #[track_caller]
    pub fn without_backtrace<E: StdError + Send + Sync + 'static>(error: E) -> Failure {
        Failure {
            inner: Box::new(Inner {
                error: Box::new(error),
                type_name: std::any::type_name::<E>(),
                location: Location::caller(),
                backtrace: Backtrace::disabled(),
            }),
        }
    }

    /// Wraps an already boxed error.
    #[track_caller]
    pub fn from_boxed(error: BoxError) -> Failure {
        Failure::from_parts(error, "dyn Error", Location::caller())
    }

    /// Makes a failure from a panic payload caught with `catch_unwind`. When the panic
    /// happened on this thread after a reactor was created, the failure knows where.
    #[track_caller]
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Failure {
        Failure::new(panic_error(payload.as_ref()))
    }

    fn from_parts(
        error: BoxError,
        type_name: &'static str,
        location: &'static Location<'static>,
    ) -> Failure {
        Failure {
            inner: Box::new(Inner {
                error,
                type_name,
                location,
                backtrace: Backtrace::capture(),
            }),
        }
    }

    /// True when the error is of type `E` (Twisted's `Failure.check`).
    pub fn check<E: StdError + 'static>(&self) -> bool {
        self.inner.error.is::<E>()
    }

    /// Takes the error out if it is of type `E`; otherwise gives the failure back, so that
    /// `f.trap::<E>()?` inside an errback passes other errors on (Twisted's `Failure.trap`).
    pub fn trap<E: StdError + 'static>(self) -> Result<E, Failure> {
        if !self.check::<E>() {
            return Err(self);
        }
        let inner = *self.inner;
        match inner.error.downcast::<E>() {
            Ok(e) => Ok(*e),
            Err(_) => unreachable!("checked type above"),
        }
    }

    /// True when the error is of one of the types in the tuple `L` (Twisted's
    /// `Failure.check(A, B)` with several types), up to four: `check_any::<(A, B)>()`.
    ///
    /// ```
    /// use torsion::error::{ConnectionDone, ConnectionLost, TimeoutError};
    /// use torsion::Failure;
    ///
    /// let f = Failure::new(ConnectionLost::new(None));
    /// assert!(f.check_any::<(ConnectionDone, ConnectionLost)>());
    /// assert!(!f.check_any::<(TimeoutError,)>());
    /// ```
    #[doc(alias = "check")]
    pub fn check_any<L: ErrorTypes>(&self) -> bool {
        L::matches(&*self.inner.error)
    }

    /// Gives the failure back as `Ok` if its error is of one of the types in the tuple `L`,
    /// else as `Err`, so that `let f = f.trap_any::<(A, B)>()?;` inside an errback passes
    /// other errors on (Twisted's `Failure.trap(A, B)`); then [`check`](Self::check) or
    /// [`downcast_ref`](Self::downcast_ref) tells which one it is, as Twisted's `trap`
    /// returns the type that matched.
    ///
    /// ```
    /// use torsion::error::{ConnectionDone, ConnectionLost, TimeoutError};
    /// use torsion::Failure;
    ///
    /// fn gone(f: Failure) -> Result<&'static str, Failure> {
    ///     let f = f.trap_any::<(ConnectionDone, ConnectionLost)>()?;
    ///     Ok(if f.check::<ConnectionDone>() { "closed cleanly" } else { "lost" })
    /// }
    ///
    /// assert_eq!(gone(Failure::new(ConnectionDone)).unwrap(), "closed cleanly");
    /// assert_eq!(gone(Failure::new(ConnectionLost::new(None))).unwrap(), "lost");
    /// assert!(gone(Failure::new(TimeoutError)).unwrap_err().check::<TimeoutError>());
    /// ```
    #[doc(alias = "trap")]
    pub fn trap_any<L: ErrorTypes>(self) -> Result<Failure, Failure> {
        if self.check_any::<L>() {
            Ok(self)
        } else {
            Err(self)
        }
    }

    /// A reference to the error if it is of type `E`.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.inner.error.downcast_ref::<E>()
    }

    /// The wrapped error.
    pub fn error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner.error
    }

    /// Takes the wrapped error out, dropping the context.
    pub fn into_error(self) -> BoxError {
        self.inner.error
    }

    /// The Rust type name of the error, when it was known at construction.
    pub fn type_name(&self) -> &'static str {
        self.inner.type_name
    }

    /// The source location where this failure was made.
    pub fn location(&self) -> &'static Location<'static> {
        self.inner.location
    }

    /// The error's message (Twisted's `getErrorMessage`).
    pub fn error_message(&self) -> String {
        self.inner.error.to_string()
    }

    /// True when a backtrace was captured with the failure (`RUST_BACKTRACE` or
    /// `RUST_LIB_BACKTRACE` set, and not [`Failure::without_backtrace`]).
    pub fn has_backtrace(&self) -> bool {
        self.inner.backtrace.status() == BacktraceStatus::Captured
    }

    /// True when the failure comes from a caught panic.
    pub fn is_panic(&self) -> bool {
        self.check::<PanicError>()
    }

    /// A readable multi-line report: the error type and message, where it arose, the chain of
    /// causes, and the backtrace when one was captured (Twisted's `getTraceback`).
    pub fn report(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = write!(
            out,
            "Failure: {}: {}\n  at {}",
            self.inner.type_name, self.inner.error, self.inner.location
        );
        let mut source = self.inner.error.source();
        while let Some(cause) = source {
            let _ = write!(out, "\n  caused by: {cause}");
            source = cause.source();
        }
        if self.has_backtrace() {
            let _ = write!(out, "\n{}", self.inner.backtrace);
        }
        out
    }
}

/// A tuple of error types, `(A,)` to `(A, B, C, D)`, for [`Failure::check_any`] and
/// [`Failure::trap_any`] (Twisted's `check` and `trap` take several types).
pub trait ErrorTypes {
    /// True when `error` is of one of the types.
    fn matches(error: &(dyn StdError + Send + Sync + 'static)) -> bool;
    /// The types' names (`std::any::type_name`), in order; used for messages and to match
    /// the copies `flush_logged_errors` keeps. Empty by default, so an implementation written
    /// before this method existed still compiles.
    fn type_names() -> Vec<&'static str> {
        Vec::new()
    }
}

macro_rules! error_types {
    ($($t:ident),+) => {
        impl<$($t: StdError + 'static),+> ErrorTypes for ($($t,)+) {
            fn matches(error: &(dyn StdError + Send + Sync + 'static)) -> bool {
                $(error.is::<$t>())||+
            }
            fn type_names() -> Vec<&'static str> {
                vec![$(std::any::type_name::<$t>()),+]
            }
        }
    };
}

error_types!(A);
error_types!(A, B);
error_types!(A, B, C);
error_types!(A, B, C, D);

impl<E: StdError + Send + Sync + 'static> From<E> for Failure {
    #[track_caller]
    fn from(error: E) -> Failure {
        Failure::new(error)
    }
}

/// `{:?}` is the error's message followed by its causes, on one line, so that
/// `fn main() -> Result<(), Failure>` ends with `Error: Couldn't listen on any:80: Permission
/// denied (os error 13)` rather than a struct dump (the convention `anyhow` set for errors that
/// reach `main`). `{:#?}` is the full record: type, error and where the failure was made.
///
/// ```
/// use torsion::Failure;
///
/// let f = Failure::new(std::io::Error::other("disk on fire"));
/// assert_eq!(format!("{f:?}"), "disk on fire");
/// assert!(format!("{f:#?}").contains("location"));
/// ```
impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return f
                .debug_struct("Failure")
                .field("type", &self.inner.type_name)
                .field("error", &self.inner.error)
                .field("location", &format_args!("{}", self.inner.location))
                .finish();
        }
        let mut text = self.inner.error.to_string();
        let mut cause = self.inner.error.source();
        while let Some(c) = cause {
            let more = c.to_string();
            // Most errors already print their cause (`Couldn't listen on x: <io error>`).
            if !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            cause = c.source();
        }
        f.write_str(&text)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner.error)
    }
}

thread_local! {
    static LAST_PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once per process) a panic hook that remembers where each panic happened on its
/// thread, then calls the hook that was there before, so panic output is unchanged.
pub(crate) fn remember_panic_locations() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info.location().map(|l| l.to_string());
            let _ = LAST_PANIC_AT.try_with(|last| *last.borrow_mut() = at);
            previous(info);
        }));
    });
}

/// A panic caught in user code, turned into an error so it can travel as a [`Failure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicError {
    message: String,
    location: Option<String>,
}

impl PanicError {
    /// Makes one from the panic's message.
    pub fn new(message: impl Into<String>) -> PanicError {
        PanicError {
            message: message.into(),
            location: None,
        }
    }

    /// Adds where the panic happened (`file:line:column`).
    pub fn with_location(mut self, location: Option<String>) -> PanicError {
        self.location = location;
        self
    }

    /// The panic's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the panic happened, when known.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "panic: {}", self.message)?;
        if let Some(at) = &self.location {
            write!(f, " (at {at})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PanicError {}

/// A [`PanicError`] from a caught panic's payload, with where it happened when known.
pub(crate) fn panic_error(payload: &(dyn Any + Send)) -> PanicError {
    let at = LAST_PANIC_AT
        .try_with(|l| l.borrow_mut().take())
        .ok()
        .flatten();
    PanicError::new(panic_message(payload)).with_location(at)
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{CancelledError, TimeoutError};

    #[test]
    fn check_and_trap_match_the_type() {
        let f = Failure::new(CancelledError);
        assert!(f.check::<CancelledError>());
        assert!(!f.check::<TimeoutError>());
        let f = f.trap::<TimeoutError>().unwrap_err();
        assert!(f.trap::<CancelledError>().is_ok());
    }

    #[test]
    fn check_any_and_trap_any_match_any_listed_type() {
        use crate::error::ConnectionDone;
        let f = Failure::new(std::io::Error::other("x"));
        assert!(f.check_any::<(CancelledError, TimeoutError, ConnectionDone, std::io::Error)>());
        assert!(f.check_any::<(std::io::Error, CancelledError, TimeoutError)>());
        assert!(!f.check_any::<(CancelledError, TimeoutError, ConnectionDone)>());
        let f = f.trap_any::<(CancelledError, TimeoutError)>().unwrap_err();
        let f = f.trap_any::<(TimeoutError, std::io::Error)>().unwrap();
        assert_eq!(f.error_message(), "x");
    }

    #[test]
    fn report_names_type_message_and_location() {
        let f = Failure::new(std::io::Error::other("boom"));
        let r = f.report();
        assert!(r.contains("std::io::error::Error"), "{r}");
        assert!(r.contains("boom"), "{r}");
        assert!(r.contains("failure.rs"), "{r}");
    }

    #[test]
    fn from_panic_keeps_the_message() {
        remember_panic_locations();
        let payload = std::panic::catch_unwind(|| panic!("oh no {}", 7)).unwrap_err();
        let f = Failure::from_panic(payload);
        assert!(f.is_panic());
        let message = f.error_message();
        assert!(message.starts_with("panic: oh no 7 (at "), "{message}");
        assert!(message.contains("failure.rs"), "{message}");
    }

    /// `without_backtrace` captures none even when the environment asks for backtraces: run
    /// in a child process of this test binary with `RUST_BACKTRACE=1` (std reads the variable
    /// once per process, so it cannot be set here).
    #[test]
    fn without_backtrace_captures_none_when_backtraces_are_on() {
        const VAR: &str = "TORSION_FAILURE_BACKTRACE_CHILD";
        if std::env::var_os(VAR).is_some() {
            assert!(Failure::new(CancelledError).has_backtrace());
            let f = Failure::without_backtrace(CancelledError);
            assert!(!f.has_backtrace());
            assert!(f.check::<CancelledError>());
            assert!(f.location().file().ends_with("failure.rs"));
            return;
        }
        let name = "failure::tests::without_backtrace_captures_none_when_backtraces_are_on";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1"])
            .env(VAR, "1")
            .env("RUST_BACKTRACE", "1")
            .env_remove("RUST_LIB_BACKTRACE")
            .output()
            .expect("cannot re-run the test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the child failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn question_mark_converts_errors() {
        fn parse(s: &str) -> Result<i32, Failure> {
            Ok(s.parse::<i32>()?)
        }
        let f = parse("x").unwrap_err();
        assert!(f.check::<std::num::ParseIntError>());
    }
}
