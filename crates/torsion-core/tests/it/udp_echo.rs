//! UDP ports: echo round trips over IPv4 and IPv6 (Torsion to Torsion, and a plain tokio
//! socket), the protocol's life (`start_protocol`, `stop_protocol`), `stop_listening` freeing
//! the port, panics contained, and datagrams longer than `max_packet_size`.
//!
//! Every port is ephemeral (port 0) on the loopback interface.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::support::datagram::{next, next_datagram, Event, Recorder};
use crate::support::Capture;
use torsion::error::CannotListenError;
use torsion::transport::Address;
use torsion::udp::UdpOptions;
use torsion::{reactor, Failure};

fn on(ip: IpAddr) -> UdpOptions {
    UdpOptions {
        interface: ip,
        ..UdpOptions::default()
    }
}

fn v4() -> UdpOptions {
    on(Ipv4Addr::LOCALHOST.into())
}

/// True when this machine can bind and send on `::1`.
fn ipv6_available() -> bool {
    let Ok(s) = std::net::UdpSocket::bind("[::1]:0") else {
        return false;
    };
    s.send_to(b"?", s.local_addr().unwrap()).is_ok()
}

async fn echo_round_trip(options: UdpOptions) -> Result<(), Failure> {
    let (server, server_events) = Recorder::new(true);
    let port = reactor().listen_udp_with(0, server, options)?;
    let host = port.get_host();
    assert_eq!(next(&server_events).await, Event::Started(host.clone()));
    let server_addr = host.socket_addr().unwrap();
    assert_eq!(server_addr.ip(), options.interface);
    assert_ne!(server_addr.port(), 0);

    let (client, client_events) = Recorder::new(false);
    let client_port = reactor().listen_udp_with(0, client, options)?;
    let client_host = client_port.get_host();
    assert_eq!(
        next(&client_events).await,
        Event::Started(client_host.clone())
    );

    for message in [&b"hello"[..], b"", &[0xffu8; 1500][..]] {
        client_port.write(message, &host)?;
        let (data, from) = next_datagram(&server_events).await;
        assert_eq!((&data[..], &from), (message, &client_host));
        let (data, from) = next_datagram(&client_events).await;
        assert_eq!((&data[..], &from), (message, &host));
    }

    port.stop_listening().await?;
    client_port.stop_listening().await?;
    assert_eq!(next(&server_events).await, Event::Stopped);
    assert_eq!(next(&client_events).await, Event::Stopped);
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn an_ipv4_echo_round_trip_keeps_every_datagram_whole() -> Result<(), Failure> {
    echo_round_trip(v4()).await
}

#[torsion::test(timeout = 20)]
async fn an_ipv6_echo_round_trip_keeps_every_datagram_whole() -> Result<(), Failure> {
    if !ipv6_available() {
        torsion::testing::skip(
            torsion::testing::Missing::HostFeature,
            "::1 is not available on this machine; the IPv6 round trip did not run",
        );
        return Ok(());
    }
    echo_round_trip(on(Ipv6Addr::LOCALHOST.into())).await
}

#[torsion::test(timeout = 20)]
async fn a_port_on_every_interface_answers_a_tokio_socket() -> Result<(), Failure> {
    let (server, server_events) = Recorder::new(true);
    let port = reactor().listen_udp(0, server)?;
    next(&server_events).await; // started
    let host = port.get_host().socket_addr().unwrap();
    assert_eq!(host.ip(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));

    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let target = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), host.port());
    peer.send_to(b"from tokio", target).await?;
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).await?;
    assert_eq!((&buf[..n], from), (&b"from tokio"[..], target));
    let (_, seen) = next_datagram(&server_events).await;
    assert_eq!(seen, Address::Udp(peer.local_addr()?));

    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn stop_listening_runs_stop_protocol_fires_and_frees_the_port() -> Result<(), Failure> {
    let (server, events) = Recorder::new(false);
    let port = reactor().listen_udp_with(0, server, v4())?;
    next(&events).await;
    let addr = port.get_host().socket_addr().unwrap();
    assert!(port.listening());

    let stopped = port.stop_listening();
    assert!(!port.listening());
    let again = port.stop_listening();
    stopped.await?;
    again.await?;
    assert_eq!(next(&events).await, Event::Stopped);
    assert!(events.is_empty(), "stop_protocol runs once");
    // The port number is free again: a plain socket can bind it.
    let rebound = std::net::UdpSocket::bind(addr)?;
    drop(rebound);
    // Writing to a stopped port is an error, not a silent drop.
    let e = port
        .write(b"late", &Address::Udp(addr))
        .expect_err("a stopped port cannot write");
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected);
    port.stop_listening().await?; // a third time: fires at once
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_panic_in_datagram_received_is_logged_and_the_port_goes_on() -> Result<(), Failure> {
    let capture = Capture::default();
    let _guard = capture.start_debug();
    let (mut server, events) = Recorder::new(true);
    server.panic_on = Some(b"boom");
    let port = reactor().listen_udp_with(0, server, v4())?;
    next(&events).await;
    let target = port.get_host().socket_addr().unwrap();

    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    for _ in 0..3 {
        peer.send_to(b"boom", target).await?;
    }
    peer.send_to(b"still there?", target).await?;
    let (data, _) = next_datagram(&events).await;
    assert_eq!(data, b"still there?");
    let mut buf = [0u8; 64];
    let n = peer.recv(&mut buf).await?;
    assert_eq!(&buf[..n], b"still there?");
    assert!(port.listening());

    let log = capture.text();
    assert_eq!(
        log.matches("panicked in datagram_received").count(),
        3,
        "{log}"
    );
    assert!(
        log.contains("Recorder"),
        "the log names the protocol: {log}"
    );
    assert!(log.contains("recorder told to panic"), "{log}");
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn datagrams_longer_than_max_packet_size_are_dropped_not_cut() -> Result<(), Failure> {
    let capture = Capture::default();
    let _guard = capture.start_debug();
    let (server, events) = Recorder::new(false);
    let options = UdpOptions {
        max_packet_size: 64,
        ..v4()
    };
    let port = reactor().listen_udp_with(0, server, options)?;
    next(&events).await;
    let target = port.get_host().socket_addr().unwrap();

    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    peer.send_to(&[1u8; 65], target).await?; // one byte too many
    peer.send_to(&[2u8; 64], target).await?; // exactly the limit
    peer.send_to(&[3u8; 9000], target).await?;
    peer.send_to(b"small", target).await?;
    let (data, _) = next_datagram(&events).await;
    assert_eq!(data, [2u8; 64]);
    let (data, _) = next_datagram(&events).await;
    assert_eq!(data, b"small");
    assert_eq!(
        capture
            .text()
            .matches("longer than max_packet_size")
            .count(),
        2,
        "{}",
        capture.text()
    );
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn the_largest_datagram_arrives_whole_with_the_largest_limit() -> Result<(), Failure> {
    let (server, events) = Recorder::new(false);
    let options = UdpOptions {
        max_packet_size: 65535,
        ..v4()
    };
    let port = reactor().listen_udp_with(0, server, options)?;
    next(&events).await;
    let target = port.get_host().socket_addr().unwrap();
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let big = vec![7u8; 65507]; // the largest IPv4 UDP payload
    peer.send_to(&big, target).await?;
    let (data, _) = next_datagram(&events).await;
    assert_eq!(data, big);
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn bad_options_and_taken_ports_fail_to_listen() -> Result<(), Failure> {
    for max in [0, 65536] {
        let (server, _) = Recorder::new(false);
        let options = UdpOptions {
            max_packet_size: max,
            ..v4()
        };
        let e = reactor().listen_udp_with(0, server, options).unwrap_err();
        assert!(e.check::<CannotListenError>(), "{e}");
    }
    let taken = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let (server, events) = Recorder::new(false);
    let e = reactor()
        .listen_udp_with(taken.local_addr()?.port(), server, v4())
        .unwrap_err();
    let err = e
        .downcast_ref::<CannotListenError>()
        .expect("CannotListenError");
    assert_eq!(err.io_error().kind(), std::io::ErrorKind::AddrInUse);
    assert!(
        events.is_empty(),
        "start_protocol does not run for a port that never opened"
    );
    Ok(())
}

#[torsion::test]
async fn a_panic_in_start_protocol_fails_listen_udp() -> Result<(), Failure> {
    struct Bad;
    impl torsion::datagram::DatagramProtocol for Bad {
        fn start_protocol(&mut self, _: &torsion::datagram::DatagramTransport) {
            panic!("cannot start");
        }
        fn datagram_received(
            &mut self,
            _: &torsion::datagram::DatagramTransport,
            _: &[u8],
            _: &Address,
        ) {
        }
    }
    let e = reactor().listen_udp_with(0, Bad, v4()).unwrap_err();
    assert!(e.is_panic(), "{e}");
    assert!(e.error_message().contains("cannot start"), "{e}");
    Ok(())
}

#[torsion::test]
async fn writes_to_the_wrong_kind_of_address_are_refused() -> Result<(), Failure> {
    let (server, events) = Recorder::new(false);
    let port = reactor().listen_udp_with(0, server, v4())?;
    next(&events).await;
    let e = port.write(b"x", &Address::Unix(None)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = port.send(b"x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotConnected);
    assert_eq!(port.get_peer(), None);
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn reactor_shutdown_runs_stop_protocol() -> Result<(), Failure> {
    // A reactor of its own, run to the end, on a thread of its own (the test's reactor is
    // busy running this test).
    let outcome = std::thread::spawn(|| {
        let r = torsion::Reactor::new();
        r.set_install_signal_handlers(false);
        let (server, events) = Recorder::new(false);
        let port = r.listen_udp_with(0, server, v4()).unwrap();
        r.call_later(0.01, || reactor().stop());
        r.run().unwrap();
        let mut seen = Vec::new();
        while !events.is_empty() {
            let d = events.get().unwrap();
            seen.push(d.result().unwrap().unwrap());
        }
        (seen, port.listening(), port.get_host())
    })
    .join()
    .unwrap();
    let (seen, listening, host) = outcome;
    assert_eq!(seen, vec![Event::Started(host), Event::Stopped]);
    assert!(!listening);
    Ok(())
}
