//! Runs the `udp_echo` example with `cargo run --example` and sends it datagrams over UDP.

use crate::support;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use support::Running;

/// How long the example may take to start, building included.
const DEADLINE: Duration = Duration::from_secs(300);

/// How long the test waits for an echo.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `udp_echo --port 0` and returns it with the port it printed.
fn start_udp_echo() -> (Running, u16) {
    let mut child = Running(
        support::example("udp_echo")
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start cargo run"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("udp_echo did not say where it listens"));
    let port = line
        .trim_end()
        .strip_prefix("udp echo listening on udp:")
        .and_then(|address| address.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from udp_echo: {line:?}"));
    (child, port)
}

#[test]
fn udp_echo_sends_every_datagram_back_to_its_sender() {
    let (server, port) = start_udp_echo();
    let clients: Vec<UdpSocket> = (0..2)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
            s.connect(("127.0.0.1", port)).unwrap();
            s
        })
        .collect();
    let mut buf = vec![0u8; 65536];
    for (i, message) in [&b"hello"[..], b"", &[0x5a; 8000][..]].iter().enumerate() {
        for (c, client) in clients.iter().enumerate() {
            let tagged = [&[i as u8, c as u8][..], message].concat();
            client.send(&tagged).unwrap();
            let n = client.recv(&mut buf).expect("an echo within the time-out");
            assert_eq!(
                &buf[..n],
                &tagged[..],
                "client {c} got its own datagram back"
            );
        }
    }
    drop(server);
}
