//! Protocol switching (Twisted's `ProtocolSwitchCommand`): after the answer, the connection
//! belongs to another protocol on both sides. Torsion with Torsion in memory, and against
//! Python Twisted both ways.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::{ensure_deferred, Deferred, Trigger};
use torsion::endpoints::client_from_string;
use torsion::testing::connected_pair;
use torsion::{factory, ConnectionEnd, Failure, Protocol, Transport};
use torsion_amp::{command, Amp, AmpError, Locator, RemoteError, UnhandledCommand};

use crate::support::{reactor, run_until_peer_ends, twisted_python, Peer};

command! {
    /// Twisted's test peer's switch: the connection goes to `Upper`.
    pub struct SwitchToUpper { greeting: String }
    response #[derive(Debug)] SwitchToUpperResult {}
    errors ["NO_SWITCH"]
}

command! {
    /// `Sum(a, b) -> total`.
    pub struct Sum { a: i64, b: i64 }
    response #[derive(Debug)] SumResult { total: i64 }
}

/// What the connection switches to on the answering side: says it is ready, then answers
/// bytes in upper case; remembers how it ended.
#[derive(Default)]
struct Upper {
    ended: Rc<RefCell<Option<String>>>,
}

impl Protocol for Upper {
    fn connection_made(&mut self, transport: &Transport) {
        transport.write(b"upper ready\n");
    }
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(&data.to_ascii_uppercase());
    }
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        *self.ended.borrow_mut() = Some(reason.to_string());
    }
}

/// What the connection switches to on the calling side: says hello, keeps what comes back,
/// and fires `done` once the upper-cased hello is in.
#[derive(Debug, Default)]
struct Collect {
    got: Vec<u8>,
    done: Option<Trigger<Vec<u8>>>,
}

impl Protocol for Collect {
    fn connection_made(&mut self, transport: &Transport) {
        transport.write(b"hello\n");
    }
    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.ends_with(b"HELLO\n") {
            if let Some(done) = self.done.take() {
                done.callback(self.got.clone());
            }
        }
    }
}

fn switching(ended: Rc<RefCell<Option<String>>>) -> Locator {
    Locator::new()
        .responder(|c: Sum, _| Ok::<_, RemoteError>(SumResult { total: c.a + c.b }))
        .switch_responder(move |c: SwitchToUpper, _| match c.greeting.as_str() {
            "no" => Err(RemoteError::new("NO_SWITCH", "not now")),
            _ => Ok(Upper {
                ended: ended.clone(),
            }),
        })
}

fn result<T: 'static>(d: &Deferred<T>) -> Result<T, Failure> {
    d.result().expect("the Deferred has fired")
}

#[test]
fn after_the_answer_both_sides_belong_to_the_new_protocols() {
    let ended: Rc<RefCell<Option<String>>> = Rc::default();
    let (client, server) = (Amp::new(Locator::new()), Amp::new(switching(ended.clone())));
    let caller = client.sender();
    let mut pump = connected_pair(client, server);
    let switched = caller.call_switch(
        SwitchToUpper {
            greeting: "hi".into(),
        },
        Collect::default,
    );
    // Asked: no AMP box may be sent any more, as in Twisted.
    let late = caller.call_remote(Sum { a: 1, b: 2 });
    assert!(result(&late).unwrap_err().check::<AmpError>());
    pump.flush();
    let collect = result(&switched).unwrap();
    // The server's greeting came with the answer, in the same read: the new protocol got it
    // after its connection_made, then the answer to its hello.
    assert_eq!(collect.borrow().got, b"upper ready\nHELLO\n");
    let after = caller.call_remote(Sum { a: 1, b: 2 });
    let e = result(&after).unwrap_err();
    assert_eq!(
        e.downcast_ref::<AmpError>(),
        Some(&AmpError::ProtocolSwitched)
    );
    // Every event goes to the new protocols, the end too.
    pump.client_transport().lose_connection();
    pump.flush();
    assert!(ended.borrow().is_some());
}

command! {
    /// Answered when the test says.
    pub struct Later {}
    response #[derive(Debug)] LaterResult {}
}

#[test]
fn an_answer_due_after_the_switch_is_dropped_not_written_into_the_new_protocol() {
    // Twisted writes it (the answering side is not locked after `_switchTo`), into the
    // bytes of the new protocol; Torsion drops it (docs/design.md, "Differences").
    let waiting: Rc<RefCell<Option<Trigger<LaterResult>>>> = Rc::default();
    let w = waiting.clone();
    let locator = switching(Rc::default()).responder(move |_: Later, _| {
        let d = Deferred::new();
        *w.borrow_mut() = Some(d.trigger());
        d
    });
    let (client, server) = (Amp::new(Locator::new()), Amp::new(locator));
    let caller = client.sender();
    let mut pump = connected_pair(client, server);
    let later = caller.call_remote(Later {});
    let switched = caller.call_switch(
        SwitchToUpper {
            greeting: "hi".into(),
        },
        Collect::default,
    );
    pump.flush();
    let collect = result(&switched).unwrap();
    waiting
        .borrow_mut()
        .take()
        .unwrap()
        .callback(LaterResult {});
    pump.flush();
    assert_eq!(collect.borrow().got, b"upper ready\nHELLO\n");
    // The question asked before the switch is never answered: it fails when the
    // connection ends.
    assert!(later.result().is_none());
    pump.client_transport().lose_connection();
    pump.flush();
    let e = result(&later).unwrap_err();
    assert!(matches!(
        e.downcast_ref::<AmpError>(),
        Some(AmpError::ConnectionLost { .. })
    ));
}

#[test]
fn a_refused_switch_fails_the_call_and_the_connection_stays_amp() {
    let (client, server) = (Amp::new(Locator::new()), Amp::new(switching(Rc::default())));
    let caller = client.sender();
    let mut pump = connected_pair(client, server);
    let refused = caller.call_switch(
        SwitchToUpper {
            greeting: "no".into(),
        },
        || -> Collect { panic!("not made for a refused switch") },
    );
    pump.flush();
    assert!(RemoteError::check(
        &result(&refused).unwrap_err(),
        "NO_SWITCH"
    ));
    let sum = caller.call_remote(Sum { a: 1, b: 2 });
    pump.flush();
    assert_eq!(result(&sum).unwrap().total, 3);

    // A peer without the responder: UNHANDLED, and still AMP.
    let (client, server) = (Amp::new(Locator::new()), Amp::new(Locator::new()));
    let caller = client.sender();
    let mut pump = connected_pair(client, server);
    let unhandled = caller.call_switch(
        SwitchToUpper {
            greeting: "hi".into(),
        },
        Collect::default,
    );
    pump.flush();
    assert!(result(&unhandled).unwrap_err().check::<UnhandledCommand>());
    // Unlocked: the next call goes out and is answered (UNHANDLED too, by this peer).
    let sum = caller.call_remote(Sum { a: 1, b: 1 });
    pump.flush();
    assert!(result(&sum).unwrap_err().check::<UnhandledCommand>());
}

#[test]
fn a_switch_sent_without_asking_is_not_answered_and_switches_nothing() {
    let (client, server) = (Amp::new(Locator::new()), Amp::new(switching(Rc::default())));
    let caller = client.sender();
    let mut pump = connected_pair(client, server);
    caller
        .send(SwitchToUpper {
            greeting: "hi".into(),
        })
        .unwrap();
    let sum = caller.call_remote(Sum { a: 2, b: 3 });
    pump.flush();
    assert_eq!(result(&sum).unwrap().total, 5);
}

#[test]
fn twisted_switches_to_a_torsion_protocol() {
    let Some(py) = twisted_python() else { return };
    let r = reactor();
    let port = r
        .listen_tcp_on(
            0,
            factory(|| Amp::new(switching(Rc::default()))),
            "127.0.0.1",
        )
        .unwrap();
    let port = port.get_host().port().unwrap().to_string();
    let (ok, out) = run_until_peer_ends(&r, Peer::start(&py, &["switch-client", &port]));
    assert!(ok, "Twisted's client failed:\n{out}");
    assert!(out.contains("ok sum before"), "{out}");
    assert!(out.contains("ok switched"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

/// What the Torsion caller's new protocol received, or why it did not.
type SwitchedBytes = Result<Vec<u8>, Failure>;

#[test]
fn torsion_switches_to_a_twisted_protocol() {
    let Some(py) = twisted_python() else { return };
    let peer = Peer::start(&py, &["server"]);
    let line = peer.line().expect("the Twisted server started");
    let port: u16 = line.strip_prefix("listening ").unwrap().parse().unwrap();
    let r = reactor();
    let done: Rc<RefCell<Option<SwitchedBytes>>> = Rc::default();
    let d2 = done.clone();
    let r2 = r.clone();
    drop(
        ensure_deferred(async move {
            let endpoint = client_from_string(&r2, &format!("tcp:127.0.0.1:{port}"))?;
            let conn = endpoint
                .connect_deferred(factory(|| Amp::new(Locator::new())))
                .await?;
            let amp = conn.protocol().borrow().sender();
            assert_eq!(amp.call_remote(Sum { a: 13, b: 81 }).await?.total, 94);
            let got = Deferred::new();
            let done = got.trigger();
            let collect = amp
                .call_switch(
                    SwitchToUpper {
                        greeting: "hi".into(),
                    },
                    move || Collect {
                        got: Vec::new(),
                        done: Some(done),
                    },
                )
                .await?;
            let bytes = got.await?;
            assert!(collect.borrow().got.ends_with(b"HELLO\n"));
            conn.transport().lose_connection();
            Ok::<Vec<u8>, Failure>(bytes)
        })
        .add_both(move |out| {
            *d2.borrow_mut() = Some(out);
            drop(torsion::reactor().stop());
            Ok::<(), Failure>(())
        }),
    );
    let guard = r.clone();
    r.call_later(120.0, move || drop(guard.stop()));
    r.run().unwrap();
    let out = done.borrow_mut().take().expect("finished in time");
    assert_eq!(out.unwrap(), b"upper ready\nHELLO\n");
    drop(peer);
}
