//! The HTTP client (Twisted's `twisted.web.client.Agent` and `getPage`).
//!
//! - [`Agent`] sends requests over a pool of keep-alive connections ([`HttpConnectionPool`])
//!   and gives a Deferred [`Response`] as soon as the head arrives; [`read_body`] gives the
//!   body. Options follow redirects (Twisted's `RedirectAgent`), decode gzip
//!   (`ContentDecoderAgent`), bound time and body size. A silent server cannot hang a
//!   request: by default connecting gets 30 s, the response head 60 s and each wait for more
//!   body 60 s ([`ResponseTimeout`] names which ran out).
//! - [`get_page`] is seed 004's `getPage`: the body of a URL, or a failure.
//! - Bodies can also be streamed, a piece at a time with bounded memory:
//!   [`Response::stream`] (awaited chunks; the connection pauses while the reader is behind)
//!   and [`Response::deliver_body`] (Twisted's `deliverBody`, to a [`BodyProtocol`]).
//! - [`Agent::with_content_decoding`] decodes `gzip`, `deflate` and `br` (Twisted's
//!   `ContentDecoderAgent`), bounded against decompression bombs ([`MAX_EXPANSION`],
//!   [`DEFAULT_MAX_DECODED`]).
//! - Request bodies can be streamed too: [`Agent::request_streaming`] with a
//!   [`RequestBodyProducer`] (Twisted's `IBodyProducer`) such as [`FileBodyProducer`], paused by
//!   the connection's write buffer (`Content-Length` if the length is known, else chunked).
//! - Cookies: [`CookieAgent`] (Twisted's) keeps a [`CookieJar`] on RFC 6265 rules, sent and
//!   filled on every hop (the `cookies` feature, on by default).
//! - Through an HTTP proxy: [`Agent::with_proxy`] with a [`Proxy`] (Twisted's `ProxyAgent`),
//!   `https` through a `CONNECT` tunnel ([`TunnelError`] when the proxy refuses it).
//! - [`treq`]: `get(url)`, `post(url, Body::json(..) | Body::form(..))` on a shared agent,
//!   and a response's [`text`](Response::text) or [`json`](Response::json) (the `treq`
//!   feature, on by default).
//! - `https` URLs are fetched out of the box (the `tls` feature, on by default): rustls,
//!   certificates checked against the platform's roots and the URL's host, SNI, ALPN
//!   `http/1.1` ([`BrowserLikePolicyForHttps`]; trust other roots or set a host apart with
//!   [`Agent::with_policy`]). A refused certificate fails with [`TlsFailed`], whose
//!   [`TlsProblem`] says why. [`Agent::with_tls`] takes a [`TlsConnector`] of your own.
//!
//! ```text
//!   Agent.request ── pool: an idle connection for (scheme, host, port), or connect_tcp
//!        │             (https: rustls with the policy's settings, or your TlsConnector)
//!        └─ Http11ClientProtocol: writes the request, parses the head (proto) ──► Response
//!              body: Content-Length | chunked | until close ──► read_body ──► Vec<u8>
//!                                          (or stream / deliver_body: pieces, paused when behind)
//!              complete and keep-alive ──► back to the pool (closed after 240 s idle)
//! ```
//!
//! Built without the `tls` feature, `https` fails with [`SchemeNotSupported`] unless a
//! [`TlsConnector`] is installed.
//!
//! A complete round trip, server included:
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use torsion::{defer::ensure_deferred, Failure, Reactor};
//! use torsion_web::client::{read_body, Agent};
//! use torsion_web::{resources::Data, Site};
//!
//! let reactor = Reactor::new();
//! let site = Site::new(Data::new("Hello, world", "text/plain"));
//! let port = reactor.listen_tcp_on(0, site, "127.0.0.1")?;
//! let url = format!("http://127.0.0.1:{}/", port.get_host().port().unwrap());
//!
//! let got = Rc::new(RefCell::new(None));
//! let keep = got.clone();
//! reactor.call_when_running(move || {
//!     ensure_deferred(async move {
//!         let agent = Agent::new();
//!         let response = agent.get(&url).await?;
//!         assert_eq!((response.code, response.phrase.as_str()), (200, "OK"));
//!         let body = read_body(response).await?;
//!         agent.close_cached_connections().await?;
//!         port.stop_listening().await?;
//!         Ok::<_, Failure>(body)
//!     })
//!     .add_both(move |out| {
//!         *keep.borrow_mut() = Some(out);
//!         torsion::reactor().stop()
//!     });
//! });
//! reactor.run()?;
//! let body = got.borrow_mut().take().unwrap()?;
//! assert_eq!(body, b"Hello, world");
//! # Ok::<(), Failure>(())
//! ```

mod agent;
mod body;
mod connection;
#[cfg(feature = "cookies")]
mod cookies;
mod error;
mod pool;
mod protocol;
mod proxy;
mod request;
mod response;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "treq")]
pub mod treq;
mod url;

pub use agent::{
    get_page, Agent, TlsConnector, DEFAULT_HEAD_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BODY,
    DEFAULT_MAX_DECODED, DEFAULT_REDIRECT_LIMIT,
};
pub use body::{BodyConsumer, FileBodyProducer, RequestBodyProducer, DEFAULT_READ_SIZE};
#[cfg(feature = "cookies")]
pub use cookies::{CookieAgent, CookieJar};
pub use error::{
    BodyTooLarge, ContentDecodingError, HttpError, InfiniteRedirection, InvalidRequest, InvalidUrl,
    MalformedResponse, PotentialDataLoss, RedirectWithNoLocation, RequestGenerationFailed,
    ResponseDone, ResponseFailed, ResponseNeverReceived, ResponseTimeout, SchemeNotSupported,
    TimeoutPhase, WrongBodyLength,
};
#[cfg(feature = "tls")]
pub use error::{TlsFailed, TlsProblem};
pub use pool::HttpConnectionPool;
pub use protocol::{Http11ClientProtocol, HttpClientFactory};
pub use proxy::{Proxy, TunnelError};
pub use response::{
    read_body, BodyProducer, BodyProtocol, BodyStream, Response, BODY_HIGH_WATER, BODY_LOW_WATER,
    MAX_EXPANSION,
};
#[cfg(feature = "tls")]
pub use tls::{options_for_client_tls, BrowserLikePolicyForHttps, PolicyForHttps};
pub use url::Url;
