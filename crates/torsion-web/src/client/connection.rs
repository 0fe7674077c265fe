//! One HTTP/1.1 client connection (Twisted's `HTTP11ClientProtocol`): it writes a request,
//! parses the response head, delivers the body to the [`Response`], and goes back to the pool
//! when the body is complete and both sides allow it.
//!
//! The protocol object the reactor drives is a thin [`Http11ClientProtocol`]; the state lives
//! in a [`ClientConn`] shared with the pool and the agent. Events that run user code (a
//! response or body Deferred firing) are collected while the state is borrowed and fired after
//! the borrow ends, so user callbacks may freely start the next request on this connection.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use torsion::defer::{Deferred, Trigger};
use torsion::error::{ConnectionDone, TimeoutError};
use torsion::reactor::DelayedCall;
use torsion::tcp::Connector;
use torsion::transport::Address;
use torsion::{ClientFactory, Factory, Failure, Protocol, Reactor, Transport};

use super::error::{
    BodyTooLarge, InvalidRequest, MalformedResponse, ResponseFailed, ResponseNeverReceived,
};
use super::pool::{PoolInner, PoolKey};
use super::response::{BodyDone, BodyState, Response};
use super::url::Url;
use crate::proto::{
    parse_response_head, response_body_kind, BodyKind, ChunkedDecoder, Headers, Limits, ParseError,
    ResponseHead, Version,
};

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
    pub(crate) max_body: u64,
    pub(crate) limits: Limits,
}

/// How a request is written, besides its method, URL, headers and body.
pub(crate) struct EncodeOptions<'a> {
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) gzip: bool,
    pub(crate) close: bool,
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
    body: Option<&[u8]>,
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
    let body_len = body.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(128 + url.path().len() + fields + body_len);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    url.write_target(&mut out);
    out.extend_from_slice(b" HTTP/1.1\r\n");
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
        out.extend_from_slice(b"Accept-Encoding: gzip\r\n");
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
    let needs_length = body.is_some() || matches!(method, "POST" | "PUT" | "PATCH");
    if needs_length {
        out.extend_from_slice(format!("Content-Length: {body_len}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    Ok(out)
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The TCP (or TLS) connection is being made.
    Connecting,
    /// Connected, no request in flight: in the pool, or about to be used.
    Idle,
    /// A request was sent; reading the response head.
    Head,
    /// Reading the response body.
    Body,
    /// Closing; no further use.
    Closing,
    /// Closed.
    Closed,
}

/// How the body being read ends.
enum Reader {
    None,
    Length { left: u64, total: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// One request and its response on this connection.
struct Exchange {
    request: Rc<PreparedRequest>,
    response: Option<Trigger<Response>>,
    /// Some byte of the response has arrived.
    got_bytes: bool,
    /// The connection may carry another request after this response.
    reusable: bool,
    reader: Reader,
    body: Option<Rc<RefCell<BodyState>>>,
    timer: Option<DelayedCall>,
    timed_out: bool,
}

impl Exchange {
    fn stop_timer(&mut self) {
        if let Some(t) = self.timer.take() {
            if t.active() {
                let _ = t.cancel();
            }
        }
    }
}

struct ConnState {
    phase: Phase,
    transport: Option<Transport>,
    /// The response head as it arrives.
    head: Vec<u8>,
    /// Decoded chunked data on its way to the body.
    scratch: Vec<u8>,
    exchange: Option<Exchange>,
    close_waiters: Vec<Trigger<()>>,
}

/// What to do once the state is no longer borrowed.
#[derive(Default)]
struct Events {
    respond: Option<(Trigger<Response>, Result<Response, Failure>)>,
    body_done: Option<BodyDone>,
    /// Back to the pool.
    release: bool,
    /// Out of the pool's idle list.
    unpool: bool,
    /// Close: `Some(true)` aborts, `Some(false)` closes after pending writes.
    close: Option<bool>,
    closed_waiters: Vec<Trigger<()>>,
}

pub(crate) struct ConnInner {
    state: RefCell<ConnState>,
    key: PoolKey,
    pool: Weak<PoolInner>,
    reactor: Reactor,
}

/// A handle to one client connection, shared by its protocol, the pool and the agent.
#[derive(Clone)]
pub(crate) struct ClientConn(Rc<ConnInner>);

impl ClientConn {
    pub(crate) fn new(key: PoolKey, pool: Weak<PoolInner>, reactor: Reactor) -> ClientConn {
        ClientConn(Rc::new(ConnInner {
            state: RefCell::new(ConnState {
                phase: Phase::Connecting,
                transport: None,
                head: Vec::new(),
                scratch: Vec::new(),
                exchange: None,
                close_waiters: Vec::new(),
            }),
            key,
            pool,
            reactor,
        }))
    }

    pub(crate) fn key(&self) -> &PoolKey {
        &self.0.key
    }

    pub(crate) fn same(&self, other: &ClientConn) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    /// Connected, with nothing in flight, and not closing.
    pub(crate) fn is_idle(&self) -> bool {
        let s = self.0.state.borrow();
        s.phase == Phase::Idle && s.transport.as_ref().is_some_and(|t| !t.disconnecting())
    }

    /// Closes the connection once pending writes are sent.
    pub(crate) fn lose(&self) {
        let t = {
            let mut s = self.0.state.borrow_mut();
            if s.phase == Phase::Idle {
                s.phase = Phase::Closing;
            }
            s.transport.clone()
        };
        if let Some(t) = t {
            t.lose_connection();
        }
    }

    /// Closes the connection now.
    fn abort(&self) {
        let t = self.0.state.borrow().transport.clone();
        if let Some(t) = t {
            t.abort_connection();
        }
    }

    /// Fires once the connection is closed.
    pub(crate) fn when_closed(&self) -> Deferred<()> {
        let d = Deferred::new();
        let mut s = self.0.state.borrow_mut();
        if s.phase == Phase::Closed {
            drop(s);
            d.callback(());
        } else {
            s.close_waiters.push(d.trigger());
        }
        d
    }

    /// Sends `request` and returns a Deferred that fires with the response once its head has
    /// arrived. `deadline` (in reactor seconds) bounds the head and the body; passing it
    /// fails whichever is pending with [`TimeoutError`] and closes the connection. Cancelling
    /// the Deferred closes the connection too.
    pub(crate) fn send_request(
        &self,
        request: Rc<PreparedRequest>,
        deadline: Option<f64>,
    ) -> Deferred<Response> {
        let weak = Rc::downgrade(&self.0);
        let d = Deferred::with_canceller(move |_| {
            if let Some(c) = weak.upgrade() {
                ClientConn(c).abort();
            }
        });
        let mut s = self.0.state.borrow_mut();
        let transport = match (&s.transport, s.phase) {
            (Some(t), Phase::Idle) if !t.disconnecting() => t.clone(),
            _ => {
                drop(s);
                let gone = Failure::new(ConnectionDone);
                d.errback(ResponseNeverReceived::new(gone));
                return d;
            }
        };
        let timer = deadline.map(|at| {
            let weak = Rc::downgrade(&self.0);
            let wait = (at - self.0.reactor.seconds()).max(0.0);
            self.0.reactor.call_later(wait, move || {
                if let Some(c) = weak.upgrade() {
                    ClientConn(c).time_out();
                }
            })
        });
        s.phase = Phase::Head;
        s.head.clear();
        s.exchange = Some(Exchange {
            request: request.clone(),
            response: Some(d.trigger()),
            got_bytes: false,
            reusable: false,
            reader: Reader::None,
            body: None,
            timer,
            timed_out: false,
        });
        drop(s);
        transport.write(&request.bytes);
        d
    }

    /// The request's deadline passed.
    fn time_out(&self) {
        let t = {
            let mut s = self.0.state.borrow_mut();
            match s.exchange.as_mut() {
                Some(ex) => {
                    ex.timed_out = true;
                    ex.timer = None;
                    s.transport.clone()
                }
                None => None,
            }
        };
        if let Some(t) = t {
            t.abort_connection();
        }
    }

    fn connection_made(&self, transport: &Transport, connected: Option<Trigger<ClientConn>>) {
        {
            let mut s = self.0.state.borrow_mut();
            s.transport = Some(transport.clone());
            s.phase = Phase::Idle;
        }
        match connected {
            Some(t) if !t.is_called() => {
                let _ = t.try_callback(self.clone());
            }
            // Nobody wants this connection any more (the attempt was cancelled).
            _ => {
                self.0.state.borrow_mut().phase = Phase::Closing;
                transport.abort_connection();
            }
        }
    }

    fn data_received(&self, data: &[u8]) {
        let mut ev = Events::default();
        {
            let mut guard = self.0.state.borrow_mut();
            let s = &mut *guard;
            match s.phase {
                Phase::Head => s.read_head(data, &mut ev),
                Phase::Body => s.read_body(data, &mut ev),
                Phase::Idle => {
                    // The server spoke out of turn: this connection cannot be trusted.
                    s.phase = Phase::Closing;
                    ev.unpool = true;
                    ev.close = Some(true);
                }
                Phase::Connecting | Phase::Closing | Phase::Closed => {}
            }
        }
        self.fire(ev);
    }

    fn connection_lost(&self, reason: Failure) {
        let mut ev = Events::default();
        {
            let mut guard = self.0.state.borrow_mut();
            let s = &mut *guard;
            let phase = s.phase;
            s.phase = Phase::Closed;
            s.transport = None;
            s.head = Vec::new();
            s.scratch = Vec::new();
            ev.closed_waiters = std::mem::take(&mut s.close_waiters);
            match phase {
                Phase::Idle => ev.unpool = true,
                Phase::Head | Phase::Body => s.lost_in_exchange(reason, &mut ev),
                Phase::Connecting | Phase::Closing | Phase::Closed => {}
            }
            s.phase = Phase::Closed;
        }
        ev.close = None;
        self.fire(ev);
    }

    /// Acts on `ev`, with no borrow of the state held: user code may run here.
    fn fire(&self, ev: Events) {
        if let Some(abort) = ev.close {
            let t = self.0.state.borrow().transport.clone();
            if let Some(t) = t {
                if abort {
                    t.abort_connection();
                } else {
                    t.lose_connection();
                }
            }
        }
        if ev.unpool {
            if let Some(pool) = self.0.pool.upgrade() {
                pool.remove(self);
            }
        }
        if ev.release {
            match self.0.pool.upgrade() {
                Some(pool) => PoolInner::put_connection(&pool, self.clone()),
                None => self.lose(),
            }
        }
        if let Some((t, out)) = ev.respond {
            let _ = t.fire(out);
        }
        if let Some((t, out)) = ev.body_done {
            let _ = t.fire(out);
        }
        for w in ev.closed_waiters {
            let _ = w.try_callback(());
        }
    }
}

/// Whether the server lets the connection carry another request (RFC 9112 section 9.3).
fn server_keeps_alive(version: Version, headers: &Headers) -> bool {
    match version {
        Version::Http11 => !headers.has_token("connection", "close"),
        Version::Http10 => headers.has_token("connection", "keep-alive"),
    }
}

/// Removes a final `gzip` (or `x-gzip`) from `Content-Encoding`; true if there was one.
fn strip_gzip(headers: &mut Headers) -> bool {
    let codings: Vec<String> = headers
        .get_all("content-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|c| String::from_utf8_lossy(c).trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    match codings.last() {
        Some(last) if last.eq_ignore_ascii_case("gzip") || last.eq_ignore_ascii_case("x-gzip") => {
            let rest = codings[..codings.len() - 1].join(", ");
            if rest.is_empty() {
                headers.remove("content-encoding");
            } else {
                headers.set("Content-Encoding", rest);
            }
            true
        }
        _ => false,
    }
}

impl ConnState {
    fn read_head(&mut self, data: &[u8], ev: &mut Events) {
        let Some(ex) = self.exchange.as_mut() else {
            return;
        };
        ex.got_bytes = true;
        let limits = ex.request.limits;
        self.head.extend_from_slice(data);
        loop {
            match parse_response_head(&self.head, &limits) {
                Ok(None) => return,
                Err(e) => return self.fail_exchange(Failure::new(MalformedResponse::new(e)), ev),
                Ok(Some((head, _))) if head.status == 101 => {
                    let e = ParseError::Malformed("unexpected 101 Switching Protocols");
                    return self.fail_exchange(Failure::new(MalformedResponse::new(e)), ev);
                }
                Ok(Some((head, used))) if head.status < 200 => {
                    // An interim response (100 Continue, 103 Early Hints): skip it.
                    self.head.drain(..used);
                }
                Ok(Some((head, used))) => {
                    let mut buf = std::mem::take(&mut self.head);
                    let rest = &buf[used..];
                    if self.start_response(head, !rest.is_empty(), ev) && !rest.is_empty() {
                        self.read_body(rest, ev);
                    }
                    buf.clear();
                    self.head = buf;
                    return;
                }
            }
        }
    }

    /// Builds the response for `head` and prepares to read its body; true if a body follows.
    /// `extra` says bytes came after the head.
    fn start_response(&mut self, head: ResponseHead, extra: bool, ev: &mut Events) -> bool {
        let Some(ex) = self.exchange.as_mut() else {
            return false;
        };
        let req = ex.request.clone();
        let kind = match response_body_kind(&req.method, &head) {
            Ok(k) => k,
            Err(e) => {
                self.fail_exchange(Failure::new(MalformedResponse::new(e)), ev);
                return false;
            }
        };
        let ResponseHead {
            version,
            status,
            reason,
            mut headers,
        } = head;
        ex.reusable =
            !req.close && server_keeps_alive(version, &headers) && kind != BodyKind::UntilClose;
        let gzip = req.gzip && kind != BodyKind::Empty && strip_gzip(&mut headers);
        let length = match kind {
            BodyKind::Length(n) if !gzip => Some(n),
            BodyKind::Empty => Some(0),
            _ => None,
        };
        let body = Rc::new(RefCell::new(BodyState::new(
            req.max_body,
            gzip,
            length,
            self.transport.clone(),
        )));
        ex.body = Some(body.clone());
        let response = Response::new(
            (version, status, reason, headers),
            req.url.to_string(),
            length,
            body,
        );
        if let Some(t) = ex.response.take() {
            ev.respond = Some((t, Ok(response)));
        }
        let reader = match kind {
            BodyKind::Empty | BodyKind::Length(0) => {
                self.finish_body(Ok(()), extra, ev);
                return false;
            }
            BodyKind::Length(n) if n > req.max_body => {
                let too_large = BodyTooLarge {
                    limit: req.max_body,
                };
                self.fail_exchange(Failure::new(too_large), ev);
                return false;
            }
            BodyKind::Length(n) => Reader::Length { left: n, total: n },
            BodyKind::Chunked => Reader::Chunked(ChunkedDecoder::new(req.max_body)),
            BodyKind::UntilClose => Reader::UntilClose,
        };
        if let Some(ex) = self.exchange.as_mut() {
            ex.reader = reader;
        }
        self.phase = Phase::Body;
        true
    }

    fn read_body(&mut self, data: &[u8], ev: &mut Events) {
        let Some(ex) = self.exchange.as_mut() else {
            return;
        };
        let Some(body) = ex.body.clone() else {
            return;
        };
        let max_body = ex.request.max_body;
        let (pushed, done, extra) = match &mut ex.reader {
            Reader::None => return,
            Reader::Length { left, .. } => {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                *left -= n as u64;
                let pushed = body.borrow_mut().push(&data[..n]);
                (pushed, *left == 0, n < data.len())
            }
            Reader::Chunked(decoder) => {
                self.scratch.clear();
                match decoder.decode(data, &mut self.scratch) {
                    Ok(used) => {
                        let pushed = body.borrow_mut().push(&self.scratch);
                        (pushed, decoder.is_done(), used < data.len())
                    }
                    Err(ParseError::BodyTooLarge) => {
                        let e = BodyTooLarge { limit: max_body };
                        (Err(Failure::new(e)), false, false)
                    }
                    Err(e) => (Err(Failure::new(MalformedResponse::new(e))), false, false),
                }
            }
            Reader::UntilClose => (body.borrow_mut().push(data), false, false),
        };
        if self.scratch.capacity() > 256 * 1024 {
            self.scratch = Vec::new();
        }
        match pushed {
            Err(f) => self.fail_exchange(f, ev),
            Ok(()) if done => self.finish_body(Ok(()), extra, ev),
            Ok(()) => {}
        }
    }

    /// The body is complete (or failed on its own, such as bad gzip): hand it over, and put
    /// the connection back in the pool if it can carry another request.
    fn finish_body(&mut self, outcome: Result<(), Failure>, extra: bool, ev: &mut Events) {
        let Some(mut ex) = self.exchange.take() else {
            return;
        };
        ex.stop_timer();
        if let Some(body) = ex.body.take() {
            ev.body_done = body.borrow_mut().finish(outcome);
        }
        if ex.reusable && !extra {
            self.phase = Phase::Idle;
            ev.release = true;
        } else {
            // Bytes after the response, or a connection that closes: not for reuse.
            self.phase = Phase::Closing;
            ev.close = Some(extra);
        }
    }

    /// The exchange failed: the response (or, once delivered, its body) fails with `failure`,
    /// and the connection is closed at once.
    fn fail_exchange(&mut self, failure: Failure, ev: &mut Events) {
        self.phase = Phase::Closing;
        ev.close = Some(true);
        let Some(mut ex) = self.exchange.take() else {
            return;
        };
        ex.stop_timer();
        if let Some(t) = ex.response.take() {
            ev.respond = Some((t, Err(failure)));
        } else if let Some(body) = ex.body.take() {
            ev.body_done = body.borrow_mut().finish(Err(failure));
        }
    }

    /// The connection closed with an exchange in flight.
    fn lost_in_exchange(&mut self, reason: Failure, ev: &mut Events) {
        let Some(ex) = self.exchange.as_ref() else {
            return;
        };
        let failure = if ex.timed_out {
            Failure::new(TimeoutError)
        } else if ex.response.is_some() {
            if ex.got_bytes {
                Failure::new(ResponseFailed::new(
                    "the rest of the response head".to_owned(),
                    reason,
                ))
            } else {
                Failure::new(ResponseNeverReceived::new(reason))
            }
        } else {
            match &ex.reader {
                Reader::UntilClose if reason.check::<ConnectionDone>() => {
                    return self.finish_body(Ok(()), false, ev);
                }
                Reader::Length { left, total } => Failure::new(ResponseFailed::new(
                    format!("{left} of {total} body bytes"),
                    reason,
                )),
                Reader::Chunked(_) => Failure::new(ResponseFailed::new(
                    "the end of the chunked body".to_owned(),
                    reason,
                )),
                Reader::UntilClose | Reader::None => Failure::new(ResponseFailed::new(
                    "the end of the body".to_owned(),
                    reason,
                )),
            }
        };
        self.fail_exchange(failure, ev);
    }
}

/// The protocol of one client connection (Twisted's `HTTP11ClientProtocol`), made by an
/// [`HttpClientFactory`]. A TLS connector runs it over its TLS transport.
pub struct Http11ClientProtocol {
    conn: ClientConn,
    connected: Option<Trigger<ClientConn>>,
}

impl Protocol for Http11ClientProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        self.conn.connection_made(transport, self.connected.take());
    }

    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        self.conn.data_received(data);
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.conn.connection_lost(reason);
    }
}

/// Makes the [`Http11ClientProtocol`] of one connection attempt and tells the pool how the
/// attempt went. The agent hands one to `connect_tcp`, or to a
/// [`TlsConnector`](super::TlsConnector) for `https`.
pub struct HttpClientFactory {
    conn: ClientConn,
    connected: RefCell<Option<Trigger<ClientConn>>>,
}

impl HttpClientFactory {
    pub(crate) fn new(conn: ClientConn, connected: Trigger<ClientConn>) -> HttpClientFactory {
        HttpClientFactory {
            conn,
            connected: RefCell::new(Some(connected)),
        }
    }
}

impl Factory for HttpClientFactory {
    type Protocol = Http11ClientProtocol;

    fn build_protocol(&self, _addr: &Address) -> Option<Http11ClientProtocol> {
        Some(Http11ClientProtocol {
            conn: self.conn.clone(),
            connected: self.connected.take(),
        })
    }
}

impl ClientFactory for HttpClientFactory {
    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        if let Some(t) = self.connected.take() {
            let _ = t.try_errback(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> String {
        let headers: Headers = headers.iter().copied().collect();
        let opts = EncodeOptions {
            user_agent: Some("Torsion"),
            gzip: false,
            close: false,
        };
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
    fn values_cannot_split_the_head_and_bad_names_are_refused() {
        let out = encode("GET", "http://h/", &[("X-A", "1\r\nEvil: 2")], None);
        assert!(out.contains("X-A: 1  Evil: 2\r\n"), "{out}");
        let headers: Headers = [("Bad Name", "x")].into_iter().collect();
        let opts = EncodeOptions {
            user_agent: None,
            gzip: true,
            close: true,
        };
        let url = Url::parse("http://h/").unwrap();
        assert!(encode_request("GET", &url, &headers, None, &opts).is_err());
        assert!(encode_request("G ET", &url, &Headers::new(), None, &opts).is_err());
        let out = encode_request("GET", &url, &Headers::new(), None, &opts).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("Accept-Encoding: gzip\r\nConnection: close\r\n"),
            "{out}"
        );
    }

    #[test]
    fn gzip_is_stripped_from_content_encoding() {
        let mut h: Headers = [("Content-Encoding", "gzip")].into_iter().collect();
        assert!(strip_gzip(&mut h));
        assert!(!h.contains("content-encoding"));
        let mut h: Headers = [("Content-Encoding", "br, x-gzip")].into_iter().collect();
        assert!(strip_gzip(&mut h));
        assert_eq!(h.get_str("content-encoding"), Some("br"));
        let mut h: Headers = [("Content-Encoding", "gzip, br")].into_iter().collect();
        assert!(!strip_gzip(&mut h));
    }
}
