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
/// but `http` and `https`, and `https` in a build without the `tls` feature and no
/// [`TlsConnector`](super::TlsConnector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeNotSupported {
    /// The scheme, in lower case.
    pub scheme: String,
}

impl fmt::Display for SchemeNotSupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scheme == "https" {
            f.write_str(
                "Unsupported scheme: https: torsion-web was built without its `tls` feature, \
                 so this agent cannot fetch https URLs (turn the feature on, or install a \
                 TlsConnector with Agent::with_tls)",
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
    /// Making the connection (`Agent::with_connect_timeout`).
    Connect,
    /// The response head (status line and headers), from the moment the request was written
    /// (`Agent::with_head_timeout`).
    Head,
    /// More of the body: the time between two reads (`Agent::with_idle_timeout`).
    Idle,
    /// The whole body, from the end of the head (`Agent::with_body_timeout`).
    Body,
    /// The whole request: connecting, the head and the body, redirects included
    /// (`Agent::with_timeout`).
    Total,
}

/// A time-out of the agent ran out; [`phase`](Self::phase) names which: connecting, the
/// response head, a gap in the body, the whole body, or the whole request. The connection is
/// closed (or the attempt to make it stopped). Its
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
            TimeoutPhase::Connect => write!(
                f,
                "connect time-out: no connection within {} s",
                self.seconds
            ),
            TimeoutPhase::Body => write!(
                f,
                "body time-out: the response body did not end within {} s of its head",
                self.seconds
            ),
            TimeoutPhase::Total => write!(
                f,
                "request time-out: the request did not complete within {} s",
                self.seconds
            ),
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

/// Why TLS with a server failed: what was wrong with its certificate, or with the handshake.
#[cfg(feature = "tls")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsProblem {
    /// The certificate's validity ended before now; `not_after` is when (seconds since
    /// 1970, UTC), if the checker said.
    Expired {
        /// The end of the certificate's validity.
        not_after: Option<u64>,
    },
    /// The certificate's validity starts after now; `not_before` is when, if known.
    NotValidYet {
        /// The start of the certificate's validity.
        not_before: Option<u64>,
    },
    /// The chain does not lead to a trusted root: a self-signed certificate, or one from a
    /// CA the agent was not told to trust.
    UnknownIssuer,
    /// The certificate is for other names than the one asked for.
    NameMismatch {
        /// The name checked (the URL's host, or the policy's name for it).
        expected: String,
        /// The names the certificate is for, when the checker said.
        presented: Vec<String>,
    },
    /// The certificate was revoked.
    Revoked,
    /// Another problem with the certificate (a bad signature, an unusable key, a certificate
    /// not meant for servers), as rustls words it.
    BadCertificate(String),
    /// The handshake failed for another reason than the certificate (no version or cipher in
    /// common, an alert from the server, a peer that does not speak TLS), as rustls words it.
    Handshake(String),
}

#[cfg(feature = "tls")]
impl TlsProblem {
    /// Sorts a rustls error.
    pub(crate) fn from_rustls(e: &rustls::Error) -> TlsProblem {
        use rustls::pki_types::ServerName;
        use rustls::CertificateError as C;
        let rustls::Error::InvalidCertificate(c) = e else {
            return TlsProblem::Handshake(e.to_string());
        };
        match c {
            C::Expired => TlsProblem::Expired { not_after: None },
            C::ExpiredContext { not_after, .. } => TlsProblem::Expired {
                not_after: Some(not_after.as_secs()),
            },
            C::NotValidYet => TlsProblem::NotValidYet { not_before: None },
            C::NotValidYetContext { not_before, .. } => TlsProblem::NotValidYet {
                not_before: Some(not_before.as_secs()),
            },
            C::UnknownIssuer => TlsProblem::UnknownIssuer,
            C::NotValidForName => TlsProblem::NameMismatch {
                expected: String::new(),
                presented: Vec::new(),
            },
            C::NotValidForNameContext {
                expected,
                presented,
            } => TlsProblem::NameMismatch {
                expected: match expected {
                    ServerName::DnsName(d) => d.as_ref().to_owned(),
                    ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                    other => format!("{other:?}"),
                },
                presented: presented.iter().map(|n| presented_name(n)).collect(),
            },
            C::Revoked => TlsProblem::Revoked,
            other => {
                let e = rustls::Error::InvalidCertificate(other.clone());
                TlsProblem::BadCertificate(e.to_string())
            }
        }
    }
}

/// A name from a certificate as rustls lists it (`DnsName("example.com")`,
/// `IpAddress(127.0.0.1)`), without the wrapping.
#[cfg(feature = "tls")]
fn presented_name(listed: &str) -> String {
    for kind in ["DnsName", "IpAddress", "UniformResourceIdentifier"] {
        if let Some(inner) = listed
            .strip_prefix(kind)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
        {
            return inner.trim_matches('"').to_owned();
        }
    }
    listed.to_owned()
}

#[cfg(feature = "tls")]
impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsProblem::Expired { not_after } => {
                f.write_str("the server's certificate has expired")?;
                match not_after {
                    Some(t) => write!(f, " (it was valid until {})", utc(*t)),
                    None => Ok(()),
                }
            }
            TlsProblem::NotValidYet { not_before } => {
                f.write_str("the server's certificate is not valid yet")?;
                match not_before {
                    Some(t) => write!(f, " (it is valid from {})", utc(*t)),
                    None => Ok(()),
                }
            }
            TlsProblem::UnknownIssuer => f.write_str(
                "the server's certificate was not issued by a trusted authority (unknown \
                 issuer: self-signed, or from a CA this agent does not trust; see \
                 BrowserLikePolicyForHttps::add_roots_pem)",
            ),
            TlsProblem::NameMismatch {
                expected,
                presented,
            } => {
                f.write_str("the server's certificate is not valid for the name asked for")?;
                if !expected.is_empty() {
                    write!(f, " {expected:?}")?;
                }
                if !presented.is_empty() {
                    write!(f, " (it is for {})", presented.join(", "))?;
                }
                Ok(())
            }
            TlsProblem::Revoked => f.write_str("the server's certificate has been revoked"),
            TlsProblem::BadCertificate(why) => {
                write!(f, "the server's certificate was refused: {why}")
            }
            TlsProblem::Handshake(why) => write!(f, "the TLS handshake failed: {why}"),
        }
    }
}

/// Seconds since 1970 as a UTC date and time, `2024-01-31 23:59:59 UTC`.
#[cfg(feature = "tls")]
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// TLS with the server failed (Twisted gives `ResponseNeverReceived` wrapping OpenSSL's
/// `certificate verify failed`): [`problem`](Self::problem) says what was wrong, the message
/// names the server. Its [`source`](StdError::source) is torsion's
/// [`TlsError`](torsion::tls::TlsError), and [`reason`](Self::reason) the connection's end.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub struct TlsFailed {
    /// The server's host, as in the URL.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// What went wrong.
    pub problem: TlsProblem,
    reason: Failure,
}

#[cfg(feature = "tls")]
impl TlsFailed {
    /// A failure for `host:port` if `reason` is a TLS handshake error; else `reason` back.
    pub(crate) fn from_end(host: &str, port: u16, reason: Failure) -> Result<TlsFailed, Failure> {
        let problem = match reason.downcast_ref::<torsion::tls::TlsError>() {
            Some(torsion::tls::TlsError::Handshake(e)) => TlsProblem::from_rustls(e),
            _ => return Err(reason),
        };
        Ok(TlsFailed {
            host: host.to_owned(),
            port,
            problem,
            reason,
        })
    }

    /// How the connection ended: the [`TlsError`](torsion::tls::TlsError).
    pub fn reason(&self) -> &Failure {
        &self.reason
    }
}

#[cfg(feature = "tls")]
impl fmt::Display for TlsFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "TLS with {host}:{} failed: {}", self.port, self.problem)
    }
}

#[cfg(feature = "tls")]
impl StdError for TlsFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.reason.error())
    }
}

/// A body delivered with [`Response::deliver_body`](super::Response::deliver_body) arrived
/// whole (Twisted's `ResponseDone`): the reason its protocol's `connection_lost` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseDone;

impl fmt::Display for ResponseDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the response body was received whole")
    }
}

impl StdError for ResponseDone {}

/// A body with no announced length ended when the server closed the connection (Twisted's
/// `PotentialDataLoss`): all of it arrived, unless the connection was cut, which cannot be
/// told apart. What a [`deliver_body`](super::Response::deliver_body) protocol's
/// `connection_lost` gets for such a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PotentialDataLoss;

impl fmt::Display for PotentialDataLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the response body ended with the connection, with no length announced: it may \
             have been cut short",
        )
    }
}

impl StdError for PotentialDataLoss {}

/// Writing a streamed request body failed (Twisted's `RequestGenerationFailed`): its producer
/// failed, or wrote more or fewer bytes than the length it announced
/// ([`WrongBodyLength`]). The connection is closed. [`reason`](Self::reason) is the
/// producer's failure.
#[derive(Debug)]
pub struct RequestGenerationFailed {
    reason: Failure,
}

impl RequestGenerationFailed {
    pub(crate) fn new(reason: Failure) -> RequestGenerationFailed {
        RequestGenerationFailed { reason }
    }

    /// Why the body could not be written.
    pub fn reason(&self) -> &Failure {
        &self.reason
    }
}

impl fmt::Display for RequestGenerationFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body could not be sent: {}", self.reason)
    }
}

impl StdError for RequestGenerationFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.reason.error())
    }
}

/// A body producer wrote a different number of bytes than its
/// [`length`](super::RequestBodyProducer::length) said (Twisted's `WrongBodyLength`). It comes
/// wrapped in a [`RequestGenerationFailed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongBodyLength {
    /// The announced length.
    pub expected: u64,
    /// The bytes written (for too many, at least this many).
    pub written: u64,
}

impl fmt::Display for WrongBodyLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the body producer announced {} bytes and wrote {}",
            self.expected, self.written
        )
    }
}

impl StdError for WrongBodyLength {}
