//! What the `tls_*` tests share: certificates made at test time with rcgen (a CA and leaves
//! it signs), and recording protocols.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::rc::Rc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use torsion::defer::DeferredQueue;
use torsion::error::TlsError;
use torsion::tcp::ListeningPort;
use torsion::tls::{CertificateDer, ClientContext, Identity, ServerContext};
use torsion::ConnectionEnd;
use torsion::{factory, reactor, Failure, Protocol, Transport};

pub(crate) use super::next;

/// A test certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate (DER).
    pub fn cert(&self) -> CertificateDer<'static> {
        self.cert.clone()
    }

    /// The CA's certificate as PEM.
    pub fn pem(&self) -> String {
        self.pem.clone()
    }

    /// A leaf certificate for `names` signed by this CA, and its key as PEM.
    pub fn leaf_pem(&self, names: &[&str]) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A leaf identity for `names`.
    pub fn leaf(&self, names: &[&str]) -> Identity {
        let (cert, key) = self.leaf_pem(names);
        Identity::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()
    }

    /// A server context showing a leaf for `names`.
    pub fn server(&self, names: &[&str]) -> ServerContext {
        ServerContext::new(self.leaf(names)).unwrap()
    }

    /// A client context trusting only this CA.
    pub fn client(&self) -> ClientContext {
        ClientContext::builder()
            .trust([self.cert()])
            .build()
            .unwrap()
    }
}

/// What one side of a connection saw.
#[derive(Default)]
pub struct Record {
    pub received: RefCell<Vec<u8>>,
    pub lost: RefCell<Option<Failure>>,
    pub peer_certificate: RefCell<Option<Vec<u8>>>,
    pub alpn: RefCell<Option<Vec<u8>>>,
    /// One item per connection of this side that ended.
    pub ended: DeferredQueue<()>,
}

impl Record {
    pub fn saw(&self, t: &Transport, data: &[u8]) {
        self.received.borrow_mut().extend_from_slice(data);
        *self.peer_certificate.borrow_mut() = t.peer_certificate();
        *self.alpn.borrow_mut() = t.negotiated_protocol();
    }

    pub fn lost(&self, reason: Failure) {
        *self.lost.borrow_mut() = Some(reason);
        self.ended.put(()).unwrap();
    }

    pub fn reason(&self) -> Failure {
        self.lost
            .borrow_mut()
            .take()
            .expect("connection_lost was called")
    }
}

/// Echoes what it receives.
pub struct Echo {
    pub rec: Rc<Record>,
}

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.rec.saw(t, data);
        t.write(data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

/// Sends `message` when connected and closes once as many bytes came back.
pub struct Sender {
    pub message: Rc<Vec<u8>>,
    pub rec: Rc<Record>,
}

impl Protocol for Sender {
    fn connection_made(&mut self, t: &Transport) {
        t.write(&self.message);
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.rec.saw(t, data);
        if self.rec.received.borrow().len() >= self.message.len() {
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

/// A temporary file, removed when dropped.
pub struct TempFile(pub std::path::PathBuf);

impl TempFile {
    pub fn new(tag: &str, contents: &[u8]) -> TempFile {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "torsion-tls-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An [`Echo`] server over TLS with `server`, on an ephemeral port of 127.0.0.1, and the
/// [`Record`] its connections write to.
pub(crate) fn listen_echo(server: ServerContext) -> Result<(ListeningPort, Rc<Record>), Failure> {
    let srec: Rc<Record> = Rc::default();
    let s = srec.clone();
    let port = reactor().listen_tls_on(
        0,
        factory(move || Echo { rec: s.clone() }),
        server,
        "127.0.0.1",
    )?;
    Ok((port, srec))
}

/// Asserts that `reason` is a [`TlsError`] whose message contains `words`.
pub(crate) fn assert_tls(reason: &Failure, words: &str) {
    assert!(reason.check::<TlsError>(), "not a TlsError: {reason}");
    assert!(
        reason.to_string().contains(words),
        "{reason:?} does not name {words:?}"
    );
}
