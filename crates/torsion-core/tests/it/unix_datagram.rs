//! Unix datagram sockets: round trips (a Torsion client, a std socket, an abstract name, a
//! client bound to a path), the socket file's life (mode, stale clean-up, address in use,
//! removal on close), connection failures, `connection_refused` when the peer goes away, the
//! UDP-only options answering `Unsupported`, and Python's socket module as a peer.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::datagram::{next, next_datagram, Event, Recorder};
use crate::support::peer;
use crate::support::{Capture, TempPath};
use torsion::error::{CannotListenError, ConnectError, ConnectionRefusedError};
use torsion::transport::Address;
use torsion::udp::MulticastInterface;
use torsion::unix_datagram::UnixDatagramOptions;
use torsion::{reactor, Failure};

#[torsion::test(timeout = 20)]
async fn a_connected_client_round_trips_with_an_autobound_name() -> Result<(), Failure> {
    let path = TempPath::new("dg-echo");
    let (server, server_events) = Recorder::new(true);
    let port = reactor().listen_unix_datagram(&path, server)?;
    assert_eq!(next(&server_events).await, Event::Started(path.address()));
    assert!(path.0.exists());

    let (client, client_events) = Recorder::new(false);
    let c = reactor().connect_unix_datagram(&path, client, None)?;
    let Event::Started(client_host) = next(&client_events).await else {
        panic!()
    };
    assert_eq!(c.get_peer(), Some(path.address()));
    // Linux gives the client an automatic abstract name, so the server can answer it.
    let Address::Unix(Some(name)) = &client_host else {
        panic!("{client_host:?}")
    };
    assert!(name.to_string_lossy().starts_with('@'), "{name:?}");

    for m in [&b"one"[..], b"", &[9u8; 4000][..]] {
        c.send(m)?;
        let (data, from) = next_datagram(&server_events).await;
        assert_eq!((&data[..], &from), (m, &client_host));
        let (data, from) = next_datagram(&client_events).await;
        assert_eq!((&data[..], &from), (m, &path.address()));
    }
    c.stop_listening().await?;
    port.stop_listening().await?;
    assert!(!path.0.exists(), "closing the port removed its file");
    assert_eq!(next(&server_events).await, Event::Stopped);
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_std_socket_bound_to_a_path_is_answered() -> Result<(), Failure> {
    let path = TempPath::new("dg-std-server");
    let client_path = TempPath::new("dg-std-client");
    let (server, events) = Recorder::new(true);
    let port = reactor().listen_unix_datagram(&path, server)?;
    next(&events).await;
    let std_client = std::os::unix::net::UnixDatagram::bind(&client_path)?;
    std_client.set_nonblocking(true)?;
    std_client.send_to(b"from std", &path)?;
    let (data, from) = next_datagram(&events).await;
    assert_eq!((&data[..], from), (&b"from std"[..], client_path.address()));
    // The echo was sent before the event reached us: it waits in the client's queue.
    let mut buf = [0u8; 64];
    let (n, addr) = std_client.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"from std");
    assert_eq!(addr.as_pathname(), Some(path.as_ref()));

    // An unnamed sender cannot be answered: the protocol sees Address::Unix(None).
    let unnamed = std::os::unix::net::UnixDatagram::unbound()?;
    let (quiet, quiet_events) = Recorder::new(false);
    let quiet_path = TempPath::new("dg-quiet");
    let quiet_port = reactor().listen_unix_datagram(&quiet_path, quiet)?;
    next(&quiet_events).await;
    unnamed.send_to(b"anonymous", &quiet_path)?;
    let (_, from) = next_datagram(&quiet_events).await;
    assert_eq!(from, Address::Unix(None));
    let e = quiet_port.write(b"reply", &from).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);

    quiet_port.stop_listening().await?;
    port.stop_listening().await?;
    Ok(())
}

#[cfg(target_os = "linux")]
#[torsion::test(timeout = 20)]
async fn abstract_names_serve_and_bind_without_files() -> Result<(), Failure> {
    let name = format!("@torsion-dg-abstract-{}", std::process::id());
    let client_name = format!("@torsion-dg-abstract-client-{}", std::process::id());
    let (server, server_events) = Recorder::new(true);
    let port = reactor().listen_unix_datagram(&name, server)?;
    let server_addr = Address::Unix(Some(PathBuf::from(&name)));
    assert_eq!(
        next(&server_events).await,
        Event::Started(server_addr.clone())
    );

    let (client, client_events) = Recorder::new(false);
    let c = reactor().connect_unix_datagram(&name, client, Some(Path::new(&client_name)))?;
    let client_addr = Address::Unix(Some(PathBuf::from(&client_name)));
    assert_eq!(
        next(&client_events).await,
        Event::Started(client_addr.clone())
    );
    c.send(b"abstract")?;
    let (data, from) = next_datagram(&server_events).await;
    assert_eq!((&data[..], &from), (&b"abstract"[..], &client_addr));
    let (data, from) = next_datagram(&client_events).await;
    assert_eq!((&data[..], from), (&b"abstract"[..], server_addr.clone()));
    // A second server cannot take the name.
    let (other, _) = Recorder::new(false);
    let e = reactor().listen_unix_datagram(&name, other).unwrap_err();
    assert!(e.check::<CannotListenError>(), "{e}");
    c.stop_listening().await?;
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_client_bound_to_a_path_removes_its_file_when_closed() -> Result<(), Failure> {
    let path = TempPath::new("dg-bound-server");
    let client_path = TempPath::new("dg-bound-client");
    let (server, server_events) = Recorder::new(true);
    let port = reactor().listen_unix_datagram(&path, server)?;
    next(&server_events).await;
    let (client, client_events) = Recorder::new(false);
    let c = reactor().connect_unix_datagram(&path, client, Some(client_path.as_ref()))?;
    assert_eq!(
        next(&client_events).await,
        Event::Started(client_path.address())
    );
    c.send(b"hi")?;
    assert_eq!(next_datagram(&server_events).await.1, client_path.address());
    assert_eq!(next_datagram(&client_events).await.0, b"hi");
    assert!(client_path.0.exists());
    c.stop_listening().await?;
    assert!(!client_path.0.exists());
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn mode_stale_files_and_addresses_in_use() -> Result<(), Failure> {
    let path = TempPath::new("dg-life");
    // A stale socket file: bound by a socket that is gone.
    peer::close_now(std::os::unix::net::UnixDatagram::bind(&path)?);
    assert!(path.0.exists());
    let (server, events) = Recorder::new(false);
    let options = UnixDatagramOptions {
        mode: Some(0o600),
        ..UnixDatagramOptions::default()
    };
    let port = reactor().listen_unix_datagram_with(&path, server, options)?;
    next(&events).await;
    let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // In use: refused, and the file stays.
    let (other, other_events) = Recorder::new(false);
    let e = reactor().listen_unix_datagram(&path, other).unwrap_err();
    let err = e
        .downcast_ref::<CannotListenError>()
        .expect("CannotListenError");
    assert_eq!(err.io_error().kind(), std::io::ErrorKind::AddrInUse);
    assert!(other_events.is_empty());
    assert!(path.0.exists());
    port.stop_listening().await?;
    assert!(!path.0.exists());

    // Without clean-up, a stale file is an error.
    peer::close_now(std::os::unix::net::UnixDatagram::bind(&path)?);
    let (third, _) = Recorder::new(false);
    let options = UnixDatagramOptions {
        cleanup_stale: false,
        ..UnixDatagramOptions::default()
    };
    let e = reactor()
        .listen_unix_datagram_with(&path, third, options)
        .unwrap_err();
    assert!(e.check::<CannotListenError>(), "{e}");
    // A file that is not a socket is never removed.
    let plain = TempPath::new("dg-plain-file");
    std::fs::write(&plain, b"keep me")?;
    let (fourth, _) = Recorder::new(false);
    assert!(reactor().listen_unix_datagram(&plain, fourth).is_err());
    assert_eq!(std::fs::read(&plain)?, b"keep me");
    Ok(())
}

#[torsion::test]
async fn connecting_to_nobody_fails() -> Result<(), Failure> {
    let stale = TempPath::new("dg-nobody");
    peer::close_now(std::os::unix::net::UnixDatagram::bind(&stale)?);
    let (client, _) = Recorder::new(false);
    let e = reactor()
        .connect_unix_datagram(&stale, client, None)
        .unwrap_err();
    assert!(e.check::<ConnectionRefusedError>(), "{e}");
    let missing = TempPath::new("dg-missing");
    let (client, _) = Recorder::new(false);
    let e = reactor()
        .connect_unix_datagram(&missing, client, None)
        .unwrap_err();
    assert!(e.check::<ConnectError>(), "{e}");
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn the_peer_going_away_calls_connection_refused() -> Result<(), Failure> {
    let path = TempPath::new("dg-goes-away");
    let (server, server_events) = Recorder::new(false);
    let port = reactor().listen_unix_datagram(&path, server)?;
    next(&server_events).await;
    let (client, client_events) = Recorder::new(false);
    let c = reactor().connect_unix_datagram(&path, client, None)?;
    next(&client_events).await;
    c.send(b"are you there")?;
    next_datagram(&server_events).await;
    port.stop_listening().await?;
    // Writing to a connected peer that closed is refused: the protocol hears of it, the
    // write itself does not fail. (A peer process starting on another thread may hold the
    // closed socket open for a moment, between its fork and exec: so keep writing, with a
    // generous deadline, until the refusal comes.)
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client_events.is_empty() {
        assert!(std::time::Instant::now() < give_up, "no refusal");
        c.send(b"hello?")?;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(next(&client_events).await, Event::Refused);
    // Writing to an unconnected path nobody serves is an error at once.
    let (lone, lone_events) = Recorder::new(false);
    let lone_path = TempPath::new("dg-lone");
    let lone_port = reactor().listen_unix_datagram(&lone_path, lone)?;
    next(&lone_events).await;
    let e = lone_port.write(b"x", &path.address()).unwrap_err();
    assert!(matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    ));
    lone_port.stop_listening().await?;
    c.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn udp_options_are_unsupported() -> Result<(), Failure> {
    let path = TempPath::new("dg-options");
    let (server, events) = Recorder::new(false);
    let port = reactor().listen_unix_datagram(&path, server)?;
    next(&events).await;
    let unsupported = std::io::ErrorKind::Unsupported;
    assert_eq!(port.set_ttl(3).unwrap_err().kind(), unsupported);
    assert_eq!(port.get_loopback_mode().unwrap_err().kind(), unsupported);
    assert_eq!(
        port.set_broadcast_allowed(true).unwrap_err().kind(),
        unsupported
    );
    let g = IpAddr::V4(Ipv4Addr::new(239, 1, 1, 1));
    assert_eq!(
        port.join_group(g, MulticastInterface::Default)
            .unwrap_err()
            .kind(),
        unsupported
    );
    let e = port
        .write(b"x", &Address::Udp("127.0.0.1:9".parse().unwrap()))
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 90)]
async fn a_python_socket_client_gets_its_datagrams_echoed() -> Result<(), Failure> {
    let Some(py) = peer::python3() else {
        return Ok(());
    };
    let path = TempPath::new("dg-python-server");
    let client_path = TempPath::new("dg-python-client");
    let (server, events) = Recorder::new(true);
    let port = reactor().listen_unix_datagram(&path, server)?;
    next(&events).await;
    let mut p = peer::Peer::start(
        &py,
        &[
            "unix-client",
            path.0.to_str().unwrap(),
            client_path.0.to_str().unwrap(),
        ],
    );
    let said = p.line().await;
    assert!(p.success().await, "the peer failed: {said}");
    assert_eq!(said, "ok 4");
    for _ in 0..4 {
        assert_eq!(next_datagram(&events).await.1, client_path.address());
    }
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_full_peer_queue_drops_datagrams_and_counts_them() -> Result<(), Failure> {
    let capture = Capture::default();
    let _guard = capture.start_debug();
    // A peer that never reads: its queue fills, and the kernel says "would block".
    let path = TempPath::new("dg-never-reads");
    let sleeper = std::os::unix::net::UnixDatagram::bind(&path)?;
    let (client, events) = Recorder::new(false);
    let c = reactor().connect_unix_datagram(&path, client, None)?;
    next(&events).await;
    let mut sent = 0u64;
    while c.dropped_writes() == 0 {
        c.send(&[0u8; 1000])?; // never an error: dropped, not failed
        sent += 1;
        assert!(sent < 1_000_000, "the queue never filled");
    }
    for _ in 0..9 {
        c.send(b"more")?;
    }
    assert_eq!(c.dropped_writes(), 10);
    assert!(
        capture.text().contains("send buffer full"),
        "{}",
        capture.text()
    );
    // What was queued before is intact, in order.
    sleeper.set_nonblocking(true)?;
    let mut buf = [0u8; 2000];
    let mut queued = 0u64;
    while let Ok(n) = sleeper.recv(&mut buf) {
        assert_eq!(n, 1000);
        queued += 1;
    }
    assert_eq!(queued, sent - 1);
    c.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_client_takes_options_for_its_own_end() -> Result<(), Failure> {
    let path = TempPath::new("dg-opts-server");
    let client_path = TempPath::new("dg-opts-client");
    let (server, server_events) = Recorder::new(false);
    let port = reactor().listen_unix_datagram(&path, server)?;
    next(&server_events).await;
    let options = UnixDatagramOptions {
        mode: Some(0o640),
        max_packet_size: 16,
        ..UnixDatagramOptions::default()
    };
    let (client, client_events) = Recorder::new(false);
    let c =
        reactor().connect_unix_datagram_with(&path, client, Some(client_path.as_ref()), options)?;
    next(&client_events).await;
    let mode = std::fs::metadata(&client_path)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    port.write(&[1u8; 17], &client_path.address())?;
    port.write(&[2u8; 16], &client_path.address())?;
    assert_eq!(next_datagram(&client_events).await.0, [2u8; 16]);

    let (bad, _) = Recorder::new(false);
    let too_big = UnixDatagramOptions {
        max_packet_size: 70_000,
        ..UnixDatagramOptions::default()
    };
    let e = reactor()
        .connect_unix_datagram_with(&path, bad, None, too_big)
        .unwrap_err();
    assert!(e.check::<ConnectError>(), "{e}");
    c.stop_listening().await?;
    port.stop_listening().await?;
    Ok(())
}
