//! `torsiond portforward`, run for real: in front of `torsiond echo`, on two endpoints at
//! once (one of them `haproxy:`), a destination that refuses, and misuse.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::support::{Running, TIMEOUT};

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

#[test]
fn forwards_to_torsiond_echo() {
    let mut echo = Running::start(&["echo", "--listen", "tcp:0:interface=127.0.0.1"]);
    let echo_port = echo.port();
    let dest = format!("127.0.0.1:{echo_port}");
    let mut fwd = Running::start(&[
        "portforward",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--listen",
        "haproxy:tcp:0:interface=127.0.0.1",
        "--dest",
        &dest,
    ]);
    let plain = fwd.port();
    let behind_balancer = fwd.port();

    let mut s = connect(plain);
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut w = s.try_clone().unwrap();
    let sent = big.clone();
    let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
    let mut got = vec![0u8; big.len()];
    s.read_exact(&mut got).unwrap();
    writer.join().unwrap();
    assert!(got == big, "the echo through the forwarder differs");

    // The haproxy: endpoint takes the header off before forwarding.
    let mut s = connect(behind_balancer);
    s.write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 1000 80\r\nping")
        .unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");

    assert!(fwd.terminate().success());
    assert!(echo.terminate().success());
}

#[test]
fn a_refused_destination_closes_the_connection_with_a_log_line() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dest = format!("127.0.0.1:{nobody}");
    let mut fwd = Running::start(&[
        "portforward",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--dest",
        &dest,
    ]);
    let mut s = connect(fwd.port());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(out.is_empty());
    let line = fwd.wait_for("port forward: cannot connect");
    assert!(line.contains(&dest), "{line}");
    assert!(fwd.terminate().success());
}

#[test]
fn misuse_is_a_usage_error() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_torsiond"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let no_dest = run(&["portforward", "--listen", "tcp:0"]);
    assert_eq!(no_dest.status.code(), Some(2));
    let bad_dest = run(&["portforward", "--listen", "tcp:0", "--dest", "nowhere"]);
    assert_eq!(bad_dest.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_dest.stderr).contains("HOST:PORT"));
    let no_listen = run(&["portforward", "--dest", "127.0.0.1:1"]);
    assert_eq!(no_listen.status.code(), Some(2));
    let help = run(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("portforward"));
}
