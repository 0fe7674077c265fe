//! The `torsiond` binary, run for real: help, the web and echo plugins, signals, and misuse.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{self, stderr_of, torsiond};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    fn terminate(&mut self) -> ExitStatus {
        support::terminate(&mut self.0, TIMEOUT)
    }
}

/// Runs torsiond to completion (killed after 10 s).
fn run(args: &[&str]) -> Output {
    support::run(args, TIMEOUT)
}

/// Starts a server and returns it with the ports of its first `count` "listening on" lines
/// (the log goes to standard output).
fn start(args: &[&str], count: usize) -> (Running, Vec<u16>) {
    let mut child = torsiond()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Reads to the end, so the server never writes into a closed pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    let mut ports = Vec::new();
    while ports.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("torsiond printed 'listening on'");
        if let Some((_, addr)) = line.split_once("listening on tcp:") {
            let port = addr.trim().rsplit(':').next().unwrap().parse().unwrap();
            ports.push(port);
        }
    }
    (running, ports)
}

/// A fresh folder under the system's temporary folder.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("torsiond-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// GETs `path`; returns the whole response.
fn get(port: u16, path: &str) -> String {
    let mut s = connect(port);
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
fn help_lists_the_plugins() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("web") && help.contains("Serve the files"),
        "{help}"
    );
    assert!(
        help.contains("echo") && help.contains("Echo back"),
        "{help}"
    );
    assert!(help.contains("--nodaemon"), "{help}");
}

#[test]
fn web_serves_a_file_and_stops_on_sigterm() {
    let dir = temp_dir("web");
    std::fs::write(dir.join("hello.txt"), "hello from torsiond\n").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let (mut server, ports) = start(
        &[
            "-n",
            "web",
            "--path",
            dir.to_str().unwrap(),
            "--listen",
            "tcp:0:interface=127.0.0.1",
        ],
        1,
    );
    let response = get(ports[0], "/hello.txt");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.ends_with("\r\n\r\nhello from torsiond\n"),
        "{response}"
    );
    let listing = get(ports[0], "/sub/");
    assert!(listing.starts_with("HTTP/1.1 200"), "{listing}");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn web_no_listing_forbids_folders() {
    let dir = temp_dir("nolisting");
    std::fs::create_dir(dir.join("sub")).unwrap();
    let (mut server, ports) = start(
        &[
            "web",
            "--path",
            dir.to_str().unwrap(),
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--no-listing",
        ],
        1,
    );
    let response = get(ports[0], "/sub/");
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Serves `dir` (with `extra` options), and checks that a file rewritten in place and a file
/// replaced by a rename are served as they are now, whatever the server kept open.
fn files_are_served_as_they_are_now(name: &str, extra: &[&str]) {
    let dir = temp_dir(name);
    let file = dir.join("a.txt");
    std::fs::write(&file, "first version").unwrap();
    let mut args = vec![
        "web",
        "--path",
        dir.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ];
    args.extend_from_slice(extra);
    let (mut server, ports) = start(&args, 1);
    let first = get(ports[0], "/a.txt");
    assert!(first.ends_with("\r\n\r\nfirst version"), "{first}");
    // Rewritten in place, longer: same inode, new length and bytes.
    std::fs::write(&file, "the second, longer version").unwrap();
    let second = get(ports[0], "/a.txt");
    assert!(
        second.ends_with("\r\n\r\nthe second, longer version"),
        "{second}"
    );
    assert!(second.contains("Content-Length: 26"), "{second}");
    // Replaced by a rename, as deploy tools do: a new inode at the same path.
    let next = dir.join("a.txt.next");
    std::fs::write(&next, "third").unwrap();
    std::fs::rename(&next, &file).unwrap();
    let third = get(ports[0], "/a.txt");
    assert!(third.ends_with("\r\n\r\nthird"), "{third}");
    // Deleted: gone, whatever was open.
    std::fs::remove_file(&file).unwrap();
    let gone = get(ports[0], "/a.txt");
    assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn web_serves_changed_and_replaced_files_fresh() {
    files_are_served_as_they_are_now("fresh", &[]);
}

#[test]
fn web_without_the_open_file_cache_serves_the_same() {
    files_are_served_as_they_are_now("nocache", &["--no-open-file-cache"]);
}

#[test]
fn web_port_alias_listens() {
    let dir = temp_dir("port");
    std::fs::write(dir.join("a.txt"), "alias").unwrap();
    let (mut server, ports) = start(&["web", "--path", dir.to_str().unwrap(), "--port", "0"], 1);
    let response = get(ports[0], "/a.txt");
    assert!(response.ends_with("\r\n\r\nalias"), "{response}");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_folder_is_one_line_and_status_1() {
    let dir = temp_dir("missing").join("not-there");
    let out = run(&[
        "web",
        "--path",
        dir.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not-there"), "{err}");
}

#[test]
fn a_bad_endpoint_names_the_bad_part() {
    let out = run(&["web", "--listen", "tcp:80x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("80x"), "{err}");
}

#[test]
fn an_unknown_plugin_is_a_usage_error() {
    let out = run(&["nosuchplugin"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_of(&out).lines().count(), 1);
}

#[test]
fn a_port_in_use_is_status_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(&[
        "echo",
        "--listen",
        &format!("tcp:{port}:interface=127.0.0.1"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    let failure: Vec<&str> = err.lines().filter(|l| l.starts_with("torsiond:")).collect();
    assert_eq!(failure.len(), 1, "{err}");
    assert!(failure[0].contains(&port.to_string()), "{err}");
    assert!(!err.contains("Failure:"), "{err}");
}

#[test]
fn echo_round_trip() {
    let (mut server, ports) = start(&["echo", "--listen", "tcp:0:interface=127.0.0.1"], 1);
    let mut s = connect(ports[0]);
    s.write_all(b"ping\r\n").unwrap();
    let mut buf = [0u8; 6];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping\r\n");
    drop(s);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_closed_stdout_and_stderr_do_not_turn_shutdown_into_a_panic() {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_torsiond"))
        .args(["echo", "--listen", "tcp:0:interface=127.0.0.1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap(); // it is running and logging
                                            // Whoever started it stops reading: the log lines of the shutdown meet closed pipes.
    drop(stdout);
    drop(child.stderr.take());
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "exit status {exit:?} (101 would be a panic)"
    );
}
