//! Runs the `tls_echo_server` example with `cargo run --example` and talks to it with a
//! TLS client (Torsion's, which is rustls): with certificate files made by the test, and with
//! the self-signed certificate the example makes and prints.

use std::cell::RefCell;
use std::process::Stdio;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use crate::support;
use support::{Running, TempFile};
use torsion::tls::{CertificateDer, ClientContext};
use torsion::ConnectionEnd;
use torsion::{factory, Protocol, Reactor, Transport};

/// How long the example may take to start, building included.
const DEADLINE: Duration = Duration::from_secs(300);

/// Starts the example with `--port 0` and `extra` arguments; returns it, the port it
/// printed, and a receiver of its further stdout lines.
fn start(extra: &[&str]) -> (Running, u16, mpsc::Receiver<String>) {
    let mut child = support::example("tls_echo_server")
        .args(["--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start cargo run");
    let stdout = child.stdout.take().expect("piped stdout");
    let child = Running(child);
    let rx = support::lines(stdout);
    let line = rx
        .recv_timeout(DEADLINE)
        .expect("tls_echo_server did not say where it listens");
    let port = line
        .strip_prefix("tls echo server listening on tcp:")
        .and_then(|address| address.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    (child, port, rx)
}

/// Sends a message and keeps what comes back, closing once it all did.
struct Client {
    message: &'static [u8],
    received: Rc<RefCell<Vec<u8>>>,
    certificate: Rc<RefCell<Option<Vec<u8>>>>,
}

impl Protocol for Client {
    fn connection_made(&mut self, t: &Transport) {
        t.write(self.message);
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.received.borrow_mut().extend_from_slice(data);
        *self.certificate.borrow_mut() = t.peer_certificate();
        if self.received.borrow().len() >= self.message.len() {
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, _: ConnectionEnd) {
        let _ = torsion::reactor().stop();
    }
}

/// Runs a TLS client against `localhost:port`; returns the echo and the server's certificate.
fn talk(port: u16, context: ClientContext, message: &'static [u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let r = Reactor::new();
    r.set_install_signal_handlers(false);
    let received = Rc::new(RefCell::new(Vec::new()));
    let certificate = Rc::new(RefCell::new(None));
    let (rc, cc) = (received.clone(), certificate.clone());
    r.connect_tls(
        "localhost",
        port,
        factory(move || Client {
            message,
            received: rc.clone(),
            certificate: cc.clone(),
        }),
        context,
    );
    r.call_later(20.0, || {
        let _ = torsion::reactor().stop();
    });
    r.run().unwrap();
    let got = received.borrow().clone();
    let cert = certificate.borrow().clone();
    (got, cert)
}

#[test]
fn tls_echo_server_with_certificate_files() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = TempFile::new("examples-tls-cert", ".pem", made.cert.pem().as_bytes());
    let key = TempFile::new(
        "examples-tls-key",
        ".pem",
        made.signing_key.serialize_pem().as_bytes(),
    );
    let (server, port, _) = start(&["--cert", cert.path(), "--key", key.path()]);
    let context = ClientContext::builder()
        .trust([made.cert.der().clone()])
        .build()
        .unwrap();
    let (echo, seen) = talk(port, context, b"hello, TLS echo");
    assert_eq!(echo, b"hello, TLS echo");
    assert_eq!(seen.as_deref(), Some(made.cert.der().as_ref()));
    drop(server);
}

#[test]
fn tls_echo_server_makes_and_prints_a_self_signed_certificate() {
    let (server, port, lines) = start(&[]);
    let mut pem = String::new();
    for line in lines.iter() {
        if line.starts_with("-----BEGIN") || !pem.is_empty() {
            pem.push_str(&line);
            pem.push('\n');
        }
        if line.starts_with("-----END") {
            break;
        }
    }
    let file = TempFile::new("examples-tls-printed", ".pem", pem.as_bytes());
    let der: Vec<CertificateDer<'static>> =
        torsion::tls::load_certificates(file.path()).expect("the printed certificate");
    let context = ClientContext::builder().trust(der).build().unwrap();
    let (echo, seen) = talk(port, context, b"trust on first sight");
    assert_eq!(echo, b"trust on first sight");
    assert!(seen.is_some());
    drop(server);
}
