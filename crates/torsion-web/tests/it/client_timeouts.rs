//! The agent's time-outs, each failing with a `ResponseTimeout` that names what ran out:
//! connecting, the response head, the whole body, and the whole request. Time is driven by a test `Clock` given to the agent; the
//! servers are real sockets that go quiet.

use std::cell::Cell;
use std::rc::Rc;

use torsion::task::defer_later;
use torsion::tcp::ListeningPort;
use torsion::testing::Clock;
use torsion::{reactor, Failure, Protocol, Transport};
use torsion_web::client::{read_body, Agent, ResponseTimeout, TimeoutPhase};

/// A server that writes `reply` once it has the request head, then says nothing more;
/// `heard` counts the bytes it received.
struct Quiet {
    reply: &'static [u8],
    heard: Rc<Cell<usize>>,
    seen: Vec<u8>,
}

impl Protocol for Quiet {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let before = self.seen.windows(4).any(|w| w == b"\r\n\r\n");
        self.seen.extend_from_slice(data);
        self.heard.set(self.heard.get() + data.len());
        if !before && self.seen.windows(4).any(|w| w == b"\r\n\r\n") {
            t.write(self.reply);
        }
    }
}

fn quiet(reply: &'static [u8]) -> (ListeningPort, u16, Rc<Cell<usize>>) {
    let heard = Rc::new(Cell::new(0));
    let h = heard.clone();
    let f = torsion::factory(move || Quiet {
        reply,
        heard: h.clone(),
        seen: Vec::new(),
    });
    let port = reactor().listen_tcp_on(0, f, "127.0.0.1").unwrap();
    let n = port.get_host().port().unwrap();
    (port, n, heard)
}

/// Lets the reactor run (real time) until `cond` holds, within 10 s.
async fn until(what: &str, cond: impl Fn() -> bool) -> Result<(), Failure> {
    for _ in 0..2000 {
        if cond() {
            return Ok(());
        }
        defer_later(&reactor(), 0.005, || ()).await?;
    }
    panic!("timed out waiting until {what}");
}

fn timeout_of(f: &Failure) -> ResponseTimeout {
    *f.downcast_ref::<ResponseTimeout>()
        .unwrap_or_else(|| panic!("not a ResponseTimeout: {f}"))
}

#[torsion::test]
async fn a_connection_not_made_in_time_hits_the_connect_timeout() -> Result<(), Failure> {
    let (port, n, heard) = quiet(b"");
    let clock = Clock::new();
    let agent = Agent::new()
        .with_clock(clock.clone())
        .with_connect_timeout(5.0);
    let pending = agent.get(&format!("http://127.0.0.1:{n}/"));
    // The reactor has not run since the attempt began: the connection is not made yet.
    clock.advance(4.9);
    assert!(!pending.called(), "fired before its time");
    clock.advance(0.1);
    assert!(pending.called());
    let f = pending.await.unwrap_err();
    let e = timeout_of(&f);
    assert_eq!((e.phase, e.seconds), (TimeoutPhase::Connect, 5.0));
    assert!(f.to_string().starts_with("connect time-out"), "{f}");
    // The attempt was stopped: no request reaches the server, nothing is pooled.
    defer_later(&reactor(), 0.05, || ()).await?;
    assert_eq!(heard.get(), 0);
    assert_eq!(agent.pool().idle_connections(), 0);
    port.stop_listening().await
}

#[torsion::test]
async fn a_silent_server_hits_the_head_timeout_on_the_clock() -> Result<(), Failure> {
    let (port, n, heard) = quiet(b"");
    let clock = Clock::new();
    let agent = Agent::new()
        .with_clock(clock.clone())
        .with_head_timeout(Some(2.0));
    let pending = agent.get(&format!("http://127.0.0.1:{n}/"));
    until("the server has the request", || heard.get() > 0).await?;
    clock.advance(1.9);
    assert!(!pending.called());
    clock.advance(0.1);
    let f = pending.await.unwrap_err();
    assert_eq!(timeout_of(&f).phase, TimeoutPhase::Head);
    assert!(f.to_string().starts_with("head time-out"), "{f}");
    port.stop_listening().await
}

#[torsion::test]
async fn a_body_that_never_ends_hits_the_body_timeout() -> Result<(), Failure> {
    let (port, n, _) = quiet(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part");
    let clock = Clock::new();
    let agent = Agent::new()
        .with_clock(clock.clone())
        .with_idle_timeout(None)
        .with_body_timeout(Some(3.0));
    let response = agent.get(&format!("http://127.0.0.1:{n}/")).await?;
    assert_eq!(response.code, 200);
    let body = read_body(response);
    // The body timer runs from the end of the head (clock time 0).
    assert_eq!(clock.pending_call_times(), vec![3.0]);
    clock.advance(3.0);
    let f = body.await.unwrap_err();
    let e = timeout_of(&f);
    assert_eq!((e.phase, e.seconds), (TimeoutPhase::Body, 3.0));
    assert!(f.to_string().starts_with("body time-out"), "{f}");
    port.stop_listening().await
}

#[torsion::test]
async fn the_whole_request_timeout_names_itself() -> Result<(), Failure> {
    let (port, n, heard) = quiet(b"");
    let clock = Clock::new();
    // Per request: a clone of an agent with other settings shares its pool.
    let base = Agent::new().with_clock(clock.clone());
    let agent = base.clone().with_head_timeout(None).with_timeout(10.0);
    let pending = agent.get(&format!("http://127.0.0.1:{n}/"));
    until("the server has the request", || heard.get() > 0).await?;
    clock.advance(10.0);
    let f = pending.await.unwrap_err();
    let e = timeout_of(&f);
    assert_eq!((e.phase, e.seconds), (TimeoutPhase::Total, 10.0));
    assert!(f.to_string().starts_with("request time-out"), "{f}");
    assert_eq!(base.pool().idle_connections(), 0);
    port.stop_listening().await
}
