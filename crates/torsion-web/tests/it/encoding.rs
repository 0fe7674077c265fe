//! Response encoding: `EncodingResourceWrapper` negotiating gzip and br from
//! `Accept-Encoding`, seen by clients nobody here wrote (curl `--compressed` over HTTP/1.1
//! and HTTP/2, Python's httpx and requests) and by raw requests for the rules (q-values,
//! `Vary`, small bodies, compressed types, ranges, HEAD); a large streamed body encoded
//! under backpressure; precompressed siblings served by `File`.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::producer::Producer;
use torsion::Failure;
use torsion_web::encoding::{Coding, EncodingResourceWrapper};
use torsion_web::static_file::File;
use torsion_web::{Render, Request, Resource, Site};

use crate::support::{exchange, listen};

/// 20 KiB of compressible text.
fn page() -> String {
    (0..400)
        .map(|i| format!("<li>item {i:05}</li>\n"))
        .collect()
}

/// `/page` is a 20 KiB page (or `/page?type=T` with that type), `/small` 100 bytes,
/// `/encoded` sets its own Content-Encoding, `/stream` writes the page in 100 pieces without
/// a length.
struct App;

impl Resource for App {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        let last = r.path().rsplit(|&b| b == b'/').next().unwrap_or(b"");
        match last {
            b"small" => Render::Body(vec![b'a'; 100]),
            b"encoded" => {
                r.set_header("Content-Encoding", "identity-ish");
                Render::Body(page().into_bytes())
            }
            b"stream" => {
                let text = page();
                for piece in text.as_bytes().chunks(text.len() / 100 + 1) {
                    r.write(piece);
                }
                r.finish();
                Render::NotDoneYet
            }
            b"etag" => {
                r.set_header("ETag", "\"v1\"");
                Render::Body(page().into_bytes())
            }
            _ => {
                if let Some(t) = r.arg("type") {
                    r.set_header("Content-Type", t);
                }
                Render::Body(page().into_bytes())
            }
        }
    }
}

fn site() -> Site {
    Site::new(EncodingResourceWrapper::new(Rc::new(App)))
}

fn installed(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            format!("{program} is not installed"),
        );
    }
    ok
}

/// Runs a program to its end on another thread while the reactor keeps serving.
async fn run(program: &str, args: &[&str]) -> Output {
    let program = program.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let worker = std::thread::spawn(move || {
        Command::new(&program)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"))
    });
    while !worker.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.join().expect("the runner thread")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The head (before the blank line) and the body of a raw response.
fn split(response: &[u8]) -> (String, Vec<u8>) {
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    (text(&response[..at + 2]), response[at + 4..].to_vec())
}

/// Sends `request` and reads the raw answer until the server closes.
async fn raw(addr: SocketAddr, request: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    split(&out)
}

/// Removes HTTP/1.1 chunked framing.
fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap(), 16).unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn get(path: &str, accept: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}\r\nConnection: close\r\n\r\n"
    )
}

#[torsion::test]
async fn curl_compressed_decodes_gzip_and_br_over_http1_and_http2() -> Result<(), Failure> {
    if !installed("curl") {
        return Ok(());
    }
    let (port, addr) = listen(site());
    let url = format!("http://{addr}/page");
    for (accept, coding) in [("gzip", "gzip"), ("br", "br"), ("gzip, br", "br")] {
        for version in ["--http1.1", "--http2-prior-knowledge"] {
            let header = format!("Accept-Encoding: {accept}");
            let out = run(
                "curl",
                &[
                    "-sS",
                    version,
                    "--compressed",
                    "-H",
                    &header,
                    "-D",
                    "/dev/stderr",
                    &url,
                ],
            )
            .await;
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert_eq!(text(&out.stdout), page(), "{accept} {version}");
            let head = text(&out.stderr).to_ascii_lowercase();
            assert!(
                head.contains(&format!("content-encoding: {coding}\r\n")),
                "{accept} {version}: {head}"
            );
            assert!(head.contains("vary: accept-encoding\r\n"), "{head}");
            assert!(!head.contains("content-length"), "{head}");
        }
    }
    // The streamed (unknown-length) body too, over both.
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let out = run(
            "curl",
            &[
                "-sS",
                version,
                "--compressed",
                "-w",
                "\n%{size_download}",
                &format!("http://{addr}/stream"),
            ],
        )
        .await;
        let got = text(&out.stdout);
        let (body, size) = got.rsplit_once('\n').unwrap();
        assert_eq!(body, page());
        let size: usize = size.parse().unwrap();
        assert!(size < page().len() / 3, "{size} bytes on the wire");
    }
    port.stop_listening().await
}

#[torsion::test]
async fn accept_encoding_q_values_choose_the_coding() -> Result<(), Failure> {
    let (port, addr) = listen(site());
    let cases: [(&str, Option<&str>); 7] = [
        ("gzip", Some("gzip")),
        ("br;q=0.5, gzip;q=0.8", Some("gzip")),
        ("gzip;q=0.5, br", Some("br")),
        ("gzip;q=0, br;q=0", None),
        ("identity", None),
        ("*", Some("br")),
        ("*;q=0.3, br;q=0", Some("gzip")),
    ];
    for (accept, expected) in cases {
        let (head, body) = raw(addr, &get("/page", accept)).await;
        assert!(
            head.contains("Vary: Accept-Encoding\r\n"),
            "{accept}: {head}"
        );
        match expected {
            Some("gzip") => {
                assert!(head.contains("Content-Encoding: gzip\r\n"), "{head}");
                assert_eq!(text(&gunzip(&unchunk(&body))), page());
            }
            Some(_) => {
                assert!(head.contains("Content-Encoding: br\r\n"), "{head}");
                assert_eq!(text(&unbrotli(&unchunk(&body))), page());
            }
            None => {
                assert!(!head.contains("Content-Encoding"), "{accept}: {head}");
                assert_eq!(text(&body), page());
            }
        }
    }
    // No Accept-Encoding at all: identity, with its length.
    let (head, body) = raw(
        addr,
        "GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!head.contains("Content-Encoding"), "{head}");
    assert!(head.contains(&format!("Content-Length: {}\r\n", page().len())));
    assert_eq!(text(&body), page());
    port.stop_listening().await
}

#[torsion::test]
async fn small_bodies_compressed_types_and_encoded_responses_are_left_alone() -> Result<(), Failure>
{
    let (port, addr) = listen(site());
    // Under 1 KiB: as it is, with its length.
    let (head, body) = raw(addr, &get("/small", "gzip")).await;
    assert!(!head.contains("Content-Encoding"), "{head}");
    assert!(head.contains("Content-Length: 100\r\n"), "{head}");
    assert_eq!(body.len(), 100);
    // Compressed already: no Vary either (it never varies).
    for t in ["image/png", "application/zip", "font/woff2", "video/mp4"] {
        let (head, body) = raw(addr, &get(&format!("/page?type={t}"), "gzip, br")).await;
        assert!(!head.contains("Content-Encoding"), "{t}: {head}");
        assert!(!head.contains("Vary"), "{t}: {head}");
        assert_eq!(text(&body), page());
    }
    // SVG is text.
    let (head, _) = raw(addr, &get("/page?type=image/svg%2Bxml", "gzip")).await;
    assert!(head.contains("Content-Encoding: gzip\r\n"), "{head}");
    // The resource's own Content-Encoding stays, and the body is not touched.
    let (head, body) = raw(addr, &get("/encoded", "gzip")).await;
    assert!(
        head.contains("Content-Encoding: identity-ish\r\n"),
        "{head}"
    );
    assert_eq!(text(&body), page());
    // A strong ETag becomes weak once the body is encoded.
    let (head, _) = raw(addr, &get("/etag", "gzip")).await;
    assert!(head.contains("ETag: W/\"v1\"\r\n"), "{head}");
    let (head, _) = raw(addr, &get("/etag", "identity")).await;
    assert!(head.contains("ETag: \"v1\"\r\n"), "{head}");
    port.stop_listening().await
}

#[torsion::test]
async fn head_matches_get_and_ranges_are_served_unencoded() -> Result<(), Failure> {
    let dir = Fixture::new("range");
    std::fs::write(dir.0.join("page.html"), page()).unwrap();
    let root = EncodingResourceWrapper::new(Rc::new(File::new(dir.0.clone())));
    let (port, addr) = listen(Site::new(root));
    let (get_head, _) = raw(addr, &get("/page.html", "gzip")).await;
    let head_req =
        "HEAD /page.html HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n";
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head_req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let (head, body) = split(&out);
    assert!(body.is_empty());
    for field in [
        "Content-Encoding: gzip",
        "Vary: Accept-Encoding",
        "ETag: W/",
    ] {
        assert!(get_head.contains(field), "GET lacks {field}: {get_head}");
        assert!(head.contains(field), "HEAD lacks {field}: {head}");
    }
    assert!(!head.contains("Content-Length"), "{head}");
    // A range of the identity body, not of an encoded one.
    let (head, body) = raw(
        addr,
        "GET /page.html HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(!head.contains("Content-Encoding"), "{head}");
    assert!(head.contains("Vary: Accept-Encoding"), "{head}");
    assert_eq!(text(&body), page()[..10]);
    port.stop_listening().await
}

/// A pull producer writing `total` bytes of compressible (but not trivially so) text, 16 KiB
/// per turn, counting what it made.
struct Big {
    request: Request,
    produced: Rc<Cell<usize>>,
    total: usize,
}

fn big_piece(n: usize) -> Vec<u8> {
    // Hex digits of a running hash: about 2:1 under gzip.
    let mut x = n as u64 ^ 0x9e37_79b9_7f4a_7c15;
    (0..16 * 1024)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            b"0123456789abcdef"[(x >> 60) as usize]
        })
        .collect()
}

impl Producer for Big {
    fn resume_producing(&self) {
        let n = self.produced.get();
        if n >= self.total {
            self.request.unregister_producer();
            self.request.finish();
            return;
        }
        self.produced.set(n + 16 * 1024);
        self.request.write(&big_piece(n / (16 * 1024)));
    }
    fn stop_producing(&self) {}
}

struct BigApp {
    produced: Rc<Cell<usize>>,
    total: usize,
}

impl Resource for BigApp {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        r.set_header("Content-Type", "text/plain");
        let p = Rc::new(Big {
            request: r.clone(),
            produced: self.produced.clone(),
            total: self.total,
        });
        r.register_producer(p, false).unwrap();
        Render::NotDoneYet
    }
}

#[torsion::test]
async fn a_large_streamed_body_is_encoded_as_the_client_reads_it() -> Result<(), Failure> {
    let produced = Rc::new(Cell::new(0));
    let total = 32 * 1024 * 1024;
    let app = BigApp {
        produced: produced.clone(),
        total,
    };
    let (port, addr) = listen(Site::new(EncodingResourceWrapper::new(Rc::new(app))));
    // A small receive window, so what the kernel holds for the stalled client is small.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(get("/", "gzip").as_bytes()).await.unwrap();
    let mut first = vec![0; 4096];
    let n = s.read(&mut first).await.unwrap();
    assert!(text(&first[..n]).contains("Content-Encoding: gzip"));
    // The client stops reading: the producer is paused through the encoder, long before the
    // body's end (nothing buffers the whole body).
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(10);
    while produced.get() != last && Instant::now() < deadline {
        last = produced.get();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("paused after {} bytes produced", produced.get());
    assert!(
        produced.get() < total / 2,
        "{} bytes produced for a client that read 4 KiB",
        produced.get()
    );
    // Then it reads everything: the body decodes to what was produced.
    let mut rest = first[..n].to_vec();
    s.read_to_end(&mut rest)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, body) = split(&rest);
    let mut decoder = flate2::write::GzDecoder::new(Counter::default());
    let mut framed = &body[..];
    let mut i = 0;
    loop {
        let line_end = framed.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&framed[..line_end]).unwrap(), 16).unwrap();
        framed = &framed[line_end + 2..];
        if size == 0 {
            break;
        }
        decoder.write_all(&framed[..size]).unwrap();
        framed = &framed[size + 2..];
        i += 1;
    }
    let counter = decoder.finish().unwrap();
    assert_eq!(counter.bytes, total);
    assert_eq!(counter.first, big_piece(0)[..16]);
    assert!(i > 100, "{i} chunks");
    assert!(
        body.len() < total * 2 / 3,
        "{} bytes on the wire for {total}",
        body.len()
    );
    port.stop_listening().await
}

/// Counts decoded bytes, keeping the first 16.
#[derive(Default)]
struct Counter {
    bytes: usize,
    first: Vec<u8>,
}

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.first.len() < 16 {
            let n = (16 - self.first.len()).min(b.len());
            self.first.extend_from_slice(&b[..n]);
        }
        self.bytes += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A temporary folder, removed on drop.
struct Fixture(PathBuf);

impl Fixture {
    fn new(test: &str) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("torsion-encoding-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Fixture(dir)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn brotli_bytes(b: &[u8]) -> Vec<u8> {
    let mut w = brotli::CompressorWriter::new(Vec::new(), 4096, 11, 22);
    w.write_all(b).unwrap();
    w.into_inner()
}

#[torsion::test]
async fn file_serves_precompressed_siblings() -> Result<(), Failure> {
    let dir = Fixture::new("siblings");
    let js = page().replace("li", "js");
    let (gz, br) = (gzip(js.as_bytes()), brotli_bytes(js.as_bytes()));
    std::fs::write(dir.0.join("app.js"), &js).unwrap();
    std::fs::write(dir.0.join("app.js.gz"), &gz).unwrap();
    std::fs::write(dir.0.join("app.js.br"), &br).unwrap();
    std::fs::write(dir.0.join("plain.txt"), "no siblings").unwrap();
    let (port, addr) = listen(Site::new(File::new(dir.0.clone())));
    // The sibling's bytes as they are, with the original's type.
    let (head, body) = raw(addr, &get("/app.js", "gzip")).await;
    assert!(head.contains("Content-Encoding: gzip\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/javascript"), "{head}");
    assert!(head.contains("Vary: Accept-Encoding\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", gz.len())),
        "{head}"
    );
    assert_eq!(body, gz);
    let (head, body) = raw(addr, &get("/app.js", "gzip, br")).await;
    assert!(head.contains("Content-Encoding: br\r\n"), "{head}");
    assert_eq!(body, br);
    // Not accepted: the original, still with Vary.
    let (head, body) = raw(addr, &get("/app.js", "identity")).await;
    assert!(!head.contains("Content-Encoding"), "{head}");
    assert!(head.contains("Vary: Accept-Encoding\r\n"), "{head}");
    assert_eq!(text(&body), js);
    // No Accept-Encoding at all: the original and no Vary, as nginx's gzip_static answers
    // (and no sibling is looked for).
    let (head, body) = raw(
        addr,
        "GET /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        !head.contains("Content-Encoding") && !head.contains("Vary"),
        "{head}"
    );
    assert_eq!(text(&body), js);
    // No siblings: no Vary.
    let (head, _) = raw(addr, &get("/plain.txt", "gzip")).await;
    assert!(!head.contains("Vary"), "{head}");
    // curl decodes it.
    if installed("curl") {
        for version in ["--http1.1", "--http2-prior-knowledge"] {
            let out = run(
                "curl",
                &[
                    "-sS",
                    version,
                    "--compressed",
                    &format!("http://{addr}/app.js"),
                ],
            )
            .await;
            assert_eq!(text(&out.stdout), js, "{version}");
        }
    }
    // A stale sibling (older than the original) is never served.
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(dir.0.join("app.js.gz"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let (head, body) = raw(addr, &get("/app.js", "gzip")).await;
    assert!(!head.contains("Content-Encoding"), "{head}");
    assert_eq!(text(&body), js);
    port.stop_listening().await
}

/// A python with httpx (with brotli) and requests (made once per process), or `None`,
/// loudly.
fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("encoding-venv");
    torsion::testing::python_venv(
        &venv,
        "httpx, requests, brotli",
        &["httpx", "requests", "brotli"],
    )
}

#[torsion::test]
async fn python_httpx_and_requests_decode_the_encoded_bodies() -> Result<(), Failure> {
    let Some(py) = python() else {
        return Ok(());
    };
    let (port, addr) = listen(site());
    let script = "import sys, httpx, requests\n\
        url = sys.argv[1]\n\
        for enc in ['gzip', 'br']:\n\
        \x20   r = httpx.get(url, headers={'Accept-Encoding': enc})\n\
        \x20   print('httpx', r.headers['content-encoding'], len(r.text))\n\
        \x20   r = requests.get(url, headers={'Accept-Encoding': enc})\n\
        \x20   print('requests', r.headers['content-encoding'], len(r.text))\n";
    let py = py.to_string_lossy().into_owned();
    let out = run(&py, &["-c", script, &format!("http://{addr}/stream")]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let n = page().len();
    assert_eq!(
        text(&out.stdout),
        format!("httpx gzip {n}\nrequests gzip {n}\nhttpx br {n}\nrequests br {n}\n")
    );
    port.stop_listening().await
}

#[torsion::test]
async fn the_wrapper_encodes_children_found_below_it() -> Result<(), Failure> {
    let root = Rc::new(torsion_web::resources::Directory::new());
    root.put_child(b"app", Rc::new(App));
    let wrapped = EncodingResourceWrapper::with_options(root, &[Coding::Gzip], 10);
    let (port, addr) = listen(Site::new(wrapped));
    let (head, body) = raw(addr, &get("/app/small", "br, gzip")).await;
    assert!(head.contains("Content-Encoding: gzip\r\n"), "{head}");
    assert_eq!(gunzip(&unchunk(&body)), vec![b'a'; 100]);
    let answer = exchange(addr, get("/nothing", "gzip")).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    port.stop_listening().await
}
