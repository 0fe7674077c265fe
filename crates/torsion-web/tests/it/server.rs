//! The HTTP/1.1 server over real sockets, driven by raw request bytes from a tokio client on
//! the same reactor: keep-alive, pipelining, HEAD, errors, bodies, limits, time-outs (on a
//! test Clock), deferred rendering and long polling.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::support::{exchange, listen, status_line};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::testing::Clock;
use torsion::{reactor, Failure};
use torsion_web::resources::{Data, Directory};
use torsion_web::site::SiteConfig;
use torsion_web::{Render, Request, Resource, Site};

/// Answers with the method, path, args and body it saw.
struct Mirror;

impl Resource for Mirror {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST"]
    }
    fn render_get(&self, r: &Request) -> Render {
        let args: Vec<String> = r
            .args()
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect();
        format!(
            "{} {} post={:?} args={} body={}",
            r.method(),
            String::from_utf8_lossy(r.path()),
            r.postpath()
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>(),
            args.join("&"),
            String::from_utf8_lossy(&r.content())
        )
        .into()
    }
    fn render_post(&self, r: &Request) -> Render {
        self.render_get(r)
    }
}

/// Only GET.
struct GetOnly;

impl Resource for GetOnly {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, _: &Request) -> Render {
        "got".into()
    }
}

/// Panics when rendered.
struct Broken;

impl Resource for Broken {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, _: &Request) -> Render {
        panic!("the template is missing")
    }
}

fn tree() -> Directory {
    let root = Directory::new();
    root.put_child(b"", Rc::new(Data::new("home", "text/plain")));
    root.put_child(b"mirror", Rc::new(Mirror));
    root.put_child(b"get-only", Rc::new(GetOnly));
    root.put_child(b"broken", Rc::new(Broken));
    root
}

#[torsion::test]
async fn a_get_is_answered_with_length_date_and_server() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(tree()));
    let out = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK");
    let lower = out.to_ascii_lowercase();
    assert!(lower.contains("content-length: 4\r\n"), "{out}");
    assert!(lower.contains("\r\ndate: "), "{out}");
    assert!(lower.contains("\r\nserver: torsion\r\n"), "{out}");
    assert!(lower.contains("content-type: text/plain"), "{out}");
    assert!(lower.contains("connection: close"), "{out}");
    assert!(out.ends_with("\r\n\r\nhome"), "{out}");
    port.stop_listening().await
}

#[torsion::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(tree()));
    let out = exchange(
        addr,
        b"GET /mirror/a HTTP/1.1\r\nHost: x\r\n\r\nGET /mirror/b HTTP/1.1\r\nHost: x\r\n\r\nGET /mirror/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let a = out.find("GET /mirror/a").expect("a answered");
    let b = out.find("GET /mirror/b").expect("b answered");
    let c = out.find("GET /mirror/c").expect("c answered");
    assert!(a < b && b < c, "{out}");
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 3);
    port.stop_listening().await
}

#[torsion::test]
async fn http_1_0_closes_after_the_response_unless_keep_alive() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(tree()));
    let out = exchange(addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(
        out.ends_with("home"),
        "the server closed after one response: {out}"
    );
    let out = exchange(
        addr,
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /mirror HTTP/1.0\r\n\r\n",
    )
    .await;
    assert_eq!(out.matches("200 OK").count(), 2, "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: keep-alive"),
        "{out}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn head_sends_the_length_but_no_body() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(tree()));
    let out = exchange(
        addr,
        b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        out.to_ascii_lowercase().contains("content-length: 4\r\n"),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\n"), "no body after a HEAD: {out}");
    port.stop_listening().await
}

#[torsion::test]
async fn unknown_paths_are_404_and_unknown_methods_405_with_allow() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(tree()));
    let out = exchange(
        addr,
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&out), "HTTP/1.1 404 Not Found");
    let out = exchange(
        addr,
        b"POST /get-only HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&out), "HTTP/1.1 405 Method Not Allowed");
    assert!(
        out.to_ascii_lowercase().contains("allow: get, head"),
        "{out}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn bodies_arrive_with_a_length_or_chunked_and_forms_become_args() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(tree()));
    let out = exchange(
        addr,
        b"POST /mirror?q=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 14\r\nConnection: close\r\n\r\nname=J%C3%BCrg",
    )
    .await;
    assert!(out.contains("args=q=1&name=Jürg"), "{out}");
    let out = exchange(
        addr,
        b"POST /mirror HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    assert!(out.contains("body=hello world"), "{out}");
    port.stop_listening().await
}

#[torsion::test]
async fn expect_100_continue_gets_an_interim_response() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(tree()));
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"POST /mirror HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").await?;
    let mut first = [0u8; 25];
    s.read_exact(&mut first).await?;
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"ok").await?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.starts_with("HTTP/1.1 200 OK") && rest.contains("body=ok"),
        "{rest}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn limits_answer_with_their_status_and_close() -> Result<(), Failure> {
    let config = SiteConfig {
        max_body: 100,
        ..SiteConfig::default()
    };
    let (port, addr) = listen(Site::with_config(Rc::new(tree()), config));
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    let many_headers = format!("GET / HTTP/1.1\r\n{}\r\n", "X-H: 1\r\n".repeat(150));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"NONSENSE\r\n\r\n".to_vec(), "400"),
        (long_uri.into_bytes(), "414"),
        (big_header.into_bytes(), "431"),
        (many_headers.into_bytes(), "431"),
        (b"POST /mirror HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n".to_vec(), "413"),
        (b"POST /mirror HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), "400"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(), "505"),
    ];
    for (request, code) in cases {
        let out = exchange(addr, &request).await;
        assert!(
            status_line(&out).starts_with(&format!("HTTP/1.1 {code} ")),
            "expected {code}, got {:?}",
            status_line(&out)
        );
    }
    port.stop_listening().await
}

#[torsion::test]
async fn a_panicking_resource_gives_500_and_the_connection_goes_on() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(tree()));
    let out = exchange(
        addr,
        b"GET /broken HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 500 Internal Server Error"),
        "{out}"
    );
    assert!(
        !out.contains("the template is missing"),
        "no internals leak: {out}"
    );
    assert!(out.ends_with("home"), "{out}");
    port.stop_listening().await
}

/// Answers later: writes a piece now, the rest when `release` is called.
#[derive(Default)]
struct Slow {
    waiting: RefCell<Vec<Request>>,
    gone: Rc<Cell<u32>>,
}

impl Resource for Slow {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        r.write(b"first ");
        let gone = self.gone.clone();
        r.notify_finish().add_errback(move |_| {
            gone.set(gone.get() + 1);
            Ok(())
        });
        self.waiting.borrow_mut().push(r.clone());
        Render::NotDoneYet
    }
}

#[torsion::test]
async fn not_done_yet_streams_a_chunked_response_finished_later() -> Result<(), Failure> {
    let slow = Rc::new(Slow::default());
    let (port, addr) = listen(Site::with_config(slow.clone(), SiteConfig::default()));
    let waiting = slow.clone();
    reactor().call_later(0.05, move || {
        for r in waiting.waiting.borrow_mut().drain(..) {
            r.write(b"second");
            r.finish();
        }
    });
    let out = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        out.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{out}"
    );
    assert!(
        out.ends_with("6\r\nfirst \r\n6\r\nsecond\r\n0\r\n\r\n"),
        "{out}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn a_client_leaving_fails_notify_finish_for_long_polls() -> Result<(), Failure> {
    let slow = Rc::new(Slow::default());
    let gone = slow.gone.clone();
    let (port, addr) = listen(Site::with_config(slow.clone(), SiteConfig::default()));
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await?; // the head has started arriving
    drop(s);
    while gone.get() == 0 {
        tokio::task::yield_now().await;
    }
    slow.waiting.borrow_mut().clear();
    port.stop_listening().await
}

#[torsion::test]
async fn later_rendering_from_async_code() -> Result<(), Failure> {
    struct Later;
    impl Resource for Later {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, _: &Request) -> Render {
            Render::future(async {
                let v = torsion::task::defer_later(&reactor(), 0.01, || 41).await?;
                Ok::<_, Failure>(format!("answer {}", v + 1).into_bytes())
            })
        }
    }
    let (port, addr) = listen(Site::new(Later));
    let out = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.ends_with("answer 42"), "{out}");
    port.stop_listening().await
}

#[torsion::test]
async fn a_slow_head_gets_408_and_an_idle_connection_is_closed() -> Result<(), Failure> {
    let clock = Clock::new();
    let site = Site::new(tree());
    site.set_clock(clock.clone());
    let (port, addr) = listen(site);

    // Slowloris: half a head, then nothing.
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHo").await?;
    while clock.pending_call_times().is_empty() {
        tokio::task::yield_now().await;
    }
    clock.advance(29.0);
    s.write_all(b"st: x\r\nX-A").await?; // more bytes do not reset the head timer
    tokio::task::yield_now().await;
    clock.advance(1.5);
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // Idle keep-alive: closed after the idle time-out, without a response.
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await?;
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("home"));
    clock.advance(61.0);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;
    assert!(rest.is_empty());
    port.stop_listening().await
}

#[torsion::test]
async fn each_request_restarts_the_idle_time_out() -> Result<(), Failure> {
    let clock = Clock::new();
    let site = Site::new(tree());
    site.set_clock(clock.clone());
    let (port, addr) = listen(site);
    let mut s = TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..3 {
        // 40 s apart: more than the idle time-out (60 s) since the first request, less
        // since the one before.
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        let n = s.read(&mut buf).await?;
        assert!(
            String::from_utf8_lossy(&buf[..n]).ends_with("home"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        clock.advance(40.0);
        tokio::task::yield_now().await;
    }
    // 40 s after the last request: still open (nothing to read, no end of stream).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    match s.try_read(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the connection should be open and idle: {other:?}"),
    }
    // 61 s after it: closed.
    clock.advance(21.0);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;
    assert!(rest.is_empty());
    port.stop_listening().await
}

#[torsion::test]
async fn the_access_log_gets_one_combined_format_line_per_request() -> Result<(), Failure> {
    let lines = Rc::new(RefCell::new(Vec::new()));
    let site = Site::new(tree());
    let l = lines.clone();
    site.set_access_log(move |line| l.borrow_mut().push(line.to_owned()));
    let (port, addr) = listen(site);
    exchange(addr, b"GET /mirror?x=\"1 HTTP/1.1\r\nHost: x\r\nUser-Agent: test/1.0\r\nConnection: close\r\n\r\n").await;
    let lines = lines.borrow().clone();
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains("] \"GET /mirror?x=%221 HTTP/1.1\" 200 "),
        "{line}"
    );
    assert!(line.ends_with(" \"-\" \"test/1.0\""), "{line}");
    port.stop_listening().await
}

#[torsion::test]
async fn nothing_after_a_connection_close_request_is_answered() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(tree()));
    let out = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /mirror HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    assert!(out.ends_with("home"), "{out}");
    port.stop_listening().await
}

/// Streams a piece, then fails.
struct FailsMidway;

impl Resource for FailsMidway {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        r.write(b"partial");
        Render::Later(torsion::defer::fail(std::io::Error::other(
            "database went away",
        )))
    }
}

#[torsion::test]
async fn a_failure_after_the_head_cuts_the_chunked_body_short_and_closes() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(FailsMidway));
    let out = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.ends_with("7\r\npartial\r\n"), "no final chunk: {out:?}");
    port.stop_listening().await
}

/// Sets headers the server also writes by default or for framing.
struct OwnHeaders;

impl Resource for OwnHeaders {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        r.set_header("Date", "Thu, 01 Jan 2026 00:00:00 GMT");
        r.set_header("server", "mine");
        r.set_header("Connection", "keep-alive");
        r.add_header("X-Other", "kept");
        match r.path() {
            b"/not-modified" => {
                r.set_response_code(304);
                r.set_header("Content-Length", "99");
                Render::Body(Vec::new())
            }
            b"/streamed" => {
                r.set_header("Transfer-Encoding", "gzip");
                r.write(b"part");
                r.finish();
                Render::NotDoneYet
            }
            _ => "body".into(),
        }
    }
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.to_ascii_lowercase().matches(needle).count()
}

#[torsion::test]
async fn a_resources_own_headers_are_kept_and_framing_headers_replaced() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(OwnHeaders));
    let close = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");

    let out = exchange(addr, close("/").as_bytes()).await;
    assert!(
        out.contains("\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n"),
        "{out}"
    );
    assert!(out.contains("\r\nserver: mine\r\n"), "{out}");
    assert!(out.contains("\r\nX-Other: kept\r\n"), "{out}");
    assert_eq!(count(&out, "\r\ndate: "), 1, "{out}");
    assert_eq!(count(&out, "\r\nserver: "), 1, "{out}");
    // The request asked to close: one Connection header, the server's.
    assert_eq!(count(&out, "\r\nconnection: "), 1, "{out}");
    assert!(out.contains("\r\nConnection: close\r\n"), "{out}");
    assert!(
        out.contains("\r\nContent-Length: 4\r\n") && out.ends_with("\r\n\r\nbody"),
        "{out}"
    );

    // A 304 has no body: the resource's Content-Length is dropped, no Content-Type added.
    let out = exchange(addr, close("/not-modified").as_bytes()).await;
    assert_eq!(status_line(&out), "HTTP/1.1 304 Not Modified");
    assert_eq!(count(&out, "content-length"), 0, "{out}");
    assert_eq!(count(&out, "content-type"), 0, "{out}");

    // A body without a length is chunked: the resource's Transfer-Encoding is replaced.
    let out = exchange(addr, close("/streamed").as_bytes()).await;
    assert_eq!(count(&out, "\r\ntransfer-encoding: "), 1, "{out}");
    assert!(out.contains("\r\nTransfer-Encoding: chunked\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n4\r\npart\r\n0\r\n\r\n"), "{out}");
    port.stop_listening().await
}

#[torsion::test]
async fn absolute_form_targets_are_walked_by_their_path() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(tree()));
    let get =
        |target: &str| format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let out = exchange(
        addr,
        get("http://example.com/mirror/a%20b/c?x=1&y=2").as_bytes(),
    )
    .await;
    assert!(
        out.ends_with(r#"GET /mirror/a%20b/c post=["a b", "c"] args=x=1&y=2 body="#),
        "{out}"
    );
    // No path at all is the root.
    let out = exchange(addr, get("http://example.com").as_bytes()).await;
    assert!(out.ends_with("\r\n\r\nhome"), "{out}");
    let out = exchange(addr, get("http://example.com?q=1").as_bytes()).await;
    assert!(out.ends_with("\r\n\r\nhome"), "{out}");
    port.stop_listening().await
}

#[torsion::test]
async fn http_1_1_needs_exactly_one_host_header() -> Result<(), Failure> {
    // RFC 9112 3.2: an HTTP/1.1 request with no Host, or more than one, is answered 400 (as
    // nginx does); HTTP/1.0 predates Host and is served without it.
    let (port, addr) = listen(Site::new(tree()));
    let out = exchange(addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_line(&out), "HTTP/1.1 400 Bad Request", "{out}");
    assert!(out.contains("Host"), "the page says why: {out}");
    let out = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&out), "HTTP/1.1 400 Bad Request", "{out}");
    // The 400 closes the connection: the request after it is not answered.
    let out = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 1, "{out}");
    assert_eq!(out.matches("HTTP/1.1 400 Bad Request").count(), 1, "{out}");
    assert!(out.find("200 OK") < out.find("400 Bad"), "{out}");
    let out = exchange(addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK", "{out}");
    let out = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK", "{out}");
    port.stop_listening().await
}
