//! `ServiceResource` over real sockets: an axum `Router` mounted at `/app` next to plain
//! Torsion resources, and hand-made services for streamed bodies, errors and clients that
//! leave. The client is raw bytes from tokio on the same reactor.
#![cfg(feature = "tower")]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::support::{exchange, listen, status_line};
use axum::extract::{Extension, Path};
use axum::http::{HeaderMap, Uri};
use axum::response::{AppendHeaders, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::Failure;
use torsion_web::resources::{Data, Directory};
use torsion_web::tower::{HttpRequest, MountPrefix, ServiceResource};
use torsion_web::{Resource, Site};
use tower_service::Service;

// ---- the services ----

fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello from axum" }))
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/json/{id}",
            get(|Path(id): Path<u32>| async move { Json(BTreeMap::from([("id", id)])) }),
        )
        .route(
            "/uri/{*rest}",
            get(|uri: Uri| async move { uri.to_string() }),
        )
        .route(
            "/prefix",
            get(|Extension(prefix): Extension<MountPrefix>| async move { prefix.to_string() }),
        )
        .route(
            "/headers",
            get(|headers: HeaderMap| async move {
                let test = headers
                    .get("x-test")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                (
                    AppendHeaders([
                        ("x-from", "axum"),
                        ("set-cookie", "a=1"),
                        ("set-cookie", "b=2"),
                        ("connection", "close"),
                    ]),
                    format!("x-test={test}"),
                )
                    .into_response()
            }),
        )
}

/// The site: a plain resource and the Router at `/app`, and the Router again at `/api/v1`.
fn site() -> Site {
    let root = Directory::new();
    root.put_child(b"plain", Rc::new(Data::new("plain torsion", "text/plain")));
    root.put_child(b"app", Rc::new(ServiceResource::new(app())));
    let api = Directory::new();
    api.put_child(b"v1", Rc::new(ServiceResource::new(app())));
    root.put_child(b"api", Rc::new(api));
    Site::new(root)
}

/// A service made from a function: ready at once, answering at once.
#[derive(Clone)]
struct Handmade<F>(F);

impl<F, B> Service<HttpRequest> for Handmade<F>
where
    F: Fn(HttpRequest) -> Result<http::Response<B>, io::Error>,
{
    type Response = http::Response<B>;
    type Error = io::Error;
    type Future = std::future::Ready<Result<http::Response<B>, io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        std::future::ready((self.0)(request))
    }
}

/// A response body the test feeds frame by frame. Not `Send` (it holds an `Rc`), which a
/// `ServiceResource` allows.
struct Feed {
    state: Rc<FeedState>,
    exact: Option<u64>,
}

#[derive(Default)]
struct FeedState {
    frames: RefCell<VecDeque<Result<Bytes, &'static str>>>,
    ended: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    dropped: Cell<bool>,
}

impl FeedState {
    fn push(&self, frame: Result<&'static str, &'static str>) {
        self.frames.borrow_mut().push_back(frame.map(Bytes::from));
        self.wake();
    }

    fn end(&self) {
        self.ended.set(true);
        self.wake();
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

impl Body for Feed {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let next = self.state.frames.borrow_mut().pop_front();
        match next {
            Some(Ok(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Some(Err(why)) => Poll::Ready(Some(Err(io::Error::other(why)))),
            None if self.state.ended.get() => Poll::Ready(None),
            None => {
                *self.state.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.state.dropped.set(true);
    }
}

/// A service answering with a [`Feed`] over `state` (of `exact` bytes, if given).
fn feed_service(
    state: &Rc<FeedState>,
    exact: Option<u64>,
) -> ServiceResource<
    impl Service<HttpRequest, Response = http::Response<Feed>, Error = io::Error> + Clone,
> {
    let state = state.clone();
    ServiceResource::new(Handmade(move |_| {
        let mut response = http::Response::new(Feed {
            state: state.clone(),
            exact,
        });
        response
            .headers_mut()
            .insert("content-type", "text/plain".parse().unwrap());
        Ok(response)
    }))
}

// ---- the client ----

/// `GET path` with `Connection: close`, and the whole response.
async fn get_(addr: std::net::SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

/// Reads until `out` contains `needle`.
async fn read_until(s: &mut TcpStream, out: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(out).contains(needle) {
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(out)
        );
        out.extend_from_slice(&buf[..n]);
    }
}

/// The value of the response's header `name`, if it has one.
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = &response[..response.find("\r\n\r\n")?];
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

// ---- the tests ----

#[torsion::test]
async fn the_router_answers_below_its_mount_point_next_to_plain_resources() -> Result<(), Failure> {
    let (port, addr) = listen(site());

    let out = get_(addr, "/app/hello").await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK", "{out}");
    assert_eq!(body(&out), "hello from axum");
    assert_eq!(header(&out, "content-length"), Some("15"), "{out}");
    assert_eq!(
        header(&out, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        header(&out, "date").is_some(),
        "the server adds Date: {out}"
    );
    assert_eq!(header(&out, "server"), Some("Torsion"), "{out}");

    let out = get_(addr, "/plain").await;
    assert_eq!(body(&out), "plain torsion", "{out}");

    // Not found by the Router: axum's own empty 404, not Torsion's page.
    let out = get_(addr, "/app/nope").await;
    assert_eq!(status_line(&out), "HTTP/1.1 404 Not Found", "{out}");
    assert_eq!(header(&out, "content-length"), Some("0"), "{out}");
    assert_eq!(body(&out), "");
    // Not found by the resource tree: Torsion's page.
    let out = get_(addr, "/nope").await;
    assert_eq!(status_line(&out), "HTTP/1.1 404 Not Found", "{out}");
    assert!(
        body(&out).contains("No luck finding that resource"),
        "{out}"
    );

    // The Router decides which methods it takes.
    let out = exchange(
        addr,
        b"DELETE /app/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        status_line(&out),
        "HTTP/1.1 405 Method Not Allowed",
        "{out}"
    );
    assert_eq!(header(&out, "allow"), Some("GET,HEAD"), "{out}");
    port.stop_listening().await
}

#[torsion::test]
async fn the_service_sees_the_path_below_the_mount_and_the_prefix() -> Result<(), Failure> {
    let (port, addr) = listen(site());
    let out = get_(addr, "/app/uri/a%20b/c?x=1&y").await;
    assert_eq!(body(&out), "/uri/a%20b/c?x=1&y", "{out}");
    let out = get_(addr, "/app/uri/q?").await;
    assert_eq!(body(&out), "/uri/q?", "{out}");
    let out = get_(addr, "/app/prefix").await;
    assert_eq!(body(&out), "/app", "{out}");
    let out = get_(addr, "/app/uri//x/").await;
    assert_eq!(body(&out), "/uri//x/", "{out}");
    // A target that `http::Uri` cannot hold is answered here, without calling the service.
    let out = get_(addr, "/app/uri/a<b").await;
    assert_eq!(status_line(&out), "HTTP/1.1 400 Bad Request", "{out}");
    assert!(body(&out).contains("The request URI"), "{out}");
    let out = get_(addr, "/api/v1/uri/deeper/still").await;
    assert_eq!(body(&out), "/uri/deeper/still", "{out}");
    let out = get_(addr, "/api/v1/prefix").await;
    assert_eq!(body(&out), "/api/v1", "{out}");
    port.stop_listening().await?;

    // At the root of a site, the service sees the whole path and an empty prefix.
    let (port, addr) = listen(Site::new(ServiceResource::new(app())));
    let out = get_(addr, "/uri/x?k=v").await;
    assert_eq!(body(&out), "/uri/x?k=v", "{out}");
    let out = get_(addr, "/prefix").await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK", "{out}");
    assert_eq!(body(&out), "", "{out}");
    port.stop_listening().await
}

#[torsion::test]
async fn bodies_extractors_and_json_go_through() -> Result<(), Failure> {
    let (port, addr) = listen(site());
    let out = exchange(
        addr,
        b"POST /app/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nping",
    )
    .await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK", "{out}");
    assert_eq!(body(&out), "ping");
    assert_eq!(
        header(&out, "content-type"),
        Some("application/octet-stream")
    );

    let out = exchange(
        addr,
        b"POST /app/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(body(&out), "hello world", "{out}");
    assert_eq!(header(&out, "content-length"), Some("11"), "{out}");

    let out = get_(addr, "/app/json/7").await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK", "{out}");
    assert_eq!(header(&out, "content-type"), Some("application/json"));
    assert_eq!(body(&out), r#"{"id":7}"#);

    // The Path extractor's rejection is axum's 400.
    let out = get_(addr, "/app/json/seven").await;
    assert_eq!(status_line(&out), "HTTP/1.1 400 Bad Request", "{out}");
    port.stop_listening().await
}

#[torsion::test]
async fn headers_go_both_ways_and_head_has_no_body() -> Result<(), Failure> {
    let (port, addr) = listen(site());
    // Two requests on one connection: the service's `Connection: close` is not passed on,
    // the server keeps the connection.
    let out = exchange(
        addr,
        b"GET /app/headers HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\n\r\nHEAD /app/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (first, second) = out.split_at(out.rfind("HTTP/1.1 200 OK").unwrap());
    assert_eq!(body(first), "x-test=yes", "{out}");
    assert_eq!(header(first, "x-from"), Some("axum"), "{out}");
    assert_eq!(first.matches("set-cookie: ").count(), 2, "{out}");
    assert!(first.contains("set-cookie: a=1\r\n") && first.contains("set-cookie: b=2\r\n"));
    assert_eq!(header(first, "connection"), None, "{out}");

    assert_eq!(header(second, "content-length"), Some("15"), "{out}");
    assert!(second.ends_with("\r\n\r\n"), "no body after a HEAD: {out}");
    port.stop_listening().await
}

#[torsion::test]
async fn a_streamed_body_goes_out_frame_by_frame_with_the_head_first() -> Result<(), Failure> {
    let state = Rc::new(FeedState::default());
    let (port, addr) = listen(Site::new(feed_service(&state, None)));
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;

    // No frame yet: the head goes out at once.
    let mut out = Vec::new();
    read_until(&mut s, &mut out, "\r\n\r\n").await;
    let head = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(status_line(&head), "HTTP/1.1 200 OK", "{head}");
    assert_eq!(
        header(&head, "transfer-encoding"),
        Some("chunked"),
        "{head}"
    );
    assert_eq!(header(&head, "content-type"), Some("text/plain"), "{head}");

    state.push(Ok("one "));
    read_until(&mut s, &mut out, "4\r\none \r\n").await;
    state.push(Ok("two "));
    state.push(Ok(""));
    state.push(Ok("three"));
    state.end();
    s.read_to_end(&mut out).await?;
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.ends_with("\r\n\r\n4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"),
        "{out}"
    );
    assert!(state.dropped.get());
    port.stop_listening().await
}

#[torsion::test]
async fn a_body_of_known_size_gets_a_content_length() -> Result<(), Failure> {
    let state = Rc::new(FeedState::default());
    state.push(Ok("01234"));
    state.push(Ok("56789"));
    state.end();
    let (port, addr) = listen(Site::new(feed_service(&state, Some(10))));
    let out = get_(addr, "/").await;
    assert_eq!(header(&out, "content-length"), Some("10"), "{out}");
    assert_eq!(header(&out, "transfer-encoding"), None, "{out}");
    assert_eq!(body(&out), "0123456789", "{out}");
    port.stop_listening().await
}

#[torsion::test]
async fn a_large_body_waits_for_the_connection_to_drain() -> Result<(), Failure> {
    const FRAME: usize = 64 * 1024;
    const FRAMES: usize = 64; // 4 MiB, all ready at once
    let state = Rc::new(FeedState::default());
    for i in 0..FRAMES {
        let byte = b'a' + (i % 26) as u8;
        state
            .frames
            .borrow_mut()
            .push_back(Ok(Bytes::from(vec![byte; FRAME])));
    }
    state.end();
    let (port, addr) = listen(Site::new(feed_service(
        &state,
        Some((FRAME * FRAMES) as u64),
    )));
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (head, body) = out.split_at(at);
    let head = String::from_utf8_lossy(head);
    assert_eq!(header(&head, "content-length"), Some("4194304"), "{head}");
    assert_eq!(body.len(), FRAME * FRAMES);
    for (i, frame) in body.chunks(FRAME).enumerate() {
        assert!(
            frame.iter().all(|&b| b == b'a' + (i % 26) as u8),
            "frame {i}"
        );
    }
    port.stop_listening().await
}

#[torsion::test]
async fn service_errors_are_500_and_the_connection_goes_on() -> Result<(), Failure> {
    /// Never ready.
    #[derive(Clone)]
    struct NotReady;
    impl Service<HttpRequest> for NotReady {
        type Response = http::Response<String>;
        type Error = io::Error;
        type Future = std::future::Ready<Result<http::Response<String>, io::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
            Poll::Ready(Err(io::Error::other("overloaded")))
        }
        fn call(&mut self, _: HttpRequest) -> Self::Future {
            unreachable!("not ready")
        }
    }

    let root = Directory::new();
    root.put_child(
        b"fails",
        Rc::new(ServiceResource::new(Handmade(|_| {
            Err::<http::Response<String>, _>(io::Error::other("the database is down"))
        }))),
    );
    root.put_child(b"not-ready", Rc::new(ServiceResource::new(NotReady)));
    root.put_child(
        b"panics",
        Rc::new(ServiceResource::new(Handmade(
            |_| -> Result<http::Response<String>, io::Error> { panic!("the handler broke") },
        ))),
    );
    let early = Rc::new(FeedState::default());
    early.push(Err("the body broke at once"));
    root.put_child(b"body-fails", Rc::new(feed_service(&early, None)));
    root.put_child(b"app", Rc::new(ServiceResource::new(app())));
    let (port, addr) = listen(Site::new(root));

    for path in ["/fails", "/not-ready", "/panics", "/body-fails"] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /app/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let out = exchange(addr, request.as_bytes()).await;
        assert!(
            out.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{path}: {out}"
        );
        let (first, second) = out.split_at(out.find("HTTP/1.1 200 OK").expect("next answered"));
        assert_eq!(header(first, "content-type"), Some("text/html"), "{out}");
        assert!(
            body(first).contains("An error occurred while rendering"),
            "{out}"
        );
        assert_eq!(body(second), "hello from axum", "{path}: {out}");
    }
    assert!(early.dropped.get());
    port.stop_listening().await
}

#[torsion::test]
async fn a_body_failing_after_the_head_closes_the_connection() -> Result<(), Failure> {
    // A length was promised: the client sees the body cut short, then the close.
    let state = Rc::new(FeedState::default());
    state.push(Ok("01234"));
    state.push(Err("the disk went away"));
    let (port, addr) = listen(Site::new(feed_service(&state, Some(10))));
    // A keep-alive request: reading to the end shows the server closed the connection.
    let out = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK", "{out}");
    assert_eq!(header(&out, "content-length"), Some("10"), "{out}");
    assert_eq!(body(&out), "01234", "closed after the first part: {out}");
    port.stop_listening().await?;

    // A body longer than its Content-Length is cut at the length, and the connection closed.
    let state = Rc::new(FeedState::default());
    state.push(Ok("0123"));
    state.push(Ok("456789"));
    state.end();
    let (port, addr) = listen(Site::new(feed_service(&state, Some(5))));
    let out = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(header(&out, "content-length"), Some("5"), "{out}");
    assert_eq!(body(&out), "0123", "{out}");
    port.stop_listening().await?;

    // A chunked body failing later: what was sent stays sent, and the connection is closed.
    let state = Rc::new(FeedState::default());
    let (port, addr) = listen(Site::new(feed_service(&state, None)));
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    state.push(Ok("first"));
    let mut out = Vec::new();
    read_until(&mut s, &mut out, "5\r\nfirst\r\n").await;
    state.push(Err("the stream broke"));
    s.read_to_end(&mut out).await?;
    let out = String::from_utf8_lossy(&out);
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK", "{out}");
    assert!(state.dropped.get());
    port.stop_listening().await
}

#[torsion::test]
async fn a_client_leaving_drops_the_service_future_and_the_body() -> Result<(), Failure> {
    /// Answers never; says when it is called and when its future is dropped.
    #[derive(Clone, Default)]
    struct Forever {
        called: Rc<Cell<bool>>,
        dropped: Rc<Cell<bool>>,
    }
    struct Pending(Rc<Cell<bool>>);
    impl Future for Pending {
        type Output = Result<http::Response<String>, io::Error>;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
            Poll::Pending
        }
    }
    impl Drop for Pending {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    impl Service<HttpRequest> for Forever {
        type Response = http::Response<String>;
        type Error = io::Error;
        type Future = Pending;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: HttpRequest) -> Pending {
            self.called.set(true);
            Pending(self.dropped.clone())
        }
    }

    let forever = Forever::default();
    let state = Rc::new(FeedState::default());
    let root = Directory::new();
    root.put_child(b"forever", Rc::new(ServiceResource::new(forever.clone())));
    root.put_child(b"stream", Rc::new(feed_service(&state, None)));
    let (port, addr) = listen(Site::new(root));

    // Gone while the service works on the answer.
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    while !forever.called.get() {
        tokio::task::yield_now().await;
    }
    drop(s);
    while !forever.dropped.get() {
        tokio::task::yield_now().await;
    }

    // Gone while the body streams.
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    state.push(Ok("first"));
    let mut out = Vec::new();
    read_until(&mut s, &mut out, "5\r\nfirst\r\n").await;
    drop(s);
    while !state.dropped.get() {
        tokio::task::yield_now().await;
    }
    port.stop_listening().await
}
