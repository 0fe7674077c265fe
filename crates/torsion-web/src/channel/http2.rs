//! HTTP/2 (RFC 9113) for a [`Site`](crate::site::Site), on the `h2` crate: the same
//! resource tree, the same [`Request`], reached over a multiplexed connection.
//!
//! A site's connection speaks HTTP/2 when its TLS handshake agreed on `h2` by ALPN (offer
//! `h2` and `http/1.1` in the listener's `ServerContext`), or when its first bytes are the
//! connection preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (prior-knowledge h2c on plain TCP,
//! as `curl --http2-prior-knowledge` sends). Everything else is HTTP/1.1, as before.
//!
//! **The bridge.** `h2` is written against tokio's `AsyncRead`/`AsyncWrite`; Torsion's
//! reactor *is* a tokio current-thread runtime, so the codec runs as a task on it. The
//! connection's protocol (the site's channel) pushes every read into the bridge's inbound
//! buffer and wakes that task; `h2` reads from the buffer, and its writes go straight to the
//! connection's [`Transport`] (which gathers nothing then: one `write(2)` per flush of the
//! codec). Reading pauses while the bridge holds 256 KiB that `h2` has not read; the codec's
//! writes wait (as a pull producer of the transport) while the transport holds more than its
//! high watermark. Each stream is one more task: it reads the request body under the
//! stream's flow-control window, renders the request like HTTP/1.1 does, and sends the
//! response as `h2` grants capacity.
//!
//! **Limits** ([`Http2Config`]): at most 100 concurrent streams (more are refused with
//! `REFUSED_STREAM`), a header list of at most 16 KiB (answered 431), frames of at most
//! 16 KiB, and receive windows of 256 KiB per stream and 1 MiB per connection, so uploads
//! hold bounded memory. A response body waits in its stream while the peer's window is
//! closed: a body producer (a static file) is paused past 64 KiB unsent, so a stalled
//! reader costs the server at most about that per stream. The 2023 rapid-reset attack
//! (CVE-2023-44487) is met twice: `h2`'s own caps on streams reset before they are accepted
//! and on streams it resets for protocol errors, and a cap of our own on streams the client
//! resets: past [`Http2Config::max_resets`] in [`Http2Config::reset_interval`] seconds, the
//! connection is closed with `GOAWAY` (`ENHANCE_YOUR_CALM`) and a warning in the log. A
//! connection with no stream open for the site's
//! [`idle_timeout`](crate::site::SiteConfig::idle_timeout) is shut down with `GOAWAY`, as an
//! idle HTTP/1.1 keep-alive connection is closed.
//!
//! ```no_run
//! use torsion_web::{Render, Request, Resource, Site};
//!
//! struct Hello;
//! impl Resource for Hello {
//!     fn is_leaf(&self) -> bool { true }
//!     fn render_get(&self, _req: &Request) -> Render { Render::Body(b"hello".to_vec()) }
//! }
//!
//! # fn main() -> Result<(), torsion::Failure> {
//! let reactor = torsion::reactor();
//! // HTTP/1.1 and prior-knowledge HTTP/2 (h2c) on one port: `curl --http2-prior-knowledge`.
//! reactor.listen_tcp_on(8080, Site::new(Hello), "127.0.0.1")?;
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use torsion::producer::{Producer, ProducerError};
use torsion::reactor::DelayedCall;
use torsion::transport::{Address, TransportImpl};
use torsion::{ConnectionEnd, Transport};

use super::{error_page, render};
use crate::proto::{Headers, RequestHead, Version};
use crate::request::{BodyError, BodySink, Request, RequestChannel, Upgraded};
use crate::session::SessionSite;
use crate::site_state::SiteInner;

/// The HTTP/2 connection preface a client sends first (RFC 9113 3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Inbound bytes the bridge holds before it pauses reading from the socket.
const INBOUND_MAX: usize = 256 * 1024;

/// Response bytes a stream holds (not yet granted by the peer's window) before its body
/// producer is paused.
const STREAM_HIGH_WATER: usize = 64 * 1024;

/// The most response bytes handed to `h2` at once for one stream.
const SEND_CHUNK: usize = 64 * 1024;

pub use crate::site_state::Http2Config;

/// What the connection's protocol and the codec's task share.
struct Bridge {
    site: Rc<SiteInner>,
    transport: Transport,
    /// Read from the socket, not yet read by `h2`.
    inbound: RefCell<BytesMut>,
    /// The connection ended: reads see the end of the stream, writes fail.
    ended: Cell<bool>,
    read_paused: Cell<bool>,
    /// The codec's task, to wake when bytes arrive or something is asked of it.
    task: RefCell<Option<Waker>>,
    /// The codec's writes wait for the transport's buffer to drain.
    writer: RefCell<Option<Waker>>,
    /// Registered as the transport's pull producer, to hear when its buffer drains.
    watching: Cell<bool>,
    /// A graceful shutdown was asked for.
    draining: Cell<bool>,
    /// The client reset too many streams: close with `ENHANCE_YOUR_CALM`.
    calm: Cell<bool>,
    /// Client resets counted since the start of the interval, and when it started.
    resets: Cell<(u32, f64)>,
    /// Armed while the connection has no open stream: the site's idle time-out, after which
    /// the connection is shut down gracefully (`GOAWAY`).
    idle_timer: RefCell<Option<DelayedCall>>,
    me: Weak<Bridge>,
}

impl Bridge {
    /// Arms the idle time-out when the connection has no stream open, disarms it when it has.
    fn watch_idle(&self, busy: bool) {
        let mut timer = self.idle_timer.borrow_mut();
        if busy {
            if let Some(call) = timer.take() {
                let _ = call.cancel();
            }
            return;
        }
        let Some(secs) = self.site.config.idle_timeout else {
            return;
        };
        if timer.is_some() || self.draining.get() {
            return;
        }
        let me = self.me.clone();
        *timer = Some(self.site.clock().call_later_boxed(
            secs,
            Box::new(move || {
                if let Some(b) = me.upgrade() {
                    b.idle_timer.borrow_mut().take();
                    b.draining.set(true);
                    b.wake_task();
                }
            }),
        ));
    }

    fn wake_task(&self) {
        if let Some(w) = self.task.borrow_mut().take() {
            w.wake();
        }
    }

    fn wake_writer(&self) {
        if let Some(w) = self.writer.borrow_mut().take() {
            w.wake();
        }
    }

    /// A stream was reset by the client: counts it, and asks for `GOAWAY` past the cap.
    fn count_reset(&self) {
        let cfg = &self.site.config.http2;
        let now = self.site.clock().seconds();
        let (mut n, mut since) = self.resets.get();
        if now - since > cfg.reset_interval {
            (n, since) = (0, now);
        }
        n += 1;
        self.resets.set((n, since));
        if n > cfg.max_resets && !self.calm.replace(true) {
            tracing::warn!(
                target: "torsion_web",
                "HTTP/2 client {} reset more than {} streams in {} s (rapid reset): closing the connection with GOAWAY (ENHANCE_YOUR_CALM)",
                self.transport.get_peer(),
                cfg.max_resets,
                cfg.reset_interval
            );
            self.wake_task();
        }
    }
}

/// The codec's transport is told when the connection's write buffer drains.
impl Producer for Bridge {
    fn resume_producing(&self) {
        if self.watching.replace(false) {
            self.transport.unregister_producer();
        }
        self.wake_writer();
    }

    fn stop_producing(&self) {
        self.watching.set(false);
        self.wake_writer();
    }
}

/// The connection as `h2` sees it: `AsyncRead` from the bridge's inbound buffer,
/// `AsyncWrite` to the transport.
struct BridgeIo(Rc<Bridge>);

impl AsyncRead for BridgeIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let b = &self.0;
        let mut inbound = b.inbound.borrow_mut();
        if !inbound.is_empty() {
            let n = inbound.len().min(buf.remaining());
            buf.put_slice(&inbound[..n]);
            inbound.advance(n);
            if b.read_paused.get() && inbound.len() < INBOUND_MAX / 2 {
                b.read_paused.set(false);
                b.transport.resume_producing();
            }
            return Poll::Ready(Ok(()));
        }
        if b.ended.get() {
            return Poll::Ready(Ok(()));
        }
        *b.task.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for BridgeIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let b = &self.0;
        if b.ended.get() {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        if b.transport.buffered_size() > b.transport.write_buffer_limits().0 {
            *b.writer.borrow_mut() = Some(cx.waker().clone());
            if !b.watching.get() {
                let me: Option<Rc<dyn Producer>> = b.me.upgrade().map(|m| m as Rc<dyn Producer>);
                if let Some(me) = me {
                    b.watching.set(true);
                    if let Err(e) = b.transport.register_producer(me, false) {
                        b.watching.set(false);
                        if e != ProducerError::Disconnected {
                            tracing::debug!(target: "torsion_web", "HTTP/2 cannot watch the write buffer: {e}");
                        }
                        // Nothing will say when it drains: write anyway.
                        b.writer.borrow_mut().take();
                        b.transport.write(data);
                        return Poll::Ready(Ok(data.len()));
                    }
                }
            }
            return Poll::Pending;
        }
        b.transport.write(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.transport.lose_connection();
        Poll::Ready(Ok(()))
    }
}

/// The protocol of a site's connection once it speaks HTTP/2: hands the bytes read to the
/// codec's task.
pub(crate) struct Http2Connection {
    bridge: Rc<Bridge>,
}

impl Http2Connection {
    /// Starts serving HTTP/2 on `transport` for `site`: the codec's task is spawned on the
    /// reactor, and waits for the bytes [`Upgraded::data_received`] hands it.
    pub(crate) fn start(site: Rc<SiteInner>, transport: Transport) -> Http2Connection {
        let bridge = Rc::new_cyclic(|me| Bridge {
            site,
            transport,
            inbound: RefCell::new(BytesMut::new()),
            ended: Cell::new(false),
            read_paused: Cell::new(false),
            task: RefCell::new(None),
            writer: RefCell::new(None),
            watching: Cell::new(false),
            draining: Cell::new(false),
            calm: Cell::new(false),
            resets: Cell::new((0, 0.0)),
            idle_timer: RefCell::new(None),
            me: me.clone(),
        });
        // The Deferred is not needed: the task ends with the connection.
        drop(torsion::reactor().spawn(serve(bridge.clone())));
        Http2Connection { bridge }
    }
}

impl Upgraded for Http2Connection {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        let b = &self.bridge;
        let mut inbound = b.inbound.borrow_mut();
        inbound.extend_from_slice(data);
        if inbound.len() > INBOUND_MAX && !b.read_paused.replace(true) {
            transport.pause_producing();
        }
        drop(inbound);
        b.wake_task();
    }

    fn drain(&mut self, _transport: &Transport) {
        self.bridge.draining.set(true);
        self.bridge.wake_task();
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.bridge.ended.set(true);
        self.bridge.watch_idle(true);
        self.bridge.watching.set(false);
        self.bridge.wake_task();
        self.bridge.wake_writer();
    }
}

/// The codec's task: the handshake, then each stream the client opens gets a task of its
/// own, until the connection ends.
async fn serve(bridge: Rc<Bridge>) {
    let cfg = &bridge.site.config.http2;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(cfg.max_concurrent_streams)
        .max_header_list_size(cfg.max_header_list_size)
        .max_frame_size(cfg.max_frame_size)
        .initial_window_size(cfg.stream_window)
        .initial_connection_window_size(cfg.connection_window)
        .max_send_buffer_size(SEND_CHUNK)
        .max_pending_accept_reset_streams(cfg.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(cfg.max_local_error_reset_streams));
    let handshake = builder.handshake::<_, Bytes>(BridgeIo(bridge.clone()));
    let mut conn = match handshake.await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(target: "torsion_web", "HTTP/2 handshake with {} failed: {e}", bridge.transport.get_peer());
            bridge.transport.lose_connection();
            return;
        }
    };
    let (mut calmed, mut shutting) = (false, false);
    loop {
        let next = poll_fn(|cx| {
            *bridge.task.borrow_mut() = Some(cx.waker().clone());
            if bridge.calm.get() && !calmed {
                calmed = true;
                conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
            }
            if bridge.draining.get() && !shutting {
                shutting = true;
                conn.graceful_shutdown();
            }
            let next = conn.poll_accept(cx);
            if next.is_pending() {
                bridge.watch_idle(conn.has_streams());
            }
            next
        })
        .await;
        match next {
            Some(Ok((request, respond))) => {
                bridge.watch_idle(true);
                // A plain tokio task (this one runs on the reactor's runtime): no Deferred
                // per stream. A resource's panic is caught by `render` already.
                drop(tokio::task::spawn_local(serve_stream(
                    bridge.clone(),
                    request,
                    respond,
                )));
            }
            Some(Err(e)) => {
                if e.reason() == Some(Reason::ENHANCE_YOUR_CALM) && !calmed {
                    tracing::warn!(
                        target: "torsion_web",
                        "HTTP/2 client {} closed with GOAWAY (ENHANCE_YOUR_CALM): {e}",
                        bridge.transport.get_peer()
                    );
                } else {
                    tracing::debug!(target: "torsion_web", "HTTP/2 connection with {} ended: {e}", bridge.transport.get_peer());
                }
                break;
            }
            None => break,
        }
    }
    bridge.watch_idle(true);
    bridge.transport.lose_connection();
}

/// What a stream's request writes: its response body, waiting for the peer's window.
struct StreamOut {
    pending: VecDeque<Bytes>,
    pending_len: usize,
    /// The stream's task, woken when there is something to send.
    task: Option<Waker>,
    producer: Option<(Rc<dyn Producer>, bool)>,
    /// A pull producer was asked for a chunk and has not written it yet.
    asked: bool,
    /// A streaming producer was paused at the high watermark.
    paused: bool,
    /// Ended by `lose_connection` (end the stream) or `abort_connection` (reset it).
    closed: Option<bool>,
    /// The request asked for a look (`pump`): a producer registered, output written.
    kicked: bool,
}

/// One stream, as its [`Request`] sees it: the channel it reaches and, through a
/// [`Transport`] of its own, the place a body producer writes to.
struct StreamChannel {
    bridge: Rc<Bridge>,
    out: RefCell<StreamOut>,
    transport: RefCell<Option<Transport>>,
}

impl StreamChannel {
    fn wake(&self) {
        let task = self.out.borrow_mut().task.take();
        if let Some(w) = task {
            w.wake();
        }
    }

    fn push(&self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let mut out = self.out.borrow_mut();
        out.pending_len += data.len();
        out.pending.push_back(data);
        out.asked = false;
        let pause = match &out.producer {
            Some((p, true)) if !out.paused && out.pending_len > STREAM_HIGH_WATER => {
                Some(p.clone())
            }
            _ => None,
        };
        if pause.is_some() {
            out.paused = true;
        }
        let task = out.task.take();
        drop(out);
        if let Some(p) = pause {
            p.pause_producing();
        }
        if let Some(w) = task {
            w.wake();
        }
    }
}

impl RequestChannel for StreamChannel {
    fn transport(&self) -> Option<Transport> {
        self.transport.borrow().clone()
    }

    fn buffered_size(&self) -> usize {
        self.out.borrow().pending_len
    }

    fn session_site(&self) -> Rc<dyn SessionSite> {
        self.bridge.site.clone()
    }

    fn server_name(&self) -> &str {
        &self.bridge.site.config.server_name
    }

    fn closing(&self) -> bool {
        false
    }

    fn request_finished(&self, line: &dyn Fn() -> String) {
        self.bridge.site.request_finished(line);
    }

    /// No protocol switch on an HTTP/2 stream (WebSocket over HTTP/2, RFC 8441, is not
    /// offered).
    fn take_over(&self, _request: &Request, _handler: Box<dyn Upgraded>) -> Option<Transport> {
        None
    }

    fn front_transport(&self, _request: &Request) -> Option<Transport> {
        self.transport()
    }

    fn pump(&self) {
        self.out.borrow_mut().kicked = true;
        self.wake();
    }
}

/// The transport a stream's body producer writes to.
struct StreamTransport {
    channel: Weak<StreamChannel>,
    peer: Address,
    host: Address,
}

impl TransportImpl for StreamTransport {
    fn write(&self, data: &[u8]) {
        if let Some(c) = self.channel.upgrade() {
            c.push(Bytes::copy_from_slice(data));
        }
    }

    fn lose_connection(&self) {
        if let Some(c) = self.channel.upgrade() {
            c.out.borrow_mut().closed.get_or_insert(false);
            c.wake();
        }
    }

    fn abort_connection(&self) {
        if let Some(c) = self.channel.upgrade() {
            c.out.borrow_mut().closed = Some(true);
            c.wake();
        }
    }

    fn get_peer(&self) -> Address {
        self.peer.clone()
    }

    fn get_host(&self) -> Address {
        self.host.clone()
    }

    fn buffered_size(&self) -> usize {
        self.channel
            .upgrade()
            .map_or(0, |c| c.out.borrow().pending_len)
    }

    fn is_connected(&self) -> bool {
        self.channel
            .upgrade()
            .is_some_and(|c| c.out.borrow().closed.is_none() && !c.bridge.ended.get())
    }

    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        let Some(c) = self.channel.upgrade() else {
            return Err(ProducerError::Disconnected);
        };
        {
            let mut out = c.out.borrow_mut();
            if out.producer.is_some() {
                return Err(ProducerError::AlreadyRegistered);
            }
            if out.closed.is_some() || c.bridge.ended.get() {
                return Err(ProducerError::Disconnected);
            }
            out.producer = Some((producer, streaming));
            out.asked = false;
            out.paused = false;
        }
        c.wake();
        Ok(())
    }

    fn unregister_producer(&self) {
        if let Some(c) = self.channel.upgrade() {
            c.out.borrow_mut().producer = None;
        }
    }

    fn write_buffer_limits(&self) -> (usize, usize) {
        (STREAM_HIGH_WATER, 0)
    }
}

/// The name of a standard method as a static string (no allocation), else owned.
fn method_name(m: &http::Method) -> Cow<'static, str> {
    for known in [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ] {
        if m.as_str() == known {
            return Cow::Borrowed(known);
        }
    }
    Cow::Owned(m.as_str().to_owned())
}

/// One stream: reads the request body, renders the request, sends the response.
async fn serve_stream(
    bridge: Rc<Bridge>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (parts, mut recv) = request.into_parts();
    let mut headers = Headers::with_capacity(parts.headers.len() + 1, 256);
    let authority = parts.uri.authority().map(|a| a.as_str().to_owned());
    if let Some(a) = &authority {
        headers.add("host", a);
    }
    for (name, value) in &parts.headers {
        if authority.is_some() && name == http::header::HOST {
            continue;
        }
        headers.add(name.as_str(), value.as_bytes());
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let head = RequestHead {
        method: method_name(&parts.method),
        target,
        version: Version::Http2,
        headers,
    };
    let channel = Rc::new(StreamChannel {
        bridge: bridge.clone(),
        out: RefCell::new(StreamOut {
            pending: VecDeque::new(),
            pending_len: 0,
            task: None,
            producer: None,
            asked: false,
            paused: false,
            closed: None,
            kicked: false,
        }),
        transport: RefCell::new(None),
    });
    let peer = bridge.transport.get_peer();
    let host = bridge.transport.get_host();
    *channel.transport.borrow_mut() = Some(Transport::new(Rc::new(StreamTransport {
        channel: Rc::downgrade(&channel),
        peer: peer.clone(),
        host: host.clone(),
    })));
    let weak: Weak<dyn RequestChannel> =
        Rc::downgrade(&(channel.clone() as Rc<dyn RequestChannel>));
    let request = Request::new(head, peer, host, weak);

    if !recv.is_end_stream() {
        match read_body(&bridge, &request, &mut recv, &mut respond).await {
            BodyRead::Done => {}
            BodyRead::Answered => return,
            BodyRead::Lost => {
                request.connection_lost(false);
                return;
            }
        }
    }
    render(&bridge.site.root, request.clone(), None);
    send_response(&bridge, &channel, &request, respond).await;
    // The stream is over: a producer still registered is let go.
    channel.out.borrow_mut().producer = None;
}

enum BodyRead {
    Done,
    /// Answered without rendering (413, 500).
    Answered,
    /// The client reset the stream or the connection ended.
    Lost,
}

/// Reads the request body into memory or a temporary file, as HTTP/1.1 does, giving the
/// window back as it is stored; a body over the site's `max_body` is answered 413.
async fn read_body(
    bridge: &Rc<Bridge>,
    request: &Request,
    recv: &mut RecvStream,
    respond: &mut SendResponse<Bytes>,
) -> BodyRead {
    let config = &bridge.site.config;
    let expected = request
        .get_header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    if expected.is_some_and(|n| n > config.max_body) {
        refuse(respond, 413, "The request body is too large.");
        return BodyRead::Answered;
    }
    let mut sink = match BodySink::new(config.body_spool_threshold, expected) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(target: "torsion_web", "cannot store an HTTP/2 request body: {e}");
            refuse(respond, 500, "The request body could not be stored.");
            return BodyRead::Answered;
        }
    };
    sink.parse_form(request.get_header("content-type"), config.forms);
    let mut total: u64 = 0;
    while let Some(chunk) = recv.data().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                if e.is_reset() && e.is_remote() {
                    // Cancelled while sending its body: counts as a reset as well.
                    bridge.count_reset();
                }
                return BodyRead::Lost;
            }
        };
        total += chunk.len() as u64;
        if total > config.max_body {
            refuse(respond, 413, "The request body is too large.");
            return BodyRead::Answered;
        }
        if let Err(e) = sink.push(&chunk) {
            body_refused(respond, e);
            return BodyRead::Answered;
        }
        let _ = recv.flow_control().release_capacity(chunk.len());
    }
    match sink.finish() {
        Ok((body, form)) => {
            request.set_body_and_form(body, form);
            BodyRead::Done
        }
        Err(e) => {
            body_refused(respond, e);
            BodyRead::Answered
        }
    }
}

/// Answers a body that could not be stored (500) or whose form was refused (413, 400).
fn body_refused(respond: &mut SendResponse<Bytes>, e: BodyError) {
    match e {
        BodyError::Io(e) => {
            tracing::error!(target: "torsion_web", "cannot store an HTTP/2 request body: {e}");
            refuse(respond, 500, "The request body could not be stored.");
        }
        BodyError::Form(e) => {
            tracing::info!(target: "torsion_web", "form refused: {e}");
            refuse(respond, e.status(), &crate::proto::html_escape(e.message()));
        }
    }
}

/// Answers a stream with an error page and ends it (the rest of its body is not read:
/// `h2` resets the stream with `NO_ERROR` once the response is out).
fn refuse(respond: &mut SendResponse<Bytes>, code: u16, detail: &str) {
    let body = error_page(code, detail);
    let mut head = http::Response::new(());
    *head.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    head.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html"),
    );
    head.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    if let Ok(mut send) = respond.send_response(head, false) {
        let _ = send.send_data(Bytes::from(body), true);
    }
}

/// What the stream's task does next.
enum Step {
    /// Something to send, or the response finished.
    Work,
    /// The client reset the stream, or the connection ended.
    Reset,
}

/// Sends the response as the request produces it and the peer's window allows: the head
/// once the request started it, then its body, asking a pull producer for more when all is
/// sent and resuming a streaming one below the high watermark.
async fn send_response(
    bridge: &Rc<Bridge>,
    channel: &Rc<StreamChannel>,
    request: &Request,
    mut respond: SendResponse<Bytes>,
) {
    let mut send: Option<SendStream<Bytes>> = None;
    loop {
        let step = poll_fn(|cx| {
            let reset = match send.as_mut() {
                Some(s) => s.poll_reset(cx),
                None => respond.poll_reset(cx),
            };
            if reset.is_ready() {
                return Poll::Ready(Step::Reset);
            }
            let mut out = channel.out.borrow_mut();
            let head_due = send.is_none() && request.started();
            let pull_due =
                !out.asked && out.pending_len == 0 && matches!(out.producer, Some((_, false)));
            if std::mem::take(&mut out.kicked)
                || head_due
                || out.pending_len > 0
                || pull_due
                || out.closed.is_some()
                || request.finished()
                || request.lost()
            {
                return Poll::Ready(Step::Work);
            }
            out.task = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        if let Step::Reset = step {
            bridge.count_reset();
            request.connection_lost(false);
            return;
        }
        // A producer registered since: attached now (its output goes straight to the
        // stream), so that a streaming one is not held.
        if let Some(t) = channel.transport() {
            request.attach_producer(&t);
        }
        if channel.out.borrow().closed == Some(true) {
            match send.as_mut() {
                Some(s) => s.send_reset(Reason::CANCEL),
                None => respond.send_reset(Reason::CANCEL),
            }
            request.connection_lost(false);
            return;
        }
        if send.is_none() {
            let Some(head) = request.take_h2_head() else {
                if request.finished() || request.lost() {
                    // Finished without a head (a lost client): nothing to send.
                    respond.send_reset(Reason::CANCEL);
                    return;
                }
                // A producer asked for before the head: let it write (it starts the head).
                ask_producer(channel);
                continue;
            };
            let out = request.take_output();
            channel.push(Bytes::from(out));
            let end = request.finished() && channel.out.borrow().pending_len == 0;
            match respond.send_response(head, end) {
                Ok(s) if !end => send = Some(s),
                Ok(_) => return,
                Err(_) => {
                    request.connection_lost(false);
                    return;
                }
            }
        }
        let Some(s) = send.as_mut() else { continue };
        let out = request.take_output();
        channel.push(Bytes::from(out));
        // Sends what the window allows, one chunk at a time.
        while channel.out.borrow().pending_len > 0 {
            let want = channel.out.borrow().pending_len.min(SEND_CHUNK);
            s.reserve_capacity(want);
            let granted = poll_fn(|cx| s.poll_capacity(cx)).await;
            let granted = match granted {
                Some(Ok(n)) => n,
                _ => {
                    bridge.count_reset();
                    request.connection_lost(false);
                    return;
                }
            };
            if granted == 0 {
                continue;
            }
            let (chunk, resume) = {
                let mut out = channel.out.borrow_mut();
                let Some(front) = out.pending.front_mut() else {
                    break;
                };
                let n = granted.min(front.len());
                let chunk = front.split_to(n);
                if front.is_empty() {
                    out.pending.pop_front();
                }
                out.pending_len -= n;
                let resume = match &out.producer {
                    Some((p, true)) if out.paused && out.pending_len <= STREAM_HIGH_WATER / 2 => {
                        Some(p.clone())
                    }
                    _ => None,
                };
                if resume.is_some() {
                    out.paused = false;
                }
                (chunk, resume)
            };
            let end = channel.out.borrow().pending_len == 0 && request.finished();
            if s.send_data(chunk, end).is_err() {
                request.connection_lost(false);
                return;
            }
            if end {
                return;
            }
            if let Some(p) = resume {
                p.resume_producing();
            }
            // The request may have written more meanwhile (a resumed producer).
            let more = request.take_output();
            channel.push(Bytes::from(more));
        }
        let closed = channel.out.borrow().closed;
        if request.finished() || closed == Some(false) {
            let _ = s.send_data(Bytes::new(), true);
            if !request.finished() {
                request.connection_lost(true);
            }
            return;
        }
        if request.lost() {
            s.send_reset(Reason::CANCEL);
            return;
        }
        ask_producer(channel);
    }
}

/// Asks a registered pull producer for its next chunk, once per chunk written.
fn ask_producer(channel: &StreamChannel) {
    let producer = {
        let mut out = channel.out.borrow_mut();
        match &out.producer {
            Some((p, false)) if !out.asked && out.pending_len == 0 => {
                let p = p.clone();
                out.asked = true;
                Some(p)
            }
            _ => None,
        }
    };
    if let Some(p) = producer {
        p.resume_producing();
    }
}
