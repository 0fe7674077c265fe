//! Panics in protocol and factory code are contained to their own connection: the panicking
//! connection closes (its protocol hears `connection_lost` with the panic), the panic is
//! logged, other connections on the same port go on, and the port keeps accepting.
//!
//! Ports are ephemeral. Each test is an async `#[torsion::test]`: it fails if it takes more
//! than 10 s, and it waits for every connection it made to end, and stops listening, before it
//! returns (the kit fails a test that leaves a port or connection open).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::support::{next, Capture};
use torsion::defer::DeferredQueue;
use torsion::tcp::Connector;
use torsion::transport::Address;
use torsion::ConnectionEnd;
use torsion::{factory, reactor, ClientFactory, Factory, Failure, Protocol, Transport};

/// Panics with `message` (a function, so that closures calling it return `()`).
fn explode(message: &str) {
    panic!("{message}");
}

const BOOM: &str = "boom in data_received";

/// Echoes, except that a message containing `boom` makes it panic.
struct Fragile {
    losses: DeferredQueue<Failure>,
}

impl Protocol for Fragile {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        if data.windows(4).any(|w| w == b"boom") {
            explode(BOOM);
        }
        t.write(data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.losses.put(reason.into()).unwrap();
    }
}

/// What the data_received scenario saw.
#[derive(Default)]
struct Scenario {
    port: Cell<u16>,
    survivor: RefCell<Option<Transport>>,
    survivor_got: RefCell<Vec<u8>>,
    survivor_ended: DeferredQueue<()>,
    victim_got: RefCell<Vec<u8>>,
    victim_lost: RefCell<Option<Failure>>,
    /// How the server's two connections ended.
    server_losses: RefCell<Vec<Failure>>,
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
            reactor().connect_tcp(
                "127.0.0.1",
                self.s.port.get(),
                factory(move || Victim { s: s.clone() }),
            );
        } else if &got[..] == b"onetwo" {
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.s.survivor_ended.put(()).unwrap();
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

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        *self.s.victim_lost.borrow_mut() = Some(reason.into());
        // After the panic, the other connection must still echo.
        if let Some(survivor) = self.s.survivor.borrow().as_ref() {
            survivor.write(b"two");
        }
    }
}

/// Runs the scenario: the survivor connects, then the victim, whose server protocol panics;
/// the survivor goes on, then closes. Returns once both server connections have ended too.
async fn run_data_received_scenario() -> Result<Rc<Scenario>, Failure> {
    let s: Rc<Scenario> = Rc::default();
    let losses = DeferredQueue::new();
    let l = losses.clone();
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Fragile { losses: l.clone() }),
        "127.0.0.1",
    )?;
    s.port.set(port.get_host().port().unwrap());
    let s2 = s.clone();
    reactor().connect_tcp(
        "127.0.0.1",
        s.port.get(),
        factory(move || Survivor { s: s2.clone() }),
    );
    next(&s.survivor_ended).await;
    for _ in 0..2 {
        let reason = next(&losses).await;
        s.server_losses.borrow_mut().push(reason);
    }
    port.stop_listening().await?;
    Ok(s)
}

#[torsion::test(timeout = 10)]
async fn a_panic_in_data_received_closes_only_that_connection() -> Result<(), Failure> {
    let s = run_data_received_scenario().await?;
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
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_panic_in_data_received_gives_that_protocol_connection_lost_with_the_panic(
) -> Result<(), Failure> {
    let s = run_data_received_scenario().await?;
    let losses = s.server_losses.borrow();
    let panics: Vec<&Failure> = losses.iter().filter(|f| f.is_panic()).collect();
    assert_eq!(panics.len(), 1, "{losses:?}");
    assert!(panics[0].error_message().contains(BOOM), "{:?}", panics[0]);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_panic_in_data_received_is_logged_with_its_message() -> Result<(), Failure> {
    let capture = Capture::default();
    let guard = capture.start();
    run_data_received_scenario().await?;
    drop(guard);
    let log = capture.text();
    assert!(log.contains("panicked"), "{log}");
    assert!(log.contains(BOOM), "{log}");
    assert!(log.contains("Fragile"), "the protocol is named: {log}");
    Ok(())
}

/// Which part of the server fails, for the first connection only.
#[derive(Clone, Copy, PartialEq)]
enum FailIn {
    BuildProtocol,
    ConnectionMade,
    ConnectionLost,
}

/// Echoes; the first connection panics in `fail_in`. The others report their end on `ended`.
struct FirstFails {
    fail_in: FailIn,
    first: bool,
    ended: DeferredQueue<()>,
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

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        if self.first && self.fail_in == FailIn::ConnectionLost {
            explode("boom in connection_lost");
        }
        if !self.first {
            self.ended.put(()).unwrap();
        }
    }
}

struct FirstFailsFactory {
    fail_in: FailIn,
    built: Cell<usize>,
    ended: DeferredQueue<()>,
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
            ended: self.ended.clone(),
        })
    }
}

/// Client one only listens; when its connection ends, client two pings the same port.
struct ClientOne {
    port: u16,
    lost: Rc<Cell<bool>>,
    pong: Rc<RefCell<Vec<u8>>>,
    two_ended: DeferredQueue<()>,
}

impl Protocol for ClientOne {
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.lost.set(true);
        let (pong, ended) = (self.pong.clone(), self.two_ended.clone());
        reactor().connect_tcp(
            "127.0.0.1",
            self.port,
            factory(move || ClientTwo {
                pong: pong.clone(),
                ended: ended.clone(),
            }),
        );
    }
}

/// Pings; closes once the echo is back, and reports its end on `ended`.
struct ClientTwo {
    pong: Rc<RefCell<Vec<u8>>>,
    ended: DeferredQueue<()>,
}

impl Protocol for ClientTwo {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"ping");
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let mut pong = self.pong.borrow_mut();
        pong.extend_from_slice(data);
        if pong.len() >= 4 {
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.ended.put(()).unwrap();
    }
}

/// Runs the two-client scenario against a server whose first connection fails in `fail_in`,
/// until client two and its server connection have closed. Returns whether client one's
/// connection ended, what client two got back, and the log.
async fn run_first_fails(fail_in: FailIn) -> Result<(bool, Vec<u8>, String), Failure> {
    let capture = Capture::default();
    let guard = capture.start();
    let server_ended = DeferredQueue::new();
    let listening = reactor().listen_tcp_on(
        0,
        FirstFailsFactory {
            fail_in,
            built: Cell::new(0),
            ended: server_ended.clone(),
        },
        "127.0.0.1",
    )?;
    let port = listening.get_host().port().unwrap();
    let lost = Rc::new(Cell::new(false));
    let pong: Rc<RefCell<Vec<u8>>> = Rc::default();
    let two_ended = DeferredQueue::new();
    let (l, p, e) = (lost.clone(), pong.clone(), two_ended.clone());
    reactor().connect_tcp(
        "127.0.0.1",
        port,
        factory(move || ClientOne {
            port,
            lost: l.clone(),
            pong: p.clone(),
            two_ended: e.clone(),
        }),
    );
    // The first server connection closed before client one heard of it; the second closes
    // when client two has closed.
    next(&two_ended).await;
    next(&server_ended).await;
    listening.stop_listening().await?;
    drop(guard);
    let pong = pong.borrow().clone();
    Ok((lost.get(), pong, capture.text()))
}

#[torsion::test(timeout = 10)]
async fn a_panic_in_connection_made_closes_that_connection_and_the_port_keeps_accepting(
) -> Result<(), Failure> {
    let (lost, pong, log) = run_first_fails(FailIn::ConnectionMade).await?;
    assert!(lost, "the panicking connection was not closed");
    assert_eq!(pong, b"ping");
    assert!(log.contains("boom in connection_made"), "{log}");
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_panic_in_build_protocol_closes_that_connection_and_the_port_keeps_accepting(
) -> Result<(), Failure> {
    let (lost, pong, log) = run_first_fails(FailIn::BuildProtocol).await?;
    assert!(lost, "the refused connection was not closed");
    assert_eq!(pong, b"ping");
    assert!(log.contains("boom in build_protocol"), "{log}");
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_panic_in_connection_lost_is_logged_and_the_port_keeps_accepting() -> Result<(), Failure>
{
    let (lost, pong, log) = run_first_fails(FailIn::ConnectionLost).await?;
    assert!(lost);
    assert_eq!(pong, b"ping");
    assert!(log.contains("boom in connection_lost"), "{log}");
    Ok(())
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
    lost: DeferredQueue<Failure>,
}

impl Factory for PanickyClientFactory {
    type Protocol = PanickyClient;

    fn build_protocol(&self, _addr: &Address) -> Option<PanickyClient> {
        Some(PanickyClient)
    }
}

impl ClientFactory for PanickyClientFactory {
    fn client_connection_lost(&self, _connector: &Connector, reason: Failure) {
        self.lost.put(reason).unwrap();
    }
}

/// Echoes; reports on `ended` when its connection ends.
struct Echo {
    ended: DeferredQueue<()>,
}

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.ended.put(()).unwrap();
    }
}

#[torsion::test(timeout = 10)]
async fn a_panicking_client_protocol_closes_its_connection_and_the_factory_hears_the_panic(
) -> Result<(), Failure> {
    let server_ended = DeferredQueue::new();
    let e = server_ended.clone();
    let port =
        reactor().listen_tcp_on(0, factory(move || Echo { ended: e.clone() }), "127.0.0.1")?;
    let lost = DeferredQueue::new();
    reactor().connect_tcp(
        "127.0.0.1",
        port.get_host().port().unwrap(),
        PanickyClientFactory { lost: lost.clone() },
    );
    let reason = next(&lost).await;
    next(&server_ended).await;
    port.stop_listening().await?;
    assert!(reason.is_panic(), "{reason:?}");
    assert!(
        reason.error_message().contains("boom in the client"),
        "{reason}"
    );
    Ok(())
}
