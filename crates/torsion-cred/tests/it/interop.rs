//! Hashes across implementations nobody here wrote: Python's argon2-cffi (libargon2)
//! verifies what `hash_password` makes, and `FilePasswordDb` accepts what argon2-cffi and
//! pyca's bcrypt make, at their own defaults.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use torsion::Failure;
use torsion_cred::error::UnauthorizedLogin;
use torsion_cred::{hash_password, AvatarId, CredentialsChecker, FilePasswordDb, UsernamePassword};

use crate::support::TempDir;

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/hash_peer.py");

/// A python with argon2-cffi and bcrypt from PyPI, in a venv made on first use (once per
/// process), or None, loudly, without python3. A failed install fails the test.
fn hash_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cred-venv");
    torsion::testing::python_venv(&venv, "argon2, bcrypt", &["argon2-cffi>=21", "bcrypt>=4"])
}

/// Runs the peer with `password` on its standard input; its output lines.
fn peer(py: &Path, args: &[&str], password: &[u8]) -> Vec<String> {
    let mut child = Command::new(py)
        .arg(PEER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(password).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "peer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn argon2_cffi_verifies_hash_password() {
    let Some(py) = hash_python() else { return };
    let password = "pässwörd ✓ with spaces".as_bytes();
    let hash = hash_password(password);
    assert_eq!(peer(&py, &["verify", &hash], password), ["match"]);
    assert_eq!(
        peer(&py, &["verify", &hash], b"p\xc3\xa4ssw\xc3\xb6rd"),
        ["mismatch"]
    );
}

/// A plain test, so that installing the peers (once, maybe slowly) is not counted against
/// the reactor's time-out; the logins then run in a reactor as `#[torsion::test]` runs them.
#[test]
fn a_password_file_accepts_hashes_argon2_cffi_and_bcrypt_make() {
    let Some(py) = hash_python() else { return };
    let made = peer(&py, &["make"], b"from python");
    torsion::testing::run_test("a_password_file_accepts_hashes", 120.0, move || {
        accept_python_hashes(made)
    });
}

async fn accept_python_hashes(made: Vec<String>) -> Result<(), Failure> {
    let [argon, bcrypt] = &made[..] else {
        panic!("peer said {made:?}")
    };
    assert!(
        argon.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"),
        "{argon}"
    );
    assert!(bcrypt.starts_with("$2b$04$"), "{bcrypt}");
    let dir = TempDir::new("interop");
    let path = dir.join("passwords");
    std::fs::write(&path, format!("ada:{argon}\nbob:{bcrypt}\n"))?;
    let db = FilePasswordDb::open(&path)?;
    assert!(db.malformed().is_empty(), "{:?}", db.malformed());
    for user in ["ada", "bob"] {
        let id = db
            .request_avatar_id(UsernamePassword::new(user, "from python"))
            .await?;
        assert_eq!(id, AvatarId::User(user.into()));
        let wrong = db
            .request_avatar_id(UsernamePassword::new(user, "from rust"))
            .await
            .unwrap_err();
        assert!(wrong.check::<UnauthorizedLogin>());
    }
    Ok(())
}
