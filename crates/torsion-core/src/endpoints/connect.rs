//! Connecting with a Deferred (Twisted's `IStreamClientEndpoint.connect` and
//! `connectProtocol`): the Deferred fires with the connected protocol.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::client::ClientEndpoint;
use crate::defer::{Deferred, Trigger};
use crate::protocol::{ClientFactory, ConnectionEnd, Factory, Protocol};
use crate::tcp::Connector;
use crate::transport::{Address, Transport};
use crate::Failure;

/// The factory made no protocol for the connection (Twisted's `error.NoProtocol`):
/// [`ClientEndpoint::connect_deferred`] fails with this when `build_protocol` returns `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoProtocol;

impl fmt::Display for NoProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the factory made no protocol for the connection")
    }
}

impl std::error::Error for NoProtocol {}

/// A connection made by [`ClientEndpoint::connect_deferred`]: its transport and its
/// protocol.
///
/// The connection owns the protocol and calls it as events arrive; this handle shares it as
/// an `Rc<RefCell<P>>`. Borrow it from your own code (a Deferred's callback, a timer), never
/// from inside one of the protocol's own methods, where it is already borrowed (that
/// borrow would panic). Cheap to clone.
pub struct ConnectedProtocol<P> {
    transport: Transport,
    protocol: Rc<RefCell<P>>,
}

impl<P> Clone for ConnectedProtocol<P> {
    fn clone(&self) -> Self {
        ConnectedProtocol {
            transport: self.transport.clone(),
            protocol: self.protocol.clone(),
        }
    }
}

impl<P> ConnectedProtocol<P> {
    /// The connection's transport: write to it, close it, ask for its addresses.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The protocol, shared with the connection that calls it.
    pub fn protocol(&self) -> &Rc<RefCell<P>> {
        &self.protocol
    }

    /// Runs `f` with the protocol borrowed mutably.
    ///
    /// # Panics
    /// When called from inside one of the protocol's own methods (it is borrowed there).
    pub fn with_protocol<R>(&self, f: impl FnOnce(&mut P) -> R) -> R {
        f(&mut self.protocol.borrow_mut())
    }
}

impl<P> fmt::Debug for ConnectedProtocol<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectedProtocol")
            .field("peer", &self.transport.get_peer())
            .finish()
    }
}

type Waiter<P> = Rc<RefCell<Option<Trigger<ConnectedProtocol<P>>>>>;

/// The protocol the connection runs: calls the user's protocol, shared through an
/// `Rc<RefCell<_>>`, and fires the Deferred once `connection_made` has run (Twisted's
/// `_WrappingProtocol`).
struct SharedProtocol<P> {
    protocol: Rc<RefCell<P>>,
    waiter: Waiter<P>,
    /// Told when a connection that was delivered ends (for [`ClientService`](crate::application::ClientService)).
    on_lost: Option<Rc<dyn Fn()>>,
    delivered: bool,
}

impl<P: Protocol> Protocol for SharedProtocol<P> {
    fn connection_made(&mut self, transport: &Transport) {
        self.protocol.borrow_mut().connection_made(transport);
        let fired = match self.waiter.borrow_mut().take() {
            Some(t) => t
                .try_callback(ConnectedProtocol {
                    transport: transport.clone(),
                    protocol: self.protocol.clone(),
                })
                .is_ok(),
            None => false,
        };
        self.delivered = fired;
        if !fired {
            // Cancelled between the socket connecting and now: nobody wants the connection.
            transport.abort_connection();
        }
    }
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.protocol.borrow_mut().data_received(transport, data)
    }
    fn read_connection_lost(&mut self, transport: &Transport) {
        self.protocol.borrow_mut().read_connection_lost(transport)
    }
    fn write_connection_lost(&mut self, transport: &Transport) {
        self.protocol.borrow_mut().write_connection_lost(transport)
    }
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.protocol.borrow_mut().connection_lost(reason);
        if let (true, Some(lost)) = (self.delivered, &self.on_lost) {
            lost();
        }
    }
    fn drain(&mut self, transport: &Transport) {
        self.protocol.borrow_mut().drain(transport)
    }
}

/// The client factory behind [`ClientEndpoint::connect_deferred`] (Twisted's
/// `_WrappingFactory`): builds the user's protocol, and fails the Deferred when the attempt
/// fails.
struct DeferredFactory<F: Factory> {
    factory: F,
    waiter: Waiter<F::Protocol>,
    on_lost: Option<Rc<dyn Fn()>>,
}

fn fail_waiter<P: 'static>(waiter: &Waiter<P>, reason: Failure) {
    if let Some(t) = waiter.borrow_mut().take() {
        let _ = t.try_errback(reason);
    }
}

impl<F: Factory> Factory for DeferredFactory<F> {
    type Protocol = SharedProtocol<F::Protocol>;

    fn build_protocol(&self, addr: &Address) -> Option<Self::Protocol> {
        match self.factory.build_protocol(addr) {
            Some(p) => Some(SharedProtocol {
                protocol: Rc::new(RefCell::new(p)),
                waiter: self.waiter.clone(),
                on_lost: self.on_lost.clone(),
                delivered: false,
            }),
            None => {
                fail_waiter(&self.waiter, Failure::new(NoProtocol));
                None
            }
        }
    }
    fn start_factory(&self) {
        self.factory.start_factory()
    }
    fn stop_factory(&self) {
        self.factory.stop_factory()
    }
}

impl<F: Factory> ClientFactory for DeferredFactory<F> {
    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        fail_waiter(&self.waiter, reason);
    }
}

impl ClientEndpoint {
    /// Connects, building the protocol with `factory`; the Deferred fires with the
    /// [connected protocol](ConnectedProtocol) once its `connection_made` has run (Twisted's
    /// `IStreamClientEndpoint.connect(factory)`).
    ///
    /// It fails with the reason the attempt failed: a
    /// [`ConnectError`](crate::error::ConnectError) (a refusal is a
    /// [`ConnectionRefusedError`](crate::error::ConnectionRefusedError)), a
    /// [`TimeoutError`](crate::error::TimeoutError), or [`NoProtocol`] when `factory` makes
    /// none. Cancelling it before it fires stops the attempt; it fails with
    /// [`CancelledError`](crate::error::CancelledError). For a factory that hears each
    /// attempt and retries with a [`Connector`], use [`connect`](Self::connect).
    ///
    /// ```no_run
    /// use torsion::endpoints::client_from_string;
    /// use torsion::{factory, Protocol, Reactor, Transport};
    ///
    /// #[derive(Default)]
    /// struct Greeter { heard: Vec<u8> }
    /// impl Protocol for Greeter {
    ///     fn data_received(&mut self, _t: &Transport, data: &[u8]) { self.heard.extend(data) }
    /// }
    ///
    /// # async fn demo() -> Result<(), torsion::Failure> {
    /// let endpoint = client_from_string(&torsion::reactor(), "tcp:example.com:7").unwrap();
    /// let conn = endpoint.connect_deferred(factory(Greeter::default)).await?;
    /// conn.transport().write(b"hello\r\n");
    /// let heard = conn.with_protocol(|p| p.heard.len());
    /// # let _ = heard; Ok(()) }
    /// ```
    pub fn connect_deferred<F: Factory>(
        &self,
        factory: F,
    ) -> Deferred<ConnectedProtocol<F::Protocol>> {
        self.connect_notifying(factory, None)
    }

    /// [`connect_deferred`](Self::connect_deferred), calling `on_lost` when the connection
    /// it delivered ends.
    pub(crate) fn connect_notifying<F: Factory>(
        &self,
        factory: F,
        on_lost: Option<Rc<dyn Fn()>>,
    ) -> Deferred<ConnectedProtocol<F::Protocol>> {
        let connector: Rc<RefCell<Option<Connector>>> = Rc::default();
        let held = connector.clone();
        let d = Deferred::with_canceller(move |trigger| {
            let _ = trigger.try_errback(crate::error::CancelledError);
            if let Some(c) = held.borrow_mut().take() {
                c.stop_connecting();
            }
        });
        let waiter: Waiter<F::Protocol> = Rc::new(RefCell::new(Some(d.trigger())));
        let wrapping = DeferredFactory {
            factory,
            waiter: waiter.clone(),
            on_lost,
        };
        match self.connect(wrapping) {
            Ok(c) => *connector.borrow_mut() = Some(c),
            Err(f) => fail_waiter(&waiter, f),
        }
        d
    }
}

/// The factory of [`connect_protocol`]: hands out its one protocol.
struct OneProtocol<P>(RefCell<Option<P>>);

impl<P: Protocol> Factory for OneProtocol<P> {
    type Protocol = P;

    fn build_protocol(&self, _addr: &Address) -> Option<P> {
        self.0.borrow_mut().take()
    }
}

/// Connects `protocol` through `endpoint` (Twisted's `connectProtocol`): the Deferred fires
/// with the [connected protocol](ConnectedProtocol), as
/// [`connect_deferred`](ClientEndpoint::connect_deferred) does with a factory that makes
/// this one protocol.
///
/// ```no_run
/// use torsion::endpoints::{client_from_string, connect_protocol};
/// use torsion::{Protocol, Transport};
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: &Transport) { t.write(b"hello\r\n") }
///     fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
/// }
///
/// # async fn demo() -> Result<(), torsion::Failure> {
/// let endpoint = client_from_string(&torsion::reactor(), "tcp:example.com:7").unwrap();
/// let conn = connect_protocol(&endpoint, Hello).await?;
/// conn.transport().lose_connection();
/// # Ok(()) }
/// ```
pub fn connect_protocol<P: Protocol>(
    endpoint: &ClientEndpoint,
    protocol: P,
) -> Deferred<ConnectedProtocol<P>> {
    endpoint.connect_deferred(OneProtocol(RefCell::new(Some(protocol))))
}
