//! Checkers: what decides whether credentials are good (Twisted's `ICredentialsChecker` and
//! `twisted.cred.checkers`).
//!
//! A checker of credentials `C` answers [`request_avatar_id`](CredentialsChecker::request_avatar_id)
//! with a Deferred that fires with the [`AvatarId`] of the user the credentials prove, or
//! fails with [`UnauthorizedLogin`]. A [`Portal`](crate::Portal) holds one checker per kind
//! of credentials.
//!
//! This module has the two simple checkers; the real password stores are
//! [`PasswordHashDb`](crate::PasswordHashDb) and [`FilePasswordDb`](crate::FilePasswordDb).
//!
//! ```
//! use torsion_cred::{
//!     Anonymous, AllowAnonymousAccess, AvatarId, CredentialsChecker,
//!     InMemoryUsernamePasswordDatabaseDontUse, UsernamePassword,
//! };
//! use torsion_cred::error::UnauthorizedLogin;
//!
//! let db = InMemoryUsernamePasswordDatabaseDontUse::new();
//! db.add_user("alice", "secret");
//! let ok = db.request_avatar_id(UsernamePassword::new("alice", "secret"));
//! assert_eq!(ok.result().unwrap().unwrap(), AvatarId::User("alice".into()));
//! let bad = db.request_avatar_id(UsernamePassword::new("alice", "guess"));
//! assert!(bad.result().unwrap().unwrap_err().check::<UnauthorizedLogin>());
//!
//! let guest = AllowAnonymousAccess.request_avatar_id(Anonymous);
//! assert_eq!(guest.result().unwrap().unwrap(), AvatarId::Anonymous);
//! ```
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use torsion::defer::{fail, succeed, Deferred};

use crate::credentials::{Anonymous, AvatarId, Credentials, UsernamePassword};
use crate::error::UnauthorizedLogin;

/// Decides whether credentials of kind `C` are good (Twisted's `ICredentialsChecker`).
///
/// Runs on the reactor thread and must return at once: slow work (verifying a password hash,
/// asking a directory server) goes to a thread or the network, and the Deferred fires later.
/// Twisted's `credentialInterfaces` is the set of `C` a checker implements this trait for.
pub trait CredentialsChecker<C: Credentials> {
    /// The avatar ID the credentials prove, or a failure: [`UnauthorizedLogin`] when they
    /// are refused (Twisted's `requestAvatarId`).
    fn request_avatar_id(&self, credentials: C) -> Deferred<AvatarId>;
}

impl<C: Credentials, K: CredentialsChecker<C> + ?Sized> CredentialsChecker<C> for Rc<K> {
    fn request_avatar_id(&self, credentials: C) -> Deferred<AvatarId> {
        (**self).request_avatar_id(credentials)
    }
}

/// Lets anyone in as [`AvatarId::Anonymous`] (Twisted's `AllowAnonymousAccess`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAnonymousAccess;

impl CredentialsChecker<Anonymous> for AllowAnonymousAccess {
    fn request_avatar_id(&self, _credentials: Anonymous) -> Deferred<AvatarId> {
        succeed(AvatarId::Anonymous)
    }
}

/// User names and passwords kept in memory in plain text, for tests and examples only
/// (Twisted's `InMemoryUsernamePasswordDatabaseDontUse`, named the same to say the same).
///
/// Answers at once, on the reactor thread. Passwords are compared in constant time, but
/// kept in plain text: a real server stores hashes, in a [`FilePasswordDb`](crate::FilePasswordDb)
/// or a [`PasswordHashDb`](crate::PasswordHashDb).
///
/// Cheap to clone: clones share the users.
#[derive(Debug, Clone, Default)]
pub struct InMemoryUsernamePasswordDatabaseDontUse {
    users: Rc<RefCell<HashMap<String, Vec<u8>>>>,
}

impl InMemoryUsernamePasswordDatabaseDontUse {
    /// An empty database.
    pub fn new() -> InMemoryUsernamePasswordDatabaseDontUse {
        InMemoryUsernamePasswordDatabaseDontUse::default()
    }

    /// Adds a user, or changes their password (Twisted's `addUser`).
    pub fn add_user(&self, username: impl Into<String>, password: impl Into<Vec<u8>>) {
        self.users
            .borrow_mut()
            .insert(username.into(), password.into());
    }

    /// Removes a user; true if they were there.
    pub fn remove_user(&self, username: &str) -> bool {
        self.users.borrow_mut().remove(username).is_some()
    }
}

impl CredentialsChecker<UsernamePassword> for InMemoryUsernamePasswordDatabaseDontUse {
    fn request_avatar_id(&self, credentials: UsernamePassword) -> Deferred<AvatarId> {
        let users = self.users.borrow();
        match users.get(credentials.username()) {
            Some(stored) if credentials.check_password(stored) => {
                succeed(AvatarId::User(credentials.username().to_owned()))
            }
            _ => fail(UnauthorizedLogin),
        }
    }
}
