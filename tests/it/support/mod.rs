//! What the example tests share: starting an example with `cargo run`, a guard that stops
//! it however the test ends, its output as lines, temporary files; and the throwaway servers
//! of the crates' own tests (ngIRCd, PostgreSQL). Each test file uses what it needs of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};

// The throwaway ngIRCd of torsion-words' interop tests.
#[path = "../../../crates/torsion-words/tests/it/support/ngircd.rs"]
pub(crate) mod ngircd;

// The throwaway PostgreSQL server of torsion-db's tests.
#[allow(unreachable_pub)]
#[path = "../../../crates/torsion-db/tests/it/support/pg.rs"]
pub(crate) mod pg;

/// A running example (or any child process), killed and reaped when dropped, whatever
/// happened.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cargo run --quiet --example NAME --` from the repository root, with standard input
/// closed: add the example's arguments and say what to do with its output.
pub(crate) fn example(name: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO"));
    command
        .args(["run", "--quiet", "--example", name, "--"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::null());
    command
}

/// The lines of `out` (a child's standard output), read on a thread of their own so a test
/// can wait for them with a deadline (`recv_timeout`). The channel closes at end of file.
pub(crate) fn lines(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A path in the temporary folder that no other test of this process uses:
/// `torsion-STEM-PID-N` followed by `extension` (N counts the calls).
pub(crate) fn temp_path(stem: &str, extension: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "torsion-{stem}-{}-{}{extension}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A temporary file with the given contents, removed when dropped.
pub(crate) struct TempFile(pub(crate) PathBuf);

impl TempFile {
    /// Writes `contents` to a new [`temp_path`].
    pub(crate) fn new(stem: &str, extension: &str, contents: &[u8]) -> TempFile {
        let path = temp_path(stem, extension);
        std::fs::write(&path, contents).expect("write the temporary file");
        TempFile(path)
    }

    pub(crate) fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The DOM headless Chromium renders for `url` (after the page's scripts ran), or `None`
/// after a loud skip when there is no Chromium (on CI a missing one fails the test:
/// `scripts/test` installs it). Installs it with apt-get the first time if it is missing.
pub(crate) fn browser_dom(url: &str) -> Option<String> {
    if !have_chromium() {
        return None;
    }
    let profile = temp_path("chromium-profile", "d");
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox", // tests run as root on CI, where the sandbox cannot start
            "--disable-gpu",
            // Well under the highscore page's 5 s meta refresh, which would reload the page
            // under the dump; virtual time only passes while the page is idle.
            "--virtual-time-budget=2000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when Chromium runs; false after a loud skip when it does not (on CI a missing one
/// fails the test). Installs it with apt-get the first time if it is missing.
pub(crate) fn have_chromium() -> bool {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    let runs = || {
        std::process::Command::new("chromium")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    INSTALLED.call_once(|| {
        if !runs() {
            eprintln!("chromium is missing: installing it with apt-get");
            let _ = std::process::Command::new("apt-get")
                .args(["update", "-qq"])
                .status();
            let _ = std::process::Command::new("apt-get")
                .args(["install", "-y", "-qq", "chromium"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status();
        }
    });
    if !runs() {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            "chromium is not installed and apt-get could not install it",
        );
        return false;
    }
    true
}
