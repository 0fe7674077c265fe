//! The web seed programs, run as binaries: hello_web, web_counter, and byte_count (a TCP
//! protocol and a web page sharing one counter).

use crate::support;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use support::Running;

/// Starts an example and returns it with the ports in its first line of output
/// ("... listening on tcp:127.0.0.1:PORT ...").
fn start(name: &str, args: &[&str]) -> (Running, Vec<u16>) {
    let mut child = support::example(name)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("cargo run starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let running = Running(child);
    let line = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("the example started");
    let ports = line
        .split("tcp:")
        .skip(1)
        .map(|rest| {
            let addr: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != ')')
                .collect();
            addr.rsplit(':').next().unwrap().parse().unwrap()
        })
        .collect();
    (running, ports)
}

/// GETs `path` on `port` with a fresh connection; returns the body.
fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    out.split_once("\r\n\r\n").unwrap().1.to_owned()
}

#[test]
fn hello_web_says_hello_on_every_path() {
    let (_server, ports) = start("hello_web", &["--port", "0"]);
    assert_eq!(
        get(ports[0], "/"),
        "<html><body>Hello Twisted</body></html>"
    );
    assert_eq!(
        get(ports[0], "/any/path"),
        "<html><body>Hello Twisted</body></html>"
    );
}

#[test]
fn web_counter_counts_users() {
    let (_server, ports) = start("web_counter", &["--port", "0"]);
    assert_eq!(get(ports[0], "/"), "Welcome user number 1");
    assert_eq!(get(ports[0], "/x"), "Welcome user number 2");
}

#[test]
fn byte_count_shows_the_bytes_the_protocol_counted() {
    let (_server, ports) = start("byte_count", &["--tcp-port", "0", "--web-port", "0"]);
    let (tcp, web) = (ports[0], ports[1]);
    assert_eq!(get(web, "/"), "Received 0 bytes");
    let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    s.write_all(&[7u8; 1234]).unwrap();
    drop(s);
    // The bytes arrive asynchronously; ask until the page shows them (bounded).
    for _ in 0..500 {
        if get(web, "/") == "Received 1234 bytes" {
            return;
        }
        std::thread::yield_now();
    }
    panic!("the page never showed 1234 bytes: {}", get(web, "/"));
}

#[test]
fn byte_count_manhole_reads_and_changes_the_count() {
    let (_server, ports) = start(
        "byte_count",
        &["--tcp-port", "0", "--web-port", "0", "--manhole", "0"],
    );
    let (tcp, web, manhole) = (ports[0], ports[1], ports[2]);
    let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    s.write_all(&[7u8; 10]).unwrap();
    drop(s);
    for _ in 0..500 {
        if get(web, "/") == "Received 10 bytes" {
            break;
        }
        std::thread::yield_now();
    }
    // A plain TCP client: the telnet negotiation stays unanswered, the console in plain lines.
    let mut c = TcpStream::connect(("127.0.0.1", manhole)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut until_prompt = move |send: &str| -> String {
        c.write_all(send.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b">>> ") {
            assert_eq!(c.read(&mut byte).unwrap(), 1, "the console closed");
            got.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&got[..got.len() - 4]).into_owned();
        text.trim_end_matches("\r\n").to_string()
    };
    until_prompt(""); // the banner, after the (unanswered) telnet negotiation
    let mut ask = |line: &str| until_prompt(&format!("{line}\r\n"));
    assert_eq!(ask("count"), "10");
    assert_eq!(ask("count = 99; count"), "99");
    assert_eq!(get(web, "/"), "Received 99 bytes");
    assert!(ask("count = -1").contains("cannot be negative"));
    ask("reset()");
    assert_eq!(get(web, "/"), "Received 0 bytes");
}
