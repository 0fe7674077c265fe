//! TLS failures end one connection with a [`TlsError`] naming the cause: a required client
//! certificate missing, a server certificate from an unknown CA or for another name, and
//! settings that cannot work. Client certificates that are shown are readable by the server.
//! (Garbage instead of a ClientHello: `tls_garbage.rs`.)

#![cfg(feature = "tls")]

use std::cell::RefCell;
use std::rc::Rc;

use crate::support::tls::{assert_tls, listen_echo, next, Ca, Record, Sender};
use torsion::error::{ConnectionDone, TlsError};
use torsion::tcp::Connector;
use torsion::tls::{ClientContext, ServerContext};
use torsion::transport::Address;
use torsion::{reactor, ClientFactory, Factory, Failure};

/// A client factory that records what the connector reported.
struct Watch {
    message: Rc<Vec<u8>>,
    rec: Rc<Record>,
    failed: Rc<RefCell<Option<Failure>>>,
    lost: Rc<RefCell<Option<Failure>>>,
}

impl Factory for Watch {
    type Protocol = Sender;
    fn build_protocol(&self, _: &Address) -> Option<Sender> {
        Some(Sender {
            message: self.message.clone(),
            rec: self.rec.clone(),
        })
    }
}

impl ClientFactory for Watch {
    fn client_connection_failed(&self, _: &Connector, reason: Failure) {
        *self.failed.borrow_mut() = Some(reason);
        self.rec.ended.put(()).unwrap();
    }
    fn client_connection_lost(&self, _: &Connector, reason: Failure) {
        *self.lost.borrow_mut() = Some(reason);
    }
}

struct Outcome {
    server: Rc<Record>,
    client: Rc<Record>,
    /// What `client_connection_failed` got, if called.
    failed: Option<Failure>,
    /// What `client_connection_lost` got, if called.
    lost: Option<Failure>,
}

/// Runs one connection from `client` (to `host`) to an echo server using `server`.
async fn attempt(
    server: ServerContext,
    client: ClientContext,
    host: &str,
) -> Result<Outcome, Failure> {
    let (port, srec) = listen_echo(server)?;
    let crec: Rc<Record> = Rc::default();
    let (failed, lost) = (Rc::default(), Rc::default());
    reactor().connect_tls(
        host,
        port.get_host().port().unwrap(),
        Watch {
            message: Rc::new(b"secret".to_vec()),
            rec: crec.clone(),
            failed: Rc::clone(&failed),
            lost: Rc::clone(&lost),
        },
        client,
    );
    next(&crec.ended).await;
    let failed = failed.borrow_mut().take();
    if failed.is_none() {
        next(&srec.ended).await;
    }
    port.stop_listening().await?;
    let lost = lost.borrow_mut().take();
    Ok(Outcome {
        server: srec,
        client: crec,
        failed,
        lost,
    })
}

#[torsion::test(timeout = 20)]
async fn a_required_client_certificate_that_is_missing_fails_on_both_sides() -> Result<(), Failure>
{
    let ca = Ca::new("Torsion client-auth CA");
    let server = ServerContext::builder()
        .certificate(ca.leaf(&["localhost"]))
        .require_client_certificate([ca.cert()])
        .build()
        .unwrap();
    let out = attempt(server, ca.client(), "localhost").await?;
    assert_tls(&out.server.reason(), "no certificates");
    // TLS 1.3: the client finished its side of the handshake, then hears the server's alert.
    let client = out.client.reason();
    assert_tls(&client, "CertificateRequired");
    assert!(out.failed.is_none());
    assert_tls(
        &out.lost.expect("client_connection_lost"),
        "CertificateRequired",
    );
    assert!(out.server.received.borrow().is_empty(), "no data may pass");
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_client_certificate_that_is_shown_is_verified_and_readable() -> Result<(), Failure> {
    let ca = Ca::new("Torsion client-auth CA");
    let client_identity = ca.leaf(&["client.test"]);
    let client_cert = client_identity.certificate().to_vec();
    let server = ServerContext::builder()
        .certificate(ca.leaf(&["localhost"]))
        .require_client_certificate([ca.cert()])
        .build()
        .unwrap();
    let client = ClientContext::builder()
        .trust([ca.cert()])
        .identity(client_identity)
        .build()
        .unwrap();
    let out = attempt(server, client, "localhost").await?;
    assert_eq!(&*out.server.received.borrow(), b"secret");
    assert_eq!(
        out.server.peer_certificate.borrow().as_deref(),
        Some(&client_cert[..])
    );
    assert!(out.server.reason().check::<ConnectionDone>());

    // A client certificate from another CA is refused.
    let other = Ca::new("Someone else's CA");
    let server = ServerContext::builder()
        .certificate(ca.leaf(&["localhost"]))
        .request_client_certificate([ca.cert()])
        .build()
        .unwrap();
    let client = ClientContext::builder()
        .trust([ca.cert()])
        .identity(other.leaf(&["client.test"]))
        .build()
        .unwrap();
    let out = attempt(server.clone(), client, "localhost").await?;
    assert_tls(&out.server.reason(), "UnknownIssuer");

    // With the certificate only requested, a client without one gets in.
    let out = attempt(server, ca.client(), "localhost").await?;
    assert_eq!(&*out.server.received.borrow(), b"secret");
    assert_eq!(*out.server.peer_certificate.borrow(), None);
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_server_certificate_from_an_unknown_ca_is_refused() -> Result<(), Failure> {
    let (ca, other) = (
        Ca::new("The server's CA"),
        Ca::new("The CA the client trusts"),
    );
    let out = attempt(ca.server(&["localhost"]), other.client(), "localhost").await?;
    let client = out.client.reason();
    assert_tls(&client, "TLS handshake failed");
    assert_tls(&client, "UnknownIssuer");
    assert_tls(&out.lost.expect("client_connection_lost"), "UnknownIssuer");
    assert_tls(&out.server.reason(), "UnknownCA");
    assert!(out.server.received.borrow().is_empty());
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn a_server_certificate_for_another_name_is_refused() -> Result<(), Failure> {
    let ca = Ca::new("Torsion name CA");
    let out = attempt(ca.server(&["right.test"]), ca.client(), "localhost").await?;
    assert_tls(&out.client.reason(), "not valid for name");
    assert!(out.server.received.borrow().is_empty());
    Ok(())
}

#[test]
fn settings_that_cannot_work_are_refused_naming_the_cause() {
    let err = ClientContext::builder()
        .trust([Ca::new("CA").cert()])
        .server_name("bad name!")
        .build()
        .unwrap_err();
    assert!(matches!(err, TlsError::Config(_)));
    assert!(
        err.to_string()
            .contains("'bad name!' is not a valid server name"),
        "{err}"
    );
    let err = ServerContext::builder().build().unwrap_err();
    assert!(
        err.to_string().contains("needs at least one certificate"),
        "{err}"
    );
    // A key that is not the certificate's.
    let ca = Ca::new("CA");
    let (cert, _) = ca.leaf_pem(&["a.test"]);
    let (_, other_key) = ca.leaf_pem(&["b.test"]);
    let err = torsion::tls::Identity::from_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("unusable certificate or key"),
        "{err}"
    );
    let err = torsion::tls::Identity::from_pem(b"not pem", b"").unwrap_err();
    assert!(err.to_string().contains("no certificate found"), "{err}");
    let err = torsion::tls::load_certificates("/nonexistent/ca.pem").unwrap_err();
    assert!(
        err.to_string().contains("cannot read /nonexistent/ca.pem"),
        "{err}"
    );
}
