//! `ReconnectingClientFactory`: delays grow by the factor up to the maximum, jitter follows
//! Twisted's `normalvariate(delay, delay × jitter)`, `max_retries` gives up, `stop_trying`
//! cancels, a success resets — all on a test `Clock`; and over real TCP, a client whose
//! first attempt is refused connects on the retry, `stop_trying` ends reconnecting after a
//! lost connection, and stops an attempt in progress.
//!
//! Reactor tests use ephemeral ports and arm a 10 s safety timer that records a time-out and
//! stops the reactor, so a bug fails the test instead of hanging it.

use std::cell::{Cell, RefCell};
use std::f64::consts::E;
use std::rc::{Rc, Weak};

use crate::support::{new_reactor, safety_timeout};
use torsion::error::{CancelledError, ConnectionRefusedError};
use torsion::protocols::policies::{
    ReconnectingClientFactory, DEFAULT_FACTOR, DEFAULT_INITIAL_DELAY, DEFAULT_JITTER,
    DEFAULT_MAX_DELAY,
};
use torsion::tcp::Connector;
use torsion::testing::Clock;
use torsion::transport::Address;
use torsion::{factory, ClientFactory, Factory, Failure, Protocol, Transport};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

struct Quiet;

impl Protocol for Quiet {
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

type Rcf = ReconnectingClientFactory<torsion::protocol::FnFactory<fn() -> Quiet>>;

fn quiet() -> Quiet {
    Quiet
}

fn on_clock(clock: &Clock) -> Rcf {
    let f = ReconnectingClientFactory::new(factory(quiet as fn() -> Quiet));
    f.set_clock(clock.clone());
    f
}

/// Retries once and returns the delay the retry was scheduled with, then lets it run.
fn retry_and_fire(f: &Rcf, clock: &Clock, connects: &Rc<Cell<usize>>) -> f64 {
    let c = connects.clone();
    let before = connects.get();
    assert!(f.retry_with(move || c.set(c.get() + 1)), "retry refused");
    let due = clock.pending_call_times();
    assert_eq!(due.len(), 1, "exactly one retry pending");
    let delay = due[0] - clock.seconds();
    assert!(
        close(delay, f.delay()),
        "scheduled {delay}, delay() {}",
        f.delay()
    );
    clock.advance(delay);
    assert_eq!(connects.get(), before + 1, "the retry did not reconnect");
    delay
}

#[test]
fn defaults_are_twisteds() {
    let f = ReconnectingClientFactory::new(factory(|| Quiet));
    assert_eq!(f.initial_delay(), 1.0);
    assert_eq!(f.factor(), E);
    assert_eq!(f.jitter(), 0.11962656472);
    assert_eq!(f.max_delay(), 3600.0);
    assert_eq!(f.max_retries(), None);
    assert_eq!(f.delay(), 1.0);
    assert!(f.continue_trying());
    assert_eq!(
        (
            DEFAULT_INITIAL_DELAY,
            DEFAULT_FACTOR,
            DEFAULT_JITTER,
            DEFAULT_MAX_DELAY
        ),
        (1.0, E, 0.11962656472, 3600.0)
    );
}

#[test]
fn delays_grow_by_the_factor() {
    let clock = Clock::new();
    let f = on_clock(&clock);
    f.set_jitter(0.0);
    let connects = Rc::new(Cell::new(0));
    for k in 1..=5 {
        let delay = retry_and_fire(&f, &clock, &connects);
        assert!(close(delay, E.powi(k)), "retry {k}: {delay}");
        assert_eq!(f.retries(), k as u32);
    }
}

#[test]
fn delays_are_capped_at_max_delay() {
    let clock = Clock::new();
    let f = on_clock(&clock);
    f.set_jitter(0.0);
    f.set_max_delay(10.0);
    let connects = Rc::new(Cell::new(0));
    let delays: Vec<f64> = (0..6)
        .map(|_| retry_and_fire(&f, &clock, &connects))
        .collect();
    let expected = [E, E * E, 10.0, 10.0, 10.0, 10.0];
    for (d, x) in delays.iter().zip(expected) {
        assert!(close(*d, x), "delays {delays:?}");
    }
}

#[test]
fn jitter_is_normalvariate_of_the_delay_and_compounds_as_in_twisted() {
    let clock = Clock::new();
    let f = on_clock(&clock);
    let j = f.jitter();
    let deviates = Rc::new(RefCell::new(vec![1.0, -1.0, 0.5, -2.0]));
    let d = deviates.clone();
    f.set_normal_source(move || d.borrow_mut().remove(0));
    let connects = Rc::new(Cell::new(0));
    let mut expected = 1.0;
    for z in [1.0, -1.0, 0.5, -2.0] {
        expected = (expected * E) * (1.0 + j * z); // the jittered delay is the next base
        let delay = retry_and_fire(&f, &clock, &connects);
        assert!(close(delay, expected), "z={z}: {delay} != {expected}");
    }
    assert!(deviates.borrow().is_empty());
}

#[test]
fn jittered_delays_stay_within_bounds_and_look_normal() {
    let clock = Clock::new();
    let f = on_clock(&clock);
    f.set_seed(2024);
    let j = f.jitter();
    let mut zs = Vec::new();
    let mut previous = f.delay();
    for _ in 0..2000 {
        assert!(f.retry_with(|| {}));
        let base = (previous * f.factor()).min(f.max_delay());
        let delay = f.delay();
        assert!(delay >= 0.0);
        assert!(
            delay >= base * (1.0 - 6.0 * j) && delay <= base * (1.0 + 6.0 * j),
            "delay {delay} is more than 6 sigma from {base}"
        );
        zs.push((delay / base - 1.0) / j);
        previous = delay;
    }
    let n = zs.len() as f64;
    let mean = zs.iter().sum::<f64>() / n;
    let sd = (zs.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 0.1, "deviates' mean {mean}");
    assert!(
        (0.9..1.1).contains(&sd),
        "deviates' standard deviation {sd}"
    );
    assert!(f.delay() <= 3600.0 * (1.0 + 6.0 * j), "max delay ignored");

    // The same seed gives the same delays; another seed, others.
    let again = |seed| {
        let g = on_clock(&Clock::new());
        g.set_seed(seed);
        (0..5)
            .map(|_| {
                g.retry_with(|| {});
                g.delay()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(again(7), again(7));
    assert_ne!(again(7), again(8));
}

#[test]
fn max_retries_gives_up() {
    let clock = Clock::new();
    let f = on_clock(&clock);
    f.set_max_retries(Some(3));
    let connects = Rc::new(Cell::new(0));
    for _ in 0..3 {
        retry_and_fire(&f, &clock, &connects);
    }
    let c = connects.clone();
    assert!(!f.retry_with(move || c.set(c.get() + 1)), "a 4th retry");
    assert!(clock.pending_call_times().is_empty());
    clock.advance(1e6);
    assert_eq!(connects.get(), 3);
    // A success starts the count again.
    f.reset_delay();
    retry_and_fire(&f, &clock, &connects);
    assert_eq!(connects.get(), 4);
}

#[test]
fn stop_trying_cancels_the_pending_retry_and_stops() {
    let clock = Clock::new();
    let f = on_clock(&clock);
    let connects = Rc::new(Cell::new(0));
    let c = connects.clone();
    assert!(f.retry_with(move || c.set(c.get() + 1)));
    assert!(f.retry_pending());
    f.stop_trying();
    assert!(!f.retry_pending());
    assert!(!f.continue_trying());
    assert!(clock.pending_call_times().is_empty());
    clock.advance(1e6);
    assert_eq!(connects.get(), 0);
    assert!(!f.retry_with(|| panic!("retried after stop_trying")));
    assert!(clock.pending_call_times().is_empty());
}

#[test]
fn a_new_retry_replaces_a_pending_one() {
    let clock = Clock::new();
    let f = on_clock(&clock);
    let connects = Rc::new(Cell::new(0));
    for _ in 0..2 {
        let c = connects.clone();
        f.retry_with(move || c.set(c.get() + 1));
    }
    assert_eq!(clock.pending_call_times().len(), 1);
    clock.advance(1e6);
    assert_eq!(connects.get(), 1);
}

#[test]
fn a_successful_connection_resets_the_delay() {
    let clock = Clock::new();
    let f = on_clock(&clock);
    f.set_jitter(0.0);
    let connects = Rc::new(Cell::new(0));
    retry_and_fire(&f, &clock, &connects);
    retry_and_fire(&f, &clock, &connects);
    assert!(close(f.delay(), E * E));
    assert!(f.build_protocol(&Address::Named("server".into())).is_some());
    assert_eq!((f.delay(), f.retries()), (1.0, 0));
    let delay = retry_and_fire(&f, &clock, &connects);
    assert!(
        close(delay, E),
        "after a reset the first retry is initial × factor"
    );
}

#[test]
fn a_refused_build_does_not_reset() {
    let clock = Clock::new();
    let f = ReconnectingClientFactory::new(Refusing);
    f.set_clock(clock.clone());
    f.set_jitter(0.0);
    f.retry_with(|| {});
    assert!(f.build_protocol(&Address::Named("server".into())).is_none());
    assert_eq!(f.retries(), 1);
    assert!(close(f.delay(), E));
}

struct Refusing;

impl Factory for Refusing {
    type Protocol = Quiet;
    fn build_protocol(&self, _addr: &Address) -> Option<Quiet> {
        None
    }
}

impl ClientFactory for Refusing {}

// ---- real TCP ----

/// A loopback port nobody listens on: bound by the system, then released.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// What the wrapped client factory heard.
#[derive(Default)]
struct Heard {
    started: Cell<usize>,
    built: Cell<usize>,
    failed: RefCell<Vec<Failure>>,
    lost: Cell<usize>,
    echoed: RefCell<Vec<u8>>,
}

/// Says hello, and stops the reactor when the echo comes back.
struct Hello(Rc<Heard>);

impl Protocol for Hello {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"hello");
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.0.echoed.borrow_mut().extend_from_slice(data);
        let _ = torsion::reactor().stop();
    }
}

/// A client factory whose first failure starts the server it wanted.
struct StartsServerOnFailure {
    heard: Rc<Heard>,
    port: u16,
}

impl Factory for StartsServerOnFailure {
    type Protocol = Hello;
    fn build_protocol(&self, _addr: &Address) -> Option<Hello> {
        self.heard.built.set(self.heard.built.get() + 1);
        Some(Hello(self.heard.clone()))
    }
}

impl ClientFactory for StartsServerOnFailure {
    fn started_connecting(&self, _connector: &Connector) {
        self.heard.started.set(self.heard.started.get() + 1);
    }

    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        self.heard.failed.borrow_mut().push(reason);
        if self.heard.failed.borrow().len() == 1 {
            torsion::reactor()
                .listen_tcp_on(self.port, factory(|| Echo), "127.0.0.1")
                .expect("listen on the port the client tries");
        }
    }
}

#[test]
fn a_client_refused_at_first_connects_on_the_retry() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let port = free_port();
    let heard = Rc::new(Heard::default());
    let f = Rc::new(ReconnectingClientFactory::new(StartsServerOnFailure {
        heard: heard.clone(),
        port,
    }));
    f.set_initial_delay(0.01);
    f.set_jitter(0.0);
    let ff = f.clone();
    r.call_when_running(move || {
        torsion::reactor().connect_tcp("127.0.0.1", port, ff);
    });
    let log = crate::support::captured_log(|| r.run().unwrap());

    assert!(!timed_out.get(), "never connected");
    // The log says why it retries, not only when.
    assert!(
        log.contains("connecting failed: Connection was refused"),
        "{log}"
    );
    let failed = heard.failed.borrow();
    assert_eq!(failed.len(), 1, "one refused attempt");
    assert!(failed[0].check::<ConnectionRefusedError>(), "{}", failed[0]);
    assert_eq!((heard.started.get(), heard.built.get()), (2, 1));
    assert_eq!(&*heard.echoed.borrow(), b"hello");
    // The success reset the count and the delay; the close at reactor shutdown then counts
    // as one lost connection, retried after initial × factor (without the reset: 2 retries,
    // and a delay of 0.01 × e²).
    assert_eq!(f.retries(), 1);
    assert!(close(f.delay(), 0.01 * E), "delay {}", f.delay());
}

/// Closes every connection at once.
struct Rude;

impl Protocol for Rude {
    fn connection_made(&mut self, t: &Transport) {
        t.lose_connection();
    }
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

/// A client factory that, on its `stop_after`-th lost connection, tells the reconnecting
/// factory around it to stop trying, then checks (on the next turn of the loop) whether a
/// retry is pending and stops the reactor.
struct StopsAfter {
    heard: Rc<Heard>,
    stop_after: usize,
    outer: Rc<RefCell<Weak<ReconnectingClientFactory<StopsAfter>>>>,
    pending_after_stop: Rc<Cell<Option<bool>>>,
}

impl Factory for StopsAfter {
    type Protocol = Quiet;
    fn build_protocol(&self, _addr: &Address) -> Option<Quiet> {
        self.heard.built.set(self.heard.built.get() + 1);
        Some(Quiet)
    }
}

impl ClientFactory for StopsAfter {
    fn started_connecting(&self, _connector: &Connector) {
        self.heard.started.set(self.heard.started.get() + 1);
    }

    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        self.heard.failed.borrow_mut().push(reason);
        self.finish_on_next_turn();
    }

    fn client_connection_lost(&self, _connector: &Connector, _reason: Failure) {
        self.heard.lost.set(self.heard.lost.get() + 1);
        if self.heard.lost.get() == self.stop_after {
            if let Some(outer) = self.outer.borrow().upgrade() {
                outer.stop_trying();
            }
            self.finish_on_next_turn();
        }
    }
}

impl StopsAfter {
    fn finish_on_next_turn(&self) {
        let (outer, seen) = (self.outer.clone(), self.pending_after_stop.clone());
        torsion::reactor().call_later(0.0, move || {
            seen.set(outer.borrow().upgrade().map(|o| o.retry_pending()));
            let _ = torsion::reactor().stop();
        });
    }
}

/// Connects, with `reset_after`, to a server that hangs up at once, and stops trying at the
/// third loss; the factory and what its wrapped factory heard, once the reactor stopped.
fn three_quick_losses(
    reset_after: Option<f64>,
) -> (
    Rc<ReconnectingClientFactory<StopsAfter>>,
    Rc<Heard>,
    Option<bool>,
) {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let port = r.listen_tcp_on(0, factory(|| Rude), "127.0.0.1").unwrap();
    let port = port.get_host().port().unwrap();
    let heard = Rc::new(Heard::default());
    let outer = Rc::new(RefCell::new(Weak::new()));
    let pending_after_stop = Rc::new(Cell::new(None));
    let f = Rc::new(ReconnectingClientFactory::new(StopsAfter {
        heard: heard.clone(),
        stop_after: 3,
        outer: outer.clone(),
        pending_after_stop: pending_after_stop.clone(),
    }));
    *outer.borrow_mut() = Rc::downgrade(&f);
    f.set_initial_delay(0.001);
    f.set_jitter(0.0);
    f.set_reset_after(reset_after);
    r.connect_tcp("127.0.0.1", port, f.clone());
    r.run().unwrap();
    assert!(!timed_out.get());
    (f, heard, pending_after_stop.get())
}

#[test]
fn lost_connections_are_retried_until_stop_trying() {
    let (f, heard, pending_after_stop) = three_quick_losses(None);
    assert_eq!(
        heard.lost.get(),
        3,
        "reconnected after each loss until stopped"
    );
    assert_eq!((heard.started.get(), heard.built.get()), (3, 3));
    assert_eq!(pending_after_stop, Some(false), "a retry after stop_trying");
    assert!(!f.continue_trying());
    // By default each connect resets the delay.
    assert_eq!(f.retries(), 0);
    assert!(close(f.delay(), 0.001), "{}", f.delay());
}

#[test]
fn with_reset_after_quick_losses_back_off() {
    // Each connection lasts far less than a minute: the delay is never reset and grows.
    let (f, heard, _) = three_quick_losses(Some(60.0));
    assert_eq!(heard.lost.get(), 3);
    assert_eq!(f.retries(), 2);
    assert!(close(f.delay(), 0.001 * E * E), "{}", f.delay());
}

#[test]
fn with_reset_after_a_connection_that_lasted_resets() {
    // Every connection lasts at least zero seconds: each loss resets the delay before its
    // retry, so the second loss's retry is again the first (the third loss stops trying).
    let (f, heard, _) = three_quick_losses(Some(0.0));
    assert_eq!(heard.lost.get(), 3);
    assert_eq!(f.retries(), 1);
    assert!(close(f.delay(), 0.001 * E), "{}", f.delay());
}

#[test]
fn stop_trying_stops_an_attempt_in_progress() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let heard = Rc::new(Heard::default());
    let outer = Rc::new(RefCell::new(Weak::new()));
    let pending_after_stop = Rc::new(Cell::new(None));
    let f = Rc::new(ReconnectingClientFactory::new(StopsAfter {
        heard: heard.clone(),
        stop_after: usize::MAX,
        outer: outer.clone(),
        pending_after_stop: pending_after_stop.clone(),
    }));
    *outer.borrow_mut() = Rc::downgrade(&f);
    // The attempt starts now and runs once the reactor does: stop it before that.
    r.connect_tcp("127.0.0.1", free_port(), f.clone());
    assert_eq!(heard.started.get(), 1);
    f.stop_trying();
    r.run().unwrap();

    assert!(!timed_out.get());
    let failed = heard.failed.borrow();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].check::<CancelledError>(), "{}", failed[0]);
    assert_eq!(
        pending_after_stop.get(),
        Some(false),
        "retried after stop_trying"
    );
    assert_eq!(heard.built.get(), 0);
}
