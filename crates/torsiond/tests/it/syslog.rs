//! `--syslog`, `--prefix` and `--facility` (twistd's `--syslog` and `--prefix`): log lines
//! arrive as datagrams on a socket the test binds in place of `/dev/log` (through
//! `TORSION_SYSLOG_SOCKET`), framed `<PRI>PREFIX[PID]: MESSAGE`; a missing socket falls back
//! to standard output with a warning; `--syslog` with `--logfile` is a usage error.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{self, stderr_of, Running, TempDir, TIMEOUT};

/// A datagram socket standing in for `/dev/log`, and the folder that holds it.
struct FakeSyslog {
    socket: UnixDatagram,
    dir: TempDir,
}

impl FakeSyslog {
    fn new(name: &str) -> FakeSyslog {
        let dir = TempDir::new(name);
        let socket = UnixDatagram::bind(dir.path().join("log")).unwrap();
        FakeSyslog { socket, dir }
    }

    /// torsiond `args`, logging to this socket.
    fn torsiond(&self, args: &[&str]) -> Running {
        let mut c = Command::new(env!("CARGO_BIN_EXE_torsiond"));
        c.env("TORSION_SYSLOG_SOCKET", self.dir.path().join("log"))
            .args(args);
        Running::spawn(c)
    }

    /// Datagrams until one contains `needle` (panics after `TIMEOUT`).
    fn until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        let mut buf = vec![0; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no datagram with '{needle}': {seen:#?}");
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8(buf[..n].to_vec()).unwrap();
                    let found = text.contains(needle);
                    seen.push(text);
                    if found {
                        return seen;
                    }
                }
                Err(e) => panic!("no datagram with '{needle}' ({e}): {seen:#?}"),
            }
        }
    }
}

#[test]
fn syslog_datagrams_carry_priority_prefix_pid_and_message() {
    let syslog = FakeSyslog::new("syslog");
    // Two workers on port 0 log a warning (each would get a port of its own).
    let mut server = syslog.torsiond(&[
        "--syslog",
        "--prefix",
        "web-test",
        "--facility",
        "daemon",
        "--workers",
        "2",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let pid = server.pid();
    let datagrams = syslog.until("listening on tcp:127.0.0.1:");
    // daemon (3) * 8 + warning (4) = 28; + info (6) = 30.
    let warning = datagrams
        .iter()
        .find(|d| d.contains("with port 0 and --workers 2"))
        .unwrap_or_else(|| panic!("{datagrams:#?}"));
    assert!(
        warning.starts_with(&format!("<28>web-test[{pid}]: [worker 0] torsiond: tcp:")),
        "{warning}"
    );
    let listening = datagrams.last().unwrap();
    let prefix = format!("<30>web-test[{pid}]: [worker ");
    assert!(listening.starts_with(&prefix), "{listening}");
    assert!(
        listening.contains("] torsiond: listening on tcp:127.0.0.1:"),
        "{listening}"
    );
    assert!(!listening.ends_with('\n'), "{listening:?}");
    assert!(server.terminate().success());
    let last = syslog.until("stopped");
    assert_eq!(
        last.last().unwrap(),
        &format!("<30>web-test[{pid}]: [worker 0] torsiond: stopped")
    );
}

#[test]
fn syslog_defaults_to_the_user_facility_and_the_torsiond_prefix() {
    let syslog = FakeSyslog::new("syslog-default");
    let mut server = syslog.torsiond(&[
        "--syslog",
        "--log-format",
        "json",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let pid = server.pid();
    let datagrams = syslog.until("listening on");
    // user (1) * 8 + info (6) = 14; a JSON line is the message.
    let line = datagrams.last().unwrap();
    let head = format!("<14>torsiond[{pid}]: ");
    let json = line.strip_prefix(&head).unwrap_or_else(|| panic!("{line}"));
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["level"], "INFO");
    assert!(v["message"].as_str().unwrap().starts_with("listening on"));
    assert!(server.terminate().success());
}

#[test]
fn without_a_syslog_socket_lines_go_to_standard_output_with_a_warning() {
    let dir = TempDir::new("no-syslog");
    let mut c = Command::new(env!("CARGO_BIN_EXE_torsiond"));
    c.env("TORSION_SYSLOG_SOCKET", dir.path().join("missing"))
        .args(["--syslog", "echo", "--listen", "tcp:0:interface=127.0.0.1"]);
    let mut server = Running::spawn(c);
    // The warning (standard error) and the log lines (standard output) come on two pipes,
    // so in either order: wait for each by itself.
    let mut lines = server.lines_until("cannot log to syslog through");
    let warning = lines.pop().unwrap();
    assert!(
        warning.starts_with("torsiond: cannot log to syslog through")
            && warning.contains("missing")
            && warning.ends_with("logging to standard output instead"),
        "{warning}"
    );
    if !lines.iter().any(|l| l.contains("listening on")) {
        server.wait_for("listening on");
    }
    assert!(server.terminate().success());
}

#[test]
fn syslog_and_logfile_exclude_each_other() {
    let out = support::run(&["--syslog", "--logfile", "x.log", "echo"], TIMEOUT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("'--syslog' cannot be used with '--logfile"),
        "{}",
        stderr_of(&out)
    );
    let out = support::run(&["--syslog", "--prefix", "bad prefix", "echo"], TIMEOUT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}
