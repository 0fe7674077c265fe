//! The response side of a [`Request`]: status, headers and cookies, then the body written
//! in pieces (or whole) and finished, in order behind earlier pipelined responses.

use torsion::defer::Deferred;
use torsion::error::ConnectionLost;
use torsion::transport::LARGE_WRITE;
use torsion::Failure;

use super::Request;
use crate::proto::{
    encode_chunk, encode_last_chunk, is_compressible, Encoder, EncodingOffer, Headers,
};

/// Why [`Request::try_write`] or [`Request::try_finish`] refused: the response can take
/// nothing more (Twisted raises `RuntimeError` in these cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseClosed {
    /// [`finish`](Request::finish) was called already.
    Finished,
    /// The client went away before the response finished (see
    /// [`notify_finish`](Request::notify_finish)).
    Lost,
}

impl std::fmt::Display for ResponseClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResponseClosed::Finished => "the response was already finished",
            ResponseClosed::Lost => "the client went away before the response finished",
        })
    }
}

impl std::error::Error for ResponseClosed {}

/// The response being built.
pub(super) struct Response {
    pub(super) code: u16,
    pub(super) reason: Option<String>,
    pub(super) headers: Headers,
    pub(super) started: bool,
    pub(super) finished: bool,
    pub(super) chunked: bool,
    /// The body is not sent (HEAD, 204, 304).
    pub(super) no_body: bool,
    /// The body's length, when the whole body was given at once (a rendered body): sent as
    /// `Content-Length` unless the resource set that header itself.
    pub(super) length: Option<usize>,
    /// Output not yet handed to the connection (waiting for earlier pipelined responses).
    pub(super) out: Vec<u8>,
    pub(super) body_bytes: u64,
    /// HTTP/2: the head was decided (`start`) and waits for the stream to send it as a
    /// HEADERS frame (`take_h2_head`).
    pub(super) h2_head: bool,
    /// An encoding wrapper's offer, decided when the head goes out.
    pub(super) offer: Option<EncodingOffer>,
    /// The body's encoder, when the response is encoded.
    pub(super) encoder: Option<Encoder>,
}

impl Response {
    /// A 200 response with no headers yet; `no_body` for a HEAD request.
    pub(super) fn new(no_body: bool) -> Response {
        Response {
            code: 200,
            reason: None,
            // The resource's own headers; the defaults (Date, Server, Content-Type,
            // framing) go straight into the head, so a response that sets none
            // allocates nothing here.
            headers: Headers::new(),
            started: false,
            finished: false,
            chunked: false,
            no_body,
            length: None,
            out: Vec::new(),
            body_bytes: 0,
            h2_head: false,
            offer: None,
            encoder: None,
        }
    }
}

impl Request {
    /// Sets the status code (default 200).
    pub fn set_response_code(&self, code: u16) {
        let mut r = self.inner.response.borrow_mut();
        r.code = code;
        r.reason = None;
        if matches!(code, 204 | 304) || (100..200).contains(&code) {
            r.no_body = true;
        }
    }

    /// Sets the status code and its reason phrase.
    pub fn set_response_code_with_message(&self, code: u16, reason: &str) {
        self.set_response_code(code);
        self.inner.response.borrow_mut().reason = Some(reason.to_owned());
    }

    /// The status code so far.
    pub fn code(&self) -> u16 {
        self.inner.response.borrow().code
    }

    /// Sets a response header, replacing earlier values.
    pub fn set_header(&self, name: &str, value: impl AsRef<[u8]>) {
        self.inner.response.borrow_mut().headers.set(name, value);
    }

    /// Adds a response header, keeping earlier values (for `Set-Cookie`, say).
    pub fn add_header(&self, name: &str, value: impl AsRef<[u8]>) {
        self.inner.response.borrow_mut().headers.add(name, value);
    }

    /// A response header set so far.
    pub fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        self.inner
            .response
            .borrow()
            .headers
            .get(name)
            .map(<[u8]>::to_vec)
    }

    /// True if a response header called `name` is set.
    pub fn has_response_header(&self, name: &str) -> bool {
        self.inner.response.borrow().headers.contains(name)
    }

    /// Adds a `Set-Cookie` header. `attributes` are appended as given (`"Path=/; HttpOnly"`).
    pub fn add_cookie(&self, name: &str, value: &str, attributes: &str) {
        let mut c = format!("{name}={value}");
        if !attributes.is_empty() {
            c.push_str("; ");
            c.push_str(attributes);
        }
        self.add_header("Set-Cookie", c);
    }

    /// Redirects to `url` with 302 Found (Twisted's `redirect`); finish the request after.
    pub fn redirect(&self, url: &str) {
        self.set_response_code(302);
        self.set_header("Location", url);
    }

    /// True once the response head has been sent (or queued).
    pub fn started(&self) -> bool {
        self.inner.response.borrow().started
    }

    /// True once `finish` was called.
    pub fn finished(&self) -> bool {
        self.inner.response.borrow().finished
    }

    /// True if the connection went away before the response finished.
    pub fn lost(&self) -> bool {
        self.inner.lost.get()
    }

    /// Writes part of the body (Twisted's `request.write`). The head goes first, with the
    /// first write.
    ///
    /// After the client left, the bytes are dropped without a word, as in Twisted. After
    /// [`finish`](Self::finish) they are dropped too, with a warning in the log naming the
    /// request: Twisted raises `RuntimeError` there, a bug in the caller; use
    /// [`try_write`](Self::try_write) to get that as an error instead. See docs/design.md,
    /// "Differences from Twisted".
    pub fn write(&self, data: &[u8]) {
        if let Err(ResponseClosed::Finished) = self.try_write(data) {
            self.warn_misuse("write called after finish; the bytes are dropped");
        }
    }

    /// [`write`](Self::write), saying when the bytes were dropped: after
    /// [`finish`](Self::finish) ([`ResponseClosed::Finished`]) or once the client went
    /// away ([`ResponseClosed::Lost`]). Logs nothing.
    pub fn try_write(&self, data: &[u8]) -> Result<(), ResponseClosed> {
        if self.inner.response.borrow().finished {
            return Err(ResponseClosed::Finished);
        }
        if self.inner.lost.get() {
            return Err(ResponseClosed::Lost);
        }
        // A large write of the response on the wire goes to the transport as it is, after
        // what is queued (the head, perhaps), without a copy into the response's buffer.
        let mut through = None;
        // The encoder kept every byte of this write.
        let mut swallowed = false;
        {
            let mut r = self.inner.response.borrow_mut();
            let mut transport = if data.len() >= LARGE_WRITE {
                self.transport_if_front()
            } else {
                None
            };
            if !r.started {
                let hint = if transport.is_some() { 0 } else { data.len() };
                self.start(&mut r, false, hint);
            }
            let encoded;
            let no_body = r.no_body;
            let data = match r.encoder.as_mut() {
                Some(e) if !no_body => {
                    encoded = e.encode(data);
                    transport = None;
                    swallowed = encoded.is_empty() && !data.is_empty();
                    &encoded[..]
                }
                _ => data,
            };
            if !r.no_body && !data.is_empty() {
                r.body_bytes += data.len() as u64;
                if r.chunked {
                    let mut out = std::mem::take(&mut r.out);
                    encode_chunk(&mut out, data);
                    r.out = out;
                } else if let Some(t) = transport {
                    through = Some((t, std::mem::take(&mut r.out)));
                } else {
                    r.out.extend_from_slice(data);
                }
            }
        }
        if let Some((t, queued)) = through {
            if !queued.is_empty() {
                t.write(&queued);
            }
            t.write(data);
        }
        if swallowed {
            let producer = self.inner.producer.borrow().clone();
            if let Some(p) = producer {
                p.wrote_nothing();
            }
        }
        self.flush();
        Ok(())
    }

    /// Writes `len` bytes of `file` from `offset` as the next part of the body, without
    /// reading them here: the connection sends them with `sendfile(2)`
    /// ([`TransportImpl::write_file`](torsion::transport::TransportImpl::write_file)). The
    /// head goes first, as with [`write`](Self::write); what is written after follows the
    /// file's bytes.
    ///
    /// `Ok(false)` when this response cannot take a file and nothing of it was written: the
    /// body is encoded (gzip, br) or chunked, the request waits behind earlier pipelined
    /// responses, the connection is HTTP/2 or TLS or its transport cannot send files. Read the
    /// file and [`write`](Self::write) it then (the head may have been sent meanwhile, which
    /// changes nothing for the caller). Errors as [`try_write`](Self::try_write)'s.
    ///
    /// The file must hold the bytes until they are sent: one that shrinks meanwhile closes the
    /// connection (the client was promised them). Share the open file (`Rc`), do not copy it.
    pub fn write_file(
        &self,
        file: &std::rc::Rc<std::fs::File>,
        offset: u64,
        len: u64,
    ) -> Result<bool, ResponseClosed> {
        if self.inner.response.borrow().finished {
            return Err(ResponseClosed::Finished);
        }
        if self.inner.lost.get() {
            return Err(ResponseClosed::Lost);
        }
        if self.inner.head.version == crate::proto::Version::Http2 {
            // A stream's DATA frames carry bytes.
            return Ok(false);
        }
        let Some(t) = self.transport_if_front() else {
            return Ok(false);
        };
        let queued = {
            let mut r = self.inner.response.borrow_mut();
            if !r.started {
                self.start(&mut r, false, 0);
            }
            if r.no_body {
                // The body is not sent (HEAD): dropped, as written bytes are.
                None
            } else if r.encoder.is_some() || r.chunked {
                return Ok(false);
            } else {
                Some(std::mem::take(&mut r.out))
            }
        };
        let Some(queued) = queued else {
            self.flush();
            return Ok(true);
        };
        if !queued.is_empty() {
            t.write(&queued);
        }
        let sent = t
            .write_file(torsion::transport::FileSegment::new(
                file.clone(),
                offset,
                len,
            ))
            .is_ok();
        if sent {
            self.inner.response.borrow_mut().body_bytes += len;
        }
        self.flush();
        Ok(sent)
    }

    /// Logs a call Twisted would refuse with an exception, naming the request.
    fn warn_misuse(&self, what: &str) {
        tracing::warn!(
            target: "torsion_web",
            "{} {} from {}: {what}",
            self.method(),
            self.uri(),
            self.get_client_address()
        );
    }

    /// The transport, when this request is at the front of its channel's queue (what it
    /// writes goes out next).
    fn transport_if_front(&self) -> Option<torsion::Transport> {
        self.inner.channel.upgrade()?.front_transport(self)
    }

    /// Ends the response (Twisted's `request.finish`). Afterwards nothing more is written.
    ///
    /// A second call does nothing but log a warning (Twisted warns too). A call after the
    /// client went away logs a warning, where Twisted raises `RuntimeError` (check
    /// [`lost`](Self::lost) or [`notify_finish`](Self::notify_finish) first, or use
    /// [`try_finish`](Self::try_finish)); the request still counts as finished. See
    /// docs/design.md, "Differences from Twisted".
    pub fn finish(&self) {
        match self.try_finish() {
            Ok(()) => {}
            Err(ResponseClosed::Finished) => {
                self.warn_misuse("finish called twice; the second call does nothing")
            }
            Err(ResponseClosed::Lost) => self.warn_misuse(
                "finish called after the client went away (check lost() or notify_finish())",
            ),
        }
    }

    /// [`finish`](Self::finish), saying what went wrong instead of logging it:
    /// [`ResponseClosed::Finished`] when it was finished already (nothing is done), or
    /// [`ResponseClosed::Lost`] when the client went away first (the request is finished
    /// all the same, and nothing is sent).
    pub fn try_finish(&self) -> Result<(), ResponseClosed> {
        let lost = self.inner.lost.get();
        {
            let mut r = self.inner.response.borrow_mut();
            if r.finished {
                return Err(ResponseClosed::Finished);
            }
            if !r.started {
                self.start(&mut r, true, 0);
            } else {
                if let Some(e) = r.encoder.take() {
                    let tail = e.finish();
                    if !r.no_body && !tail.is_empty() {
                        r.body_bytes += tail.len() as u64;
                        let mut out = std::mem::take(&mut r.out);
                        if r.chunked {
                            encode_chunk(&mut out, &tail);
                        } else {
                            out.extend_from_slice(&tail);
                        }
                        r.out = out;
                    }
                }
                if r.chunked {
                    encode_last_chunk(&mut r.out);
                }
            }
            r.finished = true;
        }
        self.detach_producer();
        self.log_access();
        self.flush();
        let waiters = std::mem::take(&mut *self.inner.finish_waiters.borrow_mut());
        for t in waiters {
            let _ = t.fire(Ok(()));
        }
        if lost {
            Err(ResponseClosed::Lost)
        } else {
            Ok(())
        }
    }

    /// Ends a response whose head is out without completing its framing (no final chunk),
    /// and closes the connection after it: for failures after the head was sent.
    pub(crate) fn abort_response(&self) {
        {
            let mut r = self.inner.response.borrow_mut();
            if r.finished {
                return;
            }
            r.finished = true;
            r.encoder = None;
        }
        self.detach_producer();
        self.inner.close.set(true);
        self.flush();
        let waiters = std::mem::take(&mut *self.inner.finish_waiters.borrow_mut());
        for t in waiters {
            let _ = t.fire(Err(Failure::new(ConnectionLost::new(None))));
        }
    }

    /// A Deferred that fires when the response has finished, or fails if the client went away
    /// first (Twisted's `notifyFinish`) — long polling stops on that failure.
    pub fn notify_finish(&self) -> Deferred<()> {
        let d = Deferred::new();
        if self.finished() {
            d.callback(());
        } else if self.inner.lost.get() {
            d.errback(ConnectionLost::new(None));
        } else {
            self.inner.finish_waiters.borrow_mut().push(d.trigger());
        }
        d
    }

    /// The whole body is `n` bytes (a rendered body): the head states it unless the resource
    /// set its own `Content-Length`. No effect once the head is out.
    pub(crate) fn set_body_length(&self, n: usize) {
        let mut r = self.inner.response.borrow_mut();
        if !r.started {
            r.length = Some(n);
        }
    }

    /// Output waiting to be sent, taken.
    pub(crate) fn take_output(&self) -> Vec<u8> {
        std::mem::take(&mut self.inner.response.borrow_mut().out)
    }

    /// An encoding wrapper offers to encode this response (see `crate::encoding`); decided
    /// when the head goes out. No effect once it is out.
    pub(crate) fn offer_encoding(&self, offer: EncodingOffer) {
        let mut r = self.inner.response.borrow_mut();
        if !r.started {
            r.offer = Some(offer);
        }
    }
}

impl Response {
    /// Decides whether the body is encoded, as the head is about to go out: adds `Vary`,
    /// `Content-Encoding`, drops the length and weakens a strong `ETag` when it is. See
    /// `crate::encoding` for the rules.
    pub(super) fn decide_encoding(&mut self, finishing: bool) {
        let Some(offer) = self.offer.take() else {
            return;
        };
        let bodiless_status = matches!(self.code, 204 | 304) || (100..200).contains(&self.code);
        if bodiless_status || self.headers.contains("content-encoding") {
            return;
        }
        let compressible = self
            .headers
            .get_str("content-type")
            .is_none_or(is_compressible);
        if !compressible {
            return;
        }
        let varies = self.headers.get_all("vary").any(|v| {
            v.split(|&b| b == b',').any(|t| {
                let t = t.trim_ascii();
                t == b"*" || t.eq_ignore_ascii_case(b"accept-encoding")
            })
        });
        if !varies {
            self.headers.add("Vary", "Accept-Encoding");
        }
        let Some(coding) = offer.coding else {
            return;
        };
        if self.code == 206 {
            return;
        }
        let declared = self
            .headers
            .get_str("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let length = declared.or(self.length.map(|n| n as u64));
        match length {
            Some(n) if n < offer.min_length as u64 => return,
            // Finished before any write and no length: an empty body.
            None if finishing => return,
            _ => {}
        }
        self.headers.set("Content-Encoding", coding.token());
        self.headers.remove("content-length");
        self.length = None;
        if let Some(etag) = self.headers.get("etag") {
            if etag.starts_with(b"\"") {
                let mut weak = b"W/".to_vec();
                weak.extend_from_slice(etag);
                self.headers.set("ETag", weak);
            }
        }
        if !self.no_body {
            self.encoder = Some(Encoder::new(coding));
        }
    }
}
