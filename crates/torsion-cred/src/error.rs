//! The failures a login ends with, as Twisted's `twisted.cred.error`.
//!
//! A checker's or a portal's Deferred fails with one of these inside its
//! [`Failure`](torsion::Failure); a protocol traps it by type and answers its peer:
//!
//! ```
//! use torsion::defer::fail;
//! use torsion_cred::error::UnauthorizedLogin;
//! use torsion_cred::AvatarId;
//!
//! let d = fail::<AvatarId>(UnauthorizedLogin);
//! let failure = d.result().unwrap().unwrap_err();
//! assert!(failure.check::<UnauthorizedLogin>());
//! ```
//!
//! [`UnauthorizedLogin`] says the same for an unknown user and a wrong password, on purpose:
//! a protocol that told them apart would tell an attacker which names exist.
use std::fmt;

/// The credentials were checked and refused: unknown user, wrong password, anonymous access
/// not allowed (Twisted's `UnauthorizedLogin`). Deliberately says no more than that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnauthorizedLogin;

impl fmt::Display for UnauthorizedLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("login refused: unknown user or wrong credentials")
    }
}

impl std::error::Error for UnauthorizedLogin {}

/// No checker in the portal takes this kind of credentials (Twisted's
/// `UnhandledCredentials`): a server configuration error, or a client offering a method the
/// server has not set up (an SSH key where only passwords are checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnhandledCredentials {
    /// The kind of credentials offered ([`Credentials::KIND`](crate::Credentials::KIND)).
    pub kind: &'static str,
}

impl fmt::Display for UnhandledCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no checker handles {} credentials", self.kind)
    }
}

impl std::error::Error for UnhandledCredentials {}

/// Too many password verifications are running or waiting already; this one was refused
/// without being checked (no Twisted counterpart: Twisted verifies on the reactor thread, one
/// at a time). A protocol answers "try again later" (SMTP 454, IMAP `NO [UNAVAILABLE]`,
/// POP3 `-ERR [SYS/TEMP]`), not "wrong password".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyLogins {
    /// How many verifications may run at once.
    pub running: usize,
    /// How many may wait for one of those.
    pub waiting: usize,
}

impl fmt::Display for TooManyLogins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "too many logins in progress ({} verifying, {} waiting): try again later",
            self.running, self.waiting
        )
    }
}

impl std::error::Error for TooManyLogins {}

/// A stored password hash that cannot be used: not a hash this crate verifies, or one whose
/// parameters are out of bounds. Reported (with the file and line, by
/// [`FilePasswordDb`](crate::FilePasswordDb)) where the hash is loaded, never at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashFormatError {
    /// What is wrong with it, for a person.
    pub reason: String,
}

impl HashFormatError {
    pub(crate) fn new(reason: impl Into<String>) -> HashFormatError {
        HashFormatError {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for HashFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for HashFormatError {}
