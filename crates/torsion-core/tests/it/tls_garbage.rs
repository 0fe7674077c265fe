//! Garbage instead of a ClientHello closes only that connection, with a log line naming
//! the TLS failure; the port goes on serving TLS clients. (Its own test binary: the log is
//! captured with a subscriber for this thread, and `tracing` caches per call site whether
//! anyone listens, which tests logging the same line on other threads would disturb.)

#![cfg(feature = "tls")]

use std::rc::Rc;

use crate::support::tls::{assert_tls, listen_echo, next, Ca, Record, Sender};
use crate::support::Capture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torsion::{factory, reactor, Failure};

#[torsion::test(timeout = 20)]
async fn garbage_instead_of_a_client_hello_closes_that_connection_with_a_log_line(
) -> Result<(), Failure> {
    let log = Capture::default();
    let _guard = log.start();

    let ca = Ca::new("Torsion garbage CA");
    let (port, srec) = listen_echo(ca.server(&["localhost"]))?;
    let addr = port.get_host().socket_addr().unwrap();

    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    next(&srec.ended).await;
    let reason = srec.reason();
    assert_tls(&reason, "TLS handshake failed");
    // The server answered with an alert (or nothing) and closed: the raw client reads EOF.
    let mut rest = Vec::new();
    raw.read_to_end(&mut rest).await.unwrap();
    assert!(
        rest.len() < 64,
        "only an alert may come back, got {} bytes",
        rest.len()
    );
    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("TLS handshake failed") && logged.contains("closing that connection"),
        "no log line: {logged:?}"
    );

    // The port still serves TLS clients.
    let crec: Rc<Record> = Rc::default();
    let c = crec.clone();
    reactor().connect_tls(
        "localhost",
        addr.port(),
        factory(move || Sender {
            message: Rc::new(b"still here".to_vec()),
            rec: c.clone(),
        }),
        ca.client(),
    );
    next(&crec.ended).await;
    next(&srec.ended).await;
    assert_eq!(&*crec.received.borrow(), b"still here");
    port.stop_listening().await?;
    Ok(())
}
