//! Transports: the byte pipes protocols talk through (Twisted's `ITransport`).
//!
//! A [`Transport`] is a cheap handle (an `Rc`) to one connection's write side. A protocol gets
//! it with every event; keep a clone to write to that connection from elsewhere — "keep
//! transports, not protocols". Writes are buffered and sent when the current callback
//! returns (coalescing many small writes into one system call), or at once when written from
//! outside the connection's own callbacks.
//!
//! New kinds of transport (TLS, in-memory, test doubles) implement [`TransportImpl`]:
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use torsion::transport::{Address, Transport, TransportImpl};
//!
//! #[derive(Default)]
//! struct Recorder(RefCell<Vec<u8>>);
//!
//! impl TransportImpl for Recorder {
//!     fn write(&self, data: &[u8]) { self.0.borrow_mut().extend_from_slice(data) }
//!     fn lose_connection(&self) {}
//!     fn abort_connection(&self) {}
//!     fn get_peer(&self) -> Address { Address::Named("peer".into()) }
//!     fn get_host(&self) -> Address { Address::Named("host".into()) }
//! }
//!
//! let rec = Rc::new(Recorder::default());
//! let t = Transport::new(rec.clone());
//! t.write_sequence(&[b"Hello, ", b"world"]);
//! assert_eq!(&*rec.0.borrow(), b"Hello, world");
//! ```

use std::fmt;
use std::io;
use std::ops::Deref;
use std::rc::Rc;

pub use crate::address::Address;
pub use segment::{file_bytes_sent, FileSegment};

pub(crate) mod segment;

fn unsupported<T>() -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "not supported by this transport",
    ))
}

/// Writes of at least this many bytes are "large": the stream transports send them to the
/// socket at once (after what is already buffered) even from inside a callback, and copy only
/// what the socket does not take, instead of buffering them to coalesce with later writes.
/// Layers that buffer output of their own (an HTTP response, say) can pass such writes
/// through for the same reason.
pub const LARGE_WRITE: usize = 16 * 1024;

/// What a transport does; implement it to make a new kind of transport.
///
/// Only `write`, `lose_connection`, `abort_connection`, `get_peer` and `get_host` are required.
/// A transport that wraps another (HAProxy's, the policies' wrappers) returns it from
/// [`wrapped`](TransportImpl::wrapped) and overrides only what it changes: every other
/// provided method, and the capabilities ([`tcp`](TransportImpl::tcp),
/// [`tls`](TransportImpl::tls), [`peer_credentials`](TransportImpl::peer_credentials)), then
/// go to the wrapped transport.
pub trait TransportImpl {
    /// Queues bytes to send. Never blocks; writes after the connection closed are dropped.
    fn write(&self, data: &[u8]);

    /// Queues several buffers, in order (Twisted's `writeSequence`).
    fn write_sequence(&self, data: &[&[u8]]) {
        for chunk in data {
            self.write(chunk);
        }
    }

    /// Queues a part of an open file to send after everything written before it, without
    /// reading it into memory (no Twisted analogue): the stream transports over plain TCP and
    /// Unix sockets send it with `sendfile(2)`, straight from the page cache, as the socket
    /// takes it. What is written afterwards follows it.
    ///
    /// Fails with [`io::ErrorKind::Unsupported`], queuing nothing, where the bytes themselves
    /// are needed or the platform cannot: a TLS connection (they must be encrypted), a
    /// wrapping transport (it may count or change them; wrappers do not pass this on unless
    /// they override it), HTTP/2 streams, in-memory and test transports, stdio, platforms
    /// other than Linux. The caller then reads the file and [`write`](Self::write)s it, as
    /// the static-file resource of `torsion-web` does. That is the default.
    ///
    /// Flow control sees the segment's unsent bytes: they count in
    /// [`buffered_size`](Self::buffered_size), so a streaming producer is paused while they
    /// are over the high watermark and a pull producer is asked again once they are sent. The
    /// write limit ([`set_write_limit`](Self::set_write_limit)) is a ceiling on memory and
    /// counts only bytes held in memory, so a segment never trips it. After the connection
    /// closed the segment is dropped, as writes are (`Ok`). If the file turns out shorter
    /// than the segment while it is sent (it was truncated), the connection is closed with a
    /// warning in the log: the peer was promised those bytes, and garbage or a hang would be
    /// worse.
    fn write_file(&self, segment: FileSegment) -> io::Result<()> {
        let _ = segment;
        unsupported()
    }

    /// Closes the connection once everything written has been sent (Twisted's
    /// `loseConnection`). The protocol's `connection_lost` follows.
    fn lose_connection(&self);

    /// Closes the connection now, dropping unsent data (Twisted's `abortConnection`).
    fn abort_connection(&self);

    /// The other end's address.
    fn get_peer(&self) -> Address;

    /// This end's address.
    fn get_host(&self) -> Address;

    /// The transport this one wraps, if it is a wrapper: what this one does not override goes
    /// there.
    fn wrapped(&self) -> Option<&Transport> {
        None
    }

    /// Closes the sending half once everything written has been sent, and keeps reading
    /// (Twisted's `loseWriteConnection`, half-close). Once the write half is shut, the
    /// protocol hears [`write_connection_lost`](crate::Protocol::write_connection_lost) (on
    /// the stream transports: TCP, Unix, TLS, stdio). By default the wrapped transport's, or
    /// else the whole connection closes.
    fn lose_write_connection(&self) {
        match self.wrapped() {
            Some(t) => t.lose_write_connection(),
            None => self.lose_connection(),
        }
    }

    /// How many written bytes wait to be sent (for flow control), the unsent bytes of file
    /// segments ([`write_file`](Self::write_file)) included.
    fn buffered_size(&self) -> usize {
        self.wrapped().map_or(0, |t| t.buffered_size())
    }

    /// True until the connection has closed.
    fn is_connected(&self) -> bool {
        self.wrapped().is_none_or(|t| t.is_connected())
    }

    /// True once the connection is closing (`lose_connection` or `abort_connection` was
    /// called) or closed. Framing protocols stop delivering messages then, as Twisted's do.
    fn disconnecting(&self) -> bool {
        match self.wrapped() {
            Some(t) => t.disconnecting(),
            None => !self.is_connected(),
        }
    }

    /// Asks the connection's protocol to finish its work and close, for a graceful shutdown:
    /// the protocol's [`drain`](crate::Protocol::drain) runs soon from the connection's own engine
    /// (at most once). By default the wrapped transport's, or nothing (a transport that cannot
    /// reach its protocol).
    fn request_drain(&self) {
        if let Some(t) = self.wrapped() {
            t.request_drain();
        }
    }

    /// Stops delivering received data until `resume_producing` (a transport is a producer).
    fn pause_producing(&self) {
        if let Some(t) = self.wrapped() {
            t.pause_producing();
        }
    }

    /// Resumes delivering received data.
    fn resume_producing(&self) {
        if let Some(t) = self.wrapped() {
            t.resume_producing();
        }
    }

    /// Registers `producer` to write to this transport, with flow control (Twisted's
    /// `IConsumer.registerProducer`): a streaming producer is paused above the high
    /// watermark and resumed at the low one; a pull producer is asked for a chunk now and
    /// whenever the write buffer empties. It gets `stop_producing` when the connection ends.
    /// See [`producer`](crate::producer). Fails if a producer is already registered or the
    /// connection is closing; transports without flow control return `Unsupported`.
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        match self.wrapped() {
            Some(t) => t.register_producer(producer, streaming),
            None => Err(ProducerError::Unsupported),
        }
    }

    /// Forgets the registered producer without telling it (Twisted's
    /// `IConsumer.unregisterProducer`); a producer calls it when it has written everything.
    fn unregister_producer(&self) {
        if let Some(t) = self.wrapped() {
            t.unregister_producer();
        }
    }

    /// Sets the write-buffer watermarks for the registered producer: pause above `high`
    /// unsent bytes, resume at `low` or fewer (`low` is capped at `high`).
    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        if let Some(t) = self.wrapped() {
            t.set_write_buffer_limits(high, low);
        }
    }

    /// The write-buffer watermarks, `(high, low)`.
    fn write_buffer_limits(&self) -> (usize, usize) {
        self.wrapped()
            .map_or((DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER), |t| {
                t.write_buffer_limits()
            })
    }

    /// Sets a ceiling on this transport's unsent bytes, and what happens at it (not in
    /// Twisted, whose write buffer grows for as long as the peer does not read). A write that
    /// would take [`buffered_size`](TransportImpl::buffered_size) past `bytes` is refused:
    /// with [`WritePolicy::Disconnect`] the connection is aborted (unsent data dropped) and
    /// [`connection_lost`](crate::Protocol::connection_lost) hears
    /// [`ConnectionEnd::WriteLimit`](crate::ConnectionEnd::WriteLimit); with
    /// [`WritePolicy::DropWrites`] the write is discarded whole and its bytes counted
    /// ([`dropped_write_bytes`](TransportImpl::dropped_write_bytes)), the connection staying
    /// open. Either way a warning naming the peer is logged (once per run of dropped writes).
    ///
    /// This is the backstop for protocols that write on someone else's behalf (a chat room,
    /// a broadcast) to a peer that may never read. A protocol that can slow down should
    /// rather register a producer: the watermarks
    /// ([`set_write_buffer_limits`](TransportImpl::set_write_buffer_limits)) pause it long
    /// before any ceiling. The check costs one compare per write; none is set by default.
    /// Set it above the largest single write (a write larger than `bytes` is always
    /// refused). Listeners set it on every connection they accept with
    /// [`ListenOptions::write_limit`](crate::tcp::ListenOptions::write_limit) or
    /// `writeLimit=BYTES` in an endpoint string.
    ///
    /// The stream transports (TCP, Unix, TLS, stdio) have it; a wrapper passes it to the
    /// transport it wraps; other transports ignore it, and their
    /// [`write_limit`](TransportImpl::write_limit) stays `None`.
    fn set_write_limit(&self, bytes: usize, policy: WritePolicy) {
        if let Some(t) = self.wrapped() {
            t.set_write_limit(bytes, policy);
        }
    }

    /// Removes the write limit ([`set_write_limit`](TransportImpl::set_write_limit)).
    fn clear_write_limit(&self) {
        if let Some(t) = self.wrapped() {
            t.clear_write_limit();
        }
    }

    /// The write limit in force, if any.
    fn write_limit(&self) -> Option<WriteLimit> {
        self.wrapped().and_then(|t| t.write_limit())
    }

    /// How many bytes [`WritePolicy::DropWrites`] has discarded on this connection.
    fn dropped_write_bytes(&self) -> u64 {
        self.wrapped().map_or(0, |t| t.dropped_write_bytes())
    }

    /// TCP's socket options, on a TCP connection (Twisted's `ITCPTransport`).
    fn tcp(&self) -> Option<&dyn TcpOptions> {
        self.wrapped().and_then(|t| t.tcp())
    }

    /// TLS, on a connection that can run it (Twisted's `ITLSTransport`).
    #[cfg(feature = "tls")]
    fn tls(&self) -> Option<&dyn TlsTransport> {
        self.wrapped().and_then(|t| t.tls())
    }

    /// The credentials of the process at the other end of a Unix connection, while it is open
    /// (`SO_PEERCRED`); `None` for other transports or where the platform does not tell them.
    fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.wrapped().and_then(|t| t.peer_credentials())
    }
}

/// TCP's socket options, as a TCP transport has them ([`TransportImpl::tcp`]).
pub trait TcpOptions {
    /// Sets `TCP_NODELAY` (on by default for TCP connections).
    fn set_no_delay(&self, enabled: bool) -> io::Result<()>;
    /// Reads `TCP_NODELAY`.
    fn no_delay(&self) -> io::Result<bool>;
    /// Sets `SO_KEEPALIVE`.
    fn set_keep_alive(&self, enabled: bool) -> io::Result<()>;
    /// Reads `SO_KEEPALIVE`.
    fn keep_alive(&self) -> io::Result<bool>;
}

/// What a transport that can run TLS does ([`TransportImpl::tls`]; Twisted's
/// `ITLSTransport`).
#[cfg(feature = "tls")]
pub trait TlsTransport {
    /// Switches the running connection to TLS, for STARTTLS protocols: everything written
    /// before stays plaintext, everything after is encrypted, and the handshake starts at
    /// once. Bytes already delivered to the protocol stay with it as plaintext (a client that
    /// pipelines its handshake behind the STARTTLS command cannot inject plaintext into the
    /// TLS session). A [`ServerContext`](crate::tls::ServerContext) makes this end the TLS
    /// server, a [`ClientContext`](crate::tls::ClientContext) the client. Fails on a
    /// connection already using TLS or closing.
    fn start_tls(&self, context: crate::tls::TlsContext) -> io::Result<()>;
    /// The peer's TLS certificate (DER), once the handshake has delivered it; `None` before
    /// TLS starts and for a TLS client that showed none.
    fn peer_certificate(&self) -> Option<Vec<u8>>;
    /// The application protocol TLS's ALPN agreed on (such as `b"h2"`), if any.
    fn negotiated_protocol(&self) -> Option<Vec<u8>>;
}

/// The credentials of the process at the other end of a Unix connection, as the kernel saw
/// them when the connection was made (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The peer's process id, where the platform tells it.
    pub pid: Option<i32>,
    /// The peer's user id.
    pub uid: u32,
    /// The peer's group id.
    pub gid: u32,
}

// Producers and consumers (Twisted's IProducer/IConsumer) are part of what a transport
// is; `torsion::producer` holds the helpers built on them and re-exports these.

/// The high watermark transports start with: above this many unsent bytes a streaming
/// producer is paused (Twisted's `FileDescriptor.bufferSize`).
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// The low watermark transports start with: a paused streaming producer is resumed once no
/// more than this many bytes wait to be sent.
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;

/// What a transport does when a write would take its unsent bytes past its write limit
/// ([`TransportImpl::set_write_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WritePolicy {
    /// Abort the connection: unsent bytes are dropped and the protocol's `connection_lost`
    /// hears [`ConnectionEnd::WriteLimit`](crate::ConnectionEnd::WriteLimit). For peers whose
    /// stream must be whole or not at all (most protocols).
    Disconnect,
    /// Discard the write, whole, and count its bytes
    /// ([`TransportImpl::dropped_write_bytes`]); the connection stays open. For streams of
    /// independent messages where a slow reader may miss some (ticks, broadcasts), written
    /// one message per `write` or `write_sequence`.
    DropWrites,
}

/// A ceiling on a transport's unsent bytes and what happens at it
/// ([`TransportImpl::set_write_limit`]).
///
/// ```
/// use torsion::transport::{WriteLimit, WritePolicy};
///
/// let limit = WriteLimit::new(1 << 20, WritePolicy::Disconnect);
/// assert_eq!(limit.bytes, 1 << 20);
/// assert_eq!(WriteLimit::disconnect(1 << 20), limit);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteLimit {
    /// The most bytes that may wait to be sent.
    pub bytes: usize,
    /// What a write that would pass it does.
    pub policy: WritePolicy,
}

impl WriteLimit {
    /// A limit of `bytes` with `policy`.
    pub const fn new(bytes: usize, policy: WritePolicy) -> WriteLimit {
        WriteLimit { bytes, policy }
    }

    /// A limit of `bytes` that aborts the connection ([`WritePolicy::Disconnect`]).
    pub const fn disconnect(bytes: usize) -> WriteLimit {
        WriteLimit::new(bytes, WritePolicy::Disconnect)
    }
}

/// Something that writes bytes to a consumer and can be told to slow down (Twisted's
/// `IPushProducer` and `IPullProducer` in one trait).
///
/// Methods take `&self`: keep changing state in `Cell`s and `RefCell`s. A transport calls
/// them from its own task, never from inside a callback of the same connection (see the
/// [producer module documentation](crate::producer)), and catches a panic in them: the panic is logged and the
/// connection is aborted.
pub trait Producer: 'static {
    /// Stop writing until [`resume_producing`](Self::resume_producing) (streaming producers
    /// only; pull producers are never paused).
    fn pause_producing(&self) {}

    /// A streaming producer: write again. A pull producer: write the next chunk now.
    fn resume_producing(&self);

    /// The consumer is gone (the connection ended) or no longer wants the data: stop for
    /// good and release what the producer holds.
    fn stop_producing(&self);
}

/// Why [`register_producer`](crate::transport::TransportImpl::register_producer) refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProducerError {
    /// Another producer is registered; unregister it first (Twisted raises `RuntimeError`).
    AlreadyRegistered,
    /// The connection is closing or closed; it will not consume anything more.
    Disconnected,
    /// This kind of transport does not do flow control.
    Unsupported,
}

impl fmt::Display for ProducerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProducerError::AlreadyRegistered => {
                "cannot register a producer: another producer was never unregistered"
            }
            ProducerError::Disconnected => "cannot register a producer: the connection is closed",
            ProducerError::Unsupported => "this transport does not take producers",
        })
    }
}

impl std::error::Error for ProducerError {}

/// A handle to a connection's transport: cheap to clone, every clone the same connection.
///
/// Its own methods are the ones every protocol uses; everything else [`TransportImpl`] has
/// (flow control, half-close, the capabilities) is reached through it too, by `Deref` (listed
/// at the bottom of this page, under "Methods from `Deref`").
///
/// # Methods
///
/// - Writing: [`write`](Self::write), [`write_sequence`](Self::write_sequence),
///   [`write_file`](TransportImpl::write_file) (a file's bytes by `sendfile(2)`).
/// - Closing: [`lose_connection`](Self::lose_connection),
///   [`abort_connection`](Self::abort_connection),
///   [`lose_write_connection`](TransportImpl::lose_write_connection) (half-close).
/// - State: [`is_connected`](TransportImpl::is_connected),
///   [`disconnecting`](TransportImpl::disconnecting),
///   [`buffered_size`](TransportImpl::buffered_size), [`same`](Self::same).
/// - Addresses: [`get_peer`](Self::get_peer), [`get_host`](Self::get_host),
///   [`peer_credentials`](TransportImpl::peer_credentials).
/// - Flow control (a transport is a producer and a consumer):
///   [`pause_producing`](TransportImpl::pause_producing),
///   [`resume_producing`](TransportImpl::resume_producing),
///   [`register_producer`](TransportImpl::register_producer),
///   [`unregister_producer`](TransportImpl::unregister_producer),
///   [`set_write_buffer_limits`](TransportImpl::set_write_buffer_limits),
///   [`write_buffer_limits`](TransportImpl::write_buffer_limits).
/// - A ceiling for peers that do not read: [`set_write_limit`](TransportImpl::set_write_limit),
///   [`clear_write_limit`](TransportImpl::clear_write_limit),
///   [`write_limit`](TransportImpl::write_limit),
///   [`dropped_write_bytes`](TransportImpl::dropped_write_bytes).
/// - Graceful stop: [`request_drain`](TransportImpl::request_drain).
/// - TCP: [`set_tcp_no_delay`](Self::set_tcp_no_delay),
///   [`get_tcp_no_delay`](Self::get_tcp_no_delay),
///   [`set_tcp_keep_alive`](Self::set_tcp_keep_alive),
///   [`get_tcp_keep_alive`](Self::get_tcp_keep_alive), [`tcp`](TransportImpl::tcp).
/// - TLS: `start_tls` (with the `tls` feature), [`peer_certificate`](Self::peer_certificate),
///   [`negotiated_protocol`](Self::negotiated_protocol).
///
/// Framing protocols wrap it in a sender with `send_line` / `send_string`
/// ([`LineSender`](crate::protocols::basic::LineSender),
/// [`StringSender`](crate::protocols::basic::StringSender)); a kept `Transport` writes raw
/// bytes, so keep the sender's owned form (`sender()`) to send framed messages later.
#[derive(Clone)]
pub struct Transport {
    inner: Rc<dyn TransportImpl>,
}

impl Transport {
    /// Wraps a transport implementation.
    pub fn new(inner: Rc<dyn TransportImpl>) -> Transport {
        Transport { inner }
    }

    /// True when both handles are the same connection.
    pub fn same(&self, other: &Transport) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// Queues bytes to send. Never blocks; writes after the connection closed are dropped.
    #[inline]
    pub fn write(&self, data: &[u8]) {
        self.inner.write(data);
    }

    /// Queues several buffers, in order (Twisted's `writeSequence`).
    #[inline]
    pub fn write_sequence(&self, data: &[&[u8]]) {
        self.inner.write_sequence(data);
    }

    /// Closes the connection once everything written has been sent (Twisted's
    /// `loseConnection`). The protocol's `connection_lost` follows.
    pub fn lose_connection(&self) {
        self.inner.lose_connection();
    }

    /// Closes the connection now, dropping unsent data (Twisted's `abortConnection`).
    pub fn abort_connection(&self) {
        self.inner.abort_connection();
    }

    /// The other end's address.
    pub fn get_peer(&self) -> Address {
        self.inner.get_peer()
    }

    /// This end's address.
    pub fn get_host(&self) -> Address {
        self.inner.get_host()
    }

    /// Sets `TCP_NODELAY` ([`TcpOptions`]); `Unsupported` on transports that are not TCP.
    pub fn set_tcp_no_delay(&self, enabled: bool) -> io::Result<()> {
        self.inner
            .tcp()
            .map_or_else(unsupported, |t| t.set_no_delay(enabled))
    }

    /// Reads `TCP_NODELAY`; `Unsupported` on transports that are not TCP.
    pub fn get_tcp_no_delay(&self) -> io::Result<bool> {
        self.inner.tcp().map_or_else(unsupported, |t| t.no_delay())
    }

    /// Sets `SO_KEEPALIVE`; `Unsupported` on transports that are not TCP.
    pub fn set_tcp_keep_alive(&self, enabled: bool) -> io::Result<()> {
        self.inner
            .tcp()
            .map_or_else(unsupported, |t| t.set_keep_alive(enabled))
    }

    /// Reads `SO_KEEPALIVE`; `Unsupported` on transports that are not TCP.
    pub fn get_tcp_keep_alive(&self) -> io::Result<bool> {
        self.inner
            .tcp()
            .map_or_else(unsupported, |t| t.keep_alive())
    }

    /// Switches the running connection to TLS ([`TlsTransport::start_tls`]); `Unsupported`
    /// on transports that cannot.
    #[cfg(feature = "tls")]
    pub fn start_tls(&self, context: crate::tls::TlsContext) -> io::Result<()> {
        self.inner
            .tls()
            .map_or_else(unsupported, |t| t.start_tls(context))
    }

    /// The peer's TLS certificate (DER), once the handshake has delivered it; `None` on
    /// plain connections and for a TLS client that showed none.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        #[cfg(feature = "tls")]
        return self.inner.tls().and_then(|t| t.peer_certificate());
        #[cfg(not(feature = "tls"))]
        None
    }

    /// The application protocol TLS's ALPN agreed on (such as `b"h2"`), if any.
    pub fn negotiated_protocol(&self) -> Option<Vec<u8>> {
        #[cfg(feature = "tls")]
        return self.inner.tls().and_then(|t| t.negotiated_protocol());
        #[cfg(not(feature = "tls"))]
        None
    }
}

impl Deref for Transport {
    type Target = dyn TransportImpl;

    fn deref(&self) -> &Self::Target {
        &*self.inner
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("peer", &self.inner.get_peer())
            .field("host", &self.inner.get_host())
            .finish()
    }
}
