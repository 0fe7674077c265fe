//! The runner's options, run for real with the `torsiond` binary: files fetched with curl,
//! two workers sharing a port, a graceful stop that lets a slow download finish, the second
//! signal, the pidfile, log rotation, JSON logs, the umask, and misuse.
//!
//! Servers listen on ephemeral ports (the port is read from the "listening on" log line);
//! the two-worker test asks the system for a free port first, as SO_REUSEPORT sockets must
//! all name the same one. Waits poll with generous deadlines.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{self, free_port, stderr_of, torsiond, TempDir, TIMEOUT};

/// Kills the server when the test ends, however it ends.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (at most `TIMEOUT`) for the exit status.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "torsiond did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Log lines until one satisfies `want` (panics after `TIMEOUT`); returns them all.
    fn lines_until(&self, mut want: impl FnMut(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = want(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("the awaited log line never came; saw {seen:#?}"),
            }
        }
    }

    /// The ports of the next `count` "listening on" lines.
    fn ports(&self, count: usize) -> Vec<u16> {
        let mut ports = Vec::new();
        while ports.len() < count {
            for line in self.lines_until(|l| l.contains("listening on tcp:")) {
                if let Some((_, addr)) = line.split_once("listening on tcp:") {
                    ports.push(addr.trim().rsplit(':').next().unwrap().parse().unwrap());
                }
            }
        }
        ports
    }
}

/// Starts torsiond; its standard output (the log) comes line by line through `lines`.
fn start(args: &[&str]) -> Server {
    let mut child = torsiond()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    Server { child, lines: rx }
}

/// Runs torsiond to completion (killed after `TIMEOUT`).
fn run(args: &[&str]) -> Output {
    support::run(args, TIMEOUT)
}

fn poll_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when curl is there (installed if missing, as scripts/test does); says so loudly
/// when it cannot be had.
fn have_curl() -> bool {
    let works = || {
        Command::new("curl")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works() {
        return true;
    }
    support::apt_get_install(&["curl"]);
    if works() {
        return true;
    }
    eprintln!("*** curl is missing and could not be installed: this test did NOT run ***");
    false
}

/// GETs `path` on a new connection that closes after the response.
fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn curl_fetches_the_files_of_a_folder() {
    if !have_curl() {
        return;
    }
    let tmp = TempDir::new("curl");
    let dir = tmp.path();
    std::fs::write(dir.join("hello.txt"), "hello from torsiond\n").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("sub").join("data.bin"), &data).unwrap();
    let mut server = start(&[
        "web",
        "--path",
        dir.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let port = server.ports(1)[0];
    let fetch = |path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--fail", &format!("http://127.0.0.1:{port}{path}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "curl {path}: {}", stderr_of(&out));
        out.stdout
    };
    assert_eq!(fetch("/hello.txt"), b"hello from torsiond\n");
    assert_eq!(fetch("/sub/data.bin"), data);
    let listing = String::from_utf8(fetch("/sub/")).unwrap();
    assert!(listing.contains("data.bin"), "{listing}");
    let missing = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{port}/nope"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&missing.stdout), "404");
    // Each request has its access log line.
    server.lines_until(|l| l.contains("\"GET /nope HTTP/1.1\" 404"));
    server.signal("TERM");
    assert!(server.wait().success());
}

#[test]
fn two_workers_share_the_port_and_both_serve() {
    let tmp = TempDir::new("workers");
    let dir = tmp.path();
    std::fs::write(dir.join("a.txt"), "shared").unwrap();
    let port = free_port();
    let endpoint = format!("tcp:{port}:interface=127.0.0.1");
    let mut server = start(&[
        "--workers",
        "2",
        "web",
        "--path",
        dir.to_str().unwrap(),
        "--listen",
        &endpoint,
    ]);
    let mut listening = Vec::new();
    while listening.len() < 2 {
        listening.extend(
            server
                .lines_until(|l| l.contains("listening on"))
                .into_iter()
                .filter(|l| l.contains("listening on")),
        );
    }
    assert!(
        listening.iter().any(|l| l.contains("[worker 0]")),
        "{listening:?}"
    );
    assert!(
        listening.iter().any(|l| l.contains("[worker 1]")),
        "{listening:?}"
    );
    // The kernel spreads new connections over the two sockets by their address hash: with
    // 64 connections, the odds that one worker gets none are 2^-63.
    for _ in 0..64 {
        let response = get(port, "/a.txt");
        assert!(response.ends_with("\r\n\r\nshared"), "{response}");
    }
    let mut served = [0usize; 2];
    let mut seen = 0;
    server.lines_until(|l| {
        if l.contains("torsion_web::access") {
            seen += 1;
            for (w, count) in served.iter_mut().enumerate() {
                if l.contains(&format!("[worker {w}]")) {
                    *count += 1;
                }
            }
        }
        seen == 64
    });
    assert!(
        served[0] > 0 && served[1] > 0,
        "requests per worker: {served:?}"
    );
    assert_eq!(served[0] + served[1], 64);
    server.signal("TERM");
    assert!(server.wait().success());
}

#[test]
fn sigterm_lets_a_slow_download_finish_and_refuses_new_connections() {
    if !have_curl() {
        return;
    }
    let tmp = TempDir::new("drain");
    let dir = tmp.path();
    // 16 MiB read at 4 MiB/s: about 4 s, far more than the socket buffers hold, so the
    // server is still writing the response when the signal comes.
    let data: Vec<u8> = (0..16u32 << 20).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.join("big.bin"), &data).unwrap();
    let mut server = start(&[
        "--shutdown-timeout",
        "60",
        "web",
        "--path",
        dir.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let port = server.ports(1)[0];

    // An idle keep-alive connection: one request answered, then nothing.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(TIMEOUT)).unwrap();
    idle.write_all(b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        idle.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    idle.read_exact(&mut body).unwrap();

    let out_path = dir.join("downloaded.bin");
    let mut curl = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--limit-rate",
            "4M",
            "-o",
            out_path.to_str().unwrap(),
            &format!("http://127.0.0.1:{port}/big.bin"),
        ])
        .spawn()
        .unwrap();
    poll_until("the download to start", || {
        std::fs::metadata(&out_path).is_ok_and(|m| m.len() > 1 << 20)
    });
    let signalled = Instant::now();
    server.signal("TERM");

    // The idle connection is closed at once (long before the 60 s deadline).
    let mut rest = Vec::new();
    let n = idle.read_to_end(&mut rest).unwrap();
    assert_eq!(n, 0, "an idle connection got more bytes");
    assert!(signalled.elapsed() < Duration::from_secs(5));

    // New connections are refused while the download goes on.
    poll_until("the port to close", || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert!(
        curl.try_wait().unwrap().is_none(),
        "the download ended before the port closed: the test proves nothing"
    );
    assert!(
        !server.exited(),
        "torsiond exited before the download finished"
    );

    let status = curl.wait().unwrap();
    assert!(status.success(), "curl failed: {status:?}");
    let got = std::fs::read(&out_path).unwrap();
    assert!(
        got == data,
        "the download was cut short: {} bytes",
        got.len()
    );
    assert!(server.wait().success());
}

#[test]
fn a_connection_that_cannot_drain_is_cut_at_the_deadline() {
    let mut server = start(&[
        "--shutdown-timeout",
        "0.5",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let port = server.ports(1)[0];
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server.wait();
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took >= Duration::from_millis(450), "stopped after {took:?}");
    // The connection was closed (aborted) by the server.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

#[test]
fn a_second_signal_stops_at_once() {
    let mut server = start(&[
        "--shutdown-timeout",
        "600",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let port = server.ports(1)[0];
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"x").unwrap();
    let mut buf = [0u8; 1];
    s.read_exact(&mut buf).unwrap();
    server.signal("TERM");
    server.lines_until(|l| l.contains("Received SIGTERM"));
    assert!(
        !server.exited(),
        "the echo connection should hold the graceful stop"
    );
    server.signal("INT");
    let status = server.wait();
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_pidfile_is_written_guarded_and_removed() {
    let tmp = TempDir::new("pidfile");
    let dir = tmp.path();
    let pidfile = dir.join("torsiond.pid");
    // A stale file (no such process) is replaced.
    std::fs::write(&pidfile, format!("{}\n", i32::MAX - 1)).unwrap();
    let mut server = start(&[
        "--pidfile",
        pidfile.to_str().unwrap(),
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    server.ports(1);
    let written = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(written.trim(), server.pid().to_string());

    // A second server with the same pidfile refuses to start, and leaves the file alone.
    let out = run(&[
        "--pidfile",
        pidfile.to_str().unwrap(),
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&server.pid().to_string()), "{err}");
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), written);

    server.signal("TERM");
    assert!(server.wait().success());
    assert!(!pidfile.exists(), "the pidfile outlived the server");
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn the_log_file_rotates_by_size_and_keeps_a_count() {
    let tmp = TempDir::new("rotate");
    let dir = tmp.path();
    std::fs::write(dir.join("a.txt"), "x").unwrap();
    let log = dir.join("torsiond.log");
    let mut server = start(&[
        "--logfile",
        log.to_str().unwrap(),
        "--log-rotate-size",
        "2K",
        "--log-rotate-keep",
        "3",
        "web",
        "--path",
        dir.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let mut port = 0;
    poll_until("the listening line in the log file", || {
        let text = read_log(&log);
        match text.split_once("listening on tcp:") {
            Some((_, rest)) => {
                let addr = rest.lines().next().unwrap();
                port = addr.rsplit(':').next().unwrap().trim().parse().unwrap();
                true
            }
            None => false,
        }
    });
    // About 120 bytes per access line: 100 requests make several 2 KiB files.
    for i in 0..100 {
        get(port, &format!("/a.txt?request={i}"));
    }
    let numbered = |n: usize| {
        let mut name = log.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    poll_until("the last access line", || {
        read_log(&log).contains("request=99")
    });
    server.signal("TERM");
    assert!(server.wait().success());
    for n in 1..=3 {
        let size = std::fs::metadata(numbered(n)).unwrap().len();
        assert!(
            size > 0 && size <= 2048,
            "{}: {size} bytes",
            numbered(n).display()
        );
    }
    assert!(!numbered(4).exists(), "more than 3 rotated files kept");
    assert!(read_log(&log).contains("stopped"));
}

#[test]
fn json_log_lines_carry_timestamp_level_target_message_and_fields() {
    let mut server = start(&[
        "--log-format",
        "json",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let lines = server.lines_until(|l| l.contains("listening on"));
    server.signal("TERM");
    assert!(server.wait().success());
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} missing in {line}");
        }
        assert!(v["fields"].is_object(), "{line}");
    }
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["level"], "INFO");
    assert_eq!(last["target"], "torsiond");
    assert!(last["message"]
        .as_str()
        .unwrap()
        .starts_with("listening on tcp:"));
}

#[test]
fn the_umask_applies_to_the_files_torsiond_creates() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("umask");
    let dir = tmp.path();
    let log = dir.join("t.log");
    let pid = dir.join("t.pid");
    let mut server = start(&[
        "--umask",
        "077",
        "--logfile",
        log.to_str().unwrap(),
        "--pidfile",
        pid.to_str().unwrap(),
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    poll_until("the log line", || read_log(&log).contains("listening on"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(&pid), 0o600);
    server.signal("TERM");
    assert!(server.wait().success());
}

#[test]
fn a_port_in_use_with_two_workers_is_one_line_and_status_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(&[
        "--workers",
        "2",
        "echo",
        "--listen",
        &format!("tcp:{port}:interface=127.0.0.1"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&port.to_string()), "{err}");
}

#[test]
fn bad_runner_options_are_one_line_and_status_2() {
    for args in [
        &["--workers", "0", "echo"][..],
        &["--workers", "many", "echo"],
        &["--umask", "999", "echo"],
        &["--log-format", "xml", "echo"],
        &["--log-rotate-size", "10Q", "echo"],
        &["--shutdown-timeout", "-1", "echo"],
        &["echo", "--listen", "tcp:port=:interface=127.0.0.1"],
        &["echo", "--listen", "nosuchkind:1"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr_of(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("torsiond: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_log_file_in_a_missing_folder_is_one_line_and_status_1() {
    let out = run(&[
        "--logfile",
        "/nonexistent-folder-for-torsiond/t.log",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nonexistent-folder-for-torsiond"), "{err}");
}
