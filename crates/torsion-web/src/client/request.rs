//! A request ready for the wire: the head and body encoded in one buffer, with what reading
//! its response needs.

use std::rc::Rc;

use torsion::reactor::ReactorTime;

use super::body::RequestBodyProducer;
use super::error::InvalidRequest;
use super::url::Url;
use crate::proto::{Headers, Limits};

/// A request ready for the wire, with what reading its response needs.
pub(crate) struct PreparedRequest {
    pub(crate) method: String,
    pub(crate) url: Url,
    /// The head and body, written in one go (again, on a retry).
    pub(crate) bytes: Vec<u8>,
    /// The request asked for the connection to close after the response.
    pub(crate) close: bool,
    /// Decode `Content-Encoding: gzip` bodies.
    pub(crate) gzip: bool,
    /// Decode `deflate` and `br` too.
    pub(crate) all_codings: bool,
    /// The most decoded bytes of a body, however it is read.
    pub(crate) max_decoded: u64,
    pub(crate) max_body: u64,
    pub(crate) limits: Limits,
    /// Seconds allowed from writing the request to the end of the response head.
    pub(crate) head_timeout: Option<f64>,
    /// Seconds allowed between two reads of the response body.
    pub(crate) idle_timeout: Option<f64>,
    /// Seconds allowed for the whole body, from the end of the head.
    pub(crate) body_timeout: Option<f64>,
    /// The agent's whole-request time-out, for its error.
    pub(crate) total_timeout: Option<f64>,
    /// The clock the time-outs run on.
    pub(crate) clock: Rc<dyn ReactorTime>,
    /// A body streamed after the head (`bytes` is then the head alone).
    pub(crate) producer: Option<Rc<dyn RequestBodyProducer>>,
}

/// The body of a request being encoded.
#[derive(Clone, Copy)]
pub(crate) enum Payload<'a> {
    /// No body.
    None,
    /// A body in memory, written with the head.
    Bytes(&'a [u8]),
    /// A body streamed after the head: its length, or `None` for chunked.
    Streamed(Option<u64>),
}

/// How a request is written, besides its method, URL, headers and body.
pub(crate) struct EncodeOptions<'a> {
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) gzip: bool,
    /// Ask for `deflate` and `br` too.
    pub(crate) all_codings: bool,
    pub(crate) close: bool,
    /// Sent to an HTTP proxy: the request line in absolute form, and the proxy's
    /// `Proxy-Authorization` value if it has one.
    pub(crate) proxy: Option<Option<&'a str>>,
}

/// `tchar` of RFC 9110 section 5.6.2.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Appends a header value with CR, LF and NUL replaced by spaces, so no value can start
/// another header or end the head.
fn push_value(out: &mut Vec<u8>, value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(value);
    for b in &mut out[start..] {
        if matches!(*b, b'\r' | b'\n' | 0) {
            *b = b' ';
        }
    }
}

/// Writes a request head and body into one buffer.
pub(crate) fn encode_request(
    method: &str,
    url: &Url,
    headers: &Headers,
    body: Payload<'_>,
    opts: &EncodeOptions<'_>,
) -> Result<Vec<u8>, InvalidRequest> {
    if !is_token(method) {
        return Err(InvalidRequest::new(format!(
            "the method {method:?} is not an HTTP token"
        )));
    }
    if let Some((name, _)) = headers.iter().find(|(n, _)| !is_token(n)) {
        return Err(InvalidRequest::new(format!(
            "the header name {name:?} is not an HTTP token"
        )));
    }
    let fields: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let body_len = match body {
        Payload::Bytes(b) => b.len(),
        Payload::None | Payload::Streamed(_) => 0,
    };
    let mut out = Vec::with_capacity(128 + url.path().len() + fields + body_len);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    if opts.proxy.is_some() {
        out.extend_from_slice(url.scheme().as_bytes());
        out.extend_from_slice(b"://");
        out.extend_from_slice(url.host_header().as_bytes());
    }
    url.write_target(&mut out);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(Some(auth)) = opts
        .proxy
        .filter(|_| !headers.contains("proxy-authorization"))
    {
        out.extend_from_slice(b"Proxy-Authorization: ");
        push_value(&mut out, auth.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !headers.contains("host") {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(url.host_header().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(agent) = opts.user_agent.filter(|_| !headers.contains("user-agent")) {
        out.extend_from_slice(b"User-Agent: ");
        push_value(&mut out, agent.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if opts.gzip && !headers.contains("accept-encoding") {
        out.extend_from_slice(match opts.all_codings {
            true => b"Accept-Encoding: gzip, deflate, br\r\n".as_slice(),
            false => b"Accept-Encoding: gzip\r\n",
        });
    }
    if opts.close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    for (name, value) in headers.iter() {
        let framing = name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || (opts.close && name.eq_ignore_ascii_case("connection"));
        if framing {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        push_value(&mut out, value);
        out.extend_from_slice(b"\r\n");
    }
    match body {
        Payload::Streamed(Some(n)) => {
            out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
        }
        Payload::Streamed(None) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Payload::Bytes(_) => {
            out.extend_from_slice(format!("Content-Length: {body_len}\r\n").as_bytes());
        }
        Payload::None if matches!(method, "POST" | "PUT" | "PATCH") => {
            out.extend_from_slice(b"Content-Length: 0\r\n");
        }
        Payload::None => {}
    }
    out.extend_from_slice(b"\r\n");
    if let Payload::Bytes(body) = body {
        out.extend_from_slice(body);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> String {
        let headers: Headers = headers.iter().copied().collect();
        let opts = EncodeOptions {
            user_agent: Some("Torsion"),
            gzip: false,
            all_codings: false,
            close: false,
            proxy: None,
        };
        let body = body.map_or(Payload::None, Payload::Bytes);
        let out = encode_request(method, &Url::parse(url).unwrap(), &headers, body, &opts);
        String::from_utf8(out.unwrap()).unwrap()
    }

    #[test]
    fn a_get_has_host_and_user_agent() {
        assert_eq!(
            encode("GET", "http://example.com:8080/a?b", &[("Accept", "*/*")], None),
            "GET /a?b HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: Torsion\r\nAccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn bodies_get_a_length_and_user_framing_is_dropped() {
        let out = encode(
            "POST",
            "http://h/",
            &[
                ("Content-Length", "99"),
                ("Transfer-Encoding", "chunked"),
                ("Host", "other"),
            ],
            Some(b"abc"),
        );
        assert_eq!(
            out,
            "POST / HTTP/1.1\r\nUser-Agent: Torsion\r\nHost: other\r\nContent-Length: 3\r\n\r\nabc"
        );
        assert!(encode("PUT", "http://h/", &[], None).contains("Content-Length: 0\r\n"));
    }

    #[test]
    fn streamed_bodies_announce_a_length_or_chunks() {
        let url = Url::parse("http://h/").unwrap();
        let opts = EncodeOptions {
            user_agent: None,
            gzip: false,
            all_codings: false,
            close: false,
            proxy: None,
        };
        let headers: Headers = [("Content-Length", "1")].into_iter().collect();
        let head = |p| String::from_utf8(encode_request("POST", &url, &headers, p, &opts).unwrap());
        assert_eq!(
            head(Payload::Streamed(Some(7))).unwrap(),
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\n"
        );
        assert_eq!(
            head(Payload::Streamed(None)).unwrap(),
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn values_cannot_split_the_head_and_bad_names_are_refused() {
        let out = encode("GET", "http://h/", &[("X-A", "1\r\nEvil: 2")], None);
        assert!(out.contains("X-A: 1  Evil: 2\r\n"), "{out}");
        let headers: Headers = [("Bad Name", "x")].into_iter().collect();
        let opts = EncodeOptions {
            user_agent: None,
            gzip: true,
            all_codings: false,
            close: true,
            proxy: None,
        };
        let url = Url::parse("http://h/").unwrap();
        assert!(encode_request("GET", &url, &headers, Payload::None, &opts).is_err());
        assert!(encode_request("G ET", &url, &Headers::new(), Payload::None, &opts).is_err());
        let out = encode_request("GET", &url, &Headers::new(), Payload::None, &opts).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("Accept-Encoding: gzip\r\nConnection: close\r\n"),
            "{out}"
        );
    }
}
