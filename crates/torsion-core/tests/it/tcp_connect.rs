//! Outgoing TCP connections and what client factories hear: refusal, `stop_connecting`,
//! `build_protocol` refusing, reconnecting from `client_connection_lost`, the connector's
//! transport and destination, host name resolution; and `stop_listening`, after which new
//! connections are refused while existing ones go on.
//!
//! Ports are ephemeral. Tests that run the reactor are async `#[torsion::test]`s: they fail if
//! they take more than 10 s, and they wait for every connection they made to end, and stop
//! listening, before they return (the kit fails a test that leaves a port or connection open).

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::net::TcpStream;
use std::rc::Rc;

use crate::support::next;
use torsion::defer::DeferredQueue;
use torsion::error::{
    CancelledError, CannotListenError, ConnectError, ConnectionDone, ConnectionRefusedError,
};
use torsion::tcp::{Connector, ListeningPort};
use torsion::transport::Address;
use torsion::ConnectionEnd;
use torsion::{factory, reactor, ClientFactory, Factory, Failure, Protocol, Reactor, Transport};

/// A loopback port nobody listens on: bound by the system, then released.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// What a client factory heard.
#[derive(Default)]
struct ClientLog {
    started: Cell<usize>,
    built: Cell<usize>,
    failed: RefCell<Vec<Failure>>,
    lost: RefCell<Vec<Failure>>,
    /// One item when the factory is done: its attempt failed, or its connection ended and it
    /// does not reconnect.
    done: DeferredQueue<()>,
}

/// A client factory that records every hook, reconnects from `client_connection_lost` while
/// `reconnects` lasts, and otherwise reports on its log's `done` when the attempt or
/// connection ends.
struct TestClientFactory<P, F> {
    make: F,
    log: Rc<ClientLog>,
    reconnects: Cell<usize>,
    _protocol: PhantomData<fn() -> P>,
}

fn client_factory<P: Protocol, F: Fn() -> Option<P> + 'static>(
    log: &Rc<ClientLog>,
    make: F,
) -> TestClientFactory<P, F> {
    TestClientFactory {
        make,
        log: log.clone(),
        reconnects: Cell::new(0),
        _protocol: PhantomData,
    }
}

impl<P: Protocol, F: Fn() -> Option<P> + 'static> Factory for TestClientFactory<P, F> {
    type Protocol = P;

    fn build_protocol(&self, _addr: &Address) -> Option<P> {
        self.log.built.set(self.log.built.get() + 1);
        (self.make)()
    }
}

impl<P: Protocol, F: Fn() -> Option<P> + 'static> ClientFactory for TestClientFactory<P, F> {
    fn started_connecting(&self, _connector: &Connector) {
        self.log.started.set(self.log.started.get() + 1);
    }

    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        self.log.failed.borrow_mut().push(reason);
        self.log.done.put(()).unwrap();
    }

    fn client_connection_lost(&self, connector: &Connector, reason: Failure) {
        self.log.lost.borrow_mut().push(reason);
        if self.reconnects.get() > 0 {
            self.reconnects.set(self.reconnects.get() - 1);
            connector.connect();
        } else {
            self.log.done.put(()).unwrap();
        }
    }
}

/// Echoes; reports on `ended` when its connection ends.
#[derive(Default)]
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

/// Sends `ping`, closes when it comes back.
struct Pinger {
    received: Rc<RefCell<Vec<u8>>>,
}

impl Protocol for Pinger {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"ping");
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let mut received = self.received.borrow_mut();
        received.extend_from_slice(data);
        if received.len() >= 4 {
            t.lose_connection();
        }
    }
}

fn pinger(received: &Rc<RefCell<Vec<u8>>>) -> impl Fn() -> Option<Pinger> + 'static {
    let received = received.clone();
    move || {
        Some(Pinger {
            received: received.clone(),
        })
    }
}

/// Listens with an echo server on 127.0.0.1; returns the port, its number, and the queue on
/// which the server's connections report their ends.
fn listen_echo() -> (ListeningPort, u16, DeferredQueue<()>) {
    let ended = DeferredQueue::new();
    let e = ended.clone();
    let port = reactor()
        .listen_tcp_on(0, factory(move || Echo { ended: e.clone() }), "127.0.0.1")
        .unwrap();
    let number = port.get_host().port().unwrap();
    (port, number, ended)
}

#[torsion::test(timeout = 10)]
async fn connecting_to_a_port_nobody_listens_on_fails_with_connection_refused() {
    let port = free_port();
    let log: Rc<ClientLog> = Rc::default();
    reactor().connect_tcp(
        "127.0.0.1",
        port,
        client_factory(&log, pinger(&Rc::default())),
    );
    next(&log.done).await;
    let failed = log.failed.borrow();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].check::<ConnectionRefusedError>(),
        "{:?}",
        failed[0]
    );
    assert!(
        failed[0].error_message().contains(&port.to_string()),
        "{}",
        failed[0]
    );
}

#[torsion::test(timeout = 10)]
async fn a_refused_attempt_starts_connecting_but_never_builds_a_protocol_or_loses_a_connection() {
    let log: Rc<ClientLog> = Rc::default();
    reactor().connect_tcp(
        "127.0.0.1",
        free_port(),
        client_factory(&log, pinger(&Rc::default())),
    );
    next(&log.done).await;
    assert_eq!(log.started.get(), 1);
    assert_eq!(log.built.get(), 0);
    assert!(log.lost.borrow().is_empty());
    assert_eq!(log.failed.borrow().len(), 1);
}

#[torsion::test(timeout = 10)]
async fn client_connection_lost_reports_connection_done_after_a_clean_close() -> Result<(), Failure>
{
    let (listening, port, server_ended) = listen_echo();
    let log: Rc<ClientLog> = Rc::default();
    let received: Rc<RefCell<Vec<u8>>> = Rc::default();
    reactor().connect_tcp("127.0.0.1", port, client_factory(&log, pinger(&received)));
    next(&log.done).await;
    next(&server_ended).await;
    listening.stop_listening().await?;
    assert_eq!(&*received.borrow(), b"ping");
    assert_eq!(log.built.get(), 1);
    assert!(log.failed.borrow().is_empty());
    let lost = log.lost.borrow();
    assert_eq!(lost.len(), 1);
    assert!(lost[0].check::<ConnectionDone>(), "{:?}", lost[0]);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn connecting_by_host_name_resolves_localhost() -> Result<(), Failure> {
    let (listening, port, server_ended) = listen_echo();
    let log: Rc<ClientLog> = Rc::default();
    let received: Rc<RefCell<Vec<u8>>> = Rc::default();
    reactor().connect_tcp("localhost", port, client_factory(&log, pinger(&received)));
    next(&log.done).await;
    assert!(log.failed.borrow().is_empty(), "{:?}", log.failed.borrow());
    next(&server_ended).await;
    listening.stop_listening().await?;
    assert_eq!(&*received.borrow(), b"ping");
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn stop_connecting_before_the_attempt_runs_fails_it_with_cancelled_error(
) -> Result<(), Failure> {
    let (listening, port, _) = listen_echo();
    let log: Rc<ClientLog> = Rc::default();
    let connector = reactor().connect_tcp(
        "127.0.0.1",
        port,
        client_factory(&log, pinger(&Rc::default())),
    );
    connector.stop_connecting();
    next(&log.done).await;
    listening.stop_listening().await?;
    assert_eq!(log.built.get(), 0);
    let failed = log.failed.borrow();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].check::<CancelledError>(), "{:?}", failed[0]);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_client_factory_building_no_protocol_fails_the_attempt_with_connect_error(
) -> Result<(), Failure> {
    let (listening, port, server_ended) = listen_echo();
    let log: Rc<ClientLog> = Rc::default();
    reactor().connect_tcp("127.0.0.1", port, client_factory(&log, || None::<Pinger>));
    next(&log.done).await;
    // The server had accepted the connection, and sees it close.
    next(&server_ended).await;
    listening.stop_listening().await?;
    assert_eq!(log.built.get(), 1);
    assert!(log.lost.borrow().is_empty());
    let failed = log.failed.borrow();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].check::<ConnectError>(), "{:?}", failed[0]);
    Ok(())
}

/// A server protocol that counts connections and closes each at once.
struct Closer {
    count: Rc<Cell<usize>>,
}

impl Protocol for Closer {
    fn connection_made(&mut self, t: &Transport) {
        self.count.set(self.count.get() + 1);
        t.lose_connection();
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

/// A client protocol that only listens.
struct Quiet;

impl Protocol for Quiet {
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

#[torsion::test(timeout = 10)]
async fn connector_connect_from_client_connection_lost_reconnects() -> Result<(), Failure> {
    let accepted = Rc::new(Cell::new(0));
    let a = accepted.clone();
    let listening =
        reactor().listen_tcp_on(0, factory(move || Closer { count: a.clone() }), "127.0.0.1")?;
    let port = listening.get_host().port().unwrap();
    let log: Rc<ClientLog> = Rc::default();
    let f = client_factory(&log, || Some(Quiet));
    f.reconnects.set(1);
    reactor().connect_tcp("127.0.0.1", port, f);
    // The server closes each connection first, so both of its ends are gone by now.
    next(&log.done).await;
    listening.stop_listening().await?;
    assert_eq!(
        accepted.get(),
        2,
        "the server saw one connection per attempt"
    );
    assert_eq!(log.started.get(), 2);
    assert_eq!(log.built.get(), 2);
    let lost = log.lost.borrow();
    assert_eq!(lost.len(), 2);
    assert!(lost.iter().all(|f| f.check::<ConnectionDone>()), "{lost:?}");
    Ok(())
}

/// Checks, once the echo is back, that the connector's transport is this connection's.
struct ConnectorChecker {
    connector: Rc<RefCell<Option<Connector>>>,
    same_transport: Rc<Cell<Option<bool>>>,
}

impl Protocol for ConnectorChecker {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"x");
    }

    fn data_received(&mut self, t: &Transport, _data: &[u8]) {
        let connector = self.connector.borrow();
        let held = connector.as_ref().and_then(Connector::transport);
        self.same_transport
            .set(Some(held.is_some_and(|held| held.same(t))));
        t.lose_connection();
    }
}

#[torsion::test(timeout = 10)]
async fn connector_transport_is_the_connection_while_connected_and_none_after(
) -> Result<(), Failure> {
    let (listening, port, server_ended) = listen_echo();
    let log: Rc<ClientLog> = Rc::default();
    let slot: Rc<RefCell<Option<Connector>>> = Rc::default();
    let same = Rc::new(Cell::new(None));
    let (s, m) = (slot.clone(), same.clone());
    let connector = reactor().connect_tcp(
        "127.0.0.1",
        port,
        client_factory(&log, move || {
            Some(ConnectorChecker {
                connector: s.clone(),
                same_transport: m.clone(),
            })
        }),
    );
    *slot.borrow_mut() = Some(connector.clone());
    assert!(connector.transport().is_none(), "not connected yet");
    next(&log.done).await;
    next(&server_ended).await;
    listening.stop_listening().await?;
    assert_eq!(same.get(), Some(true));
    assert!(connector.transport().is_none(), "no longer connected");
    assert_eq!(log.lost.borrow().len(), 1);
    Ok(())
}

/// Once connected, asks its connector (from outside its own callbacks) to disconnect.
struct DisconnectViaConnector {
    connector: Rc<RefCell<Option<Connector>>>,
}

impl Protocol for DisconnectViaConnector {
    fn connection_made(&mut self, _t: &Transport) {
        let connector = self.connector.clone();
        reactor().call_later(0.0, move || {
            if let Some(c) = connector.borrow().as_ref() {
                c.disconnect();
            }
        });
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

#[torsion::test(timeout = 10)]
async fn connector_disconnect_closes_an_established_connection_cleanly() -> Result<(), Failure> {
    let (listening, port, server_ended) = listen_echo();
    let log: Rc<ClientLog> = Rc::default();
    let slot: Rc<RefCell<Option<Connector>>> = Rc::default();
    let s = slot.clone();
    let connector = reactor().connect_tcp(
        "127.0.0.1",
        port,
        client_factory(&log, move || {
            Some(DisconnectViaConnector {
                connector: s.clone(),
            })
        }),
    );
    *slot.borrow_mut() = Some(connector);
    next(&log.done).await;
    next(&server_ended).await;
    listening.stop_listening().await?;
    assert!(log.failed.borrow().is_empty());
    let lost = log.lost.borrow();
    assert_eq!(lost.len(), 1);
    assert!(lost[0].check::<ConnectionDone>(), "{:?}", lost[0]);
    Ok(())
}

#[test]
fn connector_get_destination_reports_host_and_port() {
    let r = Reactor::new();
    let log: Rc<ClientLog> = Rc::default();
    let port = free_port();
    let connector = r.connect_tcp("::1", port, client_factory(&log, || Some(Quiet)));
    assert_eq!(connector.get_destination(), ("::1".to_owned(), port));
}

#[torsion::test(timeout = 10)]
async fn stop_listening_refuses_new_connections() -> Result<(), Failure> {
    let (port, number, _) = listen_echo();
    let stopped = port.stop_listening();
    assert!(stopped.called(), "closing a TCP port is immediate");
    stopped.await?;
    assert!(!port.listening());
    let log: Rc<ClientLog> = Rc::default();
    reactor().connect_tcp(
        "127.0.0.1",
        number,
        client_factory(&log, pinger(&Rc::default())),
    );
    next(&log.done).await;
    assert_eq!(log.built.get(), 0);
    let failed = log.failed.borrow();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].check::<ConnectionRefusedError>(),
        "{:?}",
        failed[0]
    );
    Ok(())
}

#[test]
fn stop_listening_refuses_plain_socket_connections_too() {
    let r = Reactor::new();
    let port = r
        .listen_tcp_on(0, factory(Echo::default), "127.0.0.1")
        .unwrap();
    let addr = port.get_host().socket_addr().unwrap();
    TcpStream::connect(addr).expect("the port listens");
    port.stop_listening();
    let err = TcpStream::connect(addr).expect_err("the port was closed");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

/// A server factory that counts start/stop calls.
struct CountingFactory {
    started: Rc<Cell<usize>>,
    stopped: Rc<Cell<usize>>,
}

impl Factory for CountingFactory {
    type Protocol = Echo;

    fn build_protocol(&self, _addr: &Address) -> Option<Echo> {
        Some(Echo::default())
    }

    fn start_factory(&self) {
        self.started.set(self.started.get() + 1);
    }

    fn stop_factory(&self) {
        self.stopped.set(self.stopped.get() + 1);
    }
}

#[test]
fn stop_listening_calls_stop_factory_once() {
    let r = Reactor::new();
    let (started, stopped) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let port = r
        .listen_tcp_on(
            0,
            CountingFactory {
                started: started.clone(),
                stopped: stopped.clone(),
            },
            "127.0.0.1",
        )
        .unwrap();
    assert_eq!((started.get(), stopped.get()), (1, 0));
    port.stop_listening();
    port.stop_listening();
    assert_eq!((started.get(), stopped.get()), (1, 1));
}

/// Pings, and once the first echo is back, closes its server's port and pings again.
struct PingAcrossStopListening {
    port: Rc<RefCell<Option<torsion::tcp::ListeningPort>>>,
    received: Rc<RefCell<Vec<u8>>>,
}

impl Protocol for PingAcrossStopListening {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"one");
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let mut received = self.received.borrow_mut();
        received.extend_from_slice(data);
        if &received[..] == b"one" {
            if let Some(port) = self.port.borrow_mut().take() {
                port.stop_listening();
            }
            t.write(b"two");
        } else if received.len() >= 6 {
            t.lose_connection();
        }
    }
}

#[torsion::test(timeout = 10)]
async fn stop_listening_keeps_existing_connections_open() {
    let (listening, port, server_ended) = listen_echo();
    let slot = Rc::new(RefCell::new(Some(listening)));
    let log: Rc<ClientLog> = Rc::default();
    let received: Rc<RefCell<Vec<u8>>> = Rc::default();
    let (s, rec) = (slot.clone(), received.clone());
    reactor().connect_tcp(
        "127.0.0.1",
        port,
        client_factory(&log, move || {
            Some(PingAcrossStopListening {
                port: s.clone(),
                received: rec.clone(),
            })
        }),
    );
    next(&log.done).await;
    next(&server_ended).await;
    assert!(
        slot.borrow().is_none(),
        "the port was closed mid-connection"
    );
    assert_eq!(&*received.borrow(), b"onetwo");
    let lost = log.lost.borrow();
    assert_eq!(lost.len(), 1);
    assert!(lost[0].check::<ConnectionDone>(), "{:?}", lost[0]);
}

#[test]
fn listening_on_a_port_already_in_use_fails_with_cannot_listen_error() {
    let r = Reactor::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = r
        .listen_tcp_on(port, factory(Echo::default), "127.0.0.1")
        .expect_err("the port is taken");
    let cannot = err
        .downcast_ref::<CannotListenError>()
        .unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(cannot.io_error().kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(r.open_handles(), 0);
    // What `fn main() -> Result<(), Failure>` prints after `Error: `: one line, the cause and
    // the fix, not a struct dump.
    let line = format!("{err:?}");
    assert!(
        !line.contains('\n') && !line.contains("Failure {"),
        "{line}"
    );
    assert!(
        line.starts_with(&format!("Couldn't listen on 127.0.0.1:{port}")),
        "{line}"
    );
    assert!(line.contains("choose another port"), "{line}");
}

#[test]
fn listening_on_an_interface_that_is_not_an_ip_address_fails_with_cannot_listen_error() {
    let r = Reactor::new();
    let err = r
        .listen_tcp_on(0, factory(Echo::default), "not-an-address")
        .expect_err("not an IP address");
    assert!(err.check::<CannotListenError>(), "{err:?}");
}

/// TCP's options are a capability of TCP transports, on both sides of a connection
/// (accepted ones run in the poller, client ones as tasks).
#[torsion::test(timeout = 10)]
async fn tcp_options_are_read_and_set_on_both_ends() -> Result<(), Failure> {
    struct Options(DeferredQueue<(bool, bool, bool)>);
    impl Protocol for Options {
        fn connection_made(&mut self, t: &Transport) {
            let default = t.get_tcp_no_delay().unwrap();
            t.set_tcp_no_delay(false).unwrap();
            t.set_tcp_keep_alive(true).unwrap();
            let seen = (
                default,
                t.get_tcp_no_delay().unwrap(),
                t.get_tcp_keep_alive().unwrap(),
            );
            assert!(t.tcp().is_some());
            self.0.put(seen).unwrap();
            t.lose_connection();
        }
        fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    }
    let server_seen = DeferredQueue::new();
    let s = server_seen.clone();
    let port = reactor().listen_tcp_on(0, factory(move || Options(s.clone())), "127.0.0.1")?;
    let client_seen = DeferredQueue::new();
    let c = client_seen.clone();
    reactor().connect_tcp(
        "127.0.0.1",
        port.get_host().port().unwrap(),
        factory(move || Options(c.clone())),
    );
    assert_eq!(server_seen.get()?.await?, (true, false, true));
    assert_eq!(client_seen.get()?.await?, (true, false, true));
    port.stop_listening().await?;
    Ok(())
}
