//! A TLS listener's handshake timeout: a client that connects and never completes its
//! handshake is aborted, with a log line naming it; a connection whose handshake completed
//! is left alone.

#![cfg(feature = "tls")]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::support::tls::{listen_echo, Ca, Record};
use crate::support::Capture;
use tokio::io::AsyncReadExt;
use torsion::{factory, reactor, ConnectionEnd, Failure, Protocol, Transport};

/// Writes "a" when connected, and keeps its transport for the test to write more.
struct Keeper {
    rec: Rc<Record>,
    transport: Rc<RefCell<Option<Transport>>>,
}

impl Protocol for Keeper {
    fn connection_made(&mut self, t: &Transport) {
        *self.transport.borrow_mut() = Some(t.clone());
        t.write(b"a");
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.rec.saw(t, data);
    }
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
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

#[torsion::test(timeout = 20)]
async fn a_client_that_never_completes_its_handshake_is_aborted() -> Result<(), Failure> {
    let log = Capture::default();
    let _guard = log.start();

    let ca = Ca::new("Torsion handshake timeout CA");
    let timeout = Duration::from_millis(300);
    let server = ca
        .server(&["localhost"])
        .with_handshake_timeout(Some(timeout));
    let (port, _srec) = listen_echo(server)?;
    let addr = port.get_host().socket_addr().unwrap();

    // A TLS client that completes its handshake first: its own timer fires before the
    // stalled client's, and must leave it alone.
    let crec: Rc<Record> = Rc::default();
    let kept: Rc<RefCell<Option<Transport>>> = Rc::default();
    let (c, k) = (crec.clone(), kept.clone());
    reactor().connect_tls(
        "localhost",
        addr.port(),
        factory(move || Keeper {
            rec: c.clone(),
            transport: k.clone(),
        }),
        ca.client(),
    );
    until("the TLS echo", || crec.received.borrow().as_slice() == b"a").await;

    // A TCP client that sends nothing.
    let started = Instant::now();
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut rest = Vec::new();
    // The server closes it: the read ends (a reset is an end too).
    let _ = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut rest))
        .await
        .expect("the stalled connection should have been closed");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(started.elapsed() >= timeout, "closed too early");
    until("the log line", || {
        String::from_utf8_lossy(&log.0.lock().unwrap()).contains("TLS handshake timed out")
    })
    .await;
    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("TLS handshake timed out after 0.3 s"),
        "{logged}"
    );
    assert!(logged.contains("127.0.0.1:"), "no peer address: {logged}");

    // The handshaken connection still works.
    kept.borrow().as_ref().unwrap().write(b"b");
    until("the second echo", || {
        crec.received.borrow().as_slice() == b"ab"
    })
    .await;
    assert!(crec.lost.borrow().is_none());
    kept.borrow().as_ref().unwrap().lose_connection();
    port.stop_listening().await
}
