//! The errors of AMP: what can go wrong on the wire ([`AmpError`]), and the errors a peer
//! answers with ([`RemoteError`], [`UnhandledCommand`]), which a caller traps by error code.

use std::fmt;

/// The error code Twisted answers with when a responder fails with an error its command does
/// not declare (Twisted's `UNKNOWN_ERROR_CODE`); the connection is then closed.
pub const UNKNOWN_ERROR_CODE: &str = "UNKNOWN";

/// The error code of an answer to a command nobody responds to (Twisted's
/// `UNHANDLED_ERROR_CODE`).
pub const UNHANDLED_ERROR_CODE: &str = "UNHANDLED";

/// A key or value longer than AMP can carry (Twisted's `TooLong`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong {
    /// The string was a key (255 bytes at most), not a value (65,535 at most).
    pub is_key: bool,
    /// It was being written here, not received.
    pub is_local: bool,
    /// Its length in bytes.
    pub length: usize,
    /// For a value, the key it was written under.
    pub key: Option<Vec<u8>>,
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = if self.is_local { "local" } else { "remote" };
        match (&self.key, self.is_key) {
            (_, true) => write!(f, "{place} key too long: {}", self.length),
            (Some(k), false) => write!(
                f,
                "{place} value {:?} too long: {}",
                String::from_utf8_lossy(k),
                self.length
            ),
            (None, false) => write!(f, "{place} value too long: {}", self.length),
        }
    }
}

impl std::error::Error for TooLong {}

/// Something AMP could not do: a box or argument that cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AmpError {
    /// A key or value over AMP's limits.
    TooLong(TooLong),
    /// A box grew past the configured limit before it ended (a box that never ends).
    BoxTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A box with none of `_ask`, `_answer`, `_error`, `_command` (Twisted's `NoEmptyBoxes`).
    EmptyBox,
    /// Bytes that end in the middle of a box where whole boxes were expected (an `AmpList`).
    Truncated,
    /// A required argument or response field is missing (Twisted raises `KeyError`).
    Missing {
        /// The key.
        key: String,
    },
    /// A value that does not parse as its declared type, or cannot be written as one.
    BadValue {
        /// The key, when known.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// An answer or error for a question that was never asked (or already answered).
    UnknownAnswer {
        /// The tag it carried.
        tag: Vec<u8>,
    },
    /// An `_error` box without `_error_code` or `_error_description`.
    MalformedError,
    /// The connection ended before the answer came, or was already gone.
    ConnectionLost {
        /// How it ended.
        reason: String,
    },
    /// Too many questions of this side are waiting for answers
    /// ([`AmpConfig::max_outstanding_calls`](crate::AmpConfig::max_outstanding_calls)).
    TooManyOutstanding {
        /// The limit.
        limit: usize,
    },
    /// TLS was already started (or is starting) on this connection (Twisted's
    /// `OnlyOneTLS`): it starts once.
    OnlyOneTls,
    /// The connection is being handed, or was handed, to another protocol
    /// ([`AmpSender::call_switch`](crate::AmpSender::call_switch), a switch responder): no
    /// AMP box may be sent on it (Twisted's `ProtocolSwitched`).
    ProtocolSwitched,
    /// TLS could not start: the transport cannot carry it, or the peer refused `StartTLS`
    /// while boxes meant for TLS were waiting (they are never sent in the clear).
    Tls {
        /// Why.
        reason: String,
    },
}

impl AmpError {
    /// A value that does not parse or cannot be written, under `key`.
    pub fn bad_value(key: impl Into<String>, reason: impl fmt::Display) -> AmpError {
        AmpError::BadValue {
            key: key.into(),
            reason: reason.to_string(),
        }
    }

    /// The same error, naming `key` if it named none.
    pub(crate) fn with_key(self, key: &[u8]) -> AmpError {
        match self {
            AmpError::BadValue { key: k, reason } if k.is_empty() => AmpError::BadValue {
                key: String::from_utf8_lossy(key).into_owned(),
                reason,
            },
            other => other,
        }
    }
}

impl fmt::Display for AmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmpError::TooLong(t) => t.fmt(f),
            AmpError::BoxTooLarge { limit } => {
                write!(f, "AMP box larger than {limit} bytes")
            }
            AmpError::EmptyBox => f.write_str("AMP box with no _ask, _answer, _error or _command"),
            AmpError::Truncated => f.write_str("AMP data ends in the middle of a box"),
            AmpError::Missing { key } => write!(f, "AMP box lacks the key {key:?}"),
            AmpError::BadValue { key, reason } => write!(f, "bad AMP value for {key:?}: {reason}"),
            AmpError::UnknownAnswer { tag } => write!(
                f,
                "AMP answer to a question never asked: {:?}",
                String::from_utf8_lossy(tag)
            ),
            AmpError::MalformedError => f.write_str("AMP _error box without code or description"),
            AmpError::ConnectionLost { reason } => write!(f, "AMP connection lost: {reason}"),
            AmpError::TooManyOutstanding { limit } => {
                write!(f, "more than {limit} AMP calls waiting for answers")
            }
            AmpError::OnlyOneTls => f.write_str("TLS already started on this AMP connection"),
            AmpError::ProtocolSwitched => {
                f.write_str("this connection has switched: no AMP traffic allowed")
            }
            AmpError::Tls { reason } => write!(f, "AMP StartTLS failed: {reason}"),
        }
    }
}

impl std::error::Error for AmpError {}

impl From<TooLong> for AmpError {
    fn from(t: TooLong) -> AmpError {
        AmpError::TooLong(t)
    }
}

/// An error the peer answered with (Twisted's `RemoteAmpError`), or a responder returns to
/// answer with one. Trap it by [`code`](Self::code):
///
/// ```
/// use torsion::Failure;
/// use torsion_amp::RemoteError;
///
/// let failure = Failure::new(RemoteError::new("ZERO_DIVISION", "division by zero"));
/// let error = RemoteError::trap(failure, "ZERO_DIVISION").unwrap();
/// assert_eq!(error.description, "division by zero");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// The error code: one the command declares, or [`UNKNOWN_ERROR_CODE`] for an error it
    /// does not (Twisted's `UnknownRemoteError`).
    pub code: String,
    /// Text for people.
    pub description: String,
    /// When a responder returns it: close the connection after answering (Twisted's
    /// `fatal`, also implied by the command's `fatal_errors`).
    pub fatal: bool,
}

impl RemoteError {
    /// An error with `code` and `description`, not fatal.
    pub fn new(code: impl Into<String>, description: impl Into<String>) -> RemoteError {
        RemoteError {
            code: code.into(),
            description: description.into(),
            fatal: false,
        }
    }

    /// The same error, fatal: the connection is closed once it is answered.
    pub fn fatal(mut self) -> RemoteError {
        self.fatal = true;
        self
    }

    /// True when `failure` is a [`RemoteError`] with error code `code`.
    pub fn check(failure: &torsion::Failure, code: &str) -> bool {
        failure
            .downcast_ref::<RemoteError>()
            .is_some_and(|e| e.code == code)
    }

    /// The [`RemoteError`] in `failure` if its code is `code`, or the failure back (Twisted's
    /// `failure.trap(ErrorClass)` for the class declared with that code).
    pub fn trap(failure: torsion::Failure, code: &str) -> Result<RemoteError, torsion::Failure> {
        if !RemoteError::check(&failure, code) {
            return Err(failure);
        }
        failure.trap::<RemoteError>()
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code<{}>: {}", self.code, self.description)
    }
}

impl std::error::Error for RemoteError {}

/// The peer has no responder for the command (Twisted's `UnhandledCommand`, error code
/// [`UNHANDLED_ERROR_CODE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnhandledCommand {
    /// The peer's description, `Unhandled Command: b'Name'` from Twisted.
    pub description: String,
}

impl fmt::Display for UnhandledCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code<{UNHANDLED_ERROR_CODE}>: {}", self.description)
    }
}

impl std::error::Error for UnhandledCommand {}
