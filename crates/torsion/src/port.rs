//! Listening ports for every stream transport (TCP, Unix sockets, later TLS): one port type
//! and one accept loop, generic over what the listener accepts.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::defer::{succeed, Deferred};
use crate::error::ReactorNotRestartable;
use crate::protocol::{Factory, Protocol};
use crate::reactor::{Disconnect, Reactor};
use crate::stream::{run_connection, Conn, StreamSocket};
use crate::transport::Address;
use crate::Failure;

/// An accepted connection: its stream, the peer's address and this end's address.
pub(crate) type Accepted<S> = (S, Address, Address);

/// A listening socket of one kind: what it accepts, and how an accepted connection runs.
/// Dropping it closes the socket (and does any clean-up of its own, such as removing a Unix
/// socket file).
pub(crate) trait Acceptor: 'static {
    /// The accepted connection's socket.
    type Stream: StreamSocket;

    /// Accepts a connection: the stream, the peer's address and this end's address.
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Accepted<Self::Stream>>>;

    /// Runs one accepted connection to its end.
    fn serve<P: Protocol>(
        reactor: Reactor,
        stream: Self::Stream,
        peer: Address,
        host: Address,
        proto: P,
    ) -> impl Future<Output = ()> + 'static {
        async move {
            run_connection(&reactor, Conn::new(stream, peer, host), proto, |_| {}).await;
        }
    }
}

struct Port<A> {
    listener: RefCell<Option<A>>,
    host: Address,
    waker: RefCell<Option<Waker>>,
    live_id: Cell<Option<usize>>,
    stop_factory: RefCell<Option<Box<dyn FnOnce()>>>,
    reactor: Reactor,
}

/// What a [`ListeningPort`] handle needs of a port, whatever it accepts.
trait PortControl {
    fn close(&self);
    fn host(&self) -> &Address;
    fn listening(&self) -> bool;
}

impl<A: Acceptor> PortControl for Port<A> {
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

impl ListeningPort {
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
        reactor.spawn_task(A::serve(reactor.clone(), stream, peer, host, proto));
    }
}
