//! The response side of a [`Request`]: status, headers and cookies, then the body written
//! in pieces (or whole) and finished, in order behind earlier pipelined responses.

use torsion::defer::Deferred;
use torsion::error::ConnectionLost;
use torsion::transport::LARGE_WRITE;
use torsion::Failure;

use super::Request;
use crate::proto::{encode_chunk, encode_last_chunk, Headers};

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
    /// first write. Writes after `finish` or after the client left are dropped.
    pub fn write(&self, data: &[u8]) {
        if self.inner.lost.get() {
            return;
        }
        // A large write of the response on the wire goes to the transport as it is, after
        // what is queued (the head, perhaps), without a copy into the response's buffer.
        let mut through = None;
        {
            let mut r = self.inner.response.borrow_mut();
            if r.finished {
                return;
            }
            let transport = if data.len() >= LARGE_WRITE {
                self.transport_if_front()
            } else {
                None
            };
            if !r.started {
                let hint = if transport.is_some() { 0 } else { data.len() };
                self.start(&mut r, false, hint);
            }
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
        self.flush();
    }

    /// The transport, when this request is at the front of its channel's queue (what it
    /// writes goes out next).
    fn transport_if_front(&self) -> Option<torsion::Transport> {
        self.inner.channel.upgrade()?.front_transport(self)
    }

    /// Ends the response (Twisted's `request.finish`). Afterwards nothing more is written.
    pub fn finish(&self) {
        {
            let mut r = self.inner.response.borrow_mut();
            if r.finished {
                return;
            }
            if !r.started {
                self.start(&mut r, true, 0);
            } else if r.chunked {
                encode_last_chunk(&mut r.out);
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
}
