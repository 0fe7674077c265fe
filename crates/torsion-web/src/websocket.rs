//! # WebSocket (RFC 6455), as `twisted.web.websocket`
//!
//! A [`WebSocketResource`] sits in the resource tree like any other. A `GET` asking to
//! upgrade is answered `101 Switching Protocols` (with `Sec-WebSocket-Accept`, and the first
//! of the resource's subprotocols the client offered); the connection then belongs to a
//! [`WebSocketProtocol`], which hears whole text and binary messages and writes through a
//! [`WebSocketTransport`] (`send_text`, `send_binary`, `ping`, `close`). Pings are answered
//! with pongs, fragments joined, text checked as UTF-8 and frames and messages held to
//! [`WsLimits`]: a breach closes with 1002, 1007 or 1009 (the framing is
//! [`proto::websocket`](crate::proto::websocket), without I/O). A request that is not an
//! upgrade is answered 426 (or 400 when the upgrade is malformed), a version other than 13
//! is answered 426 with `Sec-WebSocket-Version: 13`.
//!
//! Backpressure goes through the connection: [`WebSocketTransport::buffered_size`] and
//! [`register_producer`](WebSocketTransport::register_producer) (the producer is paused while
//! the connection's write buffer is over its high watermark), and
//! [`pause_reading`](WebSocketTransport::pause_reading) to stop reading from the peer.
//!
//! [`connect_websocket`] is the client: `ws://` over TCP, `wss://` over TLS with the
//! agent's [`BrowserLikePolicyForHttps`](crate::client::BrowserLikePolicyForHttps). Its
//! opening handshake is held to [`ConnectOptions::timeout`] (30 s; past it the Deferred fails
//! with [`HandshakeTimeout`]) and its closing handshake to 10 s, both on
//! [`ConnectOptions::clock`].
//!
//! Compression (permessage-deflate, RFC 7692) is off unless asked for:
//! [`WebSocketResource::with_deflate`] agrees to a client's offer and
//! [`ConnectOptions::deflate`] makes one, each with [`DeflateOptions`] (window size, context
//! takeover either way, the smallest message worth compressing). Messages sent are compressed
//! with RSV1 set, control frames never; what a peer sends compressed is held to
//! [`WsLimits::max_message`] as it inflates, so a small frame cannot become a huge message.
//! [`WebSocketTransport::deflate`] tells what was agreed. The negotiation and the codec are
//! [`proto::websocket::deflate`](crate::proto::websocket::deflate).
//!
//! An echo server:
//!
//! ```no_run
//! use std::rc::Rc;
//! use torsion::reactor;
//! use torsion_web::resource::{Children, Resource};
//! use torsion_web::websocket::{WebSocketProtocol, WebSocketResource, WebSocketTransport};
//! use torsion_web::Site;
//!
//! struct Echo;
//!
//! impl WebSocketProtocol for Echo {
//!     fn text_message_received(&mut self, t: &WebSocketTransport, text: String) {
//!         t.send_text(&text);
//!     }
//! }
//!
//! #[derive(Default)]
//! struct Root(Children);
//! impl Resource for Root {
//!     fn children(&self) -> Option<&Children> { Some(&self.0) }
//! }
//!
//! let root = Root::default();
//! root.put_child(b"ws", Rc::new(WebSocketResource::new(|_request| Some(Echo))));
//! reactor().listen_tcp(8080, Site::new(root)).unwrap();
//! reactor().run().unwrap();
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use torsion::defer::{Deferred, Trigger};
use torsion::producer::{Producer, ProducerError};
use torsion::reactor::DelayedCall;
use torsion::reactor::ReactorTime;
use torsion::tcp::Connector;
use torsion::transport::Address;
use torsion::{ClientFactory, ConnectionEnd, Factory, Failure, Protocol, Transport};

use crate::proto::websocket::deflate::{self, Compressor};
pub use crate::proto::websocket::deflate::{Agreed as DeflateAgreed, DeflateOptions};
use crate::proto::websocket::{
    accept_key, encode_close, encode_compressed_frame, encode_frame, unmasked_head, Decoder,
    Message, Opcode, Role,
};
pub use crate::proto::websocket::{close_code, WsLimits};
use crate::proto::{parse_response_head, Limits};
use crate::request::{Request, Upgraded};
use crate::resource::{Render, Resource};

/// Seconds to wait for the peer's close frame (or for it to close the connection) after
/// sending ours, before closing the connection anyway.
const CLOSE_TIMEOUT: f64 = 10.0;

/// A WebSocket connection's application side (Twisted's `WebSocketProtocol`). One per
/// connection; every method but `text_message_received` has a default.
pub trait WebSocketProtocol: 'static {
    /// The handshake is done: the connection is open (Twisted's `negotiationFinished`).
    fn connection_made(&mut self, transport: &WebSocketTransport) {
        let _ = transport;
    }

    /// A whole text message arrived (Twisted's `textMessageReceived`).
    fn text_message_received(&mut self, transport: &WebSocketTransport, text: String);

    /// A whole binary message arrived (Twisted's `bytesMessageReceived`). Default: ignored.
    fn binary_message_received(&mut self, transport: &WebSocketTransport, data: Vec<u8>) {
        let _ = (transport, data);
    }

    /// A pong arrived (Twisted's `pongReceived`). Pings are answered without a call.
    fn pong_received(&mut self, transport: &WebSocketTransport, payload: Vec<u8>) {
        let _ = (transport, payload);
    }

    /// The connection ended (Twisted's `connectionLost`).
    fn connection_lost(&mut self, reason: CloseReason) {
        let _ = reason;
    }
}

/// How a WebSocket connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The code of the peer's close frame; 1005 when it had none, 1006 when the connection
    /// ended without one.
    pub code: u16,
    /// The reason in the peer's close frame.
    pub reason: String,
    /// The code of the close frame this end sent, if it sent one (after a protocol error,
    /// 1002, 1007 or 1009).
    pub sent: Option<u16>,
    /// Both close frames were exchanged.
    pub clean: bool,
    /// This end sent its close frame and the peer answered neither with its own nor by
    /// closing within 10 seconds: the connection was closed without the peer's answer.
    pub timed_out: bool,
}

/// What both halves of a connection share: the transport and the closing handshake.
struct WsShared {
    transport: Transport,
    role: Role,
    subprotocol: Option<String>,
    close_sent: Cell<Option<u16>>,
    close_timer: RefCell<Option<DelayedCall>>,
    /// The close timer fired: the peer never answered this end's close.
    close_timed_out: Cell<bool>,
    /// Times the closing handshake: the site's clock for a server, the client's
    /// [`ConnectOptions::clock`] (the reactor by default) for a client.
    clock: Rc<dyn ReactorTime>,
    /// What permessage-deflate agreed, if it was.
    deflate: Option<deflate::Agreed>,
    /// Compresses the messages sent, when permessage-deflate was agreed.
    compressor: RefCell<Option<Compressor>>,
    /// The buffer the last built frame went out of, kept for the next (up to
    /// [`SCRATCH_KEPT`] bytes of capacity).
    scratch: Cell<Vec<u8>>,
}

/// The largest frame buffer a connection keeps between sends: a larger one (a big message)
/// is freed once sent.
const SCRATCH_KEPT: usize = 64 * 1024;

/// Sends on a WebSocket connection (Twisted's `WebSocketTransport`). Cheap to clone; every
/// clone is the same connection. After [`close`](Self::close), sends are dropped.
#[derive(Clone)]
pub struct WebSocketTransport {
    shared: Rc<WsShared>,
}

impl fmt::Debug for WebSocketTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketTransport")
            .field("peer", &self.get_peer())
            .field("closing", &self.shared.close_sent.get().is_some())
            .finish()
    }
}

impl WebSocketTransport {
    fn send(&self, opcode: Opcode, payload: &[u8]) {
        if self.shared.close_sent.get().is_some() {
            return;
        }
        let compressed = match opcode {
            Opcode::Text | Opcode::Binary => self
                .shared
                .compressor
                .borrow_mut()
                .as_mut()
                .and_then(|c| c.compress(payload)),
            _ => None,
        };
        let Some(key) = self.mask() else {
            // A server's frame: its head and the payload (compressed or not) written as they
            // are, nothing allocated or copied here (the transport copies both).
            let body = compressed.as_deref().unwrap_or(payload);
            let (head, n) = unmasked_head(opcode, compressed.is_some(), body.len());
            self.shared.transport.write_sequence(&[&head[..n], body]);
            return;
        };
        // A client's frame is masked, so built: in a buffer kept for the next one (taken out
        // of its cell, so that a send from inside the write finds another).
        let mut out = self.shared.scratch.take();
        out.clear();
        match compressed {
            Some(z) => encode_compressed_frame(&mut out, opcode, &z, Some(key)),
            None => encode_frame(&mut out, true, opcode, payload, Some(key)),
        }
        self.shared.transport.write(&out);
        if out.capacity() <= SCRATCH_KEPT {
            self.shared.scratch.set(out);
        }
    }

    fn mask(&self) -> Option<[u8; 4]> {
        (self.shared.role == Role::Client).then(rand::random::<[u8; 4]>)
    }

    /// Sends a text message, in one frame.
    pub fn send_text(&self, text: &str) {
        self.send(Opcode::Text, text.as_bytes());
    }

    /// Sends a binary message, in one frame.
    pub fn send_binary(&self, data: &[u8]) {
        self.send(Opcode::Binary, data);
    }

    /// Sends a ping; its payload is cut to 125 bytes. The peer's pong comes to
    /// [`WebSocketProtocol::pong_received`].
    pub fn ping(&self, payload: &[u8]) {
        self.send(Opcode::Ping, &payload[..payload.len().min(125)]);
    }

    /// Starts the closing handshake with `code` (1000 for a normal close; one not allowed
    /// on the wire becomes 1000) and `reason` (cut to 123 bytes). The connection closes when
    /// the peer answers, or after 10 seconds. A second call does nothing.
    pub fn close(&self, code: u16, reason: &str) {
        if self.shared.close_sent.get().is_some() {
            return;
        }
        let code = if close_code::is_sendable(code) {
            code
        } else {
            close_code::NORMAL
        };
        let mut out = Vec::new();
        encode_close(&mut out, code, reason, self.mask());
        self.shared.transport.write(&out);
        self.shared.close_sent.set(Some(code));
        let t = self.shared.transport.clone();
        let timed_out = Rc::downgrade(&self.shared);
        let call = self.shared.clock.call_later_boxed(
            CLOSE_TIMEOUT,
            Box::new(move || {
                if let Some(shared) = timed_out.upgrade() {
                    shared.close_timed_out.set(true);
                }
                tracing::info!(target: "torsion_web", peer = %t.get_peer(), "WebSocket close not answered in {CLOSE_TIMEOUT} s; closing the connection");
                t.lose_connection();
            }),
        );
        *self.shared.close_timer.borrow_mut() = Some(call);
    }

    /// Closes the TCP connection at once, without the closing handshake.
    pub fn abort(&self) {
        self.shared.transport.abort_connection();
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.shared.subprotocol.as_deref()
    }

    /// What permessage-deflate agreed in the handshake, if it was agreed: messages sent are
    /// then compressed (those shorter than its `min_size` excepted).
    pub fn deflate(&self) -> Option<DeflateAgreed> {
        self.shared.deflate
    }

    /// The peer's address.
    pub fn get_peer(&self) -> Address {
        self.shared.transport.get_peer()
    }

    /// Bytes written and not yet sent.
    pub fn buffered_size(&self) -> usize {
        self.shared.transport.buffered_size()
    }

    /// Registers a producer with the connection (Twisted's `registerProducer`): a streaming
    /// one is paused while the write buffer is over its high watermark and resumed when it
    /// drains; a pull one is asked for more each time it is empty.
    pub fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        self.shared.transport.register_producer(producer, streaming)
    }

    /// Unregisters the producer.
    pub fn unregister_producer(&self) {
        self.shared.transport.unregister_producer();
    }

    /// Stops reading from the peer (messages wait in the kernel; the peer's sends block).
    pub fn pause_reading(&self) {
        self.shared.transport.pause_producing();
    }

    /// Reads from the peer again.
    pub fn resume_reading(&self) {
        self.shared.transport.resume_producing();
    }

    /// The underlying connection.
    pub fn transport(&self) -> &Transport {
        &self.shared.transport
    }
}

/// One open WebSocket connection: decodes what is read and calls the protocol.
struct WsConnection {
    decoder: Decoder,
    transport: WebSocketTransport,
    protocol: Box<dyn WebSocketProtocol>,
    peer_close: Option<(u16, String)>,
    /// A protocol error closed the framing: what the peer still sends is read and dropped
    /// (a lingering close) until it closes too, or the close timer ends the connection.
    failed: bool,
}

impl WsConnection {
    fn new(
        transport: Transport,
        role: Role,
        limits: WsLimits,
        subprotocol: Option<String>,
        deflate: Option<deflate::Agreed>,
        protocol: Box<dyn WebSocketProtocol>,
        clock: Rc<dyn ReactorTime>,
    ) -> WsConnection {
        let mut decoder = Decoder::new(role, limits);
        decoder.set_inflater(deflate.map(|a| a.inflater()));
        WsConnection {
            decoder,
            transport: WebSocketTransport {
                shared: Rc::new(WsShared {
                    transport,
                    role,
                    subprotocol,
                    close_sent: Cell::new(None),
                    close_timer: RefCell::new(None),
                    close_timed_out: Cell::new(false),
                    clock,
                    deflate,
                    compressor: RefCell::new(deflate.map(|a| a.compressor())),
                    scratch: Cell::new(Vec::new()),
                }),
            },
            protocol,
            peer_close: None,
            failed: false,
        }
    }

    fn connection_made(&mut self) {
        let t = self.transport.clone();
        self.protocol.connection_made(&t);
    }

    fn data_received(&mut self, data: &[u8]) {
        if self.peer_close.is_some() || self.failed {
            return;
        }
        self.decoder.feed(data);
        let t = self.transport.clone();
        loop {
            let closing = t.shared.close_sent.get().is_some();
            match self.decoder.next_message() {
                Ok(None) => return,
                // After this end sent its close, messages are read and dropped until the
                // peer's close comes.
                Ok(Some(Message::Text(_) | Message::Binary(_) | Message::Pong(_))) if closing => {}
                Ok(Some(Message::Text(s))) => self.protocol.text_message_received(&t, s),
                Ok(Some(Message::Binary(b))) => self.protocol.binary_message_received(&t, b),
                Ok(Some(Message::Pong(p))) => self.protocol.pong_received(&t, p),
                Ok(Some(Message::Ping(p))) => t.send(Opcode::Pong, &p),
                Ok(Some(Message::Close(code, reason))) => {
                    let code = code.unwrap_or(close_code::NO_STATUS);
                    if !closing {
                        // Echo the peer's code (RFC 6455 5.5.1).
                        let echo = if code == close_code::NO_STATUS {
                            close_code::NORMAL
                        } else {
                            code
                        };
                        t.close(echo, "");
                    }
                    self.peer_close = Some((code, reason));
                    // Both closes are out: the connection ends (the server closes TCP first,
                    // RFC 6455 7.1.1; a client does too rather than wait).
                    t.shared.transport.lose_connection();
                    return;
                }
                Err(e) => {
                    tracing::info!(target: "torsion_web", peer = %t.get_peer(), "WebSocket protocol error: {e}; closing");
                    if !closing {
                        t.close(e.code(), e.reason());
                    }
                    // Half-close and keep reading: closing at once, with the rest of the
                    // peer's message unread, would make the kernel answer with a reset that
                    // destroys the close frame before the peer reads it (RFC 6455 7.1.1:
                    // the peer then closes, or the close timer does).
                    self.failed = true;
                    t.shared.transport.lose_write_connection();
                    return;
                }
            }
        }
    }

    fn connection_lost(&mut self) {
        if let Some(call) = self.transport.shared.close_timer.borrow_mut().take() {
            let _ = call.cancel();
        }
        let sent = self.transport.shared.close_sent.get();
        // Nothing more goes out on a connection that is gone.
        self.transport
            .shared
            .close_sent
            .set(Some(sent.unwrap_or(close_code::ABNORMAL)));
        let (code, reason) = self
            .peer_close
            .take()
            .unwrap_or((close_code::ABNORMAL, String::new()));
        let clean = sent.is_some() && code != close_code::ABNORMAL;
        let timed_out = self.transport.shared.close_timed_out.get();
        self.protocol.connection_lost(CloseReason {
            code,
            reason,
            sent,
            clean,
            timed_out,
        });
    }
}

/// The server side, as the HTTP channel holds it once the 101 is out.
struct ServerUpgrade(Rc<RefCell<WsConnection>>);

impl Upgraded for ServerUpgrade {
    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        if let Ok(mut c) = self.0.try_borrow_mut() {
            c.data_received(data);
        }
    }

    fn drain(&mut self, _transport: &Transport) {
        if let Ok(c) = self.0.try_borrow() {
            c.transport
                .close(close_code::GOING_AWAY, "server shutting down");
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        if let Ok(mut c) = self.0.try_borrow_mut() {
            c.connection_lost();
        }
    }
}

type MakeProtocol = dyn Fn(&Request) -> Option<Box<dyn WebSocketProtocol>>;

/// A resource that upgrades requests to WebSocket connections (Twisted's
/// `WebSocketResource`). It is a leaf: it answers every path below it.
pub struct WebSocketResource {
    make: Box<MakeProtocol>,
    subprotocols: Vec<String>,
    limits: WsLimits,
    deflate: Option<DeflateOptions>,
}

impl WebSocketResource {
    /// Upgrades with a protocol from `make`, given the request (its path, headers, client);
    /// `None` refuses the connection with 403.
    pub fn new<P: WebSocketProtocol>(make: impl Fn(&Request) -> Option<P> + 'static) -> Self {
        WebSocketResource {
            make: Box::new(move |r| make(r).map(|p| Box::new(p) as Box<dyn WebSocketProtocol>)),
            subprotocols: Vec::new(),
            limits: WsLimits::default(),
            deflate: None,
        }
    }

    /// Agrees to permessage-deflate (RFC 7692) when a client offers it, on `options`' terms
    /// (off by default: each compressing connection keeps zlib's state, some 300 KiB with a
    /// 15-bit window, and spends CPU on every message).
    pub fn with_deflate(mut self, options: DeflateOptions) -> Self {
        self.deflate = Some(options);
        self
    }

    /// The subprotocols this resource speaks, most preferred first: the first of them the
    /// client offers is chosen (none offered: no subprotocol).
    pub fn with_subprotocols(mut self, names: &[&str]) -> Self {
        self.subprotocols = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Limits on frames and messages read (default 16 MiB each).
    pub fn with_limits(mut self, limits: WsLimits) -> Self {
        self.limits = limits;
        self
    }

    fn refuse(request: &Request, code: u16, why: &str) -> Render {
        request.set_response_code(code);
        request.set_header("Content-Type", "text/plain; charset=utf-8");
        if code == 426 {
            request.set_header("Upgrade", "websocket");
            request.set_header("Sec-WebSocket-Version", "13");
        }
        format!("{why}\n").into()
    }
}

impl Resource for WebSocketResource {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render_get(&self, request: &Request) -> Render {
        let h = request.headers();
        if !h.has_token("upgrade", "websocket") {
            return Self::refuse(request, 426, "This resource speaks WebSocket only.");
        }
        if request.method() != "GET" || request.version() != crate::proto::Version::Http11 {
            return Self::refuse(request, 400, "A WebSocket upgrade is a GET over HTTP/1.1.");
        }
        if !h.has_token("connection", "upgrade") {
            return Self::refuse(request, 400, "Connection: Upgrade is missing.");
        }
        if h.get_str("sec-websocket-version").map(str::trim) != Some("13") {
            return Self::refuse(request, 426, "Only WebSocket version 13 is spoken here.");
        }
        let key = match h.get_str("sec-websocket-key").map(str::trim) {
            Some(k) if decodes_to_16(k) => k.to_owned(),
            _ => return Self::refuse(request, 400, "Sec-WebSocket-Key is missing or malformed."),
        };
        let offered: Vec<&str> = h
            .get_all("sec-websocket-protocol")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let chosen = self
            .subprotocols
            .iter()
            .find(|s| offered.contains(&s.as_str()))
            .cloned();
        let agreed = self.deflate.as_ref().and_then(|options| {
            let offers: Vec<&str> = h
                .get_all("sec-websocket-extensions")
                .filter_map(|v| std::str::from_utf8(v).ok())
                .collect();
            deflate::server_accept(options, &offers)
        });
        let Some(protocol) = (self.make)(request) else {
            return Self::refuse(request, 403, "This WebSocket connection was refused.");
        };
        let clock = match request.inner_channel() {
            Some(c) => c.session_site().clock(),
            None => Rc::new(torsion::reactor()),
        };
        let conn: Rc<RefCell<Option<Rc<RefCell<WsConnection>>>>> = Rc::default();
        // The connection is made once the transport is known; the channel holds it from here.
        let Some(transport) = request.take_over(Box::new(LateUpgrade(conn.clone()))) else {
            return Self::refuse(request, 400, "A WebSocket upgrade cannot be pipelined.");
        };
        let ws = Rc::new(RefCell::new(WsConnection::new(
            transport,
            Role::Server,
            self.limits,
            chosen.clone(),
            agreed.as_ref().map(|(_, a)| *a),
            protocol,
            clock,
        )));
        *conn.borrow_mut() = Some(ws.clone());
        request.set_response_code(101);
        request.set_header("Upgrade", "websocket");
        request.set_header("Connection", "Upgrade");
        request.set_header("Sec-WebSocket-Accept", accept_key(&key));
        if let Some(p) = &chosen {
            request.set_header("Sec-WebSocket-Protocol", p);
        }
        if let Some((answer, _)) = &agreed {
            request.set_header("Sec-WebSocket-Extensions", answer);
        }
        request.finish();
        ws.borrow_mut().connection_made();
        Render::NotDoneYet
    }
}

/// The channel's handle on a server connection made just after it was handed over.
struct LateUpgrade(Rc<RefCell<Option<Rc<RefCell<WsConnection>>>>>);

impl LateUpgrade {
    fn inner(&self) -> Option<ServerUpgrade> {
        self.0.borrow().clone().map(ServerUpgrade)
    }
}

impl Upgraded for LateUpgrade {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        if let Some(mut u) = self.inner() {
            u.data_received(transport, data);
        }
    }

    fn drain(&mut self, transport: &Transport) {
        if let Some(mut u) = self.inner() {
            u.drain(transport);
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        if let Some(mut u) = self.inner() {
            u.connection_lost(reason);
        }
    }
}

/// True when `key` is base64 for 16 bytes (RFC 6455 4.2.1).
fn decodes_to_16(key: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|k| k.len() == 16)
}

/// Why [`connect_websocket`] failed after connecting: the server's answer was not a
/// WebSocket handshake, or the URL was not a WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeFailed {
    /// What was wrong.
    pub why: String,
}

impl fmt::Display for HandshakeFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebSocket handshake failed: {}", self.why)
    }
}

impl std::error::Error for HandshakeFailed {}

/// Why [`connect_websocket`] failed when the opening handshake did not finish in time: the
/// connection was not made, or the server did not answer the upgrade, within
/// [`ConnectOptions::timeout`] seconds on [`ConnectOptions::clock`].
#[derive(Debug, Clone, PartialEq)]
pub struct HandshakeTimeout {
    /// The time allowed, in seconds.
    pub seconds: f64,
    /// The connection was made (the server did not answer the upgrade in time), or not.
    pub connected: bool,
}

impl fmt::Display for HandshakeTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = if self.connected {
            "the server did not answer the upgrade"
        } else {
            "the connection was not made"
        };
        write!(
            f,
            "WebSocket handshake timed out after {} s: {stage}",
            self.seconds
        )
    }
}

impl std::error::Error for HandshakeTimeout {}

/// Options for [`connect_websocket_with`].
#[derive(Clone)]
pub struct ConnectOptions {
    /// Subprotocols to offer, most preferred first.
    pub subprotocols: Vec<String>,
    /// Limits on frames and messages read.
    pub limits: WsLimits,
    /// Seconds to connect and finish the opening handshake (default 30); past them the
    /// Deferred fails with [`HandshakeTimeout`] and the connection is closed.
    pub timeout: f64,
    /// permessage-deflate to offer (default `None`: no extension is offered).
    pub deflate: Option<DeflateOptions>,
    /// The clock that times the opening and the closing handshakes (default: the reactor;
    /// tests give a [`torsion::testing::Clock`]).
    pub clock: Option<Rc<dyn ReactorTime>>,
    /// How `wss://` servers are checked (default: the platform's roots).
    #[cfg(feature = "tls")]
    pub tls: Rc<dyn crate::client::PolicyForHttps>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            subprotocols: Vec::new(),
            limits: WsLimits::default(),
            timeout: 30.0,
            deflate: None,
            clock: None,
            #[cfg(feature = "tls")]
            tls: Rc::new(crate::client::BrowserLikePolicyForHttps::new()),
        }
    }
}

/// Connects to a `ws://` or `wss://` URL and runs `protocol` on the connection (Twisted's
/// `ConnectWebSocket`). The Deferred fires with the transport once the handshake is done
/// (after the protocol's `connection_made`), or fails with the connection's error or
/// [`HandshakeFailed`].
pub fn connect_websocket<P: WebSocketProtocol>(
    url: &str,
    protocol: P,
) -> Deferred<WebSocketTransport> {
    connect_websocket_with(url, protocol, ConnectOptions::default())
}

/// [`connect_websocket`] with [`ConnectOptions`].
pub fn connect_websocket_with<P: WebSocketProtocol>(
    url: &str,
    protocol: P,
    options: ConnectOptions,
) -> Deferred<WebSocketTransport> {
    let d = Deferred::new();
    let url = match crate::client::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            d.errback(e);
            return d;
        }
    };
    let tls = match url.scheme() {
        "ws" => false,
        "wss" => true,
        other => {
            d.errback(HandshakeFailed {
                why: format!("{other}: is not a WebSocket scheme (ws: or wss:)"),
            });
            return d;
        }
    };
    let explicit = url.port() != 0;
    let port = if explicit {
        url.port()
    } else if tls {
        443
    } else {
        80
    };
    let host_header = if explicit {
        url.host_header()
    } else if url.host().contains(':') {
        format!("[{}]", url.host())
    } else {
        url.host().to_owned()
    };
    let key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
    };
    let mut hello = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
        url.path()
    );
    if !options.subprotocols.is_empty() {
        hello.push_str(&format!(
            "Sec-WebSocket-Protocol: {}\r\n",
            options.subprotocols.join(", ")
        ));
    }
    if let Some(o) = &options.deflate {
        hello.push_str(&format!(
            "Sec-WebSocket-Extensions: {}\r\n",
            deflate::client_offer(o)
        ));
    }
    hello.push_str("\r\n");
    let clock = options
        .clock
        .clone()
        .unwrap_or_else(|| Rc::new(torsion::reactor()));
    let pending = Rc::new(Pending {
        trigger: RefCell::new(Some(d.trigger())),
        protocol: RefCell::new(Some(Box::new(protocol))),
        hello: hello.into_bytes(),
        accept: accept_key(&key),
        offered: options.subprotocols.clone(),
        limits: options.limits,
        deflate: options.deflate,
        clock: clock.clone(),
        connector: RefCell::new(None),
        timer: RefCell::new(None),
    });
    let factory = ClientWsFactory(pending.clone());
    let reactor = torsion::reactor();
    let host = url.host().to_owned();
    let connector = if tls {
        #[cfg(feature = "tls")]
        match options.tls.creator_for_netloc(&host, port) {
            Ok(context) => {
                Some(reactor.connect_tls_timeout(&host, port, factory, context, options.timeout))
            }
            Err(f) => {
                factory.fail(f);
                None
            }
        }
        #[cfg(not(feature = "tls"))]
        {
            factory.fail(Failure::new(HandshakeFailed {
                why: "wss: needs the tls feature".to_owned(),
            }));
            None
        }
    } else {
        Some(reactor.connect_tcp_timeout(&host, port, factory, options.timeout))
    };
    if pending.trigger.borrow().is_some() {
        *pending.connector.borrow_mut() = connector;
        let weak = Rc::downgrade(&pending);
        let seconds = options.timeout;
        let call = clock.call_later_boxed(
            seconds,
            Box::new(move || {
                if let Some(p) = weak.upgrade() {
                    p.timed_out(seconds);
                }
            }),
        );
        *pending.timer.borrow_mut() = Some(call);
    }
    d
}

/// What a good handshake answer agreed: the subprotocol and permessage-deflate.
type Accepted = (Option<String>, Option<deflate::Agreed>);

/// A client connection's handshake, shared by the factory and its protocol.
struct Pending {
    trigger: RefCell<Option<Trigger<WebSocketTransport>>>,
    protocol: RefCell<Option<Box<dyn WebSocketProtocol>>>,
    hello: Vec<u8>,
    accept: String,
    offered: Vec<String>,
    limits: WsLimits,
    deflate: Option<DeflateOptions>,
    clock: Rc<dyn ReactorTime>,
    /// The connection attempt, for the handshake timer to stop.
    connector: RefCell<Option<Connector>>,
    /// The opening handshake's timer.
    timer: RefCell<Option<DelayedCall>>,
}

impl Pending {
    /// Fires the Deferred once, and stops the handshake timer.
    fn fire(&self, result: Result<WebSocketTransport, Failure>) {
        if let Some(call) = self.timer.borrow_mut().take() {
            let _ = call.cancel();
        }
        let trigger = self.trigger.borrow_mut().take();
        *self.connector.borrow_mut() = None;
        if let Some(t) = trigger {
            let _ = t.fire(result);
        }
    }

    /// The opening handshake took too long: fail, and end the attempt or the connection.
    fn timed_out(&self, seconds: f64) {
        self.timer.borrow_mut().take();
        let Some(trigger) = self.trigger.borrow_mut().take() else {
            return;
        };
        let connector = self.connector.borrow_mut().take();
        let transport = connector.as_ref().and_then(Connector::transport);
        tracing::info!(target: "torsion_web", "WebSocket handshake timed out after {seconds} s");
        let _ = trigger.fire(Err(Failure::new(HandshakeTimeout {
            seconds,
            connected: transport.is_some(),
        })));
        match (transport, connector) {
            (Some(t), _) => t.abort_connection(),
            (None, Some(c)) => c.stop_connecting(),
            (None, None) => {}
        }
    }
}

struct ClientWsFactory(Rc<Pending>);

impl ClientWsFactory {
    fn fail(&self, f: Failure) {
        self.0.fire(Err(f));
    }
}

impl Factory for ClientWsFactory {
    type Protocol = ClientWsProtocol;

    fn build_protocol(&self, _addr: &Address) -> Option<ClientWsProtocol> {
        Some(ClientWsProtocol {
            pending: self.0.clone(),
            head: Vec::new(),
            open: None,
        })
    }
}

impl ClientFactory for ClientWsFactory {
    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        self.fail(reason);
    }
}

/// The client's connection: the handshake, then the WebSocket.
struct ClientWsProtocol {
    pending: Rc<Pending>,
    head: Vec<u8>,
    open: Option<WsConnection>,
}

impl ClientWsProtocol {
    fn fail(&self, t: &Transport, why: String) {
        self.pending
            .fire(Err(Failure::new(HandshakeFailed { why })));
        t.abort_connection();
    }

    /// Checks the server's answer; the subprotocol it chose and what permessage-deflate
    /// agreed, when it is good.
    fn check(&self, head: &crate::proto::ResponseHead) -> Result<Accepted, String> {
        let subprotocol = self.check_head(head)?;
        let answers: Vec<&str> = head
            .headers
            .get_all("sec-websocket-extensions")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .collect();
        let deflate = match &self.pending.deflate {
            Some(o) => deflate::client_accept(o, &answers)?,
            None if answers.iter().any(|a| !a.trim().is_empty()) => {
                return Err(format!(
                    "the server chose extensions {:?}, and none was offered",
                    answers.join(", ")
                ))
            }
            None => None,
        };
        Ok((subprotocol, deflate))
    }

    /// Checks the server's status and headers; the subprotocol it chose.
    fn check_head(&self, head: &crate::proto::ResponseHead) -> Result<Option<String>, String> {
        if head.status != 101 {
            return Err(format!(
                "the server answered {} {}",
                head.status, head.reason
            ));
        }
        let h = &head.headers;
        if !h.has_token("upgrade", "websocket") || !h.has_token("connection", "upgrade") {
            return Err("the 101 lacks Upgrade: websocket or Connection: Upgrade".to_owned());
        }
        if h.get_str("sec-websocket-accept").map(str::trim) != Some(self.pending.accept.as_str()) {
            return Err("Sec-WebSocket-Accept does not match the key".to_owned());
        }
        match h.get_str("sec-websocket-protocol").map(str::trim) {
            None => Ok(None),
            Some(p) if self.pending.offered.iter().any(|o| o == p) => Ok(Some(p.to_owned())),
            Some(p) => Err(format!(
                "the server chose subprotocol {p:?}, which was not offered"
            )),
        }
    }
}

impl Protocol for ClientWsProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        transport.write(&self.pending.hello);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        if let Some(ws) = self.open.as_mut() {
            ws.data_received(data);
            return;
        }
        self.head.extend_from_slice(data);
        let parsed = match parse_response_head(&self.head, &Limits::default()) {
            Ok(None) if self.head.len() < Limits::default().max_head => return,
            Ok(None) => return self.fail(transport, "the response head is too large".to_owned()),
            Err(e) => return self.fail(transport, format!("malformed response: {e}")),
            Ok(Some(p)) => p,
        };
        let (head, used) = parsed;
        let (subprotocol, deflate) = match self.check(&head) {
            Ok(s) => s,
            Err(why) => return self.fail(transport, why),
        };
        let Some(protocol) = self.pending.protocol.borrow_mut().take() else {
            return transport.abort_connection();
        };
        let rest = self.head.split_off(used);
        self.head = Vec::new();
        let ws = self.open.insert(WsConnection::new(
            transport.clone(),
            Role::Client,
            self.pending.limits,
            subprotocol,
            deflate,
            protocol,
            self.pending.clock.clone(),
        ));
        ws.connection_made();
        self.pending.fire(Ok(ws.transport.clone()));
        if !rest.is_empty() {
            ws.data_received(&rest);
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        match self.open.as_mut() {
            Some(ws) => ws.connection_lost(),
            None => {
                if self.pending.trigger.borrow().is_some() {
                    let why = format!("the connection ended before the handshake: {reason}");
                    self.pending
                        .fire(Err(Failure::new(HandshakeFailed { why })));
                }
            }
        }
    }
}
