//! Parsing request heads, with limits enforced before anything is buffered past them.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use super::error::{from_httparse, is_other_http_version};
use super::{Headers, Limits, ParseError, Version};

/// The head of a request: request line and header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, such as `GET`, exactly as sent (methods are case-sensitive). The standard
    /// methods are borrowed from static strings; only others are allocated.
    pub method: Cow<'static, str>,
    /// The raw request-target as sent, such as `/a%20b?x=1`, `*` or `http://host/path`.
    pub target: String,
    /// The HTTP version of the request line.
    pub version: Version,
    /// The header fields, in order.
    pub headers: Headers,
}

/// Header slots kept on the stack; a larger [`Limits::max_headers`] uses the heap.
pub(super) const STACK_HEADERS: usize = 128;

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete, and `Ok(Some((head, consumed)))` once it is
/// complete, where `consumed` counts the bytes of the head (including any empty lines skipped
/// before the request line, RFC 9112 section 2.2); the body or the next pipelined request
/// starts at `buf[consumed..]`.
///
/// Limits are checked as soon as the buffer breaks them, complete head or not, so the caller
/// never has to buffer past them: a request-target longer than `max_uri` gives
/// [`ParseError::UriTooLong`], a head longer than `max_head` gives
/// [`ParseError::HeadersTooLarge`], more than `max_headers` fields gives
/// [`ParseError::TooManyHeaders`], and a version other than HTTP/1.0 or HTTP/1.1 gives
/// [`ParseError::UnsupportedVersion`]. Line endings may be CRLF or bare LF.
///
/// ```
/// use torsion_web::proto::{parse_request_head, Limits, Version};
///
/// let limits = Limits::default();
/// assert_eq!(parse_request_head(b"GET / HT", &limits), Ok(None));
/// let (head, n) = parse_request_head(b"\r\nGET /x HTTP/1.0\r\nA: b\r\n\r\nrest", &limits)?
///     .unwrap();
/// assert_eq!((head.target.as_str(), head.version, n), ("/x", Version::Http10, 27));
/// # Ok::<(), torsion_web::proto::ParseError>(())
/// ```
pub fn parse_request_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, ParseError> {
    // Never look past the limit: a head not complete within `max_head` bytes is too large,
    // and httparse's work stays bounded however much the caller has buffered.
    let window = &buf[..buf.len().min(limits.max_head)];
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap;
    let slots = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = vec![MaybeUninit::uninit(); limits.max_headers];
        &mut heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(window, slots) {
        Ok(httparse::Status::Complete(consumed)) => {
            let target = req.path.unwrap_or_default();
            if target.len() > limits.max_uri {
                return Err(ParseError::UriTooLong);
            }
            let head = RequestHead {
                method: method_name(req.method.unwrap_or_default()),
                target: target.to_owned(),
                version: Version::from_minor(req.version)?,
                headers: Headers::from_httparse(req.headers),
            };
            Ok(Some((head, consumed)))
        }
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_uri && partial_target(window).len() > limits.max_uri {
                Err(ParseError::UriTooLong)
            } else if buf.len() > limits.max_head {
                Err(ParseError::HeadersTooLarge)
            } else {
                Ok(None)
            }
        }
        Err(httparse::Error::Version) => Err(version_error(request_line(window))),
        Err(e) => Err(from_httparse(e)),
    }
}

/// The method as a static string when it is one of RFC 9110's (or PATCH), else a copy.
fn method_name(method: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match KNOWN.iter().find(|&&m| m == method) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.to_owned()),
    }
}

/// The request line (or as much of it as has arrived), after any leading empty lines.
fn request_line(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let end = memchr::memchr2(b'\r', b'\n', line).unwrap_or(line.len());
    &line[..end]
}

/// The request-target of an incomplete request line: from after the method's space to the
/// next space, or to the end of what has arrived.
fn partial_target(buf: &[u8]) -> &[u8] {
    let line = request_line(buf);
    match memchr::memchr(b' ', line) {
        Some(sp) => {
            let rest = &line[sp + 1..];
            &rest[..memchr::memchr(b' ', rest).unwrap_or(rest.len())]
        }
        None => &[],
    }
}

/// 505 for a well-formed but unsupported version such as `HTTP/2.0`, 400 for garbage.
fn version_error(line: &[u8]) -> ParseError {
    let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or_default();
    if is_other_http_version(version) {
        ParseError::UnsupportedVersion
    } else {
        ParseError::Malformed("invalid HTTP version")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, ParseError> {
        parse_request_head(buf, &Limits::default())
    }

    fn complete(buf: &[u8]) -> (RequestHead, usize) {
        parse(buf).expect("valid").expect("complete")
    }

    #[test]
    fn simple_get() {
        let wire = b"GET /index.html?a=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
        let (h, n) = complete(wire);
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/index.html?a=1");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.headers.get_str("host"), Some("example.com"));
        assert_eq!(h.headers.len(), 2);
        assert_eq!(n, wire.len());
    }

    #[test]
    fn incomplete_heads_need_more() {
        let full = b"POST /p HTTP/1.0\r\nContent-Length: 3\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(complete(full).1, full.len());
    }

    #[test]
    fn bare_lf_is_accepted() {
        let (h, n) = complete(b"GET / HTTP/1.1\nHost: a\n\nbody");
        assert_eq!((h.headers.get_str("host"), n), (Some("a"), 24));
    }

    #[test]
    fn leading_empty_lines_are_skipped_and_counted() {
        let (h, n) = complete(b"\r\n\r\n\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!((h.target.as_str(), n), ("/", 23));
        assert_eq!(parse(b"\r\n\r\n"), Ok(None));
    }

    #[test]
    fn pipelined_requests() {
        let wire = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHo";
        let mut rest = &wire[..];
        let mut targets = Vec::new();
        while let Some((h, n)) = parse(rest).unwrap() {
            targets.push(h.target);
            rest = &rest[n..];
        }
        assert_eq!(targets, ["/1", "/2"]);
        assert_eq!(rest, b"GET /3 HTTP/1.1\r\nHo");
    }

    #[test]
    fn header_values_are_trimmed_and_kept_in_order() {
        let (h, _) = complete(b"GET / HTTP/1.1\r\nA:   x y \t\r\nB:\r\na: z\r\n\r\n");
        assert_eq!(
            h.headers.iter().collect::<Vec<_>>(),
            [("A", &b"x y"[..]), ("B", &b""[..]), ("a", &b"z"[..])]
        );
    }

    #[test]
    fn versions() {
        assert_eq!(
            complete(b"GET / HTTP/1.0\r\n\r\n").0.version,
            Version::Http10
        );
        for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/3", "HTTP/0.9"] {
            let req = format!("GET / {v}\r\n\r\n");
            assert_eq!(
                parse(req.as_bytes()),
                Err(ParseError::UnsupportedVersion),
                "{v}"
            );
        }
        // Known early, before the line is complete.
        assert_eq!(parse(b"GET / HTTP/2"), Err(ParseError::UnsupportedVersion));
        for v in ["HTTX/1.1", "http/1.1", "HTTP/1.x", "HTTP/11"] {
            let req = format!("GET / {v}\r\n\r\n");
            assert_eq!(parse(req.as_bytes()).unwrap_err().status(), 400, "{v}");
        }
    }

    #[test]
    fn malformed_heads_are_400() {
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET /\r\n\r\n", // HTTP/0.9
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nName : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: x\x00y\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: x\ry\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
            b"GET / HTTP/1.1\r\rA: x\r\n\r\n",
        ] {
            let e = parse(bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(e.status(), 400, "{:?}: {e:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn uri_limit_is_414_complete_or_not() {
        let limits = Limits {
            max_uri: 10,
            ..Limits::default()
        };
        let ok = b"GET /123456789 HTTP/1.1\r\n\r\n";
        assert!(parse_request_head(ok, &limits).unwrap().is_some());
        let long = b"GET /1234567890 HTTP/1.1\r\n\r\n";
        assert_eq!(
            parse_request_head(long, &limits),
            Err(ParseError::UriTooLong)
        );
        // Incomplete, but the target alone is already too long.
        assert_eq!(
            parse_request_head(b"GET /1234567890", &limits),
            Err(ParseError::UriTooLong)
        );
        assert_eq!(parse_request_head(b"GET /123456789", &limits), Ok(None));
    }

    #[test]
    fn default_uri_limit() {
        let mut req = b"GET /".to_vec();
        req.resize(8192 + 4, b'a');
        // Exactly 8192 bytes of target, not yet complete.
        assert_eq!(parse(&req), Ok(None));
        req.push(b'a');
        assert_eq!(parse(&req), Err(ParseError::UriTooLong));
    }

    #[test]
    fn head_limit_is_431_complete_or_not() {
        let limits = Limits {
            max_head: 40,
            ..Limits::default()
        };
        let exact = b"GET / HTTP/1.1\r\nX: 12345678901234567\r\n\r\n";
        assert_eq!(exact.len(), 40);
        assert_eq!(parse_request_head(exact, &limits).unwrap().unwrap().1, 40);
        // Complete beyond the limit.
        let over = b"GET / HTTP/1.1\r\nX: 123456789012345678\r\n\r\n";
        assert_eq!(
            parse_request_head(over, &limits),
            Err(ParseError::HeadersTooLarge)
        );
        // Incomplete at exactly the limit: wait; one byte more: refuse.
        assert_eq!(parse_request_head(&over[..40], &limits), Ok(None));
        assert_eq!(
            parse_request_head(&over[..41], &limits),
            Err(ParseError::HeadersTooLarge)
        );
        // A complete head within the limit followed by a large body is fine.
        let mut with_body = exact.to_vec();
        with_body.extend_from_slice(&[b'x'; 1000]);
        assert_eq!(
            parse_request_head(&with_body, &limits).unwrap().unwrap().1,
            40
        );
        // Empty lines before the request line count too: they cannot be sent forever.
        let crlfs = [b'\n'; 41];
        assert_eq!(
            parse_request_head(&crlfs, &limits),
            Err(ParseError::HeadersTooLarge)
        );
    }

    #[test]
    fn default_head_limit() {
        let mut req = b"GET / HTTP/1.1\r\nX: ".to_vec();
        req.resize(16384, b'a');
        assert_eq!(parse(&req), Ok(None));
        req.push(b'a');
        assert_eq!(parse(&req), Err(ParseError::HeadersTooLarge));
    }

    #[test]
    fn header_count_limit_is_431() {
        let limits = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        let three = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(
            parse_request_head(three, &limits)
                .unwrap()
                .unwrap()
                .0
                .headers
                .len(),
            3
        );
        let four = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n";
        assert_eq!(
            parse_request_head(four, &limits),
            Err(ParseError::TooManyHeaders)
        );
        assert_eq!(ParseError::TooManyHeaders.status(), 431);
    }

    #[test]
    fn default_header_count_and_heap_slots() {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            req.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        assert_eq!(complete(&req).0.headers.len(), 100);
        let mut more = req[..req.len() - 2].to_vec();
        more.extend_from_slice(b"H100: v\r\n\r\n");
        assert_eq!(parse(&more), Err(ParseError::TooManyHeaders));
        // More slots than fit on the stack.
        let big = Limits {
            max_headers: 1000,
            ..Limits::default()
        };
        assert_eq!(
            parse_request_head(&more, &big)
                .unwrap()
                .unwrap()
                .0
                .headers
                .len(),
            101
        );
        let none = Limits {
            max_headers: 0,
            ..Limits::default()
        };
        assert!(parse_request_head(b"GET / HTTP/1.1\r\n\r\n", &none)
            .unwrap()
            .is_some());
        assert_eq!(
            parse_request_head(b"GET / HTTP/1.1\r\nA: b\r\n\r\n", &none),
            Err(ParseError::TooManyHeaders)
        );
    }

    #[test]
    fn targets_are_kept_raw() {
        for target in ["*", "http://h/p?q#f", "h:443", "/a%20b/../c?x=%41&y"] {
            let req = format!("OPTIONS {target} HTTP/1.1\r\n\r\n");
            assert_eq!(complete(req.as_bytes()).0.target, target);
        }
        // UTF-8 passes through raw (httparse accepts obs-text that is valid UTF-8).
        assert_eq!(
            complete("GET /é HTTP/1.1\r\n\r\n".as_bytes()).0.target,
            "/é"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(
            request_line(b"\r\n\nGET / HTTP/1.1\r\nA: b"),
            b"GET / HTTP/1.1"
        );
        assert_eq!(partial_target(b"GET /abc"), b"/abc");
        assert_eq!(partial_target(b"GET /abc HTTP"), b"/abc");
        assert_eq!(partial_target(b"GETTING"), b"");
    }
}
