//! Response bodies with flow control: a large static file sent to a slow client is not held
//! in memory (on plain TCP it goes by `sendfile(2)`, nothing of it read; where it is read, the
//! producer holds one chunk, see `static_file.rs`), and a streaming body producer on a
//! pipelined request waits (paused) until the responses before it are out.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torsion::producer::Producer;
use torsion::task::LoopingCall;
use torsion::{reactor, Failure};
use torsion_web::static_file::File;
use torsion_web::{Render, Request, Resource, Site};

const BIG: usize = 16 << 20;
const CHUNK: usize = 64 * 1024;

fn content(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 11) as u8
}

/// Serves a file and keeps every request it sees, to watch their backlog.
struct Watched {
    file: File,
    requests: Rc<RefCell<Vec<Request>>>,
}

impl Resource for Watched {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render(&self, request: &Request) -> Render {
        self.requests.borrow_mut().push(request.clone());
        self.file.render(request)
    }
}

/// A client with a small receive buffer that reads 8 KiB at a time, pausing 1 ms every
/// 256 KiB: returns everything it read until the server closed.
async fn slow_client(addr: std::net::SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.set_recv_buffer_size(16 * 1024)?;
    let mut sock = sock.connect(addr).await?;
    sock.write_all(request).await?;
    let (mut out, mut since) = (Vec::new(), 0);
    let mut buf = [0u8; 8 * 1024];
    loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        since += n;
        if since >= 256 * 1024 {
            since = 0;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn body_of(response: &[u8]) -> &[u8] {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    &response[end + 4..]
}

/// Serves a 16 MiB file through `file` (made from the file's path) to [`slow_client`],
/// sampling the response's backlog every millisecond; checks the bytes that arrived and
/// returns the largest backlog seen and the bytes sent by sendfile meanwhile.
async fn serve_slowly(
    name: &str,
    file: impl FnOnce(&std::path::Path) -> File,
) -> Result<(usize, u64), Failure> {
    let path =
        std::env::temp_dir().join(format!("torsion-flow-body-{name}-{}", std::process::id()));
    std::fs::write(&path, (0..BIG).map(content).collect::<Vec<u8>>())?;
    let requests: Rc<RefCell<Vec<Request>>> = Rc::default();
    let port = reactor().listen_tcp_on(
        0,
        Site::new(Watched {
            file: file(&path),
            requests: requests.clone(),
        }),
        "127.0.0.1",
    )?;
    let addr = port.get_host().socket_addr().unwrap();
    let max = Rc::new(Cell::new(0usize));
    let (m, rs) = (max.clone(), requests.clone());
    let sampler = LoopingCall::new(move || {
        for r in rs.borrow().iter() {
            m.set(m.get().max(r.buffered_size()));
        }
    });
    let sampling = sampler.start(0.001, true);
    let before = torsion::transport::file_bytes_sent();
    let out = slow_client(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await?;
    sampler.stop();
    sampling.await?;
    port.stop_listening().await?;
    std::fs::remove_file(&path)?;
    let body = body_of(&out);
    assert_eq!(body.len(), BIG);
    assert!(
        body.iter().enumerate().all(|(i, &b)| b == content(i)),
        "the file arrived altered"
    );
    eprintln!(
        "flow_body ({name}): {} MiB file; response backlog max sampled {} bytes",
        BIG >> 20,
        max.get(),
    );
    Ok((max.get(), torsion::transport::file_bytes_sent() - before))
}

#[torsion::test(timeout = 60)]
async fn a_large_file_to_a_slow_client_goes_by_sendfile_unread() -> Result<(), Failure> {
    let (max, by_sendfile) = serve_slowly("sendfile", |p: &std::path::Path| File::new(p)).await?;
    // The backlog is the file's unsent bytes, in the file: all of it went by sendfile, so
    // none of it was read into memory.
    assert_eq!(by_sendfile, BIG as u64);
    assert!(max <= BIG + 1024, "{max}");
    Ok(())
}

/// The static file producer's largest chunk (it grows chunks while the socket takes them
/// whole, and drops back once the socket is full).
const MAX_CHUNK: usize = 256 * 1024;

/// Where a file is read (TLS, HTTP/2, encoded bodies, or `File::sendfile(false)` as here),
/// a slow client keeps the write buffer under the high watermark plus one chunk: the
/// producer is paused rather than the file read ahead into memory.
#[torsion::test(timeout = 60)]
async fn a_large_file_read_for_a_slow_client_keeps_the_write_buffer_bounded() -> Result<(), Failure>
{
    let (max, by_sendfile) =
        serve_slowly("read", |p: &std::path::Path| File::new(p).sendfile(false)).await?;
    assert_eq!(by_sendfile, 0, "sendfile was used though turned off");
    assert!(
        max <= torsion::producer::DEFAULT_HIGH_WATER + MAX_CHUNK,
        "{max}"
    );
    Ok(())
}

/// Finishes its response after 100 ms.
struct Slow;

impl Resource for Slow {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, request: &Request) -> Render {
        let r = request.clone();
        reactor().call_later(0.1, move || {
            r.write(b"slow done");
            r.finish();
        });
        Render::NotDoneYet
    }
}

/// A streaming body: 1 MiB in 64 KiB chunks, one per reactor turn while not paused.
struct Pushed {
    request: Request,
    left: Cell<usize>,
    paused: Cell<bool>,
    scheduled: Cell<bool>,
    log: Rc<RefCell<Vec<String>>>,
    me: RefCell<Weak<Pushed>>,
}

impl Pushed {
    fn schedule(&self) {
        if self.scheduled.replace(true) {
            return;
        }
        let me = self.me.borrow().clone();
        reactor().call_later(0.0, move || {
            if let Some(p) = me.upgrade() {
                p.scheduled.set(false);
                p.step();
            }
        });
    }

    fn step(&self) {
        if self.paused.get() || self.left.get() == 0 {
            return;
        }
        self.request.write(&[b'p'; CHUNK]);
        self.left.set(self.left.get() - CHUNK);
        self.log.borrow_mut().push("write".into());
        if self.left.get() == 0 {
            self.request.finish();
            return;
        }
        self.schedule();
    }
}

impl Producer for Pushed {
    fn pause_producing(&self) {
        self.paused.set(true);
        self.log.borrow_mut().push("pause".into());
    }
    fn resume_producing(&self) {
        self.paused.set(false);
        self.log.borrow_mut().push("resume".into());
        self.schedule();
    }
    fn stop_producing(&self) {
        self.log.borrow_mut().push("stop".into());
    }
}

struct Push {
    log: Rc<RefCell<Vec<String>>>,
}

impl Resource for Push {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, request: &Request) -> Render {
        request.set_header("Content-Length", (1usize << 20).to_string());
        let p = Rc::new(Pushed {
            request: request.clone(),
            left: Cell::new(1 << 20),
            paused: Cell::new(false),
            scheduled: Cell::new(false),
            log: self.log.clone(),
            me: RefCell::new(Weak::new()),
        });
        *p.me.borrow_mut() = Rc::downgrade(&p);
        request.register_producer(p.clone(), true).unwrap();
        assert_eq!(
            request.register_producer(p.clone(), true),
            Err(torsion::producer::ProducerError::AlreadyRegistered)
        );
        p.schedule();
        Render::NotDoneYet
    }
}

#[torsion::test(timeout = 60)]
async fn a_streaming_body_behind_a_pipelined_response_waits_paused() -> Result<(), Failure> {
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let root = torsion_web::resources::Directory::new();
    root.put_child(b"slow", Rc::new(Slow));
    root.put_child(b"push", Rc::new(Push { log: log.clone() }));
    let port = reactor().listen_tcp_on(0, Site::new(root), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();
    let out = slow_client(
        addr,
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /push HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await?;
    port.stop_listening().await?;
    let log = log.borrow().clone();
    // Paused before it wrote anything (its first step came after the pause), resumed when
    // the slow response was out, and never stopped.
    assert_eq!(log.first().map(String::as_str), Some("pause"), "{log:?}");
    assert_eq!(log.get(1).map(String::as_str), Some("resume"), "{log:?}");
    assert_eq!(log.iter().filter(|e| *e == "write").count(), 16);
    assert!(!log.iter().any(|e| e == "stop"));
    let text = String::from_utf8_lossy(&out);
    let first = text.find("slow done").expect("the first response");
    let second = text
        .rfind("HTTP/1.1 200 OK\r\n")
        .expect("the second response");
    assert!(second > first, "responses in order");
    assert_eq!(body_of(&out[second..]), &vec![b'p'; 1 << 20][..]);
    Ok(())
}

/// A body of `total` frames of 64 KiB, made only when asked for; counts how many were made.
#[cfg(feature = "tower")]
struct Lazy {
    made: Rc<Cell<usize>>,
    total: usize,
}

#[cfg(feature = "tower")]
impl http_body::Body for Lazy {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        let made = self.made.get();
        if made == self.total {
            return std::task::Poll::Ready(None);
        }
        self.made.set(made + 1);
        let frame = bytes::Bytes::from(vec![b'a' + (made % 26) as u8; CHUNK]);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(frame))))
    }
}

/// Answers every request with a fresh [`Lazy`] body.
#[cfg(feature = "tower")]
#[derive(Clone)]
struct LazyService {
    made: Rc<Cell<usize>>,
    total: usize,
}

#[cfg(feature = "tower")]
impl tower_service::Service<torsion_web::tower::HttpRequest> for LazyService {
    type Response = http::Response<Lazy>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<http::Response<Lazy>, std::io::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::io::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: torsion_web::tower::HttpRequest) -> Self::Future {
        std::future::ready(Ok(http::Response::new(Lazy {
            made: self.made.clone(),
            total: self.total,
        })))
    }
}

#[cfg(feature = "tower")]
#[torsion::test(timeout = 60)]
async fn a_service_body_is_not_read_further_while_the_client_does_not_read() -> Result<(), Failure>
{
    const FRAMES: usize = 512; // 32 MiB
    let made = Rc::new(Cell::new(0));
    let service = LazyService {
        made: made.clone(),
        total: FRAMES,
    };
    let port = reactor().listen_tcp_on(
        0,
        Site::new(torsion_web::tower::ServiceResource::new(service)),
        "127.0.0.1",
    )?;
    let addr = port.get_host().socket_addr().unwrap();
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.set_recv_buffer_size(16 * 1024)?;
    let mut sock = sock.connect(addr).await?;
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    // Wait (polling, with a deadline) until the server stops taking frames: the client
    // reads nothing, so the connection pauses the body.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut stable = 0;
    let mut last = usize::MAX;
    while stable < 20 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = made.get();
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
    }
    let held = made.get();
    eprintln!(
        "flow_body: a non-reading client let the server take {held} of {FRAMES} frames of {CHUNK} bytes"
    );
    assert!(held > 0 && held < FRAMES / 2, "{held} frames taken");
    // Then everything arrives once the client reads.
    let mut out = Vec::new();
    sock.read_to_end(&mut out).await?;
    port.stop_listening().await?;
    let body = &out[out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    // Chunked: count the payload bytes by their letters.
    let payload = body.iter().filter(|b| b.is_ascii_lowercase()).count();
    assert_eq!(payload, FRAMES * CHUNK); // chunk sizes are hex digits ("10000")
    assert_eq!(made.get(), FRAMES);
    Ok(())
}
