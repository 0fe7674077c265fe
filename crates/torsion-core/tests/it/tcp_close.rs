//! How TCP connections end: `lose_connection` flushing pending writes, `abort_connection`
//! dropping them, half-close (`lose_write_connection` and `read_connection_lost`), a factory
//! refusing a connection, and reactor shutdown closing connections and ports.
//!
//! Ports are ephemeral. Most tests are async `#[torsion::test]`s: they fail if they take more
//! than 10 s, and they wait for every connection they made to end, and stop listening, before
//! they return (the kit fails a test that leaves a port or connection open). The tests of
//! reactor shutdown run their own reactor, and arm a 10 s safety timer that records a time-out
//! and stops the reactor, so a bug fails the test instead of hanging it.

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use crate::support::{new_reactor, safety_timeout};
use tokio::io::AsyncReadExt;
use torsion::defer::DeferredQueue;
use torsion::error::{ConnectionAborted, ConnectionDone, ConnectionLost};
use torsion::reactor::{Event, Phase};
use torsion::tcp::Connector;
use torsion::transport::Address;
use torsion::ConnectionEnd;
use torsion::{factory, reactor, ClientFactory, Factory, Failure, Protocol, Transport};

/// The reasons connections ended, by name of the side, in the order they ended.
#[derive(Clone, Default)]
struct Losses {
    list: Rc<RefCell<Vec<(&'static str, Failure)>>>,
    /// One item per loss, for [`Losses::wait_for`].
    ended: DeferredQueue<()>,
}

impl Losses {
    fn record(&self, side: &'static str, reason: Failure) {
        self.list.borrow_mut().push((side, reason));
        self.ended.put(()).unwrap();
    }

    fn len(&self) -> usize {
        self.list.borrow().len()
    }

    /// Waits until `n` losses have been recorded.
    async fn wait_for(&self, n: usize) {
        while self.len() < n {
            let next = self.ended.get().expect("no other reader waits");
            next.await.expect("a queued item");
        }
    }
}

fn reason_of(losses: &Losses, side: &str) -> Failure {
    let mut losses = losses.list.borrow_mut();
    let i = losses
        .iter()
        .position(|(s, _)| *s == side)
        .unwrap_or_else(|| panic!("no connection_lost for {side}"));
    losses.remove(i).1
}

/// What a plain tokio socket peer reports back.
struct PeerReport {
    bytes: usize,
    end: std::io::Result<()>,
}

/// Connects a plain tokio socket to `addr` and reads until the connection ends.
async fn read_until_closed(addr: SocketAddr) -> PeerReport {
    let mut bytes = 0;
    let end = async {
        let mut sock = tokio::net::TcpStream::connect(addr).await?;
        let mut buf = vec![0; 64 * 1024];
        loop {
            match sock.read(&mut buf).await? {
                0 => return Ok(()),
                n => bytes += n,
            }
        }
    }
    .await;
    PeerReport { bytes, end }
}

/// True for the ways a reader learns that its peer closed: end of file or a reset.
fn peer_saw_close(end: &std::io::Result<()>) -> bool {
    match end {
        Ok(()) => true,
        Err(e) => matches!(e.kind(), ErrorKind::ConnectionReset),
    }
}

const TEN_MB: usize = 10 * 1024 * 1024;

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// Writes 10 MB as soon as the connection is made, then asks to close it.
struct BigWriter {
    losses: Losses,
    transport: Rc<RefCell<Option<Transport>>>,
}

impl Protocol for BigWriter {
    fn connection_made(&mut self, t: &Transport) {
        *self.transport.borrow_mut() = Some(t.clone());
        let data: Vec<u8> = (0..TEN_MB).map(pattern).collect();
        t.write(&data);
        t.lose_connection();
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.losses.record("server", reason.into());
    }
}

/// Counts and checks the bytes of a [`BigWriter`]; records the connection's end.
struct BigReader {
    count: Rc<Cell<usize>>,
    intact: Rc<Cell<bool>>,
    losses: Losses,
}

impl Protocol for BigReader {
    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        let start = self.count.get();
        if data
            .iter()
            .enumerate()
            .any(|(i, &b)| b != pattern(start + i))
        {
            self.intact.set(false);
        }
        self.count.set(start + data.len());
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.losses.record("client", reason.into());
    }
}

#[torsion::test(timeout = 10)]
async fn lose_connection_flushes_ten_megabytes_of_pending_writes_before_closing(
) -> Result<(), Failure> {
    let losses = Losses::default();
    let server_transport: Rc<RefCell<Option<Transport>>> = Rc::default();
    let (l, st) = (losses.clone(), server_transport.clone());
    let port = reactor().listen_tcp_on(
        0,
        factory(move || BigWriter {
            losses: l.clone(),
            transport: st.clone(),
        }),
        "127.0.0.1",
    )?;
    let count = Rc::new(Cell::new(0));
    let intact = Rc::new(Cell::new(true));
    let (c, i, l) = (count.clone(), intact.clone(), losses.clone());
    reactor().connect_tcp(
        "127.0.0.1",
        port.get_host().port().unwrap(),
        factory(move || BigReader {
            count: c.clone(),
            intact: i.clone(),
            losses: l.clone(),
        }),
    );
    losses.wait_for(2).await;
    port.stop_listening().await?;
    assert_eq!(count.get(), TEN_MB);
    assert!(intact.get(), "the bytes arrived altered or out of order");
    let client = reason_of(&losses, "client");
    assert!(client.check::<ConnectionDone>(), "{client:?}");
    let server = reason_of(&losses, "server");
    assert!(server.check::<ConnectionDone>(), "{server:?}");
    let st = server_transport.borrow();
    assert!(!st.as_ref().unwrap().is_connected());
    Ok(())
}

/// Aborts the connection as soon as it is made, optionally after writing `unsent` bytes.
struct Aborter {
    unsent: usize,
    losses: Losses,
}

impl Protocol for Aborter {
    fn connection_made(&mut self, t: &Transport) {
        if self.unsent > 0 {
            t.write(&vec![b'x'; self.unsent]);
        }
        t.abort_connection();
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.losses.record("server", reason.into());
    }
}

/// Listens with an [`Aborter`], connects a reading peer, and waits for both ends to close.
async fn run_aborter(unsent: usize) -> Result<(PeerReport, Losses), Failure> {
    let losses = Losses::default();
    let l = losses.clone();
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Aborter {
            unsent,
            losses: l.clone(),
        }),
        "127.0.0.1",
    )?;
    let report = read_until_closed(port.get_host().socket_addr().unwrap()).await;
    losses.wait_for(1).await;
    port.stop_listening().await?;
    Ok((report, losses))
}

#[torsion::test(timeout = 10)]
async fn abort_connection_closes_the_connection_for_the_peer() -> Result<(), Failure> {
    let (report, _) = run_aborter(0).await?;
    assert!(peer_saw_close(&report.end), "{:?}", report.end);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn abort_connection_reports_connection_aborted_to_the_local_protocol() -> Result<(), Failure>
{
    let (_, losses) = run_aborter(0).await?;
    let reason = reason_of(&losses, "server");
    assert!(reason.check::<ConnectionAborted>(), "{reason:?}");
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn abort_connection_discards_unsent_writes() -> Result<(), Failure> {
    let (report, losses) = run_aborter(TEN_MB).await?;
    assert!(peer_saw_close(&report.end), "{:?}", report.end);
    assert!(
        report.bytes < TEN_MB,
        "all {} bytes were sent despite the abort",
        report.bytes
    );
    assert!(reason_of(&losses, "server").check::<ConnectionAborted>());
    Ok(())
}

/// Greets the peer; records how the connection ended.
struct Greeter {
    losses: Losses,
}

impl Protocol for Greeter {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"hello");
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.losses.record("server", reason.into());
    }
}

#[torsion::test(timeout = 10)]
async fn a_reset_by_the_peer_is_reported_as_connection_lost() -> Result<(), Failure> {
    let losses = Losses::default();
    let l = losses.clone();
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Greeter { losses: l.clone() }),
        "127.0.0.1",
    )?;
    let mut sock = tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap()).await?;
    // Once the server has greeted us, it is connected: reset the connection (SO_LINGER 0
    // makes close send RST).
    let mut hello = [0; 5];
    sock.read_exact(&mut hello).await?;
    socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO))?;
    drop(sock);
    losses.wait_for(1).await;
    port.stop_listening().await?;
    let reason = reason_of(&losses, "server");
    assert!(reason.check::<ConnectionLost>(), "{reason:?}");
    let io = reason
        .downcast_ref::<ConnectionLost>()
        .and_then(ConnectionLost::io_error)
        .map(std::io::Error::kind);
    assert_eq!(io, Some(ErrorKind::ConnectionReset), "{reason:?}");
    Ok(())
}

/// What `connection_lost` is given for a reset: `ConnectionEnd::Reset` with the operating
/// system's error intact (its number included), which converts into Twisted's ConnectionLost.
#[torsion::test(timeout = 10)]
async fn a_reset_arrives_as_connection_end_reset_with_the_os_error() -> Result<(), Failure> {
    struct Keeper(Rc<RefCell<Option<ConnectionEnd>>>, DeferredQueue<()>);
    impl Protocol for Keeper {
        fn connection_made(&mut self, t: &Transport) {
            t.write(b"hello");
        }
        fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
        fn connection_lost(&mut self, reason: ConnectionEnd) {
            *self.0.borrow_mut() = Some(reason);
            self.1.put(()).unwrap();
        }
    }
    let kept: Rc<RefCell<Option<ConnectionEnd>>> = Rc::default();
    let ended = DeferredQueue::new();
    let (k, e) = (kept.clone(), ended.clone());
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Keeper(k.clone(), e.clone())),
        "127.0.0.1",
    )?;
    let mut sock = tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap()).await?;
    let mut hello = [0; 5];
    sock.read_exact(&mut hello).await?;
    socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO))?;
    drop(sock);
    ended.get()?.await?;
    port.stop_listening().await?;
    let end = kept.borrow_mut().take().unwrap();
    assert!(matches!(end, ConnectionEnd::Reset(_)), "{end:?}");
    assert!(!end.is_clean());
    assert!(end.check::<ConnectionLost>());
    assert_eq!(
        end.io_error().and_then(|e| e.raw_os_error()),
        Some(104),
        "ECONNRESET: {end:?}"
    );
    let failure: Failure = end.into();
    let os = failure
        .downcast_ref::<ConnectionLost>()
        .and_then(ConnectionLost::io_error)
        .and_then(std::io::Error::raw_os_error);
    assert_eq!(os, Some(104), "the Failure keeps the OS error number");
    Ok(())
}

/// Half-close server: collects the request until the client stops writing, then answers and
/// closes.
struct Answerer {
    request: Rc<RefCell<Vec<u8>>>,
    read_lost: Rc<Cell<usize>>,
}

impl Protocol for Answerer {
    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.request.borrow_mut().extend_from_slice(data);
    }

    fn read_connection_lost(&mut self, t: &Transport) {
        self.read_lost.set(self.read_lost.get() + 1);
        t.write(b"answer to: ");
        t.write(&self.request.borrow());
        t.lose_connection();
    }
}

/// Half-close client: sends a question, closes its sending half, and collects the answer.
struct Asker {
    answer: Rc<RefCell<Vec<u8>>>,
    losses: Losses,
}

impl Protocol for Asker {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"question");
        t.lose_write_connection();
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.answer.borrow_mut().extend_from_slice(data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.losses.record("client", reason.into());
    }
}

#[torsion::test(timeout = 10)]
async fn half_close_lets_the_server_answer_after_the_client_stops_writing() -> Result<(), Failure> {
    let request: Rc<RefCell<Vec<u8>>> = Rc::default();
    let read_lost = Rc::new(Cell::new(0));
    let (q, rl) = (request.clone(), read_lost.clone());
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Answerer {
            request: q.clone(),
            read_lost: rl.clone(),
        }),
        "127.0.0.1",
    )?;
    let answer: Rc<RefCell<Vec<u8>>> = Rc::default();
    let losses = Losses::default();
    let (a, l) = (answer.clone(), losses.clone());
    reactor().connect_tcp(
        "127.0.0.1",
        port.get_host().port().unwrap(),
        factory(move || Asker {
            answer: a.clone(),
            losses: l.clone(),
        }),
    );
    // The server closes first, once it has answered; then the client's end closes.
    losses.wait_for(1).await;
    port.stop_listening().await?;
    assert_eq!(&*request.borrow(), b"question");
    assert_eq!(read_lost.get(), 1);
    assert_eq!(
        String::from_utf8_lossy(&answer.borrow()),
        "answer to: question"
    );
    let reason = reason_of(&losses, "client");
    assert!(reason.check::<ConnectionDone>(), "{reason:?}");
    Ok(())
}

/// A server protocol with the default `read_connection_lost`.
struct Sink {
    losses: Losses,
}

impl Protocol for Sink {
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.losses.record("server", reason.into());
    }
}

#[torsion::test(timeout = 10)]
async fn by_default_the_end_of_the_peers_writing_closes_the_connection() -> Result<(), Failure> {
    let losses = Losses::default();
    let l = losses.clone();
    let port =
        reactor().listen_tcp_on(0, factory(move || Sink { losses: l.clone() }), "127.0.0.1")?;
    let answer: Rc<RefCell<Vec<u8>>> = Rc::default();
    let (a, l) = (answer.clone(), losses.clone());
    reactor().connect_tcp(
        "127.0.0.1",
        port.get_host().port().unwrap(),
        factory(move || Asker {
            answer: a.clone(),
            losses: l.clone(),
        }),
    );
    losses.wait_for(2).await;
    port.stop_listening().await?;
    assert!(answer.borrow().is_empty());
    let server = reason_of(&losses, "server");
    assert!(server.check::<ConnectionDone>(), "{server:?}");
    let client = reason_of(&losses, "client");
    assert!(client.check::<ConnectionDone>(), "{client:?}");
    Ok(())
}

/// A server factory that refuses every connection.
struct Refuser {
    asked: Rc<Cell<usize>>,
}

impl Factory for Refuser {
    type Protocol = Sink;

    fn build_protocol(&self, addr: &Address) -> Option<Sink> {
        assert!(matches!(addr, Address::Tcp(_)), "{addr:?}");
        self.asked.set(self.asked.get() + 1);
        None
    }
}

#[torsion::test(timeout = 10)]
async fn a_factory_building_no_protocol_closes_the_connection() -> Result<(), Failure> {
    let asked = Rc::new(Cell::new(0));
    let port = reactor().listen_tcp_on(
        0,
        Refuser {
            asked: asked.clone(),
        },
        "127.0.0.1",
    )?;
    let report = read_until_closed(port.get_host().socket_addr().unwrap()).await;
    port.stop_listening().await?;
    assert_eq!(asked.get(), 1);
    assert!(peer_saw_close(&report.end), "{:?}", report.end);
    assert_eq!(report.bytes, 0);
    Ok(())
}

/// Echoes; records its end.
struct Echo {
    losses: Losses,
}

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.losses.record("server", reason.into());
    }
}

/// Says hello; stops the reactor when the echo comes back; records its end.
struct HelloThenStop {
    losses: Losses,
}

impl Protocol for HelloThenStop {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"hello");
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {
        let _ = torsion::reactor().stop();
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.losses.record("client", reason.into());
    }
}

/// A client factory that records `client_connection_lost`.
struct RecordingClientFactory {
    losses: Losses,
}

impl Factory for RecordingClientFactory {
    type Protocol = HelloThenStop;

    fn build_protocol(&self, _addr: &Address) -> Option<HelloThenStop> {
        Some(HelloThenStop {
            losses: self.losses.clone(),
        })
    }
}

impl ClientFactory for RecordingClientFactory {
    fn client_connection_lost(&self, _connector: &Connector, reason: Failure) {
        self.losses.record("client factory", reason);
    }
}

/// Runs an echo server and a client that stops the reactor while connected. Returns the
/// losses, how many had been recorded when the after-shutdown triggers ran, and the port.
fn stop_while_connected() -> (Losses, usize, torsion::tcp::ListeningPort) {
    let r = new_reactor();
    let timed_out = safety_timeout(&r);
    let losses = Losses::default();
    let l = losses.clone();
    let port = r
        .listen_tcp_on(0, factory(move || Echo { losses: l.clone() }), "127.0.0.1")
        .unwrap();
    r.connect_tcp(
        "127.0.0.1",
        port.get_host().port().unwrap(),
        RecordingClientFactory {
            losses: losses.clone(),
        },
    );
    let seen_by_after = Rc::new(Cell::new(usize::MAX));
    let (seen, l) = (seen_by_after.clone(), losses.clone());
    r.add_system_event_trigger(Phase::After, Event::Shutdown, move || seen.set(l.len()));
    r.run().unwrap();
    assert!(!timed_out.get());
    (losses, seen_by_after.get(), port)
}

#[test]
fn reactor_stop_delivers_connection_lost_to_open_connections() {
    let (losses, _, _) = stop_while_connected();
    for side in ["server", "client", "client factory"] {
        let reason = reason_of(&losses, side);
        assert!(reason.check::<ConnectionLost>(), "{side}: {reason:?}");
    }
}

#[test]
fn reactor_stop_delivers_connection_lost_before_the_after_shutdown_triggers() {
    let (_, seen_by_after, _) = stop_while_connected();
    assert_eq!(
        seen_by_after, 3,
        "server and client connection_lost and client_connection_lost should precede \
         'after shutdown'"
    );
}

#[test]
fn reactor_stop_closes_listening_ports() {
    let (_, _, port) = stop_while_connected();
    assert!(!port.listening());
    let err = TcpStream::connect(port.get_host().socket_addr().unwrap())
        .expect_err("the port was closed");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

/// Records both ends of a client connection's life, and whether the attempt failed.
#[derive(Default)]
struct Life {
    made: Cell<usize>,
    lost: Cell<usize>,
    failed: Cell<usize>,
    factory_lost: Cell<usize>,
}

struct LifeProtocol {
    life: Rc<Life>,
}

impl Protocol for LifeProtocol {
    fn connection_made(&mut self, _t: &Transport) {
        self.life.made.set(self.life.made.get() + 1);
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.life.lost.set(self.life.lost.get() + 1);
    }
}

struct LifeFactory {
    life: Rc<Life>,
}

impl Factory for LifeFactory {
    type Protocol = LifeProtocol;

    fn build_protocol(&self, _addr: &Address) -> Option<LifeProtocol> {
        Some(LifeProtocol {
            life: self.life.clone(),
        })
    }
}

impl ClientFactory for LifeFactory {
    fn client_connection_failed(&self, _connector: &Connector, _reason: Failure) {
        self.life.failed.set(self.life.failed.get() + 1);
    }

    fn client_connection_lost(&self, _connector: &Connector, _reason: Failure) {
        self.life.factory_lost.set(self.life.factory_lost.get() + 1);
    }
}

#[test]
fn a_connection_attempt_racing_reactor_stop_ends_with_connection_lost_or_failure() {
    // Twisted's promise: every connection_made is followed by connection_lost, and a client
    // factory hears exactly one of client_connection_failed or client_connection_lost, even
    // when the reactor stops while the attempt is in progress. The race is run many times.
    for round in 0..50 {
        let r = new_reactor();
        let timed_out = safety_timeout(&r);
        let server_life: Rc<Life> = Rc::default();
        let sl = server_life.clone();
        let port = r
            .listen_tcp_on(
                0,
                factory(move || LifeProtocol { life: sl.clone() }),
                "127.0.0.1",
            )
            .unwrap();
        let port = port.get_host().port().unwrap();
        let client_life: Rc<Life> = Rc::default();
        let (cl, inner) = (client_life.clone(), r.clone());
        r.call_when_running(move || {
            inner.connect_tcp("127.0.0.1", port, LifeFactory { life: cl });
            inner.stop().unwrap();
        });
        r.run().unwrap();
        assert!(!timed_out.get());
        let c = &client_life;
        assert_eq!(
            c.made.get(),
            c.lost.get(),
            "round {round}: client connection_made {} times but connection_lost {} times",
            c.made.get(),
            c.lost.get()
        );
        assert_eq!(
            c.failed.get() + c.factory_lost.get(),
            1,
            "round {round}: client_connection_failed {} + client_connection_lost {}",
            c.failed.get(),
            c.factory_lost.get()
        );
        let s = &server_life;
        assert_eq!(
            s.made.get(),
            s.lost.get(),
            "round {round}: server connection_made {} times but connection_lost {} times",
            s.made.get(),
            s.lost.get()
        );
    }
}

#[torsion::test(timeout = 10)]
async fn abort_connection_discards_a_small_write_from_the_same_callback() -> Result<(), Failure> {
    // Small writes made in a callback are gathered and sent when it returns: an abort in the
    // same callback must drop them, as it drops a buffer.
    let (report, losses) = run_aborter(100).await?;
    assert!(peer_saw_close(&report.end), "{:?}", report.end);
    assert_eq!(report.bytes, 0, "bytes written before the abort were sent");
    assert!(reason_of(&losses, "server").check::<ConnectionAborted>());
    Ok(())
}

/// Writes small pieces around a large one in one callback, then closes.
struct Mixed;

impl Protocol for Mixed {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"first ");
        t.write(b"second ");
        t.write(&vec![b'L'; 100 * 1024]);
        t.write(b" third");
        t.lose_connection();
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

#[torsion::test(timeout = 10)]
async fn writes_in_one_callback_arrive_in_order_around_a_large_one() -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| Mixed), "127.0.0.1")?;
    let mut sock = tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap()).await?;
    let mut got = Vec::new();
    sock.read_to_end(&mut got).await?;
    port.stop_listening().await?;
    let mut want = b"first second ".to_vec();
    want.extend_from_slice(&vec![b'L'; 100 * 1024]);
    want.extend_from_slice(b" third");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the writes arrived out of order");
    Ok(())
}
