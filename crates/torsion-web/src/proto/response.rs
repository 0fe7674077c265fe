//! Response heads: writing them (the server's hot path) and parsing them (the client's).

use std::mem::MaybeUninit;

use super::error::{from_httparse, is_other_http_version};
use super::request::STACK_HEADERS;
use super::{Headers, Limits, ParseError, Version};

/// The head of a response: status line and header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The HTTP version of the status line.
    pub version: Version,
    /// The status code, from 100 to 999.
    pub status: u16,
    /// The reason phrase as sent (empty if it was missing or not ASCII).
    pub reason: String,
    /// The header fields, in order.
    pub headers: Headers,
}

/// Writes a status line, the header fields and the empty line that ends the head into `out`.
///
/// Everything goes into `out` with one reservation and no allocation per field. CR and LF in
/// the reason phrase, a name or a value are replaced with spaces, so data that reached a header
/// can never start another header or a body (response splitting).
///
/// ```
/// use torsion_web::proto::{write_response_head, Headers, Version};
///
/// let mut h = Headers::new();
/// h.set("Location", "/next\r\nSet-Cookie: evil=1");
/// let mut out = Vec::new();
/// write_response_head(&mut out, Version::Http11, 302, "Found", &h);
/// assert_eq!(out, b"HTTP/1.1 302 Found\r\nLocation: /next  Set-Cookie: evil=1\r\n\r\n");
/// ```
pub fn write_response_head(
    out: &mut Vec<u8>,
    version: Version,
    status: u16,
    reason: &str,
    headers: &Headers,
) {
    out.reserve(version.as_str().len() + 7 + reason.len() + headers.wire_len() + 2);
    push_status_line(out, version, status, reason);
    for (name, value) in headers.iter() {
        push_field(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes `VERSION STATUS REASON\r\n` (CR and LF in the reason replaced).
#[inline]
pub(crate) fn push_status_line(out: &mut Vec<u8>, version: Version, status: u16, reason: &str) {
    out.extend_from_slice(version.as_str().as_bytes());
    out.push(b' ');
    push_status(out, status);
    out.push(b' ');
    push_sanitized(out, reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes one `name: value\r\n` line (CR and LF in either replaced).
#[inline]
pub(crate) fn push_field(out: &mut Vec<u8>, name: impl AsRef<[u8]>, value: &[u8]) {
    push_sanitized(out, name.as_ref());
    out.extend_from_slice(b": ");
    push_sanitized(out, value);
    out.extend_from_slice(b"\r\n");
}

/// Writes a status code in decimal, at least three digits.
fn push_status(out: &mut Vec<u8>, status: u16) {
    let mut digits = [0u8; 5];
    let mut n = status;
    let mut i = digits.len();
    while n > 0 || digits.len() - i < 3 {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[i..]);
}

/// True if `bytes` holds a CR or an LF. Header parts are short: eight bytes a step with the
/// zero-byte trick (a lane of `v ^ c` is zero where `v` has byte `c`) costs fewer
/// instructions than a byte loop (which did not vectorise) or memchr's setup (callgrind).
#[inline]
fn has_cr_or_lf(bytes: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI != 0;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        if has_zero(v ^ (LO * u64::from(b'\r'))) || has_zero(v ^ (LO * u64::from(b'\n'))) {
            return true;
        }
    }
    words.remainder().iter().any(|&b| b == b'\r' || b == b'\n')
}

/// Appends `bytes`, with every CR and LF replaced by a space.
#[inline]
fn push_sanitized(out: &mut Vec<u8>, bytes: &[u8]) {
    if !has_cr_or_lf(bytes) {
        out.extend_from_slice(bytes);
    } else {
        out.extend(
            bytes
                .iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    }
}

/// Parses a response head from the start of `buf`, as a client reads it.
///
/// Returns `Ok(None)` while the head is incomplete and `Ok(Some((head, consumed)))` once it is
/// complete. Interim (1xx) responses are returned like any other: the caller decides whether to
/// read another head after them. `max_head` and `max_headers` of `limits` apply as for
/// requests; a status below 100 is malformed.
///
/// ```
/// use torsion_web::proto::{parse_response_head, Limits};
///
/// let (head, n) = parse_response_head(b"HTTP/1.1 404 Not Found\r\n\r\n", &Limits::default())?
///     .unwrap();
/// assert_eq!((head.status, head.reason.as_str(), n), (404, "Not Found", 26));
/// # Ok::<(), torsion_web::proto::ParseError>(())
/// ```
pub fn parse_response_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(ResponseHead, usize)>, ParseError> {
    let window = &buf[..buf.len().min(limits.max_head)];
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap;
    let slots = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = vec![MaybeUninit::uninit(); limits.max_headers];
        &mut heap[..]
    };
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, window, slots)
    {
        Ok(httparse::Status::Complete(consumed)) => {
            let status = resp.code.unwrap_or_default();
            if status < 100 {
                return Err(ParseError::Malformed("invalid status code"));
            }
            let head = ResponseHead {
                version: Version::from_minor(resp.version)?,
                status,
                reason: resp.reason.unwrap_or_default().to_owned(),
                headers: Headers::from_httparse(resp.headers),
            };
            Ok(Some((head, consumed)))
        }
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => {
            Err(ParseError::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::Version) => {
            let start = window
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(window.len());
            let line = &window[start..];
            let end = memchr::memchr3(b' ', b'\r', b'\n', line).unwrap_or(line.len());
            if is_other_http_version(&line[..end]) {
                Err(ParseError::UnsupportedVersion)
            } else {
                Err(ParseError::Malformed("invalid HTTP version"))
            }
        }
        Err(e) => Err(from_httparse(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cr_and_lf_are_found_at_every_position_and_nothing_else_is() {
        // Bytes next to CR (0x0d) and LF (0x0a), and with the high bit set, must not match.
        let fillers = [b'a', 0x00, 0x09, 0x0b, 0x0c, 0x0e, 0x8a, 0x8d, 0xff, 0x01];
        for len in 0..40 {
            for &fill in &fillers {
                let clean = vec![fill; len];
                assert!(!has_cr_or_lf(&clean), "false match: {clean:?}");
                for pos in 0..len {
                    for bad in [b'\r', b'\n'] {
                        let mut v = clean.clone();
                        v[pos] = bad;
                        assert!(has_cr_or_lf(&v), "missed {bad} at {pos} of {len}");
                    }
                }
            }
        }
    }

    fn head_bytes(version: Version, status: u16, reason: &str, headers: &Headers) -> Vec<u8> {
        let mut out = Vec::new();
        write_response_head(&mut out, version, status, reason, headers);
        out
    }

    #[test]
    fn writes_status_line_headers_and_end() {
        let mut h = Headers::new();
        h.add("Content-Length", "5");
        h.add("set-cookie", "a=1");
        h.add("Set-Cookie", "b=2");
        assert_eq!(
            head_bytes(Version::Http11, 200, "OK", &h),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
        );
        assert_eq!(
            head_bytes(Version::Http10, 404, "Not Found", &Headers::new()),
            b"HTTP/1.0 404 Not Found\r\n\r\n"
        );
    }

    #[test]
    fn appends_without_touching_what_is_there() {
        let mut out = b"previous".to_vec();
        write_response_head(
            &mut out,
            Version::Http11,
            204,
            "No Content",
            &Headers::new(),
        );
        assert_eq!(out, b"previousHTTP/1.1 204 No Content\r\n\r\n");
    }

    #[test]
    fn status_codes_are_three_digits() {
        let h = Headers::new();
        assert!(head_bytes(Version::Http11, 7, "", &h).starts_with(b"HTTP/1.1 007 \r\n"));
        assert!(head_bytes(Version::Http11, 0, "", &h).starts_with(b"HTTP/1.1 000 \r\n"));
        assert!(head_bytes(Version::Http11, 599, "x", &h).starts_with(b"HTTP/1.1 599 x\r\n"));
        assert!(head_bytes(Version::Http11, 65535, "", &h).starts_with(b"HTTP/1.1 65535 \r\n"));
    }

    #[test]
    fn cr_and_lf_never_reach_the_wire() {
        let mut h = Headers::new();
        h.add("X-Evil\r\nInjected", "a\r\nSet-Cookie: x=1\n\rb");
        let out = head_bytes(Version::Http11, 200, "OK\r\nX: y", &h);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK  X: y\r\nX-Evil  Injected: a  Set-Cookie: x=1  b\r\n\r\n"
        );
        // With a clean name, what a client reads back is one field and one head.
        let mut h = Headers::new();
        h.add("Location", "/x\r\n\r\n<html>");
        let out = head_bytes(Version::Http11, 302, "Found", &h);
        let (back, n) = parse_response_head(&out, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(n, out.len());
        assert_eq!(back.headers.get("location"), Some(&b"/x    <html>"[..]));
    }

    #[test]
    fn written_heads_parse_back() {
        let mut h = Headers::new();
        h.add("Server", "torsion");
        h.add("Content-Type", "text/html; charset=utf-8");
        let out = head_bytes(Version::Http11, 201, "Created", &h);
        let (back, n) = parse_response_head(&out, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(n, out.len());
        assert_eq!(
            back,
            ResponseHead {
                version: Version::Http11,
                status: 201,
                reason: "Created".into(),
                headers: h
            }
        );
    }

    #[test]
    fn parses_interim_and_reasonless_responses() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200\r\nA: b\r\n\r\nbody";
        let limits = Limits::default();
        let (first, n) = parse_response_head(wire, &limits).unwrap().unwrap();
        assert_eq!((first.status, first.reason.as_str()), (100, "Continue"));
        let (second, m) = parse_response_head(&wire[n..], &limits).unwrap().unwrap();
        assert_eq!((second.status, second.reason.as_str()), (200, ""));
        assert_eq!(&wire[n + m..], b"body");
    }

    #[test]
    fn response_errors_and_limits() {
        let limits = Limits::default();
        for cut in 0..19 {
            assert_eq!(
                parse_response_head(&b"HTTP/1.0 200 OK\r\n\r\n"[..cut], &limits),
                Ok(None)
            );
        }
        assert_eq!(
            parse_response_head(b"HTTP/2.0 200 OK\r\n\r\n", &limits),
            Err(ParseError::UnsupportedVersion)
        );
        assert_eq!(
            parse_response_head(b"HTTQ/1.1 200 OK\r\n\r\n", &limits)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            parse_response_head(b"HTTP/1.1 099 Low\r\n\r\n", &limits),
            Err(ParseError::Malformed("invalid status code"))
        );
        assert_eq!(
            parse_response_head(b"HTTP/1.1 2x0 OK\r\n\r\n", &limits)
                .unwrap_err()
                .status(),
            400
        );
        let small = Limits {
            max_head: 20,
            max_headers: 1,
            ..Limits::default()
        };
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nA: 1234", &small),
            Err(ParseError::HeadersTooLarge)
        );
        assert_eq!(
            parse_response_head(
                b"HTTP/1.1 200 OK\r\nA:\r\nB:\r\n\r\n",
                &Limits {
                    max_headers: 1,
                    ..limits
                }
            ),
            Err(ParseError::TooManyHeaders)
        );
    }
}
