//! Property tests for the framing decoders: any split of a byte stream into chunks yields the
//! same frames, and oversized frames are rejected from their header, without buffering them.

use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;
use torsion::protocols::basic::{
    FrameError, Framing, Int16, Int32, Int8, LineReceiver, LineTransport, Lines, Netstring,
    StringReceiver, StringSender, Strings,
};
use torsion::testing::StringTransport;
use torsion::Protocol;

type Frames = Rc<RefCell<Vec<Vec<u8>>>>;

/// Records every frame and error it gets.
struct Recorder<F> {
    frames: Frames,
    errors: Rc<RefCell<Vec<FrameError>>>,
    max: usize,
    framing: std::marker::PhantomData<F>,
}

impl<F: Framing> StringReceiver for Recorder<F> {
    type Framing = F;
    fn max_length(&self) -> usize {
        self.max
    }
    fn string_received(&mut self, _: &StringSender<'_, F>, data: &[u8]) {
        self.frames.borrow_mut().push(data.to_vec());
    }
    fn frame_error(&mut self, t: &StringSender<'_, F>, error: FrameError) {
        self.errors.borrow_mut().push(error);
        t.lose_connection();
    }
}

fn recorder<F: Framing>(max: usize) -> (Strings<Recorder<F>>, Frames) {
    let frames = Rc::new(RefCell::new(Vec::new()));
    let p = Strings::new(Recorder::<F> {
        frames: frames.clone(),
        errors: Rc::default(),
        max,
        framing: std::marker::PhantomData,
    });
    (p, frames)
}

/// Encodes frames with the framing's own encoder, through a StringTransport.
fn encode<F: Framing>(frames: &[Vec<u8>]) -> Vec<u8> {
    let st = StringTransport::new();
    let t = st.transport();
    for f in frames {
        F::encode(&t, f).unwrap();
    }
    st.value()
}

/// Splits `data` at the given cut points (taken modulo the length).
fn chunks(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| data[w[0]..w[1]].to_vec())
        .collect()
}

fn roundtrip<F: Framing>(frames: Vec<Vec<u8>>, cuts: Vec<usize>) -> Result<(), TestCaseError> {
    let wire = encode::<F>(&frames);
    let (mut p, got) = recorder::<F>(1000);
    let st = StringTransport::new();
    let t = st.transport();
    for chunk in chunks(&wire, &cuts) {
        p.data_received(&t, &chunk);
    }
    prop_assert_eq!(&*got.borrow(), &frames);
    Ok(())
}

fn payloads(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..max), 0..12)
}

proptest! {
    #[test]
    fn netstrings_survive_any_split(frames in payloads(300), cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        roundtrip::<Netstring>(frames, cuts)?;
    }

    #[test]
    fn int32_strings_survive_any_split(frames in payloads(300), cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        roundtrip::<Int32>(frames, cuts)?;
    }

    #[test]
    fn int16_strings_survive_any_split(frames in payloads(300), cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        roundtrip::<Int16>(frames, cuts)?;
    }

    #[test]
    fn int8_strings_survive_any_split(frames in payloads(255), cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        roundtrip::<Int8>(frames, cuts)?;
    }

    #[test]
    fn lines_survive_any_split(
        lines in prop::collection::vec(prop::collection::vec(any::<u8>().prop_filter("no CR", |b| *b != b'\r'), 0..200), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut wire = Vec::new();
        for l in &lines {
            wire.extend_from_slice(l);
            wire.extend_from_slice(b"\r\n");
        }
        let got = Rc::new(RefCell::new(Vec::new()));
        let mut p = Lines::new(LineRecorder(got.clone()));
        let st = StringTransport::new();
        let t = st.transport();
        for chunk in chunks(&wire, &cuts) {
            p.data_received(&t, &chunk);
        }
        prop_assert_eq!(&*got.borrow(), &lines);
        prop_assert!(p.pending().is_empty());
    }

    #[test]
    fn garbage_never_panics_and_never_buffers_past_the_limit(data in prop::collection::vec(any::<u8>(), 0..3000)) {
        let (mut p, _) = recorder::<Netstring>(100);
        let st = StringTransport::new();
        p.data_received(&st.transport(), &data);
        let (mut q, _) = recorder::<Int32>(100);
        q.data_received(&st.transport(), &data);
        let mut l = Lines::new(LineRecorder(Rc::default()));
        l.data_received(&st.transport(), &data);
        prop_assert!(l.pending().len() <= 16384);
    }
}

struct LineRecorder(Rc<RefCell<Vec<Vec<u8>>>>);

impl LineReceiver for LineRecorder {
    fn line_received(&mut self, _: &mut LineTransport<'_>, line: &[u8]) {
        self.0.borrow_mut().push(line.to_vec());
    }
}

fn errors_for<F: Framing>(max: usize, data: &[u8]) -> (Vec<FrameError>, Vec<Vec<u8>>, bool) {
    let errors = Rc::new(RefCell::new(Vec::new()));
    let frames = Rc::new(RefCell::new(Vec::new()));
    let mut p = Strings::new(Recorder::<F> {
        frames: frames.clone(),
        errors: errors.clone(),
        max,
        framing: std::marker::PhantomData,
    });
    let st = StringTransport::new();
    p.data_received(&st.transport(), data);
    let e = errors.borrow().clone();
    let f = frames.borrow().clone();
    (e, f, st.disconnecting())
}

#[test]
fn an_oversized_int32_frame_is_rejected_from_its_header() {
    // Announce 1 GiB: rejected on the 4-byte header, nothing buffered, connection closed.
    let (errors, frames, closed) = errors_for::<Int32>(99_999, &[0x40, 0, 0, 0, b'x']);
    assert_eq!(errors, vec![FrameError::TooLong(1 << 30)]);
    assert!(frames.is_empty());
    assert!(closed);
}

#[test]
fn an_oversized_netstring_is_rejected_from_its_digits() {
    let (errors, _, closed) = errors_for::<Netstring>(99_999, b"1000000");
    assert!(matches!(errors[..], [FrameError::TooLong(_)]), "{errors:?}");
    assert!(closed);
    let (errors, _, _) = errors_for::<Netstring>(100, b"101:");
    assert_eq!(errors, vec![FrameError::TooLong(101)]);
}

#[test]
fn malformed_netstrings_are_rejected() {
    for bad in [&b"abc:"[..], b":", b"3:abcX", b"-1:", b"3 :abc,"] {
        let (errors, frames, closed) = errors_for::<Netstring>(99_999, bad);
        assert!(
            matches!(errors[..], [FrameError::Malformed(_)]),
            "{bad:?} gave {errors:?}"
        );
        assert!(frames.is_empty());
        assert!(closed);
    }
}

#[test]
fn frames_before_a_bad_one_are_delivered_and_nothing_after() {
    let (errors, frames, _) = errors_for::<Netstring>(99_999, b"2:ok,x:bad,2:no,");
    assert_eq!(frames, vec![b"ok".to_vec()]);
    assert_eq!(errors.len(), 1);
}

#[test]
fn int8_cannot_send_more_than_255_bytes() {
    let st = StringTransport::new();
    let err = Int8::encode(&st.transport(), &[0; 256]).unwrap_err();
    assert_eq!(err.limit, 255);
    assert!(st.value().is_empty());
    Int8::encode(&st.transport(), &[7; 255]).unwrap();
    assert_eq!(st.value().len(), 256);
}

#[test]
fn wire_formats_match_twisted() {
    assert_eq!(encode::<Netstring>(&[b"hello".to_vec()]), b"5:hello,");
    assert_eq!(encode::<Netstring>(&[vec![]]), b"0:,");
    assert_eq!(encode::<Int32>(&[b"ab".to_vec()]), b"\0\0\0\x02ab");
    assert_eq!(encode::<Int16>(&[b"ab".to_vec()]), b"\0\x02ab");
    assert_eq!(encode::<Int8>(&[b"ab".to_vec()]), b"\x02ab");
}
