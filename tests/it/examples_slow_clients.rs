//! The example servers with clients that do not read: `echo_server` stops reading from a
//! client whose echo it cannot send, and `chat_server` drops a chatter that leaves too much
//! unread, so neither buffers without limit.

use crate::examples_net::start_server;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for the server to make progress before it calls the send stalled.
const QUIET: Duration = Duration::from_secs(2);

/// How long a whole exchange may take.
const DEADLINE: Duration = Duration::from_secs(120);

/// The byte at `offset` of the test payload: not periodic over a chunk, so a lost or
/// repeated chunk shows.
fn pattern(offset: usize) -> u8 {
    (offset % 251) as u8
}

#[test]
fn echo_server_stops_reading_from_a_client_that_does_not_read() {
    const TOTAL: usize = 64 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    /// What the kernel's socket buffers (both ways) and the server may hold together.
    const BOUND: usize = 24 * 1024 * 1024;
    let (server, port) = start_server("echo_server", "echo server", &[]);
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to echo_server");
    stream.set_read_timeout(Some(QUIET * 5)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    // The writer sends the whole payload and reports how much was accepted after each chunk.
    let (progress, accepted) = mpsc::channel();
    thread::spawn(move || {
        let mut sent = 0;
        while sent < TOTAL {
            let chunk: Vec<u8> = (sent..sent + CHUNK).map(pattern).collect();
            if writer.write_all(&chunk).is_err() {
                return;
            }
            sent += CHUNK;
            if progress.send(sent).is_err() {
                return;
            }
        }
    });
    // Nobody reads: the writer must stall once the buffers are full.
    let start = Instant::now();
    let mut sent = 0;
    loop {
        match accepted.recv_timeout(QUIET) {
            Ok(n) => sent = n,
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the writer neither stalled nor finished"
        );
    }
    eprintln!("echo_server took {sent} bytes before the writer stalled");
    assert!(
        sent < BOUND,
        "the server took {sent} bytes from a client that reads nothing (bound {BOUND})"
    );
    // Now read it all back: the server resumes reading as its buffer drains.
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let mut got = 0;
    while got < TOTAL {
        let buf = reader.fill_buf().expect("read the echo");
        assert!(!buf.is_empty(), "echo_server closed after {got} bytes");
        for (i, &b) in buf.iter().enumerate() {
            assert_eq!(b, pattern(got + i), "wrong byte at offset {}", got + i);
        }
        let n = buf.len();
        reader.consume(n);
        got += n;
        assert!(
            start.elapsed() < DEADLINE,
            "the echo took too long ({got} bytes)"
        );
    }
    drop(server);
}

#[test]
fn chat_server_drops_a_chatter_that_does_not_read() {
    /// What the talker floods the room with: far more than the silent chatter's socket
    /// buffers and the server's 1 MiB ceiling.
    const FLOOD: usize = 24 * 1024 * 1024;
    let (server, port) = start_server("chat_server", "chat server", &[]);
    let connect = || {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to chat_server");
        stream.set_read_timeout(Some(QUIET * 5)).unwrap();
        stream
    };
    let mut silent = connect();
    let mut talker = connect();
    let line = format!("{}\r\n", "x".repeat(1000));
    let mut flooded = 0;
    while flooded < FLOOD {
        talker
            .write_all(line.as_bytes())
            .expect("the talker is still served");
        flooded += line.len();
    }
    // A newcomer hears the talker after the flood: the server kept serving it.
    let newcomer = connect();
    // It may join after the talker's last line was broadcast: the talker says it again each
    // second until heard.
    newcomer
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut newcomer = BufReader::new(newcomer);
    let start = Instant::now();
    let heard = loop {
        assert!(
            start.elapsed() < DEADLINE,
            "the newcomer never heard the talker"
        );
        talker
            .write_all(b"still here\r\n")
            .expect("the talker is still served");
        let mut got = String::new();
        match newcomer.read_line(&mut got) {
            Ok(_) if got.ends_with("says: still here\r\n") => break got,
            Ok(0) => panic!("the newcomer was dropped"),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("the newcomer cannot read: {e}"),
        }
    };
    eprintln!("the newcomer heard the talker after {:?}", start.elapsed());
    assert!(
        heard.starts_with(&talker.local_addr().unwrap().to_string()),
        "{heard:?}"
    );
    // The silent chatter was dropped: it reads what had reached it, then the end (or a reset).
    let mut unread = 0;
    let mut buf = vec![0; 1 << 20];
    loop {
        match silent.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => unread += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the silent chatter was not dropped after {unread} bytes: {e}"),
        }
    }
    assert!(unread < FLOOD, "the silent chatter got all {unread} bytes");
    drop(server);
}
