//! Running the datagram interop peer (`tests/interop/datagram_peer.py`) from an async test
//! without blocking the reactor: its output is read on a thread and polled.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

pub const PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/datagram_peer.py"
);

/// Held while a peer process starts. Between fork and exec a child holds copies of every
/// file descriptor, so a socket closed meanwhile stays open until the exec: tests that need
/// a socket closed *now* (to see a refusal) close it holding this lock; see [`close_now`].
pub static FORK_LOCK: Mutex<()> = Mutex::new(());

/// Drops `thing` (a socket) while no peer process is being started, so that it is really
/// closed when this returns.
pub fn close_now<T>(thing: T) {
    let _guard = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    drop(thing);
}

/// How long a peer may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// `python3`, or None with a loud message when it is missing.
pub fn python3() -> Option<PathBuf> {
    if Command::new("python3").arg("--version").output().is_err() {
        torsion::testing::skip(torsion::testing::Missing::Peer, "python3 is not installed");
        return None;
    }
    Some(PathBuf::from("python3"))
}

/// A python with Twisted from PyPI, in the venv the Twisted interop tests share (made on
/// first use, once per process: the tests that need it run in parallel in this binary), or
/// None (loudly) without python3. A failed install fails the test.
pub fn twisted_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("twisted-venv");
    torsion::testing::python_venv(&venv, "twisted", &["twisted>=22"])
}

/// A running peer: killed and reaped when dropped; its stdout lines arrive on `lines`.
pub struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    /// Starts `python datagram_peer.py ARGS`.
    pub fn start(python: &Path, args: &[&str]) -> Peer {
        // `spawn` returns once the child has exec'd (and so closed its copies of our sockets).
        let guard = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = Command::new(python)
            .arg(PEER)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the python peer");
        drop(guard);
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer { child, lines }
    }

    /// The peer's next line of output, waiting for it without blocking the reactor.
    pub async fn line(&mut self) -> String {
        let give_up = Instant::now() + DEADLINE;
        loop {
            match self.lines.try_recv() {
                Ok(line) => return line,
                Err(mpsc::TryRecvError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!("the peer ended ({status}) without the line expected");
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
            assert!(
                Instant::now() < give_up,
                "the peer said nothing for {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits for the peer to exit, and says whether it succeeded.
    pub async fn success(&mut self) -> bool {
        let give_up = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < give_up,
                "the peer did not finish in {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
