//! The errors the client reports, named after Twisted's where Twisted has one
//! (`twisted.web._newclient` and `twisted.web.error`).
//!
//! They arrive as [`Failure`]s; test them with [`Failure::check`] or take them out with
//! [`Failure::trap`]. Failures to connect are torsion's own errors, passed on unchanged:
//! [`ConnectionRefusedError`](torsion::error::ConnectionRefusedError),
//! [`ConnectError`](torsion::error::ConnectError) and
//! [`TimeoutError`](torsion::error::TimeoutError) (which also reports the whole-request
//! time-out). The head and idle time-outs report [`ResponseTimeout`], which names the phase
//! and has that `TimeoutError` as its [`source`](StdError::source).
//!
//! ```
//! use torsion::Failure;
//! use torsion_web::client::{HttpError, ResponseNeverReceived};
//!
//! let f = Failure::new(HttpError::new(404, "Not Found", b"no such page".to_vec()));
//! assert!(!f.check::<ResponseNeverReceived>());
//! let e = f.trap::<HttpError>().unwrap();
//! assert_eq!((e.status, e.to_string().as_str()), (404, "404 Not Found"));
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::io;

use torsion::Failure;

use crate::proto::ParseError;

/// A URL the client cannot use: not absolute, no host, a bad port, and so on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidUrl {
    url: String,
    why: &'static str,
}

impl InvalidUrl {
    pub(crate) fn new(url: &str, why: &'static str) -> InvalidUrl {
        InvalidUrl {
            url: url.to_owned(),
            why,
        }
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid URL {:?}: {}", self.url, self.why)
    }
}

impl StdError for InvalidUrl {}

/// A request the client refuses to send: a method or header name that is not an HTTP token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    why: String,
}

impl InvalidRequest {
    pub(crate) fn new(why: String) -> InvalidRequest {
        InvalidRequest { why }
    }
}

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid request: {}", self.why)
    }
}

impl StdError for InvalidRequest {}

/// The URL's scheme is not one the agent can fetch (Twisted's `SchemeNotSupported`): anything
/// but `http`, and `https` while no TLS connector is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeNotSupported {
    /// The scheme, in lower case.
    pub scheme: String,
}

impl fmt::Display for SchemeNotSupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scheme == "https" {
            f.write_str(
                "Unsupported scheme: https: this agent has no TLS connector, so it cannot \
                 fetch https URLs (install one with Agent::with_tls)",
            )
        } else {
            write!(
                f,
                "Unsupported scheme: {} (the agent fetches http and https URLs)",
                self.scheme
            )
        }
    }
}

impl StdError for SchemeNotSupported {}

/// The connection ended before any byte of the response arrived (Twisted's
/// `ResponseNeverReceived`). [`reason`](Self::reason) says how it ended. Idempotent requests
/// that meet this on a reused keep-alive connection are retried once on a new one.
#[derive(Debug)]
pub struct ResponseNeverReceived {
    reason: Failure,
}

impl ResponseNeverReceived {
    pub(crate) fn new(reason: Failure) -> ResponseNeverReceived {
        ResponseNeverReceived { reason }
    }

    /// How the connection ended ([`ConnectionDone`](torsion::error::ConnectionDone) when the
    /// server closed it, [`ConnectionLost`](torsion::error::ConnectionLost) on a reset).
    pub fn reason(&self) -> &Failure {
        &self.reason
    }
}

impl fmt::Display for ResponseNeverReceived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the connection closed before any response arrived: {}",
            self.reason
        )
    }
}

impl StdError for ResponseNeverReceived {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.reason.error())
    }
}

/// The connection ended in the middle of a response (Twisted's `ResponseFailed`):
/// [`missing`](Self::missing) says what had not arrived, [`reason`](Self::reason) how the
/// connection ended.
#[derive(Debug)]
pub struct ResponseFailed {
    missing: String,
    reason: Failure,
}

impl ResponseFailed {
    pub(crate) fn new(missing: String, reason: Failure) -> ResponseFailed {
        ResponseFailed { missing, reason }
    }

    /// What was missing, such as "the rest of the response head" or "40 of 100 body bytes".
    pub fn missing(&self) -> &str {
        &self.missing
    }

    /// How the connection ended.
    pub fn reason(&self) -> &Failure {
        &self.reason
    }
}

impl fmt::Display for ResponseFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the response was cut short (missing {}): {}",
            self.missing, self.reason
        )
    }
}

impl StdError for ResponseFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.reason.error())
    }
}

/// The server's response is not valid HTTP/1.x; [`parse_error`](Self::parse_error) says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedResponse {
    error: ParseError,
}

impl MalformedResponse {
    pub(crate) fn new(error: ParseError) -> MalformedResponse {
        MalformedResponse { error }
    }

    /// The protocol layer's reason.
    pub fn parse_error(&self) -> &ParseError {
        &self.error
    }
}

impl fmt::Display for MalformedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the server sent an invalid response: {}", self.error)
    }
}

impl StdError for MalformedResponse {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.error)
    }
}

/// The response body is larger than the agent allows (see `Agent::with_max_body`); the
/// connection is closed rather than read further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTooLarge {
    /// The limit, in bytes.
    pub limit: u64,
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the response body is larger than the limit of {} bytes",
            self.limit
        )
    }
}

impl StdError for BodyTooLarge {}

/// A `Content-Encoding: gzip` body could not be decoded.
#[derive(Debug)]
pub struct ContentDecodingError {
    source: io::Error,
}

impl ContentDecodingError {
    pub(crate) fn new(source: io::Error) -> ContentDecodingError {
        ContentDecodingError { source }
    }
}

impl fmt::Display for ContentDecodingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot decode the gzip response body: {}", self.source)
    }
}

impl StdError for ContentDecodingError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// Which part of the response a [`ResponseTimeout`] was waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// The response head (status line and headers), from the moment the request was written
    /// (`Agent::with_head_timeout`).
    Head,
    /// More of the body: the time between two reads (`Agent::with_idle_timeout`).
    Idle,
}

/// The server went quiet: no complete response head within the agent's head time-out, or no
/// body bytes within its idle time-out. The connection is closed. Its
/// [`source`](StdError::source) is torsion's [`TimeoutError`](torsion::error::TimeoutError)
/// (Twisted's, which cannot say which phase it was).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResponseTimeout {
    /// What was awaited.
    pub phase: TimeoutPhase,
    /// The time-out, in seconds.
    pub seconds: f64,
}

impl fmt::Display for ResponseTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.phase {
            TimeoutPhase::Head => write!(
                f,
                "head time-out: no complete response head within {} s of sending the request",
                self.seconds
            ),
            TimeoutPhase::Idle => write!(
                f,
                "idle time-out: no response body bytes for {} s",
                self.seconds
            ),
        }
    }
}

impl StdError for ResponseTimeout {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        static TIMEOUT: torsion::error::TimeoutError = torsion::error::TimeoutError;
        Some(&TIMEOUT)
    }
}

/// Redirects went on for longer than the limit (Twisted's `InfiniteRedirection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfiniteRedirection {
    /// How many redirects were allowed.
    pub limit: usize,
    /// Where the last redirect pointed.
    pub location: String,
}

impl fmt::Display for InfiniteRedirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Infinite redirection detected: more than {} redirects, the last to {}",
            self.limit, self.location
        )
    }
}

impl StdError for InfiniteRedirection {}

/// A redirect response came without a `Location` header (Twisted's
/// `RedirectWithNoLocation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectWithNoLocation {
    /// The redirect's status code.
    pub status: u16,
    /// The URL that answered with it.
    pub url: String,
}

impl fmt::Display for RedirectWithNoLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} redirect from {} without a Location header",
            self.status, self.url
        )
    }
}

impl StdError for RedirectWithNoLocation {}

/// An HTTP error status, 400 or more, with the page that came with it (Twisted's
/// `twisted.web.error.Error`, what `getPage` fails with).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The status code.
    pub status: u16,
    /// The reason phrase the server sent.
    pub message: String,
    /// The body of the error response.
    pub response: Vec<u8>,
}

impl HttpError {
    /// An error for `status` with its reason phrase and body.
    pub fn new(status: u16, message: &str, response: Vec<u8>) -> HttpError {
        HttpError {
            status,
            message: message.to_owned(),
            response,
        }
    }
}

impl fmt::Debug for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpError")
            .field("status", &self.status)
            .field("message", &self.message)
            .field("response", &String::from_utf8_lossy(&self.response))
            .finish()
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl StdError for HttpError {}
