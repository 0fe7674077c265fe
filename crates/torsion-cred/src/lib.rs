//! Authentication for Torsion, as Twisted's `twisted.cred`: credentials, checkers, a portal
//! and realms. Every server that logs users in (mail, SSH, IRC, FTP) does it through here.
//!
//! - [`credentials`]: what a client proves itself with ([`UsernamePassword`],
//!   [`Anonymous`]), behind the open [`Credentials`] trait, and the [`AvatarId`] a checker
//!   answers with.
//! - [`checker`]: [`CredentialsChecker`] (Twisted's `ICredentialsChecker`), with
//!   [`AllowAnonymousAccess`] and the plain-text
//!   [`InMemoryUsernamePasswordDatabaseDontUse`] for tests.
//! - [`password_db`]: the real password stores, which keep only hashes:
//!   [`FilePasswordDb`] (a file of `user:hash` lines, read again when it changes) and
//!   [`PasswordHashDb`] (in memory).
//! - [`hash`]: [`hash_password`] (argon2id) and [`StoredHash`] (Argon2 PHC strings and
//!   bcrypt hashes).
//! - [`limit`]: [`VerifyLimiter`], which runs verifications in worker threads, a few at once.
//! - [`portal`]: [`Portal`], [`Realm`], and the [`Login`] a protocol gets.
//! - [`error`]: Twisted's failures, [`UnauthorizedLogin`](error::UnauthorizedLogin) and
//!   [`UnhandledCredentials`](error::UnhandledCredentials), and
//!   [`TooManyLogins`](error::TooManyLogins).
//!
//! # How the types are chosen
//!
//! **Credentials are an open trait, not an enum.** Twisted finds the checker for a login by
//! the interfaces the credentials object provides. Here a [`Portal`] keeps one checker per
//! credentials *type* (its `TypeId`), so any crate can add a kind: the SSH crate will define
//! its public-key credentials (user name, algorithm, key blob, signed data, signature: the
//! fields of Twisted's `SSHPrivateKey`), implement [`Credentials`] for them and a
//! [`CredentialsChecker`] over an `authorized_keys` file, and register that checker next
//! to the password one, without a change here. An enum of kinds would have to list every kind
//! in this crate, and a checker would have to answer for kinds it never sees. Credentials
//! move into the checker by value (a password is wiped when dropped), and must be `Send`
//! because a hash checker verifies them in a worker thread.
//!
//! **The avatar's type is a type parameter, not `Rc<dyn Any>`.** Twisted's `login` takes
//! interface objects and the realm answers with the first one it supports. Here the
//! interface *is* the avatar type `A` of [`Realm<A>`](Realm): a mail realm implements
//! `Realm<Mailbox>` for POP3 and `Realm<Account>` for IMAP, and each protocol gets the type it
//! calls, checked when compiled. With `Rc<dyn Any>` every protocol would downcast, and a realm
//! answering with the wrong type would be found by a user at login. A protocol that takes
//! one of several avatars (an SSH server: a shell user, or an SFTP-only user) uses an enum.
//!
//! **Logout runs when the [`Login`] is dropped.** Twisted protocols must remember to call
//! `logout()` in `connectionLost`; here a protocol keeps its `Login` in a field and the
//! logout runs when the connection's protocol is dropped, or earlier by
//! [`Login::logout`].
//!
//! # Passwords
//!
//! Only hashes are stored: Argon2id from [`hash_password`] (or any Argon2 PHC string, as
//! Python's `argon2-cffi` writes them) or bcrypt (as `htpasswd -B` writes them). Verifying one
//! costs tens of milliseconds on purpose, so the checkers run it in the reactor's thread pool
//! through a [`VerifyLimiter`] (two at once and 1,024 waiting by default; more are refused
//! with [`TooManyLogins`](error::TooManyLogins)), and one login never stalls other
//! connections. An unknown user's password is verified against a stand-in hash of the same
//! cost, so "no such user" and "wrong password" fail alike and take the same time.
//!
//! # Example
//!
//! A portal over a password file, and a realm handing out a mailbox:
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use torsion::defer::{succeed, Deferred};
//! use torsion::{reactor, Reactor};
//! use torsion_cred::error::UnauthorizedLogin;
//! use torsion_cred::{
//!     hash_password, AvatarId, FilePasswordDb, Login, Logout, Portal, Realm, UsernamePassword,
//! };
//!
//! struct Mailbox {
//!     owner: String,
//! }
//!
//! struct MailRealm;
//!
//! impl Realm<Mailbox> for MailRealm {
//!     fn request_avatar(&self, id: &AvatarId, _mind: ()) -> Deferred<(Mailbox, Logout)> {
//!         let owner = id.to_string();
//!         let bye = owner.clone();
//!         succeed((Mailbox { owner }, Logout::new(move || println!("{bye} logged out"))))
//!     }
//! }
//!
//! let dir = std::env::temp_dir().join(format!("cred-lib-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let file = dir.join("passwords");
//! std::fs::write(&file, format!("alice:{}\n", hash_password("wonderland"))).unwrap();
//!
//! let portal = Portal::new(MailRealm);
//! portal.register_checker(FilePasswordDb::open(&file).unwrap());
//!
//! let r = Reactor::new();
//! let seen = Rc::new(RefCell::new(Vec::new()));
//! let s = seen.clone();
//! r.call_when_running(move || {
//!     let good: Deferred<Login<Mailbox>> =
//!         portal.login(UsernamePassword::new("alice", "wonderland"), ());
//!     let bad: Deferred<Login<Mailbox>> =
//!         portal.login(UsernamePassword::new("alice", "looking-glass"), ());
//!     good.add_callback_deferred(move |login| {
//!         s.borrow_mut().push(login.avatar().owner.clone());
//!         bad.add_both(move |out| {
//!             assert!(out.unwrap_err().check::<UnauthorizedLogin>());
//!             s.borrow_mut().push("refused".into());
//!             reactor().stop()
//!         })
//!     })
//! });
//! r.run().unwrap();
//! assert_eq!(*seen.borrow(), ["alice", "refused"]);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
#![forbid(unsafe_code)]

pub mod checker;
pub mod credentials;
pub mod error;
pub mod hash;
pub mod limit;
pub mod password_db;
pub mod portal;

pub use checker::{
    AllowAnonymousAccess, CredentialsChecker, InMemoryUsernamePasswordDatabaseDontUse,
};
pub use credentials::{Anonymous, AvatarId, Credentials, UsernamePassword};
pub use hash::{hash_password, HashVerifier, Scheme, StoredHash, Verifier};
pub use limit::VerifyLimiter;
pub use password_db::{FilePasswordDb, Malformed, PasswordHashDb};
pub use portal::{Login, Logout, Portal, Realm};
