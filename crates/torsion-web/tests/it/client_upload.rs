//! Streaming request bodies: `Agent::request_streaming` with a `FileBodyProducer`. A 1 GiB
//! sparse file is uploaded to a Python `http.server` handler (a receiver nobody here wrote
//! the HTTP side of) while the producer's counter of bytes held stays within a few windows;
//! a body of unknown length goes chunked; a producer that writes less than it announced
//! fails the request.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use torsion::defer::{succeed, Deferred};
use torsion::producer::DEFAULT_HIGH_WATER;
use torsion::Failure;
use torsion_web::client::{
    read_body, Agent, BodyConsumer, FileBodyProducer, RequestBodyProducer, RequestGenerationFailed,
    WrongBodyLength, DEFAULT_READ_SIZE,
};
use torsion_web::proto::Headers;
use torsion_web::resources::Data;
use torsion_web::Site;

/// A handler that reads the request body (Content-Length or chunked) a piece at a time and
/// answers with its size, then `:` and its first 64 bytes.
const RECEIVER: &str = r#"
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def pieces(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    piece = self.rfile.read(min(left, 1 << 20))
                    if not piece:
                        raise EOFError
                    left -= len(piece)
                    yield piece
                self.rfile.readline()
        else:
            left = int(self.headers["Content-Length"])
            while left:
                piece = self.rfile.read(min(left, 1 << 20))
                if not piece:
                    raise EOFError
                left -= len(piece)
                yield piece

    def do_POST(self):
        total, head = 0, b""
        for piece in self.pieces():
            if len(head) < 64:
                head += piece[: 64 - len(head)]
            total += len(piece)
        body = b"%d:%s" % (total, head)
        if self.path == "/moved":
            self.send_response(307)
            self.send_header("Location", "/")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("Serving HTTP on 127.0.0.1 port %d" % server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The Python receiver, killed and reaped when dropped.
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

/// Starts the receiver; `None` (the test skipped, loudly) when python3 is missing.
fn receiver() -> Option<Python> {
    let spawned = Command::new("python3")
        .args(["-u", "-c", RECEIVER])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
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
            if let Some(rest) = line.split(" port ").nth(1) {
                let _ = tx.send(rest.trim().parse::<u16>().unwrap());
                break;
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the receiver said which port it serves on");
    Some(Python { child, port })
}

/// A sparse file of `len` bytes (zeros, no disk used), removed when dropped.
struct Sparse(PathBuf);

impl Sparse {
    fn new(len: u64) -> Sparse {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "torsion-upload-{}-{}.bin",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
        Sparse(path)
    }
}

impl Drop for Sparse {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// 1 GiB.
const GIB: u64 = 1 << 30;

#[torsion::test(timeout = 600)]
async fn a_1_gib_file_is_uploaded_with_bounded_memory() -> Result<(), Failure> {
    let Some(py) = receiver() else {
        return Ok(());
    };
    let file = Sparse::new(GIB);
    let body = Rc::new(FileBodyProducer::open(&file.0).unwrap());
    assert_eq!(body.length(), Some(GIB));
    let agent = Agent::new();
    let url = format!("http://127.0.0.1:{}/upload", py.port);
    let response = agent
        .request_streaming("PUT", &url, Headers::new(), body.clone())
        .await?;
    assert_eq!(response.code, 200);
    let answer = String::from_utf8(read_body(response).await?).unwrap();
    let (size, head) = answer.split_once(':').unwrap();
    assert_eq!(size, GIB.to_string());
    assert_eq!(head, "\0".repeat(64));
    // One read buffer plus the transport's buffer, which the producer stops filling once it
    // passes the high watermark (a write or two past it, before the pause arrives).
    let peak = body.peak_held();
    eprintln!("1 GiB upload: at most {peak} bytes held at once");
    assert!(peak >= DEFAULT_READ_SIZE, "{peak}");
    let bound = DEFAULT_HIGH_WATER + 4 * DEFAULT_READ_SIZE;
    assert!(peak <= bound, "{peak} bytes held at once (bound {bound})");
    // The connection went back to the pool, reusable.
    assert_eq!(agent.pool().idle_connections(), 1);
    agent.close_cached_connections().await
}

#[torsion::test(timeout = 120)]
async fn a_body_of_unknown_length_is_sent_chunked() -> Result<(), Failure> {
    let Some(py) = receiver() else {
        return Ok(());
    };
    let data: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let body = FileBodyProducer::from_reader(std::io::Cursor::new(data)).with_read_size(10_000);
    assert_eq!(body.length(), None);
    let agent = Agent::new();
    let url = format!("http://127.0.0.1:{}/", py.port);
    let response = agent
        .request_streaming("POST", &url, Headers::new(), Rc::new(body))
        .await?;
    let answer = String::from_utf8(read_body(response).await?).unwrap();
    let alphabet = "abcdefghijklmnopqrstuvwxyz";
    let head: String = alphabet.repeat(3).chars().take(64).collect();
    assert_eq!(answer, format!("3000000:{head}"));
    // The chunked body ended properly: the same connection serves the next request.
    let again = agent
        .request_streaming(
            "POST",
            &url,
            Headers::new(),
            Rc::new(FileBodyProducer::from_reader(&b"xyz"[..])),
        )
        .await?;
    assert_eq!(read_body(again).await?, b"3:xyz");
    assert_eq!(agent.pool().idle_connections(), 1);
    agent.close_cached_connections().await
}

#[torsion::test(timeout = 120)]
async fn a_307_after_a_streamed_body_is_the_response() -> Result<(), Failure> {
    let Some(py) = receiver() else {
        return Ok(());
    };
    let agent = Agent::new().with_redirects(5);
    let url = format!("http://127.0.0.1:{}/moved", py.port);
    let body = Rc::new(FileBodyProducer::from_reader(&b"once"[..]));
    let response = agent
        .request_streaming("POST", &url, Headers::new(), body)
        .await?;
    // Not followed: the producer has run and cannot make the body again.
    assert_eq!(response.code, 307);
    assert_eq!(response.headers.get_str("location"), Some("/"));
    assert_eq!(read_body(response).await?, b"4:once");
    agent.close_cached_connections().await
}

/// Announces `announced` bytes and writes `writes` then finishes.
struct Liar {
    announced: u64,
    writes: &'static [u8],
}

impl RequestBodyProducer for Liar {
    fn length(&self) -> Option<u64> {
        Some(self.announced)
    }

    fn start_producing(&self, consumer: BodyConsumer) -> Deferred<()> {
        consumer.write(self.writes);
        succeed(())
    }

    fn pause_producing(&self) {}

    fn resume_producing(&self) {}

    fn stop_producing(&self) {}
}

#[torsion::test]
async fn a_producer_writing_the_wrong_length_fails_the_request() -> Result<(), Failure> {
    let port = torsion::reactor()
        .listen_tcp_on(0, Site::new(Data::new("ok", "text/plain")), "127.0.0.1")
        .unwrap();
    let url = format!("http://127.0.0.1:{}/", port.get_host().port().unwrap());
    let agent = Agent::new();
    for (announced, writes, written) in [(10, &b"short"[..], 5), (2, &b"long"[..], 4)] {
        let producer = Rc::new(Liar { announced, writes });
        let failure = agent
            .request_streaming("POST", &url, Headers::new(), producer)
            .await
            .unwrap_err();
        let e = failure.downcast_ref::<RequestGenerationFailed>().unwrap();
        let wrong = e.reason().downcast_ref::<WrongBodyLength>().unwrap();
        assert_eq!(
            *wrong,
            WrongBodyLength {
                expected: announced,
                written
            }
        );
        assert!(failure.to_string().contains("announced"), "{failure}");
    }
    // Those connections were closed, not pooled.
    assert_eq!(agent.pool().idle_connections(), 0);
    agent.close_cached_connections().await?;
    port.stop_listening().await
}
