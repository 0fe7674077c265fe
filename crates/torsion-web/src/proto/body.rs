//! Message framing (RFC 9112 section 6): where a body ends, decided so that no two readers of
//! the same bytes can disagree (the root of request smuggling).

use super::headers::trim_ows;
use super::{Headers, ParseError, RequestHead, ResponseHead, Version};

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (`Content-Length`; may be 0).
    Length(u64),
    /// The chunked transfer coding: decode with [`ChunkedDecoder`](super::ChunkedDecoder).
    Chunked,
    /// Everything until the peer closes the connection (responses only).
    UntilClose,
}

/// How the body of a request is delimited, per RFC 9112 section 6.
///
/// - `Transfer-Encoding` whose codings are exactly `chunked`: [`BodyKind::Chunked`]. Other
///   codings (even `gzip, chunked`) are refused: this layer cannot undo them, and a body it
///   cannot decode must not reach the application as if it were plain.
/// - `Transfer-Encoding` together with `Content-Length`, or in an HTTP/1.0 request, is refused:
///   such framings are how requests are smuggled past proxies.
/// - `Content-Length` must be digits only; repeated identical values (in several fields or as
///   a list) are accepted, differing ones refused.
/// - Neither: [`BodyKind::Empty`].
///
/// Every refusal is [`ParseError::Malformed`] (400).
///
/// ```
/// use torsion_web::proto::{parse_request_head, request_body_kind, BodyKind, Limits};
///
/// let head = |wire: &[u8]| parse_request_head(wire, &Limits::default()).unwrap().unwrap().0;
/// let post = head(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
/// assert_eq!(request_body_kind(&post), Ok(BodyKind::Length(12)));
/// let smuggle = head(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
/// assert_eq!(request_body_kind(&smuggle).unwrap_err().status(), 400);
/// ```
pub fn request_body_kind(head: &RequestHead) -> Result<BodyKind, ParseError> {
    let headers = &head.headers;
    if headers.contains("transfer-encoding") {
        if headers.contains("content-length") {
            return Err(ParseError::Malformed(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if head.version == Version::Http10 {
            return Err(ParseError::Malformed(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        let mut codings = transfer_codings(headers);
        return match (codings.next(), codings.next()) {
            (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(BodyKind::Chunked),
            (None, _) => Err(ParseError::Malformed("empty Transfer-Encoding")),
            _ => Err(ParseError::Malformed("unsupported Transfer-Encoding")),
        };
    }
    match content_length(headers)? {
        Some(n) => Ok(BodyKind::Length(n)),
        None => Ok(BodyKind::Empty),
    }
}

/// How the body of a response to a `request_method` request is delimited, per RFC 9112
/// section 6.3.
///
/// In order: a response to `HEAD`, a 1xx, 204 or 304 response, or a 2xx response to
/// `CONNECT` (after which the connection is a tunnel) has no body; then `Transfer-Encoding`
/// ending in `chunked` gives [`BodyKind::Chunked`], any other `Transfer-Encoding` gives
/// [`BodyKind::UntilClose`] (it overrides `Content-Length`); then a valid `Content-Length` gives
/// [`BodyKind::Length`] (an invalid one is [`ParseError::Malformed`]); otherwise
/// [`BodyKind::UntilClose`].
///
/// ```
/// use torsion_web::proto::{parse_response_head, response_body_kind, BodyKind, Limits};
///
/// let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n";
/// let (head, _) = parse_response_head(wire, &Limits::default()).unwrap().unwrap();
/// assert_eq!(response_body_kind("GET", &head), Ok(BodyKind::Length(42)));
/// assert_eq!(response_body_kind("HEAD", &head), Ok(BodyKind::Empty));
/// ```
pub fn response_body_kind(
    request_method: &str,
    head: &ResponseHead,
) -> Result<BodyKind, ParseError> {
    let status = head.status;
    if request_method == "HEAD"
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (request_method == "CONNECT" && (200..300).contains(&status))
    {
        return Ok(BodyKind::Empty);
    }
    if head.headers.contains("transfer-encoding") {
        return match transfer_codings(&head.headers).last() {
            Some(c) if c.eq_ignore_ascii_case(b"chunked") => Ok(BodyKind::Chunked),
            _ => Ok(BodyKind::UntilClose),
        };
    }
    match content_length(&head.headers)? {
        Some(n) => Ok(BodyKind::Length(n)),
        None => Ok(BodyKind::UntilClose),
    }
}

/// The transfer codings of every `Transfer-Encoding` field, in order, without empty list
/// elements (RFC 9110 section 5.6.1).
fn transfer_codings(headers: &Headers) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all("transfer-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|c| !c.is_empty())
}

/// The message's `Content-Length`, if it has one. Every element of every field must be
/// digits only and all must be equal.
fn content_length(headers: &Headers) -> Result<Option<u64>, ParseError> {
    let mut found = None;
    for value in headers.get_all("content-length") {
        for element in value.split(|&b| b == b',') {
            let n = parse_decimal(trim_ows(element))
                .ok_or(ParseError::Malformed("invalid Content-Length"))?;
            match found {
                Some(m) if m != n => {
                    return Err(ParseError::Malformed("conflicting Content-Length values"))
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// A non-empty run of ASCII digits that fits in a `u64`; no sign, no spaces.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{parse_request_head, parse_response_head, Limits};

    fn req(fields: &str) -> Result<BodyKind, ParseError> {
        req_v("1.1", fields)
    }

    fn req_v(version: &str, fields: &str) -> Result<BodyKind, ParseError> {
        let wire = format!("POST / HTTP/{version}\r\n{fields}\r\n");
        let (head, _) = parse_request_head(wire.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        request_body_kind(&head)
    }

    fn resp(method: &str, status: u16, fields: &str) -> Result<BodyKind, ParseError> {
        let wire = format!("HTTP/1.1 {status} X\r\n{fields}\r\n");
        let (head, _) = parse_response_head(wire.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        response_body_kind(method, &head)
    }

    fn bad(r: Result<BodyKind, ParseError>) -> bool {
        matches!(r, Err(ParseError::Malformed(_)))
    }

    #[test]
    fn request_without_framing_is_empty() {
        assert_eq!(req(""), Ok(BodyKind::Empty));
        assert_eq!(req("Host: x\r\n"), Ok(BodyKind::Empty));
    }

    #[test]
    fn request_content_length() {
        assert_eq!(req("Content-Length: 0\r\n"), Ok(BodyKind::Length(0)));
        assert_eq!(req("Content-Length: 42\r\n"), Ok(BodyKind::Length(42)));
        assert_eq!(req("content-length:    7  \r\n"), Ok(BodyKind::Length(7)));
        assert_eq!(
            req("Content-Length: 18446744073709551615\r\n"),
            Ok(BodyKind::Length(u64::MAX))
        );
        assert_eq!(
            req_v("1.0", "Content-Length: 3\r\n"),
            Ok(BodyKind::Length(3))
        );
    }

    #[test]
    fn request_content_length_must_be_digits() {
        for v in [
            "",
            "-1",
            "+1",
            "1.0",
            "0x10",
            "1 2",
            "abc",
            "١",
            "18446744073709551616",
            "5,",
            ",5",
            "5;q",
        ] {
            assert!(bad(req(&format!("Content-Length: {v}\r\n"))), "{v:?}");
        }
    }

    #[test]
    fn repeated_content_lengths() {
        assert_eq!(
            req("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Ok(BodyKind::Length(5))
        );
        assert_eq!(req("Content-Length: 5, 5\r\n"), Ok(BodyKind::Length(5)));
        assert_eq!(req("Content-Length: 5, 005\r\n"), Ok(BodyKind::Length(5)));
        assert!(bad(req("Content-Length: 5\r\nContent-Length: 6\r\n")));
        assert!(bad(req("Content-Length: 5, 6\r\n")));
        assert!(bad(req("Content-Length: 5\r\nContent-Length: x\r\n")));
    }

    #[test]
    fn request_chunked() {
        assert_eq!(req("Transfer-Encoding: chunked\r\n"), Ok(BodyKind::Chunked));
        assert_eq!(
            req("transfer-encoding:  Chunked \r\n"),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            req("Transfer-Encoding: chunked,\r\n"),
            Ok(BodyKind::Chunked)
        );
    }

    #[test]
    fn request_smuggling_framings_are_refused() {
        for fields in [
            // TE.CL and CL.TE
            "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
            "Content-Length: 0\r\nTransfer-Encoding: identity\r\n",
            // chunked not final, twice, or disguised
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: xchunked\r\n",
            "Transfer-Encoding: chunked;q=1\r\n",
            "Transfer-Encoding: \"chunked\"\r\n",
            "Transfer-Encoding: identity\r\n",
            "Transfer-Encoding: gzip\r\n",
            // codings this layer cannot undo
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            // empty
            "Transfer-Encoding:\r\n",
            "Transfer-Encoding: ,\r\n",
        ] {
            assert!(bad(req(fields)), "{fields:?}");
        }
        assert!(bad(req_v("1.0", "Transfer-Encoding: chunked\r\n")));
    }

    #[test]
    fn response_without_body() {
        assert_eq!(
            resp("HEAD", 200, "Content-Length: 10\r\n"),
            Ok(BodyKind::Empty)
        );
        assert_eq!(
            resp("HEAD", 200, "Transfer-Encoding: chunked\r\n"),
            Ok(BodyKind::Empty)
        );
        for status in [100, 101, 103, 199, 204, 304] {
            assert_eq!(
                resp("GET", status, "Content-Length: 10\r\n"),
                Ok(BodyKind::Empty)
            );
        }
        assert_eq!(
            resp("CONNECT", 200, "Content-Length: 10\r\n"),
            Ok(BodyKind::Empty)
        );
        assert_eq!(
            resp("CONNECT", 407, "Content-Length: 10\r\n"),
            Ok(BodyKind::Length(10))
        );
    }

    #[test]
    fn response_framing() {
        assert_eq!(
            resp("GET", 200, "Transfer-Encoding: chunked\r\n"),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            resp("GET", 200, "Transfer-Encoding: gzip, chunked\r\n"),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            resp("GET", 200, "Transfer-Encoding: chunked, gzip\r\n"),
            Ok(BodyKind::UntilClose)
        );
        // Transfer-Encoding overrides Content-Length.
        assert_eq!(
            resp(
                "POST",
                200,
                "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"
            ),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            resp("GET", 200, "Content-Length: 3\r\n"),
            Ok(BodyKind::Length(3))
        );
        assert_eq!(
            resp("GET", 404, "Content-Length: 0\r\n"),
            Ok(BodyKind::Length(0))
        );
        assert_eq!(resp("GET", 200, ""), Ok(BodyKind::UntilClose));
        assert!(bad(resp("GET", 200, "Content-Length: 3x\r\n")));
        assert!(bad(resp(
            "GET",
            200,
            "Content-Length: 3\r\nContent-Length: 4\r\n"
        )));
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"00012"), Some(12));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"99999999999999999999"), None);
    }
}
