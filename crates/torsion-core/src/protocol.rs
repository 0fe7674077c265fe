//! Protocols and factories (Twisted's `twisted.internet.protocol`).
//!
//! A [`Protocol`] gives meaning to a connection's bytes: it is a small state machine called
//! when the connection is made, when data arrives, and when the connection is lost. One
//! protocol object lives per connection; a [`Factory`] makes them. The framework never calls
//! a protocol while one of its methods runs: events that happen meanwhile (a
//! `lose_connection` inside `data_received`) are delivered after it returns.
//!
//! The seed's Echo server:
//!
//! ```no_run
//! use torsion::{factory, reactor, Protocol, Transport};
//!
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     fn data_received(&mut self, transport: &Transport, data: &[u8]) {
//!         transport.write(data);
//!     }
//! }
//!
//! reactor().listen_tcp(1033, factory(|| Echo)).unwrap();
//! reactor().run().unwrap();
//! ```

use std::fmt;
use std::io;
use std::rc::Rc;

use crate::connector::Connector;
#[cfg(feature = "tls")]
use crate::error::TlsError;
use crate::error::{ConnectionAborted, ConnectionDone, ConnectionLost, PanicError};
use crate::transport::{Address, Transport};
use crate::Failure;

/// How a connection ended: what [`Protocol::connection_lost`] is told (Twisted's `reason`).
///
/// Match on it, or turn it into the [`Failure`] Twisted would give
/// ([`ConnectionDone`] for a clean close, [`ConnectionLost`] with the I/O error intact,
/// [`ConnectionAborted`], the panic or TLS error) with `.into()` or
/// [`failure`](ConnectionEnd::failure), to pass it on to an errback or a log.
///
/// ```
/// use torsion::error::ConnectionDone;
/// use torsion::{ConnectionEnd, Failure};
///
/// let end = ConnectionEnd::Done;
/// assert!(end.is_clean());
/// assert!(end.check::<ConnectionDone>()); // as Twisted's reason.check(ConnectionDone)
/// let reason: Failure = end.into();
/// assert!(reason.check::<ConnectionDone>());
///
/// let reset = std::io::Error::from_raw_os_error(104); // ECONNRESET
/// let end = ConnectionEnd::from_io(reset);
/// assert!(matches!(end, ConnectionEnd::Reset(_)));
/// assert_eq!(end.io_error().and_then(|e| e.raw_os_error()), Some(104));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionEnd {
    /// Closed cleanly: this end's `lose_connection`, or the peer closed and both sides were
    /// done (Twisted's `ConnectionDone`).
    Done,
    /// This end aborted it with `abort_connection` (Twisted's `ConnectionAborted`).
    Aborted,
    /// The peer reset the connection (`ECONNRESET`, `EPIPE`, `ECONNABORTED`).
    Reset(io::Error),
    /// The connection timed out in the kernel (`ETIMEDOUT`, keep-alive probes unanswered).
    TimedOut(io::Error),
    /// Any other I/O error, as the operating system gave it.
    Error(io::Error),
    /// The reactor shut down while the connection was open.
    Shutdown,
    /// A method of the protocol panicked; the connection was closed (the panic is logged).
    Panicked(PanicError),
    /// This end aborted it because a write would have taken its unsent bytes past the write
    /// limit (`limit` bytes) with [`WritePolicy::Disconnect`](crate::transport::WritePolicy):
    /// the peer was not reading (see
    /// [`set_write_limit`](crate::transport::TransportImpl::set_write_limit)). Not in
    /// Twisted; it checks and converts as [`ConnectionEnd::Aborted`] (`ConnectionAborted`).
    WriteLimit {
        /// The limit that was reached, in bytes.
        limit: usize,
    },
    /// TLS failed: the handshake, a bad record, or a fatal alert from the peer.
    #[cfg(feature = "tls")]
    Tls(TlsError),
}

impl ConnectionEnd {
    /// Sorts an I/O error that ended a connection: a reset, a time-out, or another error.
    pub fn from_io(e: io::Error) -> ConnectionEnd {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => ConnectionEnd::Reset(e),
            io::ErrorKind::TimedOut => ConnectionEnd::TimedOut(e),
            _ => ConnectionEnd::Error(e),
        }
    }

    /// True when the [`Failure`] Twisted would give for this end is an `E`, as Twisted's
    /// `reason.check(ConnectionDone)`: `ConnectionDone` for a clean close,
    /// `ConnectionAborted`, `ConnectionLost` for a reset, a time-out, another I/O error or a
    /// shutdown, `PanicError`, `TlsError`. Makes no `Failure`.
    pub fn check<E: std::error::Error + 'static>(&self) -> bool {
        use std::any::TypeId;
        let wanted = TypeId::of::<E>();
        let is = match self {
            ConnectionEnd::Done => TypeId::of::<ConnectionDone>(),
            ConnectionEnd::Aborted | ConnectionEnd::WriteLimit { .. } => {
                TypeId::of::<ConnectionAborted>()
            }
            ConnectionEnd::Reset(_)
            | ConnectionEnd::TimedOut(_)
            | ConnectionEnd::Error(_)
            | ConnectionEnd::Shutdown => TypeId::of::<ConnectionLost>(),
            ConnectionEnd::Panicked(_) => TypeId::of::<PanicError>(),
            #[cfg(feature = "tls")]
            ConnectionEnd::Tls(_) => TypeId::of::<TlsError>(),
        };
        is == wanted
    }

    /// True for a clean close ([`ConnectionEnd::Done`]).
    pub fn is_clean(&self) -> bool {
        matches!(self, ConnectionEnd::Done)
    }

    /// The I/O error that ended the connection, if one did.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            ConnectionEnd::Reset(e) | ConnectionEnd::TimedOut(e) | ConnectionEnd::Error(e) => {
                Some(e)
            }
            _ => None,
        }
    }

    /// The [`Failure`] Twisted would give for this end, leaving this one as it is (the I/O
    /// error is copied: its kind, message and OS error number).
    pub fn failure(&self) -> Failure {
        let copy = |e: &io::Error| match e.raw_os_error() {
            Some(n) => io::Error::from_raw_os_error(n),
            None => io::Error::new(e.kind(), e.to_string()),
        };
        match self {
            ConnectionEnd::Reset(e) | ConnectionEnd::TimedOut(e) | ConnectionEnd::Error(e) => {
                Failure::new(ConnectionLost::new(Some(copy(e))))
            }
            ConnectionEnd::Done => Failure::new(ConnectionDone),
            ConnectionEnd::Aborted | ConnectionEnd::WriteLimit { .. } => {
                Failure::new(ConnectionAborted)
            }
            ConnectionEnd::Shutdown => Failure::new(ConnectionLost::new(None)),
            ConnectionEnd::Panicked(p) => Failure::new(p.clone()),
            #[cfg(feature = "tls")]
            ConnectionEnd::Tls(e) => Failure::new(e.clone()),
        }
    }
}

/// The Failure Twisted would give, with the I/O error moved in intact.
impl From<ConnectionEnd> for Failure {
    fn from(end: ConnectionEnd) -> Failure {
        match end {
            ConnectionEnd::Reset(e) | ConnectionEnd::TimedOut(e) | ConnectionEnd::Error(e) => {
                Failure::new(ConnectionLost::new(Some(e)))
            }
            other => other.failure(),
        }
    }
}

impl fmt::Display for ConnectionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionEnd::Done => f.write_str("connection closed cleanly"),
            ConnectionEnd::Aborted => f.write_str("connection aborted"),
            ConnectionEnd::WriteLimit { limit } => write!(
                f,
                "connection aborted: the peer left over {limit} bytes unread (the write limit)"
            ),
            ConnectionEnd::Reset(e) => write!(f, "connection reset by the peer: {e}"),
            ConnectionEnd::TimedOut(e) => write!(f, "connection timed out: {e}"),
            ConnectionEnd::Error(e) => write!(f, "connection lost: {e}"),
            ConnectionEnd::Shutdown => f.write_str("connection closed: the reactor shut down"),
            ConnectionEnd::Panicked(p) => write!(f, "connection closed: {p}"),
            #[cfg(feature = "tls")]
            ConnectionEnd::Tls(e) => write!(f, "connection closed: {e}"),
        }
    }
}

/// The meaning of a connection's bytes (Twisted's `Protocol`).
///
/// Each method gets the connection's [`Transport`] to write to it or close it. A panic in
/// any method is caught and logged, and closes only this connection.
pub trait Protocol: 'static {
    /// The connection is up (Twisted's `connectionMade`).
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Bytes arrived (Twisted's `dataReceived`). They may be any part of what the peer sent:
    /// framing is the protocol's business (see the framing protocols).
    fn data_received(&mut self, transport: &Transport, data: &[u8]);

    /// The peer closed its sending half (Twisted's `IHalfCloseableProtocol.readConnectionLost`).
    /// By default the connection is closed once pending writes are sent
    /// ([`lose_connection`](Transport::lose_connection)), then
    /// [`connection_lost`](Self::connection_lost) hears [`ConnectionEnd::Done`]; override to
    /// keep writing on a half-closed connection.
    ///
    /// Differs from Twisted: a Twisted protocol that is not half-close aware gets
    /// `connectionLost` at once and loses the bytes it wrote that were not sent yet; here
    /// they are sent first. For Twisted's behaviour, override this with
    /// [`abort_connection`](Transport::abort_connection) (the end is then
    /// [`ConnectionEnd::Aborted`]). See docs/design.md, "Differences from Twisted".
    fn read_connection_lost(&mut self, transport: &Transport) {
        transport.lose_connection();
    }

    /// This end's sending half is shut (Twisted's
    /// `IHalfCloseableProtocol.writeConnectionLost`): after
    /// [`lose_write_connection`](crate::transport::TransportImpl::lose_write_connection), once everything written
    /// before it was handed to the operating system (and, on TLS, close_notify after it) and
    /// the socket's write half was shut down. The peer reads end of stream after those bytes;
    /// the connection stays open for reading until the peer closes too, then
    /// [`connection_lost`](Self::connection_lost) is called. Called at most once, and not
    /// when the connection is closed or aborted before the write half was shut.
    ///
    /// By default nothing, as Twisted's is optional.
    fn write_connection_lost(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// The connection is gone (Twisted's `connectionLost`): `reason` says how
    /// ([`ConnectionEnd::Done`] for a clean close); `reason.into()` makes the [`Failure`]
    /// Twisted would give.
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        let _ = reason;
    }

    /// The server is shutting down gracefully and asks this connection to finish what it is
    /// doing and close (see [`ListeningPort::drain`](crate::tcp::ListeningPort::drain)):
    /// close at once with `lose_connection` when idle, or after the work in progress (an
    /// HTTP response being sent) is done. Called at most once, by the connection's own engine.
    ///
    /// By default nothing: the connection stays up until the drain deadline, when it is
    /// aborted.
    fn drain(&mut self, transport: &Transport) {
        let _ = transport;
    }
}

impl Protocol for Box<dyn Protocol> {
    fn connection_made(&mut self, transport: &Transport) {
        (**self).connection_made(transport)
    }
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        (**self).data_received(transport, data)
    }
    fn read_connection_lost(&mut self, transport: &Transport) {
        (**self).read_connection_lost(transport)
    }
    fn write_connection_lost(&mut self, transport: &Transport) {
        (**self).write_connection_lost(transport)
    }
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        (**self).connection_lost(reason)
    }
    fn drain(&mut self, transport: &Transport) {
        (**self).drain(transport)
    }
}

/// Makes a protocol for each new connection (Twisted's `Factory`/`ServerFactory`).
///
/// Shared state for all connections lives in the factory (or in `Rc`s it hands to its
/// protocols). Methods take `&self`; use `Cell`/`RefCell` for state that changes.
pub trait Factory: 'static {
    /// The protocol type this factory makes. Use `Box<dyn Protocol>` to make several kinds.
    type Protocol: Protocol;

    /// Makes the protocol for a connection from `addr`; `None` refuses the connection (it is
    /// closed at once).
    fn build_protocol(&self, addr: &Address) -> Option<Self::Protocol>;

    /// Called when a port starts listening with this factory (or a client starts using it).
    fn start_factory(&self) {}

    /// Called when that port stops listening.
    fn stop_factory(&self) {}
}

/// A factory for outgoing connections (Twisted's `ClientFactory`), told how connecting goes.
pub trait ClientFactory: Factory {
    /// A connection attempt has started.
    fn started_connecting(&self, connector: &Connector) {
        let _ = connector;
    }

    /// The attempt failed: refused ([`ConnectionRefusedError`](crate::error::ConnectionRefusedError)),
    /// timed out ([`TimeoutError`](crate::error::TimeoutError)), or another
    /// [`ConnectError`](crate::error::ConnectError). `connector.connect()` retries.
    fn client_connection_failed(&self, connector: &Connector, reason: Failure) {
        let _ = (connector, reason);
    }

    /// An established connection ended. `connector.connect()` reconnects.
    fn client_connection_lost(&self, connector: &Connector, reason: Failure) {
        let _ = (connector, reason);
    }
}

impl<F: Factory> Factory for Rc<F> {
    type Protocol = F::Protocol;

    fn build_protocol(&self, addr: &Address) -> Option<Self::Protocol> {
        (**self).build_protocol(addr)
    }
    fn start_factory(&self) {
        (**self).start_factory()
    }
    fn stop_factory(&self) {
        (**self).stop_factory()
    }
}

impl<F: ClientFactory> ClientFactory for Rc<F> {
    fn started_connecting(&self, connector: &Connector) {
        (**self).started_connecting(connector)
    }
    fn client_connection_failed(&self, connector: &Connector, reason: Failure) {
        (**self).client_connection_failed(connector, reason)
    }
    fn client_connection_lost(&self, connector: &Connector, reason: Failure) {
        (**self).client_connection_lost(connector, reason)
    }
}

/// A factory made from a closure; see [`factory`].
pub struct FnFactory<F> {
    make: F,
}

/// A factory that makes each protocol with `make` (Twisted's `Factory.forProtocol`). It is
/// both a server and a client factory. Capture shared state in the closure:
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use torsion::{factory, Protocol, Transport};
///
/// struct ByteCount { total: Rc<Cell<usize>> }
/// impl Protocol for ByteCount {
///     fn data_received(&mut self, _: &Transport, data: &[u8]) {
///         self.total.set(self.total.get() + data.len());
///     }
/// }
///
/// let total = Rc::new(Cell::new(0));
/// let f = factory(move || ByteCount { total: total.clone() });
/// # let _ = f;
/// ```
pub fn factory<P: Protocol, F: Fn() -> P + 'static>(make: F) -> FnFactory<F> {
    FnFactory { make }
}

impl<P: Protocol, F: Fn() -> P + 'static> Factory for FnFactory<F> {
    type Protocol = P;

    fn build_protocol(&self, _addr: &Address) -> Option<P> {
        Some((self.make)())
    }
}

impl<P: Protocol, F: Fn() -> P + 'static> ClientFactory for FnFactory<F> {}
