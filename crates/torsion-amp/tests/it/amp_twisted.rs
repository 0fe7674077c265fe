//! Interop with Python Twisted's `twisted.protocols.amp`, both ways: Twisted's AMP client
//! calls a Torsion server (every argument type, errors, UNHANDLED, 500 concurrent calls, a
//! 60,000-byte value, an over-limit value refused by Twisted before sending), and a Torsion
//! client calls a Twisted AMP server.
//!
//! Skipped, loudly, only where `python3` is missing; a failed install is a failed test.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::ensure_deferred;
use torsion::endpoints::client_from_string;
use torsion::{factory, Failure};
use torsion_amp::{
    command, record, Amp, AmpList, DateTime, Decimal, Locator, RemoteError, UnhandledCommand,
};

use crate::support::{reactor, run_until_peer_ends, twisted_python, Peer};

command! {
    /// `Sum(a, b) -> total`.
    pub struct Sum { a: i64, b: i64 }
    response SumResult { total: i64 }
}

command! {
    /// `Divide(numerator, denominator) -> result`.
    pub struct Divide { numerator: i64, denominator: i64 }
    response DivideResult { result: f64 }
    errors ["ZERO_DIVISION"]
}

command! {
    /// Bytes there and back.
    pub struct Echo { v: Vec<u8> }
    response EchoResult { v: Vec<u8> }
}

record! {
    /// An AmpList element.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Item { a: i64, b: Option<String> }
}

command! {
    /// Every argument type, sent back as received.
    #[derive(Debug, Clone, PartialEq)]
    pub struct AllTypes {
        i: i64,
        s: Vec<u8>,
        u: String,
        t: bool,
        fl: f64,
        d: Decimal,
        when: DateTime,
        ints: Vec<i64>,
        items: AmpList<Item>,
        maybe: Option<String>,
    }
    response #[derive(Debug, PartialEq)] AllTypesResult {
        i: i64,
        s: Vec<u8>,
        u: String,
        t: bool,
        fl: f64,
        d: Decimal,
        when: DateTime,
        ints: Vec<i64>,
        items: AmpList<Item>,
        maybe: Option<String>,
    }
}

command! {
    /// A command the Twisted server does not know.
    pub struct Unknown {}
    response UnknownResult {}
}

fn server_locator() -> Locator {
    Locator::new()
        .responder(|c: Sum, _| Ok::<_, RemoteError>(SumResult { total: c.a + c.b }))
        .responder(|c: Divide, _| match c.denominator {
            0 => Err(RemoteError::new("ZERO_DIVISION", "division by zero")),
            d => Ok(DivideResult {
                result: c.numerator as f64 / d as f64,
            }),
        })
        .responder(|c: Echo, _| Ok::<_, RemoteError>(EchoResult { v: c.v }))
        .responder(|c: AllTypes, _| {
            Ok::<_, RemoteError>(AllTypesResult {
                i: c.i,
                s: c.s,
                u: c.u,
                t: c.t,
                fl: c.fl,
                d: c.d,
                when: c.when,
                ints: c.ints,
                items: c.items,
                maybe: c.maybe,
            })
        })
}

#[test]
fn twisted_client_against_a_torsion_server() {
    let Some(py) = twisted_python() else { return };
    let r = reactor();
    let port = r
        .listen_tcp_on(0, factory(|| Amp::new(server_locator())), "127.0.0.1")
        .unwrap();
    let port = port.get_host().port().unwrap().to_string();
    let (ok, out) = run_until_peer_ends(&r, Peer::start(&py, &["client", &port]));
    assert!(ok, "Twisted's client failed:\n{out}");
    for check in [
        "ok sum",
        "ok zero division",
        "ok all types",
        "ok float nan",
        "ok float -0.0",
        "ok decimal -NaN",
        "ok unhandled",
        "ok concurrent",
        "ok 60000 bytes",
        "ok over limit refused",
        "ok still connected",
    ] {
        assert!(out.contains(check), "{check} missing:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn torsion_client_against_a_twisted_server() {
    let Some(py) = twisted_python() else { return };
    let peer = Peer::start(&py, &["server"]);
    let line = peer.line().expect("the Twisted server started");
    let port: u16 = line.strip_prefix("listening ").unwrap().parse().unwrap();
    let r = reactor();
    let sample = AllTypes {
        i: -(1 << 62),
        s: b"\x00\xffbytes".to_vec(),
        u: "h\u{e9}llo \u{2603}".into(),
        t: true,
        fl: 1e16,
        d: "1.50".parse().unwrap(),
        when: DateTime {
            year: 2012,
            month: 1,
            day: 23,
            hour: 12,
            minute: 34,
            second: 56,
            microsecond: 54321,
            offset_minutes: -330,
        },
        ints: vec![3, 7, 9, 15],
        items: AmpList(vec![
            Item {
                a: 7,
                b: Some("hello".into()),
            },
            Item { a: 9, b: None },
        ]),
        maybe: None,
    };
    let done: Rc<RefCell<Option<Result<(), Failure>>>> = Rc::default();
    let d2 = done.clone();
    let r2 = r.clone();
    let sent = sample.clone();
    drop(
        ensure_deferred(async move {
            let endpoint = client_from_string(&r2, &format!("tcp:127.0.0.1:{port}"))?;
            let conn = endpoint
                .connect_deferred(factory(|| Amp::new(Locator::new())))
                .await?;
            let amp = conn.protocol().borrow().sender();
            assert_eq!(amp.call_remote(Sum { a: 13, b: 81 }).await?.total, 94);
            let failure = amp
                .call_remote(Divide {
                    numerator: 1234,
                    denominator: 0,
                })
                .await
                .err()
                .expect("division by zero fails");
            let e = RemoteError::trap(failure, "ZERO_DIVISION").expect("ZERO_DIVISION");
            assert_eq!(e.description, "division by zero");
            let back = amp.call_remote(sent.clone()).await?;
            assert_eq!(
                (back.i, &back.s, &back.u, back.t, back.fl, &back.d, back.when),
                (sent.i, &sent.s, &sent.u, sent.t, sent.fl, &sent.d, sent.when)
            );
            assert_eq!(
                (&back.ints, &back.items, &back.maybe),
                (&sent.ints, &sent.items, &None)
            );
            let unknown = amp.call_remote(Unknown {}).await.err().expect("unhandled");
            assert!(unknown.check::<UnhandledCommand>());
            let many: Vec<_> = (0..500)
                .map(|i| amp.call_remote(Sum { a: i, b: i }))
                .collect();
            for (i, d) in many.into_iter().enumerate() {
                assert_eq!(d.await?.total, 2 * i as i64);
            }
            let big = amp.call_remote(Echo { v: vec![7; 60_000] }).await?;
            assert_eq!(big.v.len(), 60_000);
            conn.transport().lose_connection();
            Ok::<(), Failure>(())
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
    out.unwrap();
    drop(peer);
}
