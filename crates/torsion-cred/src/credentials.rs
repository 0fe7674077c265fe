//! What a client proves itself with (Twisted's `twisted.cred.credentials`), and the name a
//! checker hands back when it believes it ([`AvatarId`]).
//!
//! Credentials are plain types implementing [`Credentials`]; a
//! [`Portal`](crate::Portal) finds the checker for a login by the credentials' type. This
//! crate has [`UsernamePassword`] and [`Anonymous`]; a later crate adds its own kind (an
//! SSH public key with its signature, say) by implementing [`Credentials`] for its type and
//! a [`CredentialsChecker`](crate::CredentialsChecker) for it, without touching this crate.
//!
//! ```
//! use torsion_cred::{Credentials, UsernamePassword};
//!
//! let c = UsernamePassword::new("alice", "correct horse");
//! assert_eq!(c.username(), "alice");
//! assert!(c.check_password(b"correct horse"));
//! assert!(!format!("{c:?}").contains("horse")); // never in logs
//! assert_eq!(UsernamePassword::KIND, "username-password");
//! ```
use std::any::Any;
use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A kind of credentials (Twisted's `ICredentials` and the interfaces extending it).
///
/// Twisted matches a credentials object to a checker by the interfaces it provides; Torsion
/// matches by the concrete type, so a type is one kind. The trait is open: any crate may
/// define credentials (a public key and its signature, a Kerberos ticket) and a checker for
/// them, and register that checker with a [`Portal`](crate::Portal).
///
/// Credentials move into the checker, and a checker that verifies a password hash moves them
/// on to a worker thread, hence `Send`.
pub trait Credentials: Any + Send {
    /// A short name of the kind, for errors and logs ("username-password", "anonymous").
    const KIND: &'static str;
}

/// A user name and the password they typed (Twisted's `IUsernamePassword`, made by
/// `UsernamePassword`).
///
/// The password is bytes, as protocols carry it (SMTP's AUTH PLAIN, IMAP's LOGIN literal),
/// wiped from memory when the value is dropped, and never shown by `Debug`.
#[derive(Clone)]
pub struct UsernamePassword {
    username: String,
    password: Zeroizing<Vec<u8>>,
}

impl UsernamePassword {
    /// Credentials for `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<Vec<u8>>) -> UsernamePassword {
        UsernamePassword {
            username: username.into(),
            password: Zeroizing::new(password.into()),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password as typed.
    pub fn password(&self) -> &[u8] {
        &self.password
    }

    /// Whether the password is `stored`, compared in time that does not depend on where they
    /// differ (Twisted's `checkPassword`). For plain-text stores only: a real store keeps
    /// hashes, checked by [`StoredHash::verify`](crate::StoredHash::verify).
    pub fn check_password(&self, stored: &[u8]) -> bool {
        bool::from(self.password.as_slice().ct_eq(stored))
    }
}

impl fmt::Debug for UsernamePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsernamePassword")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials for UsernamePassword {
    const KIND: &'static str = "username-password";
}

/// No credentials at all: a guest (Twisted's `IAnonymous`, made by `Anonymous`). Accepted
/// only by a portal with an [`AllowAnonymousAccess`](crate::AllowAnonymousAccess) checker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Anonymous;

impl Credentials for Anonymous {
    const KIND: &'static str = "anonymous";
}

/// Who a checker says the client is (Twisted's avatar ID: the user name as bytes, or the
/// `ANONYMOUS` marker). The [`Realm`](crate::Realm) turns it into an avatar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AvatarId {
    /// A named user, as the checker knows them.
    User(String),
    /// A guest, let in by [`AllowAnonymousAccess`](crate::AllowAnonymousAccess) (Twisted's
    /// `checkers.ANONYMOUS`).
    Anonymous,
}

impl AvatarId {
    /// The user's name, or None for [`AvatarId::Anonymous`].
    pub fn user(&self) -> Option<&str> {
        match self {
            AvatarId::User(name) => Some(name),
            AvatarId::Anonymous => None,
        }
    }
}

impl fmt::Display for AvatarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AvatarId::User(name) => f.write_str(name),
            AvatarId::Anonymous => f.write_str("<anonymous>"),
        }
    }
}
