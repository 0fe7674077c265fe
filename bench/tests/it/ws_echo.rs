//! The WebSocket echo scenario's binary (bench/run's scenario 11): its Torsion server echoes
//! what its load client sends, and the load client fails (exit status 1) on a wrong echo or a
//! refused upgrade, which is what lets `bench/run --quick` catch a broken scenario.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ws_echo server` on an ephemeral port; returns it and its port.
fn start() -> (Server, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ws_echo"))
        .args(["server", "--port", "0"])
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

fn ws_load(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ws_echo"))
        .arg("load")
        .args(args)
        .output()
        .expect("ws_echo runs");
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

/// A one-connection server on an ephemeral port that reads the request head and writes
/// `answer`, then answers every later read with `reply` (if any).
fn fake_server(answer: &'static [u8], reply: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port().to_string();
    std::thread::spawn(move || {
        if let Ok((mut sock, _)) = listener.accept() {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if sock.write_all(answer).is_err() {
                return;
            }
            while let Ok(n) = sock.read(&mut buf) {
                if n == 0 || reply.is_empty() || sock.write_all(reply).is_err() {
                    break;
                }
            }
        }
    });
    port
}

#[test]
fn the_torsion_server_echoes_every_message() {
    let (_server, port) = start();
    let port = port.to_string();
    let (ok, out) = ws_load(&["--port", &port, "--conns", "4", "--messages", "100"]);
    assert!(ok, "ws_echo load failed: {out}");
    assert_eq!(field(&out, "msgs"), 400.0);
    assert_eq!(field(&out, "errors"), 0.0);
    let (p50, p99) = (field(&out, "p50_us"), field(&out, "p99_us"));
    assert!(p50 > 0.0 && p99 >= p50, "{out}");
    // Larger messages take the 16-bit length form both ways.
    let (ok, out) = ws_load(&[
        "--port",
        &port,
        "--conns",
        "1",
        "--size",
        "1000",
        "--messages",
        "10",
    ]);
    assert!(ok, "ws_echo load failed: {out}");
    assert_eq!(field(&out, "msgs"), 10.0);
}

#[test]
fn a_wrong_echo_fails() {
    let port = fake_server(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        b"\x81\x05wrong",
    );
    let (ok, out) = ws_load(&["--port", &port, "--conns", "1", "--messages", "5"]);
    assert!(!ok, "a wrong echo passed: {out}");
    assert_eq!(field(&out, "errors"), 1.0);
    assert_eq!(field(&out, "msgs"), 0.0);
}

#[test]
fn a_refused_upgrade_fails() {
    let port = fake_server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", b"");
    let (ok, out) = ws_load(&["--port", &port, "--conns", "1", "--messages", "5"]);
    assert!(!ok, "a refused upgrade passed: {out}");
    assert_eq!(field(&out, "errors"), 1.0);
}

#[test]
fn a_wrong_accept_key_fails() {
    let port = fake_server(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        b"",
    );
    let (ok, out) = ws_load(&["--port", &port, "--conns", "1", "--messages", "5"]);
    assert!(!ok, "a wrong Sec-WebSocket-Accept passed: {out}");
    assert_eq!(field(&out, "errors"), 1.0);
}
