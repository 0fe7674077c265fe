//! A listening port's send timeout: a connection whose peer takes none of what is written
//! for that long is aborted, with a log line; a peer that reads is served to the end.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::support::Capture;
use tokio::io::AsyncReadExt;
use torsion::tcp::ListenOptions;
use torsion::{factory, reactor, ConnectionEnd, Failure, Protocol, Transport};

/// More than the kernel buffers of both ends of a loopback connection hold.
const SIZE: usize = 32 << 20;

/// Writes `SIZE` bytes at once, then closes; records how each connection ended.
struct Flood(Rc<RefCell<Vec<String>>>);

impl Protocol for Flood {
    fn connection_made(&mut self, t: &Transport) {
        t.write(&vec![b'x'; SIZE]);
        t.lose_connection();
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.0.borrow_mut().push(format!("{reason:?}"));
    }
}

/// Waits until `done` holds, checking every few milliseconds, for at most 10 s.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[torsion::test(timeout = 30)]
async fn a_peer_that_never_reads_is_aborted_and_a_reader_is_served() -> Result<(), Failure> {
    let log = Capture::default();
    let _guard = log.start();

    let ends = Rc::new(RefCell::new(Vec::new()));
    let e = ends.clone();
    let timeout = Duration::from_millis(500);
    let options = ListenOptions::default().send_timeout(Some(timeout));
    let port =
        reactor().listen_tcp_with(0, factory(move || Flood(e.clone())), "127.0.0.1", options)?;
    assert_eq!(port.send_timeout(), Some(timeout));
    let addr = port.get_host().socket_addr().unwrap();

    // Never reads.
    let stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    // Reads everything, slower than the timeout overall but always making progress.
    let mut reader = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut got = Vec::with_capacity(SIZE);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), SIZE);

    until("both connections to end", || ends.borrow().len() == 2).await;
    assert!(started.elapsed() >= timeout, "aborted too early");
    let ends = ends.borrow().clone();
    assert!(ends.iter().any(|e| e.contains("Done")), "{ends:?}");
    assert!(ends.iter().any(|e| e.contains("Abort")), "{ends:?}");
    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("send timed out") && logged.contains("for 0.5 s"),
        "{logged}"
    );
    assert!(logged.contains("127.0.0.1:"), "no peer address: {logged}");
    drop(stalled);
    port.stop_listening().await
}

#[torsion::test(timeout = 30)]
async fn a_slow_reader_that_keeps_taking_bytes_outlives_the_timeout() -> Result<(), Failure> {
    let ends = Rc::new(RefCell::new(Vec::new()));
    let e = ends.clone();
    let timeout = Duration::from_millis(300);
    let options = ListenOptions::default().send_timeout(Some(timeout));
    let port =
        reactor().listen_tcp_with(0, factory(move || Flood(e.clone())), "127.0.0.1", options)?;
    let addr = port.get_host().socket_addr().unwrap();
    let started = Instant::now();
    let mut reader = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // The reader's pace: 1 MiB at a time, a third of the timeout apart, so the whole
        // download takes several timeouts but no gap reaches one.
        let mut chunk = 0;
        while chunk < (1 << 20) {
            let n = reader.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            chunk += n;
        }
        got += chunk;
        if chunk < (1 << 20) {
            break;
        }
        tokio::time::sleep(timeout / 3).await;
    }
    assert_eq!(got, SIZE);
    assert!(started.elapsed() > timeout * 3, "the download was not slow");
    until("the connection to end", || ends.borrow().len() == 1).await;
    assert!(ends.borrow()[0].contains("Done"), "{:?}", ends.borrow());
    port.stop_listening().await
}
