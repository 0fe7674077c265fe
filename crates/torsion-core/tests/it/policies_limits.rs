//! Connection limits: `LimitTotalConnectionsFactory` and `LimitConnectionsByPeer`, driven by
//! hand and over real TCP with plain std socket clients on another thread (the one past the
//! limit is closed by the server; after one closes, a new one is accepted).
//!
//! Reactor tests use ephemeral ports and arm a 10 s safety timer that records a time-out and
//! stops the reactor, so a bug fails the test instead of hanging it.

use std::cell::Cell;
use std::io::{ErrorKind, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::support::{new_reactor, safety_timeout};
use torsion::protocols::policies::{LimitConnectionsByPeer, LimitTotalConnectionsFactory};
use torsion::testing::StringTransport;
use torsion::transport::Address;
use torsion::ConnectionEnd;
use torsion::{factory, Factory, Protocol, Reactor, Transport};

struct Quiet;

impl Protocol for Quiet {
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

fn tcp(addr: &str) -> Address {
    Address::Tcp(addr.parse().unwrap())
}

#[test]
fn total_limit_refuses_past_the_limit_and_counts_down_on_connection_lost() {
    let f = LimitTotalConnectionsFactory::new(factory(|| Quiet), 2);
    let st = StringTransport::new();
    let mut a = f.build_protocol(&tcp("10.0.0.1:1")).unwrap();
    let mut b = f.build_protocol(&tcp("10.0.0.2:1")).unwrap();
    a.connection_made(&st.transport());
    b.connection_made(&st.transport());
    assert_eq!(f.connection_count(), 2);
    assert!(f.build_protocol(&tcp("10.0.0.3:1")).is_none());
    assert_eq!(f.connection_count(), 2, "a refusal must not count");
    a.connection_lost(ConnectionEnd::Done);
    assert_eq!(f.connection_count(), 1);
    let mut c = f.build_protocol(&tcp("10.0.0.3:1")).unwrap();
    c.connection_made(&st.transport());
    assert_eq!(f.connection_count(), 2);
    assert_eq!(f.protocol_count(), 2);
}

#[test]
fn total_limit_counts_connections_that_never_started_only_while_they_exist() {
    let f = LimitTotalConnectionsFactory::new(factory(|| Quiet), 1);
    let unmade = f.build_protocol(&tcp("10.0.0.1:1")).unwrap();
    assert_eq!(f.connection_count(), 1);
    assert!(f.build_protocol(&tcp("10.0.0.1:2")).is_none());
    drop(unmade);
    assert_eq!(f.connection_count(), 0);
    assert!(f.build_protocol(&tcp("10.0.0.1:2")).is_some());
}

#[test]
fn total_limit_can_be_changed_or_removed() {
    let f = LimitTotalConnectionsFactory::new(factory(|| Quiet), 0);
    assert!(f.build_protocol(&tcp("10.0.0.1:1")).is_none());
    f.set_connection_limit(None);
    assert_eq!(f.connection_limit(), None);
    let kept: Vec<_> = (0..50)
        .map(|i| f.build_protocol(&tcp(&format!("10.0.0.1:{}", i + 1))))
        .collect();
    assert!(kept.iter().all(Option::is_some));
    assert_eq!(f.connection_count(), 50);
    f.set_connection_limit(Some(10));
    assert!(f.build_protocol(&tcp("10.0.0.1:99")).is_none());
    drop(kept);
    assert_eq!(f.connection_count(), 0);
}

#[test]
fn per_peer_limit_counts_by_ip_and_forgets_peers_with_no_connections() {
    let f = LimitConnectionsByPeer::new(factory(|| Quiet), 2);
    let st = StringTransport::new();
    let mut a1 = f.build_protocol(&tcp("10.0.0.1:1000")).unwrap();
    let mut a2 = f.build_protocol(&tcp("10.0.0.1:1001")).unwrap();
    a1.connection_made(&st.transport());
    a2.connection_made(&st.transport());
    assert!(
        f.build_protocol(&tcp("10.0.0.1:1002")).is_none(),
        "third from one IP"
    );
    let mut b = f.build_protocol(&tcp("10.0.0.2:1000")).unwrap();
    b.connection_made(&st.transport());
    let ip_a: IpAddr = "10.0.0.1".parse().unwrap();
    let ip_b: IpAddr = "10.0.0.2".parse().unwrap();
    assert_eq!((f.connections_from(ip_a), f.connections_from(ip_b)), (2, 1));
    assert_eq!(f.peer_count(), 2);

    a1.connection_lost(ConnectionEnd::Done);
    assert_eq!(f.connections_from(ip_a), 1);
    assert!(f.build_protocol(&tcp("10.0.0.1:1003")).is_some());
    a2.connection_lost(ConnectionEnd::Done);
    b.connection_lost(ConnectionEnd::Done);
    assert_eq!(
        f.peer_count(),
        0,
        "peers with no connections must be forgotten"
    );
}

#[test]
fn per_peer_table_does_not_grow_with_many_peers() {
    let f = LimitConnectionsByPeer::new(factory(|| Quiet), 1);
    let st = StringTransport::new();
    for i in 0..1000u32 {
        let ip = Ipv4Addr::from(0x0a00_0000 + i);
        let mut p = f
            .build_protocol(&Address::Tcp(SocketAddr::new(ip.into(), 5000)))
            .unwrap();
        p.connection_made(&st.transport());
        assert_eq!(f.peer_count(), 1);
        p.connection_lost(ConnectionEnd::Done);
    }
    assert_eq!(f.peer_count(), 0);
    // A limit of 0 refuses everyone without leaving entries behind.
    f.set_max_connections_per_peer(0);
    assert!(f.build_protocol(&tcp("10.9.9.9:1")).is_none());
    assert_eq!(f.peer_count(), 0);
}

#[test]
fn per_peer_counts_ipv4_mapped_ipv6_as_ipv4_and_does_not_limit_non_ip_peers() {
    let f = LimitConnectionsByPeer::new(factory(|| Quiet), 1);
    let _v4 = f.build_protocol(&tcp("192.0.2.7:1")).unwrap();
    assert!(f.build_protocol(&tcp("[::ffff:192.0.2.7]:2")).is_none());
    let named = Address::Named("stdio".into());
    let kept: Vec<_> = (0..3).map(|_| f.build_protocol(&named)).collect();
    assert!(kept.iter().all(Option::is_some));
    assert_eq!(f.peer_count(), 1);
}

// ---- real TCP ----

/// Says "hi" when accepted; reports each lost connection on a channel.
struct Greeter {
    lost: mpsc::Sender<()>,
}

impl Protocol for Greeter {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"hi");
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        let _ = self.lost.send(());
    }
}

/// What a client saw of its connection.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The server said "hi": accepted.
    Greeted,
    /// The server closed the connection without a word: refused.
    Closed,
    /// The server saw this client's close (its `connection_lost` ran).
    Left,
    /// Anything else.
    Other(String),
}

fn connect_from(local: Option<Ipv4Addr>, server: SocketAddr) -> std::io::Result<TcpStream> {
    match local {
        None => TcpStream::connect(server),
        Some(ip) => {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.bind(&SocketAddr::new(ip.into(), 0).into())?;
            s.connect(&server.into())?;
            Ok(s.into())
        }
    }
}

/// Connects and reads the server's first word (or its close).
fn open(local: Option<Ipv4Addr>, server: SocketAddr) -> (Option<TcpStream>, Seen) {
    let mut s = match connect_from(local, server) {
        Ok(s) => s,
        Err(e) => return (None, Seen::Other(format!("connect: {e}"))),
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    let seen = match s.read(&mut buf) {
        Ok(0) => Seen::Closed,
        Ok(n) if &buf[..n] == b"hi" => Seen::Greeted,
        Ok(n) => Seen::Other(format!("read {:?}", &buf[..n])),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Seen::Closed,
        Err(e) => Seen::Other(format!("read: {e}")),
    };
    (Some(s), seen)
}

/// Runs `script` on a client thread once the reactor runs; it stops the reactor at the end.
fn spawn_clients(
    r: &Reactor,
    script: impl FnOnce() -> Vec<Seen> + Send + 'static,
) -> Rc<Cell<Option<JoinHandle<Vec<Seen>>>>> {
    let handle = r.handle();
    let slot: Rc<Cell<Option<JoinHandle<Vec<Seen>>>>> = Rc::default();
    let s = slot.clone();
    r.call_when_running(move || {
        s.set(Some(thread::spawn(move || {
            let seen = script();
            handle.stop();
            seen
        })));
    });
    slot
}

#[test]
fn total_limit_over_tcp_closes_the_extra_client_and_accepts_after_one_leaves() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let (lost_tx, lost_rx) = mpsc::channel();
    let f = Rc::new(LimitTotalConnectionsFactory::new(
        factory(move || Greeter {
            lost: lost_tx.clone(),
        }),
        2,
    ));
    let port = r.listen_tcp_on(0, f.clone(), "127.0.0.1").unwrap();
    let server = port.get_host().socket_addr().unwrap();

    let clients = spawn_clients(&r, move || {
        let mut seen = Vec::new();
        let (c1, s1) = open(None, server);
        let (_c2, s2) = open(None, server);
        let (_c3, s3) = open(None, server);
        seen.extend([s1, s2, s3]);
        drop(c1); // one leaves ...
        let gone = lost_rx.recv_timeout(Duration::from_secs(5)).is_ok();
        seen.push(if gone {
            Seen::Left
        } else {
            Seen::Other("server never saw the close".into())
        });
        let (_c4, s4) = open(None, server); // ... and a new one gets in
        seen.push(s4);
        seen
    });
    r.run().unwrap();

    let seen = clients.take().expect("clients started").join().unwrap();
    assert!(!timed_out.get());
    assert_eq!(
        seen,
        [
            Seen::Greeted,
            Seen::Greeted,
            Seen::Closed,
            Seen::Left,
            Seen::Greeted
        ]
    );
    assert_eq!(f.connection_count(), 0, "all released at shutdown");
}

#[test]
fn per_peer_limit_over_tcp_limits_each_address_separately() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let (lost_tx, lost_rx) = mpsc::channel();
    let f = Rc::new(LimitConnectionsByPeer::new(
        factory(move || Greeter {
            lost: lost_tx.clone(),
        }),
        1,
    ));
    let port = r.listen_tcp_on(0, f.clone(), "127.0.0.1").unwrap();
    let server = port.get_host().socket_addr().unwrap();
    let (one, two) = (Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2));

    let clients = spawn_clients(&r, move || {
        let mut seen = Vec::new();
        let (a1, s1) = open(Some(one), server);
        let (_a2, s2) = open(Some(one), server); // second from 127.0.0.1: refused
        let (_b1, s3) = open(Some(two), server); // first from 127.0.0.2: accepted
        seen.extend([s1, s2, s3]);
        drop(a1);
        let gone = lost_rx.recv_timeout(Duration::from_secs(5)).is_ok();
        seen.push(if gone {
            Seen::Left
        } else {
            Seen::Other("server never saw the close".into())
        });
        let (_a3, s4) = open(Some(one), server); // 127.0.0.1 has room again
        seen.push(s4);
        seen
    });
    r.run().unwrap();

    let seen = clients.take().expect("clients started").join().unwrap();
    assert!(!timed_out.get());
    assert_eq!(
        seen,
        [
            Seen::Greeted,
            Seen::Closed,
            Seen::Greeted,
            Seen::Left,
            Seen::Greeted
        ]
    );
    assert_eq!(
        f.peer_count(),
        0,
        "no entries left once all connections ended"
    );
}
