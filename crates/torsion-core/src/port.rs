//! Listening ports for every stream transport (TCP, Unix sockets, later TLS): one port type
//! and one accept loop, generic over what the listener accepts.
//!
//! A port keeps count of the connections it accepted, so that a server can stop gracefully
//! with [`ListeningPort::drain`]: stop accepting, ask every connection to finish its work
//! and close ([`Protocol::drain`]), and abort what is left when a deadline passes.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::defer::{succeed, Deferred, Trigger};
use crate::error::ReactorNotRestartable;
use crate::protocol::{Factory, Protocol};
use crate::reactor::{Disconnect, Reactor};
use crate::transport::{Address, Transport, WriteLimit};
use crate::util::Slab;
use crate::ConnectionEnd;
use crate::Failure;

/// An accepted connection: its stream, the peer's address and this end's address.
pub(crate) type Accepted<S> = (S, Address, Address);

/// A listening socket of one kind: what it accepts, and how an accepted connection runs.
/// Dropping it closes the socket (and does any clean-up of its own, such as removing a Unix
/// socket file).
pub(crate) trait Acceptor: 'static {
    /// The accepted connection's socket.
    type Stream: 'static;

    /// Accepts a connection: the stream, the peer's address and this end's address.
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Accepted<Self::Stream>>>;

    /// Starts one accepted connection, which then runs to its end on its own; a
    /// `send_timeout` aborts it when its writes make no progress for that long.
    fn serve<P: Protocol>(
        reactor: &Reactor,
        stream: Self::Stream,
        peer: Address,
        host: Address,
        proto: P,
        send_timeout: Option<Duration>,
    );
}

struct Port<A> {
    listener: RefCell<Option<A>>,
    host: Address,
    waker: RefCell<Option<Waker>>,
    live_id: Cell<Option<usize>>,
    stop_factory: RefCell<Option<Box<dyn FnOnce()>>>,
    reactor: Reactor,
    conns: Rc<ConnGroup>,
    /// The send timeout each accepted connection gets.
    send_timeout: Cell<Option<Duration>>,
}

/// The connections a port accepted and that have not ended yet.
#[derive(Default)]
struct ConnGroup {
    /// One slot per connection, from accept to its end; the transport once it is made.
    conns: RefCell<Slab<Option<Transport>>>,
    /// Set once a drain started: later connections are asked to drain when made.
    draining: Cell<bool>,
    /// The write limit each connection gets when made.
    write_limit: Cell<Option<WriteLimit>>,
    /// Fired when the last connection ends.
    waiters: RefCell<Vec<Trigger<()>>>,
}

impl ConnGroup {
    fn made(&self, slot: usize, transport: &Transport) {
        if let Some(t) = self.conns.borrow_mut().get_mut(slot) {
            *t = Some(transport.clone());
        }
        if let Some(limit) = self.write_limit.get() {
            transport.set_write_limit(limit.bytes, limit.policy);
        }
        if self.draining.get() {
            transport.request_drain();
        }
    }

    fn ended(&self, slot: usize) {
        let empty = {
            let mut conns = self.conns.borrow_mut();
            conns.remove(slot);
            conns.len() == 0
        };
        if empty {
            let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
            for w in waiters {
                let _ = w.try_callback(());
            }
        }
    }

    fn transports(&self) -> Vec<Transport> {
        self.conns.borrow().iter().flatten().cloned().collect()
    }

    /// Fires once no connection is left (at once if none is).
    fn when_empty(&self) -> Deferred<()> {
        if self.conns.borrow().len() == 0 {
            return succeed(());
        }
        let d = Deferred::new();
        self.waiters.borrow_mut().push(d.trigger());
        d
    }
}

/// The protocol of an accepted connection, counted in its port's [`ConnGroup`] from accept
/// to the end of its engine. Every call goes straight to the inner protocol.
struct Tracked<P> {
    inner: P,
    group: Rc<ConnGroup>,
    slot: usize,
}

impl<P: Protocol> Protocol for Tracked<P> {
    fn connection_made(&mut self, transport: &Transport) {
        self.group.made(self.slot, transport);
        self.inner.connection_made(transport);
    }

    #[inline]
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.inner.data_received(transport, data);
    }

    fn read_connection_lost(&mut self, transport: &Transport) {
        self.inner.read_connection_lost(transport);
    }

    fn write_connection_lost(&mut self, transport: &Transport) {
        self.inner.write_connection_lost(transport);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.inner.connection_lost(reason);
    }

    fn drain(&mut self, transport: &Transport) {
        self.inner.drain(transport);
    }
}

impl<P> Drop for Tracked<P> {
    fn drop(&mut self) {
        // Runs when the connection's engine ends, or is dropped with the reactor.
        self.group.ended(self.slot);
    }
}

/// What a [`ListeningPort`] handle needs of a port, whatever it accepts.
trait PortControl {
    fn close(&self);
    fn host(&self) -> &Address;
    fn listening(&self) -> bool;
    fn conns(&self) -> &Rc<ConnGroup>;
    fn reactor(&self) -> &Reactor;
    fn set_send_timeout(&self, timeout: Option<Duration>);
    fn send_timeout(&self) -> Option<Duration>;
}

impl<A: Acceptor> PortControl for Port<A> {
    fn set_send_timeout(&self, timeout: Option<Duration>) {
        self.send_timeout.set(timeout);
    }
    fn send_timeout(&self) -> Option<Duration> {
        self.send_timeout.get()
    }
    fn close(&self) {
        let listener = self.listener.borrow_mut().take();
        if listener.is_none() {
            return;
        }
        drop(listener);
        if let Some(id) = self.live_id.take() {
            self.reactor.unregister_live(id);
        }
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
        if let Some(stop) = self.stop_factory.borrow_mut().take() {
            if let Err(p) = catch_unwind(AssertUnwindSafe(stop)) {
                crate::log::err(&Failure::from_panic(p), "stop_factory panicked:");
            }
        }
    }

    fn host(&self) -> &Address {
        &self.host
    }

    fn listening(&self) -> bool {
        self.listener.borrow().is_some()
    }

    fn conns(&self) -> &Rc<ConnGroup> {
        &self.conns
    }

    fn reactor(&self) -> &Reactor {
        &self.reactor
    }
}

impl<A: Acceptor> Port<A> {
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Accepted<A::Stream>>>> {
        let listener = self.listener.borrow();
        let Some(l) = listener.as_ref() else {
            return Poll::Ready(None);
        };
        match l.poll_accept(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending => {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<A: Acceptor> Disconnect for Port<A> {
    fn disconnect_for_shutdown(&self) {
        self.close();
    }
}

/// A listening port (Twisted's `IListeningPort`), for any stream transport. The port keeps
/// listening when this handle is dropped, until [`stop_listening`](Self::stop_listening) or
/// reactor shutdown.
pub struct ListeningPort {
    port: Rc<dyn PortControl>,
}

/// The default send timeout of a listening port's connections: 60 s, as nginx's
/// `send_timeout`. See [`ListeningPort::set_send_timeout`].
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

impl ListeningPort {
    /// Sets the send timeout of the connections this port accepts from now on (`None`: no
    /// limit, as Twisted). A connection with bytes waiting in its write buffer that the peer
    /// takes none of for this long is aborted, with a log line naming the peer: a client that
    /// stops reading would otherwise hold the connection and its buffer for ever. The timer
    /// is armed when a write blocks and reset by any progress, not per write. The default is
    /// [`DEFAULT_SEND_TIMEOUT`] (60 s, nginx's `send_timeout`); endpoint strings take
    /// `sendTimeout=SECONDS` (`tcp:`, `tcp6:`, `tls:`), and
    /// [`ListenOptions::send_timeout`](crate::tcp::ListenOptions::send_timeout) sets it when
    /// listening.
    pub fn set_send_timeout(&self, timeout: Option<Duration>) {
        self.port.set_send_timeout(timeout);
    }

    /// The send timeout of this port's new connections (`None`: no limit).
    pub fn send_timeout(&self) -> Option<Duration> {
        self.port.send_timeout()
    }

    /// Sets the write limit of the connections this port accepts from now on (`None`: none,
    /// the default, as Twisted): each gets
    /// [`set_write_limit`](crate::transport::TransportImpl::set_write_limit) before its
    /// protocol's `connection_made`. [`ListenOptions::write_limit`](crate::tcp::ListenOptions::write_limit)
    /// sets it when listening, and endpoint strings take `writeLimit=BYTES` (`tcp:`, `tcp6:`,
    /// `tls:`; [`WritePolicy::Disconnect`](crate::transport::WritePolicy::Disconnect)).
    pub fn set_write_limit(&self, limit: Option<WriteLimit>) {
        self.port.conns().write_limit.set(limit);
    }

    /// The write limit of this port's new connections.
    pub fn write_limit(&self) -> Option<WriteLimit> {
        self.port.conns().write_limit.get()
    }

    /// The address the port listens on; with TCP port 0 this tells the port the system chose.
    pub fn get_host(&self) -> Address {
        self.port.host().clone()
    }

    /// Stops accepting connections and closes the listening socket (connections already made
    /// go on; a Unix socket's file is removed). The Deferred fires once that is done.
    pub fn stop_listening(&self) -> Deferred<()> {
        self.port.close();
        succeed(())
    }

    /// True until the port stops listening.
    pub fn listening(&self) -> bool {
        self.port.listening()
    }

    /// How many connections this port accepted that have not ended yet.
    pub fn connection_count(&self) -> usize {
        self.port.conns().conns.borrow().len()
    }

    /// Stops gracefully: stops listening (new connections are refused), asks every
    /// connection this port accepted to finish its work and close ([`Protocol::drain`];
    /// connections accepted meanwhile are asked too), and fires once none is left. When
    /// `timeout` seconds pass first, the connections still open are aborted and the Deferred
    /// fires then.
    ///
    /// Protocols that do not implement `drain` (the default does nothing) keep their
    /// connection until the deadline; an HTTP channel closes an idle keep-alive connection at
    /// once and a busy one after its response.
    ///
    /// ```
    /// use torsion::{factory, Protocol, Reactor, Transport};
    ///
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
    ///     // Echo has nothing in progress between reads: close at once when asked to drain.
    ///     fn drain(&mut self, t: &Transport) { t.lose_connection() }
    /// }
    ///
    /// let r = Reactor::new();
    /// let port = r.listen_tcp_on(0, factory(|| Echo), "127.0.0.1").unwrap();
    /// r.call_when_running(move || {
    ///     assert_eq!(port.connection_count(), 0);
    ///     // Stop listening and wait (at most 5 s) for the connections to close.
    ///     port.drain(5.0).add_callback(|()| torsion::reactor().stop().unwrap());
    /// });
    /// r.run().unwrap();
    /// ```
    pub fn drain(&self, timeout: impl Into<crate::reactor::Delay>) -> Deferred<()> {
        let timeout = timeout.into().as_secs_f64();
        self.port.close();
        let group = self.port.conns().clone();
        group.draining.set(true);
        for t in group.transports() {
            t.request_drain();
        }
        let done = group.when_empty();
        if done.called() {
            return done;
        }
        let out = Deferred::new();
        let fire = Rc::new(RefCell::new(Some(out.trigger())));
        let deadline = {
            let (group, fire) = (group.clone(), fire.clone());
            self.port.reactor().call_later(timeout.max(0.0), move || {
                let left = group.transports();
                if !left.is_empty() {
                    tracing::warn!(
                        target: "torsion",
                        "drain deadline passed: aborting {} connection(s)",
                        left.len()
                    );
                }
                for t in left {
                    t.abort_connection();
                }
                if let Some(f) = fire.borrow_mut().take() {
                    let _ = f.try_callback(());
                }
            })
        };
        done.add_callback(move |()| {
            let _ = deadline.cancel();
            if let Some(f) = fire.borrow_mut().take() {
                let _ = f.try_callback(());
            }
        });
        out
    }
}

impl fmt::Debug for ListeningPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListeningPort")
            .field("host", self.port.host())
            .field("listening", &self.listening())
            .finish()
    }
}

/// Starts listening with `acceptor`, bound to `host`: starts the factory, registers the port
/// for shutdown, and spawns the accept loop.
pub(crate) fn listen<A: Acceptor, F: Factory>(
    reactor: &Reactor,
    acceptor: A,
    host: Address,
    factory: F,
) -> Result<ListeningPort, Failure> {
    let factory = Rc::new(factory);
    factory.start_factory();
    let stopping = factory.clone();
    let port = Rc::new(Port {
        listener: RefCell::new(Some(acceptor)),
        host,
        waker: RefCell::new(None),
        live_id: Cell::new(None),
        stop_factory: RefCell::new(Some(Box::new(move || stopping.stop_factory()))),
        reactor: reactor.clone(),
        conns: Rc::default(),
        send_timeout: Cell::new(Some(DEFAULT_SEND_TIMEOUT)),
    });
    let weak: std::rc::Weak<dyn Disconnect> = {
        let w: std::rc::Weak<Port<A>> = Rc::downgrade(&port);
        w
    };
    port.live_id.set(Some(reactor.register_live(weak)));
    if reactor
        .spawn_task(accept_loop(reactor.clone(), port.clone(), factory))
        .is_none()
    {
        port.close();
        return Err(ReactorNotRestartable.into());
    }
    Ok(ListeningPort { port })
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) // ENFILE, EMFILE, ENOBUFS, ENOMEM
}

async fn accept_loop<A: Acceptor, F: Factory>(reactor: Reactor, port: Rc<Port<A>>, factory: Rc<F>) {
    while let Some(accepted) = poll_fn(|cx| port.poll_accept(cx)).await {
        let (stream, peer, host) = match accepted {
            Ok(a) => a,
            Err(e) if is_resource_exhaustion(&e) => {
                crate::log::error_event(format_args!(
                    "accept on {} failed: {e}; pausing accepts for 100 ms",
                    port.host
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(_) => continue, // the peer gave up before we accepted (ECONNABORTED)
        };
        let proto = match catch_unwind(AssertUnwindSafe(|| factory.build_protocol(&peer))) {
            Ok(Some(p)) => p,
            Ok(None) => continue, // refused: dropping the stream closes it
            Err(payload) => {
                crate::log::err(
                    &Failure::from_panic(payload),
                    &format!("build_protocol panicked for {peer}; connection closed"),
                );
                continue;
            }
        };
        let slot = port.conns.conns.borrow_mut().insert(None);
        let proto = Tracked {
            inner: proto,
            group: port.conns.clone(),
            slot,
        };
        A::serve(&reactor, stream, peer, host, proto, port.send_timeout.get());
    }
}
