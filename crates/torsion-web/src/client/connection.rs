//! One HTTP/1.1 client connection (Twisted's `HTTP11ClientProtocol`): it writes a request,
//! parses the response head, delivers the body to the [`Response`], and goes back to the pool
//! when the body is complete and both sides allow it.
//!
//! The protocol object the reactor drives is a thin [`Http11ClientProtocol`]; the state lives
//! in a [`ClientConn`] shared with the pool and the agent. Events that run user code (a
//! response or body Deferred firing) are collected while the state is borrowed and fired after
//! the borrow ends, so user callbacks may freely start the next request on this connection.
//!
//! [`Http11ClientProtocol`]: super::Http11ClientProtocol

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use torsion::defer::{Deferred, Trigger};
use torsion::error::ConnectionDone;
use torsion::reactor::DelayedCall;
use torsion::{Failure, Transport};

use super::body::{BodyConsumer, Registered, RequestBodyProducer};
use super::error::{
    ContentDecodingError, MalformedResponse, RequestGenerationFailed, ResponseFailed,
    ResponseNeverReceived, ResponseTimeout, TimeoutPhase,
};
use super::request::PreparedRequest;
use super::response::{flush, BodyFlow, BodyState, Coding, Response};
use crate::proto::{
    parse_response_head, response_body_kind, BodyKind, ChunkedDecoder, Headers, ParseError,
    ResponseHead, Version,
};

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
    /// The whole-request deadline's timer.
    timer: Option<DelayedCall>,
    /// The head or idle time-out's timer, and which of the two it is.
    read_timer: Option<(DelayedCall, TimeoutPhase)>,
    /// The whole-body time-out's timer.
    body_timer: Option<DelayedCall>,
    /// Why the connection was closed, when a timer closed it.
    timed_out: Option<TimedOut>,
    /// A streamed request body still being written.
    upload: Option<Upload>,
}

/// A request body being streamed: its producer (registered with the transport) and where it
/// writes.
struct Upload {
    producer: Rc<dyn RequestBodyProducer>,
    consumer: BodyConsumer,
}

/// Which timer closed the connection.
#[derive(Debug, Clone, Copy)]
enum TimedOut {
    /// The whole-request deadline (`Agent::with_timeout`).
    Deadline,
    /// The head or idle time-out, after that many seconds.
    Phase(TimeoutPhase, f64),
}

fn cancel(t: DelayedCall) {
    if t.active() {
        let _ = t.cancel();
    }
}

impl Exchange {
    fn stop_timer(&mut self) {
        if let Some(t) = self.timer.take() {
            cancel(t);
        }
        if let Some((t, _)) = self.read_timer.take() {
            cancel(t);
        }
        if let Some(t) = self.body_timer.take() {
            cancel(t);
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
    /// The connection itself, for the bodies it delivers.
    me: Weak<ConnInner>,
}

/// What to do once the state is no longer borrowed.
#[derive(Default)]
struct Events {
    respond: Option<(Trigger<Response>, Result<Response, Failure>)>,
    /// A body with something for its reader.
    flush: Option<Rc<RefCell<BodyState>>>,
    /// Back to the pool.
    release: bool,
    /// Out of the pool's idle list.
    unpool: bool,
    /// Close: `Some(true)` aborts, `Some(false)` closes after pending writes.
    close: Option<bool>,
    closed_waiters: Vec<Trigger<()>>,
    /// A streamed request body no longer wanted: stop its producer.
    stop_upload: Option<Upload>,
}

/// Which connections may serve a request: same scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) scheme: String,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// What a connection needs from the pool it belongs to. The pool holds connections, so a
/// connection reaches it only through this trait (and a weak reference: a connection does
/// not keep its pool alive).
pub(crate) trait Pool {
    /// Takes back a connection whose response is complete: keeps it if the pool is
    /// persistent, else closes it.
    fn put_connection(self: Rc<Self>, conn: ClientConn);

    /// Forgets an idle connection (it closed, or its time is up).
    fn remove(&self, conn: &ClientConn);
}

pub(crate) struct ConnInner {
    state: RefCell<ConnState>,
    key: PoolKey,
    pool: Weak<dyn Pool>,
}

/// A handle to one client connection, shared by its protocol, the pool and the agent.
#[derive(Clone)]
pub(crate) struct ClientConn(Rc<ConnInner>);

impl ClientConn {
    pub(crate) fn new(key: PoolKey, pool: Weak<dyn Pool>) -> ClientConn {
        ClientConn(Rc::new_cyclic(|me| ConnInner {
            state: RefCell::new(ConnState {
                phase: Phase::Connecting,
                transport: None,
                head: Vec::new(),
                scratch: Vec::new(),
                exchange: None,
                close_waiters: Vec::new(),
                me: me.clone(),
            }),
            key,
            pool,
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
    /// fails whichever is pending with [`ResponseTimeout`] and closes the connection. Cancelling
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
            let wait = (at - request.clock.seconds()).max(0.0);
            self.timer(&request, wait, TimedOut::Deadline)
        });
        // With a streamed body, the head time-out starts once the body is written.
        let read_timer = match request.producer {
            Some(_) => None,
            None => request.head_timeout.map(|secs| {
                let t = self.timer(&request, secs, TimedOut::Phase(TimeoutPhase::Head, secs));
                (t, TimeoutPhase::Head)
            }),
        };
        let upload = request.producer.clone().map(|producer| Upload {
            consumer: BodyConsumer::new(transport.clone(), producer.length()),
            producer,
        });
        let start = upload
            .as_ref()
            .map(|u| (u.producer.clone(), u.consumer.clone()));
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
            read_timer,
            body_timer: None,
            timed_out: None,
            upload,
        });
        drop(s);
        transport.write(&request.bytes);
        if let Some((producer, consumer)) = start {
            self.start_upload(&transport, producer, consumer);
        }
        d
    }

    /// Registers the body's producer with the transport and starts it.
    fn start_upload(
        &self,
        transport: &Transport,
        producer: Rc<dyn RequestBodyProducer>,
        consumer: BodyConsumer,
    ) {
        if let Err(e) = transport.register_producer(Rc::new(Registered(producer.clone())), true) {
            return self.upload_done(Err(Failure::new(e)));
        }
        let weak = Rc::downgrade(&self.0);
        producer.start_producing(consumer).add_both(move |out| {
            if let Some(c) = weak.upgrade() {
                ClientConn(c).upload_done(out);
            }
            Ok::<_, Failure>(())
        });
    }

    /// The body's producer finished (or failed): end the body and start the head time-out,
    /// or fail the request.
    fn upload_done(&self, out: Result<(), Failure>) {
        let mut ev = Events::default();
        {
            let mut guard = self.0.state.borrow_mut();
            let s = &mut *guard;
            let Some(ex) = s.exchange.as_mut() else {
                return;
            };
            let Some(up) = ex.upload.take() else {
                return;
            };
            if let Some(t) = &s.transport {
                t.unregister_producer();
            }
            match out.and_then(|()| up.consumer.finish()) {
                Ok(()) => {
                    let waiting = ex.response.is_some() && ex.read_timer.is_none();
                    if let Some(secs) = ex.request.head_timeout.filter(|_| waiting) {
                        let why = TimedOut::Phase(TimeoutPhase::Head, secs);
                        let t = self.timer(&ex.request, secs, why);
                        ex.read_timer = Some((t, TimeoutPhase::Head));
                    }
                }
                Err(f) => {
                    up.consumer.close();
                    s.fail_exchange(Failure::new(RequestGenerationFailed::new(f)), &mut ev);
                }
            }
        }
        self.fire(ev);
    }

    /// A timer on `request`'s clock that closes the connection, as `why`, after `seconds`.
    fn timer(&self, request: &PreparedRequest, seconds: f64, why: TimedOut) -> DelayedCall {
        let weak = Rc::downgrade(&self.0);
        request.clock.call_later_boxed(
            seconds.max(0.0),
            Box::new(move || {
                if let Some(c) = weak.upgrade() {
                    ClientConn(c).time_out(why);
                }
            }),
        )
    }

    /// Body bytes arrived (or the head ended and a body follows): (re)starts the idle
    /// time-out, which replaces the head time-out.
    fn touch_body(&self, s: &mut ConnState) {
        if s.phase != Phase::Body {
            return;
        }
        let Some(ex) = s.exchange.as_mut() else {
            return;
        };
        let paused = ex.body.as_ref().is_some_and(|b| b.borrow().paused);
        let Some(idle) = ex.request.idle_timeout.filter(|_| !paused) else {
            if let Some((t, _)) = ex.read_timer.take() {
                cancel(t);
            }
            return;
        };
        match &ex.read_timer {
            Some((t, TimeoutPhase::Idle)) if t.active() => {
                let _ = t.reset(idle.max(0.0));
            }
            _ => {
                if let Some((t, _)) = ex.read_timer.take() {
                    cancel(t);
                }
                let why = TimedOut::Phase(TimeoutPhase::Idle, idle);
                let t = self.timer(&ex.request, idle, why);
                ex.read_timer = Some((t, TimeoutPhase::Idle));
            }
        }
    }

    /// A timer ran out: close the connection; the exchange fails as `why` says.
    fn time_out(&self, why: TimedOut) {
        let t = {
            let mut s = self.0.state.borrow_mut();
            match s.exchange.as_mut() {
                Some(ex) => {
                    ex.timed_out = Some(why);
                    match why {
                        TimedOut::Deadline => ex.timer = None,
                        TimedOut::Phase(TimeoutPhase::Body, _) => ex.body_timer = None,
                        TimedOut::Phase(..) => ex.read_timer = None,
                    }
                    s.transport.clone()
                }
                None => None,
            }
        };
        if let Some(t) = t {
            t.abort_connection();
        }
    }

    pub(super) fn connection_made(
        &self,
        transport: &Transport,
        connected: Option<Trigger<ClientConn>>,
    ) {
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

    pub(super) fn data_received(&self, data: &[u8]) {
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
            self.touch_body(s);
            if s.phase == Phase::Body {
                s.start_body_timer(self);
            }
        }
        self.fire(ev);
    }

    pub(super) fn connection_lost(&self, reason: Failure) {
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
        if let Some(up) = ev.stop_upload {
            up.consumer.close();
            let t = self.0.state.borrow().transport.clone();
            if let Some(t) = t {
                t.unregister_producer();
            }
            up.producer.stop_producing();
        }
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
                Some(pool) => pool.put_connection(self.clone()),
                None => self.lose(),
            }
        }
        if let Some((t, out)) = ev.respond {
            let _ = t.fire(out);
        }
        if let Some(body) = ev.flush {
            flush(&body);
        }
        for w in ev.closed_waiters {
            let _ = w.try_callback(());
        }
    }
}

/// The connection as the reader of a body it delivers sees it: pause, resume, abort.
struct Flow(Weak<ConnInner>);

impl Flow {
    /// Pauses or resumes reading, and stops or restarts the idle time-out to match (the
    /// body's own `paused` is already set).
    fn set_reading(&self, reading: bool) {
        let Some(c) = self.0.upgrade() else {
            return;
        };
        let conn = ClientConn(c);
        let mut s = conn.0.state.borrow_mut();
        if s.phase != Phase::Body {
            return;
        }
        if let Some(t) = &s.transport {
            if reading {
                t.resume_producing();
            } else {
                t.pause_producing();
            }
        }
        conn.touch_body(&mut s);
    }
}

impl BodyFlow for Flow {
    fn pause(&self) {
        self.set_reading(false);
    }

    fn resume(&self) {
        self.set_reading(true);
    }

    fn abort(&self) {
        if let Some(c) = self.0.upgrade() {
            ClientConn(c).abort();
        }
    }
}

/// Whether the server lets the connection carry another request (RFC 9112 section 9.3).
fn server_keeps_alive(version: Version, headers: &Headers) -> bool {
    match version {
        Version::Http11 | Version::Http2 => !headers.has_token("connection", "close"),
        Version::Http10 => headers.has_token("connection", "keep-alive"),
    }
}

/// The most stacked codings decoded; more fail rather than allocate a decoder each.
pub(crate) const MAX_GZIP_LAYERS: usize = 4;

/// Removes the trailing `gzip` (or `x-gzip`) codings from `Content-Encoding`; see
/// [`strip_codings`]. Returns how many layers were removed.
#[cfg(test)]
fn strip_gzip(headers: &mut Headers) -> usize {
    strip_codings(headers, false).len()
}

/// Removes the trailing codings the agent decodes (gzip, and with `all` deflate and br) from
/// `Content-Encoding`, as Twisted's `ContentDecoderAgent` does: the last coding was applied
/// last, so it is decoded first, and the first coding it cannot decode stops it (that one
/// and those before it stay in the header). Returns the removed codings in the order they
/// were applied.
fn strip_codings(headers: &mut Headers, all: bool) -> Vec<Coding> {
    let mut codings: Vec<String> = headers
        .get_all("content-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|c| String::from_utf8_lossy(c).trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    let mut layers = Vec::new();
    while let Some(last) = codings.last() {
        let is = |name: &str| last.eq_ignore_ascii_case(name);
        if is("gzip") || is("x-gzip") {
            layers.push(Coding::Gzip);
        } else if all && is("deflate") {
            layers.push(Coding::Deflate);
        } else if all && is("br") {
            layers.push(Coding::Br);
        } else if !is("identity") {
            break;
        }
        codings.pop();
    }
    layers.reverse();
    if !layers.is_empty() {
        if codings.is_empty() {
            headers.remove("content-encoding");
        } else {
            headers.set("Content-Encoding", codings.join(", "));
        }
    }
    layers
}

/// The connection to `url` ended before any byte of the response: a TLS handshake that
/// failed says why ([`TlsFailed`](super::TlsFailed)); anything else is
/// [`ResponseNeverReceived`].
fn never_received(url: &super::url::Url, reason: Failure) -> Failure {
    #[cfg(feature = "tls")]
    let reason = match super::error::TlsFailed::from_end(url.host(), url.port(), reason) {
        Ok(tls) => return Failure::new(tls),
        Err(reason) => reason,
    };
    #[cfg(not(feature = "tls"))]
    let _ = url;
    Failure::new(ResponseNeverReceived::new(reason))
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
        let codings = match req.gzip && kind != BodyKind::Empty {
            true => strip_codings(&mut headers, req.all_codings),
            false => Vec::new(),
        };
        if codings.len() > MAX_GZIP_LAYERS {
            let n = codings.len();
            let kind = if req.all_codings { "content" } else { "gzip" };
            let e = ContentDecodingError::new(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{n} stacked {kind} codings (at most {MAX_GZIP_LAYERS} are decoded)"),
            ));
            self.fail_exchange(Failure::new(e), ev);
            return false;
        }
        let length = match kind {
            BodyKind::Length(n) if codings.is_empty() => Some(n),
            BodyKind::Empty => Some(0),
            _ => None,
        };
        let announced = match kind {
            BodyKind::Length(n) => Some(n),
            _ => None,
        };
        let flow: Rc<dyn BodyFlow> = Rc::new(Flow(self.me.clone()));
        let body = Rc::new(RefCell::new(BodyState::new(
            req.max_body,
            &codings,
            req.max_decoded,
            announced,
            Some(flow),
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
                self.finish_body(Ok(false), extra, ev);
                return false;
            }
            BodyKind::Length(n) => Reader::Length { left: n, total: n },
            // No limit here: a streamed body has none, and one read whole is limited as it
            // is gathered (BodyState).
            BodyKind::Chunked => Reader::Chunked(ChunkedDecoder::new(u64::MAX)),
            BodyKind::UntilClose => Reader::UntilClose,
        };
        if let Some(ex) = self.exchange.as_mut() {
            ex.reader = reader;
        }
        self.phase = Phase::Body;
        true
    }

    /// A body follows the head: starts the whole-body time-out.
    fn start_body_timer(&mut self, conn: &ClientConn) {
        let Some(ex) = self.exchange.as_mut() else {
            return;
        };
        if let Some(secs) = ex.request.body_timeout.filter(|_| ex.body_timer.is_none()) {
            let why = TimedOut::Phase(TimeoutPhase::Body, secs);
            ex.body_timer = Some(conn.timer(&ex.request, secs, why));
        }
    }

    fn read_body(&mut self, data: &[u8], ev: &mut Events) {
        let Some(ex) = self.exchange.as_mut() else {
            return;
        };
        let Some(body) = ex.body.clone() else {
            return;
        };
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
            Ok(()) if done => self.finish_body(Ok(false), extra, ev),
            Ok(()) => {
                // A reader that is behind: stop reading until it catches up.
                if body.borrow_mut().wants_pause() {
                    if let Some(t) = &self.transport {
                        t.pause_producing();
                    }
                }
                ev.flush = Some(body);
            }
        }
    }

    /// The body is complete (or failed on its own, such as bad gzip): hand it over, and put
    /// the connection back in the pool if it can carry another request.
    /// `outcome` is `Ok(true)` for a body that ended with the connection (no length).
    fn finish_body(&mut self, outcome: Result<bool, Failure>, extra: bool, ev: &mut Events) {
        let Some(mut ex) = self.exchange.take() else {
            return;
        };
        ex.stop_timer();
        // The response ended before the request body did: stop it; the connection cannot
        // carry another request.
        let cut_short = ex.upload.is_some();
        ev.stop_upload = ex.upload.take();
        if let Some(body) = ex.body.take() {
            if body.borrow_mut().finish(outcome) {
                // Paused for a slow reader: the next request needs it reading.
                if let Some(t) = &self.transport {
                    t.resume_producing();
                }
            }
            ev.flush = Some(body);
        }
        if ex.reusable && !extra && !cut_short {
            self.phase = Phase::Idle;
            ev.release = true;
        } else {
            // Bytes after the response, a connection that closes, or a request body cut
            // short: not for reuse.
            self.phase = Phase::Closing;
            ev.close = Some(extra || cut_short);
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
        ev.stop_upload = ex.upload.take();
        if let Some(t) = ex.response.take() {
            ev.respond = Some((t, Err(failure)));
        } else if let Some(body) = ex.body.take() {
            body.borrow_mut().finish(Err(failure));
            ev.flush = Some(body);
        }
    }

    /// The connection closed with an exchange in flight.
    fn lost_in_exchange(&mut self, reason: Failure, ev: &mut Events) {
        let Some(ex) = self.exchange.as_ref() else {
            return;
        };
        let failure = if let Some(why) = ex.timed_out {
            match why {
                TimedOut::Deadline => Failure::new(ResponseTimeout {
                    phase: TimeoutPhase::Total,
                    seconds: ex.request.total_timeout.unwrap_or(0.0),
                }),
                TimedOut::Phase(phase, seconds) => Failure::new(ResponseTimeout { phase, seconds }),
            }
        } else if ex.response.is_some() {
            if ex.got_bytes {
                Failure::new(ResponseFailed::new(
                    "the rest of the response head".to_owned(),
                    reason,
                ))
            } else {
                never_received(&ex.request.url, reason)
            }
        } else {
            match &ex.reader {
                Reader::UntilClose if reason.check::<ConnectionDone>() => {
                    return self.finish_body(Ok(true), false, ev);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_stripped_from_content_encoding() {
        let mut h: Headers = [("Content-Encoding", "gzip")].into_iter().collect();
        assert_eq!(strip_gzip(&mut h), 1);
        assert!(!h.contains("content-encoding"));
        let mut h: Headers = [("Content-Encoding", "br, x-gzip")].into_iter().collect();
        assert_eq!(strip_gzip(&mut h), 1);
        assert_eq!(h.get_str("content-encoding"), Some("br"));
        let mut h: Headers = [("Content-Encoding", "gzip, br")].into_iter().collect();
        assert_eq!(strip_gzip(&mut h), 0);
        assert_eq!(h.get_str("content-encoding"), Some("gzip, br"));
        let mut h = Headers::new();
        h.add("Content-Encoding", "br, gzip");
        h.add("Content-Encoding", "identity, GZIP");
        assert_eq!(strip_gzip(&mut h), 2);
        assert_eq!(h.get_str("content-encoding"), Some("br"));
    }
}
