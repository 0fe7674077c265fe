//! [`Agent`]: makes HTTP requests (Twisted's `Agent`, with `RedirectAgent` and
//! `ContentDecoderAgent` as options), and [`get_page`] (Twisted's `getPage`).
//!
//! ```no_run
//! use torsion::{reactor, Failure};
//! use torsion_web::client::{read_body, Agent};
//! use torsion_web::proto::Headers;
//!
//! let agent = Agent::new().with_redirects(20).with_gzip().with_timeout(10.0);
//! let mut headers = Headers::new();
//! headers.add("Accept", "text/html");
//! agent
//!     .request("GET", "http://example.com/", headers, None)
//!     .add_callback_deferred(|response| {
//!         println!("{} {}", response.code, response.phrase);
//!         read_body(response)
//!     })
//!     .add_callbacks(
//!         |body| println!("{} bytes", body.len()),
//!         |failure: Failure| {
//!             println!("failed: {failure}");
//!             Ok(())
//!         },
//!     )
//!     .add_both(|_| reactor().stop());
//! reactor().run().unwrap();
//! ```

use std::fmt;
use std::rc::Rc;

use torsion::defer::{fail, succeed, Deferred};
use torsion::error::TimeoutError;
use torsion::reactor::ReactorTime;
use torsion::tcp::{Connector, DEFAULT_CONNECT_TIMEOUT};
use torsion::{Failure, Reactor};

use super::body::RequestBodyProducer;
use super::connection::PoolKey;
use super::error::{
    HttpError, InfiniteRedirection, RedirectWithNoLocation, ResponseNeverReceived, ResponseTimeout,
    SchemeNotSupported, TimeoutPhase,
};
use super::pool::HttpConnectionPool;
use super::protocol::HttpClientFactory;
use super::proxy::Proxy;
use super::request::{encode_request, EncodeOptions, Payload, PreparedRequest};
use super::response::{read_body, Response};
#[cfg(feature = "tls")]
use super::tls::PolicyForHttps;
use super::url::Url;
use crate::proto::{Headers, Limits};

/// The most decoded bytes a compressed body may give by default (1 GiB), read whole or
/// streamed ([`Agent::with_max_decoded`]).
pub const DEFAULT_MAX_DECODED: u64 = 1 << 30;

/// How many redirects are followed by default (Twisted's `redirectLimit`).
pub const DEFAULT_REDIRECT_LIMIT: usize = 20;

/// The largest response body read by default: 100 MiB.
pub const DEFAULT_MAX_BODY: u64 = 100 * 1024 * 1024;

/// Seconds allowed by default from writing a request to the end of its response head.
///
/// Twisted's `Agent` has no such time-out (a stalled server hangs `getPage` for ever), nor do
/// reqwest, hyper-util's legacy client or curl by default; nginx's `proxy_read_timeout`, the
/// closest widely deployed default for an HTTP client talking to an upstream, is 60 s. A
/// minute is long enough for a slow dynamic page and short enough that a dead server does not
/// hold a request for ever. Change it with [`Agent::with_head_timeout`].
pub const DEFAULT_HEAD_TIMEOUT: f64 = 60.0;

/// Seconds allowed by default between two reads of a response body (60, like nginx's
/// `proxy_read_timeout`, which also counts between two reads rather than for the whole body,
/// so large downloads on a live connection are never cut). Change it with
/// [`Agent::with_idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: f64 = 60.0;

/// Opens TLS connections for `https` URLs: the hook the TLS support plugs into.
///
/// An implementation connects to `host:port` (with `reactor.connect_tcp_timeout`, say), runs
/// the TLS handshake checking the certificate for `host`, and runs `factory`'s protocol over
/// the TLS transport: `connection_made` once the handshake is done, decrypted bytes to
/// `data_received`, and `client_connection_failed` on the factory if connecting or the
/// handshake fails. It returns the TCP connector, so a cancelled request can stop it.
pub trait TlsConnector {
    /// Connects to `host:port` over TLS within `timeout` seconds; see the trait's
    /// documentation.
    fn connect_tls(
        &self,
        reactor: &Reactor,
        host: &str,
        port: u16,
        factory: HttpClientFactory,
        timeout: f64,
    ) -> Connector;
}

#[derive(Clone)]
struct AgentConfig {
    connect_timeout: f64,
    timeout: Option<f64>,
    body_timeout: Option<f64>,
    /// The clock the time-outs run on (`None`: the pool's reactor).
    clock: Option<Rc<dyn ReactorTime>>,
    /// Cookies sent and kept, hop by hop.
    #[cfg(feature = "cookies")]
    cookies: Option<super::cookies::CookieJar>,
    head_timeout: Option<f64>,
    idle_timeout: Option<f64>,
    max_body: u64,
    redirect_limit: Option<usize>,
    gzip: bool,
    all_codings: bool,
    max_decoded: u64,
    user_agent: Option<String>,
    limits: Limits,
    https: Https,
    /// The HTTP proxy every request goes through, if any.
    proxy: Option<Proxy>,
}

/// How the agent opens `https` connections.
#[derive(Clone)]
enum Https {
    /// It does not (the `tls` feature is off).
    #[cfg_attr(feature = "tls", allow(dead_code))]
    None,
    /// With rustls, the policy choosing the settings for each host.
    #[cfg(feature = "tls")]
    Policy(Rc<dyn PolicyForHttps>),
    /// Through a connector of the user's.
    Connector(Rc<dyn TlsConnector>),
}

/// Makes HTTP/1.1 requests over a pool of keep-alive connections (Twisted's `Agent`).
///
/// Cheap to clone; clones share the pool and the settings. The `with_*` methods set it up:
///
/// - [`with_redirects`](Self::with_redirects): follow redirects (Twisted's `RedirectAgent`,
///   browser-like: 301, 302 and 303 become a GET, 307 and 308 keep the method and body);
/// - [`with_gzip`](Self::with_gzip): ask for and decode gzip bodies (Twisted's
///   `ContentDecoderAgent` with `GzipDecoder`);
/// - [`with_timeout`](Self::with_timeout) (the whole request, none by default),
///   [`with_connect_timeout`](Self::with_connect_timeout) (30 s),
///   [`with_head_timeout`](Self::with_head_timeout) (60 s) and
///   [`with_idle_timeout`](Self::with_idle_timeout) (60 s between body reads);
/// - [`with_max_body`](Self::with_max_body): the largest body read (100 MiB by default);
/// - [`with_pool`](Self::with_pool): share a [`HttpConnectionPool`] or use a non-persistent one;
/// - [`with_policy`](Self::with_policy): which certificates `https` servers may show (by
///   default a [`BrowserLikePolicyForHttps`](super::BrowserLikePolicyForHttps) trusting the
///   platform's roots), or [`with_tls`](Self::with_tls): a [`TlsConnector`] of your own.
///
/// Each agent made with [`new`](Self::new) has its own persistent pool; call
/// [`close_cached_connections`](Self::close_cached_connections) when done with it (tests
/// must, to leave no connection open).
#[derive(Clone)]
pub struct Agent {
    pool: HttpConnectionPool,
    config: Rc<AgentConfig>,
}

impl Default for Agent {
    fn default() -> Self {
        Agent::new()
    }
}

/// What one hop of a request needs.
#[derive(Clone)]
struct Spec {
    method: String,
    url: Url,
    headers: Headers,
    body: Option<Vec<u8>>,
    /// A streamed body (then `body` is `None`); it can be sent once only.
    producer: Option<Rc<dyn RequestBodyProducer>>,
}

type Opener = Rc<dyn Fn(HttpClientFactory) -> Connector>;

/// Methods whose requests may be sent twice (RFC 9110 section 9.2.2).
fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// A Deferred already fired with `out`.
fn from_result<T: 'static>(out: Result<T, Failure>) -> Deferred<T> {
    match out {
        Ok(v) => succeed(v),
        Err(f) => fail(f),
    }
}

impl Agent {
    /// An agent on the current thread's reactor, with its own persistent pool, no redirect
    /// following, no gzip, no overall time-out, a 30 s connect time-out (Twisted's
    /// `connectTCP` default), a 60 s response head time-out ([`DEFAULT_HEAD_TIMEOUT`]), a 60 s
    /// idle time-out between body reads ([`DEFAULT_IDLE_TIMEOUT`]) and a 100 MiB body limit.
    /// It sends `User-Agent: Torsion`, and fetches `https` URLs checking certificates as a
    /// browser does ([`BrowserLikePolicyForHttps`](super::BrowserLikePolicyForHttps) with
    /// the platform's roots) when the `tls` feature is on, as it is by default.
    pub fn new() -> Agent {
        Agent {
            pool: HttpConnectionPool::new(true),
            config: Rc::new(AgentConfig {
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                timeout: None,
                body_timeout: None,
                clock: None,
                #[cfg(feature = "cookies")]
                cookies: None,
                head_timeout: Some(DEFAULT_HEAD_TIMEOUT),
                idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
                max_body: DEFAULT_MAX_BODY,
                redirect_limit: None,
                gzip: false,
                all_codings: false,
                max_decoded: DEFAULT_MAX_DECODED,
                user_agent: Some("Torsion".to_owned()),
                limits: Limits {
                    max_head: 64 * 1024,
                    max_headers: 128,
                    ..Limits::default()
                },
                #[cfg(feature = "tls")]
                https: Https::Policy(Rc::new(super::tls::BrowserLikePolicyForHttps::new())),
                #[cfg(not(feature = "tls"))]
                https: Https::None,
                proxy: None,
            }),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut AgentConfig)) -> Agent {
        f(Rc::make_mut(&mut self.config));
        self
    }

    /// Sends every request through the HTTP `proxy` (Twisted's `ProxyAgent`): `http` URLs
    /// in absolute form over keep-alive connections to the proxy, `https` URLs through a
    /// `CONNECT` tunnel with TLS to the origin inside it, its certificate checked against the
    /// origin's name by the agent's policy as without a proxy. A proxy that refuses the
    /// tunnel fails the request with a [`TunnelError`](super::TunnelError) giving its status
    /// (407 when it wants credentials: [`Proxy::with_basic_auth`]). The connect time-out
    /// covers connecting to the proxy and its answer to `CONNECT`.
    ///
    /// An agent with a [`TlsConnector`] of your own ([`with_tls`](Self::with_tls)) cannot
    /// tunnel (the connector makes its own connection): its `https` requests fail with
    /// [`SchemeNotSupported`].
    #[doc(alias = "ProxyAgent")]
    pub fn with_proxy(self, proxy: Proxy) -> Agent {
        self.configure(|c| c.proxy = Some(proxy))
    }

    /// Uses `pool` for connections (shared with other agents, or non-persistent).
    pub fn with_pool(mut self, pool: HttpConnectionPool) -> Agent {
        self.pool = pool;
        self
    }

    /// Follows up to `limit` redirects (Twisted's `RedirectAgent`; the usual limit is
    /// [`DEFAULT_REDIRECT_LIMIT`]): 301, 302 and 303 are followed with a GET (HEAD stays
    /// HEAD) and no body, 307 and 308 with the same method and body. Relative `Location`s are
    /// resolved against the request's URL; credentials and cookies are not sent to another
    /// origin. One more redirect than `limit` fails with
    /// [`InfiniteRedirection`](super::InfiniteRedirection).
    pub fn with_redirects(self, limit: usize) -> Agent {
        self.configure(|c| c.redirect_limit = Some(limit))
    }

    /// Sends `Accept-Encoding: gzip` and decodes `Content-Encoding: gzip` bodies (Twisted's
    /// `ContentDecoderAgent`). The body limit applies to the decoded size.
    ///
    /// Stacked codings are undone last first, as Twisted does: `gzip, gzip` is decoded twice
    /// (up to four layers; more fail with [`ContentDecodingError`](super::ContentDecodingError)),
    /// and decoding stops at the first coding other than gzip, which stays in the response's
    /// `Content-Encoding` (so `br, gzip` gives the `br` bytes, labelled `br`): decoded bytes
    /// are never labelled with a coding they no longer have, nor still-encoded bytes
    /// unlabelled.
    pub fn with_gzip(self) -> Agent {
        self.configure(|c| c.gzip = true)
    }

    /// Sends `Accept-Encoding: gzip, deflate, br` and decodes all three (Twisted's
    /// `ContentDecoderAgent` with a decoder for each), stacked as [`with_gzip`](Self::with_gzip)
    /// describes. `deflate` is the zlib format RFC 9110 names. Decoding is bounded twice
    /// against decompression bombs: at most [`with_max_decoded`](Self::with_max_decoded)
    /// bytes (1 GiB by default) however the body is read, streamed ones included, and at most
    /// about [`MAX_EXPANSION`](super::MAX_EXPANSION) times the encoded bytes so far (plus
    /// 1 MiB); past either the body fails with
    /// [`ContentDecodingError`](super::ContentDecodingError).
    pub fn with_content_decoding(self) -> Agent {
        self.configure(|c| {
            c.gzip = true;
            c.all_codings = true;
        })
    }

    /// The most decoded bytes a compressed body may give, read whole or streamed (default
    /// [`DEFAULT_MAX_DECODED`], 1 GiB); see
    /// [`with_content_decoding`](Self::with_content_decoding).
    pub fn with_max_decoded(self, bytes: u64) -> Agent {
        self.configure(|c| c.max_decoded = bytes)
    }

    /// Seconds allowed to make each connection (default 30);
    /// failing fails the request with [`ResponseTimeout`](super::ResponseTimeout) naming
    /// [`TimeoutPhase::Connect`](super::TimeoutPhase::Connect).
    pub fn with_connect_timeout(self, seconds: f64) -> Agent {
        self.configure(|c| c.connect_timeout = seconds)
    }

    /// Seconds allowed for the whole request: connecting, the response head and the body,
    /// redirects included. Past it, whatever is pending (the response, or reading its body)
    /// fails with [`ResponseTimeout`](super::ResponseTimeout) naming
    /// [`TimeoutPhase::Total`](super::TimeoutPhase::Total) and the connection is closed.
    pub fn with_timeout(self, seconds: f64) -> Agent {
        self.configure(|c| c.timeout = Some(seconds))
    }

    /// Seconds allowed for the whole response body, from the end of its head (none by
    /// default; [`with_idle_timeout`](Self::with_idle_timeout) bounds the gaps in it). Past
    /// it the connection is closed and the body fails with
    /// [`ResponseTimeout`](super::ResponseTimeout) naming
    /// [`TimeoutPhase::Body`](super::TimeoutPhase::Body).
    pub fn with_body_timeout(self, seconds: Option<f64>) -> Agent {
        self.configure(|c| c.body_timeout = seconds)
    }

    /// Runs the agent's time-outs on `clock` instead of the reactor's (a test's
    /// [`Clock`](torsion::testing::Clock), say): connect, head, idle, body and whole-request.
    pub fn with_clock(self, clock: impl ReactorTime + 'static) -> Agent {
        self.configure(|c| c.clock = Some(Rc::new(clock)))
    }

    /// Sends each request (each hop of a redirect too) with `jar`'s cookies for its URL,
    /// added to any `Cookie` header of its own, and stores each response's `Set-Cookie`s in
    /// `jar` (what [`CookieAgent`](super::CookieAgent) does); `None` stops.
    #[cfg(feature = "cookies")]
    pub fn with_cookie_jar(self, jar: Option<super::cookies::CookieJar>) -> Agent {
        self.configure(|c| c.cookies = jar)
    }

    /// The clock the time-outs run on.
    fn clock(&self) -> Rc<dyn ReactorTime> {
        match &self.config.clock {
            Some(c) => c.clone(),
            None => Rc::new(self.pool.reactor().clone()),
        }
    }

    /// Seconds allowed from writing the request to the end of the response head (default
    /// [`DEFAULT_HEAD_TIMEOUT`], 60); `None` waits for ever. Past it the connection is closed
    /// and the request fails with [`ResponseTimeout`](super::ResponseTimeout) naming
    /// [`TimeoutPhase::Head`](super::TimeoutPhase::Head).
    pub fn with_head_timeout(self, seconds: Option<f64>) -> Agent {
        self.configure(|c| c.head_timeout = seconds)
    }

    /// Seconds allowed between two reads of the response body (default
    /// [`DEFAULT_IDLE_TIMEOUT`], 60): a body that keeps coming is never cut, one that stalls
    /// is. `None` waits for ever. Past it the connection is closed and the body fails with
    /// [`ResponseTimeout`](super::ResponseTimeout) naming
    /// [`TimeoutPhase::Idle`](super::TimeoutPhase::Idle).
    pub fn with_idle_timeout(self, seconds: Option<f64>) -> Agent {
        self.configure(|c| c.idle_timeout = seconds)
    }

    /// The largest response body read, in bytes (decoded bytes for gzip). A larger body fails
    /// with [`BodyTooLarge`](super::BodyTooLarge).
    pub fn with_max_body(self, bytes: u64) -> Agent {
        self.configure(|c| c.max_body = bytes)
    }

    /// The `User-Agent` sent when the request has none (default `Torsion`); `None` sends none.
    pub fn with_user_agent(self, user_agent: Option<&str>) -> Agent {
        self.configure(|c| c.user_agent = user_agent.map(str::to_owned))
    }

    /// Fetches `https` URLs through `connector`, which does the TLS itself (instead of the
    /// agent's rustls and its [`with_policy`](Self::with_policy)).
    pub fn with_tls(self, connector: impl TlsConnector + 'static) -> Agent {
        self.configure(|c| c.https = Https::Connector(Rc::new(connector)))
    }

    /// Checks `https` servers with `policy` (Twisted's `Agent(reactor, contextFactory=...)`):
    /// it gives the TLS settings for each host. The default is
    /// [`BrowserLikePolicyForHttps::new`](super::BrowserLikePolicyForHttps::new), which
    /// trusts the platform's roots; see it to trust other roots or set one host apart.
    #[cfg(feature = "tls")]
    pub fn with_policy(self, policy: impl PolicyForHttps + 'static) -> Agent {
        self.configure(|c| c.https = Https::Policy(Rc::new(policy)))
    }

    /// The agent's connection pool.
    pub fn pool(&self) -> &HttpConnectionPool {
        &self.pool
    }

    /// Closes the pool's idle connections; see
    /// [`HttpConnectionPool::close_cached_connections`].
    pub fn close_cached_connections(&self) -> Deferred<()> {
        self.pool.close_cached_connections()
    }

    /// Sends a request (Twisted's `Agent.request`). The Deferred fires with the
    /// [`Response`] once its head has arrived; read the body with [`read_body`].
    ///
    /// `Host`, `User-Agent` (unless given), `Content-Length` (for a body, and an empty POST,
    /// PUT or PATCH) and `Connection: close` (for a non-persistent pool) are added; any
    /// `Content-Length` or `Transfer-Encoding` in `headers` is replaced.
    ///
    /// Failures: [`InvalidUrl`](super::InvalidUrl), [`SchemeNotSupported`],
    /// [`InvalidRequest`](super::InvalidRequest), the connection's own
    /// ([`ConnectionRefusedError`](torsion::error::ConnectionRefusedError),
    /// [`ConnectError`](torsion::error::ConnectError), [`TimeoutError`]),
    /// [`ResponseNeverReceived`], [`ResponseFailed`](super::ResponseFailed),
    /// [`MalformedResponse`](super::MalformedResponse), and for redirects
    /// [`InfiniteRedirection`] and [`RedirectWithNoLocation`]. Cancelling the Deferred stops
    /// the request and closes its connection.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: Headers,
        body: Option<Vec<u8>>,
    ) -> Deferred<Response> {
        let url = match Url::parse(url) {
            Ok(u) => u,
            Err(e) => return fail(e),
        };
        self.send(Spec {
            method: method.to_owned(),
            url,
            headers,
            body,
            producer: None,
        })
    }

    /// Sends a request whose body `producer` streams (Twisted's `Agent.request` with a
    /// `bodyProducer`): `Content-Length` when it knows its
    /// [`length`](RequestBodyProducer::length), else `Transfer-Encoding: chunked`. The body is
    /// written as the connection drains, so memory stays bounded whatever its size (see
    /// [`FileBodyProducer`](super::FileBodyProducer)). The head time-out starts once the body
    /// is all written.
    ///
    /// Such a request is never retried (its body cannot be produced twice), and a 307 or 308
    /// redirect is not followed but given back as the response; 301 to 303 are followed with
    /// a GET as usual. A producer that fails, or writes a different length than it announced,
    /// fails the request with [`RequestGenerationFailed`](super::RequestGenerationFailed). A
    /// response that ends before the body is written stops the producer and closes the
    /// connection.
    pub fn request_streaming(
        &self,
        method: &str,
        url: &str,
        headers: Headers,
        producer: Rc<dyn RequestBodyProducer>,
    ) -> Deferred<Response> {
        let url = match Url::parse(url) {
            Ok(u) => u,
            Err(e) => return fail(e),
        };
        self.send(Spec {
            method: method.to_owned(),
            url,
            headers,
            body: None,
            producer: Some(producer),
        })
    }

    /// Sends `spec`, following redirects if the agent does.
    fn send(&self, spec: Spec) -> Deferred<Response> {
        let deadline = self.config.timeout.map(|t| self.clock().seconds() + t);
        match self.config.redirect_limit {
            None => self.request_once(&spec, deadline),
            Some(limit) => self.clone().follow(spec, deadline, 0, limit),
        }
    }

    /// A GET of `url` with no extra headers.
    pub fn get(&self, url: &str) -> Deferred<Response> {
        self.request("GET", url, Headers::new(), None)
    }

    /// Sends one hop, following redirects from its response while `hops < limit`.
    fn follow(
        self,
        spec: Spec,
        deadline: Option<f64>,
        hops: usize,
        limit: usize,
    ) -> Deferred<Response> {
        self.request_once(&spec, deadline)
            .add_callback_deferred(move |response| match next_hop(&spec, &response) {
                Ok(None) => succeed(response),
                Err(f) => fail(f),
                Ok(Some(next)) if hops >= limit => fail(InfiniteRedirection {
                    limit,
                    location: next.url.to_string(),
                }),
                Ok(Some(next)) => {
                    drop(response); // its body is read and thrown away; the connection goes back
                    self.follow(next, deadline, hops + 1, limit)
                }
            })
    }

    /// How to connect for `url`, within what is left of the deadline.
    fn opener(&self, url: &Url, deadline: Option<f64>) -> Result<Opener, Failure> {
        let reactor = self.pool.reactor().clone();
        // The agent's own timer (on its clock) bounds connecting; the reactor's is a backstop.
        let timeout = self.config.connect_timeout;
        if let Some(at) = deadline {
            if at - self.clock().seconds() <= 0.0 {
                return Err(self.total_timeout());
            }
        }
        let (host, port) = (url.host().to_owned(), url.port());
        if let Some(proxy) = &self.config.proxy {
            return self.proxy_opener(proxy, url);
        }
        match url.scheme() {
            "http" => Ok(Rc::new(move |f| {
                reactor.connect_tcp_timeout(&host, port, f, timeout)
            })),
            "https" => match &self.config.https {
                Https::Connector(tls) => {
                    let tls = tls.clone();
                    Ok(Rc::new(move |f| {
                        tls.connect_tls(&reactor, &host, port, f, timeout)
                    }))
                }
                #[cfg(feature = "tls")]
                Https::Policy(policy) => {
                    let context = policy.creator_for_netloc(&host, port)?;
                    Ok(Rc::new(move |f| {
                        reactor.connect_tls_timeout(&host, port, f, context.clone(), timeout)
                    }))
                }
                Https::None => Err(Failure::new(SchemeNotSupported {
                    scheme: "https".to_owned(),
                })),
            },
            other => Err(Failure::new(SchemeNotSupported {
                scheme: other.to_owned(),
            })),
        }
    }

    /// How to connect for `url` through `proxy`: to the proxy itself for `http`, and with a
    /// tunnel for `https`.
    fn proxy_opener(&self, proxy: &Proxy, url: &Url) -> Result<Opener, Failure> {
        let reactor = self.pool.reactor().clone();
        let timeout = self.config.connect_timeout;
        let (proxy_host, proxy_port) = (proxy.host().to_owned(), proxy.port());
        match (url.scheme(), &self.config.https) {
            ("http", _) => Ok(Rc::new(move |f| {
                reactor.connect_tcp_timeout(&proxy_host, proxy_port, f, timeout)
            })),
            #[cfg(feature = "tls")]
            ("https", Https::Policy(policy)) => {
                let (host, port) = (url.host().to_owned(), url.port());
                let context = policy
                    .creator_for_netloc(&host, port)?
                    .with_server_name(&host)
                    .map_err(Failure::new)?;
                let proxy = proxy.clone();
                Ok(Rc::new(move |f| {
                    let tunnel =
                        super::proxy::TunnelFactory::new(f, &proxy, (&host, port), context.clone());
                    reactor.connect_tcp_timeout(&proxy_host, proxy_port, tunnel, timeout)
                }))
            }
            (scheme, _) => Err(Failure::new(SchemeNotSupported {
                scheme: scheme.to_owned(),
            })),
        }
    }

    /// The whole-request time-out's failure.
    fn total_timeout(&self) -> Failure {
        Failure::new(ResponseTimeout {
            phase: TimeoutPhase::Total,
            seconds: self.config.timeout.unwrap_or(0.0),
        })
    }

    /// Bounds making a connection by the connect time-out (or what is left of the whole
    /// request's, if less), on the agent's clock: past it the attempt is stopped and fails
    /// with a [`ResponseTimeout`] naming which.
    fn bound_connect<T: 'static>(
        &self,
        connected: Deferred<T>,
        deadline: Option<f64>,
    ) -> Deferred<T> {
        let clock = self.clock();
        let connect = self.config.connect_timeout;
        let (wait, why) = match deadline.map(|at| at - clock.seconds()) {
            Some(left) if left < connect => (left.max(0.0), self.total_timeout()),
            _ => (
                connect,
                Failure::new(ResponseTimeout {
                    phase: TimeoutPhase::Connect,
                    seconds: connect,
                }),
            ),
        };
        connected
            .add_timeout(wait, &*clock)
            .add_both(move |out| match out {
                // Ours, or the reactor's own connect time-out (the same bound, in real time).
                Err(f) if f.check::<TimeoutError>() => Err(why),
                other => other,
            })
    }

    /// Sends one request without following redirects, on an idle connection if there is one;
    /// retries once on a new connection when a reused one was dead.
    fn request_once(&self, spec: &Spec, deadline: Option<f64>) -> Deferred<Response> {
        let connect = match self.opener(&spec.url, deadline) {
            Ok(c) => c,
            Err(f) => return fail(f),
        };
        let close = !self.pool.persistent() || spec.headers.has_token("connection", "close");
        let opts = EncodeOptions {
            user_agent: self.config.user_agent.as_deref(),
            gzip: self.config.gzip,
            all_codings: self.config.all_codings,
            close,
            // Tunnelled https requests go to the origin as without a proxy.
            proxy: match &self.config.proxy {
                Some(p) if spec.url.scheme() == "http" => Some(p.authorization()),
                _ => None,
            },
        };
        let payload = match (&spec.producer, &spec.body) {
            (Some(p), _) => Payload::Streamed(p.length()),
            (None, Some(b)) => Payload::Bytes(b),
            (None, None) => Payload::None,
        };
        #[cfg(feature = "cookies")]
        let with_cookies = self
            .config
            .cookies
            .as_ref()
            .and_then(|jar| jar.add_to(&spec.url.to_string(), &spec.headers));
        #[cfg(feature = "cookies")]
        let headers = with_cookies.as_ref().unwrap_or(&spec.headers);
        #[cfg(not(feature = "cookies"))]
        let headers = &spec.headers;
        let bytes = match encode_request(&spec.method, &spec.url, headers, payload, &opts) {
            Ok(b) => b,
            Err(e) => return fail(e),
        };
        let request = Rc::new(PreparedRequest {
            method: spec.method.clone(),
            url: spec.url.clone(),
            bytes,
            close,
            gzip: self.config.gzip,
            all_codings: self.config.all_codings,
            max_decoded: self.config.max_decoded,
            max_body: self.config.max_body,
            limits: self.config.limits,
            head_timeout: self.config.head_timeout,
            idle_timeout: self.config.idle_timeout,
            body_timeout: self.config.body_timeout,
            total_timeout: self.config.timeout,
            clock: self.clock(),
            producer: spec.producer.clone(),
        });
        let key = match &self.config.proxy {
            None => PoolKey {
                scheme: spec.url.scheme().to_owned(),
                host: spec.url.host().to_owned(),
                port: spec.url.port(),
            },
            // One set of connections to the proxy serves every http origin.
            Some(proxy) if spec.url.scheme() == "http" => PoolKey {
                scheme: "http-proxy".to_owned(),
                host: proxy.host().to_owned(),
                port: proxy.port(),
            },
            // A tunnel is for one origin.
            Some(proxy) => PoolKey {
                scheme: format!("{}-via-{}", spec.url.scheme(), proxy.netloc()),
                host: spec.url.host().to_owned(),
                port: spec.url.port(),
            },
        };
        let retry = self.pool.retry_automatically()
            && is_idempotent(&spec.method)
            && spec.producer.is_none();
        let pool = self.pool.clone();
        let first = connect.clone();
        let connected = self.pool.get_connection(&key, move |f| first(f));
        let sent = self
            .bound_connect(connected, deadline)
            .add_callback_deferred(move |(conn, reused)| {
                let sent = conn.send_request(request.clone(), deadline);
                if !(reused && retry) {
                    return sent;
                }
                sent.add_both(Ok::<_, Failure>)
                    .add_callback_deferred(move |out| match out {
                        Err(f) if f.check::<ResponseNeverReceived>() => pool
                            .new_connection(&key, move |f| connect(f))
                            .add_callback_deferred(move |(conn, _)| {
                                conn.send_request(request, deadline)
                            }),
                        other => from_result(other),
                    })
            });
        #[cfg(feature = "cookies")]
        if let Some(jar) = self.config.cookies.clone() {
            let url = spec.url.to_string();
            return sent.add_callback(move |response| {
                jar.extract(&url, &response.headers);
                response
            });
        }
        sent
    }
}

/// The request a redirect response asks for, if it is one.
fn next_hop(spec: &Spec, response: &Response) -> Result<Option<Spec>, Failure> {
    let code = response.code;
    let (method, body) = match code {
        301..=303 if spec.method == "HEAD" => ("HEAD".to_owned(), None),
        301..=303 => ("GET".to_owned(), None),
        // A streamed body was used up: the redirect is the response.
        307 | 308 if spec.producer.is_some() => return Ok(None),
        307 | 308 => (spec.method.clone(), spec.body.clone()),
        _ => return Ok(None),
    };
    let Some(location) = response.headers.get("location") else {
        return Err(Failure::new(RedirectWithNoLocation {
            status: code,
            url: spec.url.to_string(),
        }));
    };
    let url = spec.url.join(&String::from_utf8_lossy(location))?;
    let mut headers = spec.headers.clone();
    if body.is_none() {
        headers.remove("content-type");
    }
    if !url.same_origin(&spec.url) {
        for sensitive in [
            "authorization",
            "proxy-authorization",
            "cookie",
            "cookie2",
            "host",
        ] {
            headers.remove(sensitive);
        }
    }
    Ok(Some(Spec {
        method,
        url,
        headers,
        body,
        producer: None,
    }))
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("Agent")
            .field("pool", &self.pool)
            .field("connect_timeout", &c.connect_timeout)
            .field("timeout", &c.timeout)
            .field("head_timeout", &c.head_timeout)
            .field("idle_timeout", &c.idle_timeout)
            .field("max_body", &c.max_body)
            .field("redirect_limit", &c.redirect_limit)
            .field("gzip", &c.gzip)
            .field("user_agent", &c.user_agent)
            .field(
                "https",
                &match c.https {
                    Https::None => "no",
                    #[cfg(feature = "tls")]
                    Https::Policy(_) => "policy",
                    Https::Connector(_) => "connector",
                },
            )
            .finish()
    }
}

/// Fetches `url` and gives its body (Twisted's `getPage`): a GET that follows up to
/// [`DEFAULT_REDIRECT_LIMIT`] redirects and decodes gzip, on a connection of its own that
/// is closed afterwards. A status of 400 or more fails with [`HttpError`], which carries the
/// status and the error page. It has [`Agent::new`]'s time-outs (30 s to connect, 60 s for
/// the head, 60 s between body reads), so a server that stalls fails it rather than hanging
/// it; Twisted's `getPage` waits for ever unless given a `timeout`.
///
/// ```no_run
/// use torsion::{reactor, Failure};
/// use torsion_web::client::get_page;
///
/// get_page("http://python.org")
///     .add_callbacks(
///         |html| println!("{}", String::from_utf8_lossy(&html)),
///         |_: Failure| {
///             println!("Unable to fetch.");
///             Ok(())
///         },
///     )
///     .add_both(|_| reactor().stop());
/// reactor().run().unwrap();
/// ```
pub fn get_page(url: &str) -> Deferred<Vec<u8>> {
    let agent = Agent::new()
        .with_pool(HttpConnectionPool::new(false))
        .with_redirects(DEFAULT_REDIRECT_LIMIT)
        .with_gzip();
    agent.get(url).add_callback_deferred(|response| {
        let (code, phrase) = (response.code, response.phrase.clone());
        read_body(response).add_callback_result(move |body| {
            if code >= 400 {
                Err(HttpError::new(code, &phrase, body))
            } else {
                Ok(body)
            }
        })
    })
}
