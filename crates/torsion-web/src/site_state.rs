//! The state a [`Site`](crate::site::Site) shares with its connections and sessions: the
//! root resource, the live sessions, the configuration, the access log and the clock.
//!
//! It sits below both the channel, which serves requests from it, and the site, the public
//! handle that makes a channel per connection, so that neither of those imports the other.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use torsion::reactor::ReactorTime;

use crate::proto::Limits;
use crate::resource::Resource;
use crate::session::{Session, SessionSite};

/// A site's limits and time-outs.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Request head limits (URI 414, head size and header count 431).
    pub limits: Limits,
    /// The largest request body accepted, in bytes. Default 10 MiB (10,485,760), where nginx's
    /// `client_max_body_size` is 1 MiB and Twisted has none. A `Content-Length` over it is
    /// answered 413 from the head, before any of the body is read (and without a
    /// `100 Continue`); a chunked body is answered 413 as soon as its chunks pass it.
    pub max_body: u64,
    /// Bodies longer than this many bytes are spooled to a temporary file as they arrive
    /// instead of being kept in memory, so each upload holds at most about this much memory.
    /// Default 100,000, Twisted's threshold (`Request.gotLength`); a `Content-Length` over it
    /// goes to the file from its first byte. See
    /// [`Request::body`](crate::request::Request::body).
    pub body_spool_threshold: u64,
    /// Limits on `multipart/form-data` bodies (parts, part heads, field sizes) and the size
    /// past which an uploaded file goes to a temporary file. See [`crate::request::form`].
    pub forms: crate::request::form::FormLimits,
    /// Seconds a client may leave between two reads of a request body (nginx's
    /// `client_body_timeout`) before the connection is closed, answered 408 if nothing was
    /// sent for that request yet. Default 60; `None` waits forever.
    pub body_timeout: Option<f64>,
    /// Seconds a client has to send a request head once it started (408 after). Default 30.
    pub header_timeout: Option<f64>,
    /// Seconds an idle keep-alive connection stays open. Default 60.
    pub idle_timeout: Option<f64>,
    /// Pipelined requests in flight before reading pauses. Default 16.
    pub max_pipeline: usize,
    /// The `Server` header. Default `Torsion`.
    pub server_name: String,
    /// Seconds a session lives without a request (Twisted's `sessionTimeout`). Default 900.
    pub session_timeout: f64,
    /// HTTP/2: whether it is served (prior-knowledge h2c, and `h2` over TLS when the
    /// listener offers it by ALPN), and its limits.
    pub http2: Http2Config,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            limits: Limits::default(),
            max_body: 10 * 1024 * 1024,
            body_spool_threshold: 100_000,
            forms: crate::request::form::FormLimits::default(),
            body_timeout: Some(60.0),
            header_timeout: Some(30.0),
            idle_timeout: Some(60.0),
            max_pipeline: 16,
            server_name: "Torsion".to_owned(),
            session_timeout: 900.0,
            http2: Http2Config::default(),
        }
    }
}

type AccessLog = Box<dyn Fn(&str)>;

type FinishedHook = Box<dyn Fn()>;

/// What a [`Site`](crate::site::Site) shares with its connections and sessions.
pub(crate) struct SiteInner {
    pub(crate) root: Rc<dyn Resource>,
    pub(crate) sessions: RefCell<HashMap<String, Session>>,
    pub(crate) config: SiteConfig,
    pub(crate) access_log: RefCell<Option<AccessLog>>,
    pub(crate) request_finished: RefCell<Option<FinishedHook>>,
    clock: RefCell<Option<Rc<dyn ReactorTime>>>,
}

impl SiteInner {
    /// The state of a new site serving `root`, with no sessions, no access log, and the
    /// reactor as its clock until [`set_clock`](Self::set_clock) says otherwise.
    pub(crate) fn new(root: Rc<dyn Resource>, config: SiteConfig) -> SiteInner {
        SiteInner {
            root,
            sessions: RefCell::default(),
            config,
            access_log: RefCell::new(None),
            request_finished: RefCell::new(None),
            clock: RefCell::new(None),
        }
    }

    /// A request has finished: calls the finished hook, and writes the access-log line that
    /// `line` formats, which is called only when the site keeps an access log (formatting a
    /// line costs more than serving a small static file's headers).
    pub(crate) fn request_finished(&self, line: &dyn Fn() -> String) {
        if let Some(hook) = self.request_finished.borrow().as_ref() {
            hook();
        }
        if let Some(log) = self.access_log.borrow().as_ref() {
            log(&line());
        }
    }

    /// Times the site's connections and sessions with `clock` instead of the reactor.
    pub(crate) fn set_clock(&self, clock: Rc<dyn ReactorTime>) {
        *self.clock.borrow_mut() = Some(clock);
    }

    pub(crate) fn clock(&self) -> Rc<dyn ReactorTime> {
        self.clock
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(torsion::reactor()))
            .clone()
    }
}

impl SessionSite for SiteInner {
    fn clock(&self) -> Rc<dyn ReactorTime> {
        SiteInner::clock(self)
    }

    fn session_timeout(&self) -> f64 {
        self.config.session_timeout
    }

    fn sessions(&self) -> &RefCell<HashMap<String, Session>> {
        &self.sessions
    }
}

/// HTTP/2 settings and limits of a [`Site`](crate::site::Site)
/// ([`SiteConfig::http2`](crate::site::SiteConfig::http2)).
#[derive(Debug, Clone)]
pub struct Http2Config {
    /// Serve HTTP/2 at all (prior-knowledge h2c, and `h2` when ALPN agrees on it). Default
    /// true.
    pub enabled: bool,
    /// Streams a client may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`); more are
    /// refused with `REFUSED_STREAM`. Default 100.
    pub max_concurrent_streams: u32,
    /// The largest header list accepted (`SETTINGS_MAX_HEADER_LIST_SIZE`); a larger one is
    /// answered 431. Default 16,384, the HTTP/1.1 head limit.
    pub max_header_list_size: u32,
    /// The largest frame accepted (`SETTINGS_MAX_FRAME_SIZE`). Default 16,384, the minimum.
    pub max_frame_size: u32,
    /// Each stream's receive window: request body bytes a client may send before the
    /// resource's stream has taken them. Default 256 KiB.
    pub stream_window: u32,
    /// The connection's receive window, over all its streams. Default 1 MiB.
    pub connection_window: u32,
    /// `h2`'s cap on streams the client opens and resets before the server accepted them
    /// (its CVE-2023-44487 defence): past it, `GOAWAY` with `ENHANCE_YOUR_CALM`. Default 20.
    pub max_pending_accept_reset_streams: usize,
    /// `h2`'s cap on streams it resets because the client broke the protocol, per
    /// connection: past it, `GOAWAY` with `ENHANCE_YOUR_CALM`. Default 1024.
    pub max_local_error_reset_streams: usize,
    /// Streams the client may reset (`RST_STREAM`) per connection in
    /// [`reset_interval`](Self::reset_interval) seconds; past it, `GOAWAY` with
    /// `ENHANCE_YOUR_CALM` and a warning in the log. Default 200.
    pub max_resets: u32,
    /// The interval [`max_resets`](Self::max_resets) counts over, in seconds. Default 10.
    pub reset_interval: f64,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            enabled: true,
            max_concurrent_streams: 100,
            max_header_list_size: 16 * 1024,
            max_frame_size: 16 * 1024,
            stream_window: 256 * 1024,
            connection_window: 1024 * 1024,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            max_resets: 200,
            reset_interval: 10.0,
        }
    }
}
