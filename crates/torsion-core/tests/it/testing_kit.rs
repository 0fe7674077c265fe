//! The testing kit: `#[torsion::test]` (results, time-outs, dirty-reactor checks), the
//! in-memory connected pair and its pump, and the Deferred result helpers.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::{fail, succeed, Deferred};
use torsion::error::{ConnectionDone, TimeoutError};
use torsion::testing::{assert_no_result, connected_pair, failure_result_of, success_result_of};
use torsion::ConnectionEnd;
use torsion::{factory, reactor, Failure, Protocol, Transport};

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

#[torsion::test]
async fn an_async_test_can_await_deferreds_and_tokio_io() -> Result<(), Failure> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();
    // A tokio client on the reactor's own loop talks to the Torsion server.
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"ping");
    drop(stream);
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
fn a_test_may_return_a_deferred() -> Deferred<u32> {
    succeed(7)
}

#[torsion::test]
#[should_panic(expected = "TimeoutError")]
async fn an_error_result_fails_the_test() -> Result<(), Failure> {
    fail::<()>(TimeoutError).await
}

#[torsion::test(timeout = 0.2)]
#[should_panic(expected = "timed out after 0.2 s")]
async fn a_test_that_never_finishes_times_out() {
    let never: Deferred<()> = Deferred::new();
    let _keep = never.trigger();
    let _ = never.await;
}

#[torsion::test]
#[should_panic(expected = "1 pending delayed call(s)")]
async fn a_pending_delayed_call_makes_the_reactor_dirty() {
    reactor().call_later(60.0, || ());
}

#[torsion::test]
#[should_panic(expected = "1 port(s) or connection(s) still open")]
async fn an_open_port_makes_the_reactor_dirty() {
    reactor()
        .listen_tcp_on(0, factory(|| Echo), "127.0.0.1")
        .unwrap();
}

#[torsion::test]
#[should_panic(expected = "1 Deferred failure(s) nobody handled")]
async fn an_unhandled_failure_makes_the_reactor_dirty() {
    drop(fail::<()>(TimeoutError));
}

#[torsion::test]
async fn closing_everything_leaves_the_reactor_clean() -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let call = reactor().call_later(60.0, || ());
    call.cancel()?;
    port.stop_listening().await?;
    Ok(())
}

/// Records what its connection saw.
#[derive(Default)]
struct Recorder {
    greeting: Option<&'static [u8]>,
    got: Rc<RefCell<Vec<u8>>>,
    lost: Rc<RefCell<Option<String>>>,
    half_closed: Rc<RefCell<bool>>,
}

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &Transport) {
        if let Some(g) = self.greeting {
            t.write(g);
        }
    }
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
    }
    fn read_connection_lost(&mut self, t: &Transport) {
        *self.half_closed.borrow_mut() = true;
        t.write(b"bye");
        t.lose_connection();
    }
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        *self.lost.borrow_mut() = Some(reason.failure().error_message());
    }
}

#[test]
fn the_pump_moves_bytes_only_when_asked() {
    let client = Recorder {
        greeting: Some(b"hello"),
        ..Recorder::default()
    };
    let got = client.got.clone();
    let mut pump = connected_pair(client, Echo);
    assert!(got.borrow().is_empty());
    pump.pump(); // client -> server, and the echo waits
    assert!(got.borrow().is_empty());
    pump.pump(); // server -> client
    assert_eq!(&*got.borrow(), b"hello");
}

#[test]
fn lose_connection_ends_both_sides_with_connection_done() {
    let (client, server) = (Recorder::default(), Recorder::default());
    let (cl, sl) = (client.lost.clone(), server.lost.clone());
    let mut pump = connected_pair(client, server);
    pump.client_transport().write(b"last words");
    pump.client_transport().lose_connection();
    pump.flush();
    assert!(pump.is_closed());
    assert_eq!(&*pump.server().got.borrow(), b"last words");
    let done = ConnectionDone.to_string();
    assert_eq!(cl.borrow().as_deref(), Some(done.as_str()));
    assert_eq!(sl.borrow().as_deref(), Some(done.as_str()));
}

#[test]
fn a_half_close_reaches_the_other_side_which_can_still_answer() {
    let (client, server) = (Recorder::default(), Recorder::default());
    let half = server.half_closed.clone();
    let mut pump = connected_pair(client, server);
    pump.client_transport().write(b"question");
    pump.client_transport().lose_write_connection();
    pump.flush();
    assert!(*half.borrow());
    assert_eq!(&*pump.client().got.borrow(), b"bye");
    assert!(pump.is_closed());
}

#[test]
fn result_helpers_look_at_deferreds_without_a_reactor() {
    assert_eq!(success_result_of(&succeed(3)), 3);
    assert!(failure_result_of(&fail::<()>(TimeoutError)).check::<TimeoutError>());
    let pending: Deferred<()> = Deferred::new();
    assert_no_result(&pending);
}

#[test]
#[should_panic(expected = "has not fired")]
fn success_result_of_an_unfired_deferred_fails_clearly() {
    let pending: Deferred<()> = Deferred::new();
    success_result_of(&pending);
}

#[test]
fn a_string_transport_reports_the_addresses_it_was_given() {
    use torsion::testing::StringTransport;
    use torsion::transport::Address;
    let peer = Address::Tcp("10.0.0.7:4242".parse().unwrap());
    let host = Address::Tcp("127.0.0.1:80".parse().unwrap());
    let st = StringTransport::with_addresses(peer.clone(), host.clone());
    let t = st.transport();
    assert_eq!((t.get_peer(), t.get_host()), (peer, host));
}

/// Every wait takes seconds as `f64` or a `Duration`, and both mean the same time.
#[test]
fn delays_are_seconds_or_durations() {
    use std::cell::Cell;
    use std::time::Duration;
    use torsion::task::{defer_later, LoopingCall};
    use torsion::testing::Clock;

    let clock = Clock::new();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    clock.call_later(Duration::from_millis(1500), move || f.set(f.get() + 1));
    let f = fired.clone();
    let call = clock.call_later(1.0, move || f.set(f.get() + 10));
    call.delay(Duration::from_millis(500)).unwrap(); // now due at 1.5 s too
    clock.advance(Duration::from_millis(1499));
    assert_eq!(fired.get(), 0);
    clock.advance(0.001);
    assert_eq!(fired.get(), 11);

    let later = defer_later(&clock, Duration::from_secs(2), || 7);
    clock.advance(Duration::from_secs(2));
    assert_eq!(success_result_of(&later), 7);

    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let lc = LoopingCall::new(move || t.set(t.get() + 1));
    lc.set_clock(clock.clone());
    let _done = lc.start(Duration::from_secs(1), false);
    for _ in 0..3 {
        clock.advance(1.0);
    }
    assert_eq!(ticks.get(), 3);
    lc.stop();
}

/// A wrapper transport overrides only what it changes (here: `write`); flow control and the
/// capabilities reach the transport it wraps.
#[test]
fn a_wrapper_transport_overrides_only_what_it_changes() {
    use torsion::producer::Backpressure;
    use torsion::testing::StringTransport;
    use torsion::transport::{Address, TransportImpl};

    struct Shouting(Transport);
    impl TransportImpl for Shouting {
        fn write(&self, data: &[u8]) {
            self.0.write(&data.to_ascii_uppercase());
        }
        fn lose_connection(&self) {
            self.0.lose_connection();
        }
        fn abort_connection(&self) {
            self.0.abort_connection();
        }
        fn get_peer(&self) -> Address {
            self.0.get_peer()
        }
        fn get_host(&self) -> Address {
            self.0.get_host()
        }
        fn wrapped(&self) -> Option<&Transport> {
            Some(&self.0)
        }
    }

    let st = StringTransport::new();
    let shouting = Transport::new(Rc::new(Shouting(st.transport())));
    shouting.write_sequence(&[b"hello, ", b"world"]);
    assert_eq!(st.value(), b"HELLO, WORLD");

    st.set_buffered_size(500);
    assert_eq!(shouting.buffered_size(), 500);
    shouting.set_write_buffer_limits(100, 10);
    assert_eq!(st.transport().write_buffer_limits(), (100, 10));
    let gate = Backpressure::register(&shouting).expect("the wrapped transport takes producers");
    assert!(st.producer().is_some());
    drop(gate);

    // A StringTransport is not TCP, and neither is what wraps it.
    let e = shouting.set_tcp_no_delay(true).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
    assert!(shouting.tcp().is_none());
    assert_eq!(shouting.peer_credentials(), None);
    shouting.lose_connection();
    assert!(shouting.disconnecting());
}

#[torsion::test]
async fn a_flushed_unhandled_failure_does_not_make_the_reactor_dirty() {
    drop(fail::<()>(TimeoutError));
    drop(fail::<()>(ConnectionDone));
    let flushed = torsion::testing::flush_logged_errors::<(TimeoutError, ConnectionDone)>();
    assert_eq!(flushed.len(), 2);
    assert!(flushed[0].check::<TimeoutError>());
    assert!(flushed[1].check::<ConnectionDone>());
    // Flushed once, gone.
    assert!(torsion::testing::flush_logged_errors::<(TimeoutError,)>().is_empty());
}

#[torsion::test]
#[should_panic(expected = "1 Deferred failure(s) nobody handled")]
async fn flushing_other_types_leaves_the_failure_to_make_the_reactor_dirty() {
    drop(fail::<()>(TimeoutError));
    assert!(torsion::testing::flush_logged_errors::<(ConnectionDone,)>().is_empty());
}

#[torsion::test]
async fn failures_given_to_log_err_are_flushed_as_copies() {
    torsion::log::err(&Failure::new(TimeoutError), "while waiting");
    torsion::log::err(&Failure::new(ConnectionDone), "while reading");
    let flushed = torsion::testing::flush_logged_errors::<(TimeoutError,)>();
    assert_eq!(flushed.len(), 1);
    let copy = flushed[0]
        .downcast_ref::<torsion::testing::LoggedError>()
        .expect("a copy");
    assert_eq!(copy.type_name(), std::any::type_name::<TimeoutError>());
    assert_eq!(copy.to_string(), TimeoutError.to_string());
    assert_eq!(
        torsion::testing::flush_logged_errors::<(ConnectionDone,)>().len(),
        1
    );
}

#[test]
fn outside_a_test_nothing_is_kept() {
    drop(fail::<()>(TimeoutError));
    assert!(torsion::testing::flush_logged_errors::<(TimeoutError,)>().is_empty());
}

#[torsion::test]
async fn assert_failure_gives_back_the_expected_failure() -> Result<(), Failure> {
    use torsion::testing::assert_failure;
    let pending: Deferred<u32> = Deferred::new();
    let trigger = pending.trigger();
    reactor().call_later(0.0, move || trigger.errback(Failure::new(ConnectionDone)));
    let f = assert_failure::<(TimeoutError, ConnectionDone), _>(pending).await?;
    assert!(f.check::<ConnectionDone>());
    Ok(())
}

#[torsion::test]
#[should_panic(
    expected = "expected a failure of type torsion_core::error::TimeoutError, got a result"
)]
async fn assert_failure_of_a_success_fails_the_test() -> Result<(), Failure> {
    torsion::testing::assert_failure::<(TimeoutError,), _>(succeed(1)).await?;
    Ok(())
}

#[torsion::test]
#[should_panic(expected = "got a failure of type torsion_core::error::ConnectionDone")]
async fn assert_failure_of_another_error_fails_the_test_naming_it() -> Result<(), Failure> {
    torsion::testing::assert_failure::<(TimeoutError,), _>(fail::<()>(ConnectionDone)).await?;
    Ok(())
}
