//! Writing a response head: the resource's headers, the defaults it did not set, and the
//! framing the server decides.

use std::cell::RefCell;

use super::{Request, Response};
use crate::proto::{
    encode_last_chunk, http_date, push_field, push_status_line, reason_phrase, Version,
};

/// The response headers the server writes itself, or replaces.
#[derive(Clone, Copy)]
enum Known {
    Date,
    Server,
    ContentType,
    ContentLength,
    TransferEncoding,
    Connection,
}

impl Known {
    /// Which one `name` is, compared ASCII-case-insensitively (by length first: most names
    /// are none of these).
    fn of(name: &[u8]) -> Option<Known> {
        let (known, spelled) = match name.len() {
            4 => (Known::Date, "date"),
            6 => (Known::Server, "server"),
            10 => (Known::Connection, "connection"),
            12 => (Known::ContentType, "content-type"),
            14 => (Known::ContentLength, "content-length"),
            17 => (Known::TransferEncoding, "transfer-encoding"),
            _ => return None,
        };
        name.eq_ignore_ascii_case(spelled.as_bytes())
            .then_some(known)
    }
}

impl Request {
    /// Writes the response head into `r.out` and decides the framing, with room for
    /// `body_hint` bytes of body that follow at once: the resource's headers, then the
    /// defaults it did not set (`Date`, `Server`, `Content-Type`), then the framing
    /// (`Content-Length` or `Transfer-Encoding: chunked`) and `Connection`, which replace any
    /// the resource set. The defaults are written directly, not added to the header list
    /// first: no allocation beyond the output buffer.
    pub(super) fn start(&self, r: &mut Response, finishing: bool, body_hint: usize) {
        r.started = true;
        r.decide_encoding(finishing);
        let version = self.inner.head.version;
        if version == Version::Http2 {
            // The head becomes a HEADERS frame (`take_h2_head`); the body goes in DATA frames
            // as it is, ended by the stream's end, never chunked.
            let bodiless_status = matches!(r.code, 204 | 304) || (100..200).contains(&r.code);
            if bodiless_status || r.headers.contains("content-length") {
                r.length = None;
            } else if r.length.is_none() && finishing {
                r.length = Some(0);
            }
            r.h2_head = true;
            return;
        }
        let (mut has_date, mut has_server, mut has_type, mut has_length) =
            (false, false, false, false);
        for (name, _) in r.headers.iter_bytes() {
            match Known::of(name) {
                Some(Known::Date) => has_date = true,
                Some(Known::Server) => has_server = true,
                Some(Known::ContentType) => has_type = true,
                Some(Known::ContentLength) => has_length = true,
                _ => {}
            }
        }
        let bodiless_status = matches!(r.code, 204 | 304) || (100..200).contains(&r.code);
        // The Content-Length this head states, if it states one of its own.
        let mut length = None;
        if bodiless_status || has_length {
            // No length for a bodiless status (the resource's is dropped below); the
            // resource's own otherwise.
        } else if let Some(n) = r.length {
            length = Some(n);
        } else if finishing {
            length = Some(0);
        } else if version == Version::Http11 {
            r.chunked = !r.no_body;
        } else {
            // HTTP/1.0 without a length: the end of the body is the end of the connection.
            self.inner.close.set(true);
        }
        let channel = self.inner.channel.upgrade();
        let connection = if self.inner.close.get() || channel.as_ref().is_some_and(|c| c.closing())
        {
            self.inner.close.set(true);
            Some("close")
        } else if version == Version::Http10 {
            Some("keep-alive")
        } else {
            None
        };
        let server = channel.as_deref().map_or("Torsion", |c| c.server_name());
        let reason = r.reason.take();
        let reason = reason.as_deref().unwrap_or_else(|| reason_phrase(r.code));
        let mut out = std::mem::take(&mut r.out);
        // One allocation for the head and the first write (chunk framing included); 160
        // bytes cover the default fields.
        out.reserve(r.headers.wire_len() + reason.len() + server.len() + 160 + body_hint);
        push_status_line(&mut out, Version::Http11, r.code, reason);
        for (name, value) in r.headers.iter_bytes() {
            let replaced = match Known::of(name) {
                Some(Known::ContentLength) => bodiless_status,
                Some(Known::TransferEncoding) => r.chunked,
                Some(Known::Connection) => connection.is_some(),
                _ => false,
            };
            if !replaced {
                push_field(&mut out, name, value);
            }
        }
        // The fields below are the server's own: their names and the values it makes (the
        // date, a length, fixed words) hold no CR or LF, so they go in without the scan
        // `push_field` gives what a resource set (~600 user-space instructions a response,
        // callgrind). The server name is configuration, and is scanned.
        if !has_date {
            with_cached_date(|date| push_own_field(&mut out, b"Date: ", date.as_bytes()));
        }
        if !has_server {
            push_field(&mut out, "Server", server.as_bytes());
        }
        if !has_type && !bodiless_status {
            out.extend_from_slice(b"Content-Type: text/html\r\n");
        }
        if let Some(n) = length {
            push_own_field(
                &mut out,
                b"Content-Length: ",
                itoa::Buffer::new().format(n).as_bytes(),
            );
        }
        if r.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        if let Some(c) = connection {
            push_own_field(&mut out, b"Connection: ", c.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        r.out = out;
        if finishing && r.chunked {
            encode_last_chunk(&mut r.out);
        }
    }
}

impl Request {
    /// HTTP/2: the response head decided by `start`, once, as the `h2` codec sends it: the
    /// resource's headers without the connection-specific ones HTTP/2 forbids (RFC 9113
    /// 8.2.2), then the defaults it did not set. A header that is not a valid field is
    /// dropped with a debug line (HTTP/1.1 would send it as given).
    pub(crate) fn take_h2_head(&self) -> Option<http::Response<()>> {
        use http::header::{HeaderName, HeaderValue};
        let mut r = self.inner.response.borrow_mut();
        if !std::mem::take(&mut r.h2_head) {
            return None;
        }
        let mut response = http::Response::new(());
        *response.status_mut() =
            http::StatusCode::from_u16(r.code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let bodiless_status = matches!(r.code, 204 | 304) || (100..200).contains(&r.code);
        let h = response.headers_mut();
        let (mut has_date, mut has_server, mut has_type) = (false, false, false);
        for (name, value) in r.headers.iter() {
            match Known::of(name.as_bytes()) {
                Some(Known::Connection | Known::TransferEncoding) => continue,
                Some(Known::ContentLength) if bodiless_status => continue,
                Some(Known::Date) => has_date = true,
                Some(Known::Server) => has_server = true,
                Some(Known::ContentType) => has_type = true,
                _ => {}
            }
            if name.eq_ignore_ascii_case("keep-alive")
                || name.eq_ignore_ascii_case("proxy-connection")
                || name.eq_ignore_ascii_case("upgrade")
            {
                continue;
            }
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                (Ok(n), Ok(v)) => {
                    h.append(n, v);
                }
                _ => tracing::debug!(
                    target: "torsion_web",
                    "HTTP/2 response header {name:?} dropped: not a valid field"
                ),
            }
        }
        if !has_date {
            with_cached_date(|date| {
                if let Ok(v) = HeaderValue::from_str(date) {
                    h.insert(http::header::DATE, v);
                }
            });
        }
        if !has_server {
            let server = self.inner.channel.upgrade();
            let server = server.as_deref().map_or("Torsion", |c| c.server_name());
            if let Ok(v) = HeaderValue::from_str(server) {
                h.insert(http::header::SERVER, v);
            }
        }
        if !has_type && !bodiless_status {
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/html"),
            );
        }
        if let Some(n) = r.length {
            h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        Some(response)
    }
}

/// Writes `start` (a field's name, colon and space) and `value`, which the server made and so
/// holds no CR or LF, and the line's end.
#[inline]
fn push_own_field(out: &mut Vec<u8>, start: &[u8], value: &[u8]) {
    debug_assert!(!start.iter().chain(value).any(|&b| b == b'\r' || b == b'\n'));
    out.extend_from_slice(start);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Calls `f` with the `Date` header value, formatted at most once a second per thread.
fn with_cached_date<R>(f: impl FnOnce(&str) -> R) -> R {
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = http_date(now);
        }
        f(text)
    })
}
