//! Properties of the authorized_keys parser: hostile lines never panic, and a key survives
//! any comment and any options field before it.

use proptest::prelude::*;
use torsion_conch::keys::{parse_authorized_key_line, parse_authorized_keys};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHz+8WCTTbnMkYyMS3imwOodA4vkaDyUmGRmqDFvUsSt";

proptest! {
    #[test]
    fn any_text_parses_without_panicking(text in ".{0,400}") {
        let parsed = parse_authorized_keys(&text);
        prop_assert!(parsed.keys.len() + parsed.malformed.len() <= text.lines().count());
    }

    #[test]
    fn a_key_with_any_comment_and_options_is_found(
        comment in "[ -~]{0,40}",
        options in proptest::option::of("[a-z-]{1,12}(=\"[ a-z,]{0,20}\")?(,[a-z-]{1,12}){0,3}"),
    ) {
        let line = match &options {
            Some(o) => format!("{o} {KEY} {comment}"),
            None => format!("{KEY} {comment}"),
        };
        let got = parse_authorized_key_line(&line);
        let got = got.expect("not blank").expect("parsed");
        let want = parse_authorized_key_line(KEY).unwrap().unwrap();
        prop_assert_eq!(got.key.key_data(), want.key.key_data());
        prop_assert_eq!(got.options.as_deref(), options.as_deref());
        // Only a key without options lets anyone in.
        let file = parse_authorized_keys(&line);
        prop_assert_eq!(file.contains(&want.key), options.is_none());
    }

    #[test]
    fn a_damaged_key_is_malformed_not_a_panic(cut in 1usize..80) {
        let line = &KEY[..KEY.len() - cut];
        let parsed = parse_authorized_keys(line);
        prop_assert!(parsed.keys.is_empty());
        prop_assert_eq!(parsed.malformed, vec![1]);
    }
}

#[test]
fn comments_and_blank_lines_are_skipped() {
    let text = format!("\n# a comment\n   \n{KEY} one\n#{KEY}\n");
    let parsed = parse_authorized_keys(&text);
    assert_eq!(parsed.keys.len(), 1);
    assert!(parsed.malformed.is_empty());
}
