//! The agent through an HTTP proxy (`Agent::with_proxy`, Twisted's `ProxyAgent`): against
//! tinyproxy (Debian's, which the test command installs), started by each test on a free
//! port with a configuration of its own, for plain `http` and for `https` through a
//! `CONNECT` tunnel; and against a proxy written here for what tinyproxy cannot be made to
//! do (refusing the tunnel, showing what it was sent).

use std::cell::RefCell;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion::testing::TempDir;
use torsion::tls::{Identity, ServerContext};
use torsion::{factory, reactor, Failure, Protocol, Transport};
use torsion_web::client::{read_body, Agent, BrowserLikePolicyForHttps, Proxy, TunnelError};
use torsion_web::{Render, Request, Resource, Site};

/// Answers with the request's path and the `Via` and `Proxy-Authorization` headers it came
/// with (a proxy adds `Via`; nothing should pass `Proxy-Authorization` on).
struct ShowVia;

impl Resource for ShowVia {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        format!(
            "path={} via={} proxy-auth={}",
            r.uri(),
            r.get_header("via").unwrap_or("-"),
            r.get_header("proxy-authorization").unwrap_or("-"),
        )
        .into()
    }
}

/// tinyproxy in the foreground on a port of its own, killed and reaped when dropped.
struct TinyProxy {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for TinyProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts tinyproxy on 127.0.0.1 (with `BasicAuth user password` when given), on a free
/// port, trying another when a parallel test takes the one picked. `None` (the test skipped,
/// loudly) when tinyproxy is missing.
fn tinyproxy(auth: Option<(&str, &str)>) -> Option<TinyProxy> {
    if Command::new("tinyproxy").arg("-v").output().is_err() {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            "tinyproxy is not installed (Debian's tinyproxy)",
        );
        return None;
    }
    for _ in 0..10 {
        let dir = TempDir::new("proxy");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 50\nAllow 127.0.0.1\n\
             LogLevel Info\nLogFile \"{}\"\nPidFile \"{}\"\n",
            dir.join("log").display(),
            dir.join("pid").display(),
        );
        if let Some((user, password)) = auth {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let conf_path = dir.join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break; // it could not listen (the port was taken): pick another
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(TinyProxy {
                    child,
                    port,
                    _dir: dir,
                });
            }
            assert!(Instant::now() < deadline, "tinyproxy never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("tinyproxy could not listen on any of ten ports");
}

/// A certificate for `localhost` from a throwaway CA: the server's context, and the CA's
/// PEM for the agent to trust.
fn localhost_tls() -> (ServerContext, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let identity =
        Identity::from_pem(leaf.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    (ServerContext::new(identity).unwrap(), ca_pem)
}

#[torsion::test(timeout = 120)]
async fn http_goes_to_tinyproxy_in_absolute_form() -> Result<(), Failure> {
    let Some(proxy) = tinyproxy(None) else {
        return Ok(());
    };
    let port = reactor().listen_tcp_on(0, Site::new(ShowVia), "127.0.0.1")?;
    let origin = port.get_host().port().unwrap();
    let agent = Agent::new().with_proxy(Proxy::new("127.0.0.1", proxy.port));
    for path in ["/a?x=1", "/b"] {
        let response = agent
            .get(&format!("http://127.0.0.1:{origin}{path}"))
            .await?;
        assert_eq!(response.code, 200);
        let body = String::from_utf8(read_body(response).await?).unwrap();
        // tinyproxy passed it on (its Via) with the origin-form path.
        assert!(body.starts_with(&format!("path={path} via=")), "{body}");
        assert!(body.contains("tinyproxy"), "{body}");
    }
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test(timeout = 120)]
async fn tinyproxy_asking_for_credentials_gets_them() -> Result<(), Failure> {
    let Some(proxy) = tinyproxy(Some(("alice", "s3cret"))) else {
        return Ok(());
    };
    let port = reactor().listen_tcp_on(0, Site::new(ShowVia), "127.0.0.1")?;
    let url = format!("http://127.0.0.1:{}/", port.get_host().port().unwrap());
    let without = Agent::new().with_proxy(Proxy::new("127.0.0.1", proxy.port));
    assert_eq!(without.get(&url).await?.code, 407);
    let with = Agent::new().with_proxy(Proxy::parse(&format!(
        "http://alice:s3cret@127.0.0.1:{}",
        proxy.port
    ))?);
    let response = with.get(&url).await?;
    assert_eq!(response.code, 200);
    let body = String::from_utf8(read_body(response).await?).unwrap();
    // The proxy took the credentials for itself.
    assert!(body.ends_with("proxy-auth=-"), "{body}");
    without.close_cached_connections().await?;
    with.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test(timeout = 120)]
async fn https_goes_through_a_tinyproxy_tunnel_end_to_end() -> Result<(), Failure> {
    let Some(proxy) = tinyproxy(None) else {
        return Ok(());
    };
    let (server, ca) = localhost_tls();
    let port = reactor().listen_tls_on(0, Site::new(ShowVia), server, "127.0.0.1")?;
    let origin = port.get_host().port().unwrap();
    let agent = Agent::new()
        .with_policy(BrowserLikePolicyForHttps::trusting_pem(ca.as_bytes())?)
        .with_proxy(Proxy::new("127.0.0.1", proxy.port));
    for _ in 0..2 {
        let response = agent
            .get(&format!("https://localhost:{origin}/secret"))
            .await?;
        assert_eq!(response.code, 200);
        let body = String::from_utf8(read_body(response).await?).unwrap();
        // Inside the tunnel the proxy could not add its Via: TLS ran to the origin.
        assert_eq!(body, "path=/secret via=- proxy-auth=-");
    }
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

/// What a proxy written here does with the request head it reads.
#[derive(Clone)]
struct FakeProxy {
    heads: Rc<RefCell<Vec<String>>>,
    answer: &'static str,
}

struct FakeProxyProtocol {
    proxy: FakeProxy,
    buf: Vec<u8>,
}

impl Protocol for FakeProxyProtocol {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.buf.extend_from_slice(data);
        if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.clear();
            self.proxy.heads.borrow_mut().push(head);
            transport.write(self.proxy.answer.as_bytes());
            transport.lose_connection();
        }
    }
}

/// Listens with a [`FakeProxy`] giving `answer` to whatever head it reads.
fn fake_proxy(answer: &'static str) -> Result<(torsion::tcp::ListeningPort, FakeProxy), Failure> {
    let proxy = FakeProxy {
        heads: Rc::default(),
        answer,
    };
    let p = proxy.clone();
    let port = reactor().listen_tcp_on(
        0,
        factory(move || FakeProxyProtocol {
            proxy: p.clone(),
            buf: Vec::new(),
        }),
        "127.0.0.1",
    )?;
    Ok((port, proxy))
}

#[torsion::test(timeout = 60)]
async fn a_refused_tunnel_fails_with_the_proxys_status() -> Result<(), Failure> {
    let (port, fake) =
        fake_proxy("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")?;
    let proxy_port = port.get_host().port().unwrap();
    let agent = Agent::new()
        .with_proxy(Proxy::new("127.0.0.1", proxy_port).with_basic_auth("alice", "s3cret"));
    let failure = agent
        .get("https://origin.test:8443/")
        .await
        .expect_err("the tunnel was refused");
    let e = failure
        .trap::<TunnelError>()
        .unwrap_or_else(|f| panic!("a TunnelError, not {f}"));
    assert_eq!(e.status, Some(407));
    assert_eq!(e.target, "origin.test:8443");
    assert_eq!(e.proxy, format!("127.0.0.1:{proxy_port}"));
    assert!(
        e.to_string()
            .contains("answered 407 Proxy Authentication Required"),
        "{e}"
    );
    let heads = fake.heads.borrow().clone();
    assert_eq!(heads.len(), 1);
    let lines: Vec<&str> = heads[0].split("\r\n").collect();
    assert_eq!(lines[0], "CONNECT origin.test:8443 HTTP/1.1");
    assert!(lines.contains(&"Host: origin.test:8443"), "{lines:?}");
    // base64("alice:s3cret")
    assert!(
        lines.contains(&"Proxy-Authorization: Basic YWxpY2U6czNjcmV0"),
        "{lines:?}"
    );
    port.stop_listening().await
}

#[torsion::test(timeout = 60)]
async fn a_proxy_that_hangs_up_or_talks_nonsense_fails_the_tunnel() -> Result<(), Failure> {
    for (answer, expect) in [
        ("", "closed the connection before answering CONNECT"),
        ("SSH-2.0-nonsense\r\n\r\n", "its answer is not HTTP"),
    ] {
        let (port, _fake) = fake_proxy(answer)?;
        let agent =
            Agent::new().with_proxy(Proxy::new("127.0.0.1", port.get_host().port().unwrap()));
        let failure = agent
            .get("https://origin.test/")
            .await
            .expect_err("no tunnel");
        let e = failure
            .trap::<TunnelError>()
            .unwrap_or_else(|f| panic!("a TunnelError, not {f}"));
        assert_eq!(e.status, None);
        assert!(e.to_string().contains(expect), "{e}");
        port.stop_listening().await?;
    }
    Ok(())
}

#[torsion::test(timeout = 60)]
async fn plain_http_names_the_origin_in_the_request_line() -> Result<(), Failure> {
    let (port, fake) =
        fake_proxy("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nproxy")?;
    let agent = Agent::new().with_proxy(
        Proxy::new("127.0.0.1", port.get_host().port().unwrap()).with_basic_auth("bob", "pw"),
    );
    let response = agent.get("http://origin.test:8080/a%20b?q=1").await?;
    assert_eq!(read_body(response).await?, b"proxy");
    let heads = fake.heads.borrow().clone();
    let lines: Vec<&str> = heads[0].split("\r\n").collect();
    assert_eq!(lines[0], "GET http://origin.test:8080/a%20b?q=1 HTTP/1.1");
    assert!(lines.contains(&"Host: origin.test:8080"), "{lines:?}");
    assert!(
        lines.contains(&"Proxy-Authorization: Basic Ym9iOnB3"),
        "{lines:?}"
    );
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[test]
fn proxy_urls_are_parsed_and_checked() {
    let p = Proxy::parse("http://proxy.test:3128/").unwrap();
    assert_eq!(
        (p.host(), p.port(), p.has_credentials()),
        ("proxy.test", 3128, false)
    );
    let p = Proxy::parse("http://us%40er:p%3Ass@[::1]:8080").unwrap();
    assert_eq!(
        (p.host(), p.port(), p.has_credentials()),
        ("::1", 8080, true)
    );
    assert_eq!(Proxy::parse("http://proxy.test").unwrap().port(), 80);
    for bad in [
        "https://proxy.test:443",
        "socks5://proxy.test",
        "http://proxy.test/path",
    ] {
        assert!(Proxy::parse(bad).is_err(), "{bad}");
    }
    // Credentials never show in Debug output.
    let shown = format!("{:?}", Proxy::parse("http://a:secret@p.test").unwrap());
    assert!(!shown.contains("secret"), "{shown}");
}
