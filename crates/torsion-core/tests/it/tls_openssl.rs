//! Interop with OpenSSL, a TLS implementation nobody here wrote: `openssl s_client` talks to
//! a Torsion TLS server (TLS 1.3 and 1.2, verifying the certificate and host name), and a
//! Torsion TLS client talks to `openssl s_server -rev`. Debian's `openssl` is installed if
//! missing; if it cannot be had, the tests say so loudly on stderr.

#![cfg(feature = "tls")]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::OnceLock;

use crate::support::tls::{next, Ca, Record, Sender, TempFile};
use torsion::error::ConnectionDone;
use torsion::threads::defer_to_thread;
use torsion::ConnectionEnd;
use torsion::{factory, reactor, Failure, Protocol, Transport};

/// The `openssl` program, installed with apt-get if missing (once per test process: the
/// tests run in parallel and apt-get takes a lock).
fn openssl() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let find = || {
                std::env::var_os("PATH").and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|p| p.join("openssl"))
                        .find(|p| p.is_file())
                })
            };
            if let Some(p) = find() {
                return Some(p);
            }
            let _ = Command::new("sh")
                .args(["-c", "apt-get update -qq && apt-get install -y -qq openssl"])
                .stdout(Stdio::null())
                .status();
            find()
        })
        .clone()
        .or_else(|| {
            eprintln!("!!! openssl is missing and could not be installed: interop NOT tested !!!");
            None
        })
}

/// A child process, killed and reaped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Echoes one line, then closes.
struct LineEcho {
    rec: Rc<Record>,
}

impl Protocol for LineEcho {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.rec.saw(t, data);
        t.write(data);
        if self.rec.received.borrow().ends_with(b"\n") {
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

/// Runs `openssl s_client` against a Torsion server with `extra` options; returns what it
/// printed (the echo) and its exit status.
async fn s_client_to_torsion(
    extra: &'static [&'static str],
) -> Result<Option<(String, bool)>, Failure> {
    let Some(openssl) = openssl() else {
        return Ok(None);
    };
    let ca = Ca::new("Torsion interop CA");
    let ca_file = TempFile::new("ca.pem", ca.pem().as_bytes());
    let rec: Rc<Record> = Rc::default();
    let r = rec.clone();
    let port = reactor().listen_tls_on(
        0,
        factory(move || LineEcho { rec: r.clone() }),
        ca.server(&["localhost"]),
        "127.0.0.1",
    )?;
    let addr = format!("127.0.0.1:{}", port.get_host().port().unwrap());
    let ca_path = ca_file.path().to_owned();
    let out = defer_to_thread(move || {
        let mut child = Command::new(openssl)
            .args(["s_client", "-connect", &addr, "-servername", "localhost"])
            .args([
                "-CAfile",
                &ca_path,
                "-verify_return_error",
                "-verify_hostname",
                "localhost",
            ])
            .arg("-quiet")
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_client");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello from openssl\n").unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut running = Running(child);
        let mut printed = String::new();
        let _ = stdout.read_to_string(&mut printed); // until the server closes
        drop(stdin);
        let ok = running.0.wait().map(|s| s.success()).unwrap_or(false);
        (printed, ok)
    })
    .await?;
    next(&rec.ended).await;
    port.stop_listening().await?;
    assert_eq!(&*rec.received.borrow(), b"hello from openssl\n");
    let reason = rec.reason();
    assert!(reason.check::<ConnectionDone>(), "{reason}");
    Ok(Some(out))
}

#[torsion::test(timeout = 120)]
async fn openssl_s_client_talks_to_a_torsion_server() -> Result<(), Failure> {
    if let Some((printed, ok)) = s_client_to_torsion(&[]).await? {
        assert_eq!(printed, "hello from openssl\n");
        assert!(ok, "s_client failed");
    }
    Ok(())
}

#[torsion::test(timeout = 120)]
async fn openssl_s_client_talks_tls_1_2_to_a_torsion_server() -> Result<(), Failure> {
    if let Some((printed, ok)) = s_client_to_torsion(&["-tls1_2"]).await? {
        assert_eq!(printed, "hello from openssl\n");
        assert!(ok, "s_client failed");
    }
    Ok(())
}

#[torsion::test(timeout = 120)]
async fn a_torsion_client_talks_to_openssl_s_server() -> Result<(), Failure> {
    let Some(openssl) = openssl() else {
        return Ok(());
    };
    let ca = Ca::new("Torsion interop CA");
    let (cert, key) = ca.leaf_pem(&["localhost"]);
    let (cert_file, key_file) = (
        TempFile::new("cert.pem", cert.as_bytes()),
        TempFile::new("key.pem", key.as_bytes()),
    );
    let (cert_path, key_path) = (cert_file.path().to_owned(), key_file.path().to_owned());
    // s_server picks a free port (0) and tells it: "ACCEPT 127.0.0.1:PORT".
    let (server, port) = defer_to_thread(move || {
        let mut child = Command::new(openssl)
            .args([
                "s_server",
                "-accept",
                "127.0.0.1:0",
                "-naccept",
                "1",
                "-rev",
            ])
            .args(["-cert", &cert_path, "-key", &key_path])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines.by_ref().map_while(Result::ok).find_map(|l| {
            l.strip_prefix("ACCEPT 127.0.0.1:")
                .and_then(|p| p.parse::<u16>().ok())
        });
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        (Running(child), port)
    })
    .await?;
    let port = port.expect("s_server did not say which port it listens on");
    let rec: Rc<Record> = Rc::default();
    let r = rec.clone();
    reactor().connect_tls(
        "localhost",
        port,
        factory(move || Sender {
            message: Rc::new(b"hello openssl\n".to_vec()),
            rec: r.clone(),
        }),
        ca.client(),
    );
    next(&rec.ended).await;
    drop(server);
    assert_eq!(&*rec.received.borrow(), b"lssnepo olleh\n");
    assert!(rec.peer_certificate.borrow().is_some());
    let reason = rec.reason();
    assert!(reason.check::<ConnectionDone>(), "{reason}");
    Ok(())
}
