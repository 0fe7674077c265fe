//! `ProtocolWrapper` and `WrappingFactory`: put a policy between a factory's protocols and
//! their transports (Twisted's `twisted.protocols.policies.ProtocolWrapper` and
//! `WrappingFactory`).
//!
//! A [`Wrapper`] is the policy. It decides which connections are admitted, sees every event on
//! the way to the wrapped protocol (and may pass it on, change it, or drop it), and sees every
//! call the wrapped protocol makes on its transport. A [`WrappingFactory`] applies a wrapper
//! to the protocols of any factory and keeps a registry of the live connections.

use std::cell::{Cell, OnceCell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};

use crate::producer::{Producer, ProducerError};
use crate::protocol::{ClientFactory, Factory, Protocol};
use crate::tcp::Connector;
use crate::transport::{Address, Transport, TransportImpl};
use crate::util::Slab;
use crate::ConnectionEnd;
use crate::Failure;

/// A policy applied to every connection of a [`WrappingFactory`].
///
/// Every method has a default that passes the event or call through unchanged, except
/// [`admit`](Self::admit). Hooks on the protocol side get a [`Next`] to pass the event on;
/// hooks on the transport side reach the real transport with
/// [`Wrapped::transport`]. The wrapper's own state is shared by all connections (use `Cell`
/// and `RefCell`); what it keeps per connection is [`State`](Self::State).
///
/// ```
/// use std::cell::Cell;
/// use torsion::protocols::policies::{Next, Wrapped, Wrapper, WrappingFactory};
/// use torsion::{factory, testing::StringTransport, transport::Address, Factory, Protocol, Transport};
///
/// /// Counts the bytes its connections receive.
/// #[derive(Default)]
/// struct ByteCounter { total: Cell<usize> }
///
/// impl Wrapper for ByteCounter {
///     type State = ();
///     const WRAPS_TRANSPORT: bool = false; // writes are not watched
///     fn admit(&self, _addr: &Address) -> Option<()> { Some(()) }
///     fn data_received(&self, _conn: &Wrapped<Self>, mut next: Next<'_>, data: &[u8]) {
///         self.total.set(self.total.get() + data.len());
///         next.data_received(data);
///     }
/// }
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
/// }
///
/// let f = WrappingFactory::new(factory(|| Echo), ByteCounter::default());
/// let mut p = f.build_protocol(&Address::Named("test".into())).unwrap();
/// let st = StringTransport::new();
/// p.connection_made(&st.transport());
/// p.data_received(&st.transport(), b"hello");
/// assert_eq!(st.value(), b"hello");
/// assert_eq!((f.wrapper().total.get(), f.protocol_count()), (5, 1));
/// ```
pub trait Wrapper: Sized + 'static {
    /// What the wrapper keeps per connection (use `Cell`/`RefCell` for what changes). It must
    /// not hold the connection's wrapping transport (that would be a reference cycle).
    type State: 'static;

    /// Whether the wrapped protocol talks to a wrapping transport, whose calls go through the
    /// transport-side hooks (`write`, `lose_connection`, ...). A wrapper that only watches
    /// events sets this to `false`, and the wrapped protocol gets the real transport.
    const WRAPS_TRANSPORT: bool = true;

    /// A connection from `addr` is about to be made: `Some(state)` admits it, `None` refuses
    /// it (it is closed at once). Every admitted connection is [released](Self::release)
    /// exactly once.
    fn admit(&self, addr: &Address) -> Option<Self::State>;

    /// The connection is over: after `connection_lost` has been passed on, or when the
    /// wrapped factory refused it, or when it was dropped without ever ending. Undo here what
    /// [`admit`](Self::admit) counted.
    fn release(&self, conn: &Wrapped<Self>) {
        let _ = conn;
    }

    /// The connection is up; [`Wrapped::transport`] is set from now on.
    fn connection_made(&self, conn: &Wrapped<Self>, mut next: Next<'_>) {
        let _ = conn;
        next.connection_made();
    }

    /// Bytes arrived.
    fn data_received(&self, conn: &Wrapped<Self>, mut next: Next<'_>, data: &[u8]) {
        let _ = conn;
        next.data_received(data);
    }

    /// The peer closed its sending half.
    fn read_connection_lost(&self, conn: &Wrapped<Self>, mut next: Next<'_>) {
        let _ = conn;
        next.read_connection_lost();
    }

    /// This end's sending half is shut (after `lose_write_connection` flushed).
    fn write_connection_lost(&self, conn: &Wrapped<Self>, mut next: Next<'_>) {
        let _ = conn;
        next.write_connection_lost();
    }

    /// The connection is gone. [`release`](Self::release) follows.
    fn connection_lost(&self, conn: &Wrapped<Self>, mut next: Next<'_>, reason: ConnectionEnd) {
        let _ = conn;
        next.connection_lost(reason);
    }

    /// The wrapped protocol writes.
    fn write(&self, conn: &Wrapped<Self>, data: &[u8]) {
        conn.transport().write(data);
    }

    /// The wrapped protocol writes several buffers; by default each goes through
    /// [`write`](Self::write), so a wrapper that watches writes needs only that.
    fn write_sequence(&self, conn: &Wrapped<Self>, data: &[&[u8]]) {
        for chunk in data {
            self.write(conn, chunk);
        }
    }

    /// The wrapped protocol closes the connection.
    fn lose_connection(&self, conn: &Wrapped<Self>) {
        conn.transport().lose_connection();
    }

    /// The wrapped protocol aborts the connection.
    fn abort_connection(&self, conn: &Wrapped<Self>) {
        conn.transport().abort_connection();
    }

    /// The wrapped protocol closes its sending half.
    fn lose_write_connection(&self, conn: &Wrapped<Self>) {
        conn.transport().lose_write_connection();
    }

    /// The wrapped protocol pauses reading.
    fn pause_producing(&self, conn: &Wrapped<Self>) {
        conn.transport().pause_producing();
    }

    /// The wrapped protocol resumes reading.
    fn resume_producing(&self, conn: &Wrapped<Self>) {
        conn.transport().resume_producing();
    }

    /// The wrapped protocol registers a producer (see [`producer`](crate::producer)).
    fn register_producer(
        &self,
        conn: &Wrapped<Self>,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        conn.transport().register_producer(producer, streaming)
    }

    /// The wrapped protocol unregisters its producer.
    fn unregister_producer(&self, conn: &Wrapped<Self>) {
        conn.transport().unregister_producer();
    }

    /// How many written bytes wait to be sent, as the wrapped protocol sees it.
    fn buffered_size(&self, conn: &Wrapped<Self>) -> usize {
        conn.transport().buffered_size()
    }

    /// Whether the connection is closing, as the wrapped protocol sees it.
    fn disconnecting(&self, conn: &Wrapped<Self>) -> bool {
        conn.transport().disconnecting()
    }
}

/// One wrapped connection, as its [`Wrapper`] sees it: the wrapper's per-connection state,
/// the peer address and the real transport.
pub struct Wrapped<W: Wrapper> {
    state: W::State,
    peer: Address,
    transport: OnceCell<Transport>,
    slot: Cell<Option<usize>>,
    released: Cell<bool>,
    wrapping: Weak<Wrapping<W>>,
}

impl<W: Wrapper> Wrapped<W> {
    /// The wrapper's state for this connection.
    pub fn state(&self) -> &W::State {
        &self.state
    }

    /// The address the connection was admitted for (the peer's, for a server).
    pub fn peer(&self) -> &Address {
        &self.peer
    }

    /// The real transport, once the connection is made.
    pub fn try_transport(&self) -> Option<&Transport> {
        self.transport.get()
    }

    /// The real transport.
    ///
    /// # Panics
    /// Before the connection is made: in [`Wrapper::admit`] or in a [`Wrapper::release`] of
    /// a connection that never started (use [`try_transport`](Self::try_transport) there).
    /// Every other hook runs after it is set.
    pub fn transport(&self) -> &Transport {
        self.transport
            .get()
            .expect("the wrapped connection is not made yet")
    }

    /// True from `connection_made` until the connection is released.
    pub fn is_live(&self) -> bool {
        self.slot.get().is_some()
    }

    /// The factory-wide side of the wrapping (the wrapper and the registry of connections),
    /// while its factory exists. Timers that must reach every connection keep a
    /// [`Weak`](Rc::downgrade) of it.
    pub fn wrapping(&self) -> Option<Rc<Wrapping<W>>> {
        self.wrapping.upgrade()
    }
}

impl<W: Wrapper> fmt::Debug for Wrapped<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wrapped")
            .field("peer", &self.peer)
            .field("live", &self.is_live())
            .finish()
    }
}

/// The factory-wide side of a [`WrappingFactory`]: its [`Wrapper`] and the registry of live
/// connections (Twisted's `WrappingFactory.protocols`). Connections are registered at
/// `connection_made` and unregistered when released.
pub struct Wrapping<W: Wrapper> {
    wrapper: W,
    protocols: RefCell<Slab<Rc<Wrapped<W>>>>,
}

impl<W: Wrapper> Wrapping<W> {
    /// The wrapper.
    pub fn wrapper(&self) -> &W {
        &self.wrapper
    }

    /// How many connections are live.
    pub fn protocol_count(&self) -> usize {
        self.protocols.borrow().len()
    }

    /// A snapshot of the live connections (safe to use while connections come and go).
    pub fn protocols(&self) -> Vec<Rc<Wrapped<W>>> {
        self.protocols.borrow().iter().cloned().collect()
    }

    fn register(&self, conn: &Rc<Wrapped<W>>) {
        if conn.slot.get().is_none() && !conn.released.get() {
            let slot = self.protocols.borrow_mut().insert(conn.clone());
            conn.slot.set(Some(slot));
        }
    }

    /// Unregisters the connection and tells the wrapper, once.
    fn release(&self, conn: &Wrapped<W>) {
        if conn.released.replace(true) {
            return;
        }
        let entry = conn
            .slot
            .take()
            .and_then(|slot| self.protocols.borrow_mut().remove(slot));
        drop(entry);
        self.wrapper.release(conn);
    }
}

impl<W: Wrapper> fmt::Debug for Wrapping<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wrapping")
            .field("wrapper", &std::any::type_name::<W>())
            .field("protocols", &self.protocol_count())
            .finish()
    }
}

/// The wrapped protocol and its transport, for passing an event on from a [`Wrapper`] hook.
pub struct Next<'a> {
    protocol: &'a mut dyn Protocol,
    transport: &'a Transport,
}

impl Next<'_> {
    /// Passes `connection_made` on.
    pub fn connection_made(&mut self) {
        self.protocol.connection_made(self.transport);
    }

    /// Passes bytes on (these or others).
    pub fn data_received(&mut self, data: &[u8]) {
        self.protocol.data_received(self.transport, data);
    }

    /// Passes `read_connection_lost` on.
    pub fn read_connection_lost(&mut self) {
        self.protocol.read_connection_lost(self.transport);
    }

    /// Passes `write_connection_lost` on.
    pub fn write_connection_lost(&mut self) {
        self.protocol.write_connection_lost(self.transport);
    }

    /// Passes `connection_lost` on.
    pub fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.protocol.connection_lost(reason);
    }

    /// The transport the wrapped protocol talks to (the wrapping transport, or the real one
    /// when the wrapper does not wrap it).
    pub fn transport(&self) -> &Transport {
        self.transport
    }

    /// The wrapped protocol.
    pub fn protocol(&mut self) -> &mut dyn Protocol {
        &mut *self.protocol
    }
}

/// The protocol a [`WrappingFactory`] makes (Twisted's `ProtocolWrapper`): it receives the
/// connection's events, runs them through the [`Wrapper`] to the wrapped protocol, and gives
/// the wrapped protocol a wrapping transport whose calls go through the wrapper too.
pub struct ProtocolWrapper<P, W: Wrapper> {
    wrapped: P,
    conn: Rc<Wrapped<W>>,
    wrapping: Rc<Wrapping<W>>,
    /// What the wrapped protocol talks to; set by `connection_made`.
    transport: Option<Transport>,
}

impl<P: Protocol, W: Wrapper> ProtocolWrapper<P, W> {
    /// The wrapped protocol.
    pub fn wrapped_protocol(&self) -> &P {
        &self.wrapped
    }

    /// The wrapped protocol, mutably.
    pub fn wrapped_protocol_mut(&mut self) -> &mut P {
        &mut self.wrapped
    }

    /// This connection as the wrapper sees it (its state, peer and real transport).
    pub fn connection(&self) -> &Rc<Wrapped<W>> {
        &self.conn
    }

    /// The transport the wrapped protocol talks to, once the connection is made.
    pub fn transport(&self) -> Option<&Transport> {
        self.transport.as_ref()
    }
}

impl<P: Protocol, W: Wrapper> Protocol for ProtocolWrapper<P, W> {
    fn connection_made(&mut self, transport: &Transport) {
        if self.conn.released.get() || self.transport.is_some() {
            return;
        }
        let _ = self.conn.transport.set(transport.clone());
        self.wrapping.register(&self.conn);
        let t = if W::WRAPS_TRANSPORT {
            Transport::new(Rc::new(WrappingTransport {
                conn: self.conn.clone(),
                wrapping: self.wrapping.clone(),
            }))
        } else {
            transport.clone()
        };
        let t = self.transport.insert(t);
        let next = Next {
            protocol: &mut self.wrapped,
            transport: t,
        };
        self.wrapping.wrapper.connection_made(&self.conn, next);
    }

    fn drain(&mut self, transport: &Transport) {
        let t = self.transport.clone().unwrap_or_else(|| transport.clone());
        self.wrapped.drain(&t);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        match &self.transport {
            Some(t) => {
                let next = Next {
                    protocol: &mut self.wrapped,
                    transport: t,
                };
                self.wrapping.wrapper.data_received(&self.conn, next, data);
            }
            // Not made (a test driving the protocol by hand): no policy, just pass it on.
            None => self.wrapped.data_received(transport, data),
        }
    }

    fn read_connection_lost(&mut self, transport: &Transport) {
        match &self.transport {
            Some(t) => {
                let next = Next {
                    protocol: &mut self.wrapped,
                    transport: t,
                };
                self.wrapping.wrapper.read_connection_lost(&self.conn, next);
            }
            None => self.wrapped.read_connection_lost(transport),
        }
    }

    fn write_connection_lost(&mut self, transport: &Transport) {
        match &self.transport {
            Some(t) => {
                let next = Next {
                    protocol: &mut self.wrapped,
                    transport: t,
                };
                self.wrapping
                    .wrapper
                    .write_connection_lost(&self.conn, next);
            }
            None => self.wrapped.write_connection_lost(transport),
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        match &self.transport {
            Some(t) => {
                let next = Next {
                    protocol: &mut self.wrapped,
                    transport: t,
                };
                self.wrapping
                    .wrapper
                    .connection_lost(&self.conn, next, reason);
            }
            None => self.wrapped.connection_lost(reason),
        }
        self.wrapping.release(&self.conn);
    }
}

impl<P, W: Wrapper> Drop for ProtocolWrapper<P, W> {
    fn drop(&mut self) {
        // A connection dropped without connection_lost (its reactor went away) is released
        // all the same, so that counts and registries stay right.
        self.wrapping.release(&self.conn);
    }
}

impl<P, W: Wrapper> fmt::Debug for ProtocolWrapper<P, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtocolWrapper")
            .field("protocol", &std::any::type_name::<P>())
            .field("connection", &self.conn)
            .finish()
    }
}

/// The transport a wrapped protocol talks to: its calls go through the wrapper's hooks; what
/// the wrapper does not watch (the watermarks, the capabilities) goes straight to the real
/// transport, as [`TransportImpl::wrapped`] does by default.
struct WrappingTransport<W: Wrapper> {
    conn: Rc<Wrapped<W>>,
    wrapping: Rc<Wrapping<W>>,
}

impl<W: Wrapper> WrappingTransport<W> {
    fn real(&self) -> &Transport {
        self.conn.transport()
    }
}

impl<W: Wrapper> TransportImpl for WrappingTransport<W> {
    fn write(&self, data: &[u8]) {
        self.wrapping.wrapper.write(&self.conn, data);
    }

    fn write_sequence(&self, data: &[&[u8]]) {
        self.wrapping.wrapper.write_sequence(&self.conn, data);
    }

    fn lose_connection(&self) {
        self.wrapping.wrapper.lose_connection(&self.conn);
    }

    fn abort_connection(&self) {
        self.wrapping.wrapper.abort_connection(&self.conn);
    }

    fn lose_write_connection(&self) {
        self.wrapping.wrapper.lose_write_connection(&self.conn);
    }

    fn get_peer(&self) -> Address {
        self.real().get_peer()
    }

    fn get_host(&self) -> Address {
        self.real().get_host()
    }

    fn buffered_size(&self) -> usize {
        self.wrapping.wrapper.buffered_size(&self.conn)
    }

    fn disconnecting(&self) -> bool {
        self.wrapping.wrapper.disconnecting(&self.conn)
    }

    fn pause_producing(&self) {
        self.wrapping.wrapper.pause_producing(&self.conn);
    }

    fn resume_producing(&self) {
        self.wrapping.wrapper.resume_producing(&self.conn);
    }

    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        self.wrapping
            .wrapper
            .register_producer(&self.conn, producer, streaming)
    }

    fn unregister_producer(&self) {
        self.wrapping.wrapper.unregister_producer(&self.conn);
    }

    fn wrapped(&self) -> Option<&Transport> {
        Some(self.real())
    }
}

/// Applies a [`Wrapper`] to the protocols of any factory (Twisted's `WrappingFactory`).
///
/// It is a server factory, and a client factory when the wrapped one is (the client hooks
/// are passed on). To look at the live connections while the factory listens, hand the port
/// an `Rc` of it and keep a clone.
pub struct WrappingFactory<F, W: Wrapper> {
    wrapped: F,
    wrapping: Rc<Wrapping<W>>,
}

impl<F: Factory, W: Wrapper> WrappingFactory<F, W> {
    /// Wraps `wrapped`'s protocols with `wrapper`.
    pub fn new(wrapped: F, wrapper: W) -> WrappingFactory<F, W> {
        WrappingFactory {
            wrapped,
            wrapping: Rc::new(Wrapping {
                wrapper,
                protocols: RefCell::new(Slab::default()),
            }),
        }
    }
}

impl<F, W: Wrapper> WrappingFactory<F, W> {
    /// The wrapped factory.
    pub fn wrapped_factory(&self) -> &F {
        &self.wrapped
    }

    /// The wrapper.
    pub fn wrapper(&self) -> &W {
        &self.wrapping.wrapper
    }

    /// The factory-wide side: the wrapper and the registry of live connections.
    pub fn wrapping(&self) -> &Rc<Wrapping<W>> {
        &self.wrapping
    }

    /// How many connections are live.
    pub fn protocol_count(&self) -> usize {
        self.wrapping.protocol_count()
    }

    /// A snapshot of the live connections.
    pub fn protocols(&self) -> Vec<Rc<Wrapped<W>>> {
        self.wrapping.protocols()
    }
}

impl<F: Factory, W: Wrapper> Factory for WrappingFactory<F, W> {
    type Protocol = ProtocolWrapper<F::Protocol, W>;

    fn build_protocol(&self, addr: &Address) -> Option<Self::Protocol> {
        let state = self.wrapping.wrapper.admit(addr)?;
        let conn = Rc::new(Wrapped {
            state,
            peer: addr.clone(),
            transport: OnceCell::new(),
            slot: Cell::new(None),
            released: Cell::new(false),
            wrapping: Rc::downgrade(&self.wrapping),
        });
        match self.wrapped.build_protocol(addr) {
            Some(wrapped) => Some(ProtocolWrapper {
                wrapped,
                conn,
                wrapping: self.wrapping.clone(),
                transport: None,
            }),
            None => {
                self.wrapping.release(&conn);
                None
            }
        }
    }

    fn start_factory(&self) {
        self.wrapped.start_factory();
    }

    fn stop_factory(&self) {
        self.wrapped.stop_factory();
    }
}

impl<F: ClientFactory, W: Wrapper> ClientFactory for WrappingFactory<F, W> {
    fn started_connecting(&self, connector: &Connector) {
        self.wrapped.started_connecting(connector);
    }

    fn client_connection_failed(&self, connector: &Connector, reason: Failure) {
        self.wrapped.client_connection_failed(connector, reason);
    }

    fn client_connection_lost(&self, connector: &Connector, reason: Failure) {
        self.wrapped.client_connection_lost(connector, reason);
    }
}

impl<F, W: Wrapper> fmt::Debug for WrappingFactory<F, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappingFactory")
            .field("wrapped", &std::any::type_name::<F>())
            .field("wrapping", &self.wrapping)
            .finish()
    }
}
