//! What the tests share: a python with Twisted (the venv the core's Twisted interop tests
//! make, in the same place), and running a Python peer without blocking the reactor.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The interop peer script.
pub(crate) const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/amp_peer.py");

/// A python with Twisted from PyPI and its TLS extras (pyOpenSSL) for StartTLS, in the venv
/// the interop tests share, or None, loudly, without python3 (`testing::python_venv`).
pub(crate) fn twisted_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("twisted-venv");
    torsion::testing::python_venv(
        &venv,
        "twisted, OpenSSL, service_identity",
        &["twisted[tls]>=22"],
    )
}

/// A Python process whose stdout lines arrive on a channel; killed when dropped.
pub(crate) struct Peer {
    child: Child,
    /// Its stdout, line by line; closed at its end of file.
    pub(crate) lines: mpsc::Receiver<String>,
}

impl Peer {
    /// Starts `python PEER args...`.
    pub(crate) fn start(python: &Path, args: &[&str]) -> Peer {
        let mut child = Command::new(python)
            .arg(PEER)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer { child, lines }
    }

    /// The next line, within a minute.
    pub(crate) fn line(&self) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(60)).ok()
    }

    /// Waits for the process to end, returning whether it succeeded.
    pub(crate) fn wait(&mut self) -> bool {
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Certificates made at test time: a CA, and a leaf for `localhost` it signs.
pub(crate) struct Pki {
    /// The CA's certificate, PEM.
    pub(crate) ca_pem: String,
    /// The leaf's certificate and key, PEM.
    pub(crate) leaf_pem: (String, String),
    ca_der: torsion::tls::CertificateDer<'static>,
}

impl Pki {
    /// A fresh CA and a `localhost` leaf.
    pub(crate) fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Torsion AMP test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(params, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        Pki {
            ca_pem: ca.pem(),
            leaf_pem: (leaf.pem(), key.serialize_pem()),
            ca_der: ca.der().clone(),
        }
    }

    /// A server context showing the leaf.
    pub(crate) fn server(&self) -> torsion::tls::ServerContext {
        let (cert, key) = &self.leaf_pem;
        let id = torsion::tls::Identity::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        torsion::tls::ServerContext::new(id).unwrap()
    }

    /// A client context trusting only the CA, checking the name `localhost`.
    pub(crate) fn client(&self) -> torsion::tls::ClientContext {
        torsion::tls::ClientContext::builder()
            .trust([self.ca_der.clone()])
            .server_name("localhost")
            .build()
            .unwrap()
    }

    /// Writes the CA, the leaf and its key as files in a fresh directory, for a Python peer:
    /// (ca, cert, key).
    pub(crate) fn files(&self, tag: &str) -> (PathBuf, PathBuf, PathBuf) {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("amp-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths = (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        );
        std::fs::write(&paths.0, &self.ca_pem).unwrap();
        std::fs::write(&paths.1, &self.leaf_pem.0).unwrap();
        std::fs::write(&paths.2, &self.leaf_pem.1).unwrap();
        paths
    }
}

/// A reactor for a test that runs it: its own, without signal handlers (tests run in
/// parallel threads).
pub(crate) fn reactor() -> torsion::Reactor {
    let r = torsion::Reactor::new();
    r.set_install_signal_handlers(false);
    r
}

/// Runs `r` until `peer` ends (its stdout closes) or 120 s pass, reading its lines from the
/// reactor between events: whether it succeeded, and what it printed.
pub(crate) fn run_until_peer_ends(r: &torsion::Reactor, peer: Peer) -> (bool, String) {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::mpsc::TryRecvError;

    fn poll(r: torsion::Reactor, peer: Rc<RefCell<Peer>>, out: Rc<RefCell<Vec<String>>>) {
        loop {
            let next = peer.borrow().lines.try_recv();
            match next {
                Ok(line) => out.borrow_mut().push(line),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    drop(r.stop());
                    return;
                }
            }
        }
        let again = r.clone();
        r.call_later(0.02, move || poll(again, peer, out));
    }
    let peer = Rc::new(RefCell::new(peer));
    let out: Rc<RefCell<Vec<String>>> = Rc::default();
    let guard = r.clone();
    r.call_later(120.0, move || drop(guard.stop()));
    poll(r.clone(), peer.clone(), out.clone());
    r.run().unwrap();
    let ok = peer.borrow_mut().wait();
    let out = out.borrow().join("\n");
    (ok, out)
}
