//! The server against HTTP clients nobody here wrote: curl and Python's `http.client`, for
//! keep-alive, chunked upload, HEAD, HTTP/1.0, `Expect: 100-continue` and the limits. The
//! server runs on its own thread with its own reactor.

use std::io::Write;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;

use torsion::reactor::ReactorHandle;
use torsion::Reactor;
use torsion_web::resources::{Data, Directory};
use torsion_web::site::SiteConfig;
use torsion_web::{Render, Request, Resource, Site};

/// Answers with the method and the body it got.
struct Mirror;

impl Resource for Mirror {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST", "PUT"]
    }
    fn render_get(&self, r: &Request) -> Render {
        format!(
            "{} {} bytes: {}",
            r.method(),
            r.content().len(),
            String::from_utf8_lossy(&r.content())
        )
        .into()
    }
    fn render_post(&self, r: &Request) -> Render {
        self.render_get(r)
    }
    fn render_put(&self, r: &Request) -> Render {
        self.render_get(r)
    }
}

struct Server {
    port: u16,
    handle: ReactorHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve() -> Server {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let r = Reactor::new();
        r.set_install_signal_handlers(false);
        let root = Directory::new();
        root.put_child(b"", Rc::new(Data::new("home", "text/plain")));
        root.put_child(b"mirror", Rc::new(Mirror));
        let config = SiteConfig {
            max_body: 1_000_000,
            ..SiteConfig::default()
        };
        let port = r
            .listen_tcp_on(0, Site::with_config(Rc::new(root), config), "127.0.0.1")
            .unwrap();
        tx.send((port.get_host().port().unwrap(), r.handle()))
            .unwrap();
        r.run().unwrap();
    });
    let (port, handle) = rx.recv().unwrap();
    Server {
        port,
        handle,
        thread: Some(thread),
    }
}

/// Runs curl with `args`, feeding `stdin`; returns (stdout, stderr).
fn curl(args: &[&str], stdin: &[u8]) -> (String, String) {
    let mut child = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl is installed (scripts/test installs it)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn curl_gets_a_page_and_reuses_the_connection() {
    let s = serve();
    let base = format!("http://127.0.0.1:{}", s.port);
    let (out, err) = curl(&["-v", &format!("{base}/"), &format!("{base}/mirror")], b"");
    assert_eq!(out, "homeGET 0 bytes: ", "stderr: {err}");
    assert!(
        err.contains("Re-using existing connection"),
        "keep-alive: {err}"
    );
}

#[test]
fn curl_uploads_chunked_and_with_a_length() {
    let s = serve();
    let url = format!("http://127.0.0.1:{}/mirror", s.port);
    let (out, err) = curl(
        &[
            "-X",
            "POST",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "@-",
            &url,
        ],
        b"streamed body",
    );
    assert_eq!(out, "POST 13 bytes: streamed body", "stderr: {err}");
    let big = vec![b'x'; 200_000];
    let (out, err) = curl(&["-X", "PUT", "--data-binary", "@-", &url], &big);
    assert!(out.starts_with("PUT 200000 bytes: xxx"), "stderr: {err}");
}

#[test]
fn curl_expect_100_continue() {
    let s = serve();
    let url = format!("http://127.0.0.1:{}/mirror", s.port);
    let (out, err) = curl(
        &[
            "-v",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            "@-",
            &url,
        ],
        &[b'y'; 2000],
    );
    assert!(err.contains("HTTP/1.1 100 Continue"), "{err}");
    assert!(out.starts_with("POST 2000 bytes"), "{out}");
}

#[test]
fn curl_head_and_http_1_0() {
    let s = serve();
    let url = format!("http://127.0.0.1:{}/", s.port);
    let (out, _) = curl(&["-I", &url], b"");
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("content-length: 4"),
        "{out}"
    );
    let (out, err) = curl(&["--http1.0", "-v", &url], b"");
    assert_eq!(out, "home");
    assert!(err.contains("GET / HTTP/1.0"), "{err}");
}

#[test]
fn curl_sees_the_limits() {
    let s = serve();
    let base = format!("http://127.0.0.1:{}", s.port);
    let code = |args: &[&str], body: &[u8]| {
        let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        curl(&all, body).0
    };
    let long = format!("{base}/{}", "a".repeat(9000));
    assert_eq!(code(&[&long], b""), "414");
    let big_header = format!("X-Big: {}", "b".repeat(20_000));
    assert_eq!(code(&["-H", &big_header, &format!("{base}/")], b""), "431");
    let too_big = vec![b'z'; 1_000_001];
    assert_eq!(
        code(
            &[
                "-X",
                "POST",
                "--data-binary",
                "@-",
                &format!("{base}/mirror")
            ],
            &too_big
        ),
        "413"
    );
}

#[test]
fn python_http_client_keeps_the_connection_alive_and_uploads_chunked() {
    if Command::new("python3").arg("--version").output().is_err() {
        return torsion::testing::skip(torsion::testing::Missing::Peer, "python3 is not installed");
    }
    let s = serve();
    let script = format!(
        r#"
import http.client
c = http.client.HTTPConnection("127.0.0.1", {port}, timeout=20)
out = []
for i in range(3):
    c.request("GET", "/mirror")
    r = c.getresponse()
    out.append(r.read().decode())
sock = c.sock
c.request("POST", "/mirror", body=iter([b"ab", b"cd", b"ef"]), encode_chunked=True)
r = c.getresponse()
out.append(r.read().decode())
assert c.sock is sock, "the connection was reused"
print("|".join(out))
"#,
        port = s.port
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "GET 0 bytes: |GET 0 bytes: |GET 0 bytes: |POST 6 bytes: abcdef",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_http_client_parses_pipelined_responses_in_order() {
    // No common client sends pipelined requests any more (curl removed it), so the requests
    // go out raw, all at once, and Python's http.client parses the responses off the socket.
    if Command::new("python3").arg("--version").output().is_err() {
        return torsion::testing::skip(torsion::testing::Missing::Peer, "python3 is not installed");
    }
    let s = serve();
    let script = format!(
        r#"
import http.client, socket
sock = socket.create_connection(("127.0.0.1", {port}), timeout=20)
reqs = b"".join(
    b"POST /mirror HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
    for b in [b"one", b"two", b"three"])
sock.sendall(reqs + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
f = sock.makefile("rb")
out = []
for _ in range(4):
    r = http.client.HTTPResponse(sock)
    r.fp = f
    r._close_conn = lambda: None  # keep the shared file open for the next response
    r.begin()
    out.append("%d %s" % (r.status, r.read().decode()))
print("|".join(out))
"#,
        port = s.port
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200 POST 3 bytes: one|200 POST 3 bytes: two|200 POST 5 bytes: three|200 home",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
