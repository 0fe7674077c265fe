//! Panics in protocol and factory code are contained to their own connection: the panicking
//! connection closes (its protocol hears `connection_lost` with the panic), the panic is
//! logged, other connections on the same port go on, and the port keeps accepting.
//!
//! Ports are ephemeral. Every test arms a 10 s safety timer that records a time-out and stops
//! the reactor, so a bug fails the test instead of hanging it.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use torsion::tcp::Connector;
use torsion::transport::Address;
use torsion::{factory, ClientFactory, Factory, Failure, Protocol, Reactor, Transport};

/// A reactor for one test, without signal handlers (tests run in parallel threads).
fn new_reactor() -> Reactor {
    let r = Reactor::new();
    r.set_install_signal_handlers(false);
    r
}

/// Stops the reactor after 10 s, so that no bug can hang the test; the flag says whether it
/// had to.
fn safety_timeout(r: &Reactor) -> Rc<Cell<bool>> {
    let timed_out = Rc::new(Cell::new(false));
    let flag = timed_out.clone();
    let stopper = r.clone();
    r.call_later(10.0, move || {
        flag.set(true);
        let _ = stopper.stop();
    });
    timed_out
}

/// Panics with `message` (a function, so that closures calling it return `()`).
fn explode(message: &str) {
    panic!("{message}");
}

/// Log output captured from a `tracing` subscriber scoped to the test's thread.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with log output captured; returns its result and the output.
fn captured_log<T>(f: impl FnOnce() -> T) -> (T, String) {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let bytes = capture.0.lock().unwrap().clone();
    (out, String::from_utf8_lossy(&bytes).into_owned())
}

const BOOM: &str = "boom in data_received";

/// Echoes, except that a message containing `boom` makes it panic.
struct Fragile {
    losses: Rc<RefCell<Vec<Failure>>>,
}

impl Protocol for Fragile {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        if data.windows(4).any(|w| w == b"boom") {
            explode(BOOM);
        }
        t.write(data);
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.losses.borrow_mut().push(reason);
    }
}

/// What the data_received scenario saw.
#[derive(Default)]
struct Scenario {
    port: Cell<u16>,
    survivor: RefCell<Option<Transport>>,
    survivor_got: RefCell<Vec<u8>>,
    victim_got: RefCell<Vec<u8>>,
    victim_lost: RefCell<Option<Failure>>,
    server_losses: Rc<RefCell<Vec<Failure>>>,
    timed_out: Cell<bool>,
}

/// The connection that must survive: echoes `one`, then (once the victim is gone) `two`.
struct Survivor {
    s: Rc<Scenario>,
}

impl Protocol for Survivor {
    fn connection_made(&mut self, t: &Transport) {
        *self.s.survivor.borrow_mut() = Some(t.clone());
        t.write(b"one");
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let mut got = self.s.survivor_got.borrow_mut();
        got.extend_from_slice(data);
        if &got[..] == b"one" {
            // Established and echoing: now the victim connects to the same port.
            let s = self.s.clone();
            torsion::reactor().connect_tcp(
                "127.0.0.1",
                self.s.port.get(),
                factory(move || Victim { s: s.clone() }),
            );
        } else if &got[..] == b"onetwo" {
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, _reason: Failure) {
        let _ = torsion::reactor().stop();
    }
}

/// The connection whose server protocol panics.
struct Victim {
    s: Rc<Scenario>,
}

impl Protocol for Victim {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"boom");
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.s.victim_got.borrow_mut().extend_from_slice(data);
    }

    fn connection_lost(&mut self, reason: Failure) {
        *self.s.victim_lost.borrow_mut() = Some(reason);
        // After the panic, the other connection must still echo.
        if let Some(survivor) = self.s.survivor.borrow().as_ref() {
            survivor.write(b"two");
        }
    }
}

fn run_data_received_scenario() -> Rc<Scenario> {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let s: Rc<Scenario> = Rc::default();
    let losses = s.server_losses.clone();
    let port = r
        .listen_tcp_on(
            0,
            factory(move || Fragile {
                losses: losses.clone(),
            }),
            "127.0.0.1",
        )
        .unwrap();
    s.port.set(port.get_host().port().unwrap());
    let s2 = s.clone();
    r.connect_tcp(
        "127.0.0.1",
        s.port.get(),
        factory(move || Survivor { s: s2.clone() }),
    );
    r.run().unwrap();
    s.timed_out.set(timed_out.get());
    s
}

#[test]
fn a_panic_in_data_received_closes_only_that_connection() {
    let s = run_data_received_scenario();
    assert!(!s.timed_out.get(), "the scenario did not finish");
    assert!(
        s.victim_lost.borrow().is_some(),
        "the panicking connection was not closed"
    );
    assert!(
        s.victim_got.borrow().is_empty(),
        "the panicking call echoed"
    );
    assert_eq!(
        &*s.survivor_got.borrow(),
        b"onetwo",
        "the other connection should keep echoing"
    );
}

#[test]
fn a_panic_in_data_received_gives_that_protocol_connection_lost_with_the_panic() {
    let s = run_data_received_scenario();
    assert!(!s.timed_out.get());
    let losses = s.server_losses.borrow();
    let panics: Vec<&Failure> = losses.iter().filter(|f| f.is_panic()).collect();
    assert_eq!(panics.len(), 1, "{losses:?}");
    assert!(panics[0].error_message().contains(BOOM), "{:?}", panics[0]);
}

#[test]
fn a_panic_in_data_received_is_logged_with_its_message() {
    let (s, log) = captured_log(run_data_received_scenario);
    assert!(!s.timed_out.get());
    assert!(log.contains("panicked"), "{log}");
    assert!(log.contains(BOOM), "{log}");
    assert!(log.contains("Fragile"), "the protocol is named: {log}");
}

/// Which part of the server fails, for the first connection only.
#[derive(Clone, Copy, PartialEq)]
enum FailIn {
    BuildProtocol,
    ConnectionMade,
    ConnectionLost,
}

/// Echoes; the first connection panics in `fail_in`.
struct FirstFails {
    fail_in: FailIn,
    first: bool,
}

impl Protocol for FirstFails {
    fn connection_made(&mut self, t: &Transport) {
        if self.first && self.fail_in == FailIn::ConnectionMade {
            explode("boom in connection_made");
        }
        if self.first && self.fail_in == FailIn::ConnectionLost {
            // Close at once, so that connection_lost (which panics) comes next.
            t.lose_connection();
        }
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }

    fn connection_lost(&mut self, _reason: Failure) {
        if self.first && self.fail_in == FailIn::ConnectionLost {
            explode("boom in connection_lost");
        }
    }
}

struct FirstFailsFactory {
    fail_in: FailIn,
    built: Cell<usize>,
}

impl Factory for FirstFailsFactory {
    type Protocol = FirstFails;

    fn build_protocol(&self, _addr: &Address) -> Option<FirstFails> {
        let n = self.built.get() + 1;
        self.built.set(n);
        if n == 1 && self.fail_in == FailIn::BuildProtocol {
            explode("boom in build_protocol");
        }
        Some(FirstFails {
            fail_in: self.fail_in,
            first: n == 1,
        })
    }
}

/// Client one only listens; when its connection ends, client two pings the same port.
struct ClientOne {
    port: u16,
    lost: Rc<Cell<bool>>,
    pong: Rc<RefCell<Vec<u8>>>,
}

impl Protocol for ClientOne {
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_lost(&mut self, _reason: Failure) {
        self.lost.set(true);
        let pong = self.pong.clone();
        torsion::reactor().connect_tcp(
            "127.0.0.1",
            self.port,
            factory(move || ClientTwo { pong: pong.clone() }),
        );
    }
}

/// Pings; stops the reactor once the echo is back.
struct ClientTwo {
    pong: Rc<RefCell<Vec<u8>>>,
}

impl Protocol for ClientTwo {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"ping");
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        let mut pong = self.pong.borrow_mut();
        pong.extend_from_slice(data);
        if pong.len() >= 4 {
            let _ = torsion::reactor().stop();
        }
    }
}

/// Runs the two-client scenario against a server whose first connection fails in `fail_in`.
/// Returns whether client one's connection ended, what client two got back, and the log.
fn run_first_fails(fail_in: FailIn) -> (bool, Vec<u8>, String) {
    let ((lost, pong, timed_out), log) = captured_log(|| {
        let r = new_reactor();
        let timed_out = safety_timeout(&r);
        let port = r
            .listen_tcp_on(
                0,
                FirstFailsFactory {
                    fail_in,
                    built: Cell::new(0),
                },
                "127.0.0.1",
            )
            .unwrap();
        let port = port.get_host().port().unwrap();
        let lost = Rc::new(Cell::new(false));
        let pong: Rc<RefCell<Vec<u8>>> = Rc::default();
        let (l, p) = (lost.clone(), pong.clone());
        r.connect_tcp(
            "127.0.0.1",
            port,
            factory(move || ClientOne {
                port,
                lost: l.clone(),
                pong: p.clone(),
            }),
        );
        r.run().unwrap();
        let pong = pong.borrow().clone();
        (lost.get(), pong, timed_out.get())
    });
    assert!(!timed_out, "the scenario did not finish; log:\n{log}");
    (lost, pong, log)
}

#[test]
fn a_panic_in_connection_made_closes_that_connection_and_the_port_keeps_accepting() {
    let (lost, pong, log) = run_first_fails(FailIn::ConnectionMade);
    assert!(lost, "the panicking connection was not closed");
    assert_eq!(pong, b"ping");
    assert!(log.contains("boom in connection_made"), "{log}");
}

#[test]
fn a_panic_in_build_protocol_closes_that_connection_and_the_port_keeps_accepting() {
    let (lost, pong, log) = run_first_fails(FailIn::BuildProtocol);
    assert!(lost, "the refused connection was not closed");
    assert_eq!(pong, b"ping");
    assert!(log.contains("boom in build_protocol"), "{log}");
}

#[test]
fn a_panic_in_connection_lost_is_logged_and_the_port_keeps_accepting() {
    let (lost, pong, log) = run_first_fails(FailIn::ConnectionLost);
    assert!(lost);
    assert_eq!(pong, b"ping");
    assert!(log.contains("boom in connection_lost"), "{log}");
}

/// A client protocol that panics on the first data it receives.
struct PanickyClient;

impl Protocol for PanickyClient {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"ping");
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {
        explode("boom in the client");
    }
}

struct PanickyClientFactory {
    lost: Rc<RefCell<Option<Failure>>>,
}

impl Factory for PanickyClientFactory {
    type Protocol = PanickyClient;

    fn build_protocol(&self, _addr: &Address) -> Option<PanickyClient> {
        Some(PanickyClient)
    }
}

impl ClientFactory for PanickyClientFactory {
    fn client_connection_lost(&self, _connector: &Connector, reason: Failure) {
        *self.lost.borrow_mut() = Some(reason);
        let _ = torsion::reactor().stop();
    }
}

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

#[test]
fn a_panicking_client_protocol_closes_its_connection_and_the_factory_hears_the_panic() {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let port = r.listen_tcp_on(0, factory(|| Echo), "127.0.0.1").unwrap();
    let lost: Rc<RefCell<Option<Failure>>> = Rc::default();
    r.connect_tcp(
        "127.0.0.1",
        port.get_host().port().unwrap(),
        PanickyClientFactory { lost: lost.clone() },
    );
    r.run().unwrap();
    assert!(!timed_out.get(), "the client connection never ended");
    let reason = lost.borrow_mut().take().expect("client_connection_lost");
    assert!(reason.is_panic(), "{reason:?}");
    assert!(
        reason.error_message().contains("boom in the client"),
        "{reason}"
    );
}
