//! What the torsiond tests share: the `torsiond` binary started for real, run to completion
//! with a deadline, stopped with SIGTERM, watched line by line; and apt-get, one at a time.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// How long a wait may take, unless a test says otherwise.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

/// The `torsiond` binary of this package, with standard input closed.
pub(crate) fn torsiond() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_torsiond"));
    c.stdin(Stdio::null());
    c
}

/// Runs torsiond to completion (killed after `timeout`).
pub(crate) fn run(args: &[&str], timeout: Duration) -> Output {
    let child = torsiond()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("torsiond {args:?} did not exit within {timeout:?}");
        }
    }
}

pub(crate) fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sends SIGTERM to `child` and waits (at most `timeout`) for its exit status.
pub(crate) fn terminate(child: &mut Child, timeout: Duration) -> ExitStatus {
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "torsiond did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running torsiond (or the launcher that starts it), killed when the test ends however
/// it ends; its standard output and standard error both arrive as lines.
pub(crate) struct Running(Child, mpsc::Receiver<String>);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Starts `torsiond ARGS`.
    pub(crate) fn start(args: &[&str]) -> Running {
        let mut c = Command::new(env!("CARGO_BIN_EXE_torsiond"));
        c.args(args);
        Running::spawn(c)
    }

    /// The process ID of the running torsiond (or launcher).
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Starts `c`, standard input closed.
    pub(crate) fn spawn(mut c: Command) -> Running {
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Log lines go to standard output, errors to standard error: watch both.
        let (tx, rx) = mpsc::channel();
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for pipe in [out, err] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            });
        }
        Running(child, rx)
    }

    /// The next line (of either output) containing `needle`.
    pub(crate) fn wait_for(&self, needle: &str) -> String {
        self.lines_until(needle).pop().unwrap()
    }

    /// The lines (of either output) up to and including the next one containing `needle`.
    pub(crate) fn lines_until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.1.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with '{needle}' in the output: {seen:#?}"),
            }
        }
    }

    /// The port of the next `listening on tcp:...` line.
    pub(crate) fn port(&self) -> u16 {
        let line = self.wait_for("listening on tcp:");
        line.rsplit(':').next().unwrap().trim().parse().unwrap()
    }

    /// The exit status, if the process has ended.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().unwrap()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        terminate(&mut self.0, TIMEOUT)
    }
}

pub(crate) use torsion::testing::TempDir;

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `apt-get update` then `apt-get install PACKAGES`, quietly, one call at a time in this
/// process: the tests run in parallel, and two apt-gets at once fight over dpkg's lock.
pub(crate) fn apt_get_install(packages: &[&str]) {
    static APT: Mutex<()> = Mutex::new(());
    let _one_at_a_time = APT.lock().unwrap_or_else(|e| e.into_inner());
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(packages)
        .stdout(Stdio::null())
        .status();
}

/// A full-screen terminal program (irssi, slrn) in a tmux server of its own, its socket in the
/// test's folder: keys go in with `send-keys`, the screen comes out with `capture-pane`. The
/// tmux server is killed when this is dropped.
pub(crate) struct Terminal {
    socket: PathBuf,
}

impl Terminal {
    /// Runs the shell command `command` in a 200x50 terminal, tmux's socket in `dir`.
    pub(crate) fn start(dir: &Path, command: &str) -> Terminal {
        let terminal = Terminal {
            socket: dir.join("tmux.sock"),
        };
        let started = terminal.tmux(&["new-session", "-d", "-x", "200", "-y", "50", command]);
        assert!(
            started.status.success(),
            "tmux did not start {command:?}: {started:?}"
        );
        terminal
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "screen")
            .output()
            .unwrap()
    }

    /// Types `text` literally, then Enter.
    pub(crate) fn type_line(&self, text: &str) {
        assert!(self.tmux(&["send-keys", "-l", text]).status.success());
        self.key("Enter");
    }

    /// Presses one key, named as tmux names keys (`Enter`, `Space`, `y`).
    pub(crate) fn key(&self, key: &str) {
        assert!(self.tmux(&["send-keys", key]).status.success());
    }

    /// The screen, once it shows `want` (polled: the program draws when it is ready).
    pub(crate) fn screen_with(&self, want: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let screen =
                String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p"]).stdout).into_owned();
            if screen.contains(want) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {want:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// Whether `program` is on the PATH.
pub(crate) fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether every one of `programs` is on the PATH; for the first missing one, the test is
/// skipped loudly (failed on CI) and this says false.
pub(crate) fn have_all(programs: &[&str]) -> bool {
    match programs.iter().find(|p| !have(p)) {
        Some(missing) => {
            torsion::testing::skip(
                torsion::testing::Missing::Peer,
                format!("{missing} is not installed"),
            );
            false
        }
        None => true,
    }
}
