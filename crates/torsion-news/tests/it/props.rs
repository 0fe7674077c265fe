//! Properties: the parser never panics and the core answers the same however the input is
//! split; dot-stuffing survives a round trip through POST and ARTICLE.

use proptest::prelude::*;
use torsion_news::wire::{dot_stuff, parse_command, wildmat};
use torsion_news::Config;

use crate::support::{core_with, talk, test_store};

proptest! {
    #[test]
    fn parsing_any_line_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_command(&line);
    }

    #[test]
    fn wildmat_never_panics(p in "[*?!,a-c.]{0,20}", n in "[a-c.]{0,20}") {
        let _ = wildmat(&p, &n);
        prop_assert!(wildmat("*", &n));
    }

    #[test]
    fn split_and_whole_input_give_the_same_answers(
        cmds in proptest::collection::vec(
            prop_oneof![
                Just("GROUP local.test"), Just("ARTICLE 1"), Just("NEXT"), Just("LAST"),
                Just("POST"), Just("From: a@b"), Just("Newsgroups: local.test"), Just("Subject: s"),
                Just(""), Just(".body"), Just("."), Just("OVER 1-"), Just("LIST"), Just("XHDR subject 1-"),
                Just("FROB"), Just("STAT"),
            ],
            0..40,
        ),
        cut in any::<prop::sample::Index>(),
    ) {
        let input: Vec<u8> = cmds.iter().flat_map(|c| format!("{c}\r\n").into_bytes()).collect();
        let at = cut.index(input.len() + 1);
        let mut whole = core_with(Config::new("h"), test_store());
        let a = talk(&mut whole, &input);
        let mut split = core_with(Config::new("h"), test_store());
        let mut b = talk(&mut split, &input[..at]);
        b.push_str(&talk(&mut split, &input[at..]));
        prop_assert_eq!(a, b);
    }

    #[test]
    fn bodies_come_back_as_posted(body in proptest::collection::vec("[.a-z ]{0,12}", 0..12)) {
        let body: String = body.iter().map(|l| format!("{l}\r\n")).collect();
        let mut core = core_with(Config::new("h"), test_store());
        let mut post = b"POST\r\nFrom: a@b\r\nNewsgroups: local.test\r\nSubject: s\r\n\r\n".to_vec();
        let stuffed = dot_stuff(body.as_bytes());
        post.extend_from_slice(&stuffed);
        let out = talk(&mut core, &post);
        prop_assert!(out.ends_with("240 Article received OK\r\n"), "{}", out);
        let out = talk(&mut core, b"GROUP local.test\r\nBODY 1\r\n");
        prop_assert!(out.contains("222 1 "));
        let block = &out[out.find("\r\n222 ").unwrap() + 2..];
        let block = &block[block.find("\r\n").unwrap() + 2..];
        prop_assert_eq!(block.as_bytes(), stuffed.as_slice());
    }
}
