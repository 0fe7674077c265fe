//! # The HTTP/1.1 protocol layer: bytes in, meaning out, no I/O
//!
//! This module is the deterministic core under the web server and client, in the manner of
//! `quinn-proto` and hyper's `proto::h1`: it never touches a socket, a clock or a task. The
//! caller owns the buffers and the connection; this module only says what bytes mean and which
//! bytes to send.
//!
//! ```text
//!   bytes read ──► parse_request_head ──► RequestHead + consumed
//!                  request_body_kind  ──► Empty | Length(n) | Chunked | UntilClose
//!                  ChunkedDecoder     ──► body bytes (limits enforced)
//!   bytes to write ◄── write_response_head, encode_chunk, encode_last_chunk, http_date
//! ```
//!
//! What it does:
//!
//! - parses request and response heads with `httparse` (no copying beyond the owned
//!   [`RequestHead`]), enforcing [`Limits`] with the exact status each breach deserves
//!   ([`ParseError::status`]): 400, 413, 414, 431 or 505;
//! - decides message framing per RFC 9112 section 6, refusing the ambiguous framings that make
//!   request smuggling possible (`Transfer-Encoding` with `Content-Length`, differing lengths,
//!   codings that do not end in `chunked`);
//! - decodes and encodes the chunked transfer coding incrementally, whatever way the bytes are
//!   split;
//! - writes response heads into one buffer, replacing CR and LF in names, values and the reason
//!   phrase so user data can never split a response;
//! - formats and parses HTTP dates, percent-decodes paths and query strings, escapes HTML.
//!
//! What it leaves to the caller: reading and writing, keep-alive decisions, timeouts, and what
//! to answer.
//!
//! # Example
//!
//! ```
//! use torsion_web::proto::*;
//!
//! // Two pipelined requests arrive in one read; the second has a chunked body.
//! let wire = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
//!              POST /b?n=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
//!              5\r\nhello\r\n0\r\n\r\n";
//! let limits = Limits::default();
//!
//! let (first, used) = parse_request_head(wire, &limits)?.expect("a complete head");
//! assert_eq!((&*first.method, first.target.as_str()), ("GET", "/a"));
//! assert_eq!(request_body_kind(&first)?, BodyKind::Empty);
//!
//! let rest = &wire[used..];
//! let (second, used) = parse_request_head(rest, &limits)?.expect("a complete head");
//! assert_eq!(request_body_kind(&second)?, BodyKind::Chunked);
//!
//! let mut body = Vec::new();
//! let mut decoder = ChunkedDecoder::new(1 << 20);
//! let n = decoder.decode(&rest[used..], &mut body)?;
//! assert!(decoder.is_done());
//! assert_eq!((body.as_slice(), n), (&b"hello"[..], rest.len() - used));
//!
//! // The answer: one buffer, ready for one write.
//! let mut headers = Headers::new();
//! headers.set("Content-Type", "text/plain");
//! headers.set("Transfer-Encoding", "chunked");
//! let mut out = Vec::new();
//! write_response_head(&mut out, Version::Http11, 200, reason_phrase(200), &headers);
//! encode_chunk(&mut out, &body);
//! encode_last_chunk(&mut out);
//! assert_eq!(
//!     out,
//!     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
//!       5\r\nhello\r\n0\r\n\r\n"
//! );
//! # Ok::<(), ParseError>(())
//! ```

mod body;
mod chunked;
mod coding;
mod date;
mod error;
mod headers;
mod html;
pub mod multipart;
mod request;
mod response;
mod status;
mod url;
pub mod websocket;

pub use body::{request_body_kind, response_body_kind, BodyKind};
pub use chunked::{encode_chunk, encode_last_chunk, ChunkedDecoder};
pub use coding::{is_compressible, negotiate, Coding, Encoder, EncodingOffer};
pub use date::{http_date, parse_http_date};
pub use error::ParseError;
pub use headers::Headers;
pub use html::html_escape;
pub use request::{parse_request_head, RequestHead};
pub use response::{parse_response_head, write_response_head, ResponseHead};
pub(crate) use response::{push_field, push_status_line};
pub use status::reason_phrase;
pub use url::{parse_query, percent_decode};

/// Size limits applied while parsing a message head.
///
/// Each breach maps to its own status (see [`ParseError::status`]): a request-target longer
/// than `max_uri` is 414, a head longer than `max_head` is 431, more than `max_headers` header
/// lines is 431 too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request-target, in bytes (default 8192).
    pub max_uri: usize,
    /// Longest head, in bytes: the whole head including the request or status line, the
    /// final empty line, and any empty lines skipped before the request line (default 16384).
    pub max_head: usize,
    /// Most header lines in one head (default 100).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uri: 8192,
            max_head: 16384,
            max_headers: 100,
        }
    }
}

/// The HTTP version of a message. HTTP/1.0 and HTTP/1.1 are parsed here; HTTP/2 requests
/// come from the `h2` codec (see [`http2`](crate::http2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`: connections close after each message unless `keep-alive` is asked for.
    Http10,
    /// `HTTP/1.1`: persistent connections, chunked transfer coding.
    Http11,
    /// `HTTP/2`: a request on one stream of a multiplexed connection (RFC 9113).
    Http2,
}

impl Version {
    /// The version as it appears on the wire, such as `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2.0",
        }
    }

    /// Maps httparse's minor version (0 or 1) to a [`Version`].
    fn from_minor(minor: Option<u8>) -> Result<Version, ParseError> {
        match minor {
            Some(0) => Ok(Version::Http10),
            Some(1) => Ok(Version::Http11),
            _ => Err(ParseError::UnsupportedVersion),
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
