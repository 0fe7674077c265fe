//! TLS data transfer over loopback: an echo round trip, the peer certificate, SNI choosing
//! the certificate, ALPN, several megabytes each way, and `lose_connection` during the
//! handshake still delivering everything, then a clean close_notify.
//!
//! Certificates are made at test time by a test CA (rcgen). Ports are ephemeral; each test
//! is an async `#[torsion::test]` that waits for its connections to end.

#![cfg(feature = "tls")]

use std::rc::Rc;

use crate::support::tls::{listen_echo, next, Ca, Record, Sender};
use torsion::error::ConnectionDone;
use torsion::tls::{ClientContext, ServerContext};
use torsion::ConnectionEnd;
use torsion::{factory, reactor, Failure, Protocol, Transport};

/// Listens with an echo server using `server`, connects a [`Sender`] of `message` using
/// `client` to `host`, and waits for both ends to close.
async fn round_trip(
    server: ServerContext,
    client: ClientContext,
    host: &str,
    message: Vec<u8>,
) -> Result<(Rc<Record>, Rc<Record>), Failure> {
    let (port, srec) = listen_echo(server)?;
    let crec: Rc<Record> = Rc::default();
    let (c, message) = (crec.clone(), Rc::new(message));
    reactor().connect_tls(
        host,
        port.get_host().port().unwrap(),
        factory(move || Sender {
            message: message.clone(),
            rec: c.clone(),
        }),
        client,
    );
    next(&crec.ended).await;
    next(&srec.ended).await;
    port.stop_listening().await?;
    Ok((srec, crec))
}

#[torsion::test(timeout = 20)]
async fn echo_over_tls_closes_cleanly_and_shows_the_server_certificate() -> Result<(), Failure> {
    let ca = Ca::new("Torsion test CA");
    let identity = ca.leaf(&["localhost"]);
    let server_cert = identity.certificate().to_vec();
    let server = ServerContext::new(identity).unwrap();
    let (srec, crec) = round_trip(server, ca.client(), "localhost", b"hello, TLS".to_vec()).await?;
    assert_eq!(&*crec.received.borrow(), b"hello, TLS");
    assert_eq!(&*srec.received.borrow(), b"hello, TLS");
    assert_eq!(
        crec.peer_certificate.borrow().as_deref(),
        Some(&server_cert[..])
    );
    assert_eq!(
        *srec.peer_certificate.borrow(),
        None,
        "the client showed no certificate"
    );
    let (c, s) = (crec.reason(), srec.reason());
    assert!(c.check::<ConnectionDone>(), "client: {c}");
    assert!(s.check::<ConnectionDone>(), "server: {s}");
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn sni_picks_the_certificate_for_the_name_asked() -> Result<(), Failure> {
    let ca = Ca::new("Torsion SNI CA");
    let (default, a, wild) = (
        ca.leaf(&["default.test"]),
        ca.leaf(&["a.test"]),
        ca.leaf(&["*.wild.test"]),
    );
    let certs = [
        ("default.test", default.certificate().to_vec()),
        ("a.test", a.certificate().to_vec()),
        ("x.wild.test", wild.certificate().to_vec()),
        ("A.TEST", a.certificate().to_vec()),
    ];
    let server = ServerContext::builder()
        .certificate(default)
        .sni_certificate("a.test", a)
        .sni_certificate("*.wild.test", wild)
        .build()
        .unwrap();
    for (name, expected) in certs {
        // Connect to the loopback address, asking for `name`: verification against `name`
        // only passes if the server chose that name's certificate.
        let client = ClientContext::builder()
            .trust([ca.cert()])
            .server_name(name)
            .build()
            .unwrap();
        let (_, crec) = round_trip(server.clone(), client, "127.0.0.1", b"sni".to_vec()).await?;
        assert_eq!(&*crec.received.borrow(), b"sni", "{name}");
        assert_eq!(
            crec.peer_certificate.borrow().as_deref(),
            Some(&expected[..]),
            "{name}"
        );
        let c = crec.reason();
        assert!(c.check::<ConnectionDone>(), "{name}: {c}");
    }
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn alpn_agrees_on_the_protocol_both_offer() -> Result<(), Failure> {
    let ca = Ca::new("Torsion ALPN CA");
    let server = ServerContext::builder()
        .certificate(ca.leaf(&["localhost"]))
        .alpn_protocols(["h2", "http/1.1"])
        .build()
        .unwrap();
    let client = ClientContext::builder()
        .trust([ca.cert()])
        .alpn_protocols([&b"http/1.1"[..], b"spdy/1"])
        .build()
        .unwrap();
    let (srec, crec) = round_trip(server, client, "localhost", b"alpn".to_vec()).await?;
    assert_eq!(crec.alpn.borrow().as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(srec.alpn.borrow().as_deref(), Some(&b"http/1.1"[..]));
    // Without ALPN on the client, nothing is agreed.
    let server = ServerContext::builder()
        .certificate(ca.leaf(&["localhost"]))
        .alpn_protocols(["h2"])
        .build()
        .unwrap();
    let (srec, crec) = round_trip(server, ca.client(), "localhost", b"none".to_vec()).await?;
    assert_eq!(*crec.alpn.borrow(), None);
    assert_eq!(*srec.alpn.borrow(), None);
    Ok(())
}

#[torsion::test(timeout = 60)]
async fn several_megabytes_each_way_arrive_intact_and_in_order() -> Result<(), Failure> {
    let ca = Ca::new("Torsion bulk CA");
    let message: Vec<u8> = (0..6 << 20).map(|i: u32| (i % 251) as u8).collect();
    let (srec, crec) = round_trip(
        ca.server(&["localhost"]),
        ca.client(),
        "localhost",
        message.clone(),
    )
    .await?;
    assert_eq!(srec.received.borrow().len(), message.len());
    assert!(
        *srec.received.borrow() == message,
        "what the server got differs"
    );
    assert!(*crec.received.borrow() == message, "the echo differs");
    Ok(())
}

/// Writes `size` bytes and closes at once, in `connection_made`, before the handshake.
struct WriteAndClose {
    size: usize,
}

impl Protocol for WriteAndClose {
    fn connection_made(&mut self, t: &Transport) {
        let data: Vec<u8> = (0..self.size).map(|i| (i % 253) as u8).collect();
        t.write(&data[..self.size / 2]);
        t.write(&data[self.size / 2..]);
        t.lose_connection();
        assert!(
            t.disconnecting(),
            "closing, though it waits for the handshake"
        );
    }

    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

/// Collects everything until the connection ends.
struct Collect {
    rec: Rc<Record>,
}

impl Protocol for Collect {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.rec.saw(t, data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

#[torsion::test(timeout = 30)]
async fn lose_connection_during_the_handshake_sends_everything_then_close_notify(
) -> Result<(), Failure> {
    let ca = Ca::new("Torsion close CA");
    let size = 3 << 20;
    let port = reactor().listen_tls_on(
        0,
        factory(move || WriteAndClose { size }),
        ca.server(&["localhost"]),
        "127.0.0.1",
    )?;
    let rec: Rc<Record> = Rc::default();
    let r = rec.clone();
    reactor().connect_tls(
        "localhost",
        port.get_host().port().unwrap(),
        factory(move || Collect { rec: r.clone() }),
        ca.client(),
    );
    next(&rec.ended).await;
    port.stop_listening().await?;
    let expected: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    assert_eq!(rec.received.borrow().len(), size);
    assert!(*rec.received.borrow() == expected, "the data differs");
    // A clean close: the server's close_notify came after the data.
    let reason = rec.reason();
    assert!(reason.check::<ConnectionDone>(), "{reason}");
    Ok(())
}
