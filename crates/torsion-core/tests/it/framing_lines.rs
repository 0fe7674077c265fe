//! LineReceiver behaviour: delimiters, raw mode switching, clearing the buffer, the line
//! length limit, and stopping at lose_connection — as Twisted's LineReceiver does.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::protocols::basic::{
    LineOnly, LineOnlyReceiver, LineReceiver, LineSender, LineTransport, Lines,
};
use torsion::testing::StringTransport;
use torsion::Protocol;

#[derive(Debug, PartialEq)]
enum Got {
    Line(Vec<u8>),
    Raw(Vec<u8>),
    TooLong(usize),
}

#[derive(Default)]
struct Script {
    got: Rc<RefCell<Vec<Got>>>,
    delimiter: Option<&'static [u8]>,
    max: Option<usize>,
    /// Switch to raw mode after a line equal to this.
    raw_after: Option<&'static [u8]>,
    /// In raw mode, return to lines when this many raw bytes arrived.
    raw_len: usize,
    /// Close after a line equal to this.
    close_after: Option<&'static [u8]>,
    /// Clear the buffer after a line equal to this.
    clear_after: Option<&'static [u8]>,
    raw_seen: Vec<u8>,
    cleared: Rc<RefCell<Vec<u8>>>,
}

impl LineReceiver for Script {
    fn delimiter(&self) -> &[u8] {
        self.delimiter.unwrap_or(b"\r\n")
    }
    fn max_length(&self) -> usize {
        self.max.unwrap_or(16384)
    }
    fn line_received(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
        self.got.borrow_mut().push(Got::Line(line.to_vec()));
        if Some(line) == self.raw_after {
            t.set_raw_mode();
        }
        if Some(line) == self.close_after {
            t.lose_connection();
        }
        if Some(line) == self.clear_after {
            *self.cleared.borrow_mut() = t.clear_line_buffer();
        }
    }
    fn raw_data_received(&mut self, t: &mut LineTransport<'_>, data: &[u8]) {
        let want = self.raw_len - self.raw_seen.len();
        let take = want.min(data.len());
        self.raw_seen.extend_from_slice(&data[..take]);
        self.got.borrow_mut().push(Got::Raw(data[..take].to_vec()));
        if self.raw_seen.len() == self.raw_len {
            self.raw_seen.clear();
            t.set_line_mode(&data[take..]);
        }
    }
    fn line_length_exceeded(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
        self.got.borrow_mut().push(Got::TooLong(line.len()));
        t.lose_connection();
    }
}

fn feed(script: Script, chunks: &[&[u8]]) -> (Vec<Got>, StringTransport) {
    let got = script.got.clone();
    let mut p = Lines::new(script);
    let st = StringTransport::new();
    let t = st.transport();
    p.connection_made(&t);
    for c in chunks {
        p.data_received(&t, c);
    }
    let out = std::mem::take(&mut *got.borrow_mut());
    (out, st)
}

fn line(s: &[u8]) -> Got {
    Got::Line(s.to_vec())
}

#[test]
fn splits_on_crlf_across_chunks() {
    let (got, _) = feed(Script::default(), &[b"one\r", b"\ntwo\r\nthr", b"ee\r\n"]);
    assert_eq!(got, vec![line(b"one"), line(b"two"), line(b"three")]);
}

#[test]
fn a_custom_delimiter_is_used() {
    let script = Script {
        delimiter: Some(b"\n"),
        ..Script::default()
    };
    let (got, _) = feed(script, &[b"a\nb\r\n"]);
    assert_eq!(got, vec![line(b"a"), line(b"b\r")]);
}

#[test]
fn raw_mode_takes_the_rest_of_the_packet_and_line_mode_resumes() {
    let script = Script {
        raw_after: Some(b"BODY"),
        raw_len: 5,
        ..Script::default()
    };
    let (got, _) = feed(script, &[b"head\r\nBODY\r\nab", b"cdeafter\r\n"]);
    assert_eq!(
        got,
        vec![
            line(b"head"),
            line(b"BODY"),
            Got::Raw(b"ab".to_vec()),
            Got::Raw(b"cde".to_vec()),
            line(b"after"),
        ]
    );
}

#[test]
fn lines_after_lose_connection_in_the_same_packet_are_dropped() {
    let script = Script {
        close_after: Some(b"QUIT"),
        ..Script::default()
    };
    let (got, st) = feed(script, &[b"a\r\nQUIT\r\nb\r\nc\r\n"]);
    assert_eq!(got, vec![line(b"a"), line(b"QUIT")]);
    assert!(st.disconnecting());
}

#[test]
fn clear_line_buffer_drops_and_returns_the_unparsed_rest() {
    let cleared = Rc::new(RefCell::new(Vec::new()));
    let script = Script {
        clear_after: Some(b"CLEAR"),
        cleared: cleared.clone(),
        ..Script::default()
    };
    let (got, _) = feed(script, &[b"CLEAR\r\nx\r\ny", b"z\r\n"]);
    assert_eq!(got, vec![line(b"CLEAR"), line(b"z")]);
    assert_eq!(&*cleared.borrow(), b"x\r\ny");
}

#[test]
fn an_overlong_line_goes_to_line_length_exceeded_and_is_not_buffered() {
    let script = Script {
        max: Some(10),
        ..Script::default()
    };
    // Unterminated data waits up to the limit plus the delimiter's length (Twisted's rule).
    let (got, st) = feed(script, &[b"short\r\n", &[b'x'; 11]]);
    assert_eq!(got, vec![line(b"short")]);
    assert!(!st.disconnecting());
    let script = Script {
        max: Some(10),
        ..Script::default()
    };
    let (got, st) = feed(script, &[b"short\r\n", &[b'x'; 12]]);
    assert_eq!(got, vec![line(b"short"), Got::TooLong(12)]);
    assert!(st.disconnecting());

    let script = Script {
        max: Some(10),
        ..Script::default()
    };
    let (got, _) = feed(script, &[b"0123456789abc\r\nnext\r\n"]);
    assert_eq!(
        got,
        vec![Got::TooLong(21)],
        "the overlong line and the rest are handed over"
    );
}

#[test]
fn a_line_of_exactly_max_length_is_accepted() {
    let script = Script {
        max: Some(4),
        ..Script::default()
    };
    let (got, _) = feed(script, &[b"abcd\r\n"]);
    assert_eq!(got, vec![line(b"abcd")]);
}

/// Twisted's LineReceiver waits for `MAX_LENGTH + len(delimiter)` bytes before it gives up on
/// a partial line: a line of exactly the limit whose CR and LF arrive in different reads is
/// still delivered.
#[test]
fn a_line_of_max_length_with_its_delimiter_split_across_reads_is_delivered() {
    let script = Script {
        max: Some(10),
        ..Script::default()
    };
    let (got, st) = feed(script, &[b"0123456789\r", b"\n"]);
    assert_eq!(got, vec![line(b"0123456789")]);
    assert!(!st.disconnecting());
}

#[test]
fn the_default_length_limit_closes_the_connection() {
    struct Plain;
    impl LineReceiver for Plain {
        fn line_received(&mut self, _: &mut LineTransport<'_>, _: &[u8]) {
            panic!("no line expected");
        }
    }
    let mut p = Lines::new(Plain);
    let st = StringTransport::new();
    p.data_received(&st.transport(), &vec![b'a'; 16385]);
    assert!(
        !st.disconnecting(),
        "a partial line may reach the limit plus the delimiter"
    );
    p.data_received(&st.transport(), b"a");
    assert!(st.disconnecting());
    assert!(p.pending().is_empty());
}

#[test]
fn send_line_appends_the_delimiter() {
    struct Greeter;
    impl LineReceiver for Greeter {
        fn connection_made(&mut self, t: &mut LineTransport<'_>) {
            t.send_line(b"hello");
        }
        fn line_received(&mut self, _: &mut LineTransport<'_>, _: &[u8]) {}
    }
    let mut p = Lines::new(Greeter);
    let st = StringTransport::new();
    p.connection_made(&st.transport());
    assert_eq!(st.value(), b"hello\r\n");
}

#[test]
fn line_only_receiver_splits_lines() {
    struct Collect(Rc<RefCell<Vec<Vec<u8>>>>);
    impl LineOnlyReceiver for Collect {
        fn line_received(&mut self, t: &LineSender<'_>, line: &[u8]) {
            self.0.borrow_mut().push(line.to_vec());
            t.send_line(b"ok");
        }
    }
    let got = Rc::new(RefCell::new(Vec::new()));
    let mut p = LineOnly::new(Collect(got.clone()));
    let st = StringTransport::new();
    p.data_received(&st.transport(), b"a\r\nb");
    p.data_received(&st.transport(), b"c\r\n");
    assert_eq!(*got.borrow(), vec![b"a".to_vec(), b"bc".to_vec()]);
    assert_eq!(st.value(), b"ok\r\nok\r\n");
}
