//! The client against HTTP servers nobody here wrote: Python's `http.server` serving files
//! (HTTP/1.0, one response per connection), and a small `http.server` handler speaking
//! HTTP/1.1 with keep-alive, chunked responses, gzip and redirects. The Python servers are
//! child processes started (and killed) by each test; the tests are skipped, loudly, only when
//! python3 is missing.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use torsion::testing::TempDir;
use torsion::Failure;
use torsion_web::client::{get_page, read_body, Agent, HttpError};
use torsion_web::proto::{Headers, Version};

/// A Python server, killed and reaped when dropped.
struct Python {
    child: Child,
    port: u16,
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `python3 -u ARGS` in `dir`; waits for its "... port N ..." line. `None` when python3
/// is missing.
fn python(args: &[&str], dir: &TempDir) -> Option<Python> {
    let spawned = Command::new("python3")
        .arg("-u")
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // http.server logs every request; a handler script's errors are worth seeing.
        .stderr(if args[0] == "-m" {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            torsion::testing::skip(
                torsion::testing::Missing::Peer,
                format!("python3 is not installed ({e})"),
            );
            return None;
        }
    };
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // "Serving HTTP on 127.0.0.1 port 45678 (http://127.0.0.1:45678/) ..."
            if let Some(rest) = line.split(" port ").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = tx.send(digits.parse::<u16>().unwrap());
                break;
            }
        }
    });
    let mut server = Python { child, port: 0 };
    server.port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the Python server said which port it serves on");
    Some(server)
}

/// An HTTP/1.1 handler for `http.server`: chunked, gzip, keep-alive, redirects, POST echo.
const HANDLER: &str = r#"
import gzip
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TEXT = b"".join(b"line %d of the text\n" % i for i in range(2000))

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, code, body, headers=()):
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_chunked(self, pieces, headers=()):
        self.send_response(200)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def wants_gzip(self):
        return "gzip" in self.headers.get("Accept-Encoding", "")

    def do_GET(self):
        if self.path == "/chunked":
            self.send_chunked([b"alpha ", b"beta ", b"gamma"])
        elif self.path == "/gzip":
            if self.wants_gzip():
                self.send_body(200, gzip.compress(TEXT), [("Content-Encoding", "gzip")])
            else:
                self.send_body(200, TEXT)
        elif self.path == "/gzip-chunked":
            data = gzip.compress(TEXT)
            pieces = [data[i:i + 1000] for i in range(0, len(data), 1000)]
            self.send_chunked(pieces, [("Content-Encoding", "gzip")])
        elif self.path == "/port":
            self.send_body(200, str(self.client_address[1]).encode())
        elif self.path == "/agent":
            self.send_body(200, self.headers.get("User-Agent", "-").encode())
        elif self.path == "/redirect":
            self.send_body(302, b"", [("Location", "/chunked")])
        else:
            self.send_body(404, b"nothing here", [("Content-Type", "text/plain")])

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_body(200, b"got " + body)

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("Serving HTTP on 127.0.0.1 port %d" % server.server_address[1], flush=True)
server.serve_forever()
"#;

fn expected_text() -> Vec<u8> {
    (0..2000)
        .flat_map(|i| format!("line {i} of the text\n").into_bytes())
        .collect()
}

#[torsion::test]
async fn fetches_files_from_python_http_server() -> Result<(), Failure> {
    let dir = TempDir::new("files");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("hello.txt"), "Hello from http.server\n").unwrap();
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    let Some(server) = python(&["-m", "http.server", "--bind", "127.0.0.1", "0"], &dir) else {
        return Ok(());
    };
    let base = format!("http://127.0.0.1:{}", server.port);
    let agent = Agent::new();

    let response = agent.get(&format!("{base}/hello.txt")).await?;
    assert_eq!(response.code, 200);
    assert_eq!(response.version, Version::Http10);
    assert_eq!(response.length(), Some(23));
    assert_eq!(read_body(response).await?, b"Hello from http.server\n");

    let response = agent.get(&format!("{base}/big.bin")).await?;
    assert_eq!(read_body(response).await?, big);

    let response = agent.get(&format!("{base}/")).await?;
    let listing = String::from_utf8(read_body(response).await?).unwrap();
    assert!(
        listing.contains("hello.txt") && listing.contains("big.bin"),
        "{listing}"
    );

    assert_eq!(
        get_page(&format!("{base}/hello.txt")).await?,
        b"Hello from http.server\n"
    );
    let f = get_page(&format!("{base}/missing")).await.unwrap_err();
    assert_eq!(f.trap::<HttpError>().unwrap().status, 404);

    // HTTP/1.0 without keep-alive: nothing to keep.
    assert_eq!(agent.pool().idle_connections(), 0);
    agent.close_cached_connections().await
}

#[torsion::test]
async fn chunked_gzip_keep_alive_and_redirects_with_a_python_handler() -> Result<(), Failure> {
    let dir = TempDir::new("handler");
    let Some(server) = python(&["-c", HANDLER], &dir) else {
        return Ok(());
    };
    let base = format!("http://127.0.0.1:{}", server.port);
    let agent = Agent::new().with_gzip().with_redirects(5);

    let response = agent.get(&format!("{base}/chunked")).await?;
    assert_eq!((response.code, response.version), (200, Version::Http11));
    assert!(response.headers.has_token("transfer-encoding", "chunked"));
    assert_eq!(read_body(response).await?, b"alpha beta gamma");

    for path in ["gzip", "gzip-chunked"] {
        let response = agent.get(&format!("{base}/{path}")).await?;
        assert!(!response.headers.contains("content-encoding"), "{path}");
        assert_eq!(read_body(response).await?, expected_text(), "{path}");
    }
    let plain = Agent::new();
    let response = plain.get(&format!("{base}/gzip")).await?;
    assert!(!response.headers.contains("content-encoding"));
    assert_eq!(read_body(response).await?, expected_text());
    plain.close_cached_connections().await?;

    // Keep-alive: the server sees the same client port each time.
    let port_of = |agent: &Agent| {
        let url = format!("{base}/port");
        let d = agent.get(&url).add_callback_deferred(read_body);
        async move { d.await.map(|b| String::from_utf8(b).unwrap()) }
    };
    let first = port_of(&agent).await?;
    assert_eq!(port_of(&agent).await?, first);
    assert_eq!(port_of(&agent).await?, first);

    let response = agent.get(&format!("{base}/redirect")).await?;
    assert!(response.url().ends_with("/chunked"), "{}", response.url());
    assert_eq!(read_body(response).await?, b"alpha beta gamma");

    let response = agent
        .request(
            "POST",
            &format!("{base}/echo"),
            Headers::new(),
            Some(b"form data".to_vec()),
        )
        .await?;
    assert_eq!(read_body(response).await?, b"got form data");

    let response = agent.get(&format!("{base}/agent")).await?;
    assert_eq!(read_body(response).await?, b"Torsion");

    assert_eq!(
        agent.pool().connections_made(),
        1,
        "every request on one connection"
    );
    agent.close_cached_connections().await
}
