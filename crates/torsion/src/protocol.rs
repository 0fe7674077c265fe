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

use std::rc::Rc;

use crate::connector::Connector;
use crate::transport::{Address, Transport};
use crate::Failure;

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
    /// By default the connection is closed once pending writes are sent; override to keep
    /// writing on a half-closed connection.
    fn read_connection_lost(&mut self, transport: &Transport) {
        transport.lose_connection();
    }

    /// The connection is gone (Twisted's `connectionLost`): `reason` holds
    /// [`ConnectionDone`](crate::error::ConnectionDone) for a clean close,
    /// [`ConnectionLost`](crate::error::ConnectionLost) otherwise.
    fn connection_lost(&mut self, reason: Failure) {
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
    fn connection_lost(&mut self, reason: Failure) {
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
