//! Connected UDP: a connected port hears only its peer, `send` goes to the peer, and the
//! kernel's "port unreachable" reaches `connection_refused` — without a read to carry it, and
//! again on later writes — while the port goes on working.

use std::net::{Ipv4Addr, SocketAddr};

use crate::support::datagram::{next, next_datagram, Event, Recorder};
use torsion::transport::Address;
use torsion::udp::UdpOptions;
use torsion::{reactor, Failure};

fn v4() -> UdpOptions {
    UdpOptions {
        interface: Ipv4Addr::LOCALHOST.into(),
        ..UdpOptions::default()
    }
}

/// A loopback UDP address nobody listens on (bound, read, and closed again).
fn closed_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

#[torsion::test(timeout = 20)]
async fn a_connected_port_receives_only_from_its_peer() -> Result<(), Failure> {
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let (client, events) = Recorder::new(false);
    let port = reactor().listen_udp_with(0, client, v4())?;
    next(&events).await;
    let target = port.get_host().socket_addr().unwrap();

    let peer_addr = Address::Udp(peer.local_addr()?);
    port.connect(&peer_addr)?;
    assert_eq!(port.get_peer(), Some(peer_addr.clone()));

    stranger.send_to(b"not for you", target).await?;
    peer.send_to(b"for you", target).await?;
    let (data, from) = next_datagram(&events).await;
    assert_eq!((&data[..], from), (&b"for you"[..], peer_addr.clone()));

    // send goes to the peer; write to the peer's address works too.
    port.send(b"hello peer")?;
    port.write(b"again", &peer_addr)?;
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).await?;
    assert_eq!((&buf[..n], from), (&b"hello peer"[..], target));
    let n = peer.recv(&mut buf).await?;
    assert_eq!(&buf[..n], b"again");
    // The kernel refuses other destinations on a connected socket.
    assert!(port
        .write(b"elsewhere", &Address::Udp(stranger.local_addr()?))
        .is_err());
    assert!(events.is_empty(), "the stranger's datagram never arrived");

    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn sending_to_a_closed_port_calls_connection_refused() -> Result<(), Failure> {
    let (client, events) = Recorder::new(false);
    let port = reactor().listen_udp_with(0, client, v4())?;
    next(&events).await;
    port.connect(&Address::Udp(closed_port()))?;

    // The ICMP answer comes back as a socket error with nothing to read.
    port.send(b"anyone?")?;
    assert_eq!(next(&events).await, Event::Refused);
    // Each refused datagram is reported again; the socket stays open and connected.
    port.send(b"anyone now?")?;
    assert_eq!(next(&events).await, Event::Refused);
    assert!(port.listening());

    // Connected to a live peer, the same port works as before.
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    port.connect(&Address::Udp(peer.local_addr()?))?;
    port.send(b"there you are")?;
    let mut buf = [0u8; 64];
    let n = peer.recv(&mut buf).await?;
    assert_eq!(&buf[..n], b"there you are");
    peer.send_to(b"hi", port.get_host().socket_addr().unwrap())
        .await?;
    assert_eq!(next_datagram(&events).await.0, b"hi");

    port.stop_listening().await?;
    assert_eq!(next(&events).await, Event::Stopped);
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn an_unconnected_port_ignores_refusals() -> Result<(), Failure> {
    let (client, events) = Recorder::new(false);
    let port = reactor().listen_udp_with(0, client, v4())?;
    next(&events).await;
    let nobody = Address::Udp(closed_port());
    for _ in 0..3 {
        port.write(b"anyone?", &nobody)?;
    }
    // A datagram sent to ourselves after the refused ones arrives, and nothing before it.
    port.write(b"me", &port.get_host())?;
    let (data, _) = next_datagram(&events).await;
    assert_eq!(data, b"me");
    port.stop_listening().await?;
    assert_eq!(next(&events).await, Event::Stopped);
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_refusal_during_a_callback_waits_for_the_callback_to_return() -> Result<(), Failure> {
    use std::cell::Cell;
    use std::rc::Rc;
    use torsion::datagram::{DatagramProtocol, DatagramTransport};

    /// On each datagram, sends to its connected (closed) peer many times; records how deeply
    /// the protocol is entered.
    struct Pusher {
        depth: Rc<Cell<u32>>,
        refusals: Rc<Cell<u32>>,
        max_depth: Rc<Cell<u32>>,
    }
    impl DatagramProtocol for Pusher {
        fn datagram_received(&mut self, t: &DatagramTransport, _: &[u8], _: &Address) {
            self.depth.set(self.depth.get() + 1);
            self.max_depth
                .set(self.max_depth.get().max(self.depth.get()));
            for _ in 0..20 {
                let _ = t.send(b"x");
            }
            self.depth.set(self.depth.get() - 1);
        }
        fn connection_refused(&mut self, _: &DatagramTransport) {
            self.depth.set(self.depth.get() + 1);
            self.max_depth
                .set(self.max_depth.get().max(self.depth.get()));
            self.refusals.set(self.refusals.get() + 1);
            self.depth.set(self.depth.get() - 1);
        }
    }
    let (depth, refusals, max_depth) = (Rc::default(), Rc::<Cell<u32>>::default(), Rc::default());
    let p = Pusher {
        depth,
        refusals: refusals.clone(),
        max_depth: Rc::clone(&max_depth),
    };
    let port = reactor().listen_udp_with(0, p, v4())?;
    // A datagram from a live helper waits in the queue while the port is connected to a
    // closed port instead: the protocol's sends in datagram_received are the only ones.
    let helper = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    port.connect(&Address::Udp(helper.local_addr()?))?;
    helper
        .send_to(b"go", port.get_host().socket_addr().unwrap())
        .await?;
    port.connect(&Address::Udp(closed_port()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while refusals.get() == 0 {
        assert!(std::time::Instant::now() < deadline, "no refusal arrived");
        tokio::task::yield_now().await;
    }
    assert_eq!(max_depth.get(), 1, "the protocol was never re-entered");
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_dual_stack_port_connected_to_an_ipv4_peer_answers_its_mapped_address(
) -> Result<(), Failure> {
    let options = UdpOptions {
        interface: std::net::Ipv6Addr::UNSPECIFIED.into(),
        ..UdpOptions::default()
    };
    let (client, events) = Recorder::new(true);
    let port = match reactor().listen_udp_with(0, client, options) {
        Ok(p) => p,
        Err(e) => {
            torsion::testing::skip(
                torsion::testing::Missing::HostFeature,
                format!("no IPv6 socket here ({e}); the dual-stack test did not run"),
            );
            return Ok(());
        }
    };
    next(&events).await;
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    port.connect(&Address::Udp(peer.local_addr()?))?;
    let to = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port.get_host().port().unwrap());
    peer.send_to(b"mapped", to).await?;
    // The port sees the IPv4-mapped form, and the echo to it is allowed (same peer).
    let (_, from) = next_datagram(&events).await;
    let Address::Udp(SocketAddr::V6(mapped)) = from else {
        panic!("{from:?}")
    };
    assert_eq!(mapped.ip().to_ipv4_mapped(), Some(Ipv4Addr::LOCALHOST));
    let mut buf = [0u8; 16];
    let n = peer.recv(&mut buf).await?;
    assert_eq!(&buf[..n], b"mapped");
    port.stop_listening().await?;
    Ok(())
}
