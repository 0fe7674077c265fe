//! HTTPS out of the box, against a TLS server nobody here wrote: `openssl s_server -www`
//! (Debian's `openssl`, which the test command installs), started by each test on a port it
//! picks itself, with certificates the test makes with rcgen. The agent trusts the test's CA
//! and gets a page; a self-signed certificate, one for another name and an expired one each
//! fail with a [`TlsFailed`] naming the problem. No test reaches the internet.

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use torsion::testing::TempDir;
use torsion::tls::{Identity, ServerContext, TlsError};
use torsion::{factory, reactor, Failure, Protocol, Transport};
use torsion_web::client::{
    options_for_client_tls, read_body, Agent, BrowserLikePolicyForHttps, TlsFailed, TlsProblem,
};

/// A test certificate authority.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Torsion https test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names` signed by this CA, as (certificate, key) PEM.
    fn leaf(&self, names: &[&str]) -> (String, String) {
        self.leaf_with(names, |_| {})
    }

    fn leaf_with(
        &self,
        names: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A self-signed certificate for `names`, as (certificate, key) PEM.
fn self_signed(names: &[&str]) -> (String, String) {
    let made =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// `openssl s_server -www` on a port of its choosing, killed and reaped when dropped.
struct SServer {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `openssl s_server -www` showing `cert`; with `sni`, it shows `sni.1` instead to a
/// client that sends the name `sni.0` as SNI (`-servername`, `-cert2`). `None` (the test
/// skipped, loudly) when openssl is missing.
fn s_server(cert: &(String, String), sni: Option<(&str, &(String, String))>) -> Option<SServer> {
    let dir = TempDir::new("https");
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-accept", "127.0.0.1:0", "-www"])
        .args(["-cert", &write_file(&dir, "cert.pem", &cert.0)])
        .args(["-key", &write_file(&dir, "key.pem", &cert.1)]);
    if let Some((name, (c, k))) = sni {
        cmd.args(["-servername", name])
            .args(["-cert2", &write_file(&dir, "cert2.pem", c)])
            .args(["-key2", &write_file(&dir, "key2.pem", k)]);
    }
    let spawned = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            torsion::testing::skip(
                torsion::testing::Missing::Peer,
                format!("openssl is not installed ({e})"),
            );
            return None;
        }
    };
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        // "ACCEPT 127.0.0.1:PORT"
        if let Some(port) = lines.by_ref().find_map(|l| {
            l.strip_prefix("ACCEPT 127.0.0.1:")
                .and_then(|p| p.trim().parse::<u16>().ok())
        }) {
            let _ = tx.send(port);
        }
        lines.for_each(drop); // never let it block on a full pipe
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("s_server said which port it listens on");
    Some(SServer {
        child,
        port,
        _dir: dir,
    })
}

/// What a GET of `url` failed with: the failure, which must be a [`TlsFailed`].
async fn tls_failure(agent: &Agent, url: &str) -> TlsFailed {
    let f = agent.get(url).await.expect_err("the request failed");
    f.trap::<TlsFailed>()
        .unwrap_or_else(|f| panic!("a TlsFailed, not {f}"))
}

#[torsion::test(timeout = 120)]
async fn a_server_whose_ca_the_agent_trusts_answers_and_sni_is_sent() -> Result<(), Failure> {
    let ca = Ca::new();
    // s_server shows the good certificate only to a client that sends "localhost" as SNI;
    // without SNI it would show one for another name, and the request would fail.
    let wrong = ca.leaf(&["not-this-one.example"]);
    let good = ca.leaf(&["localhost"]);
    let Some(server) = s_server(&wrong, Some(("localhost", &good))) else {
        return Ok(());
    };
    let policy = BrowserLikePolicyForHttps::trusting_pem(ca.pem.as_bytes())?;
    let agent = Agent::new().with_policy(policy);
    let url = format!("https://localhost:{}/", server.port);
    let response = agent.get(&url).await?;
    assert_eq!(response.code, 200);
    let body = String::from_utf8(read_body(response).await?).unwrap();
    assert!(body.contains("s_server -accept"), "{body}");
    // The platform's roots and the CA besides: the same.
    let policy = BrowserLikePolicyForHttps::new().add_roots_pem(ca.pem.as_bytes())?;
    let agent = Agent::new().with_policy(policy);
    assert_eq!(agent.get(&url).await?.code, 200);
    agent.close_cached_connections().await
}

#[torsion::test(timeout = 120)]
async fn a_self_signed_certificate_is_an_unknown_issuer() -> Result<(), Failure> {
    let ca = Ca::new();
    let Some(server) = s_server(&self_signed(&["localhost"]), None) else {
        return Ok(());
    };
    let url = format!("https://localhost:{}/", server.port);
    let agent =
        Agent::new().with_policy(BrowserLikePolicyForHttps::trusting_pem(ca.pem.as_bytes())?);
    let e = tls_failure(&agent, &url).await;
    assert_eq!(e.problem, TlsProblem::UnknownIssuer);
    assert_eq!((e.host.as_str(), e.port), ("localhost", server.port));
    let message = e.to_string();
    assert!(
        message.contains(&format!("localhost:{}", server.port)),
        "{message}"
    );
    assert!(message.contains("unknown issuer"), "{message}");
    assert!(e.reason().check::<TlsError>());
    // The default agent (the platform's roots) refuses it too, or says there are no roots.
    match Agent::new().get(&url).await {
        Ok(r) => panic!("a self-signed certificate was accepted: {r:?}"),
        Err(f) if f.check::<TlsFailed>() => {
            assert_eq!(
                f.trap::<TlsFailed>().unwrap().problem,
                TlsProblem::UnknownIssuer
            )
        }
        Err(f) => {
            let e = f.trap::<TlsError>().expect("a TLS error");
            assert!(e.to_string().contains("no trusted roots"), "{e}");
        }
    }
    Ok(())
}

#[torsion::test(timeout = 120)]
async fn a_certificate_for_another_name_is_a_name_mismatch() -> Result<(), Failure> {
    let ca = Ca::new();
    let Some(server) = s_server(&ca.leaf(&["www.example.test"]), None) else {
        return Ok(());
    };
    let agent =
        Agent::new().with_policy(BrowserLikePolicyForHttps::trusting_pem(ca.pem.as_bytes())?);
    let e = tls_failure(&agent, &format!("https://localhost:{}/", server.port)).await;
    assert_eq!(
        e.problem,
        TlsProblem::NameMismatch {
            expected: "localhost".into(),
            presented: vec!["www.example.test".into()],
        }
    );
    let message = e.to_string();
    assert!(
        message.contains("\"localhost\" (it is for www.example.test)"),
        "{message}"
    );
    Ok(())
}

#[torsion::test(timeout = 120)]
async fn an_expired_certificate_says_when_it_expired() -> Result<(), Failure> {
    let ca = Ca::new();
    let expired = ca.leaf_with(&["localhost"], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let Some(server) = s_server(&expired, None) else {
        return Ok(());
    };
    let agent =
        Agent::new().with_policy(BrowserLikePolicyForHttps::trusting_pem(ca.pem.as_bytes())?);
    let e = tls_failure(&agent, &format!("https://localhost:{}/", server.port)).await;
    assert_eq!(
        e.problem,
        TlsProblem::Expired {
            not_after: Some(1_609_459_200)
        }
    );
    let message = e.to_string();
    assert!(message.contains("expired"), "{message}");
    assert!(message.contains("2021-01-01 00:00:00 UTC"), "{message}");
    Ok(())
}

#[torsion::test(timeout = 120)]
async fn per_host_options_check_another_name() -> Result<(), Failure> {
    // The URL names 127.0.0.1, the certificate only "service.internal": per-host settings
    // (optionsForClientTLS) say which name to check, and the request goes through.
    let ca = Ca::new();
    let Some(server) = s_server(&ca.leaf(&["service.internal"]), None) else {
        return Ok(());
    };
    let url = format!("https://127.0.0.1:{}/", server.port);
    let trusting = BrowserLikePolicyForHttps::trusting_pem(ca.pem.as_bytes())?;
    let e = tls_failure(&Agent::new().with_policy(trusting.clone()), &url).await;
    assert!(
        matches!(&e.problem, TlsProblem::NameMismatch { expected, .. } if expected == "127.0.0.1"),
        "{e}"
    );
    let context = options_for_client_tls("service.internal")
        .trust(torsion::tls::load_certificates_pem(ca.pem.as_bytes())?)
        .build()?;
    let agent = Agent::new().with_policy(trusting.for_host("127.0.0.1", context));
    assert_eq!(agent.get(&url).await?.code, 200);
    Ok(())
}

/// Records what the TLS handshake agreed, then answers one HTTP response.
struct Alpn(Rc<RefCell<Option<Vec<u8>>>>);

impl Protocol for Alpn {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        *self.0.borrow_mut() = t.negotiated_protocol();
        if data.windows(4).any(|w| w == b"\r\n\r\n") {
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            t.lose_connection();
        }
    }
}

#[torsion::test]
async fn the_agent_offers_http_1_1_by_alpn() -> Result<(), Failure> {
    let ca = Ca::new();
    let (cert, key) = ca.leaf(&["localhost"]);
    let server = ServerContext::builder()
        .certificate(Identity::from_pem(cert.as_bytes(), key.as_bytes())?)
        .alpn_protocols(["h2", "http/1.1"])
        .build()?;
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let port = reactor().listen_tls_on(0, factory(move || Alpn(s.clone())), server, "127.0.0.1")?;
    let n = port.get_host().port().unwrap();
    let agent =
        Agent::new().with_policy(BrowserLikePolicyForHttps::trusting_pem(ca.pem.as_bytes())?);
    let body = read_body(agent.get(&format!("https://localhost:{n}/")).await?).await?;
    assert_eq!(body, b"ok");
    assert_eq!(seen.borrow().as_deref(), Some(&b"http/1.1"[..]));
    port.stop_listening().await
}

/// Writes `text` to `name` in `dir`; its path as a string.
fn write_file(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}
