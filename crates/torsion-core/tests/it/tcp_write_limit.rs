//! The write limit: a connection whose peer does not read is aborted
//! (`WritePolicy::Disconnect`) or has its writes dropped whole and counted
//! (`WritePolicy::DropWrites`) once its unsent bytes would pass the limit, with a warning
//! naming the peer; a peer that reads is served to the end. Listeners set it with
//! `ListenOptions::write_limit` or `writeLimit=BYTES`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::support::Capture;
use tokio::io::AsyncReadExt;
use torsion::endpoints::{server_from_string, ServerDescription};
use torsion::error::ConnectionAborted;
use torsion::reactor::DelayedCall;
use torsion::tcp::ListenOptions;
use torsion::transport::{WriteLimit, WritePolicy};
use torsion::{factory, reactor, ConnectionEnd, Failure, Protocol, Transport};

/// One message: an 8-byte sequence number, then a body, written as two parts.
const BODY: usize = 64 * 1024 - 8;
const MESSAGE: usize = BODY + 8;
/// Messages sent to each connection: 32 MiB, more than the kernel buffers of both ends of a
/// loopback connection hold.
const MESSAGES: u64 = 512;

/// What the server saw of one connection.
#[derive(Default)]
struct Seen {
    /// How each connection ended.
    ends: RefCell<Vec<String>>,
    /// The dropped bytes of each connection that wrote everything, when it did.
    dropped: RefCell<Vec<u64>>,
    /// The write limit each connection had when made.
    limits: RefCell<Vec<Option<WriteLimit>>>,
}

/// Sends `MESSAGES` messages, one per reactor turn (every 0.5 ms), then closes. The next
/// tick is cancelled when the connection ends, so no timer outlives the test.
struct Ticker(Rc<Seen>, Rc<RefCell<Option<DelayedCall>>>);

impl Ticker {
    fn new(seen: Rc<Seen>) -> Ticker {
        Ticker(seen, Rc::default())
    }
}

fn tick(t: Transport, seq: u64, seen: Rc<Seen>, next: Rc<RefCell<Option<DelayedCall>>>) {
    if t.disconnecting() {
        return;
    }
    if seq == MESSAGES {
        seen.dropped.borrow_mut().push(t.dropped_write_bytes());
        t.lose_connection();
        return;
    }
    t.write_sequence(&[&seq.to_be_bytes(), &[b'x'; BODY]]);
    let n = next.clone();
    *next.borrow_mut() = Some(reactor().call_later(0.0005, move || tick(t, seq + 1, seen, n)));
}

impl Protocol for Ticker {
    fn connection_made(&mut self, t: &Transport) {
        self.0.limits.borrow_mut().push(t.write_limit());
        let (t, seen, next) = (t.clone(), self.0.clone(), self.1.clone());
        let n = next.clone();
        *next.borrow_mut() = Some(reactor().call_later(0.0, move || tick(t, 0, seen, n)));
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        if let Some(next) = self.1.borrow_mut().take() {
            if next.active() {
                next.cancel().expect("an active call cancels");
            }
        }
        if let ConnectionEnd::WriteLimit { .. } = reason {
            assert!(reason.check::<ConnectionAborted>());
            assert!(reason.to_string().contains("unread"), "{reason}");
        }
        self.0.ends.borrow_mut().push(format!("{reason:?}"));
    }
}

/// Waits until `done` holds, checking every few milliseconds, for at most 20 s.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads to the end; the messages it got, each checked whole and in order.
async fn read_messages(stream: &mut tokio::net::TcpStream) -> Vec<u64> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        got.len() % MESSAGE,
        0,
        "a message was cut: {} bytes",
        got.len()
    );
    let seqs: Vec<u64> = got
        .chunks(MESSAGE)
        .map(|m| {
            assert!(m[8..].iter().all(|&b| b == b'x'), "a message body was cut");
            u64::from_be_bytes(m[..8].try_into().unwrap())
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order");
    seqs
}

#[torsion::test(timeout = 60)]
async fn a_peer_that_never_reads_is_disconnected_at_the_limit_and_a_reader_is_served(
) -> Result<(), Failure> {
    let log = Capture::default();
    let _guard = log.start();
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let limit = WriteLimit::new(1 << 20, WritePolicy::Disconnect);
    let options = ListenOptions::default().write_limit(Some(limit));
    let port = reactor().listen_tcp_with(
        0,
        factory(move || Ticker::new(s.clone())),
        "127.0.0.1",
        options,
    )?;
    assert_eq!(port.write_limit(), Some(limit));
    let addr = port.get_host().socket_addr().unwrap();

    let stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut reader = tokio::net::TcpStream::connect(addr).await.unwrap();
    let seqs = read_messages(&mut reader).await;
    assert_eq!(seqs.len() as u64, MESSAGES, "the reader missed messages");

    until("both connections to end", || seen.ends.borrow().len() == 2).await;
    let ends = seen.ends.borrow().clone();
    assert!(ends.iter().any(|e| e == "Done"), "{ends:?}");
    assert!(
        ends.iter().any(|e| e == "WriteLimit { limit: 1048576 }"),
        "{ends:?}"
    );
    assert_eq!(*seen.limits.borrow(), vec![Some(limit); 2]);
    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("WARN") && logged.contains("write limit reached"),
        "{logged}"
    );
    assert!(logged.contains("aborting that connection"), "{logged}");
    assert!(logged.contains("127.0.0.1:"), "no peer address: {logged}");
    drop(stalled);
    port.stop_listening().await
}

#[torsion::test(timeout = 60)]
async fn drop_writes_discards_whole_messages_counts_them_and_keeps_the_connection(
) -> Result<(), Failure> {
    let log = Capture::default();
    let _guard = log.start();
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let port = reactor().listen_tcp_on(0, factory(move || Ticker::new(s.clone())), "127.0.0.1")?;
    // Set on the port after it listens: the connections accepted from now on get it.
    port.set_write_limit(Some(WriteLimit::new(256 * 1024, WritePolicy::DropWrites)));
    let addr = port.get_host().socket_addr().unwrap();

    // Reads nothing until the server has written everything.
    let mut late = tokio::net::TcpStream::connect(addr).await.unwrap();
    until("every message to be written", || {
        !seen.dropped.borrow().is_empty()
    })
    .await;
    let dropped = seen.dropped.borrow()[0];
    assert!(dropped > 0, "nothing was dropped");
    assert_eq!(
        dropped % MESSAGE as u64,
        0,
        "a part of a message was dropped"
    );

    let seqs = read_messages(&mut late).await;
    assert_eq!(
        (MESSAGES - seqs.len() as u64) * MESSAGE as u64,
        dropped,
        "what was read and what was dropped do not add up"
    );
    until("the connection to end", || seen.ends.borrow().len() == 1).await;
    assert_eq!(*seen.ends.borrow(), vec!["Done".to_owned()]);
    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        logged.matches("dropping writes").count(),
        1,
        "warned once: {logged}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn an_endpoint_string_sets_the_write_limit() -> Result<(), Failure> {
    let d: ServerDescription = "tcp:0:interface=127.0.0.1:writeLimit=65536"
        .parse()
        .unwrap();
    assert_eq!(d.to_string(), "tcp:0:interface=127.0.0.1:writeLimit=65536");
    let d: ServerDescription = "tcp:0".parse().unwrap();
    assert_eq!(d.to_string(), "tcp:0", "no limit by default");
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let endpoint =
        server_from_string(&reactor(), "tcp:0:interface=127.0.0.1:writeLimit=65536").unwrap();
    let port = endpoint
        .listen(factory(move || Ticker::new(s.clone())))
        .await?;
    assert_eq!(port.write_limit(), Some(WriteLimit::disconnect(65536)));
    let addr = port.get_host().socket_addr().unwrap();
    let stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    until("the connection to end", || seen.ends.borrow().len() == 1).await;
    assert_eq!(
        *seen.ends.borrow(),
        vec!["WriteLimit { limit: 65536 }".to_owned()]
    );
    drop(stalled);
    port.stop_listening().await
}

#[torsion::test]
async fn a_transport_without_a_limit_has_none_and_clearing_removes_one() -> Result<(), Failure> {
    let made = Rc::new(Cell::new(false));
    struct Check(Rc<Cell<bool>>);
    impl Protocol for Check {
        fn connection_made(&mut self, t: &Transport) {
            assert_eq!(t.write_limit(), None);
            t.set_write_limit(10, WritePolicy::DropWrites);
            assert_eq!(
                t.write_limit(),
                Some(WriteLimit::new(10, WritePolicy::DropWrites))
            );
            t.write(b"0123456789");
            t.write(b"x");
            assert_eq!(t.dropped_write_bytes(), 1);
            t.clear_write_limit();
            assert_eq!(t.write_limit(), None);
            t.write(b"!");
            assert_eq!(t.dropped_write_bytes(), 1);
            t.lose_connection();
            self.0.set(true);
        }
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    }
    let m = made.clone();
    let port = reactor().listen_tcp_on(0, factory(move || Check(m.clone())), "127.0.0.1")?;
    let mut s = tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap())
        .await
        .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert!(made.get());
    assert_eq!(got, b"0123456789!");
    port.stop_listening().await
}
