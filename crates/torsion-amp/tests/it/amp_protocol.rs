//! The protocol in memory: calls and answers, errors by code, Twisted's UNHANDLED and
//! UNKNOWN, the hostile peers of the issue (an answer never asked for, an empty box, a box
//! that never ends, 100,000 questions at once), and values over the limits.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::{Deferred, Trigger};
use torsion::testing::{connected_pair, StringTransport};
use torsion::transport::{Address, TransportImpl};
use torsion::{Protocol, Transport};
use torsion_amp::wire::{parse_boxes, AmpBox};
use torsion_amp::{
    command, Amp, AmpConfig, AmpError, Locator, RemoteError, UnhandledCommand, UNKNOWN_ERROR_CODE,
};

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
    /// Answers later, when the test says.
    pub struct Later { n: i64 }
    response LaterResult { n: i64 }
}

command! {
    /// Echoes bytes.
    pub struct Echo { v: Vec<u8> }
    response EchoResult { v: Vec<u8> }
    fatal_errors ["BAD"]
}

command! {
    /// Sent without asking.
    pub struct Note { text: String }
    response NoteResult {}
    requires_answer false
}

fn responders(notes: Rc<RefCell<Vec<String>>>) -> Locator {
    Locator::new()
        .responder(|c: Sum, _| Ok::<_, RemoteError>(SumResult { total: c.a + c.b }))
        .responder(|c: Divide, _| match c.denominator {
            0 => Err(RemoteError::new("ZERO_DIVISION", "division by zero")),
            d => Ok(DivideResult {
                result: c.numerator as f64 / d as f64,
            }),
        })
        .responder(|c: Echo, _| match c.v.as_slice() {
            b"bad" => Err(RemoteError::new("BAD", "bad").into()),
            b"odd" => Err(RemoteError::new("ODD", "not declared").into()),
            b"panic-ish" => Err(torsion::Failure::new(std::fmt::Error)),
            _ => Ok(EchoResult { v: c.v }),
        })
        .responder(move |c: Note, _| {
            notes.borrow_mut().push(c.text);
            Ok::<_, RemoteError>(NoteResult {})
        })
}

fn fails<T: 'static>(d: &Deferred<T>) -> torsion::Failure {
    match d.result() {
        Some(Err(f)) => f,
        Some(Ok(_)) => panic!("succeeded"),
        None => panic!("not fired"),
    }
}

#[test]
fn calls_are_answered_and_errors_trapped_by_code() {
    let notes = Rc::new(RefCell::new(Vec::new()));
    let client = Amp::new(Locator::new());
    let caller = client.sender();
    let mut pump = connected_pair(client, Amp::new(responders(notes.clone())));
    let sum = caller.call_remote(Sum { a: 13, b: 81 });
    let div = caller.call_remote(Divide {
        numerator: 1234,
        denominator: 0,
    });
    let odd = caller.call_remote(Echo { v: b"odd".to_vec() });
    caller.send(Note { text: "hi".into() }).unwrap();
    assert_eq!(caller.outstanding_calls(), 3);
    pump.flush();
    assert_eq!(sum.result().unwrap().ok().unwrap().total, 94);
    assert!(RemoteError::check(&fails(&div), "ZERO_DIVISION"));
    // A code the command does not declare arrives as UNKNOWN (Twisted's UnknownRemoteError).
    let odd = RemoteError::trap(fails(&odd), UNKNOWN_ERROR_CODE).unwrap();
    assert_eq!(odd.description, "not declared");
    assert_eq!(*notes.borrow(), vec!["hi".to_string()]);
    assert_eq!(caller.outstanding_calls(), 0);
    assert!(
        !pump.is_closed(),
        "declared and raised remote errors keep the connection"
    );
}

#[test]
fn an_unknown_command_is_answered_unhandled() {
    let client = Amp::new(Locator::new());
    let caller = client.sender();
    let mut pump = connected_pair(client, Amp::new(Locator::new()));
    let d = caller.call_remote(Sum { a: 1, b: 2 });
    pump.flush();
    let e = fails(&d).trap::<UnhandledCommand>().unwrap();
    assert_eq!(e.description, "Unhandled Command: b'Sum'");
    assert!(!pump.is_closed());
}

#[test]
fn a_fatal_error_or_an_undeclared_failure_closes_after_answering() {
    for (value, code) in [(&b"bad"[..], "BAD"), (b"panic-ish", UNKNOWN_ERROR_CODE)] {
        let client = Amp::new(Locator::new());
        let caller = client.sender();
        let mut pump = connected_pair(
            client,
            Amp::new(responders(Rc::new(RefCell::new(Vec::new())))),
        );
        let d = caller.call_remote(Echo { v: value.to_vec() });
        pump.flush();
        assert!(RemoteError::check(&fails(&d), code), "{code}");
        assert!(pump.is_closed(), "{code}");
        let after = caller.call_remote(Sum { a: 1, b: 1 });
        assert!(fails(&after).check::<AmpError>());
    }
}

#[test]
fn an_over_limit_value_is_refused_here_and_the_connection_kept() {
    let client = Amp::new(Locator::new());
    let caller = client.sender();
    let mut pump = connected_pair(
        client,
        Amp::new(responders(Rc::new(RefCell::new(Vec::new())))),
    );
    let big = caller.call_remote(Echo {
        v: vec![b'x'; 65_536],
    });
    match fails(&big).trap::<AmpError>() {
        Ok(AmpError::TooLong(t)) => assert!(t.is_local && !t.is_key),
        other => panic!("{other:?}"),
    }
    let max = caller.call_remote(Echo {
        v: vec![b'x'; 65_535],
    });
    pump.flush();
    assert_eq!(max.result().unwrap().ok().unwrap().v.len(), 65_535);
    assert!(!pump.is_closed());
}

/// A server on a string transport, fed raw bytes.
fn raw_server(locator: Locator, config: AmpConfig) -> (Amp, StringTransport) {
    let st = StringTransport::new();
    let mut amp = Amp::with_config(locator, config);
    amp.connection_made(&st.transport());
    (amp, st)
}

fn ask(tag: &str, command: &str, args: &[(&str, &str)]) -> Vec<u8> {
    let mut b: AmpBox = args.iter().copied().collect();
    b.insert("_ask", tag);
    b.insert("_command", command);
    b.to_bytes().unwrap()
}

#[test]
fn hostile_an_answer_to_a_question_never_asked_closes_the_connection() {
    let (mut amp, st) = raw_server(Locator::new(), AmpConfig::default());
    let b: AmpBox = [("_answer", "99"), ("total", "1")].into_iter().collect();
    amp.data_received(&st.transport(), &b.to_bytes().unwrap());
    assert!(st.disconnecting());
}

#[test]
fn any_tag_is_answered_as_it_came() {
    // Twisted's tags are hex numbers; a peer may send any bytes, and gets them back.
    let (mut amp, st) = raw_server(responders(Rc::default()), AmpConfig::default());
    let tags = [
        "1",
        "ffffffffffffffff",
        "10000000000000000",
        "007",
        "A",
        "0x1",
        "",
        "\u{e9}",
    ];
    for tag in tags {
        amp.data_received(&st.transport(), &ask(tag, "Sum", &[("a", "1"), ("b", "2")]));
    }
    let answers = parse_boxes(&st.take()).unwrap();
    let echoed: Vec<&[u8]> = answers.iter().map(|b| b.get("_answer").unwrap()).collect();
    assert_eq!(echoed, tags.map(str::as_bytes));
    assert!(answers.iter().all(|b| b.get("total") == Some(&b"3"[..])));
    assert!(!st.disconnecting());
}

/// A transport that keeps each write apart.
#[derive(Default)]
struct Writes(RefCell<Vec<Vec<u8>>>);

impl TransportImpl for Writes {
    fn write(&self, data: &[u8]) {
        self.0.borrow_mut().push(data.to_vec());
    }
    fn lose_connection(&self) {}
    fn abort_connection(&self) {}
    fn get_peer(&self) -> Address {
        Address::Named("peer".into())
    }
    fn get_host(&self) -> Address {
        Address::Named("host".into())
    }
}

#[test]
fn the_answers_to_one_read_go_to_the_transport_in_one_write() {
    let writes = Rc::new(Writes::default());
    let t = Transport::new(writes.clone());
    let mut amp = Amp::new(responders(Rc::default()));
    amp.connection_made(&t);
    let mut read = Vec::new();
    for tag in ["1", "2", "3"] {
        read.extend_from_slice(&ask(tag, "Sum", &[("a", "1"), ("b", tag)]));
    }
    amp.data_received(&t, &read);
    let written = writes.0.borrow().clone();
    assert_eq!(written.len(), 1);
    let answers = parse_boxes(&written[0]).unwrap();
    let totals: Vec<&[u8]> = answers.iter().map(|b| b.get("total").unwrap()).collect();
    assert_eq!(totals, [&b"2"[..], b"3", b"4"]);
    // Outside a read (a call made from a timer, say), a box goes at once.
    drop(amp.sender().call_remote(Sum { a: 1, b: 1 }));
    assert_eq!(writes.0.borrow().len(), 2);
}

#[test]
fn hostile_an_answer_whose_tag_differs_by_a_leading_zero_is_never_asked() {
    // As in Twisted, where tags are dictionary keys: "01" is not "1".
    for (tag, closes) in [("01", true), ("1", false)] {
        let st = StringTransport::new();
        let mut amp = Amp::new(Locator::new());
        amp.connection_made(&st.transport());
        let sum = amp.sender().call_remote(Sum { a: 1, b: 2 });
        let asked = parse_boxes(&st.take()).unwrap();
        assert_eq!(asked[0].get("_ask"), Some(&b"1"[..]));
        let b: AmpBox = [("_answer", tag), ("total", "3")].into_iter().collect();
        amp.data_received(&st.transport(), &b.to_bytes().unwrap());
        assert_eq!(st.disconnecting(), closes, "{tag}");
        assert_eq!(sum.called(), !closes, "{tag}");
    }
}

#[test]
fn hostile_an_empty_box_or_a_long_key_closes_the_connection() {
    for bytes in [&b"\x00\x00"[..], b"\x01\x00"] {
        let (mut amp, st) = raw_server(Locator::new(), AmpConfig::default());
        amp.data_received(&st.transport(), bytes);
        assert!(st.disconnecting(), "{bytes:?}");
    }
}

#[test]
fn hostile_a_box_that_never_ends_closes_at_the_limit() {
    let config = AmpConfig {
        max_box_size: 100_000,
        ..AmpConfig::default()
    };
    let (mut amp, st) = raw_server(Locator::new(), config);
    let mut pair = b"\x00\x01k\x03\xe8".to_vec();
    pair.extend_from_slice(&[0; 1000]);
    for _ in 0..99 {
        amp.data_received(&st.transport(), &pair);
    }
    assert!(!st.disconnecting());
    amp.data_received(&st.transport(), &pair);
    assert!(st.disconnecting());
}

#[test]
fn hostile_100_000_questions_pause_reading_at_the_limit() {
    let waiting: Rc<RefCell<Vec<Trigger<LaterResult>>>> = Rc::default();
    let w = waiting.clone();
    let locator = Locator::new().responder(move |c: Later, _| {
        let d = Deferred::new();
        w.borrow_mut().push(d.trigger());
        let _ = c.n;
        d
    });
    let (mut amp, st) = raw_server(locator, AmpConfig::default());
    let sender = amp.sender();
    let mut all = Vec::new();
    for i in 0..100_000 {
        all.extend_from_slice(&ask(&format!("{i:x}"), "Later", &[("n", "1")]));
    }
    // In reads of 64 KiB, as a socket delivers them; reading stops at 1,000 in progress.
    for chunk in all.chunks(65_536) {
        amp.data_received(&st.transport(), chunk);
    }
    assert_eq!(sender.pending_answers(), 1000);
    assert_eq!(waiting.borrow().len(), 1000);
    assert!(st.paused() && sender.reading_paused());
    // Answering one resumes reading and the next question waiting in the buffer is read.
    let first = waiting.borrow_mut().remove(0);
    first.callback(LaterResult { n: 1 });
    assert_eq!(parse_boxes(&st.take()).unwrap().len(), 1);
    assert_eq!(waiting.borrow().len(), 1000);
    assert_eq!(sender.pending_answers(), 1000);
}

#[test]
fn outstanding_calls_fail_when_the_connection_ends() {
    let client = Amp::new(Locator::new());
    let caller = client.sender();
    let mut pump = connected_pair(client, Amp::new(Locator::new()));
    let d = caller.call_remote(Sum { a: 1, b: 2 });
    pump.client_transport().lose_connection();
    pump.flush();
    assert!(matches!(
        fails(&d).trap::<AmpError>(),
        Ok(AmpError::ConnectionLost { .. })
    ));
}

#[test]
fn an_unhandled_call_failure_keeps_the_connection() {
    let client = Amp::new(Locator::new());
    let caller = client.sender();
    let mut pump = connected_pair(
        client,
        Amp::new(responders(Rc::new(RefCell::new(Vec::new())))),
    );
    // Twisted drops the connection when a failed call's Deferred is left unhandled.
    drop(caller.call_remote(Divide {
        numerator: 1,
        denominator: 0,
    }));
    pump.flush();
    assert!(!pump.is_closed());
    let sum = caller.call_remote(Sum { a: 2, b: 3 });
    pump.flush();
    assert_eq!(sum.result().unwrap().ok().unwrap().total, 5);
}
