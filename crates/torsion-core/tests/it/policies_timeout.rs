//! Idle time-outs: `IdleTimeout` (Twisted's `TimeoutMixin`) on a test `Clock` with a
//! `StringTransport`, `TimeoutFactory` on a `Clock`, and `TimeoutFactory` closing an idle
//! client over real TCP.
//!
//! Reactor tests use ephemeral ports and arm a 10 s safety timer that records a time-out and
//! stops the reactor, so a bug fails the test instead of hanging it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::support::{new_reactor, safety_timeout};
use torsion::error::ConnectionDone;
use torsion::protocols::policies::{IdleTimeout, TimeoutFactory};
use torsion::testing::{Clock, StringTransport};
use torsion::transport::Address;
use torsion::ConnectionEnd;
use torsion::{factory, ClientFactory, Factory, Failure, Protocol, Reactor, Transport};

const EPS: f64 = 1e-6;

fn peer() -> Address {
    Address::Named("peer".into())
}

/// A protocol that owns an `IdleTimeout`, as a `TimeoutMixin` user does.
struct Idler {
    idle: IdleTimeout,
    period: Option<f64>,
}

impl Idler {
    fn new(clock: &Clock, period: Option<f64>) -> Idler {
        let idle = IdleTimeout::new();
        idle.set_clock(clock.clone());
        Idler { idle, period }
    }
}

impl Protocol for Idler {
    fn connection_made(&mut self, t: &Transport) {
        self.idle.set_transport(t);
        self.idle.set_timeout(self.period);
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {
        self.idle.reset_timeout();
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.idle.set_timeout(None);
    }
}

#[test]
fn idle_timeout_fires_after_the_period() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let mut p = Idler::new(&clock, Some(5.0));
    p.connection_made(&st.transport());
    assert!(p.idle.is_pending());
    let due = clock.pending_call_times();
    assert_eq!(due.len(), 1);
    assert!((due[0] - 5.0).abs() < EPS, "due at {due:?}");
    clock.advance(4.999);
    assert!(!st.disconnecting(), "closed before the period");
    clock.advance(0.001);
    assert!(st.disconnecting(), "not closed after the period");
    assert!(!st.aborted(), "the default time-out closes cleanly");
    assert!(!p.idle.is_pending());
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn activity_resets_the_period() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let mut p = Idler::new(&clock, Some(5.0));
    p.connection_made(&st.transport());
    clock.advance(3.0);
    p.data_received(&st.transport(), b"x");
    clock.advance(4.999); // t = 7.999: 4.999 s since the activity
    assert!(
        !st.disconnecting(),
        "activity at t=3 did not reset the timer"
    );
    assert_eq!(clock.pending_call_times().len(), 1, "one timer, never more");
    clock.advance(0.001);
    assert!(st.disconnecting(), "5 s idle since t=3: closed at t=8");
}

#[test]
fn constant_activity_keeps_one_timer_and_closes_after_it_stops() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let mut p = Idler::new(&clock, Some(5.0));
    p.connection_made(&st.transport());
    for _ in 0..1000 {
        clock.advance(0.1);
        p.data_received(&st.transport(), b"x");
        assert_eq!(clock.pending_call_times().len(), 1);
    }
    assert!(!st.disconnecting());
    let last = clock.seconds();
    clock.advance(4.9);
    assert!(!st.disconnecting());
    clock.advance(0.1);
    assert!(st.disconnecting());
    assert!((clock.seconds() - last - 5.0).abs() < EPS);
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn set_timeout_none_cancels_and_returns_the_old_period() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let mut p = Idler::new(&clock, Some(5.0));
    p.connection_made(&st.transport());
    assert_eq!(p.idle.set_timeout(None), Some(5.0));
    assert!(clock.pending_call_times().is_empty());
    assert!(!p.idle.is_pending());
    assert_eq!(p.idle.timeout_period(), None);
    p.data_received(&st.transport(), b"x"); // reset without a timer: nothing happens
    assert!(clock.pending_call_times().is_empty());
    clock.advance(100.0);
    assert!(!st.disconnecting());
}

#[test]
fn set_timeout_while_pending_moves_the_timer() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let mut p = Idler::new(&clock, Some(5.0));
    p.connection_made(&st.transport());
    clock.advance(2.0);
    assert_eq!(p.idle.set_timeout(Some(10.0)), Some(5.0));
    let due = clock.pending_call_times();
    assert_eq!(due.len(), 1);
    assert!((due[0] - 12.0).abs() < EPS, "due at {due:?}");
    clock.advance(9.9);
    assert!(!st.disconnecting());
    clock.advance(0.1);
    assert!(st.disconnecting());
}

#[test]
fn no_pending_calls_after_connection_lost() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let mut p = Idler::new(&clock, Some(5.0));
    p.connection_made(&st.transport());
    p.data_received(&st.transport(), b"x");
    p.connection_lost(ConnectionEnd::Done);
    assert!(clock.pending_call_times().is_empty());
    clock.advance(10.0);
    assert!(!st.disconnecting());
}

#[test]
fn dropping_the_timer_cancels_it() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let mut p = Idler::new(&clock, Some(5.0));
    p.connection_made(&st.transport());
    assert_eq!(clock.pending_call_times().len(), 1);
    drop(p);
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn custom_timeout_connection_runs_once_and_can_rearm() {
    let clock = Clock::new();
    let idle = Rc::new(IdleTimeout::new());
    idle.set_clock(clock.clone());
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    idle.set_timeout_connection(move || f.set(f.get() + 1));
    idle.set_timeout(Some(1.0));
    clock.advance(1.0);
    assert_eq!(fired.get(), 1);
    idle.reset_timeout(); // fired already: no timer to reset
    clock.advance(5.0);
    assert_eq!(fired.get(), 1, "a fired timer must not fire again");
    idle.set_timeout(Some(2.0)); // armed again
    clock.advance(2.0);
    assert_eq!(fired.get(), 2);
}

#[test]
fn rearming_from_the_timeout_callback_works() {
    let clock = Clock::new();
    let idle = Rc::new(IdleTimeout::new());
    idle.set_clock(clock.clone());
    let fired = Rc::new(Cell::new(0));
    let (f, weak) = (fired.clone(), Rc::downgrade(&idle));
    idle.set_timeout_connection(move || {
        f.set(f.get() + 1);
        if let Some(idle) = weak.upgrade() {
            idle.set_timeout(Some(1.0)); // a keep-alive ping would go here
        }
    });
    idle.set_timeout(Some(1.0));
    clock.pump(&[1.0, 1.0, 1.0]);
    assert_eq!(fired.get(), 3);
    idle.set_timeout(None);
    assert!(clock.pending_call_times().is_empty());
}

/// Records what reached it and keeps its transport, to write from outside.
#[derive(Default)]
struct Seen {
    received: RefCell<Vec<u8>>,
    lost: Cell<usize>,
    transport: RefCell<Option<Transport>>,
}

struct Recorder(Rc<Seen>);

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &Transport) {
        *self.0.transport.borrow_mut() = Some(t.clone());
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.0.received.borrow_mut().extend_from_slice(data);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.0.lost.set(self.0.lost.get() + 1);
    }
}

#[test]
fn timeout_factory_closes_idle_connections_and_activity_both_ways_resets() {
    let clock = Clock::new();
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let f = TimeoutFactory::new(factory(move || Recorder(s.clone())), 10.0);
    f.set_clock(clock.clone());
    let mut p = f.build_protocol(&peer()).unwrap();
    let st = StringTransport::new();
    p.connection_made(&st.transport());
    assert_eq!(f.protocol_count(), 1);

    clock.advance(9.0);
    p.data_received(&st.transport(), b"in"); // a read resets
    clock.advance(9.0);
    let t = seen.transport.borrow().clone().unwrap();
    t.write(b"out"); // a write resets too
    clock.advance(9.0);
    assert!(!st.disconnecting(), "activity must keep the connection");
    assert_eq!(st.value(), b"out");
    assert_eq!(&*seen.received.borrow(), b"in");

    clock.advance(1.0);
    assert!(st.disconnecting(), "10 s idle: closed");
    p.connection_lost(ConnectionEnd::Done);
    assert_eq!(seen.lost.get(), 1);
    assert_eq!(f.protocol_count(), 0);
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn timeout_factory_leaves_no_timer_when_the_connection_ends_first() {
    let clock = Clock::new();
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let f = TimeoutFactory::new(factory(move || Recorder(s.clone())), 10.0);
    f.set_clock(clock.clone());
    let mut p = f.build_protocol(&peer()).unwrap();
    let st = StringTransport::new();
    p.connection_made(&st.transport());
    assert_eq!(clock.pending_call_times().len(), 1);
    p.connection_lost(ConnectionEnd::Done);
    assert!(clock.pending_call_times().is_empty());

    // A protocol dropped without connection_lost (its reactor went away) cancels it too.
    let mut p = f.build_protocol(&peer()).unwrap();
    p.connection_made(&st.transport());
    assert_eq!(clock.pending_call_times().len(), 1);
    drop(p);
    assert!(clock.pending_call_times().is_empty());
    assert_eq!(f.protocol_count(), 0);
}

#[test]
fn one_connections_period_can_be_changed() {
    let clock = Clock::new();
    let f = TimeoutFactory::new(factory(|| Recorder(Rc::default())), 10.0);
    f.set_clock(clock.clone());
    let mut p = f.build_protocol(&peer()).unwrap();
    let st = StringTransport::new();
    p.connection_made(&st.transport());
    p.connection().state().set_timeout(Some(2.0));
    clock.advance(2.0);
    assert!(st.disconnecting());
}

// ---- real TCP ----

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// Sends "ping", then stays idle; records the echo, when and why the connection ended.
struct IdleClient {
    echoed: Rc<RefCell<Vec<u8>>>,
    ended: Rc<RefCell<Option<(f64, Failure)>>>,
    reactor: Reactor,
}

impl Protocol for IdleClient {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"ping");
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.echoed.borrow_mut().extend_from_slice(data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        *self.ended.borrow_mut() = Some((self.reactor.seconds(), reason.into()));
        let _ = self.reactor.stop();
    }
}

struct OneShot<P, F: Fn() -> P> {
    make: F,
}

impl<P: Protocol, F: Fn() -> P + 'static> Factory for OneShot<P, F> {
    type Protocol = P;
    fn build_protocol(&self, _addr: &Address) -> Option<P> {
        Some((self.make)())
    }
}

impl<P: Protocol, F: Fn() -> P + 'static> ClientFactory for OneShot<P, F> {
    fn client_connection_failed(&self, _c: &torsion::tcp::Connector, reason: Failure) {
        panic!("connection failed: {reason}");
    }
}

#[test]
fn timeout_factory_closes_an_idle_tcp_client() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let server = Rc::new(TimeoutFactory::new(factory(|| Echo), 0.05));
    let port = r.listen_tcp_on(0, server.clone(), "127.0.0.1").unwrap();
    let addr = port.get_host().socket_addr().unwrap();

    let echoed = Rc::new(RefCell::new(Vec::new()));
    let ended = Rc::new(RefCell::new(None));
    let started = Rc::new(Cell::new(0.0));
    let (e, d, rr, st) = (echoed.clone(), ended.clone(), r.clone(), started.clone());
    r.call_when_running(move || {
        st.set(rr.seconds());
        let client_reactor = rr.clone();
        let make = move || IdleClient {
            echoed: e.clone(),
            ended: d.clone(),
            reactor: client_reactor.clone(),
        };
        rr.connect_tcp("127.0.0.1", addr.port(), OneShot { make });
    });
    r.run().unwrap();

    assert!(!timed_out.get(), "the idle connection was never closed");
    assert_eq!(&*echoed.borrow(), b"ping", "the wrapped protocol must work");
    let (at, reason) = ended.borrow_mut().take().expect("client connection_lost");
    assert!(
        reason.check::<ConnectionDone>(),
        "server time-out should close cleanly, got {reason}"
    );
    let idle_for = at - started.get();
    assert!(
        idle_for >= 0.05,
        "closed after {idle_for} s, before the period"
    );
    assert_eq!(server.protocol_count(), 0, "registry not emptied");
}
