//! Multicast and socket options: joining and leaving a group on the loopback interface, two
//! listeners sharing a port number, TTL, loopback mode, broadcast, and the errors of bad
//! group calls.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::support::datagram::{next, next_datagram, Recorder};
use torsion::transport::Address;
use torsion::udp::{MulticastInterface, UdpOptions};
use torsion::{reactor, Failure};

const LOOPBACK_IF: MulticastInterface = MulticastInterface::Address(Ipv4Addr::LOCALHOST);

/// A group address of its own for each test, so parallel tests do not hear each other.
fn group(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(239, 255, 77, n)
}

#[torsion::test(timeout = 20)]
async fn two_listeners_on_one_port_both_hear_the_group_until_they_leave() -> Result<(), Failure> {
    let g = IpAddr::V4(group(1));
    let shared = UdpOptions {
        listen_multiple: true,
        ..UdpOptions::default()
    };
    let (a, a_events) = Recorder::new(false);
    let port_a = reactor().listen_udp_with(0, a, shared)?;
    next(&a_events).await;
    let number = port_a.get_host().port().unwrap();
    let (b, b_events) = Recorder::new(false);
    let port_b = reactor().listen_multicast(number, b, true)?;
    next(&b_events).await;
    assert_eq!(port_b.get_host().port(), Some(number));

    if let Err(e) = port_a.join_group(g, LOOPBACK_IF) {
        torsion::testing::skip(
            torsion::testing::Missing::HostFeature,
            format!(
                "this machine cannot join a multicast group on the loopback interface ({e}); \
                 only the calls' errors were tested"
            ),
        );
        port_a.stop_listening().await?;
        port_b.stop_listening().await?;
        return Ok(());
    }
    port_b.join_group(g, LOOPBACK_IF)?;

    let (sender, sender_events) = Recorder::new(false);
    let send = reactor().listen_udp_with(
        0,
        sender,
        UdpOptions {
            interface: Ipv4Addr::LOCALHOST.into(),
            ..UdpOptions::default()
        },
    )?;
    next(&sender_events).await;
    send.set_outgoing_interface(LOOPBACK_IF)?;
    send.set_loopback_mode(true)?;
    let to_group = Address::Udp(SocketAddr::new(g, number));
    send.write(b"to everyone", &to_group)?;
    for events in [&a_events, &b_events] {
        let (data, from) = next_datagram(events).await;
        assert_eq!((&data[..], from), (&b"to everyone"[..], send.get_host()));
    }

    // Both leave: the next group datagram reaches nobody. A joins again, and the first
    // datagram either hears is the one sent after that (loopback delivers in order). (On
    // Linux a socket bound to the wildcard address hears every group any socket of the host
    // joined on that port — IP_MULTICAST_ALL — so B hears it too; Twisted leaves that as is.)
    port_b.leave_group(g, LOOPBACK_IF)?;
    port_a.leave_group(g, LOOPBACK_IF)?;
    send.write(b"nobody listens", &to_group)?;
    port_a.join_group(g, LOOPBACK_IF)?;
    send.write(b"A is back", &to_group)?;
    let (data, _) = next_datagram(&a_events).await;
    assert_eq!(data, b"A is back");
    let (data, _) = next_datagram(&b_events).await;
    assert_eq!(data, b"A is back");

    send.stop_listening().await?;
    port_a.stop_listening().await?;
    port_b.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn group_calls_report_errors() -> Result<(), Failure> {
    let (p, events) = Recorder::new(false);
    let port = reactor().listen_udp(0, p)?;
    next(&events).await;
    // Not a multicast address.
    assert!(port
        .join_group(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            MulticastInterface::Default
        )
        .is_err());
    // Leaving a group never joined.
    assert!(port.leave_group(IpAddr::V4(group(2)), LOOPBACK_IF).is_err());
    // An interface address that is no interface of this machine.
    assert!(port
        .join_group(
            IpAddr::V4(group(3)),
            MulticastInterface::Address(Ipv4Addr::new(192, 0, 2, 254))
        )
        .is_err());
    // IPv6 groups name their interface by index.
    let e = port
        .join_group(IpAddr::V6("ff02::1:2".parse().unwrap()), LOOPBACK_IF)
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    // An IPv4 socket's outgoing interface is an address.
    let e = port
        .set_outgoing_interface(MulticastInterface::Index(1))
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    port.stop_listening().await?;
    // A closed port answers every call with NotConnected.
    let e = port
        .join_group(IpAddr::V4(group(4)), LOOPBACK_IF)
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected);
    assert!(port.get_ttl().is_err());
    Ok(())
}

#[torsion::test]
async fn ttl_loopback_and_broadcast_are_set_and_read_back() -> Result<(), Failure> {
    let (p, events) = Recorder::new(false);
    let port = reactor().listen_udp(0, p)?;
    next(&events).await;
    assert_eq!(port.get_ttl()?, 1, "Twisted's and the system's default");
    port.set_ttl(7)?;
    assert_eq!(port.get_ttl()?, 7);
    assert!(port.get_loopback_mode()?);
    port.set_loopback_mode(false)?;
    assert!(!port.get_loopback_mode()?);
    assert!(!port.get_broadcast_allowed()?);
    port.set_broadcast_allowed(true)?;
    assert!(port.get_broadcast_allowed()?);
    port.set_outgoing_interface(LOOPBACK_IF)?;
    port.set_outgoing_interface(MulticastInterface::Default)?;
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn ipv6_ports_set_hops_and_loopback() -> Result<(), Failure> {
    let options = UdpOptions {
        interface: Ipv6Addr::LOCALHOST.into(),
        ..UdpOptions::default()
    };
    let (p, events) = Recorder::new(false);
    let port = match reactor().listen_udp_with(0, p, options) {
        Ok(port) => port,
        Err(e) => {
            torsion::testing::skip(
                torsion::testing::Missing::HostFeature,
                format!("cannot bind ::1 here ({e}); the IPv6 options were not tested"),
            );
            return Ok(());
        }
    };
    next(&events).await;
    port.set_ttl(9)?;
    assert_eq!(port.get_ttl()?, 9);
    port.set_loopback_mode(false)?;
    assert!(!port.get_loopback_mode()?);
    port.set_outgoing_interface(MulticastInterface::Index(1))?;
    let e = port.set_outgoing_interface(LOOPBACK_IF).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    // Joining a link-local group on the loopback interface (index 1 on Linux) may or may
    // not be allowed; leaving one never joined is an error either way.
    assert!(port
        .leave_group(
            IpAddr::V6("ff02::1:3".parse().unwrap()),
            MulticastInterface::Index(1)
        )
        .is_err());
    // IPv4 destinations reach IPv4 peers through the IPv4-mapped form... on a socket bound
    // to ::1 they cannot (no route), which the system reports.
    assert!(port
        .write(b"x", &Address::Udp("127.0.0.1:9".parse().unwrap()))
        .is_err());
    port.stop_listening().await?;
    Ok(())
}
