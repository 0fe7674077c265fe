//! Python peers for interop tests: a virtual environment with packages from PyPI, made once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::skip::{skip, Missing};

/// A Python interpreter with `packages` installed from PyPI, for tests that talk to a peer
/// written in Python (Twisted, `websockets`, dnspython, ...).
///
/// The interpreter lives in a virtual environment at `venv`, made with `python3 -m venv` and
/// `pip install` the first time; later calls, in this process or a later one, find it ready
/// when `python -c "import {imports}"` succeeds. Calls for the same `venv` in one process
/// wait for each other, so parallel tests install once. Without `python3` on the machine
/// the test is skipped loudly ([`skip`], which fails on CI) and `None` comes back; a failed
/// install panics, failing the test with pip's message.
///
/// ```no_run
/// // In an integration test, `env!("CARGO_TARGET_TMPDIR")` is a good home for it.
/// let venv = std::env::temp_dir().join("websockets-venv");
/// let Some(python) = torsion::testing::python_venv(&venv, "websockets", &["websockets>=13"])
/// else {
///     return; // skipped: no python3 here
/// };
/// let out = std::process::Command::new(python).args(["-c", "print(1)"]).output().unwrap();
/// assert!(out.status.success());
/// ```
pub fn python_venv(venv: &Path, imports: &str, packages: &[&str]) -> Option<PathBuf> {
    static MADE: Mutex<BTreeMap<PathBuf, Option<PathBuf>>> = Mutex::new(BTreeMap::new());
    let mut made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(python) = made.get(venv) {
        return python.clone();
    }
    let python = make_venv(venv, imports, packages);
    made.insert(venv.to_path_buf(), python.clone());
    python
}

fn make_venv(venv: &Path, imports: &str, packages: &[&str]) -> Option<PathBuf> {
    if Command::new("python3").arg("--version").output().is_err() {
        skip(Missing::Peer, "python3 is not installed");
        return None;
    }
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", &format!("import {imports}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let out = Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "python3 -m venv {}: {}",
            venv.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(packages)
            .output()
            .expect("the venv's python runs");
        assert!(
            out.status.success(),
            "pip install {}: {}",
            packages.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(python)
}
