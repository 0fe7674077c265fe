//! The one error type of the protocol layer, each variant tied to the status it deserves.

use std::fmt;

/// Why a message could not be parsed or framed.
///
/// Every variant maps to the HTTP status a server should answer with ([`ParseError::status`]);
/// after any of them the connection cannot be trusted and should be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The bytes are not valid HTTP/1.x, or the framing is ambiguous (400). The text says what
    /// was wrong, for logs and error pages.
    Malformed(&'static str),
    /// The request-target is longer than [`Limits::max_uri`](super::Limits::max_uri) (414).
    UriTooLong,
    /// The head, or a chunked body's trailer section, is larger than allowed (431).
    HeadersTooLarge,
    /// The head has more header lines than [`Limits::max_headers`](super::Limits::max_headers)
    /// (431).
    TooManyHeaders,
    /// The message is HTTP, but not HTTP/1.0 or HTTP/1.1 (505).
    UnsupportedVersion,
    /// The body is larger than the caller allowed (413).
    BodyTooLarge,
}

impl ParseError {
    /// The HTTP status code a server should answer this error with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Malformed(_) => 400,
            ParseError::UriTooLong => 414,
            ParseError::HeadersTooLarge | ParseError::TooManyHeaders => 431,
            ParseError::UnsupportedVersion => 505,
            ParseError::BodyTooLarge => 413,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Malformed(why) => write!(f, "malformed HTTP message: {why}"),
            ParseError::UriTooLong => f.write_str("request-target too long"),
            ParseError::HeadersTooLarge => f.write_str("header section too large"),
            ParseError::TooManyHeaders => f.write_str("too many header fields"),
            ParseError::UnsupportedVersion => f.write_str("HTTP version not supported"),
            ParseError::BodyTooLarge => f.write_str("body too large"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Maps an httparse error to ours. `Version` errors need the buffer to tell "HTTP/2.0" (505)
/// from garbage (400), so they are mapped by the callers.
pub(super) fn from_httparse(e: httparse::Error) -> ParseError {
    match e {
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders,
        httparse::Error::HeaderName => ParseError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => ParseError::Malformed("invalid header value"),
        httparse::Error::NewLine => ParseError::Malformed("invalid line ending"),
        httparse::Error::Status => ParseError::Malformed("invalid status line"),
        httparse::Error::Token => ParseError::Malformed("invalid request line"),
        httparse::Error::Version => ParseError::Malformed("invalid HTTP version"),
    }
}

/// Whether `token` (possibly cut short by the end of the buffer) is an HTTP version that is
/// not 1.0 or 1.1, like `HTTP/2.0`, `HTTP/1.2` or `HTTP/3`: `"HTTP/" DIGIT ["." [DIGIT]]`.
pub(super) fn is_other_http_version(token: &[u8]) -> bool {
    match token.strip_prefix(b"HTTP/") {
        Some([major, rest @ ..]) if major.is_ascii_digit() => match rest {
            [] | [b'.'] => true,
            [b'.', minor] => minor.is_ascii_digit(),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(ParseError::Malformed("x").status(), 400);
        assert_eq!(ParseError::UriTooLong.status(), 414);
        assert_eq!(ParseError::HeadersTooLarge.status(), 431);
        assert_eq!(ParseError::TooManyHeaders.status(), 431);
        assert_eq!(ParseError::UnsupportedVersion.status(), 505);
        assert_eq!(ParseError::BodyTooLarge.status(), 413);
    }

    #[test]
    fn display_is_readable() {
        assert_eq!(
            ParseError::Malformed("bad chunk").to_string(),
            "malformed HTTP message: bad chunk"
        );
        let e: Box<dyn std::error::Error> = Box::new(ParseError::UriTooLong);
        assert_eq!(e.to_string(), "request-target too long");
    }

    #[test]
    fn other_versions() {
        for v in [
            "HTTP/2", "HTTP/2.0", "HTTP/1.2", "HTTP/3", "HTTP/0.9", "HTTP/9.",
        ] {
            assert!(is_other_http_version(v.as_bytes()), "{v}");
        }
        for v in [
            "HTTP/",
            "HTTP/x",
            "HTTP/1.x",
            "HTTP/10.0",
            "FOO/1.1",
            "",
            "http/2",
        ] {
            assert!(!is_other_http_version(v.as_bytes()), "{v}");
        }
    }
}
