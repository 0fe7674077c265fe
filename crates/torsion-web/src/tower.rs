//! Hosting a [`tower_service::Service`] — an axum `Router`, say — as a resource: Torsion's
//! answer to Twisted's `WSGIResource` ("Twisted supports WSGI natively, so you can use any
//! Python web framework"). Any Rust web framework built on `tower` and `http` runs inside a
//! Torsion [`Site`](crate::Site), next to ordinary resources.
//!
//! [`ServiceResource`] is a leaf: everything below the path where it is mounted goes to the
//! service, which sees the path *below* the mount point, as WSGI's `SCRIPT_NAME`/`PATH_INFO`
//! split does — a service mounted at `/app` gets `GET /app/hello?x=1` as `GET /hello?x=1`.
//! The mount point itself travels in the request's extensions as a [`MountPrefix`].
//!
//! ```no_run
//! use std::rc::Rc;
//!
//! use axum::{extract::Path, routing::get, Router};
//! use torsion::reactor;
//! use torsion_web::resources::{Data, Directory};
//! use torsion_web::tower::ServiceResource;
//! use torsion_web::{Resource, Site};
//!
//! fn main() -> Result<(), torsion::Failure> {
//!     let app = Router::new()
//!         .route("/hello", get(|| async { "Hello from axum" }))
//!         .route(
//!             "/users/{id}",
//!             get(|Path(id): Path<u32>| async move { format!("user {id}") }),
//!         );
//!
//!     let root = Directory::new();
//!     root.put_child(b"", Rc::new(Data::new("<a href='/app/hello'>hi</a>", "text/html")));
//!     // GET /app/hello is answered by the Router's "/hello" route.
//!     root.put_child(b"app", Rc::new(ServiceResource::new(app)));
//!
//!     reactor().listen_tcp(8080, Site::new(root))?;
//!     reactor().run()
//! }
//! ```
//!
//! # How requests and responses are carried over
//!
//! - **Request**: the method, the path below the mount point with the query string, the
//!   HTTP version, every header as received, and the body, which the server has already read
//!   whole (up to [`SiteConfig::max_body`](crate::site::SiteConfig::max_body)), as an
//!   [`http_body_util::Full`]. A request that `http` cannot represent (a header value with
//!   control characters, say) is answered 400 without calling the service.
//! - **Response**: the status and every header, except the ones that belong to the
//!   connection (`Connection`, `Keep-Alive`, `Transfer-Encoding`), which the server decides
//!   itself. The server adds `Date` and `Server` when the service did not set them, and —
//!   as for every Torsion resource — `Content-Type: text/html` when it set no content type.
//!   A body whose size is known exactly ([`Body::size_hint`]) gets a `Content-Length`;
//!   any other is sent chunked (HTTP/1.1) or ended by closing (HTTP/1.0). Trailers are not
//!   sent; protocol upgrades (`101 Switching Protocols`) are not supported.
//! - **Streaming**: the body is written frame by frame as the service produces it. The
//!   status and headers go out with the first frame, or at once when the first frame is not
//!   ready at once, so a client of a slow stream sees the head straight away. Writing waits
//!   while the connection holds a lot of unsent output, so a slow client does not make the
//!   server buffer a whole large body.
//! - **Errors**: an error from `poll_ready`, from `call`, or from the body (including a
//!   panic, and a body longer or shorter than its `Content-Length`) is logged; the client
//!   gets a 500 page if the response head had not been sent yet, otherwise the connection is
//!   closed.
//! - **Client gone**: when the connection goes away, the service's future or the body is
//!   dropped at once, as a `hyper` server would.
//!
//! Futures and bodies need not be `Send`: everything runs on the reactor's thread.
#![cfg(feature = "tower")]

use std::error::Error as StdError;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use torsion::defer::Deferred;
use torsion::producer::{Backpressure, DEFAULT_HIGH_WATER};
use torsion::{BoxError, Failure};
use tower_service::Service;

use crate::channel::error_page;
use crate::proto::{html_escape, reason_phrase, Version};
use crate::request::Request;
use crate::resource::{Render, Resource};

/// The request a hosted service receives: the body is already read whole.
pub type HttpRequest = http::Request<Full<Bytes>>;

/// A resource that hands every request below it to a [`tower_service::Service`] over
/// [`http`] types — an axum `Router`, a `tower::ServiceBuilder` stack, a hand-written
/// service (Twisted's `WSGIResource`). See the [module documentation](self).
///
/// The service is cloned for each request (the `tower` convention), then driven with
/// `poll_ready` and `call` on the reactor's thread.
#[derive(Clone, Debug)]
pub struct ServiceResource<S> {
    service: S,
}

impl<S> ServiceResource<S> {
    /// Hosts `service`; put the resource in the tree where its requests arrive.
    pub fn new(service: S) -> ServiceResource<S> {
        ServiceResource { service }
    }

    /// The hosted service.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// Gives the hosted service back.
    pub fn into_inner(self) -> S {
        self.service
    }
}

/// Where a [`ServiceResource`] is mounted: the part of the request path walked to reach it
/// (WSGI's `SCRIPT_NAME`), still percent-encoded and without a trailing slash — `/app` for a
/// service at `/app`, `/api/v1` for one at `/api/v1`, empty at the root of a site.
///
/// Every request a `ServiceResource` hands to its service carries one in its
/// [extensions](http::Request::extensions), so that a handler can make links that work
/// wherever it is mounted (with axum, extract `Extension<MountPrefix>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MountPrefix(String);

impl MountPrefix {
    /// The prefix, such as `/app`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MountPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S, B> Resource for ServiceResource<S>
where
    S: Service<HttpRequest, Response = http::Response<B>> + Clone + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + 'static,
    B::Error: Into<BoxError>,
{
    fn is_leaf(&self) -> bool {
        true
    }

    /// Hands the request, whatever its method, to the service.
    fn render(&self, request: &Request) -> Render {
        match to_http_request(request) {
            Ok(http_request) => {
                Render::future(serve(self.service.clone(), request.clone(), http_request))
            }
            Err(why) => {
                request.set_response_code(400);
                Render::Body(error_page(400, &html_escape(&why)))
            }
        }
    }
}

/// Builds the request the service sees: the path below the mount point, the query, the
/// headers and the body.
fn to_http_request(request: &Request) -> Result<HttpRequest, String> {
    let (prefix, below) = split_path(request.path(), request.prepath().len());
    let query = request.query();
    let mut target = Vec::with_capacity(below.len() + query.len() + 2);
    if request.path().starts_with(b"/") {
        target.push(b'/');
    }
    target.extend_from_slice(below);
    if request.uri().contains('?') {
        target.push(b'?');
        target.extend_from_slice(query);
    }
    let uri = http::Uri::try_from(target).map_err(|e| format!("The request URI: {e}."))?;
    let method = http::Method::from_bytes(request.method().as_bytes())
        .map_err(|e| format!("The request method: {e}."))?;

    let mut out = http::Request::new(Full::new(Bytes::copy_from_slice(&request.content())));
    *out.method_mut() = method;
    *out.uri_mut() = uri;
    *out.version_mut() = match request.version() {
        Version::Http10 => http::Version::HTTP_10,
        Version::Http11 => http::Version::HTTP_11,
        Version::Http2 => http::Version::HTTP_2,
    };
    let headers = out.headers_mut();
    headers.reserve(request.headers().len());
    for (name, value) in request.headers().iter() {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("The request header name {name:?}: {e}."))?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|e| format!("The value of request header {name}: {e}."))?;
        headers.append(name, value);
    }
    let prefix = String::from_utf8_lossy(prefix).into_owned();
    out.extensions_mut().insert(MountPrefix(prefix));
    Ok(out)
}

/// Splits a raw (still percent-encoded) request path after its first `mounted` segments:
/// the mount prefix (`/app`) and what lies below it (`hello/x`, without the slash between).
/// A path that does not start with `/` (`*`) is all below.
fn split_path(path: &[u8], mounted: usize) -> (&[u8], &[u8]) {
    let Some(rest) = path.strip_prefix(b"/") else {
        return (b"", path);
    };
    let mut end = 0; // bytes of `rest` in the prefix, with the slash after it
    for _ in 0..mounted {
        match memchr::memchr(b'/', &rest[end..]) {
            Some(i) => end += i + 1,
            None => return (path, b""),
        }
    }
    (&path[..end], &rest[end..])
}

/// Calls the service and streams its response; the Deferred's body is always empty (what
/// the service said is already written), its failure a 500 or a closed connection.
async fn serve<S, B>(
    mut service: S,
    request: Request,
    http_request: HttpRequest,
) -> Result<Vec<u8>, Failure>
where
    S: Service<HttpRequest, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut gone = ClientGone::new(&request);
    let call = async {
        poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(|e| ServiceError::failure("the service was not ready", e))?;
        service
            .call(http_request)
            .await
            .map_err(|e| ServiceError::failure("the service failed", e))
    };
    let Some(response) = gone.unless(call).await else {
        return Ok(Vec::new());
    };
    let (parts, body) = response?.into_parts();

    // The body's length, from the service's Content-Length or else from the body itself.
    let no_body = request.method() == "HEAD"
        || parts.status.is_informational()
        || matches!(parts.status.as_u16(), 204 | 304);
    let stated = stated_length(&parts.headers)?;
    let add_length = match stated {
        None if !no_body => body.size_hint().exact(),
        _ => None,
    };
    let length = if no_body { None } else { stated.or(add_length) };

    let mut head = Some(Head { parts, add_length });
    let mut body = Box::pin(body);
    let mut sent: u64 = 0;
    // Flow control: the connection pauses this gate while its write buffer is over the high
    // watermark; the body is not read further until it resumes. (It fails only for a request
    // already finished or lost, whose writes are dropped anyway.)
    let gate = Backpressure::new();
    let _ = request.register_producer(gate.clone(), true);
    loop {
        if !room_to_write(&request, &gate).await {
            return Ok(Vec::new());
        }
        let mut next = body.frame();
        let ready = match head {
            // The head is still ours to change: see whether the body has something now.
            Some(_) => poll_fn(|cx| Poll::Ready(Pin::new(&mut next).poll(cx))).await,
            None => Poll::Pending,
        };
        let frame = match ready {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                // The body takes its time: send the head now, without waiting for it.
                if let Some(head) = head.take() {
                    head.apply(&request);
                    request.write(b"");
                }
                match gone.unless(next).await {
                    Some(frame) => frame,
                    None => return Ok(Vec::new()),
                }
            }
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => {
                return Err(ServiceError::failure("the response body failed", e));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue, // empty data, or trailers: nothing to send
            },
        };
        sent += data.len() as u64;
        if let Some(n) = length.filter(|&n| sent > n) {
            return Err(ServiceError::length(format!(
                "the response body is longer than the {n} bytes its Content-Length says"
            )));
        }
        if let Some(head) = head.take() {
            head.apply(&request);
        }
        request.write(&data);
    }
    if let Some(n) = length.filter(|&n| sent != n) {
        return Err(ServiceError::length(format!(
            "the response body ended after {sent} of the {n} bytes its Content-Length says"
        )));
    }
    if let Some(head) = head.take() {
        head.apply(&request);
    }
    Ok(Vec::new())
}

/// The response's status and headers, not yet given to the [`Request`] — so that an error
/// before the first byte of the body can still become a clean 500 page.
struct Head {
    parts: http::response::Parts,
    /// A `Content-Length` to add, from the body's exact size.
    add_length: Option<u64>,
}

impl Head {
    /// Sets the status and headers on the response (it starts with the next write).
    fn apply(self, request: &Request) {
        let status = self.parts.status;
        match status.canonical_reason() {
            Some(reason) if reason_phrase(status.as_u16()) == "Unknown" => {
                request.set_response_code_with_message(status.as_u16(), reason);
            }
            _ => request.set_response_code(status.as_u16()),
        }
        for (name, value) in &self.parts.headers {
            if *name == CONNECTION || *name == TRANSFER_ENCODING || name.as_str() == "keep-alive" {
                continue; // the connection's framing and lifetime are the server's business
            }
            request.add_header(name.as_str(), value.as_bytes());
        }
        if let Some(n) = self.add_length {
            request.set_header("Content-Length", n.to_string());
        }
    }
}

/// The length the service's `Content-Length` header states, if it has one; an error if it
/// is not a number, or if several of them disagree.
fn stated_length(headers: &http::HeaderMap) -> Result<Option<u64>, Failure> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let n = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| ServiceError::length(format!("invalid Content-Length {value:?}")))?;
        if length.is_some_and(|m| m != n) {
            return Err(ServiceError::length(
                "Content-Length headers that disagree".to_owned(),
            ));
        }
        length = Some(n);
    }
    Ok(length)
}

/// Waits while the connection has the body's producer paused; false once the client has
/// gone away.
///
/// The connection pauses the gate from its own task, after a write has filled its buffer,
/// never from inside the write. A body whose frames are all ready would be written in one
/// tight loop that never lets that task run, so when bytes are waiting this first yields a
/// reactor turn (and, while more than the high watermark waits and the pause has not come
/// yet, a few more), then waits on the gate.
async fn room_to_write(request: &Request, gate: &Backpressure) -> bool {
    /// Turns to wait for a pause that is due, before going on regardless.
    const MAX_TURNS: usize = 64;
    if request.buffered_size() > 0 {
        yield_turn().await;
        let mut turns = 1;
        while request.buffered_size() > DEFAULT_HIGH_WATER
            && !gate.is_paused()
            && !request.lost()
            && turns < MAX_TURNS
        {
            yield_turn().await;
            turns += 1;
        }
    }
    if gate.is_paused() && !request.lost() {
        // Fires with false if the connection ends first.
        return gate.ready().await.unwrap_or(false) && !request.lost();
    }
    !request.lost()
}

/// Lets every other ready task of the reactor run once (the connection's among them).
async fn yield_turn() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Becomes ready when the request's client goes away (it cannot finish before: the request
/// is finished after [`serve`] returns). Stays ready once it is.
struct ClientGone(Option<Deferred<()>>);

impl ClientGone {
    fn new(request: &Request) -> ClientGone {
        // Either outcome means "stop"; as a value, so no failure is left unhandled.
        ClientGone(Some(
            request.notify_finish().add_both(|_| Ok::<(), Failure>(())),
        ))
    }

    /// Runs `fut` to its end, or until the client goes away (`None`).
    async fn unless<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        poll_fn(|cx| match fut.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending => self.poll_gone(cx).map(|()| None),
        })
        .await
    }

    fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(d) = self.0.as_mut() else {
            return Poll::Ready(());
        };
        match Pin::new(d).poll(cx) {
            Poll::Ready(_) => {
                self.0 = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Why a hosted service's response could not be sent; the server logs it.
#[derive(Debug)]
struct ServiceError {
    what: String,
    source: Option<BoxError>,
}

impl ServiceError {
    fn failure(what: &str, source: impl Into<BoxError>) -> Failure {
        Failure::new(ServiceError {
            what: what.to_owned(),
            source: Some(source.into()),
        })
    }

    fn length(what: String) -> Failure {
        Failure::new(ServiceError { what, source: None })
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl StdError for ServiceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::split_path;

    fn check(path: &str, mounted: usize, prefix: &str, below: &str) {
        let (p, b) = split_path(path.as_bytes(), mounted);
        assert_eq!((p, b), (prefix.as_bytes(), below.as_bytes()), "{path}");
    }

    #[test]
    fn the_path_splits_after_the_mounted_segments() {
        check("/app/hello", 1, "/app", "hello");
        check("/app/hello/", 1, "/app", "hello/");
        check("/app", 1, "/app", "");
        check("/app/", 1, "/app", "");
        check("/api/v1/x%2Fy", 2, "/api/v1", "x%2Fy");
        check("/app//x", 1, "/app", "/x");
        check("/hello", 0, "", "hello");
        check("/", 0, "", "");
        check("*", 0, "", "*");
    }
}
