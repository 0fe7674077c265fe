//! [`Request`]: one HTTP request and its response (Twisted's `twisted.web.server.Request`).
//!
//! A `Request` is a cheap handle: resources that answer later ([`Render::NotDoneYet`]) keep a
//! clone, [`write`](Request::write) the body in pieces and [`finish`](Request::finish) it. The
//! response head goes out with the first write: with a `Content-Length` if the resource set
//! one, else chunked (HTTP/1.1) or ended by closing the connection (HTTP/1.0). Responses to
//! pipelined requests are sent in order: a later request's output waits in its own buffer.
//!
//! [`Render::NotDoneYet`]: crate::resource::Render::NotDoneYet

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::rc::{Rc, Weak};

use torsion::defer::{Deferred, Trigger};
use torsion::error::{ConnectionDone, ConnectionLost};
use torsion::producer::{Producer, ProducerError};
use torsion::transport::{Address, LARGE_WRITE};
use torsion::Failure;

use crate::body_producer::BodyProducer;
use crate::channel::ChannelShared;
use crate::proto::{
    encode_chunk, encode_last_chunk, http_date, parse_query, percent_decode, push_field,
    push_status_line, reason_phrase, Headers, RequestHead, Version,
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
    fn of(name: &str) -> Option<Known> {
        let (known, spelled) = match name.len() {
            4 => (Known::Date, "date"),
            6 => (Known::Server, "server"),
            10 => (Known::Connection, "connection"),
            12 => (Known::ContentType, "content-type"),
            14 => (Known::ContentLength, "content-length"),
            17 => (Known::TransferEncoding, "transfer-encoding"),
            _ => return None,
        };
        name.eq_ignore_ascii_case(spelled).then_some(known)
    }
}

/// The response being built.
struct Response {
    code: u16,
    reason: Option<String>,
    headers: Headers,
    started: bool,
    finished: bool,
    chunked: bool,
    /// The body is not sent (HEAD, 204, 304).
    no_body: bool,
    /// The body's length, when the whole body was given at once (a rendered body): sent as
    /// `Content-Length` unless the resource set that header itself.
    length: Option<usize>,
    /// Output not yet handed to the connection (waiting for earlier pipelined responses).
    out: Vec<u8>,
    body_bytes: u64,
}

pub(crate) struct Inner {
    head: RequestHead,
    /// Where the path sits in the request-target (`None`: an absolute-form target with no
    /// path, which means `/`).
    path: Option<Range<usize>>,
    /// Where the query sits in the request-target (empty when there is none).
    query: Range<usize>,
    prepath: RefCell<Vec<Vec<u8>>>,
    /// The segments not walked yet; split from the path on first use, so a request answered
    /// by a leaf at the root never splits it.
    postpath: RefCell<Option<VecDeque<Vec<u8>>>>,
    body: RefCell<Vec<u8>>,
    args: RefCell<Vec<(Vec<u8>, Vec<u8>)>>,
    client: Address,
    host: Address,
    response: RefCell<Response>,
    channel: Weak<ChannelShared>,
    /// The connection went away before the response finished.
    lost: Cell<bool>,
    finish_waiters: RefCell<Vec<Trigger<()>>>,
    /// The client asked to close the connection after this response.
    close: Cell<bool>,
    session: RefCell<Option<crate::session::Session>>,
    /// The producer of the response body, if one is registered.
    producer: RefCell<Option<Rc<BodyProducer>>>,
}

/// An HTTP request and its response. Cheap to clone; every clone is the same request.
#[derive(Clone)]
pub struct Request {
    pub(crate) inner: Rc<Inner>,
}

impl Request {
    pub(crate) fn new(
        head: RequestHead,
        client: Address,
        host: Address,
        channel: Weak<ChannelShared>,
    ) -> Request {
        let target = head.target.as_bytes();
        let (path_end, query) = match memchr::memchr(b'?', target) {
            Some(i) => (i, i + 1..target.len()),
            None => (target.len(), target.len()..target.len()),
        };
        // Absolute-form targets (proxies): keep only the path.
        let path = match memchr::memmem::find(&target[..path_end], b"://") {
            Some(i) => memchr::memchr(b'/', &target[i + 3..path_end]).map(|j| i + 3 + j..path_end),
            None => Some(0..path_end),
        };
        let args = parse_query(&target[query.clone()]);
        let close = match head.version {
            Version::Http10 => !head.headers.has_token("connection", "keep-alive"),
            Version::Http11 => head.headers.has_token("connection", "close"),
        };
        let no_body = head.method == "HEAD";
        Request {
            inner: Rc::new(Inner {
                head,
                path,
                query,
                prepath: RefCell::default(),
                postpath: RefCell::new(None),
                body: RefCell::default(),
                args: RefCell::new(args),
                client,
                host,
                response: RefCell::new(Response {
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
                }),
                channel,
                lost: Cell::new(false),
                finish_waiters: RefCell::default(),
                close: Cell::new(close),
                session: RefCell::new(None),
                producer: RefCell::new(None),
            }),
        }
    }

    // ---- the request ----

    /// The method (`GET`, `POST`, ...).
    pub fn method(&self) -> &str {
        &self.inner.head.method
    }

    /// The request target as sent (`/a/b?x=1`).
    pub fn uri(&self) -> &str {
        &self.inner.head.target
    }

    /// The path part of the URI, still percent-encoded.
    pub fn path(&self) -> &[u8] {
        match &self.inner.path {
            Some(range) => &self.inner.head.target.as_bytes()[range.clone()],
            None => b"/",
        }
    }

    /// The query string (after `?`), still encoded.
    pub fn query(&self) -> &[u8] {
        &self.inner.head.target.as_bytes()[self.inner.query.clone()]
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.inner.head.version
    }

    /// The request headers.
    pub fn headers(&self) -> &Headers {
        &self.inner.head.headers
    }

    /// A request header as text.
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.inner.head.headers.get_str(name)
    }

    /// The path segments already walked to reach the resource (Twisted's `prepath`).
    pub fn prepath(&self) -> Vec<Vec<u8>> {
        self.inner.prepath.borrow().clone()
    }

    /// The path segments below the resource (Twisted's `postpath`), percent-decoded.
    pub fn postpath(&self) -> Vec<Vec<u8>> {
        self.postpath_mut().iter().cloned().collect()
    }

    /// The segments not walked yet, split from the path (and percent-decoded) on first use.
    fn postpath_mut(&self) -> RefMut<'_, VecDeque<Vec<u8>>> {
        RefMut::map(self.inner.postpath.borrow_mut(), |p| {
            p.get_or_insert_with(|| {
                let path = self.path();
                path.strip_prefix(b"/")
                    .unwrap_or(path)
                    .split(|&b| b == b'/')
                    .map(percent_decode)
                    .collect()
            })
        })
    }

    /// Moves the next segment from postpath to prepath.
    pub(crate) fn advance_path(&self) -> Option<Vec<u8>> {
        let name = self.postpath_mut().pop_front()?;
        self.inner.prepath.borrow_mut().push(name.clone());
        Some(name)
    }

    /// Moves the last walked segment back from prepath to postpath.
    pub(crate) fn unadvance_path(&self) {
        if let Some(name) = self.inner.prepath.borrow_mut().pop() {
            self.postpath_mut().push_front(name);
        }
    }

    /// The request body.
    pub fn content(&self) -> Ref<'_, [u8]> {
        Ref::map(self.inner.body.borrow(), |b| b.as_slice())
    }

    pub(crate) fn set_body(&self, body: Vec<u8>) {
        let form = self
            .get_header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if form {
            self.inner.args.borrow_mut().extend(parse_query(&body));
        }
        *self.inner.body.borrow_mut() = body;
    }

    /// All arguments (query string and url-encoded form body), decoded, in order (Twisted's
    /// `request.args`).
    pub fn args(&self) -> Ref<'_, Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.args.borrow()
    }

    /// The first value of argument `name`, as text (invalid UTF-8 replaced).
    pub fn arg(&self, name: &str) -> Option<String> {
        self.inner
            .args
            .borrow()
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// A cookie the client sent.
    pub fn get_cookie(&self, name: &str) -> Option<String> {
        self.inner.head.headers.get_all("cookie").find_map(|h| {
            let h = std::str::from_utf8(h).ok()?;
            h.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_owned())
            })
        })
    }

    /// The session named by the request's session cookie, or a new one (setting the cookie)
    /// — Twisted's `request.getSession()`. Each call notes activity on the session.
    ///
    /// # Panics
    /// If the request's connection is already gone (a session needs its site).
    pub fn get_session(&self) -> crate::session::Session {
        use crate::session::{Session, SESSION_COOKIE};
        if let Some(s) = self.inner.session.borrow().as_ref() {
            return s.clone();
        }
        let channel = self
            .inner_channel()
            .expect("get_session on a request whose connection is gone");
        let site = channel.site().clone();
        let found = self
            .get_cookie(SESSION_COOKIE)
            .and_then(|uid| site.sessions.borrow().get(&uid).cloned());
        let session = match found {
            Some(s) => {
                s.touch();
                s
            }
            None => {
                let s = Session::start(&site);
                site.sessions
                    .borrow_mut()
                    .insert(s.uid().to_owned(), s.clone());
                self.add_cookie(SESSION_COOKIE, s.uid(), "Path=/; HttpOnly; SameSite=Lax");
                s
            }
        };
        *self.inner.session.borrow_mut() = Some(session.clone());
        session
    }

    /// The client's address.
    pub fn get_client_address(&self) -> &Address {
        &self.inner.client
    }

    /// The server's address for this connection.
    pub fn get_host(&self) -> &Address {
        &self.inner.host
    }

    // ---- the response ----

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

    /// Bytes of this response not yet sent: output held back behind earlier pipelined
    /// responses, plus the connection's write buffer. Producers of long bodies wait while it
    /// is large, so a slow client cannot make the server buffer a whole file.
    pub fn buffered_size(&self) -> usize {
        self.inner.response.borrow().out.len()
            + self
                .inner
                .channel
                .upgrade()
                .map_or(0, |c| c.buffered_size())
    }

    /// Registers the producer of the response body (Twisted's `Request.registerProducer`):
    /// it writes with [`write`](Self::write) and [`finish`](Self::finish)es the request when
    /// done. Flow control is the connection's: a streaming producer is paused while the
    /// connection's write buffer is over its high watermark, a pull producer is asked for
    /// each chunk when the buffer is empty. While the request waits behind earlier pipelined
    /// responses, a pull producer is not asked and a streaming producer is paused. The
    /// producer is unregistered when the request finishes, and stopped if the client leaves
    /// first. Calls to it never come from inside `register_producer` or `write`.
    ///
    /// Fails if a producer is already registered, or the request has finished or lost its
    /// client.
    pub fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        if self.finished() || self.lost() {
            return Err(ProducerError::Disconnected);
        }
        if self.inner.producer.borrow().is_some() {
            return Err(ProducerError::AlreadyRegistered);
        }
        let body = BodyProducer::new(producer, streaming);
        *self.inner.producer.borrow_mut() = Some(body.clone());
        body.hold();
        // Attaches it to the transport now if this request's output goes straight out.
        self.flush();
        Ok(())
    }

    /// Unregisters the body's producer without telling it (Twisted's
    /// `Request.unregisterProducer`). [`finish`](Self::finish) does it too.
    pub fn unregister_producer(&self) {
        self.detach_producer();
    }

    fn detach_producer(&self) {
        let producer = self.inner.producer.borrow_mut().take();
        if let Some(p) = producer {
            let t = self.inner.channel.upgrade().and_then(|c| c.transport());
            p.detach(t.as_ref());
        }
    }

    /// True when both are the same request.
    pub(crate) fn same(&self, other: &Request) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// This request's turn has come (its output goes straight to `t`): registers its body
    /// producer with the transport.
    pub(crate) fn attach_producer(&self, t: &torsion::Transport) {
        let producer = self.inner.producer.borrow().clone();
        if let Some(p) = producer {
            if !p.attached() {
                if let Err(e) = p.attach(t) {
                    tracing::debug!(target: "torsion_web", "body producer not attached: {e}");
                }
            }
        }
    }

    /// The registered body producer, as the resource gave it (for tests that drive it).
    #[cfg(test)]
    pub(crate) fn producer(&self) -> Option<Rc<dyn Producer>> {
        self.inner
            .producer
            .borrow()
            .as_ref()
            .map(|p| p.inner().clone())
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

    /// Writes the response head into `r.out` and decides the framing, with room for
    /// `body_hint` bytes of body that follow at once: the resource's headers, then the
    /// defaults it did not set (`Date`, `Server`, `Content-Type`), then the framing
    /// (`Content-Length` or `Transfer-Encoding: chunked`) and `Connection`, which replace any
    /// the resource set. The defaults are written directly, not added to the header list
    /// first: no allocation beyond the output buffer.
    fn start(&self, r: &mut Response, finishing: bool, body_hint: usize) {
        r.started = true;
        let version = self.inner.head.version;
        let (mut has_date, mut has_server, mut has_type, mut has_length) =
            (false, false, false, false);
        for (name, _) in r.headers.iter() {
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
        for (name, value) in r.headers.iter() {
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
        if !has_date {
            with_cached_date(|date| push_field(&mut out, "Date", date.as_bytes()));
        }
        if !has_server {
            push_field(&mut out, "Server", server.as_bytes());
        }
        if !has_type && !bodiless_status {
            push_field(&mut out, "Content-Type", b"text/html");
        }
        if let Some(n) = length {
            push_field(
                &mut out,
                "Content-Length",
                itoa::Buffer::new().format(n).as_bytes(),
            );
        }
        if r.chunked {
            push_field(&mut out, "Transfer-Encoding", b"chunked");
        }
        if let Some(c) = connection {
            push_field(&mut out, "Connection", c.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        r.out = out;
        if finishing && r.chunked {
            encode_last_chunk(&mut r.out);
        }
    }

    /// The whole body is `n` bytes (a rendered body): the head states it unless the resource
    /// set its own `Content-Length`. No effect once the head is out.
    pub(crate) fn set_body_length(&self, n: usize) {
        let mut r = self.inner.response.borrow_mut();
        if !r.started {
            r.length = Some(n);
        }
    }

    pub(crate) fn inner_channel(&self) -> Option<Rc<ChannelShared>> {
        self.inner.channel.upgrade()
    }

    /// Hands output to the connection if this request's turn has come.
    fn flush(&self) {
        if let Some(c) = self.inner.channel.upgrade() {
            c.pump();
        }
    }

    /// Output waiting to be sent, taken.
    pub(crate) fn take_output(&self) -> Vec<u8> {
        std::mem::take(&mut self.inner.response.borrow_mut().out)
    }

    /// True when the connection must close after this response.
    pub(crate) fn wants_close(&self) -> bool {
        self.inner.close.get()
    }

    /// The connection went away: stop the body's producer (unless the transport already
    /// did) and fail the waiters.
    pub(crate) fn connection_lost(&self, clean: bool) {
        if self.finished() {
            return;
        }
        let producer = self.inner.producer.borrow_mut().take();
        if let Some(p) = producer {
            p.stop();
        }
        self.inner.lost.set(true);
        let waiters = std::mem::take(&mut *self.inner.finish_waiters.borrow_mut());
        for t in waiters {
            let f = if clean {
                Failure::new(ConnectionDone)
            } else {
                Failure::new(ConnectionLost::new(None))
            };
            let _ = t.fire(Err(f));
        }
    }

    fn log_access(&self) {
        let Some(c) = self.inner.channel.upgrade() else {
            return;
        };
        if !c.logs_access() {
            return;
        }
        let r = self.inner.response.borrow();
        let line = combined_log_line(self, r.code, r.body_bytes);
        drop(r);
        c.log_access(&line);
    }
}

/// A line in the combined log format (Apache's, as Twisted's `combinedLogFormatter`).
fn combined_log_line(req: &Request, code: u16, bytes: u64) -> String {
    let client = match req.get_client_address() {
        Address::Tcp(a) => a.ip().to_string(),
        other => other.to_string(),
    };
    let quote = |s: Option<&str>| s.unwrap_or("-").replace('"', "\\\"");
    let version = match req.version() {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
    };
    format!(
        "{client} - - [{}] \"{} {} {version}\" {code} {} \"{}\" \"{}\"",
        // The time the line is written, as Twisted's access log has it.
        clf_date(std::time::SystemTime::now()),
        req.method(),
        req.uri().replace('"', "%22"),
        if bytes == 0 {
            "-".to_owned()
        } else {
            bytes.to_string()
        },
        quote(req.get_header("referer")),
        quote(req.get_header("user-agent")),
    )
}

/// `22/Nov/2026:04:50:12 +0000`, from the HTTP date form.
fn clf_date(t: std::time::SystemTime) -> String {
    let d = http_date(t); // "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts: Vec<&str> = d.split(' ').collect();
    match parts.as_slice() {
        [_, day, month, year, time, _] => format!("{day}/{month}/{year}:{time} +0000"),
        _ => d,
    }
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

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("uri", &self.uri())
            .field("client", &self.inner.client)
            .field("code", &self.code())
            .field("finished", &self.finished())
            .finish()
    }
}
