//! The portal: where a protocol logs a user in (Twisted's `twisted.cred.portal`).
//!
//! A [`Portal`] holds a [`Realm`] and a checker per kind of credentials. A protocol hands
//! [`login`](Portal::login) the credentials its client sent; the portal asks the checker for
//! that kind who they are ([`AvatarId`]), then asks the realm for that user's avatar of the
//! type the protocol works with, and fires with a [`Login`]: the avatar, and what to do at
//! logout.
//!
//! Twisted names the avatar's type with interface objects passed at run time
//! (`portal.login(creds, mind, IMailbox)`) and the realm answers with the first interface it
//! supports. Here the avatar's type is a type parameter: a realm implements
//! [`Realm<A>`](Realm) for each avatar type it serves (a mailbox for POP3, an account for
//! IMAP, a shell user for SSH), and a protocol gets an `A` it can call without a downcast. A
//! protocol that accepts several avatars uses an enum as `A`.
//!
//! ```
//! use torsion::defer::{succeed, Deferred};
//! use torsion_cred::{
//!     AvatarId, InMemoryUsernamePasswordDatabaseDontUse, Login, Logout, Portal, Realm,
//!     UsernamePassword,
//! };
//!
//! /// What a logged-in user of a mail server gets.
//! struct Mailbox {
//!     owner: String,
//! }
//!
//! struct MailRealm;
//!
//! impl Realm<Mailbox> for MailRealm {
//!     fn request_avatar(&self, id: &AvatarId, _mind: ()) -> Deferred<(Mailbox, Logout)> {
//!         let owner = id.user().unwrap_or("guest").to_owned();
//!         succeed((Mailbox { owner }, Logout::none()))
//!     }
//! }
//!
//! let users = InMemoryUsernamePasswordDatabaseDontUse::new();
//! users.add_user("alice", "secret");
//! let portal = Portal::new(MailRealm);
//! portal.register_checker(users);
//!
//! let login: Deferred<Login<Mailbox>> =
//!     portal.login(UsernamePassword::new("alice", "secret"), ());
//! let login = login.result().unwrap().unwrap();
//! assert_eq!(login.avatar().owner, "alice");
//! login.logout();
//! ```
use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

use torsion::defer::{fail, Deferred};

use crate::checker::CredentialsChecker;
use crate::credentials::{AvatarId, Credentials};
use crate::error::UnhandledCredentials;

/// Makes avatars for the users checkers let in (Twisted's `IRealm`).
///
/// `A` is the avatar's type, the interface Twisted passes at run time; `M` is the mind, what
/// the protocol tells the realm about the client's side (Twisted's `mind`; `()` when there is
/// nothing to tell, as for most protocols). A realm may serve several avatar types by
/// implementing the trait for each.
pub trait Realm<A, M = ()> {
    /// The avatar for `avatar_id`, and what to do when it logs out (Twisted's
    /// `requestAvatar`). Fails if there is none for that user.
    fn request_avatar(&self, avatar_id: &AvatarId, mind: M) -> Deferred<(A, Logout)>;
}

impl<A, M, R: Realm<A, M> + ?Sized> Realm<A, M> for Rc<R> {
    fn request_avatar(&self, avatar_id: &AvatarId, mind: M) -> Deferred<(A, Logout)> {
        (**self).request_avatar(avatar_id, mind)
    }
}

/// What to do when an avatar logs out (Twisted's logout callable): run once, by
/// [`run`](Self::run) or when dropped, whichever comes first.
///
/// Running on drop means a protocol that drops its [`Login`] when its connection is lost
/// logs out without a line of code, and a login abandoned half-way (its Deferred cancelled
/// after the realm answered) does not leave a session open.
#[must_use = "dropping a Logout runs it at once"]
pub struct Logout(Option<Box<dyn FnOnce()>>);

impl Logout {
    /// Runs `f` at logout.
    pub fn new(f: impl FnOnce() + 'static) -> Logout {
        Logout(Some(Box::new(f)))
    }

    /// Nothing to do at logout.
    pub fn none() -> Logout {
        Logout(None)
    }

    /// Runs it now (it will not run again).
    pub fn run(mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl Drop for Logout {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl fmt::Debug for Logout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Logout(pending)"
        } else {
            "Logout(none)"
        })
    }
}

/// A user logged in: who, their avatar, and their logout (Twisted's
/// `(interface, avatar, logout)` triple). Dropping it logs out.
pub struct Login<A> {
    avatar_id: AvatarId,
    avatar: A,
    logout: Logout,
}

impl<A> Login<A> {
    /// Who the checker said the user is.
    pub fn avatar_id(&self) -> &AvatarId {
        &self.avatar_id
    }

    /// The avatar.
    pub fn avatar(&self) -> &A {
        &self.avatar
    }

    /// The avatar, to change.
    pub fn avatar_mut(&mut self) -> &mut A {
        &mut self.avatar
    }

    /// Logs out now (Twisted's `logout()`); the same as dropping it.
    pub fn logout(self) {
        drop(self);
    }

    /// The parts, for a protocol that keeps them apart; the [`Logout`] still runs when
    /// dropped.
    pub fn into_parts(self) -> (AvatarId, A, Logout) {
        (self.avatar_id, self.avatar, self.logout)
    }
}

impl<A> fmt::Debug for Login<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("avatar_id", &self.avatar_id)
            .field("avatar", &std::any::type_name::<A>())
            .finish()
    }
}

/// A checker with its credentials' type erased, to be kept by `TypeId`.
trait ErasedChecker {
    fn check(&self, credentials: Box<dyn Any>) -> Deferred<AvatarId>;
}

struct Typed<C, K> {
    checker: K,
    kind: PhantomData<fn(C)>,
}

impl<C: Credentials, K: CredentialsChecker<C>> ErasedChecker for Typed<C, K> {
    fn check(&self, credentials: Box<dyn Any>) -> Deferred<AvatarId> {
        match credentials.downcast::<C>() {
            Ok(c) => self.checker.request_avatar_id(*c),
            Err(_) => fail(UnhandledCredentials { kind: C::KIND }),
        }
    }
}

struct Checkers {
    by_type: HashMap<TypeId, (&'static str, Rc<dyn ErasedChecker>)>,
}

/// Logs users in: checkers by kind of credentials, and a realm (Twisted's `Portal`).
///
/// Cheap to clone: clones share the realm and the checkers, so a factory hands one to each
/// connection. Lives on one reactor thread.
pub struct Portal<R> {
    realm: Rc<R>,
    checkers: Rc<RefCell<Checkers>>,
}

impl<R> Clone for Portal<R> {
    fn clone(&self) -> Portal<R> {
        Portal {
            realm: self.realm.clone(),
            checkers: self.checkers.clone(),
        }
    }
}

impl<R: 'static> Portal<R> {
    /// A portal to `realm`, with no checker yet.
    pub fn new(realm: R) -> Portal<R> {
        Portal {
            realm: Rc::new(realm),
            checkers: Rc::new(RefCell::new(Checkers {
                by_type: HashMap::new(),
            })),
        }
    }

    /// The realm.
    pub fn realm(&self) -> &R {
        &self.realm
    }

    /// Uses `checker` for credentials of type `C` (Twisted's `registerChecker`), replacing
    /// the one registered for `C` before, if any. A checker of several kinds is registered
    /// once for each: `portal.register_checker::<UsernamePassword, _>(db.clone())`.
    pub fn register_checker<C, K>(&self, checker: K)
    where
        C: Credentials,
        K: CredentialsChecker<C> + 'static,
    {
        let erased: Rc<dyn ErasedChecker> = Rc::new(Typed {
            checker,
            kind: PhantomData::<fn(C)>,
        });
        self.checkers
            .borrow_mut()
            .by_type
            .insert(TypeId::of::<C>(), (C::KIND, erased));
    }

    /// Whether a checker takes credentials of type `C`: what a protocol asks before offering
    /// a method (SMTP's AUTH mechanisms, SSH's `publickey`).
    pub fn handles<C: Credentials>(&self) -> bool {
        self.checkers
            .borrow()
            .by_type
            .contains_key(&TypeId::of::<C>())
    }

    /// The kinds of credentials the checkers take ([`Credentials::KIND`]), sorted (Twisted's
    /// `listCredentialsInterfaces`).
    pub fn credential_kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self
            .checkers
            .borrow()
            .by_type
            .values()
            .map(|(kind, _)| *kind)
            .collect();
        kinds.sort_unstable();
        kinds
    }

    /// Logs in: the checker for `C` says who the credentials prove, then the realm makes
    /// that user's avatar of type `A` (Twisted's `login`; `A` is the interface).
    ///
    /// Fails with [`UnhandledCredentials`] when no checker takes `C`, with the checker's
    /// failure ([`UnauthorizedLogin`](crate::error::UnauthorizedLogin), or
    /// [`TooManyLogins`](crate::error::TooManyLogins)), or with the realm's.
    pub fn login<A, C, M>(&self, credentials: C, mind: M) -> Deferred<Login<A>>
    where
        A: 'static,
        C: Credentials,
        M: 'static,
        R: Realm<A, M>,
    {
        let checker = self
            .checkers
            .borrow()
            .by_type
            .get(&TypeId::of::<C>())
            .map(|(_, c)| c.clone());
        let Some(checker) = checker else {
            return fail(UnhandledCredentials { kind: C::KIND });
        };
        let realm = self.realm.clone();
        checker
            .check(Box::new(credentials))
            .add_callback_deferred(move |avatar_id| {
                realm
                    .request_avatar(&avatar_id, mind)
                    .add_callback(move |(avatar, logout)| Login {
                        avatar_id,
                        avatar,
                        logout,
                    })
            })
    }
}

impl<R> fmt::Debug for Portal<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<_> = self
            .checkers
            .borrow()
            .by_type
            .values()
            .map(|(kind, _)| *kind)
            .collect();
        kinds.sort_unstable();
        f.debug_struct("Portal").field("checkers", &kinds).finish()
    }
}
