//! `WrappingFactory` and `ProtocolWrapper` (Twisted's `WrappingFactory`/`ProtocolWrapper`):
//! a wrapper sees and may change every event and every write, the registry follows the live
//! connections, `release` runs exactly once whichever way a connection ends, and client
//! hooks reach the wrapped factory.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use torsion::error::{ConnectionDone, ConnectionRefusedError};
use torsion::protocols::policies::{Next, Wrapped, Wrapper, WrappingFactory};
use torsion::tcp::Connector;
use torsion::testing::StringTransport;
use torsion::transport::Address;
use torsion::ConnectionEnd;
use torsion::{factory, ClientFactory, Factory, Failure, Protocol, Reactor, Transport};

fn peer(name: &str) -> Address {
    Address::Named(name.into())
}

/// A wrapper that upper-cases what it passes on, counts bytes both ways, can drop reads
/// of "secret", refuses peers named "banned", and records releases.
#[derive(Default)]
struct Shouter {
    read: Cell<usize>,
    written: Cell<usize>,
    releases: RefCell<Vec<String>>,
}

/// Per connection: how many writes went through this connection's wrapper.
#[derive(Default)]
struct ShouterConn {
    writes: Cell<usize>,
}

impl Wrapper for Shouter {
    type State = ShouterConn;

    fn admit(&self, addr: &Address) -> Option<ShouterConn> {
        (addr != &peer("banned")).then(ShouterConn::default)
    }

    fn release(&self, conn: &Wrapped<Self>) {
        self.releases.borrow_mut().push(conn.peer().to_string());
    }

    fn data_received(&self, _conn: &Wrapped<Self>, mut next: Next<'_>, data: &[u8]) {
        self.read.set(self.read.get() + data.len());
        if data == b"secret" {
            return; // intercepted: the wrapped protocol never sees it
        }
        next.data_received(&data.to_ascii_uppercase());
    }

    fn write(&self, conn: &Wrapped<Self>, data: &[u8]) {
        self.written.set(self.written.get() + data.len());
        conn.state().writes.set(conn.state().writes.get() + 1);
        conn.transport().write(b"<");
        conn.transport().write(data);
        conn.transport().write(b">");
    }
}

/// Echoes, remembers the transport it was given and what it heard.
#[derive(Default)]
struct Log {
    received: RefCell<Vec<u8>>,
    transports: RefCell<Vec<Transport>>,
    lost: RefCell<Vec<Failure>>,
    read_closed: Cell<usize>,
}

struct Echo(Rc<Log>);

impl Protocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        self.0.transports.borrow_mut().push(t.clone());
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.0.received.borrow_mut().extend_from_slice(data);
        t.write(data);
    }

    fn read_connection_lost(&mut self, t: &Transport) {
        self.0.read_closed.set(self.0.read_closed.get() + 1);
        t.lose_connection();
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.0.lost.borrow_mut().push(reason.into());
    }
}

fn echo_factory(log: &Rc<Log>) -> impl Factory<Protocol = Echo> {
    let log = log.clone();
    factory(move || Echo(log.clone()))
}

#[test]
fn the_wrapper_sees_changes_and_can_stop_events_and_writes() {
    let log = Rc::new(Log::default());
    let f = WrappingFactory::new(echo_factory(&log), Shouter::default());
    let mut p = f.build_protocol(&peer("a")).unwrap();
    let st = StringTransport::new();
    p.connection_made(&st.transport());
    p.data_received(&st.transport(), b"hello");
    p.data_received(&st.transport(), b"secret");
    assert_eq!(
        &*log.received.borrow(),
        b"HELLO",
        "passed on changed, 'secret' stopped"
    );
    assert_eq!(
        st.value(),
        b"<HELLO>",
        "the echo's write went through the wrapper"
    );
    assert_eq!(f.wrapper().read.get(), 11);
    assert_eq!(f.wrapper().written.get(), 5);
    assert_eq!(p.connection().state().writes.get(), 1);
}

#[test]
fn the_wrapped_protocol_talks_to_a_wrapping_transport_that_forwards() {
    let log = Rc::new(Log::default());
    let f = WrappingFactory::new(echo_factory(&log), Shouter::default());
    let mut p = f.build_protocol(&peer("a")).unwrap();
    let st = StringTransport::new();
    p.connection_made(&st.transport());
    let seen = log.transports.borrow()[0].clone();
    assert!(!seen.same(&st.transport()), "writes must be interceptable");
    assert!(p.transport().unwrap().same(&seen));
    assert_eq!(seen.get_peer(), st.transport().get_peer());
    assert_eq!(seen.get_host(), st.transport().get_host());
    seen.pause_producing();
    assert!(st.paused());
    seen.resume_producing();
    assert!(!st.paused());
    assert!(!seen.disconnecting());
    seen.lose_connection();
    assert!(st.disconnecting() && seen.disconnecting());
    // Written from outside the protocol's callbacks: still through the wrapper.
    seen.write_sequence(&[b"a", b"b"]);
    assert_eq!(st.value(), b"<a><b>");
}

/// Watches events only.
struct Watcher {
    made: Cell<usize>,
}

impl Wrapper for Watcher {
    type State = ();
    const WRAPS_TRANSPORT: bool = false;

    fn admit(&self, _addr: &Address) -> Option<()> {
        Some(())
    }

    fn connection_made(&self, _conn: &Wrapped<Self>, mut next: Next<'_>) {
        self.made.set(self.made.get() + 1);
        next.connection_made();
    }
}

#[test]
fn a_wrapper_that_does_not_wrap_the_transport_hands_over_the_real_one() {
    let log = Rc::new(Log::default());
    let f = WrappingFactory::new(echo_factory(&log), Watcher { made: Cell::new(0) });
    let mut p = f.build_protocol(&peer("a")).unwrap();
    let st = StringTransport::new();
    p.connection_made(&st.transport());
    assert!(log.transports.borrow()[0].same(&st.transport()));
    p.data_received(&st.transport(), b"raw");
    assert_eq!(st.value(), b"raw");
    assert_eq!(f.wrapper().made.get(), 1);
}

#[test]
fn the_registry_follows_live_connections() {
    let log = Rc::new(Log::default());
    let f = WrappingFactory::new(echo_factory(&log), Shouter::default());
    let (sa, sb) = (StringTransport::new(), StringTransport::new());
    let mut a = f.build_protocol(&peer("a")).unwrap();
    let mut b = f.build_protocol(&peer("b")).unwrap();
    assert_eq!(
        f.protocol_count(),
        0,
        "registered when made, not when built"
    );
    assert!(!a.connection().is_live());
    a.connection_made(&sa.transport());
    b.connection_made(&sb.transport());
    assert_eq!(f.protocol_count(), 2);
    let live = f.protocols();
    assert!(live.iter().any(|c| c.transport().same(&sa.transport())));
    assert!(live.iter().any(|c| c.transport().same(&sb.transport())));
    assert!(live.iter().all(|c| c.is_live()));

    a.read_connection_lost(&sa.transport());
    assert_eq!(log.read_closed.get(), 1);
    assert!(sa.disconnecting(), "read_connection_lost passed on");
    a.connection_lost(ConnectionEnd::Done);
    assert_eq!(f.protocol_count(), 1);
    assert!(!a.connection().is_live());
    assert!(f.protocols()[0].transport().same(&sb.transport()));
    assert!(log.lost.borrow()[0].check::<ConnectionDone>());
    b.connection_lost(ConnectionEnd::Done);
    assert_eq!(f.protocol_count(), 0);
}

#[test]
fn release_runs_exactly_once_however_a_connection_ends() {
    let log = Rc::new(Log::default());
    let refuse_inner = Rc::new(Cell::new(false));
    let (l, r) = (log.clone(), refuse_inner.clone());
    let built = Rc::new(Cell::new(0));
    let b = built.clone();
    let inner = InnerFactory(Box::new(move || {
        b.set(b.get() + 1);
        (!r.get()).then(|| Echo(l.clone()))
    }));
    let f = WrappingFactory::new(inner, Shouter::default());
    let st = StringTransport::new();

    // Ended normally, then dropped: once.
    let mut p = f.build_protocol(&peer("normal")).unwrap();
    p.connection_made(&st.transport());
    p.connection_lost(ConnectionEnd::Done);
    drop(p);
    // Dropped without connection_lost (its reactor went away): once.
    let mut p = f.build_protocol(&peer("dropped")).unwrap();
    p.connection_made(&st.transport());
    drop(p);
    // Never made: once.
    drop(f.build_protocol(&peer("unmade")).unwrap());
    // The wrapped factory refused after the wrapper admitted: once.
    refuse_inner.set(true);
    assert!(f.build_protocol(&peer("inner-refused")).is_none());
    // The wrapper refused: never admitted, never released, the wrapped factory not asked.
    let asked = built.get();
    assert!(f.build_protocol(&peer("banned")).is_none());
    assert_eq!(built.get(), asked);

    assert_eq!(
        *f.wrapper().releases.borrow(),
        ["normal", "dropped", "unmade", "inner-refused"]
    );
    assert_eq!(f.protocol_count(), 0);
}

struct InnerFactory(Box<dyn Fn() -> Option<Echo>>);

impl Factory for InnerFactory {
    type Protocol = Echo;
    fn build_protocol(&self, _addr: &Address) -> Option<Echo> {
        (self.0)()
    }
}

// ---- client hooks, over a real (refused) connection ----

#[derive(Default)]
struct Hooks {
    started: Cell<usize>,
    failed: RefCell<Vec<Failure>>,
}

struct HookedFactory(Rc<Hooks>);

impl Factory for HookedFactory {
    type Protocol = Echo;
    fn build_protocol(&self, _addr: &Address) -> Option<Echo> {
        Some(Echo(Rc::default()))
    }
}

impl ClientFactory for HookedFactory {
    fn started_connecting(&self, _connector: &Connector) {
        self.0.started.set(self.0.started.get() + 1);
    }

    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        self.0.failed.borrow_mut().push(reason);
        let _ = torsion::reactor().stop();
    }
}

#[test]
fn client_hooks_reach_the_wrapped_factory() {
    let r = Reactor::new();
    r.set_install_signal_handlers(false);
    let timed_out = Rc::new(Cell::new(false));
    let (flag, stopper) = (timed_out.clone(), r.clone());
    r.call_later(10.0, move || {
        flag.set(true);
        let _ = stopper.stop();
    });
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // released: nobody listens there now
    let hooks = Rc::new(Hooks::default());
    let f = WrappingFactory::new(HookedFactory(hooks.clone()), Shouter::default());
    r.connect_tcp("127.0.0.1", port, f);
    r.run().unwrap();
    assert!(!timed_out.get());
    assert_eq!(hooks.started.get(), 1);
    let failed = hooks.failed.borrow();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].check::<ConnectionRefusedError>(), "{}", failed[0]);
}
