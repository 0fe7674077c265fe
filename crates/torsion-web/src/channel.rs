//! The HTTP/1.1 connection protocol (Twisted's `HTTPChannel`): reads requests, hands them to
//! the site's resources, and writes the responses back in order.
//!
//! Limits, each with its status: malformed request 400, URI too long 414, head too large or too
//! many headers 431, body too large 413, unknown framing 400/501. A client that sends its head
//! too slowly is answered 408 and closed (slowloris); an idle keep-alive connection is closed.
//! A request body is read under its own time-out between two reads
//! ([`SiteConfig::body_timeout`](crate::site::SiteConfig::body_timeout), default 60 s; 408 and
//! close), and spooled to a temporary file past
//! [`SiteConfig::body_spool_threshold`](crate::site::SiteConfig::body_spool_threshold)
//! (default 100,000 bytes), so a slow upload holds a bounded amount of memory. A
//! `Content-Length` over [`SiteConfig::max_body`](crate::site::SiteConfig::max_body) (default
//! 10 MiB) is answered 413 from the head, before any of the body (and with no `100 Continue`).
//! For a request with a body, the resource is found once the head is in; one that
//! [answers before the body](crate::resource::Resource::answers_before_body) (a static file
//! asked to POST) is rendered at once, and the body read and dropped.
//! Pipelined requests are parsed while earlier ones are still rendering, up to a depth, and
//! while the connection's write buffer is under its high watermark; past either, parsing stops
//! and so does reading from the socket, until the responses have gone out. A client that
//! pipelines and never reads so holds at most the write buffer's high watermark, one response
//! and one read of unparsed requests. An HTTP/1.1 request without exactly one `Host` header is
//! answered 400 (RFC 9112 3.2). Nothing here panics on input or buffers past a limit. Asked to
//! drain (a graceful shutdown), an idle connection closes at once and a busy one after its
//! response.

pub mod http2;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use torsion::producer::{Producer, ProducerError};
use torsion::reactor::DelayedCall;
use torsion::ConnectionEnd;
use torsion::{Failure, Protocol, Transport};

use crate::proto::{
    html_escape, parse_request_head, reason_phrase, request_body_kind, BodyKind, ChunkedDecoder,
    ParseError, Version,
};
use crate::request::{BodyError, BodySink, Request, RequestChannel, Upgraded};
use crate::resource::{allow_header, resource_for_request, Render, Resource};
use crate::session::SessionSite;
use crate::site_state::SiteInner;
use http2::{Http2Connection, PREFACE};

/// A request whose body is being read.
struct Incoming {
    request: Request,
    /// In memory while small, then a temporary file.
    body: BodySink,
    framing: BodyFraming,
    /// The resource, found once the head was in (`None`: no resource, 404).
    found: Option<Rc<dyn Resource>>,
    /// The request was answered before its body (the resource did not need it): the body is
    /// read and dropped.
    discard: bool,
}

enum BodyFraming {
    Length(u64),
    Chunked(ChunkedDecoder),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    Idle,
    Head,
    /// Between two reads of a request body.
    Body,
}

/// The requests read and not yet answered, in order. The first is held in place: a
/// connection that is not pipelining (nearly all of them) allocates nothing for its queue.
#[derive(Default)]
struct Pipeline {
    /// The front request; `None` only when the queue is empty.
    head: Option<Request>,
    /// The requests behind it, boxed: a connection that never pipelines carries one pointer
    /// (an empty `VecDeque` is four words, in every idle connection).
    #[allow(
        clippy::box_collection,
        reason = "the box is what keeps an unused queue to one pointer"
    )]
    more: Option<Box<VecDeque<Request>>>,
}

impl Pipeline {
    fn front(&self) -> Option<&Request> {
        self.head.as_ref()
    }

    fn push_back(&mut self, request: Request) {
        if self.head.is_none() {
            self.head = Some(request);
        } else {
            self.more
                .get_or_insert_with(Box::default)
                .push_back(request);
        }
    }

    fn pop_front(&mut self) -> Option<Request> {
        let front = self.head.take();
        self.head = self.more.as_mut().and_then(|m| m.pop_front());
        front
    }

    fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.more.as_ref().map_or(0, |m| m.len())
    }

    fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    fn clear(&mut self) {
        self.head = None;
        self.more = None;
    }

    fn take_all(&mut self) -> Vec<Request> {
        let mut all: Vec<Request> = self.head.take().into_iter().collect();
        all.extend(self.more.take().into_iter().flat_map(|m| *m));
        all
    }
}

/// The reading side of a channel. What it is reading: a request head while `body` is `None`,
/// a request body while it is `Some`, nothing more once the channel's `read_done` is set.
struct Reader {
    /// The start of a request that has not fully arrived, or requests held back by flow
    /// control; boxed, as most connections never need it and every connection carries the
    /// field.
    #[allow(
        clippy::box_collection,
        reason = "8 bytes in every idle connection instead of a 24-byte Vec"
    )]
    buf: Option<Box<Vec<u8>>>,
    /// The request whose body is being read; boxed, as only requests with a body need it.
    body: Option<Box<Incoming>>,
}

/// The part of a channel its requests talk to.
///
/// Every connection carries one, idle or not, so it is kept within 120 bytes (a 144-byte heap
/// chunk with its counts): fields that are only swapped or copied are `Cell`s rather than
/// `RefCell`s (no borrow flag), and the rare parts (a body being read, an upgraded protocol)
/// are behind one thin pointer each.
pub(crate) struct ChannelShared {
    /// Taken out and put back to clone it (`transport()`): a `Cell` has no borrow flag.
    transport: Cell<Option<Transport>>,
    queue: RefCell<Pipeline>,
    site: Rc<SiteInner>,
    /// What is being read: owned here rather than by the protocol so that parsing held back by
    /// flow control can go on once the responses are out, without new bytes arriving.
    reader: RefCell<Reader>,
    /// Close once the queued responses are out.
    closing: Cell<bool>,
    /// Parsing stopped (and the transport's reading paused): too many requests in flight, or
    /// too many response bytes waiting to be sent.
    paused: Cell<bool>,
    /// Registered as the transport's pull producer, to hear when its write buffer is empty.
    watching: Cell<bool>,
    /// What the connection's timer is armed for; `None` when disarmed.
    armed: Cell<Option<TimerKind>>,
    /// The timer's call. A disarmed call is left scheduled (it does nothing when it fires) so
    /// that the next `arm`, once per request, moves it instead of scheduling a new one (a
    /// move later costs the timer no heap push).
    timer: Cell<Option<DelayedCall>>,
    /// The protocol that took the connection over from HTTP (a WebSocket, HTTP/2), once a
    /// request was answered `101 Switching Protocols` or the connection chose HTTP/2: every
    /// byte read goes to it from then on. Out of its cell while it runs (`with_upgraded`);
    /// boxed twice so the cell is one pointer in the connections that never upgrade.
    #[allow(
        clippy::redundant_allocation,
        reason = "the outer box keeps the cell to one pointer in every idle connection"
    )]
    upgraded: Cell<Option<Box<Box<dyn Upgraded>>>>,
    /// The upgraded protocol is running (out of its cell): a call from inside it.
    upgraded_running: Cell<bool>,
    /// HTTP/1.1 or HTTP/2 was chosen from the ALPN and the first bytes.
    protocol_chosen: Cell<bool>,
    /// A request asked to close the connection: nothing after it is read.
    stop_reading: Cell<bool>,
    /// Nothing more is read: an error response was sent, or the connection is closing.
    read_done: Cell<bool>,
    me: Weak<ChannelShared>,
}

impl RequestChannel for ChannelShared {
    fn transport(&self) -> Option<Transport> {
        let t = self.transport.take();
        let copy = t.clone();
        self.transport.set(t);
        copy
    }

    fn buffered_size(&self) -> usize {
        self.transport().map_or(0, |t| t.buffered_size())
    }

    fn session_site(&self) -> Rc<dyn SessionSite> {
        self.site.clone()
    }

    fn server_name(&self) -> &str {
        &self.site.config.server_name
    }

    fn closing(&self) -> bool {
        self.closing.get()
    }

    fn request_finished(&self, line: &dyn Fn() -> String) {
        self.site.request_finished(line);
    }

    fn take_over(&self, request: &Request, handler: Box<dyn Upgraded>) -> Option<Transport> {
        let t = self.transport()?;
        let alone = self.queue.borrow().len() == 1
            && self.queue.borrow().front().is_some_and(|f| f.same(request));
        if !alone || request.wants_close() || self.closing.get() || self.is_upgraded() {
            return None;
        }
        self.cancel_timer();
        if self.paused.replace(false) {
            t.resume_producing();
        }
        if self.watching.replace(false) {
            t.unregister_producer();
        }
        self.upgraded.set(Some(Box::new(handler)));
        Some(t)
    }

    fn front_transport(&self, request: &Request) -> Option<Transport> {
        let front_is_it = self.queue.borrow().front().is_some_and(|f| f.same(request));
        if front_is_it {
            self.transport()
        } else {
            None
        }
    }

    /// Sends what the front requests have ready, in order; starts the idle timer or closes the
    /// connection when the queue empties.
    fn pump(&self) {
        let Some(t) = self.transport() else {
            return;
        };
        loop {
            let front = self.queue.borrow().front().cloned();
            let Some(front) = front else { break };
            let out = front.take_output();
            if !out.is_empty() {
                t.write(&out);
            }
            if !front.finished() {
                // Its output goes straight out now: its body producer may start.
                front.attach_producer(&t);
                return;
            }
            self.queue.borrow_mut().pop_front();
            if self.is_upgraded() {
                // The response was the 101 of an upgrade: the connection is no longer HTTP.
                return;
            }
            if front.wants_close() {
                // Nothing after a request that closes was read, so nothing else is queued.
                self.queue.borrow_mut().clear();
                t.lose_connection();
                return;
            }
        }
        if self.closing.get() {
            // Every queued response is out; the connection was to close after them.
            t.lose_connection();
            return;
        }
        if self.timer_kind() != Some(TimerKind::Body) {
            // A body still arriving keeps its own time-out.
            self.arm(TimerKind::Idle);
        }
        self.resume_reading();
    }
}

/// The channel watches its transport's write buffer as a pull producer: it is asked to
/// produce once everything written has been sent, and then parses the requests it held back.
impl Producer for ChannelShared {
    fn resume_producing(&self) {
        if self.watching.replace(false) {
            if let Some(t) = self.transport() {
                t.unregister_producer();
            }
            self.resume_reading();
        }
    }

    fn stop_producing(&self) {
        self.watching.set(false);
    }
}

impl ChannelShared {
    /// Starts (or restarts) the connection's timer.
    fn arm(&self, kind: TimerKind) {
        let secs = match kind {
            TimerKind::Idle => self.site.config.idle_timeout,
            TimerKind::Head => self.site.config.header_timeout,
            TimerKind::Body => self.site.config.body_timeout,
        };
        let Some(secs) = secs else {
            return self.disarm();
        };
        let call = self.timer.take();
        let moved = call.as_ref().is_some_and(|call| call.reset(secs).is_ok());
        self.timer.set(call);
        if moved {
            self.armed.set(Some(kind));
            return;
        }
        let me = self.me.clone();
        let call = self.site.clock().call_later_boxed(
            secs,
            Box::new(move || {
                if let Some(c) = me.upgrade() {
                    c.timed_out();
                }
            }),
        );
        self.timer.set(Some(call));
        self.armed.set(Some(kind));
    }

    /// Disarms the timer; its call stays scheduled for the next `arm` to move.
    fn disarm(&self) {
        self.armed.set(None);
    }

    /// Disarms the timer and cancels its call (the connection is ending).
    fn cancel_timer(&self) {
        self.armed.set(None);
        if let Some(call) = self.timer.take() {
            let _ = call.cancel();
        }
    }

    fn timer_kind(&self) -> Option<TimerKind> {
        self.armed.get()
    }

    fn timed_out(&self) {
        // The call ran: it is gone from the timer.
        self.timer.take();
        let kind = self.armed.take();
        let Some(kind) = kind else {
            // Disarmed since it was scheduled.
            return;
        };
        let Some(t) = self.transport() else {
            return;
        };
        match kind {
            TimerKind::Idle => t.lose_connection(),
            TimerKind::Head => {
                tracing::info!(target: "torsion_web", peer = %t.get_peer(), "request head not received in time; closing");
                if self.queue.borrow().is_empty() {
                    t.write(&error_response(408, "The request took too long to arrive."));
                }
                t.lose_connection();
            }
            TimerKind::Body => {
                tracing::info!(target: "torsion_web", peer = %t.get_peer(), "request body stalled past the body time-out; closing");
                // A request whose body is being read is not queued yet, unless it was answered
                // before its body: with nothing queued, nothing was sent for it (a `100
                // Continue` aside).
                let answered = self
                    .reader
                    .try_borrow()
                    .map_or(true, |r| r.body.as_ref().is_some_and(|i| i.discard));
                if !answered && self.queue.borrow().is_empty() {
                    t.write(&error_response(
                        408,
                        "The request body took too long to arrive.",
                    ));
                }
                t.lose_connection();
            }
        }
    }
}

/// The HTTP/1.1 server protocol for one connection. Made by [`Site`](crate::site::Site).
pub struct HttpChannel {
    shared: Rc<ChannelShared>,
}

impl HttpChannel {
    pub(crate) fn new(site: Rc<SiteInner>) -> HttpChannel {
        let shared = Rc::new_cyclic(|me| ChannelShared {
            transport: Cell::new(None),
            queue: RefCell::default(),
            site,
            reader: RefCell::new(Reader {
                buf: None,
                body: None,
            }),
            closing: Cell::new(false),
            paused: Cell::new(false),
            watching: Cell::new(false),
            armed: Cell::new(None),
            timer: Cell::new(None),
            upgraded: Cell::new(None),
            upgraded_running: Cell::new(false),
            protocol_chosen: Cell::new(false),
            stop_reading: Cell::new(false),
            read_done: Cell::new(false),
            me: me.clone(),
        });
        HttpChannel { shared }
    }
}

impl ChannelShared {
    /// True when the next request must wait: too many in flight, or the write buffer over its
    /// high watermark (responses the client has not read yet).
    fn must_wait(&self, t: &Transport) -> bool {
        self.queue.borrow().len() >= self.site.config.max_pipeline
            || t.buffered_size() > t.write_buffer_limits().0
    }

    /// Stops parsing and reading until the connection can take more; false when nothing would
    /// say when (the transport has no flow control for the channel): parsing goes on then.
    fn pause(&self, t: &Transport) -> bool {
        if self.queue.borrow().is_empty() && !self.watching.get() {
            // No response left to finish and call `pump`: ask the transport to say when its
            // write buffer is empty.
            let me: Option<Rc<dyn Producer>> = self.me.upgrade().map(|m| m as Rc<dyn Producer>);
            let Some(me) = me else { return false };
            match t.register_producer(me, false) {
                Ok(()) => self.watching.set(true),
                // The connection is closing: nothing more will be answered anyway.
                Err(ProducerError::Disconnected) => {}
                Err(e) => {
                    tracing::debug!(target: "torsion_web", "cannot watch the write buffer: {e}");
                    return false;
                }
            }
        }
        if !self.paused.replace(true) {
            t.pause_producing();
        }
        true
    }

    /// Parsing may go on: reads again, and stops watching the write buffer.
    fn unpause(&self, t: &Transport) {
        self.paused.set(false);
        t.resume_producing();
        if self.watching.replace(false) {
            t.unregister_producer();
        }
    }

    /// Responses went out: parses the requests held back, if parsing was paused and may go on.
    fn resume_reading(&self) {
        if !self.paused.get() {
            return;
        }
        let Some(t) = self.transport() else { return };
        // Busy: this is a response finishing while requests are parsed, and the parsing loop
        // looks again before the next one.
        let Ok(mut reader) = self.reader.try_borrow_mut() else {
            return;
        };
        if self.must_wait(&t) && self.pause(&t) {
            return;
        }
        self.unpause(&t);
        if let Some(mut buf) = reader.buf.take() {
            let used = self.process(&mut reader, &t, &buf);
            if used < buf.len() && !self.read_done.get() {
                buf.drain(..used);
                reader.buf = Some(buf);
            }
        }
    }

    /// Takes bytes from the connection: parses what it can and keeps the rest.
    fn receive(&self, t: &Transport, data: &[u8]) {
        if !self.protocol_chosen.get() && self.choose_protocol(t, data) {
            return;
        }
        if self.pass_upgraded(t, data) {
            return;
        }
        let mut reader = self.reader.borrow_mut();
        let r = &mut *reader;
        if self.read_done.get() {
            return;
        }
        if self.timer_kind() == Some(TimerKind::Idle) {
            self.disarm();
        }
        let Some(mut buf) = r.buf.take() else {
            // The usual case: requests parsed straight from the read, and only a partial one
            // (or what flow control held back) copied, so that an idle connection keeps no
            // buffer.
            let used = self.process(r, t, data);
            if used < data.len() && !self.read_done.get() {
                r.buf = Some(Box::new(data[used..].to_vec()));
            }
            return;
        };
        buf.extend_from_slice(data);
        if self.paused.get() {
            // Reading is paused; these bytes were already on their way. They wait with the rest.
            r.buf = Some(buf);
            return;
        }
        let used = self.process(r, t, &buf);
        if used < buf.len() && !self.read_done.get() {
            buf.drain(..used);
            r.buf = Some(buf);
        }
    }

    /// Chooses HTTP/2 for a connection whose TLS handshake agreed on `h2` (ALPN), or whose
    /// first bytes are the HTTP/2 connection preface (prior-knowledge h2c, RFC 9113 3.3);
    /// HTTP/1.1 otherwise. True when `data` was taken: handed to HTTP/2, or kept because it
    /// is a beginning of the preface too short to tell.
    fn choose_protocol(&self, t: &Transport, data: &[u8]) -> bool {
        if !self.site.config.http2.enabled {
            self.protocol_chosen.set(true);
            return false;
        }
        let mut reader = self.reader.borrow_mut();
        let seen: std::borrow::Cow<'_, [u8]> = match reader.buf.take() {
            None => data.into(),
            Some(mut buf) => {
                buf.extend_from_slice(data);
                (*buf).into()
            }
        };
        let n = seen.len().min(PREFACE.len());
        let alpn_h2 = t.tls().is_some() && t.negotiated_protocol().as_deref() == Some(b"h2");
        if !alpn_h2 && seen[..n] != PREFACE[..n] {
            self.protocol_chosen.set(true);
            return match seen {
                std::borrow::Cow::Borrowed(_) => false,
                std::borrow::Cow::Owned(all) => {
                    // Bytes kept while it was undecided: parsed with these as HTTP/1.1.
                    drop(reader);
                    self.receive(t, &all);
                    true
                }
            };
        }
        if !alpn_h2 && n < PREFACE.len() {
            reader.buf = Some(Box::new(seen.into_owned()));
            return true;
        }
        self.protocol_chosen.set(true);
        drop(reader);
        self.cancel_timer();
        if self.watching.replace(false) {
            t.unregister_producer();
        }
        if self.paused.replace(false) {
            t.resume_producing();
        }
        self.upgraded
            .set(Some(Box::new(Box::new(Http2Connection::start(
                self.site.clone(),
                t.clone(),
            )))));
        self.pass_upgraded(t, &seen);
        true
    }

    /// Hands `data` to the protocol that took the connection over; false when there is none.
    fn pass_upgraded(&self, t: &Transport, data: &[u8]) -> bool {
        if self.upgraded_running.get() {
            // Called from inside the upgraded protocol: nothing the channel reads then.
            return true;
        }
        self.with_upgraded(|handler| {
            if !data.is_empty() {
                handler.data_received(t, data);
            }
        })
        .is_some()
    }

    /// Runs `f` with the protocol that took the connection over; `None` when there is none,
    /// or when it is running already (a call from inside it).
    fn with_upgraded<R>(&self, f: impl FnOnce(&mut dyn Upgraded) -> R) -> Option<R> {
        /// Puts the protocol back in its cell, even if it panicked.
        struct Back<'a>(&'a ChannelShared, Option<Box<Box<dyn Upgraded>>>);
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                self.0.upgraded_running.set(false);
                self.0.upgraded.set(self.1.take());
            }
        }
        let up = self.upgraded.take()?;
        self.upgraded_running.set(true);
        let mut back = Back(self, Some(up));
        let handler = back.1.as_mut().expect("put in just above");
        Some(f(&mut ***handler))
    }

    /// A protocol took the connection over from HTTP.
    fn is_upgraded(&self) -> bool {
        if self.upgraded_running.get() {
            return true;
        }
        let up = self.upgraded.take();
        let there = up.is_some();
        self.upgraded.set(up);
        there
    }

    /// Answers a request that could not be read, and closes; all of `input` counts as used.
    fn reject(&self, r: &mut Reader, t: &Transport, error: &ParseError, input: &[u8]) -> usize {
        tracing::info!(target: "torsion_web", peer = %t.get_peer(), "bad request: {error}; closing");
        self.refuse(r, t, error.status(), &error.to_string(), input)
    }

    /// A request body could not be stored (its temporary file failed): 500, and close.
    fn spool_failed(
        &self,
        r: &mut Reader,
        t: &Transport,
        e: &std::io::Error,
        input: &[u8],
    ) -> usize {
        tracing::error!(target: "torsion_web", peer = %t.get_peer(), "cannot spool a request body to a temporary file: {e}; closing");
        self.refuse(r, t, 500, "The request body could not be stored.", input)
    }

    /// A request body was refused (its form broke a limit or is malformed: 413 or 400) or
    /// could not be stored (500): answer, and close.
    fn body_failed(&self, r: &mut Reader, t: &Transport, e: BodyError, input: &[u8]) -> usize {
        match e {
            BodyError::Io(e) => self.spool_failed(r, t, &e, input),
            BodyError::Form(e) => {
                tracing::info!(target: "torsion_web", peer = %t.get_peer(), "form refused: {e}; closing");
                self.refuse(r, t, e.status(), e.message(), input)
            }
        }
    }

    /// Answers `code` (unless earlier responses are still due) and closes; all of `input`
    /// counts as used.
    fn refuse(
        &self,
        r: &mut Reader,
        t: &Transport,
        code: u16,
        detail: &str,
        input: &[u8],
    ) -> usize {
        self.read_done.set(true);
        r.body = None;
        r.buf = None;
        self.cancel_timer();
        self.closing.set(true);
        if self.queue.borrow().is_empty() {
            t.write(&error_response(code, detail));
            t.lose_connection();
        }
        // Otherwise earlier responses go out first; pump() closes after them.
        input.len()
    }

    /// Parses as much of `input` as it can; returns how much was used (all of it once the
    /// channel reads no more).
    fn process(&self, r: &mut Reader, t: &Transport, input: &[u8]) -> usize {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            if self.pass_upgraded(t, rest) {
                // A request upgraded the connection: what follows it is the new protocol's.
                return input.len();
            }
            if self.read_done.get() {
                return input.len();
            }
            match &mut r.body {
                None if self.stop_reading.get() || self.closing.get() => {
                    // Nothing after a request that closes the connection is read (RFC 9112
                    // 9.6): drop the rest.
                    self.read_done.set(true);
                    return input.len();
                }
                None => {
                    if rest.is_empty() {
                        return pos;
                    }
                    if self.must_wait(t) && self.pause(t) {
                        // Too many requests in flight, or too many response bytes unsent:
                        // stop reading until responses go out (`resume_reading`).
                        return pos;
                    }
                    if self.paused.get() {
                        self.unpause(t);
                    }
                    let limits = &self.site.config.limits;
                    match parse_request_head(rest, limits) {
                        Err(e) => return self.reject(r, t, &e, input),
                        Ok(None) => {
                            if self.timer_kind() != Some(TimerKind::Head) {
                                self.arm(TimerKind::Head);
                            }
                            return pos;
                        }
                        Ok(Some((head, used))) => {
                            pos += used;
                            self.disarm();
                            if head.version == Version::Http11
                                && head.headers.get_all("host").take(2).count() != 1
                            {
                                // RFC 9112 3.2: exactly one Host in an HTTP/1.1 request.
                                let why = ParseError::Malformed(
                                    "an HTTP/1.1 request needs exactly one Host header",
                                );
                                return self.reject(r, t, &why, input);
                            }
                            let framing = match request_body_kind(&head) {
                                Err(e) => return self.reject(r, t, &e, input),
                                Ok(kind) => kind,
                            };
                            let max_body = self.site.config.max_body;
                            let continue_ok = head.version == Version::Http11
                                && head.headers.has_token("expect", "100-continue");
                            let channel: Weak<ChannelShared> = self.me.clone();
                            let request = Request::new(head, t.get_peer(), t.get_host(), channel);
                            let expected = match framing {
                                BodyKind::Length(n) => Some(n),
                                _ => None,
                            };
                            let framing = match framing {
                                BodyKind::Empty => {
                                    self.dispatch(request);
                                    continue;
                                }
                                BodyKind::Length(n) if n > max_body => {
                                    return self.reject(r, t, &ParseError::BodyTooLarge, input)
                                }
                                BodyKind::Length(0) => {
                                    self.dispatch(request);
                                    continue;
                                }
                                BodyKind::Length(n) => BodyFraming::Length(n),
                                BodyKind::Chunked => {
                                    BodyFraming::Chunked(ChunkedDecoder::new(max_body))
                                }
                                BodyKind::UntilClose => {
                                    return self.reject(
                                        r,
                                        t,
                                        &ParseError::Malformed("request body without a length"),
                                        input,
                                    )
                                }
                            };
                            // The resource is found now, so that one that answers without the
                            // body (a static file asked to POST) does so before it arrives.
                            let root = self.site.root.clone();
                            let walked = catch_unwind(AssertUnwindSafe(|| {
                                let found = resource_for_request(&root, &request);
                                let early = found
                                    .as_ref()
                                    .is_some_and(|f| f.answers_before_body(&request));
                                (found, early)
                            }));
                            let (found, early) = match walked {
                                Ok(w) => w,
                                Err(payload) => {
                                    let f = Failure::from_panic(payload);
                                    torsion::log::err(
                                        &f,
                                        &format!(
                                            "finding the resource for {} {} panicked",
                                            request.method(),
                                            request.uri()
                                        ),
                                    );
                                    return self.refuse(
                                        r,
                                        t,
                                        500,
                                        "An error occurred while finding this resource; it has been logged.",
                                        input,
                                    );
                                }
                            };
                            if early {
                                if continue_ok {
                                    // The client waits for a 100 to send the body: it gets the
                                    // answer instead, and the connection closes after it.
                                    request.close_after();
                                    self.dispatch_found(request, Some(found));
                                    continue;
                                }
                                self.dispatch_found(request.clone(), Some(found));
                                r.body = Some(Box::new(Incoming {
                                    request,
                                    body: BodySink::discard(),
                                    framing,
                                    found: None,
                                    discard: true,
                                }));
                                self.arm(TimerKind::Body);
                                continue;
                            }
                            if continue_ok && self.queue.borrow().is_empty() {
                                t.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                            }
                            let mut body = match BodySink::new(
                                self.site.config.body_spool_threshold,
                                expected,
                            ) {
                                Ok(body) => body,
                                Err(e) => return self.spool_failed(r, t, &e, input),
                            };
                            body.parse_form(
                                request.get_header("content-type"),
                                self.site.config.forms,
                            );
                            r.body = Some(Box::new(Incoming {
                                request,
                                body,
                                framing,
                                found,
                                discard: false,
                            }));
                            self.arm(TimerKind::Body);
                        }
                    }
                }
                Some(incoming) => {
                    let Incoming { body, framing, .. } = &mut **incoming;
                    let complete = match framing {
                        BodyFraming::Length(remaining) => {
                            let take = (*remaining).min(rest.len() as u64) as usize;
                            if let Err(e) = body.push(&rest[..take]) {
                                return self.body_failed(r, t, e, input);
                            }
                            pos += take;
                            *remaining -= take as u64;
                            *remaining == 0
                        }
                        BodyFraming::Chunked(decoder) => match body.push_chunked(decoder, rest) {
                            Ok(Ok(used)) => {
                                pos += used;
                                decoder.is_done()
                            }
                            Ok(Err(e)) => return self.body_failed(r, t, e, input),
                            Err(e) => return self.reject(r, t, &e, input),
                        },
                    };
                    if !complete {
                        // More of the body is due: the time-out starts again from this read.
                        self.arm(TimerKind::Body);
                        return pos;
                    }
                    self.disarm();
                    let Some(incoming) = r.body.take() else {
                        unreachable!("matched just above")
                    };
                    let Incoming {
                        request,
                        body,
                        found,
                        discard,
                        ..
                    } = *incoming;
                    if discard {
                        // Answered already; the connection goes on with the next request, idle
                        // until it comes if the answer is out (else `pump` arms it after).
                        if self.queue.borrow().is_empty() {
                            self.arm(TimerKind::Idle);
                        }
                        continue;
                    }
                    match body.finish() {
                        Ok((body, form)) => request.set_body_and_form(body, form),
                        Err(e) => return self.body_failed(r, t, e, input),
                    }
                    self.dispatch_found(request, Some(found));
                }
            }
        }
    }

    /// Finds the resource and renders the request.
    fn dispatch(&self, request: Request) {
        self.dispatch_found(request, None);
    }

    /// Renders the request with the resource found for it (`Some(None)`: none, 404), or
    /// finds it first (`None`).
    fn dispatch_found(&self, request: Request, found: Option<Option<Rc<dyn Resource>>>) {
        if request.wants_close() {
            // Read no further requests; the connection closes after this one's response.
            self.stop_reading.set(true);
        }
        self.queue.borrow_mut().push_back(request.clone());
        render(&self.site.root, request, found);
    }
}

/// Renders `request` with the resource found for it (`Some(None)`: none, 404), or finds it
/// first (`None`), and finishes it with what the resource returned (at once, or when its
/// Deferred fires). A panic or a failure is a 500, logged. HTTP/1.1 and HTTP/2 share it.
pub(crate) fn render(
    root: &Rc<dyn Resource>,
    request: Request,
    found: Option<Option<Rc<dyn Resource>>>,
) {
    {
        let root = root.clone();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let found = match found {
                Some(found) => found,
                None => resource_for_request(&root, &request),
            };
            match found {
                None => Some(Render::Body(no_resource(&request))),
                Some(resource) => {
                    let render = resource.render(&request);
                    if let Render::NotAllowed = render {
                        let allow = allow_header(&*resource);
                        request.set_header("Allow", allow.clone());
                        if request.method() == "OPTIONS" {
                            // The resource leaves OPTIONS to the server: what it allows.
                            return Some(Render::Body(Vec::new()));
                        }
                        request.set_response_code(405);
                        return Some(Render::Body(error_page(
                        405,
                        &format!("Your browser approached me (at {}) with the method \"{}\". I only allow the method{} {} here.",
                            html_escape(request.uri()), html_escape(request.method()),
                            if allow.contains(',') { "s" } else { "" }, allow),
                    )));
                    }
                    Some(render)
                }
            }
        }));
        let render = match outcome {
            Ok(r) => r,
            Err(payload) => {
                let f = Failure::from_panic(payload);
                torsion::log::err(
                    &f,
                    &format!(
                        "rendering {} {} for {} panicked",
                        request.method(),
                        request.uri(),
                        request.get_client_address()
                    ),
                );
                server_error(&request);
                return;
            }
        };
        match render {
            Some(Render::Body(body)) => finish_with(&request, &body),
            Some(Render::Bytes(body)) => finish_with(&request, &body),
            Some(Render::NotDoneYet) | None => {}
            Some(Render::Later(d)) => {
                let req = request.clone();
                d.add_both(move |out| {
                    match out {
                        Ok(body) => finish_with(&req, &body),
                        Err(f) => {
                            torsion::log::err(
                                &f,
                                &format!(
                                    "rendering {} {} for {} failed",
                                    req.method(),
                                    req.uri(),
                                    req.get_client_address()
                                ),
                            );
                            server_error(&req);
                        }
                    }
                    Ok::<(), Failure>(())
                });
            }
            Some(Render::NotAllowed) => unreachable!("handled above"),
        }
    }
}

/// Sends a whole body with its length, and finishes.
fn finish_with(request: &Request, body: &[u8]) {
    if request.finished() {
        return;
    }
    request.set_body_length(body.len());
    // The client may have left while a deferred render ran: nothing to warn about.
    let _ = request.try_write(body);
    let _ = request.try_finish();
}

/// A 500 page, or (if the head already went out) an aborted response.
fn server_error(request: &Request) {
    if request.started() {
        // The head is out: end the response without completing its framing (no final
        // chunk) and close after it, so the client can tell the body was cut short.
        request.abort_response();
        return;
    }
    request.set_response_code(500);
    finish_with(
        request,
        &error_page(
            500,
            "An error occurred while rendering this resource; it has been logged.",
        ),
    );
}

fn no_resource(request: &Request) -> Vec<u8> {
    request.set_response_code(404);
    error_page(404, "Sorry. No luck finding that resource.")
}

/// A small HTML error page, as Twisted's `ErrorPage`.
pub(crate) fn error_page(code: u16, detail: &str) -> Vec<u8> {
    let title = reason_phrase(code);
    format!(
        "<html>\n  <head><title>{code} - {title}</title></head>\n  <body>\n    <h1>{title}</h1>\n    <p>{detail}</p>\n  </body>\n</html>\n"
    )
    .into_bytes()
}

/// A whole error response, for requests that could not be read.
fn error_response(code: u16, detail: &str) -> Vec<u8> {
    let body = error_page(code, &html_escape(detail));
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason_phrase(code),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

impl Protocol for HttpChannel {
    fn connection_made(&mut self, transport: &Transport) {
        self.shared.transport.set(Some(transport.clone()));
        self.shared.arm(TimerKind::Idle);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.shared.receive(transport, data);
    }

    /// Graceful shutdown: between requests (an idle keep-alive connection, or one whose next
    /// request head has not fully arrived) the connection closes at once; in a request, it
    /// finishes the responses already asked for (marked `Connection: close` if their head
    /// is not out yet), reads nothing more, and closes after them.
    fn drain(&mut self, transport: &Transport) {
        if self
            .shared
            .with_upgraded(|up| up.drain(transport))
            .is_some()
        {
            return;
        }
        self.shared.closing.set(true);
        let mut reader = self.shared.reader.borrow_mut();
        let between_requests = self.shared.queue.borrow().is_empty() && reader.body.is_none();
        if between_requests {
            self.shared.cancel_timer();
            self.shared.read_done.set(true);
            reader.buf = None;
            transport.lose_connection();
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.shared.cancel_timer();
        let clean = reason.is_clean();
        let pending: Vec<Request> = self.shared.queue.borrow_mut().take_all();
        self.shared.watching.set(false);
        let mut reader = self.shared.reader.borrow_mut();
        self.shared.read_done.set(true);
        let reading = reader.body.take();
        reader.buf = None;
        drop(reader);
        if let Some(incoming) = &reading {
            incoming.request.connection_lost(clean);
        }
        for r in pending {
            r.connection_lost(clean);
        }
        self.shared.transport.take();
        let upgraded = self.shared.upgraded.take();
        if let Some(mut up) = upgraded {
            up.connection_lost(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection carries its channel's shared state, idle or not, in an `Rc`: with the
    /// `Rc`'s two counts it must fit glibc's 144-byte heap chunk (a request is rounded up to
    /// 16 bytes after 8 of header), so that an idle `torsiond web` connection stays under half
    /// a KiB.
    #[test]
    fn a_channels_shared_state_fits_its_heap_chunk() {
        let size = std::mem::size_of::<ChannelShared>();
        assert!(size <= 120, "ChannelShared is {size} bytes");
    }
}
