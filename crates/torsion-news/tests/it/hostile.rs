//! Hostile clients: a 1 MB line, a POST over the size limit, garbage, and too many errors.
//! (The stalled client is in `protocol.rs`: the idle time-out.) Memory stays bounded: the
//! core never holds more than a line's worth of unread input.

use torsion_news::{Config, Limits};

use crate::support::{codes, core_with, talk, test_store};

#[test]
fn a_one_megabyte_line_is_dropped_as_it_arrives_and_answered_501() {
    let mut core = core_with(Config::new("h"), test_store());
    let chunk = vec![b'A'; 64 << 10];
    for _ in 0..16 {
        core.receive(&chunk);
        assert_eq!(core.poll(), None);
        assert!(
            core.buffered() <= 512 + (64 << 10),
            "{} held",
            core.buffered()
        );
    }
    assert_eq!(
        talk(&mut core, b"AAAA\r\nDATE\r\n"),
        "501 Line too long\r\n111 19700112134640\r\n"
    );
}

#[test]
fn a_post_over_the_limit_is_refused_and_not_held() {
    let mut config = Config::new("h");
    config.limits = Limits {
        max_article_size: 4096,
        ..Limits::default()
    };
    let store = test_store();
    let mut core = core_with(config, store.clone());
    assert_eq!(
        codes(&talk(
            &mut core,
            b"POST\r\nFrom: a@b\r\nNewsgroups: local.test\r\nSubject: big\r\n\r\n"
        )),
        [340]
    );
    let line = [b'x'; 79]
        .iter()
        .chain(b"\r\n")
        .copied()
        .collect::<Vec<u8>>();
    for _ in 0..1000 {
        core.receive(&line);
        assert_eq!(core.poll(), None);
        assert!(core.buffered() < 100);
    }
    // One line longer than the whole limit, without a line end yet.
    core.receive(&vec![b'y'; 10_000]);
    assert_eq!(core.poll(), None);
    assert_eq!(core.buffered(), 0);
    assert_eq!(
        talk(&mut core, b"y\r\n.\r\nDATE\r\n"),
        "441 Article too large (at most 4096 bytes)\r\n111 19700112134640\r\n"
    );
    assert_eq!(store.group("local.test").unwrap().count, 0);
}

#[test]
fn garbage_is_answered_and_the_twentieth_error_closes() {
    let mut core = core_with(Config::new("h"), test_store());
    let out = talk(&mut core, b"\x00\xff\xfe garbage\r\n\x1b[2J\r\n");
    assert_eq!(codes(&out), [501, 500]);
    let out = talk(&mut core, &b"NOPE\r\n".repeat(30));
    // 18 more refusals make 20; the twentieth is followed by 400.
    assert_eq!(codes(&out).len(), 19);
    assert!(out.ends_with("500 Unknown command\r\n400 Too many errors, closing connection\r\n"));
    assert!(core.closed());
    assert_eq!(talk(&mut core, b"DATE\r\n"), "");
}
