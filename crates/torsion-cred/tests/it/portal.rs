//! The portal: checkers by kind of credentials, typed avatars from the realm, logout.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::{fail, succeed, Deferred};
use torsion::Failure;
use torsion_cred::error::{UnauthorizedLogin, UnhandledCredentials};
use torsion_cred::{
    AllowAnonymousAccess, Anonymous, AvatarId, Credentials, CredentialsChecker,
    InMemoryUsernamePasswordDatabaseDontUse, Login, Logout, Portal, Realm, UsernamePassword,
};

/// What a POP3 session would get.
#[derive(Debug)]
struct Mailbox {
    owner: AvatarId,
}

/// What an SSH session would get: a different avatar from the same realm.
#[derive(Debug)]
struct Shell {
    user: String,
    terminal: String,
}

/// A realm that logs logins and logouts.
#[derive(Default)]
struct Recorder {
    events: Rc<RefCell<Vec<String>>>,
}

impl Realm<Mailbox> for Recorder {
    fn request_avatar(&self, id: &AvatarId, _mind: ()) -> Deferred<(Mailbox, Logout)> {
        self.events.borrow_mut().push(format!("mailbox for {id}"));
        let events = self.events.clone();
        let bye = id.to_string();
        succeed((
            Mailbox { owner: id.clone() },
            Logout::new(move || events.borrow_mut().push(format!("{bye} logged out"))),
        ))
    }
}

/// The mind here is the client's terminal type, as SSH's pty request would tell it.
impl Realm<Shell, String> for Recorder {
    fn request_avatar(&self, id: &AvatarId, terminal: String) -> Deferred<(Shell, Logout)> {
        match id.user() {
            Some(user) => succeed((
                Shell {
                    user: user.to_owned(),
                    terminal,
                },
                Logout::none(),
            )),
            // Guests get no shell: the realm's failure is the login's.
            None => fail(UnauthorizedLogin),
        }
    }
}

fn portal() -> (Portal<Recorder>, Rc<RefCell<Vec<String>>>) {
    let realm = Recorder::default();
    let events = realm.events.clone();
    let users = InMemoryUsernamePasswordDatabaseDontUse::new();
    users.add_user("alice", "wonderland");
    let portal = Portal::new(realm);
    portal.register_checker(users);
    (portal, events)
}

#[torsion::test]
async fn a_login_gets_the_avatar_the_protocol_asks_for() -> Result<(), Failure> {
    let (portal, events) = portal();
    let mail: Login<Mailbox> = portal
        .login(UsernamePassword::new("alice", "wonderland"), ())
        .await?;
    assert_eq!(mail.avatar_id(), &AvatarId::User("alice".into()));
    assert_eq!(mail.avatar().owner, AvatarId::User("alice".into()));
    let shell: Login<Shell> = portal
        .login(
            UsernamePassword::new("alice", "wonderland"),
            "xterm".to_string(),
        )
        .await?;
    assert_eq!(shell.avatar().user, "alice");
    assert_eq!(shell.avatar().terminal, "xterm");
    assert_eq!(*events.borrow(), ["mailbox for alice"]);
    Ok(())
}

#[torsion::test]
async fn logout_runs_once_when_called_or_when_the_login_is_dropped() -> Result<(), Failure> {
    let (portal, events) = portal();
    let first: Login<Mailbox> = portal
        .login(UsernamePassword::new("alice", "wonderland"), ())
        .await?;
    first.logout();
    assert_eq!(events.borrow().last().unwrap(), "alice logged out");
    {
        let _second: Login<Mailbox> = portal
            .login(UsernamePassword::new("alice", "wonderland"), ())
            .await?;
        assert_eq!(events.borrow().len(), 3);
    } // the connection went away
    assert_eq!(events.borrow().len(), 4);
    assert_eq!(events.borrow().last().unwrap(), "alice logged out");
    let third: Login<Mailbox> = portal
        .login(UsernamePassword::new("alice", "wonderland"), ())
        .await?;
    let (_, _, logout) = third.into_parts();
    logout.run();
    assert_eq!(events.borrow().len(), 6, "ran once: {:?}", events.borrow());
    Ok(())
}

#[torsion::test]
async fn refused_credentials_never_reach_the_realm() -> Result<(), Failure> {
    let (portal, events) = portal();
    for (user, password) in [("alice", "looking-glass"), ("mallory", "wonderland")] {
        let refused = portal
            .login::<Mailbox, _, _>(UsernamePassword::new(user, password), ())
            .await
            .unwrap_err();
        assert!(refused.check::<UnauthorizedLogin>(), "{refused}");
    }
    assert!(events.borrow().is_empty());
    Ok(())
}

#[torsion::test]
async fn credentials_no_checker_takes_are_unhandled() -> Result<(), Failure> {
    let (portal, _) = portal();
    assert!(portal.handles::<UsernamePassword>());
    assert!(!portal.handles::<Anonymous>());
    let guest = portal
        .login::<Mailbox, _, _>(Anonymous, ())
        .await
        .unwrap_err();
    let unhandled = guest.trap::<UnhandledCredentials>().unwrap();
    assert_eq!(unhandled.kind, "anonymous");

    portal.register_checker(AllowAnonymousAccess);
    assert_eq!(
        portal.credential_kinds(),
        ["anonymous", "username-password"]
    );
    let guest: Login<Mailbox> = portal.login(Anonymous, ()).await?;
    assert_eq!(guest.avatar().owner, AvatarId::Anonymous);
    // The realm decides what a guest may have.
    let shell = portal
        .login::<Shell, _, _>(Anonymous, "vt100".to_string())
        .await
        .unwrap_err();
    assert!(shell.check::<UnauthorizedLogin>());
    Ok(())
}

/// Public-key credentials as the SSH crate will define them, outside this crate: a new kind
/// needs no change to torsion-cred.
struct PublicKey {
    username: String,
    key: Vec<u8>,
    signature_ok: bool,
}

impl Credentials for PublicKey {
    const KIND: &'static str = "ssh-public-key";
}

/// An `authorized_keys` stand-in.
struct AuthorizedKeys(Vec<(String, Vec<u8>)>);

impl CredentialsChecker<PublicKey> for AuthorizedKeys {
    fn request_avatar_id(&self, c: PublicKey) -> Deferred<AvatarId> {
        let known = self.0.iter().any(|(u, k)| *u == c.username && *k == c.key);
        if known && c.signature_ok {
            succeed(AvatarId::User(c.username))
        } else {
            fail(UnauthorizedLogin)
        }
    }
}

#[torsion::test]
async fn a_crate_adds_its_own_kind_of_credentials() -> Result<(), Failure> {
    let (portal, _) = portal();
    portal.register_checker(AuthorizedKeys(vec![(
        "alice".into(),
        b"ssh-ed25519 AAAA".to_vec(),
    )]));
    assert_eq!(
        portal.credential_kinds(),
        ["ssh-public-key", "username-password"]
    );
    let key = |sig| PublicKey {
        username: "alice".into(),
        key: b"ssh-ed25519 AAAA".to_vec(),
        signature_ok: sig,
    };
    let shell: Login<Shell> = portal.login(key(true), "xterm".to_string()).await?;
    assert_eq!(shell.avatar().user, "alice");
    let forged = portal
        .login::<Shell, _, _>(key(false), "xterm".to_string())
        .await
        .unwrap_err();
    assert!(forged.check::<UnauthorizedLogin>());
    // Passwords still go to the password checker.
    let _: Login<Shell> = portal
        .login(
            UsernamePassword::new("alice", "wonderland"),
            "xterm".to_string(),
        )
        .await?;
    Ok(())
}

#[torsion::test]
async fn registering_a_kind_again_replaces_its_checker() -> Result<(), Failure> {
    let (portal, _) = portal();
    let others = InMemoryUsernamePasswordDatabaseDontUse::new();
    others.add_user("bob", "builder");
    portal.register_checker(others);
    let _: Login<Mailbox> = portal
        .login(UsernamePassword::new("bob", "builder"), ())
        .await?;
    let alice = portal
        .login::<Mailbox, _, _>(UsernamePassword::new("alice", "wonderland"), ())
        .await
        .unwrap_err();
    assert!(alice.check::<UnauthorizedLogin>());
    Ok(())
}

#[test]
fn the_plain_text_database_compares_whole_passwords() {
    let db = InMemoryUsernamePasswordDatabaseDontUse::new();
    db.add_user("alice", "wonderland");
    let check = |u: &str, p: &str| {
        db.request_avatar_id(UsernamePassword::new(u, p))
            .result()
            .unwrap()
    };
    assert_eq!(
        check("alice", "wonderland").unwrap(),
        AvatarId::User("alice".into())
    );
    for (u, p) in [
        ("alice", "wonder"),
        ("alice", "wonderlands"),
        ("alice", ""),
        ("Alice", "wonderland"),
    ] {
        assert!(
            check(u, p).unwrap_err().check::<UnauthorizedLogin>(),
            "{u}/{p}"
        );
    }
    assert!(db.remove_user("alice"));
    assert!(check("alice", "wonderland").is_err());
}
