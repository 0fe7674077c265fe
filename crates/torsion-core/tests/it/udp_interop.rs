//! UDP against peers nobody here wrote: Python's socket module, and Python Twisted's own
//! `listenUDP` and `DatagramProtocol` (from PyPI, in a throwaway venv). Both directions: the
//! peer as client of a Torsion echo port, and a Torsion client of the peer's reversing server.
//!
//! Skipped, loudly, only where `python3` is missing; a failed Twisted install is a failure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use crate::support::datagram::{next, next_datagram, Recorder};
use crate::support::peer;
use peer::Peer;
use torsion::transport::Address;
use torsion::udp::UdpOptions;
use torsion::{reactor, Failure};

const MESSAGES: [&[u8]; 4] = [b"hello", b"", b"a somewhat longer datagram", &[0xab; 1400]];

/// A Torsion echo port on `ip`; the peer sends to it and checks what comes back.
async fn peer_client_against_torsion_echo(
    python: &Path,
    mode: &str,
    ip: IpAddr,
) -> Result<(), Failure> {
    let (echo, events) = Recorder::new(true);
    let options = UdpOptions {
        interface: ip,
        max_packet_size: 65535,
        ..UdpOptions::default()
    };
    let port = reactor().listen_udp_with(0, echo, options)?;
    next(&events).await;
    let number = port.get_host().port().unwrap().to_string();
    let mut peer = Peer::start(python, &[mode, &ip.to_string(), &number]);
    let said = peer.line().await;
    assert!(peer.success().await, "the peer failed: {said}");
    assert_eq!(said, "ok 5");
    // Five datagrams, all from one peer address.
    let (_, first) = next_datagram(&events).await;
    for _ in 1..5 {
        assert_eq!(next_datagram(&events).await.1, first);
    }
    port.stop_listening().await?;
    Ok(())
}

/// A Torsion client of the peer's reversing server.
async fn torsion_client_against_peer_server(python: &Path, mode: &str) -> Result<(), Failure> {
    let mut peer = Peer::start(python, &[mode]);
    let number: u16 = peer.line().await.parse().expect("the peer prints its port");
    let server = Address::Udp(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), number));
    let (client, events) = Recorder::new(false);
    let options = UdpOptions {
        interface: Ipv4Addr::LOCALHOST.into(),
        ..UdpOptions::default()
    };
    let port = reactor().listen_udp_with(0, client, options)?;
    next(&events).await;
    for m in MESSAGES {
        port.write(m, &server)?;
        let (data, from) = next_datagram(&events).await;
        let reversed: Vec<u8> = m.iter().rev().copied().collect();
        assert_eq!((data, &from), (reversed, &server));
    }
    port.write(b"quit", &server)?;
    assert_eq!(peer.line().await, "bye");
    assert!(peer.success().await);
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 90)]
async fn python_socket_client_gets_its_datagrams_echoed_over_ipv4() -> Result<(), Failure> {
    let Some(py) = peer::python3() else {
        return Ok(());
    };
    peer_client_against_torsion_echo(&py, "udp-client", Ipv4Addr::LOCALHOST.into()).await
}

#[torsion::test(timeout = 90)]
async fn python_socket_client_gets_its_datagrams_echoed_over_ipv6() -> Result<(), Failure> {
    let Some(py) = peer::python3() else {
        return Ok(());
    };
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        torsion::testing::skip(
            torsion::testing::Missing::HostFeature,
            "::1 is not available here; the IPv6 interop did not run",
        );
        return Ok(());
    }
    peer_client_against_torsion_echo(&py, "udp-client", Ipv6Addr::LOCALHOST.into()).await
}

#[torsion::test(timeout = 90)]
async fn a_torsion_client_talks_to_a_python_socket_server() -> Result<(), Failure> {
    let Some(py) = peer::python3() else {
        return Ok(());
    };
    torsion_client_against_peer_server(&py, "udp-server").await
}

#[torsion::test(timeout = 300)]
async fn a_twisted_client_gets_its_datagrams_echoed() -> Result<(), Failure> {
    let Some(py) = peer::twisted_python() else {
        return Ok(());
    };
    peer_client_against_torsion_echo(&py, "twisted-udp-client", Ipv4Addr::LOCALHOST.into()).await
}

#[torsion::test(timeout = 300)]
async fn a_torsion_client_talks_to_a_twisted_server() -> Result<(), Failure> {
    let Some(py) = peer::twisted_python() else {
        return Ok(());
    };
    torsion_client_against_peer_server(&py, "twisted-udp-server").await
}
