//! The static_files seed program, run as a binary: seed 004's `File('.')` serving a folder.

use crate::support;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use support::Running;

/// Sends one request with a fresh connection; returns the whole response.
fn fetch(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn static_files_serves_a_folder() {
    let dir = std::env::temp_dir().join(format!("torsion-example-static-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello world\n").unwrap();
    std::fs::write(dir.join("docs/index.html"), "<h1>docs</h1>").unwrap();

    let mut child = support::example("static_files")
        .args(["--port", "0", "--path"])
        .arg(&dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cargo run starts");
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("the example started");
    assert!(line.starts_with("static_files listening on tcp:"), "{line}");
    let addr: String = line
        .split("tcp:")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();

    let out = fetch(
        port,
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello"), "{out}");
    let out = fetch(
        port,
        "GET /docs/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(out.ends_with("<h1>docs</h1>"), "{out}");
    let out = fetch(
        port,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        out.contains("Directory listing for /") && out.contains(">hello.txt<"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
