//! The hashed password stores: one verification per login whoever asks, in a worker thread,
//! capped; the file's malformed lines and its reloading.

use std::sync::Arc;
use std::thread;

use torsion::error::CancelledError;
use torsion::task::defer_later;
use torsion::{reactor, Failure};
use torsion_cred::error::{TooManyLogins, UnauthorizedLogin};
use torsion_cred::{
    hash_password, AvatarId, CredentialsChecker, FilePasswordDb, PasswordHashDb, StoredHash,
    UsernamePassword, VerifyLimiter,
};

use crate::support::{shared, wait_until, Counting, Gate, TempDir};

fn login(name: &str, password: &str) -> UsernamePassword {
    UsernamePassword::new(name, password)
}

/// The timing guarantee, by counting: an unknown user and a wrong password each cost exactly
/// one verification, at the same cost, off the reactor thread, and fail alike.
async fn unknown_user_and_wrong_password_verify_alike(
    db: &dyn CredentialsChecker<UsernamePassword>,
    counter: &Counting,
) -> Result<(), Failure> {
    let reactor_thread = thread::current().id();
    let good = db.request_avatar_id(login("alice", "wonderland")).await?;
    assert_eq!(good, AvatarId::User("alice".into()));
    let real = counter.take();
    assert_eq!(real.len(), 1, "one verification for a good password");

    let wrong = db
        .request_avatar_id(login("alice", "looking-glass"))
        .await
        .unwrap_err();
    let wrong_calls = counter.take();
    let unknown = db
        .request_avatar_id(login("mallory", "looking-glass"))
        .await
        .unwrap_err();
    let unknown_calls = counter.take();

    assert!(wrong.check::<UnauthorizedLogin>() && unknown.check::<UnauthorizedLogin>());
    assert_eq!(wrong.error_message(), unknown.error_message());
    assert_eq!(
        wrong_calls.len(),
        1,
        "one verification for a wrong password"
    );
    assert_eq!(
        unknown_calls.len(),
        1,
        "one verification for an unknown user"
    );
    assert_eq!(
        unknown_calls[0].0, wrong_calls[0].0,
        "the unknown user is verified at the real hashes' cost"
    );
    assert_eq!(unknown_calls[0].0, real[0].0);
    for (_, thread) in real.iter().chain(&wrong_calls).chain(&unknown_calls) {
        assert_ne!(*thread, reactor_thread, "verified on the reactor thread");
    }
    Ok(())
}

#[torsion::test]
async fn in_memory_hashes_verify_unknown_users_and_wrong_passwords_alike() -> Result<(), Failure> {
    let counter = Arc::new(Counting::default());
    let db = PasswordHashDb::new().with_verifier(shared(&counter));
    db.add_user("alice", &hash_password("wonderland")).unwrap();
    db.add_user("bob", &hash_password("builder")).unwrap();
    assert!(db.add_user("eve", "plain-text").is_err());
    assert_eq!(db.users(), 2);
    unknown_user_and_wrong_password_verify_alike(&db, &counter).await?;
    assert!(db.remove_user("bob"));
    assert!(!db.remove_user("bob"));
    Ok(())
}

#[torsion::test]
async fn a_password_file_verifies_unknown_users_and_wrong_passwords_alike() -> Result<(), Failure> {
    let dir = TempDir::new("alike");
    let path = dir.join("passwords");
    std::fs::write(
        &path,
        format!(
            "alice:{}\nbob:{}\n",
            hash_password("wonderland"),
            hash_password("builder")
        ),
    )?;
    let counter = Arc::new(Counting::default());
    let db = FilePasswordDb::open(&path)?.with_verifier(shared(&counter));
    unknown_user_and_wrong_password_verify_alike(&db, &counter).await
}

#[torsion::test]
async fn unknown_users_are_verified_at_the_cost_most_hashes_have() -> Result<(), Failure> {
    let cheap = |pw: &str| bcrypt::hash(pw, 4).unwrap();
    let counter = Arc::new(Counting::default());
    let db = PasswordHashDb::new().with_verifier(shared(&counter));
    db.add_user("alice", &hash_password("a")).unwrap();
    db.add_user("bob", &cheap("b")).unwrap();
    db.add_user("carol", &cheap("c")).unwrap();
    let _ = db
        .request_avatar_id(login("nobody", "x"))
        .await
        .unwrap_err();
    assert_eq!(counter.take()[0].0, "bcrypt 4");
    // An empty store verifies at the cost new hashes get.
    let empty = PasswordHashDb::new().with_verifier(shared(&counter));
    let _ = empty
        .request_avatar_id(login("nobody", "x"))
        .await
        .unwrap_err();
    let made = StoredHash::parse(&hash_password("x")).unwrap();
    assert_eq!(counter.take()[0].0, made.cost());
    Ok(())
}

#[torsion::test]
async fn malformed_lines_are_reported_with_file_and_line_and_skipped() -> Result<(), Failure> {
    let dir = TempDir::new("malformed");
    let path = dir.join("passwords");
    let alice = hash_password("wonderland");
    let bob = bcrypt::hash("builder", 4).unwrap();
    let mut text = format!(
        "# users\n\nalice:{alice}\nno colon here\n:{bob}\ncarol:secret\nbob:{bob}\r\nalice:{bob}\n"
    )
    .into_bytes();
    text.extend_from_slice(b"dave:\xff\xfe\n");
    std::fs::write(&path, &text)?;
    let db = FilePasswordDb::open(&path)?;
    assert_eq!(db.users(), 2);
    let shown: Vec<String> = db.malformed().iter().map(|m| m.to_string()).collect();
    let p = path.display();
    assert_eq!(shown.len(), 5, "{shown:#?}");
    assert_eq!(shown[0], format!("{p}:4: expected user:hash"));
    assert_eq!(shown[1], format!("{p}:5: empty user name"));
    assert!(
        shown[2].starts_with(&format!("{p}:6: user carol: not a password hash")),
        "{}",
        shown[2]
    );
    assert!(
        shown[3].starts_with(&format!("{p}:8: alice is already")),
        "{}",
        shown[3]
    );
    assert_eq!(shown[4], format!("{p}:9: not UTF-8"));
    assert!(
        !shown.iter().any(|s| s.contains("secret")),
        "a plain password was logged"
    );
    // The good lines work, the CRLF one included; the skipped ones do not.
    assert_eq!(
        db.request_avatar_id(login("bob", "builder")).await?,
        AvatarId::User("bob".into())
    );
    assert_eq!(
        db.request_avatar_id(login("alice", "wonderland")).await?,
        AvatarId::User("alice".into())
    );
    let carol = db
        .request_avatar_id(login("carol", "secret"))
        .await
        .unwrap_err();
    assert!(carol.check::<UnauthorizedLogin>());
    Ok(())
}

#[torsion::test]
async fn the_file_is_read_again_when_it_changes() -> Result<(), Failure> {
    let dir = TempDir::new("reload");
    let path = dir.join("passwords");
    std::fs::write(&path, format!("alice:{}\n", hash_password("one")))?;
    let db = FilePasswordDb::open(&path)?;
    db.request_avatar_id(login("alice", "one")).await?;
    assert!(!db.reload_if_changed(), "unchanged");

    // Changed in place.
    std::fs::write(
        &path,
        format!(
            "alice:{}\nbob:{}\n",
            hash_password("two"),
            hash_password("b")
        ),
    )?;
    let old = db
        .request_avatar_id(login("alice", "one"))
        .await
        .unwrap_err();
    assert!(old.check::<UnauthorizedLogin>());
    db.request_avatar_id(login("alice", "two")).await?;
    db.request_avatar_id(login("bob", "b")).await?;
    assert_eq!(db.users(), 2);

    // Replaced by a rename, as editors and `install` do.
    let next = dir.join("passwords.new");
    std::fs::write(&next, format!("alice:{}\n", hash_password("three")))?;
    std::fs::rename(&next, &path)?;
    db.request_avatar_id(login("alice", "three")).await?;
    let bob = db.request_avatar_id(login("bob", "b")).await.unwrap_err();
    assert!(bob.check::<UnauthorizedLogin>());
    Ok(())
}

#[torsion::test]
async fn a_removed_file_refuses_everyone_until_it_is_back() -> Result<(), Failure> {
    let dir = TempDir::new("removed");
    let path = dir.join("passwords");
    let line = format!("alice:{}\n", hash_password("one"));
    std::fs::write(&path, &line)?;
    let db = FilePasswordDb::open(&path)?;
    std::fs::remove_file(&path)?;
    let refused = db
        .request_avatar_id(login("alice", "one"))
        .await
        .unwrap_err();
    assert!(refused.check::<UnauthorizedLogin>());
    assert_eq!(db.users(), 0);
    assert_eq!(db.malformed()[0].reason, "cannot be read");
    std::fs::write(&path, &line)?;
    db.request_avatar_id(login("alice", "one")).await?;
    assert!(FilePasswordDb::open(dir.join("absent")).is_err());
    Ok(())
}

#[torsion::test]
async fn verifications_are_capped_the_rest_wait_in_a_bounded_queue() -> Result<(), Failure> {
    let gate = Arc::new(Gate::default());
    let limiter = VerifyLimiter::new(2, 3);
    let db = PasswordHashDb::new()
        .with_limiter(limiter.clone())
        .with_verifier(shared(&gate));
    db.add_user("alice", &hash_password("x")).unwrap();
    let logins: Vec<_> = (0..5)
        .map(|i| db.request_avatar_id(login("alice", &format!("guess {i}"))))
        .collect();
    // The sixth finds two running and three waiting: refused at once, not verified.
    let sixth = db.request_avatar_id(login("alice", "guess 5"));
    let refused = sixth.result().expect("refused at once").unwrap_err();
    let too_many = refused.downcast_ref::<TooManyLogins>().unwrap();
    assert_eq!((too_many.running, too_many.waiting), (2, 3));

    wait_until("two verifications run", || gate.entered() == 2).await;
    assert_eq!((limiter.running(), limiter.waiting()), (2, 3));

    // The reactor is free while they run: other work goes on.
    defer_later(&reactor(), 0.01, || ()).await?;
    assert_eq!(gate.entered(), 2, "a third started past the cap");

    // A client leaving mid-verification does not free its slot before the thread finishes;
    // one leaving while queued gives its place up.
    logins[0].cancel();
    logins[2].cancel();
    assert_eq!(limiter.running(), 2);

    gate.open();
    let mut outcomes = Vec::new();
    for d in logins {
        outcomes.push(d.await.unwrap_err());
    }
    assert!(outcomes[0].check::<CancelledError>());
    assert!(outcomes[2].check::<CancelledError>());
    for i in [1, 3, 4] {
        assert!(outcomes[i].check::<UnauthorizedLogin>(), "{}", outcomes[i]);
    }
    wait_until("every thread finished", || limiter.running() == 0).await;
    assert_eq!(gate.entered(), 4, "the cancelled waiter was never verified");
    assert_eq!(
        gate.most_inside.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    assert_eq!(limiter.waiting(), 0);
    Ok(())
}
