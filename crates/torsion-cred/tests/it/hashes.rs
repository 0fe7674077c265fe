//! Stored hashes: reading, verifying, the dummy of the same cost, the limits.

use torsion_cred::hash::{MAX_ARGON2_MEMORY_KIB, MAX_BCRYPT_COST};
use torsion_cred::{hash_password, Scheme, StoredHash};

/// An argon2id hash of "password" at the cheapest cost (m=8 KiB, t=1), made by Python's
/// argon2-cffi 25.1 (libargon2): `PasswordHasher(time_cost=1, memory_cost=8,
/// parallelism=1).hash("password", salt=b"somesalt")`. The live interop test is
/// `interop.rs`; this one runs without Python.
const REFERENCE_ARGON2ID: &str =
    "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$8Tf44YakA6Z5zNBgblq13Nr+Q8FkCFWsjG4z6b1j7rM";

#[test]
fn hash_password_makes_argon2id_with_the_default_cost_and_a_fresh_salt() {
    let a = hash_password("correct horse");
    let b = hash_password("correct horse");
    assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
    assert_ne!(a, b, "each hash has its own random salt");
    let stored = StoredHash::parse(&a).unwrap();
    assert_eq!(stored.scheme(), Scheme::Argon2);
    assert_eq!(stored.as_str(), a);
    assert!(stored.verify(b"correct horse"));
    assert!(!stored.verify(b"correct horsf"));
    assert!(!stored.verify(b""));
}

#[test]
fn an_argon2_hash_made_elsewhere_verifies() {
    let stored = StoredHash::parse(REFERENCE_ARGON2ID).unwrap();
    assert_eq!(stored.cost(), "argon2id v=19 m=8,t=1,p=1 out=32");
    assert!(stored.verify(b"password"));
    assert!(!stored.verify(b"Password"));
}

#[test]
fn bcrypt_hashes_verify_whatever_their_prefix() {
    let made = bcrypt::hash("hunter2", 4).unwrap();
    assert!(made.starts_with("$2b$04$"), "{made}");
    for prefix in ["$2a$", "$2b$", "$2y$"] {
        let text = format!("{prefix}{}", &made[4..]);
        let stored = StoredHash::parse(&text).unwrap();
        assert_eq!(stored.scheme(), Scheme::Bcrypt);
        assert_eq!(stored.cost(), "bcrypt 4");
        assert!(stored.verify(b"hunter2"), "{text}");
        assert!(!stored.verify(b"hunter3"), "{text}");
    }
}

#[test]
fn a_dummy_has_the_same_cost_and_matches_no_password() {
    let argon = StoredHash::parse(REFERENCE_ARGON2ID).unwrap();
    let bcrypt = StoredHash::parse(&bcrypt::hash("hunter2", 5).unwrap()).unwrap();
    for real in [argon, bcrypt] {
        let dummy = real.dummy();
        assert_eq!(dummy.cost(), real.cost());
        assert_eq!(dummy.scheme(), real.scheme());
        assert_ne!(dummy.as_str(), real.as_str());
        // It is itself a well-formed hash of the same cost.
        let reread = StoredHash::parse(dummy.as_str()).unwrap();
        assert_eq!(reread.cost(), real.cost());
        for guess in [&b"password"[..], b"hunter2", b"", b"torsion-cred dummy"] {
            assert!(!dummy.verify(guess));
        }
        assert_ne!(
            real.dummy().as_str(),
            dummy.as_str(),
            "a fresh salt each time"
        );
    }
    let default = StoredHash::default_dummy();
    let made = StoredHash::parse(&hash_password("x")).unwrap();
    assert_eq!(default.cost(), made.cost());
}

#[test]
fn what_is_not_a_usable_hash_is_refused_with_a_reason() {
    let cases = [
        ("hunter2", "not a password hash"),
        ("", "not a password hash"),
        ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "not a password hash"),
        (
            "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ",
            "no salt or no hash",
        ),
        ("$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$!!!", "Argon2 hash"),
        (
            "$argon2x$v=19$m=8,t=1,p=1$c29tZXNhbHQ$xs4UADO8jK3T5HSpWE5Yz2p6n9zfWOKiUgE16gOsRw0",
            "Argon2 hash",
        ),
        (
            "$argon2id$v=42$m=8,t=1,p=1$c29tZXNhbHQ$xs4UADO8jK3T5HSpWE5Yz2p6n9zfWOKiUgE16gOsRw0",
            "version",
        ),
        ("$2b$04$tooshort", "bcrypt hash"),
        ("$2b$", "bcrypt hash"),
    ];
    for (text, why) in cases {
        let err = StoredHash::parse(text)
            .err()
            .unwrap_or_else(|| panic!("{text} accepted"));
        assert!(err.reason.contains(why), "{text}: {err}");
    }
}

#[test]
fn costs_past_the_limits_are_refused_before_any_verification() {
    let huge_memory = format!(
        "$argon2id$v=19$m={},t=1,p=1$c29tZXNhbHQ$xs4UADO8jK3T5HSpWE5Yz2p6n9zfWOKiUgE16gOsRw0",
        MAX_ARGON2_MEMORY_KIB + 1
    );
    let err = StoredHash::parse(&huge_memory).unwrap_err();
    assert!(err.reason.contains("memory cost"), "{err}");
    let passes =
        "$argon2id$v=19$m=8,t=1000,p=1$c29tZXNhbHQ$xs4UADO8jK3T5HSpWE5Yz2p6n9zfWOKiUgE16gOsRw0";
    assert!(StoredHash::parse(passes)
        .unwrap_err()
        .reason
        .contains("passes"));
    let made = bcrypt::hash("x", 4).unwrap();
    let slow = format!("$2b${}{}", MAX_BCRYPT_COST + 1, &made[6..]);
    let err = StoredHash::parse(&slow).unwrap_err();
    assert!(err.reason.contains("cost"), "{err}");
}

#[test]
fn debug_shows_the_cost_not_the_hash() {
    let stored = StoredHash::parse(REFERENCE_ARGON2ID).unwrap();
    let shown = format!("{stored:?}");
    assert!(shown.contains("m=8,t=1,p=1"), "{shown}");
    assert!(!shown.contains("xs4UADO8"), "{shown}");
}
