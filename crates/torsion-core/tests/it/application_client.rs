//! `ClientService` (Twisted's `ClientService`): keeps one connection up through an endpoint,
//! retrying with backoff on its clock after a failed attempt or a lost connection;
//! `when_connected` gives the current or next connection; stopping closes it and stops
//! retrying. The retries run on a testing `Clock`; the connections are real, on loopback.

use std::rc::Rc;

use torsion::application::{backoff_policy, default_backoff_policy, ClientService, Service};
use torsion::defer::DeferredQueue;
use torsion::endpoints::{client_from_string, ClientEndpoint};
use torsion::error::{CancelledError, ConnectionRefusedError};
use torsion::testing::Clock;
use torsion::{factory, reactor, ConnectionEnd, Failure, Protocol, Transport};

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// Puts what it hears, and its end, on the queues it shares with the test.
struct Client {
    heard: DeferredQueue<Vec<u8>>,
    lost: DeferredQueue<()>,
}

impl Protocol for Client {
    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.heard.put(data.to_vec()).unwrap();
    }
    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.lost.put(()).unwrap();
    }
}

type MakeClient = torsion::protocol::FnFactory<Box<dyn Fn() -> Client>>;

struct Rig {
    service: Rc<ClientService<MakeClient>>,
    clock: Clock,
    heard: DeferredQueue<Vec<u8>>,
    lost: DeferredQueue<()>,
}

fn endpoint(port: u16) -> ClientEndpoint {
    client_from_string(&reactor(), &format!("tcp:127.0.0.1:{port}")).unwrap()
}

/// A service for `port`, retrying after 1.5^n s (no jitter) on a testing clock.
fn rig(port: u16) -> Rig {
    let heard = DeferredQueue::new();
    let lost = DeferredQueue::new();
    let (h, l) = (heard.clone(), lost.clone());
    let make: Box<dyn Fn() -> Client> = Box::new(move || Client {
        heard: h.clone(),
        lost: l.clone(),
    });
    let service = Rc::new(ClientService::new(endpoint(port), factory(make)));
    let clock = Clock::new();
    service.set_clock(clock.clone());
    service.set_retry_policy(backoff_policy(1.0, 60.0, 1.5, || 0.0));
    Rig {
        service,
        clock,
        heard,
        lost,
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[torsion::test]
async fn client_service_retries_with_backoff_and_reconnects_after_a_loss() -> Result<(), Failure> {
    let p = free_port();
    let rig = rig(p);
    rig.service.start_service();
    assert!(rig.service.running());

    // Nobody listens: the first attempt is refused, and the retry waits 1.5 s on the clock.
    let err = rig.service.when_connected(Some(1)).await.unwrap_err();
    assert!(err.check::<ConnectionRefusedError>(), "{err:?}");
    assert_eq!(rig.clock.pending_call_times(), vec![1.5]);

    // A listener appears; the retry connects.
    let port = reactor().listen_tcp_on(p, factory(|| Echo), "127.0.0.1")?;
    let next = rig.service.when_connected(None);
    rig.clock.advance(1.5);
    let conn = next.await?;
    conn.transport().write(b"ping");
    assert_eq!(rig.heard.get().unwrap().await?, b"ping");
    let again = rig.service.when_connected(Some(1)).await?;
    assert!(
        again.transport().same(conn.transport()),
        "the current connection"
    );

    // The connection ends: the service waits 1.5 s again (the count restarted) and reconnects.
    conn.transport().lose_connection();
    rig.lost.get().unwrap().await?;
    assert_eq!(rig.clock.pending_call_times(), vec![3.0]);
    let next = rig.service.when_connected(None);
    rig.clock.advance(1.5);
    let conn2 = next.await?;
    assert!(!conn2.transport().same(conn.transport()));

    // Stopping closes the connection and fires once it has closed; no retry is left.
    let stopped = rig.service.stop_service();
    stopped.await?;
    assert_eq!(
        rig.lost.len(),
        1,
        "the connection closed before the stop fired"
    );
    assert!(!rig.service.running());
    assert!(rig.clock.pending_call_times().is_empty());
    let err = rig.service.when_connected(None).await.unwrap_err();
    assert!(err.check::<CancelledError>());
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn stopping_a_waiting_client_service_cancels_the_retry_and_the_waiters() -> Result<(), Failure>
{
    let rig = rig(free_port());
    rig.service.start_service();
    // Fails after two refusals: the retry at 1.5 s, then one at 1.5 + 2.25 s.
    let two = rig.service.when_connected(Some(2));
    let one = rig.service.when_connected(Some(1));
    assert!(one.await.unwrap_err().check::<ConnectionRefusedError>());
    assert!(!two.called());
    rig.clock.advance(1.5);
    assert!(two.await.unwrap_err().check::<ConnectionRefusedError>());
    assert_eq!(rig.clock.pending_call_times(), vec![1.5 + 2.25]);

    let waiter = rig.service.when_connected(None);
    let stopped = rig.service.stop_service();
    assert!(matches!(stopped.result(), Some(Ok(()))), "stops at once");
    assert!(waiter.await.unwrap_err().check::<CancelledError>());
    assert!(rig.clock.pending_call_times().is_empty());
    Ok(())
}

#[torsion::test]
async fn stopping_while_connecting_cancels_the_attempt_and_a_restart_connects(
) -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let rig = rig(port.get_host().port().unwrap());
    rig.service.start_service();
    let waiter = rig.service.when_connected(None);
    let stopped = rig.service.stop_service();
    assert!(
        matches!(stopped.result(), Some(Ok(()))),
        "the attempt stopped"
    );
    assert!(waiter.await.unwrap_err().check::<CancelledError>());
    assert!(rig.clock.pending_call_times().is_empty());

    rig.service.start_service();
    let conn = rig.service.when_connected(None).await?;
    conn.transport().write(b"back");
    assert_eq!(rig.heard.get().unwrap().await?, b"back");
    rig.service.stop_service().await?;
    port.stop_listening().await?;
    Ok(())
}

#[test]
fn the_default_backoff_is_twisteds() {
    let policy = default_backoff_policy();
    let first = policy(1);
    assert!((1.5..2.5).contains(&first), "{first}");
    let late = policy(1000);
    assert!((60.0..61.0).contains(&late), "{late}");
    let fixed = backoff_policy(1.0, 60.0, 1.5, || 0.0);
    assert_eq!(fixed(0), 1.0);
    assert_eq!(fixed(3), 3.375);
    assert_eq!(fixed(20), 60.0);
}

#[torsion::test]
async fn prepare_connection_readies_each_connection_or_rejects_it() -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let rig = rig(port.get_host().port().unwrap());
    // The first connection is rejected, the second readied once its Deferred fires.
    let ready: Rc<std::cell::RefCell<Option<torsion::defer::Trigger<()>>>> = Rc::default();
    let calls = Rc::new(std::cell::Cell::new(0));
    let (r, c) = (ready.clone(), calls.clone());
    rig.service.set_prepare_connection(move |conn| {
        c.set(c.get() + 1);
        conn.transport().write(b"login");
        if c.get() == 1 {
            return torsion::defer::fail(torsion::error::TimeoutError);
        }
        let d = torsion::defer::Deferred::new();
        *r.borrow_mut() = Some(d.trigger());
        d
    });
    rig.service.start_service();
    let err = rig.service.when_connected(Some(1)).await.unwrap_err();
    assert!(err.check::<torsion::error::TimeoutError>(), "{err:?}");
    rig.lost.get().unwrap().await?;
    assert_eq!(
        rig.clock.pending_call_times(),
        vec![1.5],
        "a failed attempt"
    );

    let next = rig.service.when_connected(None);
    rig.clock.advance(1.5);
    assert_eq!(rig.heard.get().unwrap().await?, b"login");
    assert_eq!(calls.get(), 2);
    assert!(!next.called(), "not before the preparation is done");
    ready.borrow_mut().take().unwrap().callback(());
    let conn = next.await?;
    conn.transport().write(b"ready");
    assert_eq!(rig.heard.get().unwrap().await?, b"ready");
    rig.service.stop_service().await?;
    port.stop_listening().await?;
    Ok(())
}
