//! HTTP/2 on a `Site`: clients nobody here wrote (curl with prior knowledge and over TLS by
//! ALPN, h2load, Python's httpx), and hostile ones written frame by frame (a rapid-reset
//! flood, too many concurrent streams, a huge header list, a reader that never opens its
//! window).

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::producer::Producer;
use torsion::tls::{Identity, ServerContext};
use torsion::{reactor, Failure};
use torsion_web::site::SiteConfig;
use torsion_web::static_file::File;
use torsion_web::{Render, Request, Resource, Site};

use crate::support::listen;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;
const CANCEL: u32 = 8;
const REFUSED_STREAM: u32 = 7;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// `/` says hello (and how many body bytes came), `/hang` never answers, `/endless` streams
/// 16 KiB chunks from a pull producer for as long as it is asked, counting them.
struct App {
    hung: Rc<RefCell<Vec<Request>>>,
    produced: Rc<Cell<usize>>,
}

impl Resource for App {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render(&self, r: &Request) -> Render {
        match r.path() {
            b"/hang" => {
                self.hung.borrow_mut().push(r.clone());
                Render::NotDoneYet
            }
            b"/endless" => {
                let p = Rc::new(Endless {
                    request: r.clone(),
                    produced: self.produced.clone(),
                });
                r.register_producer(p, false).unwrap();
                Render::NotDoneYet
            }
            _ => Render::Body(
                format!("hello {} {} {}", r.method(), r.version(), r.content().len()).into_bytes(),
            ),
        }
    }
}

struct Endless {
    request: Request,
    produced: Rc<Cell<usize>>,
}

impl Producer for Endless {
    fn resume_producing(&self) {
        self.produced.set(self.produced.get() + 16 * 1024);
        self.request.write(&[b'x'; 16 * 1024]);
    }
    fn stop_producing(&self) {}
}

fn app() -> (App, Rc<Cell<usize>>) {
    let produced = Rc::new(Cell::new(0));
    (
        App {
            hung: Rc::default(),
            produced: produced.clone(),
        },
        produced,
    )
}

/// True when `program` runs here; says so (a skip) when it does not.
fn installed(program: &str, version_arg: &str) -> bool {
    let ok = Command::new(program)
        .arg(version_arg)
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

#[torsion::test]
async fn curl_with_prior_knowledge_speaks_http2() -> Result<(), Failure> {
    if !installed("curl", "--version") {
        return Ok(());
    }
    let (app, _) = app();
    let (port, addr) = listen(Site::new(app));
    let url = format!("http://{addr}/");
    let fmt = "\n%{http_version} %{http_code}";
    let out = run("curl", &["-sS", "--http2-prior-knowledge", "-w", fmt, &url]).await;
    assert_eq!(text(&out.stdout), "hello GET HTTP/2.0 0\n2 200", "{out:?}");
    // A request body reaches the resource, as over HTTP/1.1.
    let out = run(
        "curl",
        &[
            "-sS",
            "--http2-prior-knowledge",
            "-d",
            "a=1&b=2",
            "-w",
            fmt,
            &url,
        ],
    )
    .await;
    assert_eq!(text(&out.stdout), "hello POST HTTP/2.0 7\n2 200", "{out:?}");
    // The same port still speaks HTTP/1.1 to a client that does not know.
    let out = run("curl", &["-sS", "--http1.1", "-w", fmt, &url]).await;
    assert_eq!(
        text(&out.stdout),
        "hello GET HTTP/1.1 0\n1.1 200",
        "{out:?}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn curl_downloads_a_large_static_file_over_http2() -> Result<(), Failure> {
    if !installed("curl", "--version") {
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("torsion-h2-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 777u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    let (port, addr) = listen(Site::new(File::new(dir.clone())));
    let out = run(
        "curl",
        &[
            "-sS",
            "--http2-prior-knowledge",
            &format!("http://{addr}/big.bin"),
        ],
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{:?}", text(&out.stderr));
    assert!(
        out.stdout == big,
        "{} bytes, not the file",
        out.stdout.len()
    );
    port.stop_listening().await
}

/// A TLS context for `localhost` offering h2 and http/1.1 by ALPN.
fn tls_context() -> Result<ServerContext, Failure> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
    Ok(ServerContext::builder()
        .certificate(Identity::from_pem(cert.as_bytes(), key.as_bytes())?)
        .alpn_protocols(["h2", "http/1.1"])
        .build()?)
}

#[torsion::test]
async fn curl_gets_http2_over_tls_by_alpn() -> Result<(), Failure> {
    if !installed("curl", "--version") {
        return Ok(());
    }
    let (app, _) = app();
    let port = reactor().listen_tls_on(0, Site::new(app), tls_context()?, "127.0.0.1")?;
    let n = port.get_host().port().unwrap();
    let url = format!("https://localhost:{n}/");
    let resolve = format!("localhost:{n}:127.0.0.1");
    let fmt = "\n%{http_version} %{http_code}";
    let out = run(
        "curl",
        &["-sSk", "--resolve", &resolve, "--http2", "-w", fmt, &url],
    )
    .await;
    assert_eq!(text(&out.stdout), "hello GET HTTP/2.0 0\n2 200", "{out:?}");
    // A client that offers only http/1.1 gets it on the same port.
    let out = run(
        "curl",
        &["-sSk", "--resolve", &resolve, "--http1.1", "-w", fmt, &url],
    )
    .await;
    assert_eq!(
        text(&out.stdout),
        "hello GET HTTP/1.1 0\n1.1 200",
        "{out:?}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn h2load_runs_many_streams_on_few_connections() -> Result<(), Failure> {
    if !installed("h2load", "--version") {
        return Ok(());
    }
    let (app, _) = app();
    let (port, addr) = listen(Site::new(app));
    let url = format!("http://{addr}/");
    let out = run("h2load", &["-n", "2000", "-c", "4", "-m", "50", &url]).await;
    let report = text(&out.stdout);
    assert!(
        report.contains("2000 succeeded, 0 failed, 0 errored"),
        "{report}"
    );
    assert!(report.contains("status codes: 2000 2xx"), "{report}");
    port.stop_listening().await
}

/// A python with `httpx[http2]` (made once per process), or `None`, loudly.
fn httpx_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("httpx-h2-venv");
    torsion::testing::python_venv(&venv, "httpx, h2", &["httpx[http2]"])
}

#[torsion::test]
async fn python_httpx_speaks_http2() -> Result<(), Failure> {
    let Some(py) = httpx_python() else {
        return Ok(());
    };
    let (app, _) = app();
    let (port, addr) = listen(Site::new(app));
    let script = "import sys, httpx\n\
        with httpx.Client(http1=False, http2=True) as c:\n\
        \x20   for i in range(3):\n\
        \x20       r = c.post(sys.argv[1], content=b'x' * (i * 100000))\n\
        \x20       print(r.http_version, r.status_code, r.text)\n";
    let py = py.to_string_lossy().into_owned();
    let out = run(&py, &["-c", script, &format!("http://{addr}/")]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "HTTP/2 200 hello POST HTTP/2.0 0\n\
         HTTP/2 200 hello POST HTTP/2.0 100000\n\
         HTTP/2 200 hello POST HTTP/2.0 200000\n"
    );
    port.stop_listening().await
}

// ---- A client written frame by frame -------------------------------------------------

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK header block: `GET path` for `localhost`, then `extra` literal fields.
fn request_block(path: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    // :method GET, :scheme http (static table), :path and :authority as literals.
    let mut b = vec![0x82, 0x86];
    literal_indexed_name(&mut b, 4, path.as_bytes());
    literal_indexed_name(&mut b, 1, b"localhost");
    for (name, value) in extra {
        b.push(0x00);
        hpack_string(&mut b, name.as_bytes());
        hpack_string(&mut b, value);
    }
    b
}

fn literal_indexed_name(b: &mut Vec<u8>, index: u8, value: &[u8]) {
    b.push(index); // literal without indexing, name from the static table
    hpack_string(b, value);
}

/// An HPACK string (not Huffman-coded), its length a 7-bit-prefix integer.
fn hpack_string(b: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    if n < 127 {
        b.push(n as u8);
    } else {
        b.push(127);
        n -= 127;
        while n >= 128 {
            b.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        b.push(n as u8);
    }
    b.extend_from_slice(s);
}

struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects, sends the preface and empty settings, and acknowledges the server's.
    async fn connect(addr: SocketAddr) -> Raw {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(PREFACE).await.unwrap();
        s.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
        let mut raw = Raw { s, buf: Vec::new() };
        loop {
            let (kind, flags, _, _) = raw.next().await.expect("the server's settings");
            if kind == SETTINGS && flags & 1 == 0 {
                raw.send(&frame(SETTINGS, 1, 0, &[])).await;
                return raw;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        // The server may have closed already: what it said is read next.
        let _ = self.s.write_all(bytes).await;
    }

    /// The next frame (type, flags, stream, payload), or `None` at the end (or after 10 s).
    async fn next(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let f: Vec<u8> = self.buf.drain(..9 + len).collect();
                    let stream = u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7fff_ffff;
                    return Some((f[3], f[4], stream, f[9..].to_vec()));
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Reads frames until a GOAWAY; its error code, or `None` if the connection ended
    /// without one.
    async fn goaway(&mut self) -> Option<u32> {
        while let Some((kind, _, _, payload)) = self.next().await {
            if kind == GOAWAY {
                return Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
        }
        None
    }
}

/// A `GET /` on a fresh connection is answered: the server still serves others.
async fn still_serves(addr: SocketAddr) {
    let mut raw = Raw::connect(addr).await;
    raw.send(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &request_block("/", &[]),
    ))
    .await;
    while let Some((kind, flags, stream, _)) = raw.next().await {
        if kind == DATA && stream == 1 && flags & END_STREAM != 0 {
            return;
        }
    }
    panic!("a fresh connection was not answered");
}

/// This thread's log output, captured.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn start(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[torsion::test]
async fn a_rapid_reset_flood_gets_goaway_and_others_are_served() -> Result<(), Failure> {
    let log = Log::default();
    let _guard = log.start();
    let (app, _) = app();
    let (port, addr) = listen(Site::new(app));
    let mut raw = Raw::connect(addr).await;
    // Open and cancel 1000 streams at once (CVE-2023-44487).
    let mut flood = Vec::new();
    for i in 0..1000u32 {
        let id = 2 * i + 1;
        flood.extend(frame(HEADERS, END_HEADERS, id, &request_block("/", &[])));
        flood.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
    }
    raw.send(&flood).await;
    assert_eq!(raw.goaway().await, Some(ENHANCE_YOUR_CALM));
    still_serves(addr).await;
    let logged = log.text();
    assert!(logged.contains("ENHANCE_YOUR_CALM"), "{logged}");
    port.stop_listening().await
}

#[torsion::test]
async fn streams_reset_after_they_were_accepted_are_capped_too() -> Result<(), Failure> {
    let log = Log::default();
    let _guard = log.start();
    let (app, _) = app();
    let mut config = SiteConfig::default();
    // h2's own cap on streams reset before they are accepted is out of the way: ours is
    // tested, on streams that reached the resource (which never answers).
    config.http2.max_pending_accept_reset_streams = 100_000;
    config.http2.max_resets = 50;
    let (port, addr) = listen(Site::with_config(Rc::new(app), config));
    let mut raw = Raw::connect(addr).await;
    let mut id = 1;
    let mut code = None;
    for _round in 0..20 {
        let mut opened = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..10 {
            opened.extend(frame(
                HEADERS,
                END_HEADERS,
                id,
                &request_block("/hang", &[]),
            ));
            ids.push(id);
            id += 2;
        }
        raw.send(&opened).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut resets = Vec::new();
        for i in ids {
            resets.extend(frame(RST_STREAM, 0, i, &CANCEL.to_be_bytes()));
        }
        raw.send(&resets).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if log.text().contains("rapid reset") {
            code = raw.goaway().await;
            break;
        }
    }
    assert_eq!(code, Some(ENHANCE_YOUR_CALM), "{}", log.text());
    still_serves(addr).await;
    port.stop_listening().await
}

#[torsion::test]
async fn streams_past_the_concurrent_limit_are_refused() -> Result<(), Failure> {
    let (app, _) = app();
    let (port, addr) = listen(Site::new(app));
    let mut raw = Raw::connect(addr).await;
    // 101 streams that stay open (the resource never answers): the 101st is refused.
    let mut opened = Vec::new();
    for i in 0..101u32 {
        opened.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            2 * i + 1,
            &request_block("/hang", &[]),
        ));
    }
    raw.send(&opened).await;
    let mut refused = None;
    while let Some((kind, _, stream, payload)) = raw.next().await {
        if kind == RST_STREAM {
            refused = Some((stream, u32::from_be_bytes(payload[..4].try_into().unwrap())));
            break;
        }
    }
    assert_eq!(refused, Some((201, REFUSED_STREAM)));
    port.stop_listening().await
}

#[torsion::test]
async fn a_huge_header_list_is_refused_with_431() -> Result<(), Failure> {
    let (app, _) = app();
    let (port, addr) = listen(Site::new(app));
    let mut raw = Raw::connect(addr).await;
    // A 4 KiB field added to the HPACK table, then named by its index ten times: a 4 KiB
    // header block that decodes to 44 KiB of header list, over the 16 KiB limit.
    let mut block = request_block("/", &[]);
    block.push(0x40);
    hpack_string(&mut block, b"x-a");
    hpack_string(&mut block, &[b'a'; 4000]);
    block.extend([0xbe; 10]);
    assert!(block.len() < 16 * 1024);
    raw.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
        .await;
    let mut status = None;
    while let Some((kind, _, stream, payload)) = raw.next().await {
        if kind == HEADERS && stream == 1 {
            status = Some(payload);
            break;
        }
        if kind == RST_STREAM || kind == GOAWAY {
            break;
        }
    }
    let status = status.expect("a response to the stream");
    // `:status` (static index 8) as a literal; "431" is Huffman-coded as 69 90 ff.
    assert!(
        status
            .windows(3)
            .any(|w| w == b"431" || w == [0x69, 0x90, 0xff]),
        "not a 431: {status:?}"
    );
    still_serves(addr).await;
    port.stop_listening().await
}

#[torsion::test]
async fn a_reader_that_never_opens_its_window_holds_bounded_memory() -> Result<(), Failure> {
    let (app, produced) = app();
    let (port, addr) = listen(Site::new(app));
    let mut raw = Raw::connect(addr).await;
    raw.send(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &request_block("/endless", &[]),
    ))
    .await;
    // No WINDOW_UPDATE is ever sent: the server may send 64 KiB, then must stop asking.
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (0, Instant::now());
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if produced.get() != last.0 {
            last = (produced.get(), Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(300) {
            break;
        }
    }
    raw.s.set_nodelay(true).ok();
    while received < 65_535 {
        match raw.next().await {
            Some((DATA, _, 1, payload)) => received += payload.len(),
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(received, 65_535, "the initial window, and no more");
    assert!(
        produced.get() <= 65_535 + 2 * 64 * 1024,
        "{} bytes produced for a reader that takes 64 KiB",
        produced.get()
    );
    port.stop_listening().await
}

#[torsion::test]
async fn an_idle_connection_is_shut_down_after_the_idle_time_out() -> Result<(), Failure> {
    let clock = torsion::testing::Clock::new();
    let (app, _) = app();
    let site = Site::new(app);
    site.set_clock(clock.clone());
    let (port, addr) = listen(site);
    let mut raw = Raw::connect(addr).await;
    raw.send(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &request_block("/", &[]),
    ))
    .await;
    while let Some((kind, flags, _, _)) = raw.next().await {
        if kind == DATA && flags & END_STREAM != 0 {
            break;
        }
    }
    // Answered, and no stream open: the idle time-out (60 s) is armed.
    while clock.pending_call_times().is_empty() {
        tokio::task::yield_now().await;
    }
    clock.advance(59.0);
    tokio::task::yield_now().await;
    clock.advance(1.5);
    assert_eq!(raw.goaway().await, Some(0), "GOAWAY with NO_ERROR");
    // h2's graceful shutdown pings before its last GOAWAY: answered, then the end.
    let mut frames = 0;
    while let Some((kind, flags, _, payload)) = raw.next().await {
        frames += 1;
        assert!(frames < 10, "the connection does not close");
        if kind == 6 && flags & 1 == 0 {
            raw.send(&frame(6, 1, 0, &payload)).await;
        }
    }
    port.stop_listening().await
}
