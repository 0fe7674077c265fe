//! The error types Torsion reports, named as in Twisted (`twisted.internet.error` and
//! `twisted.internet.defer`).
//!
//! They travel inside a [`Failure`]; errbacks test them with
//! [`Failure::check`](crate::Failure::check) and [`Failure::trap`](crate::Failure::trap):
//!
//! ```
//! use torsion::{Failure, error::ConnectionDone};
//!
//! let reason = Failure::new(ConnectionDone);
//! assert!(reason.check::<ConnectionDone>());
//! assert_eq!(reason.to_string(), "Connection was closed cleanly.");
//! ```

use std::fmt;
use std::io;

pub use crate::failure::PanicError;
use crate::Failure;

macro_rules! unit_error {
    ($(#[$doc:meta])* $name:ident, $msg:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($msg)
            }
        }

        impl std::error::Error for $name {}
    };
}

unit_error!(
    /// A Deferred was cancelled (Twisted's `defer.CancelledError`).
    CancelledError,
    "The Deferred was cancelled."
);
unit_error!(
    /// An operation did not finish in time (Twisted's `error.TimeoutError`).
    TimeoutError,
    "User timeout caused connection failure."
);
unit_error!(
    /// The connection was closed cleanly (Twisted's `error.ConnectionDone`).
    ConnectionDone,
    "Connection was closed cleanly."
);
unit_error!(
    /// The connection was closed on purpose without flushing (Twisted's
    /// `error.ConnectionAborted`).
    ConnectionAborted,
    "Connection was aborted locally."
);
unit_error!(
    /// The reactor is not running, so it cannot be stopped (Twisted's
    /// `error.ReactorNotRunning`).
    ReactorNotRunning,
    "Can't stop reactor that isn't running."
);
unit_error!(
    /// The reactor is already running (Twisted's `error.ReactorAlreadyRunning`).
    ReactorAlreadyRunning,
    "The reactor is already running."
);
unit_error!(
    /// A reactor that has stopped cannot run again (Twisted's `error.ReactorNotRestartable`).
    ReactorNotRestartable,
    "The reactor has stopped and cannot be restarted."
);
/// A [`DelayedCall`](crate::reactor::DelayedCall) can no longer be cancelled or moved
/// (Twisted's `error.AlreadyCalled` and `error.AlreadyCancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayedCallError {
    /// It has already run.
    AlreadyCalled,
    /// It was already cancelled.
    AlreadyCancelled,
}

impl fmt::Display for DelayedCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DelayedCallError::AlreadyCalled => "Tried to cancel an already-called event.",
            DelayedCallError::AlreadyCancelled => "Tried to cancel an already-cancelled event.",
        })
    }
}

impl std::error::Error for DelayedCallError {}

/// A Deferred (or a trigger of one) was fired twice (Twisted's `defer.AlreadyCalledError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadyCalledError {
    pub(crate) what: &'static str,
}

impl fmt::Display for AlreadyCalledError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.what {
            "callback" | "errback" | "cancel" => write!(
                f,
                "AlreadyCalledError: {} on a Deferred that has already fired",
                self.what
            ),
            other => write!(f, "AlreadyCalledError: {other}"),
        }
    }
}

impl std::error::Error for AlreadyCalledError {}

/// The connection was lost in a non-clean way (Twisted's `error.ConnectionLost`), with the
/// operating system's error when there was one.
#[derive(Debug)]
pub struct ConnectionLost {
    source: Option<io::Error>,
}

impl ConnectionLost {
    /// A lost connection caused by `source`.
    pub fn new(source: Option<io::Error>) -> ConnectionLost {
        ConnectionLost { source }
    }

    /// The I/O error that ended the connection, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }
}

impl fmt::Display for ConnectionLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(
                f,
                "Connection to the other side was lost in a non-clean fashion: {e}"
            ),
            None => f.write_str("Connection to the other side was lost in a non-clean fashion."),
        }
    }
}

impl std::error::Error for ConnectionLost {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The peer refused the connection (Twisted's `error.ConnectionRefusedError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRefusedError {
    destination: String,
}

impl ConnectionRefusedError {
    /// A refusal from `destination` (`host:port`).
    pub fn new(destination: impl Into<String>) -> ConnectionRefusedError {
        ConnectionRefusedError {
            destination: destination.into(),
        }
    }
}

impl fmt::Display for ConnectionRefusedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Connection was refused by other side: {}",
            self.destination
        )
    }
}

impl std::error::Error for ConnectionRefusedError {}

/// A connection attempt failed for a reason other than refusal or time-out (Twisted's
/// `error.ConnectError`). A host name that does not resolve is a [`DnsLookupError`].
#[derive(Debug)]
pub struct ConnectError {
    destination: String,
    source: io::Error,
}

impl ConnectError {
    /// A failure to connect to `destination`.
    pub fn new(destination: impl Into<String>, source: io::Error) -> ConnectError {
        ConnectError {
            destination: destination.into(),
            source,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "An error occurred while connecting to {}: {}",
            self.destination, self.source
        )
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A host name has no address, or could not be looked up (Twisted's `error.DNSLookupError`).
/// Connecting to such a name fails with it.
#[derive(Debug)]
pub struct DnsLookupError {
    name: String,
    source: io::Error,
}

impl DnsLookupError {
    /// The lookup of `name` failed with `source`.
    pub fn new(name: &str, source: io::Error) -> DnsLookupError {
        DnsLookupError {
            name: name.to_owned(),
            source,
        }
    }

    /// `name` does not exist (or has no address).
    pub fn not_found(name: &str) -> DnsLookupError {
        DnsLookupError::new(
            name,
            io::Error::new(io::ErrorKind::NotFound, "no address for this name"),
        )
    }

    /// The name that was looked up.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for DnsLookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DNS lookup failed: {}: {}", self.name, self.source)
    }
}

impl std::error::Error for DnsLookupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A port could not be listened on (Twisted's `error.CannotListenError`).
#[derive(Debug)]
pub struct CannotListenError {
    address: String,
    source: io::Error,
}

impl CannotListenError {
    /// A failure to listen on `address`.
    pub fn new(address: impl Into<String>, source: io::Error) -> CannotListenError {
        CannotListenError {
            address: address.into(),
            source,
        }
    }

    /// The operating system's error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for CannotListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Couldn't listen on {}: {}", self.address, self.source)?;
        // The fix, where the cause says what it is: these two are most of the first hour.
        match self.source.kind() {
            io::ErrorKind::AddrInUse => f.write_str(
                " (another program is listening there: stop it, or choose another port)",
            ),
            io::ErrorKind::PermissionDenied => f.write_str(
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a port above 1023)",
            ),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for CannotListenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The first failure of a [`DeferredList`](crate::defer::DeferredList) made with
/// `fire_on_one_errback` (Twisted's `defer.FirstError`): which Deferred failed, and how.
#[derive(Debug)]
pub struct FirstError {
    /// The index of the failed Deferred in the list.
    pub index: usize,
    /// Its failure.
    pub failure: Failure,
}

impl fmt::Display for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FirstError[#{}, {}]", self.index, self.failure)
    }
}

impl std::error::Error for FirstError {}

/// A TLS failure: the handshake failed (an untrusted, expired or wrong-name certificate, a
/// missing client certificate, no protocol in common, garbage instead of TLS, an alert from
/// the peer), a TLS protocol error after it, or settings that cannot be used. Its message
/// names the cause, as rustls words it.
#[cfg(feature = "tls")]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TlsError {
    /// The handshake failed.
    Handshake(rustls::Error),
    /// A TLS error after the handshake (a bad record, a fatal alert from the peer).
    Protocol(rustls::Error),
    /// Settings that cannot be used: an unreadable or empty PEM file, a key that does not
    /// match its certificate, no trusted roots, a bad server name.
    Config(String),
}

#[cfg(feature = "tls")]
impl TlsError {
    /// The rustls error, for handshake and protocol errors.
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        match self {
            TlsError::Handshake(e) | TlsError::Protocol(e) => Some(e),
            TlsError::Config(_) => None,
        }
    }
}

#[cfg(feature = "tls")]
impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
            TlsError::Protocol(e) => write!(f, "TLS error: {e}"),
            TlsError::Config(why) => write!(f, "TLS settings error: {why}"),
        }
    }
}

#[cfg(feature = "tls")]
impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.rustls_error().map(|e| e as _)
    }
}
