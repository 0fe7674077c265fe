//! [`Request`]: one HTTP request and its response (Twisted's `twisted.web.server.Request`).
//!
//! A `Request` is a cheap handle: resources that answer later ([`Render::NotDoneYet`]) keep a
//! clone, [`write`](Request::write) the body in pieces and [`finish`](Request::finish) it. The
//! response head goes out with the first write: with a `Content-Length` if the resource set
//! one, else chunked (HTTP/1.1) or ended by closing the connection (HTTP/1.0). Responses to
//! pipelined requests are sent in order: a later request's output waits in its own buffer.
//!
//! [`Render::NotDoneYet`]: crate::resource::Render::NotDoneYet

mod access_log;
mod body;
pub mod form;
mod head;
mod producer;
mod response;

pub use body::RequestBody;
pub(crate) use body::{BodyError, BodySink, SpoolFile, StoredBody};
pub use response::ResponseClosed;

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::rc::{Rc, Weak};

use torsion::defer::Trigger;
use torsion::error::{ConnectionDone, ConnectionLost};
use torsion::transport::Address;
use torsion::{ConnectionEnd, Failure, Transport};

use crate::body_producer::BodyProducer;
use crate::proto::{parse_query, percent_decode, Headers, RequestHead, Version};
use crate::session::SessionSite;
use response::Response;

/// What a request needs from the connection it came in on (the shared part of its
/// [`HttpChannel`](crate::channel::HttpChannel)). The channel holds its requests, so a
/// request reaches it only through this trait (and a weak reference: a request does not keep
/// its connection alive).
pub(crate) trait RequestChannel {
    /// The connection's transport, while it is up.
    fn transport(&self) -> Option<Transport>;

    /// Bytes written to the connection and not yet sent.
    fn buffered_size(&self) -> usize;

    /// The site the connection serves, for its sessions.
    fn session_site(&self) -> Rc<dyn SessionSite>;

    /// The `Server` header's value.
    fn server_name(&self) -> &str;

    /// True when the connection closes once the queued responses are out.
    fn closing(&self) -> bool;

    /// The request has finished: tells the site, which calls `line` for its access-log line
    /// only if it keeps an access log.
    fn request_finished(&self, line: &dyn Fn() -> String);

    /// Hands the connection to `handler` after `request`'s response (a `101`), if `request`
    /// is the only one in flight; its transport, or `None` when it cannot be taken over.
    fn take_over(&self, request: &Request, handler: Box<dyn Upgraded>) -> Option<Transport>;

    /// The transport, if `request` is at the front of the queue (what it writes now goes out
    /// next).
    fn front_transport(&self, request: &Request) -> Option<Transport>;

    /// Sends what the front requests have ready, in order.
    fn pump(&self);
}

/// A protocol that takes a connection over from HTTP after a `101 Switching Protocols`
/// (see `Request::take_over`). It is told what the channel is.
pub(crate) trait Upgraded {
    /// Bytes read after the request that upgraded (the first call may carry bytes that came
    /// in the same read as that request).
    fn data_received(&mut self, transport: &Transport, data: &[u8]);
    /// The server is shutting down gracefully.
    fn drain(&mut self, transport: &Transport);
    /// The connection ended.
    fn connection_lost(&mut self, reason: ConnectionEnd);
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
    body: RefCell<StoredBody>,
    args: RefCell<Vec<(Vec<u8>, Vec<u8>)>>,
    files: RefCell<Vec<form::UploadedFile>>,
    client: Address,
    host: Address,
    response: RefCell<Response>,
    channel: Weak<dyn RequestChannel>,
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
        channel: Weak<dyn RequestChannel>,
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
            // A stream ends with its response; the connection is the codec's business.
            Version::Http2 => false,
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
                files: RefCell::default(),
                client,
                host,
                response: RefCell::new(Response::new(no_body)),
                channel,
                lost: Cell::new(false),
                finish_waiters: RefCell::default(),
                close: Cell::new(close),
                session: RefCell::new(None),
                producer: RefCell::new(None),
            }),
        }
    }

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

    /// The request body, whole. A body that was spooled to a temporary file (past
    /// [`SiteConfig::body_spool_threshold`](crate::site::SiteConfig::body_spool_threshold),
    /// 100,000 bytes by default) is read back into memory on the first call and kept; use
    /// [`body`](Self::body) to stream a large body instead.
    pub fn content(&self) -> Ref<'_, [u8]> {
        Ref::map(self.inner.body.borrow(), |b| b.as_slice())
    }

    /// A reader over the request body (`Read` and `Seek`), from its start: over memory for a
    /// small body, over its temporary file for a spooled one, never loading it whole. Fails
    /// only if the temporary file cannot be opened again.
    pub fn body(&self) -> std::io::Result<RequestBody> {
        self.inner.body.borrow().reader()
    }

    /// The request body's length in bytes.
    pub fn body_len(&self) -> u64 {
        self.inner.body.borrow().len()
    }

    /// The temporary file holding the body, when it was spooled to disk (`None` for a body
    /// kept in memory). The file is removed when the request is dropped.
    pub fn body_path(&self) -> Option<std::path::PathBuf> {
        self.inner.body.borrow().path().map(|p| p.to_owned())
    }

    pub(crate) fn set_body(&self, body: StoredBody) {
        let form = self
            .get_header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if form {
            match &body {
                StoredBody::Memory(b) => self.inner.args.borrow_mut().extend(parse_query(b)),
                // Parsed from the file, without keeping its content in memory.
                StoredBody::File { .. } => {
                    let mut bytes = Vec::new();
                    if let Ok(mut r) = body.reader() {
                        let _ = std::io::Read::read_to_end(&mut r, &mut bytes);
                    }
                    self.inner.args.borrow_mut().extend(parse_query(&bytes));
                }
            }
        }
        *self.inner.body.borrow_mut() = body;
    }

    /// Stores the body and its multipart form's fields (after the query's in `args`) and
    /// files.
    pub(crate) fn set_body_and_form(&self, body: StoredBody, form: Option<form::ParsedForm>) {
        self.set_body(body);
        if let Some(form) = form {
            self.inner.args.borrow_mut().extend(form.fields);
            *self.inner.files.borrow_mut() = form.files;
        }
    }

    /// The files of a `multipart/form-data` body, in the order they came (see
    /// [`form`]). Empty for any other body.
    pub fn files(&self) -> Ref<'_, Vec<form::UploadedFile>> {
        self.inner.files.borrow()
    }

    /// The first file uploaded under form field `name`.
    pub fn file(&self, name: &str) -> Option<Ref<'_, form::UploadedFile>> {
        Ref::filter_map(self.inner.files.borrow(), |files| {
            files.iter().find(|f| f.name() == name)
        })
        .ok()
    }

    /// All arguments, decoded, in order (Twisted's `request.args`): the query string's, then
    /// the fields of an `application/x-www-form-urlencoded` or `multipart/form-data` body
    /// (a multipart form's files are in [`files`](Self::files), not here).
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
        let site = channel.session_site();
        let found = self
            .get_cookie(SESSION_COOKIE)
            .and_then(|uid| site.sessions().borrow().get(&uid).cloned());
        let session = match found {
            Some(s) => {
                s.touch();
                s
            }
            None => {
                let s = Session::start(&site);
                site.sessions()
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

    /// True when both are the same request.
    pub(crate) fn same(&self, other: &Request) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn inner_channel(&self) -> Option<Rc<dyn RequestChannel>> {
        self.inner.channel.upgrade()
    }

    /// Hands output to the connection if this request's turn has come.
    fn flush(&self) {
        if let Some(c) = self.inner.channel.upgrade() {
            c.pump();
        }
    }

    /// Makes this request's response the last HTTP on the connection: once it is out, every
    /// byte read goes to `handler`. The caller sets the `101` and its headers, then finishes
    /// the response. `None` (nothing changed) when other requests are in flight, the
    /// connection is closing, or it is gone.
    pub(crate) fn take_over(&self, handler: Box<dyn Upgraded>) -> Option<Transport> {
        self.inner.channel.upgrade()?.take_over(self, handler)
    }

    /// Closes the connection after this response.
    pub(crate) fn close_after(&self) {
        self.inner.close.set(true);
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
