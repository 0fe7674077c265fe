//! Answering from a Deferred's callback, after the event that asked has returned — Twisted's
//! `d.addCallback(lambda r: self.sendLine(r))`: the framings' owned senders
//! (`LineSender<'static>`, `StringSender<'static, F>`) are kept in `'static` callbacks and
//! write framed messages when the callback runs.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::{Deferred, Trigger};
use torsion::protocols::basic::{
    Int8, LineOnly, LineOnlyReceiver, LineReceiver, LineSender, LineTransport, Lines,
    StringReceiver, StringSender, StringTooLongError, Strings,
};
use torsion::task::defer_later;
use torsion::testing::{failure_result_of, success_result_of, Clock, StringTransport};
use torsion::Protocol;

/// The questions asked so far, each with the trigger that answers it.
type Pending = Rc<RefCell<Vec<(Vec<u8>, Trigger<String>)>>>;

/// Answers each line when the test fires that line's Deferred.
struct Asker {
    pending: Pending,
    delimiter: &'static [u8],
}

impl LineReceiver for Asker {
    fn delimiter(&self) -> &[u8] {
        self.delimiter
    }

    fn line_received(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
        let d = Deferred::new();
        self.pending.borrow_mut().push((line.to_vec(), d.trigger()));
        let lines = t.sender();
        d.add_callback(move |answer: String| lines.send_line(answer.as_bytes()));
    }
}

fn assert_owned_handle<T: Clone + 'static>(_: &T) {}

#[test]
fn line_answered_when_its_deferred_fires_after_data_received_returned() {
    let pending = Pending::default();
    let st = StringTransport::new();
    let mut p = Lines::new(Asker {
        pending: pending.clone(),
        delimiter: b"\r\n",
    });
    p.data_received(&st.transport(), b"first\r\nsecond\r\n");
    assert_eq!(
        st.value(),
        b"",
        "nothing is answered before the Deferreds fire"
    );

    // Answered out of order: each answer is written when its Deferred fires.
    let (q2, t2) = pending.borrow_mut().pop().unwrap();
    let (q1, t1) = pending.borrow_mut().pop().unwrap();
    assert_eq!((&q1[..], &q2[..]), (&b"first"[..], &b"second"[..]));
    t2.callback("two".to_string());
    assert_eq!(st.value(), b"two\r\n");
    t1.callback("one".to_string());
    assert_eq!(st.value(), b"two\r\none\r\n");
}

#[test]
fn owned_line_sender_keeps_the_handlers_delimiter() {
    let pending = Pending::default();
    let st = StringTransport::new();
    let mut p = Lines::new(Asker {
        pending: pending.clone(),
        delimiter: b"\n",
    });
    p.data_received(&st.transport(), b"q\n");
    let (_, trigger) = pending.borrow_mut().pop().unwrap();
    trigger.callback("a".to_string());
    assert_eq!(st.value(), b"a\n");
}

/// Answers on a clock a second later, then closes the connection through the kept sender.
struct SlowEcho {
    clock: Clock,
}

impl LineReceiver for SlowEcho {
    fn line_received(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
        let line = line.to_vec();
        let lines: LineSender<'static> = t.sender();
        assert_owned_handle(&lines);
        defer_later(&self.clock, 1.0, move || line).add_callback(move |line| {
            let copy = lines.clone();
            copy.send_line(&line);
            if line == b"bye" {
                lines.lose_connection();
            }
        });
    }
}

#[test]
fn line_answered_from_a_callback_fired_later_by_the_clock() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let mut p = Lines::new(SlowEcho {
        clock: clock.clone(),
    });
    p.data_received(&st.transport(), b"hello\r\nbye\r\n");
    assert_eq!(st.value(), b"");
    clock.advance(0.5);
    assert_eq!(st.value(), b"");
    clock.advance(0.5);
    assert_eq!(st.value(), b"hello\r\nbye\r\n");
    assert!(
        st.disconnecting(),
        "lose_connection through the kept sender"
    );
}

/// A LineOnlyReceiver gets `&LineSender<'_>`: its `sender()` is the owned one.
struct LaterOnly {
    clock: Clock,
}

impl LineOnlyReceiver for LaterOnly {
    fn delimiter(&self) -> &[u8] {
        b"\n"
    }

    fn line_received(&mut self, t: &LineSender<'_>, line: &[u8]) {
        let reply = line.to_ascii_uppercase();
        let lines = t.sender();
        defer_later(&self.clock, 2.0, || ()).add_callback(move |()| lines.send_line(&reply));
    }
}

#[test]
fn line_only_receiver_answers_later_too() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let mut p = LineOnly::new(LaterOnly {
        clock: clock.clone(),
    });
    p.data_received(&st.transport(), b"abc\n");
    assert_eq!(st.value(), b"");
    clock.advance(2.0);
    assert_eq!(st.value(), b"ABC\n");
}

/// Answers each message with `n` bytes, `n` being the message's first byte times two, when
/// the test fires its Deferred; records the Deferred of the send.
struct Doubler {
    pending: Rc<RefCell<Vec<Trigger<usize>>>>,
    sent: Rc<RefCell<Vec<Deferred<()>>>>,
}

impl StringReceiver for Doubler {
    type Framing = Int8;

    fn string_received(&mut self, t: &StringSender<'_, Int8>, data: &[u8]) {
        let d = Deferred::new();
        self.pending.borrow_mut().push(d.trigger());
        let out: StringSender<'static, Int8> = t.sender();
        assert_owned_handle(&out);
        let n = usize::from(data[0]) * 2;
        let sent = d.add_callback_result(move |_: usize| out.send_string(&vec![b'x'; n]));
        self.sent.borrow_mut().push(sent);
    }
}

#[test]
fn send_string_from_a_callback_frames_and_refuses_too_long_messages() {
    let pending = Rc::new(RefCell::new(Vec::new()));
    let sent = Rc::new(RefCell::new(Vec::new()));
    let st = StringTransport::new();
    let mut p = Strings::new(Doubler {
        pending: pending.clone(),
        sent: sent.clone(),
    });
    // Two messages: [2] (answer of 4 bytes) and [200] (answer of 400: over Int8's 255).
    p.data_received(&st.transport(), b"\x01\x02\x01\xc8");
    assert_eq!(st.value(), b"");
    for t in pending.borrow_mut().drain(..) {
        t.callback(0);
    }
    assert_eq!(
        st.value(),
        b"\x04xxxx",
        "only the message that fits is written"
    );
    let sent = sent.borrow();
    success_result_of(&sent[0]);
    let f = failure_result_of(&sent[1]);
    assert_eq!(
        f.downcast_ref::<StringTooLongError>(),
        Some(&StringTooLongError {
            length: 400,
            limit: 255
        })
    );
}
