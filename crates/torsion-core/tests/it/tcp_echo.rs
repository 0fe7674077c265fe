//! TCP data transfer over real loopback sockets: echo round trips (IPv4, IPv6, a plain tokio
//! socket as an independent peer, a large payload), the addresses each side reports, writes to
//! one connection from another connection's callback (a two-client chat), and write buffering
//! when the peer does not read.
//!
//! Ports are ephemeral (port 0). Each test is an async `#[torsion::test]`: it fails if it takes
//! more than 10 s, and it waits for every connection it made to end, and stops listening,
//! before it returns (the kit fails a test that leaves a port or connection open).

use std::cell::RefCell;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;

use crate::support::next;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torsion::defer::DeferredQueue;
use torsion::error::ConnectionDone;
use torsion::transport::Address;
use torsion::ConnectionEnd;
use torsion::{factory, reactor, Failure, Protocol, Reactor, Transport};

/// What one side of a connection saw.
#[derive(Default)]
struct Record {
    host: RefCell<Option<Address>>,
    peer: RefCell<Option<Address>>,
    received: RefCell<Vec<u8>>,
    lost: RefCell<Option<Failure>>,
    /// One item per connection of this side that ended.
    ended: DeferredQueue<()>,
}

impl Record {
    fn made(&self, t: &Transport) {
        *self.host.borrow_mut() = Some(t.get_host());
        *self.peer.borrow_mut() = Some(t.get_peer());
    }

    fn lost(&self, reason: Failure) {
        *self.lost.borrow_mut() = Some(reason);
        self.ended.put(()).unwrap();
    }
}

/// Echoes what it receives, recording what its side of the connection saw.
struct Echo {
    rec: Rc<Record>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        self.rec.made(t);
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.rec.received.borrow_mut().extend_from_slice(data);
        t.write(data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

/// Sends `message` and closes once it all came back.
struct EchoClient {
    message: Rc<Vec<u8>>,
    rec: Rc<Record>,
}

impl Protocol for EchoClient {
    fn connection_made(&mut self, t: &Transport) {
        self.rec.made(t);
        t.write(&self.message);
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let mut received = self.rec.received.borrow_mut();
        received.extend_from_slice(data);
        if received.len() >= self.message.len() {
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

/// Connects an [`EchoClient`] sending `message` to `host:port`, and waits for the client's
/// and the server's ends of the connection to close. Returns the client's record.
async fn round_trip(server: &Record, host: &str, port: u16, message: Vec<u8>) -> Rc<Record> {
    let client: Rc<Record> = Rc::default();
    let (c, message) = (client.clone(), Rc::new(message));
    reactor().connect_tcp(
        host,
        port,
        factory(move || EchoClient {
            message: message.clone(),
            rec: c.clone(),
        }),
    );
    next(&client.ended).await;
    next(&server.ended).await;
    client
}

/// Listens with an [`Echo`] server on `interface`, runs a [`round_trip`] to `connect_host`,
/// stops listening, and returns the (server, client) records and the port.
async fn echo_round_trip(
    interface: &str,
    connect_host: &str,
    message: Vec<u8>,
) -> Result<(Rc<Record>, Rc<Record>, u16), Failure> {
    let server: Rc<Record> = Rc::default();
    let s = server.clone();
    let listening =
        reactor().listen_tcp_on(0, factory(move || Echo { rec: s.clone() }), interface)?;
    let port = listening.get_host().port().unwrap();
    assert_ne!(
        port, 0,
        "port 0 must be replaced by the port the system chose"
    );
    let client = round_trip(&server, connect_host, port, message).await;
    listening.stop_listening().await?;
    Ok((server, client, port))
}

#[torsion::test(timeout = 10)]
async fn echo_round_trip_on_an_ephemeral_port() -> Result<(), Failure> {
    let server: Rc<Record> = Rc::default();
    let s = server.clone();
    let listening = reactor().listen_tcp(0, factory(move || Echo { rec: s.clone() }))?;
    let port = listening.get_host().port().unwrap();
    assert_ne!(port, 0);
    let client = round_trip(&server, "127.0.0.1", port, b"hello, torsion".to_vec()).await;
    listening.stop_listening().await?;
    assert_eq!(&*client.received.borrow(), b"hello, torsion");
    assert_eq!(&*server.received.borrow(), b"hello, torsion");
    let reason = client.lost.borrow_mut().take().expect("connection_lost");
    assert!(reason.check::<ConnectionDone>(), "{reason:?}");
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn echo_round_trip_over_ipv6_loopback() -> Result<(), Failure> {
    let (server, client, port) = echo_round_trip("::1", "::1", b"hello over IPv6".to_vec()).await?;
    assert_eq!(&*client.received.borrow(), b"hello over IPv6");
    assert_eq!(&*server.received.borrow(), b"hello over IPv6");
    let expected: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    assert_eq!(*client.peer.borrow(), Some(Address::Tcp(expected)));
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn listening_on_the_ipv6_wildcard_also_accepts_ipv4_connections() -> Result<(), Failure> {
    let (server, client, _) =
        echo_round_trip("::", "127.0.0.1", b"v4 to a v6 port".to_vec()).await?;
    assert_eq!(&*client.received.borrow(), b"v4 to a v6 port");
    assert_eq!(&*server.received.borrow(), b"v4 to a v6 port");
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_one_megabyte_echo_arrives_intact_and_in_order() -> Result<(), Failure> {
    let message: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let (server, client, _) = echo_round_trip("127.0.0.1", "127.0.0.1", message.clone()).await?;
    assert_eq!(server.received.borrow().len(), message.len());
    assert!(*client.received.borrow() == message, "the echo differs");
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn client_and_server_addresses_mirror_each_other() -> Result<(), Failure> {
    let (server, client, port) = echo_round_trip("127.0.0.1", "127.0.0.1", b"hi".to_vec()).await?;
    let server_host = server.host.borrow().clone().unwrap();
    let server_peer = server.peer.borrow().clone().unwrap();
    let client_host = client.host.borrow().clone().unwrap();
    let client_peer = client.peer.borrow().clone().unwrap();
    assert_eq!(server_host, client_peer);
    assert_eq!(server_peer, client_host);
    assert_eq!(server_host.port(), Some(port));
    assert_ne!(client_host.port(), Some(port));
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn server_get_host_is_the_connections_local_address_when_listening_on_all_interfaces(
) -> Result<(), Failure> {
    // Twisted's Server.getHost() is the accepted socket's getsockname(): 127.0.0.1 here, the
    // address the client connected to, not the port's wildcard bind address 0.0.0.0.
    let (server, client, port) = echo_round_trip("0.0.0.0", "127.0.0.1", b"hi".to_vec()).await?;
    let server_host = server.host.borrow().clone().unwrap();
    let client_peer = client.peer.borrow().clone().unwrap();
    let expected: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(client_peer, Address::Tcp(expected));
    assert_eq!(
        server_host, client_peer,
        "the server side's get_host() should be the connection's local address"
    );
    Ok(())
}

#[test]
fn listening_port_get_host_reports_the_interface_and_the_chosen_port() {
    // The reactor never runs: the kernel completes the handshake from the listen backlog.
    let r = Reactor::new();
    let port = r
        .listen_tcp_on(0, factory(|| Echo { rec: Rc::default() }), "127.0.0.1")
        .unwrap();
    let addr = port.get_host().socket_addr().expect("a TCP address");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    // The port really listens there.
    TcpStream::connect(addr).expect("connect to the listening port");
}

#[torsion::test(timeout = 10)]
async fn echo_round_trip_with_a_plain_tokio_socket_peer() -> Result<(), Failure> {
    let server: Rc<Record> = Rc::default();
    let s = server.clone();
    let port = reactor().listen_tcp_on(0, factory(move || Echo { rec: s.clone() }), "127.0.0.1")?;
    let mut peer = tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap()).await?;
    peer.write_all(b"from a tokio socket").await?;
    let mut back = vec![0; b"from a tokio socket".len()];
    peer.read_exact(&mut back).await?;
    assert_eq!(back, b"from a tokio socket");
    drop(peer);
    next(&server.ended).await;
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_peer_that_stops_writing_still_gets_every_echoed_byte() -> Result<(), Failure> {
    // The peer sends 1 MB and closes its sending half at once; the server's default
    // read_connection_lost closes the connection, but only after the echo is flushed.
    let server: Rc<Record> = Rc::default();
    let s = server.clone();
    let port = reactor().listen_tcp_on(0, factory(move || Echo { rec: s.clone() }), "127.0.0.1")?;
    let peer = tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap()).await?;
    let message: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    let (mut reader, mut writer) = peer.into_split();
    // Write and read at the same time, so that reading the echo meanwhile keeps both sides'
    // buffers from filling up.
    let write = async {
        writer.write_all(&message).await?;
        writer.shutdown().await
    };
    let mut echoed = Vec::new();
    let (written, read) = tokio::join!(write, reader.read_to_end(&mut echoed));
    written?;
    read?;
    next(&server.ended).await;
    port.stop_listening().await?;
    assert_eq!(echoed.len(), message.len());
    assert!(echoed == message, "the echo differs");
    Ok(())
}

/// A chat server: each line from one client goes to every other client; when the second
/// client joins, everyone is told `ready`.
struct ChatServer {
    clients: Rc<RefCell<Vec<Transport>>>,
    me: Option<Transport>,
    ended: DeferredQueue<()>,
}

impl Protocol for ChatServer {
    fn connection_made(&mut self, t: &Transport) {
        self.me = Some(t.clone());
        let mut clients = self.clients.borrow_mut();
        clients.push(t.clone());
        if clients.len() == 2 {
            for c in clients.iter() {
                c.write(b"ready\n");
            }
        }
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        for other in self.clients.borrow().iter().filter(|c| !c.same(t)) {
            other.write(data);
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        if let Some(me) = self.me.take() {
            self.clients.borrow_mut().retain(|c| !c.same(&me));
        }
        self.ended.put(()).unwrap();
    }
}

/// A chat client: client 0 speaks first once `ready`; client 1 answers what it hears. Client
/// 0 reports on `done` when the answer arrives.
struct ChatClient {
    id: usize,
    buf: Vec<u8>,
    lines: Rc<RefCell<Vec<String>>>,
    done: DeferredQueue<()>,
    ended: DeferredQueue<()>,
}

impl Protocol for ChatClient {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.buf.extend_from_slice(data);
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            self.lines.borrow_mut().push(line.clone());
            match (self.id, line.as_str()) {
                (0, "ready") => t.write(b"hi from 0\n"),
                (1, "hi from 0") => t.write(b"hi from 1\n"),
                (0, "hi from 1") => self.done.put(()).unwrap(),
                _ => {}
            }
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.ended.put(()).unwrap();
    }
}

#[torsion::test(timeout = 10)]
async fn writes_to_another_connection_from_a_callback_are_delivered() -> Result<(), Failure> {
    let clients: Rc<RefCell<Vec<Transport>>> = Rc::default();
    let (server_ended, client_ended) = (DeferredQueue::new(), DeferredQueue::new());
    let done = DeferredQueue::new();
    let (c, e) = (clients.clone(), server_ended.clone());
    let port = reactor().listen_tcp_on(
        0,
        factory(move || ChatServer {
            clients: c.clone(),
            me: None,
            ended: e.clone(),
        }),
        "127.0.0.1",
    )?;
    let transcripts: Vec<Rc<RefCell<Vec<String>>>> = vec![Rc::default(), Rc::default()];
    for (id, lines) in transcripts.iter().enumerate() {
        let (lines, done, ended) = (lines.clone(), done.clone(), client_ended.clone());
        reactor().connect_tcp(
            "127.0.0.1",
            port.get_host().port().unwrap(),
            factory(move || ChatClient {
                id,
                buf: Vec::new(),
                lines: lines.clone(),
                done: done.clone(),
                ended: ended.clone(),
            }),
        );
    }
    next(&done).await;
    assert_eq!(*transcripts[0].borrow(), ["ready", "hi from 1"]);
    assert_eq!(*transcripts[1].borrow(), ["ready", "hi from 0"]);
    // The server hangs up on both clients.
    let server_sides = clients.borrow().clone();
    for t in server_sides {
        t.lose_connection();
    }
    for _ in 0..2 {
        next(&server_ended).await;
        next(&client_ended).await;
    }
    port.stop_listening().await?;
    Ok(())
}

/// Writes 1 MB chunks to a peer that never reads, one per reactor turn, sampling
/// `buffered_size()` after each write.
struct Flood {
    transport: Transport,
    samples: RefCell<Vec<usize>>,
    done: DeferredQueue<()>,
}

const MB: usize = 1 << 20;
/// Samples taken once the buffer is non-empty.
const GROWING_SAMPLES: usize = 4;
/// At most this many chunks are written.
const MAX_CHUNKS: usize = 64;

fn flood(f: Rc<Flood>) {
    static CHUNK: [u8; MB] = [b'x'; MB];
    f.transport.write(&CHUNK);
    let done = {
        let mut samples = f.samples.borrow_mut();
        samples.push(f.transport.buffered_size());
        samples.iter().filter(|&&b| b > 0).count() >= GROWING_SAMPLES || samples.len() >= MAX_CHUNKS
    };
    if done {
        f.done.put(()).unwrap();
    } else {
        reactor().call_later(0.0, move || flood(f));
    }
}

/// Starts a [`Flood`] on each connection; records it for the test, and reports on `ended` when
/// the connection ends.
struct FloodServer {
    started: Rc<RefCell<Option<Rc<Flood>>>>,
    done: DeferredQueue<()>,
    ended: DeferredQueue<()>,
}

impl Protocol for FloodServer {
    fn connection_made(&mut self, t: &Transport) {
        let f = Rc::new(Flood {
            transport: t.clone(),
            samples: RefCell::default(),
            done: self.done.clone(),
        });
        *self.started.borrow_mut() = Some(f.clone());
        reactor().call_later(0.0, move || flood(f));
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.ended.put(()).unwrap();
    }
}

#[torsion::test(timeout = 10)]
async fn buffered_size_grows_while_the_peer_does_not_read() -> Result<(), Failure> {
    let started: Rc<RefCell<Option<Rc<Flood>>>> = Rc::default();
    let (done, ended) = (DeferredQueue::new(), DeferredQueue::new());
    let (s, d, e) = (started.clone(), done.clone(), ended.clone());
    let port = reactor().listen_tcp_on(
        0,
        factory(move || FloodServer {
            started: s.clone(),
            done: d.clone(),
            ended: e.clone(),
        }),
        "127.0.0.1",
    )?;
    // A peer that connects and never reads.
    let silent_peer =
        tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap()).await?;
    next(&done).await;
    let flood = started
        .borrow_mut()
        .take()
        .expect("the server connection was made");
    // Drop what is still buffered and close.
    flood.transport.abort_connection();
    next(&ended).await;
    drop(silent_peer);
    port.stop_listening().await?;
    let samples = flood.samples.borrow();
    let first = samples
        .iter()
        .position(|&b| b > 0)
        .unwrap_or_else(|| panic!("nothing was ever buffered: {samples:?}"));
    let growing = &samples[first..];
    assert!(growing.len() >= GROWING_SAMPLES, "{samples:?}");
    assert!(
        growing.windows(2).all(|w| w[1] > w[0]),
        "buffered_size() should grow with every unread write: {samples:?}"
    );
    assert!(
        growing[growing.len() - 1] >= growing[0] + 2 * MB,
        "{samples:?}"
    );
    Ok(())
}

/// Both drivers run the same engine: a large echo round trip, the addresses, and a clean
/// close, under the epoll poller and under a tokio task per connection; only the poller's
/// connections are counted by the poller, the others by the reactor's registry.
#[torsion::test(timeout = 10)]
async fn both_drivers_echo_the_same() -> Result<(), Failure> {
    use torsion::tcp::{Driver, ListenOptions};
    for driver in [Driver::Poller, Driver::Tasks] {
        let server: Rc<Record> = Rc::default();
        let s = server.clone();
        let options = ListenOptions::default().driver(driver);
        let listening = reactor().listen_tcp_with(
            0,
            factory(move || Echo { rec: s.clone() }),
            "127.0.0.1",
            options,
        )?;
        let port = listening.get_host().port().unwrap();
        let message: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let client = round_trip(&server, "127.0.0.1", port, message.clone()).await;
        assert_eq!(*client.received.borrow(), message, "{driver:?}");
        assert_eq!(*server.received.borrow(), message, "{driver:?}");
        let server_host = server.host.borrow().clone().unwrap();
        assert_eq!(server_host.port(), Some(port), "{driver:?}");
        assert_eq!(
            Some(server.peer.borrow().clone().unwrap()),
            client.host.borrow().clone(),
            "{driver:?}"
        );
        let lost = server.lost.borrow_mut().take().unwrap();
        assert!(lost.check::<ConnectionDone>(), "{driver:?}: {lost:?}");
        listening.stop_listening().await?;
    }
    Ok(())
}

/// Writes every message back framed as a sequence: `<`, the bytes, `>` (small parts, which a
/// callback gathers together); on connection, 600 KB in parts both large and small from
/// inside the callback, and the same again from a delayed call, outside any callback.
struct Sequences {
    ended: DeferredQueue<()>,
}

/// The parts the server writes on connection: large and small mixed, each byte its place.
fn sequence_parts() -> Vec<Vec<u8>> {
    let sizes = [1, 200_000, 3, 17, 100_000, 64 * 1024, 5];
    let mut at = 0u32;
    sizes
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| {
                    at += 1;
                    (at % 251) as u8
                })
                .collect()
        })
        .collect()
}

impl Protocol for Sequences {
    fn connection_made(&mut self, t: &Transport) {
        let parts = sequence_parts();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        t.write_sequence(&refs);
        let t = t.clone();
        reactor().call_later(0.0, move || {
            let parts = sequence_parts();
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            t.write_sequence(&refs);
        });
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write_sequence(&[b"<", data, b">"]);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.ended.put(()).unwrap();
    }
}

#[torsion::test(timeout = 10)]
async fn write_sequence_keeps_the_parts_in_order_on_every_path() -> Result<(), Failure> {
    let ended = DeferredQueue::new();
    let e = ended.clone();
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Sequences { ended: e.clone() }),
        "127.0.0.1",
    )?;
    let mut peer = tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap()).await?;
    let expected: Vec<u8> = sequence_parts().concat();
    let mut got = vec![0; expected.len() * 2];
    peer.read_exact(&mut got).await?;
    assert!(
        got[..expected.len()] == expected,
        "the parts written in the callback differ"
    );
    assert!(
        got[expected.len()..] == expected,
        "the parts written outside a callback differ"
    );
    peer.write_all(b"abc").await?;
    let mut framed = [0; 5];
    peer.read_exact(&mut framed).await?;
    assert_eq!(&framed, b"<abc>");
    drop(peer);
    next(&ended).await;
    port.stop_listening().await?;
    Ok(())
}
