//! The PROXY protocol against real peers: `curl --haproxy-protocol` (version 1) and HAProxy
//! itself with `send-proxy` (version 1) and `send-proxy-v2`, in front of a Torsion server
//! listening on `haproxy:tcp:...`.
//!
//! HAProxy connects to Torsion from 127.0.0.3 while the client connects to HAProxy from
//! 127.0.0.5, so the server can only report 127.0.0.5 if it read the header. Missing peers
//! are installed with apt-get; a peer that still cannot be had is reported loudly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use torsion::endpoints::server_from_string;
use torsion::threads::defer_to_thread;
use torsion::{factory, reactor, Failure, Protocol, Transport};

/// Answers one HTTP/1.0-style request with the addresses it sees, then closes.
#[derive(Default)]
struct WhoAmI(Vec<u8>);

impl Protocol for WhoAmI {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.0.extend_from_slice(data);
        if self.0.len() > 64 * 1024 {
            t.abort_connection();
        } else if self.0.windows(4).any(|w| w == b"\r\n\r\n") {
            let body = format!("peer={} host={}", t.get_peer(), t.get_host());
            t.write(
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
            t.lose_connection();
        }
    }
}

/// Whether `program` runs, installing `package` with apt-get if it does not.
fn have(program: &str, version_arg: &str, package: &str) -> bool {
    let runs = || {
        Command::new(program)
            .arg(version_arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if runs() {
        return true;
    }
    eprintln!("{program} is missing: installing {package} with apt-get");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .status();
    if runs() {
        return true;
    }
    torsion::testing::skip(
        torsion::testing::Missing::Peer,
        format!("{program} is not installed and could not be installed"),
    );
    false
}

#[torsion::test(timeout = 60)]
async fn curl_haproxy_protocol_reaches_get_peer() -> Result<(), Failure> {
    if !have("curl", "--version", "curl") {
        return Ok(());
    }
    let endpoint = server_from_string(&reactor(), "haproxy:tcp:0:interface=127.0.0.1").unwrap();
    let port = endpoint.listen(factory(WhoAmI::default)).await?;
    let p = port.get_host().port().unwrap();
    let (with, without) = defer_to_thread(move || {
        let url = format!("http://127.0.0.1:{p}/");
        let with = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--haproxy-protocol", &url])
            .output()
            .unwrap();
        let without = Command::new("curl")
            .args(["-sS", "--max-time", "20", &url])
            .output()
            .unwrap();
        (with, without)
    })
    .await?;
    let body = String::from_utf8_lossy(&with.stdout);
    assert!(
        with.status.success(),
        "curl --haproxy-protocol failed: {}",
        String::from_utf8_lossy(&with.stderr)
    );
    // curl's header names its own end: 127.0.0.1 and the port it connected from.
    assert!(body.starts_with("peer=tcp:127.0.0.1:"), "{body}");
    assert!(body.ends_with(&format!("host=tcp:127.0.0.1:{p}")), "{body}");
    // Without the header, the server refuses the connection (curl gets an empty reply).
    assert!(
        !without.status.success(),
        "a request without a header was served"
    );
    assert!(without.stdout.is_empty());
    port.stop_listening().await?;
    Ok(())
}

/// HAProxy, killed when the test ends.
struct HAProxy(Child, PathBuf);

impl Drop for HAProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

/// A port free at the moment (HAProxy binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts HAProxy with two TCP frontends forwarding to `backend`, one with `send-proxy`
/// and one with `send-proxy-v2`, connecting from 127.0.0.3. Returns it with the frontends'
/// ports once both accept connections.
fn start_haproxy(backend: u16) -> (HAProxy, u16, u16) {
    let (v1, v2) = (free_port(), free_port());
    let cfg = std::env::temp_dir().join(format!(
        "torsion-haproxy-{}-{backend}.cfg",
        std::process::id()
    ));
    std::fs::write(
        &cfg,
        format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 20s\n  timeout server 20s\n\
             frontend v1\n  bind 127.0.0.1:{v1}\n  default_backend b1\n\
             backend b1\n  server s1 127.0.0.1:{backend} send-proxy source 127.0.0.3\n\
             frontend v2\n  bind 127.0.0.1:{v2}\n  default_backend b2\n\
             backend b2\n  server s2 127.0.0.1:{backend} send-proxy-v2 source 127.0.0.3\n"
        ),
    )
    .unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut h = HAProxy(child, cfg);
    let deadline = Instant::now() + Duration::from_secs(20);
    for p in [v1, v2] {
        loop {
            if let Some(status) = h.0.try_wait().unwrap() {
                panic!("haproxy exited at start: {status}");
            }
            // Binding our own socket to the port fails while HAProxy holds it.
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                break;
            }
            assert!(Instant::now() < deadline, "haproxy did not listen on {p}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    (h, v1, v2)
}

/// Sends a request to `port` from 127.0.0.5; returns the body and the client's address.
fn request_from_127_0_0_5(port: u16) -> (String, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.5:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (body, me)
}

#[torsion::test(timeout = 90)]
async fn haproxy_send_proxy_v1_and_v2_reach_get_peer() -> Result<(), Failure> {
    if !have("haproxy", "-v", "haproxy") {
        return Ok(());
    }
    let endpoint = server_from_string(&reactor(), "haproxy:tcp:0:interface=127.0.0.1").unwrap();
    let port = endpoint.listen(factory(WhoAmI::default)).await?;
    let backend = port.get_host().port().unwrap();
    let answers = defer_to_thread(move || {
        let (_haproxy, v1, v2) = start_haproxy(backend);
        [v1, v2].map(|p| (p, request_from_127_0_0_5(p)))
    })
    .await?;
    for (frontend, (body, me)) in answers {
        assert_eq!(
            body,
            format!("peer=tcp:{me} host=tcp:127.0.0.1:{frontend}"),
            "through HAProxy frontend {frontend}"
        );
    }
    port.stop_listening().await?;
    Ok(())
}
