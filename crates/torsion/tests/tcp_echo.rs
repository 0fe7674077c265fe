//! TCP data transfer over real loopback sockets: echo round trips (IPv4, IPv6, a plain std
//! socket as an independent peer, a large payload), the addresses each side reports, writes to
//! one connection from another connection's callback (a two-client chat), and write buffering
//! when the peer does not read.
//!
//! Ports are ephemeral (port 0). Every test arms a 10 s safety timer that records a time-out
//! and stops the reactor, so a bug fails the test instead of hanging it.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use torsion::error::ConnectionDone;
use torsion::transport::Address;
use torsion::{factory, Failure, Protocol, Reactor, Transport};

/// A reactor for one test, without signal handlers (tests run in parallel threads).
fn new_reactor() -> Reactor {
    let r = Reactor::new();
    r.set_install_signal_handlers(false);
    r
}

/// Stops the reactor after 10 s, so that no bug can hang the test; the flag says whether it
/// had to.
fn safety_timeout(r: &Reactor) -> Rc<Cell<bool>> {
    let timed_out = Rc::new(Cell::new(false));
    let flag = timed_out.clone();
    let stopper = r.clone();
    r.call_later(10.0, move || {
        flag.set(true);
        let _ = stopper.stop();
    });
    timed_out
}

/// What one side of a connection saw.
#[derive(Default)]
struct Record {
    host: RefCell<Option<Address>>,
    peer: RefCell<Option<Address>>,
    received: RefCell<Vec<u8>>,
    lost: RefCell<Option<Failure>>,
}

impl Record {
    fn made(&self, t: &Transport) {
        *self.host.borrow_mut() = Some(t.get_host());
        *self.peer.borrow_mut() = Some(t.get_peer());
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

    fn connection_lost(&mut self, reason: Failure) {
        *self.rec.lost.borrow_mut() = Some(reason);
    }
}

/// Sends `message`, closes once it all came back, and stops the reactor when the connection
/// is gone.
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

    fn connection_lost(&mut self, reason: Failure) {
        *self.rec.lost.borrow_mut() = Some(reason);
        let _ = torsion::reactor().stop();
    }
}

/// Listens with an [`Echo`] server on `interface`, connects an [`EchoClient`] sending
/// `message` to `connect_host`, runs the reactor, and returns (server, client) records.
fn echo_round_trip(
    interface: &str,
    connect_host: &str,
    message: Vec<u8>,
) -> (Rc<Record>, Rc<Record>, u16) {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let server: Rc<Record> = Rc::default();
    let client: Rc<Record> = Rc::default();
    let s = server.clone();
    let port = r
        .listen_tcp_on(0, factory(move || Echo { rec: s.clone() }), interface)
        .unwrap();
    let port = port.get_host().port().unwrap();
    assert_ne!(
        port, 0,
        "port 0 must be replaced by the port the system chose"
    );
    let (c, message) = (client.clone(), Rc::new(message));
    r.connect_tcp(
        connect_host,
        port,
        factory(move || EchoClient {
            message: message.clone(),
            rec: c.clone(),
        }),
    );
    r.run().unwrap();
    assert!(!timed_out.get(), "the round trip did not finish");
    (server, client, port)
}

#[test]
fn echo_round_trip_on_an_ephemeral_port() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let server: Rc<Record> = Rc::default();
    let client: Rc<Record> = Rc::default();
    let s = server.clone();
    let listening = r
        .listen_tcp(0, factory(move || Echo { rec: s.clone() }))
        .unwrap();
    let port = listening.get_host().port().unwrap();
    assert_ne!(port, 0);
    let message = Rc::new(b"hello, torsion".to_vec());
    let c = client.clone();
    r.connect_tcp(
        "127.0.0.1",
        port,
        factory(move || EchoClient {
            message: message.clone(),
            rec: c.clone(),
        }),
    );
    r.run().unwrap();
    assert!(!timed_out.get(), "the round trip did not finish");
    assert_eq!(&*client.received.borrow(), b"hello, torsion");
    assert_eq!(&*server.received.borrow(), b"hello, torsion");
    let reason = client.lost.borrow_mut().take().expect("connection_lost");
    assert!(reason.check::<ConnectionDone>(), "{reason:?}");
}

#[test]
fn echo_round_trip_over_ipv6_loopback() {
    let (server, client, port) = echo_round_trip("::1", "::1", b"hello over IPv6".to_vec());
    assert_eq!(&*client.received.borrow(), b"hello over IPv6");
    assert_eq!(&*server.received.borrow(), b"hello over IPv6");
    let expected: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    assert_eq!(*client.peer.borrow(), Some(Address::Tcp(expected)));
}

#[test]
fn listening_on_the_ipv6_wildcard_also_accepts_ipv4_connections() {
    let (server, client, _) = echo_round_trip("::", "127.0.0.1", b"v4 to a v6 port".to_vec());
    assert_eq!(&*client.received.borrow(), b"v4 to a v6 port");
    assert_eq!(&*server.received.borrow(), b"v4 to a v6 port");
}

#[test]
fn a_one_megabyte_echo_arrives_intact_and_in_order() {
    let message: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let (server, client, _) = echo_round_trip("127.0.0.1", "127.0.0.1", message.clone());
    assert_eq!(server.received.borrow().len(), message.len());
    assert!(*client.received.borrow() == message, "the echo differs");
}

#[test]
fn client_and_server_addresses_mirror_each_other() {
    let (server, client, port) = echo_round_trip("127.0.0.1", "127.0.0.1", b"hi".to_vec());
    let server_host = server.host.borrow().clone().unwrap();
    let server_peer = server.peer.borrow().clone().unwrap();
    let client_host = client.host.borrow().clone().unwrap();
    let client_peer = client.peer.borrow().clone().unwrap();
    assert_eq!(server_host, client_peer);
    assert_eq!(server_peer, client_host);
    assert_eq!(server_host.port(), Some(port));
    assert_ne!(client_host.port(), Some(port));
}

#[test]
fn server_get_host_is_the_connections_local_address_when_listening_on_all_interfaces() {
    // Twisted's Server.getHost() is the accepted socket's getsockname(): 127.0.0.1 here, the
    // address the client connected to, not the port's wildcard bind address 0.0.0.0.
    let (server, client, port) = echo_round_trip("0.0.0.0", "127.0.0.1", b"hi".to_vec());
    let server_host = server.host.borrow().clone().unwrap();
    let client_peer = client.peer.borrow().clone().unwrap();
    let expected: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(client_peer, Address::Tcp(expected));
    assert_eq!(
        server_host, client_peer,
        "the server side's get_host() should be the connection's local address"
    );
}

#[test]
fn listening_port_get_host_reports_the_interface_and_the_chosen_port() {
    let r = new_reactor();
    let port = r
        .listen_tcp_on(0, factory(|| Echo { rec: Rc::default() }), "127.0.0.1")
        .unwrap();
    let addr = port.get_host().socket_addr().expect("a TCP address");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    // The port really listens there.
    TcpStream::connect(addr).expect("connect to the listening port");
}

/// What the plain std socket peer got back.
type PeerResult = std::io::Result<Vec<u8>>;

#[test]
fn echo_round_trip_with_a_plain_std_socket_peer() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let port = r
        .listen_tcp_on(0, factory(|| Echo { rec: Rc::default() }), "127.0.0.1")
        .unwrap();
    let addr = port.get_host().socket_addr().unwrap();
    let handle = r.handle();
    let peer: Rc<RefCell<Option<JoinHandle<PeerResult>>>> = Rc::default();
    let slot = peer.clone();
    r.call_when_running(move || {
        *slot.borrow_mut() = Some(thread::spawn(move || {
            let result = (|| {
                let mut s = TcpStream::connect(addr)?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.write_all(b"from a std socket")?;
                let mut back = vec![0; b"from a std socket".len()];
                s.read_exact(&mut back)?;
                Ok(back)
            })();
            handle.stop();
            result
        }));
    });
    r.run().unwrap();
    let echoed = peer.borrow_mut().take().unwrap().join().unwrap();
    assert!(!timed_out.get());
    assert_eq!(echoed.unwrap(), b"from a std socket");
}

#[test]
fn a_peer_that_stops_writing_still_gets_every_echoed_byte() {
    // The peer sends 1 MB and closes its sending half at once; the server's default
    // read_connection_lost closes the connection, but only after the echo is flushed.
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let port = r
        .listen_tcp_on(0, factory(|| Echo { rec: Rc::default() }), "127.0.0.1")
        .unwrap();
    let addr = port.get_host().socket_addr().unwrap();
    let handle = r.handle();
    let peer: Rc<RefCell<Option<JoinHandle<PeerResult>>>> = Rc::default();
    let slot = peer.clone();
    let message: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    let sent = message.clone();
    r.call_when_running(move || {
        *slot.borrow_mut() = Some(thread::spawn(move || {
            let result = (|| {
                let mut s = TcpStream::connect(addr)?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut writer = s.try_clone()?;
                // Write from another thread, so that reading the echo meanwhile keeps both
                // sides' buffers from filling up.
                let w = thread::spawn(move || {
                    writer.write_all(&sent)?;
                    writer.shutdown(std::net::Shutdown::Write)
                });
                let mut back = Vec::new();
                s.read_to_end(&mut back)?;
                w.join().expect("writer thread")?;
                Ok(back)
            })();
            handle.stop();
            result
        }));
    });
    r.run().unwrap();
    let echoed = peer.borrow_mut().take().unwrap().join().unwrap().unwrap();
    assert!(!timed_out.get());
    assert_eq!(echoed.len(), message.len());
    assert!(echoed == message, "the echo differs");
}

/// A chat server: each line from one client goes to every other client; when the second
/// client joins, everyone is told `ready`.
struct ChatServer {
    clients: Rc<RefCell<Vec<Transport>>>,
    me: Option<Transport>,
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

    fn connection_lost(&mut self, _reason: Failure) {
        if let Some(me) = self.me.take() {
            self.clients.borrow_mut().retain(|c| !c.same(&me));
        }
    }
}

/// A chat client: client 0 speaks first once `ready`; client 1 answers what it hears.
struct ChatClient {
    id: usize,
    buf: Vec<u8>,
    lines: Rc<RefCell<Vec<String>>>,
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
                (0, "hi from 1") => {
                    let _ = torsion::reactor().stop();
                }
                _ => {}
            }
        }
    }
}

#[test]
fn writes_to_another_connection_from_a_callback_are_delivered() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let clients: Rc<RefCell<Vec<Transport>>> = Rc::default();
    let port = r
        .listen_tcp_on(
            0,
            factory(move || ChatServer {
                clients: clients.clone(),
                me: None,
            }),
            "127.0.0.1",
        )
        .unwrap();
    let port = port.get_host().port().unwrap();
    let transcripts: Vec<Rc<RefCell<Vec<String>>>> = vec![Rc::default(), Rc::default()];
    for (id, lines) in transcripts.iter().enumerate() {
        let lines = lines.clone();
        r.connect_tcp(
            "127.0.0.1",
            port,
            factory(move || ChatClient {
                id,
                buf: Vec::new(),
                lines: lines.clone(),
            }),
        );
    }
    r.run().unwrap();
    assert!(!timed_out.get(), "the chat did not finish");
    assert_eq!(*transcripts[0].borrow(), ["ready", "hi from 1"]);
    assert_eq!(*transcripts[1].borrow(), ["ready", "hi from 0"]);
}

/// Writes 1 MB chunks to a peer that never reads, one per reactor turn, sampling
/// `buffered_size()` after each write.
struct Flood {
    transport: Transport,
    samples: RefCell<Vec<usize>>,
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
        let _ = torsion::reactor().stop();
    } else {
        torsion::reactor().call_later(0.0, move || flood(f));
    }
}

/// Starts a [`Flood`] on each connection; records it for the test.
struct FloodServer {
    started: Rc<RefCell<Option<Rc<Flood>>>>,
}

impl Protocol for FloodServer {
    fn connection_made(&mut self, t: &Transport) {
        let f = Rc::new(Flood {
            transport: t.clone(),
            samples: RefCell::default(),
        });
        *self.started.borrow_mut() = Some(f.clone());
        torsion::reactor().call_later(0.0, move || flood(f));
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

#[test]
fn buffered_size_grows_while_the_peer_does_not_read() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let started: Rc<RefCell<Option<Rc<Flood>>>> = Rc::default();
    let s = started.clone();
    let port = r
        .listen_tcp_on(
            0,
            factory(move || FloodServer { started: s.clone() }),
            "127.0.0.1",
        )
        .unwrap();
    // A peer that connects and never reads: the kernel completes the handshake from the
    // listen backlog, before the reactor runs.
    let silent_peer = TcpStream::connect(port.get_host().socket_addr().unwrap()).unwrap();
    r.run().unwrap();
    drop(silent_peer);
    assert!(!timed_out.get());
    let flood = started
        .borrow_mut()
        .take()
        .expect("the server connection was made");
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
}
