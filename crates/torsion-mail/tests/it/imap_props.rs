//! Properties of the IMAP command layer: the framer gives the same frames however the bytes
//! are split and holds at most a line (plus the literals of the command in hand); the
//! parser never panics; strings written by the response writer read back as they were;
//! sequence sets mean what they say.

use proptest::prelude::*;
use torsion_mail::imap_parse::{
    parse_command, quoted_or_literal, CommandKind, Frame, Framer, Limits, SeqNum, SeqSet,
};

fn small() -> Limits {
    Limits {
        max_line: 64,
        max_literal: 32,
        max_command: 200,
    }
}

fn frames(chunks: &[&[u8]]) -> (Vec<Frame>, usize) {
    let mut f = Framer::new(small());
    let mut out = Vec::new();
    let mut most = 0;
    for c in chunks {
        f.push(c);
        while let Some(frame) = f.next() {
            out.push(frame);
        }
        most = most.max(f.buffered());
    }
    (out, most)
}

fn pieces() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            Just(b"a LOGIN {5}\r\n".to_vec()),
            Just(b"b APPEND INBOX {3+}\r\n".to_vec()),
            Just(b"c APPEND INBOX {99999999999}\r\n".to_vec()),
            Just(b"d APPEND INBOX {40+}\r\n".to_vec()),
            Just(b"x\r\n".to_vec()),
            Just(b"e FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.10>)\r\n".to_vec()),
            Just(vec![b'y'; 70]),
        ],
        0..12,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn framing_does_not_depend_on_how_the_bytes_are_split(data in pieces(), at in any::<prop::sample::Index>()) {
        let at = at.index(data.len() + 1);
        let (whole, _) = frames(&[&data]);
        let (split, _) = frames(&[&data[..at], &data[at..]]);
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn the_framer_holds_at_most_a_command(data in pieces()) {
        let bytes: Vec<&[u8]> = data.chunks(7).collect();
        let (_, most) = frames(&bytes);
        // A command: at most max_command bytes, and a chunk may arrive on top.
        prop_assert!(most <= 200 + 7, "{} bytes held", most);
    }

    #[test]
    fn the_parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_command(&line);
    }

    #[test]
    fn written_strings_read_back_as_they_were(s in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut cmd = b"a LOGIN alice ".to_vec();
        cmd.extend(quoted_or_literal(&s));
        cmd.extend_from_slice(b"\r\n");
        let mut f = Framer::new(Limits::default());
        f.push(&cmd);
        let mut found = None;
        while let Some(frame) = f.next() {
            if let Frame::Command(c) = frame {
                found = Some(c);
            }
        }
        let parsed = parse_command(&found.expect("a command")).unwrap();
        prop_assert_eq!(parsed.kind, CommandKind::Login { user: "alice".into(), password: s });
    }

    #[test]
    fn sequence_sets_contain_what_their_ranges_cover(
        ranges in proptest::collection::vec((1u32..50, 1u32..50), 1..5),
        star in 1u32..60,
        n in 1u32..60,
    ) {
        let text = ranges.iter().map(|(a, b)| format!("{a}:{b}")).collect::<Vec<_>>().join(",");
        let cmd = parse_command(format!("t FETCH {text} FLAGS").as_bytes()).unwrap();
        let CommandKind::Fetch { set, .. } = cmd.kind else { panic!() };
        prop_assert_eq!(&set, &SeqSet(ranges.iter().map(|&(a, b)| (SeqNum::Num(a), SeqNum::Num(b))).collect()));
        let want = ranges.iter().any(|&(a, b)| a.min(b) <= n && n <= a.max(b));
        prop_assert_eq!(set.contains(n, star), want);
    }
}
