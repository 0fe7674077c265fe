//! The load generator against real servers: it reports figures for a working echo server and
//! fails (exit status 1) on a wrong echo or a refused connection, which is what lets
//! `bench/run --quick` catch a broken scenario.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

/// Kills the child when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a bench server binary on an ephemeral port; returns it and its port.
fn start(bin: &str) -> (Server, u16) {
    let mut child = Command::new(bin)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("the server prints its address");
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (Server(child), port)
}

fn loadgen(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("loadgen runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn field(line: &str, name: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
}

#[test]
fn echo_reports_messages_and_latency() {
    let (_server, port) = start(env!("CARGO_BIN_EXE_tokio_echo"));
    let port = port.to_string();
    let (ok, out) = loadgen(&["echo", "--port", &port, "--conns", "4", "--messages", "200"]);
    assert!(ok, "loadgen failed: {out}");
    assert_eq!(field(&out, "msgs"), 800.0);
    assert_eq!(field(&out, "errors"), 0.0);
    let (p50, p99) = (field(&out, "p50_us"), field(&out, "p99_us"));
    assert!(p50 > 0.0 && p99 >= p50, "{out}");
}

#[test]
fn idle_holds_connections_after_one_exchange() {
    let (_server, port) = start(env!("CARGO_BIN_EXE_hyper_hello"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "idle",
            "--port",
            &port.to_string(),
            "--conns",
            "20",
            "--http",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("loadgen runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("loadgen reports");
    // Still holding them: it has not exited.
    assert!(child.try_wait().expect("wait works").is_none());
    child.kill().expect("kill");
    let _ = child.wait();
    assert_eq!(line.trim(), "ready 20 errors=0");
}

#[test]
fn a_wrong_echo_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port().to_string();
    std::thread::spawn(move || {
        if let Ok((mut sock, _)) = listener.accept() {
            let mut buf = [0u8; 64];
            while let Ok(n) = sock.read(&mut buf) {
                if n == 0 || sock.write_all(&vec![b'z'; n]).is_err() {
                    break;
                }
            }
        }
    });
    let (ok, out) = loadgen(&["echo", "--port", &port, "--conns", "1", "--messages", "5"]);
    assert!(!ok, "a wrong echo passed: {out}");
    assert_eq!(field(&out, "errors"), 1.0);
}

#[test]
fn a_refused_connection_fails() {
    // A port that was free a moment ago: nothing listens there now.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
        .to_string();
    let (ok, out) = loadgen(&["echo", "--port", &port, "--duration", "0.2"]);
    assert!(!ok, "a refused connection passed: {out}");
}
