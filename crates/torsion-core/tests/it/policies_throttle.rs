//! `ThrottlingFactory`: reading pauses across all connections when the read limit is
//! exceeded and resumes in the following seconds; writes past the write limit are held back
//! and released second by second, shared among connections, in order; the per-second timer
//! runs only while there is traffic. Deterministic with a test `Clock` and
//! `StringTransport`s, plus one real TCP echo whose held-back writes are released by
//! advancing a `Clock`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use torsion::error::ConnectionDone;
use torsion::protocols::policies::{ThrottlingFactory, ThrottlingProtocol};
use torsion::tcp::Connector;
use torsion::testing::{Clock, StringTransport};
use torsion::transport::Address;
use torsion::ConnectionEnd;
use torsion::{factory, ClientFactory, Factory, Failure, Protocol, Reactor, Transport};

fn peer() -> Address {
    Address::Named("peer".into())
}

/// Counts what it receives and keeps its transport.
#[derive(Default)]
struct Sink {
    received: Cell<usize>,
    transport: RefCell<Option<Transport>>,
}

struct Counter(Rc<Sink>);

impl Protocol for Counter {
    fn connection_made(&mut self, t: &Transport) {
        *self.0.transport.borrow_mut() = Some(t.clone());
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.0.received.set(self.0.received.get() + data.len());
    }
}

type Throttled = ThrottlingFactory<torsion::protocol::FnFactory<Box<dyn Fn() -> Counter>>>;

fn counting_factory(clock: &Clock) -> Throttled {
    let make: Box<dyn Fn() -> Counter> = Box::new(|| Counter(Rc::default()));
    let f = ThrottlingFactory::new(factory(make));
    f.set_clock(clock.clone());
    f
}

fn connect(
    f: &Throttled,
) -> (
    ThrottlingProtocol<Counter>,
    StringTransport,
    Transport, /* what the protocol sees */
) {
    let mut p = f.build_protocol(&peer()).unwrap();
    let st = StringTransport::new();
    p.connection_made(&st.transport());
    let seen = p.transport().unwrap().clone();
    (p, st, seen)
}

#[test]
fn reading_pauses_over_the_limit_and_resumes_the_next_second() {
    let clock = Clock::new();
    let f = counting_factory(&clock);
    f.set_read_limit(Some(500));
    let (mut p, st, _) = connect(&f);
    p.data_received(&st.transport(), &[0; 300]);
    p.data_received(&st.transport(), &[0; 200]);
    assert!(!st.paused(), "exactly at the limit is allowed");
    p.data_received(&st.transport(), &[0; 100]);
    assert!(st.paused(), "over the limit: reading must pause");
    assert!(f.reads_throttled());
    assert_eq!(
        p.wrapped_protocol().0.received.get(),
        600,
        "data read is delivered"
    );
    clock.advance(0.999);
    assert!(st.paused());
    clock.advance(0.001);
    assert!(!st.paused(), "100 carried over is under the limit: resume");
    assert_eq!(f.read_this_second(), 100);
}

#[test]
fn a_big_burst_pauses_reading_in_proportion() {
    let clock = Clock::new();
    let f = counting_factory(&clock);
    f.set_read_limit(Some(500));
    let (mut p, st, _) = connect(&f);
    p.data_received(&st.transport(), &[0; 1200]);
    assert!(st.paused());
    clock.advance(1.0);
    assert!(st.paused(), "700 carried over: still over the limit");
    clock.advance(1.0);
    assert!(!st.paused(), "200 carried over: resume");
    // Quiet from now on: the timer stops once the count is spent.
    clock.pump(&[1.0, 1.0]);
    assert!(!f.is_ticking());
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn throttling_pauses_every_connection_and_respects_a_protocols_own_pause() {
    let clock = Clock::new();
    let f = counting_factory(&clock);
    f.set_read_limit(Some(100));
    let (mut a, sa, _) = connect(&f);
    let (_b, sb, b_sees) = connect(&f);
    b_sees.pause_producing(); // b's protocol pauses itself
    b_sees.resume_producing();
    assert!(!sb.paused());
    b_sees.pause_producing();
    assert!(sb.paused());

    a.data_received(&sa.transport(), &[0; 150]);
    assert!(sa.paused() && sb.paused(), "all connections pause together");
    let (_c, sc, _) = connect(&f);
    assert!(
        sc.paused(),
        "a connection made while throttled starts paused"
    );

    b_sees.resume_producing();
    assert!(
        sb.paused(),
        "the throttle holds even if the protocol resumes"
    );
    b_sees.pause_producing();
    clock.advance(1.0);
    assert!(!sa.paused() && !sc.paused(), "throttle lifted");
    assert!(
        sb.paused(),
        "b paused itself: lifting the throttle must not resume it"
    );
    b_sees.resume_producing();
    assert!(!sb.paused());
}

#[test]
fn traffic_under_the_limits_is_untouched() {
    let clock = Clock::new();
    let f = counting_factory(&clock);
    f.set_read_limit(Some(1000));
    f.set_write_limit(Some(1000));
    let (mut p, st, seen) = connect(&f);
    for _ in 0..3 {
        p.data_received(&st.transport(), &[0; 300]);
        seen.write(&[1; 300]);
        assert!(!st.paused());
        assert_eq!(p.connection().state().held_back(), 0);
        clock.advance(1.0);
    }
    assert_eq!(st.value().len(), 900);
}

#[test]
fn writes_past_the_limit_are_held_back_and_released_in_order() {
    let clock = Clock::new();
    let f = counting_factory(&clock);
    f.set_write_limit(Some(10));
    let (_p, st, seen) = connect(&f);
    seen.write(b"0123456");
    seen.write_sequence(&[b"789ab", b"cdefghijklmnopqrstuvwxy"]);
    seen.write(b"z");
    assert_eq!(st.value(), b"0123456789");
    assert_eq!(
        seen.buffered_size(),
        26,
        "held-back bytes count as buffered"
    );
    assert_eq!(f.written_this_second(), 10);
    clock.advance(1.0);
    assert_eq!(st.value(), b"0123456789abcdefghij");
    clock.advance(1.0);
    assert_eq!(st.value(), b"0123456789abcdefghijklmnopqrst");
    clock.advance(1.0);
    assert_eq!(st.value(), b"0123456789abcdefghijklmnopqrstuvwxyz");
    assert_eq!(seen.buffered_size(), 0);
    clock.pump(&[1.0, 1.0]);
    assert!(
        clock.pending_call_times().is_empty(),
        "quiet: the timer stops"
    );
}

#[test]
fn the_write_budget_is_shared_among_connections() {
    let clock = Clock::new();
    let f = counting_factory(&clock);
    f.set_write_limit(Some(20));
    let (_a, sa, a_sees) = connect(&f);
    let (_b, sb, b_sees) = connect(&f);
    a_sees.write(&[b'a'; 30]);
    b_sees.write(&[b'b'; 30]);
    assert_eq!((sa.value().len(), sb.value().len()), (20, 0));
    clock.advance(1.0); // 20 shared: 10 and 10
    assert_eq!((sa.value().len(), sb.value().len()), (30, 10));
    clock.advance(1.0); // a is done: b gets all 20
    assert_eq!((sa.value().len(), sb.value().len()), (30, 30));
}

#[test]
fn lose_connection_waits_for_held_writes_and_abort_drops_them() {
    let clock = Clock::new();
    let f = counting_factory(&clock);
    f.set_write_limit(Some(4));
    let (_p, st, seen) = connect(&f);
    seen.write(b"goodbye!");
    seen.lose_connection();
    assert!(!st.disconnecting(), "held bytes are still to be sent");
    assert!(
        seen.disconnecting(),
        "the protocol sees its close under way"
    );
    clock.advance(1.0);
    assert_eq!(st.value(), b"goodbye!");
    assert!(st.disconnecting(), "closed once everything is sent");

    let (_q, st2, seen2) = connect(&f);
    clock.advance(1.0);
    seen2.write(b"never sent in full");
    seen2.abort_connection();
    assert!(st2.aborted());
    clock.advance(1.0);
    assert_eq!(st2.value(), b"neve");
    assert_eq!(seen2.buffered_size(), 0);
}

#[test]
fn removing_the_write_limit_releases_everything_at_the_next_second() {
    let clock = Clock::new();
    let f = counting_factory(&clock);
    f.set_write_limit(Some(1));
    let (_p, st, seen) = connect(&f);
    seen.write(b"abcdef");
    f.set_write_limit(None);
    seen.write(b"gh"); // behind what is held: order kept
    assert_eq!(st.value(), b"a");
    clock.advance(1.0);
    assert_eq!(st.value(), b"abcdefgh");
}

#[test]
fn max_connection_count_refuses_and_connection_lost_frees_a_place() {
    let clock = Clock::new();
    let f = counting_factory(&clock);
    f.set_max_connection_count(1);
    let (mut p, _st, _) = connect(&f);
    assert!(f.build_protocol(&peer()).is_none());
    p.connection_lost(ConnectionEnd::Done);
    assert_eq!(f.connection_count(), 0);
    assert!(f.build_protocol(&peer()).is_some());
}

#[test]
fn no_timer_is_left_when_connections_end_with_writes_held() {
    let clock = Clock::new();
    let f = counting_factory(&clock);
    f.set_write_limit(Some(1));
    f.set_read_limit(Some(1));
    let (mut p, st, seen) = connect(&f);
    p.data_received(&st.transport(), b"xyz");
    seen.write(b"held");
    assert!(f.is_ticking());
    p.connection_lost(ConnectionEnd::Done);
    assert_eq!(
        p.connection().state().held_back(),
        0,
        "released with the connection"
    );
    clock.pump(&[1.0, 1.0, 1.0, 1.0]);
    assert!(!f.is_ticking());
    assert!(clock.pending_call_times().is_empty());
    assert_eq!(st.value(), b"h");
}

// ---- real TCP: held-back writes leave through the real transport ----

/// Echoes, and closes once it has echoed "bye".
struct EchoThenClose;

impl Protocol for EchoThenClose {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
        if data.ends_with(b"bye") {
            t.lose_connection();
        }
    }
}

/// Sends a message; each time some of the echo arrives, advances the throttle's clock by a
/// second; records the echo and stops the reactor when the server closes.
struct Sender {
    clock: Clock,
    echo: Rc<RefCell<Vec<u8>>>,
    ended: Rc<Cell<bool>>,
}

impl Protocol for Sender {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"hello world, bye");
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.echo.borrow_mut().extend_from_slice(data);
        self.clock.advance(1.0);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.ended.set(reason.check::<ConnectionDone>());
        let _ = torsion::reactor().stop();
    }
}

struct SenderFactory(Box<dyn Fn() -> Sender>);

impl Factory for SenderFactory {
    type Protocol = Sender;
    fn build_protocol(&self, _addr: &Address) -> Option<Sender> {
        Some((self.0)())
    }
}

impl ClientFactory for SenderFactory {
    fn client_connection_failed(&self, _c: &Connector, reason: Failure) {
        panic!("connect failed: {reason}");
    }
}

#[test]
fn held_back_writes_go_out_over_tcp_in_order_before_the_close() {
    let r = Reactor::new();
    r.set_install_signal_handlers(false);
    let timed_out = Rc::new(Cell::new(false));
    let (flag, stopper) = (timed_out.clone(), r.clone());
    r.call_later(10.0, move || {
        flag.set(true);
        let _ = stopper.stop();
    });
    let clock = Clock::new();
    let server = ThrottlingFactory::new(factory(|| EchoThenClose));
    server.set_write_limit(Some(5));
    server.set_clock(clock.clone());
    let port = r.listen_tcp_on(0, server, "127.0.0.1").unwrap();
    let addr = port.get_host().socket_addr().unwrap();

    let echo = Rc::new(RefCell::new(Vec::new()));
    let ended = Rc::new(Cell::new(false));
    let (e, d) = (echo.clone(), ended.clone());
    let client = SenderFactory(Box::new(move || Sender {
        clock: clock.clone(),
        echo: e.clone(),
        ended: d.clone(),
    }));
    r.connect_tcp("127.0.0.1", addr.port(), client);
    r.run().unwrap();

    assert!(!timed_out.get());
    assert_eq!(&*echo.borrow(), b"hello world, bye");
    assert!(
        ended.get(),
        "the server must close cleanly after the last byte"
    );
}
