//! Fuzzes the NNTP server: any bytes, in two chunks, never panic the command parser, the
//! state machine or the protocol; the core holds at most a line's (or an article's) worth of
//! unread input when no login waits; split and whole input give the same responses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion::testing::StringTransport;
use torsion::{Factory, Protocol};
use torsion_news::server_core::{Config, Event, Limits, ServerCore};
use torsion_news::store::Store;
use torsion_news::wire::parse_command;
use torsion_news::NntpFactory;

const MAX_ARTICLE: usize = 4096;

fn store() -> Store {
    let store = Store::in_memory();
    store.create_group("a.b", "a group", 0).unwrap();
    store.create_group("c", "", 10).unwrap();
    store
        .post(
            b"From: x@y\r\nNewsgroups: a.b\r\nSubject: s\r\nMessage-ID: <1@y>\r\n\r\nbody\r\n.x\r\n",
            &["a.b".into()],
            5,
        )
        .unwrap();
    store
}

/// Runs a core over the chunks, logins failing and succeeding in turn; returns the output.
fn run(chunks: &[&[u8]]) -> Vec<u8> {
    let mut config = Config::new("h");
    config.auth = true;
    config.newnews = true;
    config.limits = Limits {
        max_article_size: MAX_ARTICLE,
        ..Limits::default()
    };
    let mut core = ServerCore::new(config, store());
    core.set_now(1_000_000);
    let mut out = core.take_output();
    let mut logins = 0;
    for chunk in chunks {
        core.receive(chunk);
        loop {
            match core.poll() {
                Some(Event::Auth { .. }) => {
                    logins += 1;
                    if logins % 2 == 0 {
                        core.auth_succeeded("u");
                    } else {
                        let _ = core.auth_failed();
                    }
                }
                Some(Event::Close) => {}
                None => {
                    let full = core.output_full();
                    out.extend_from_slice(&core.take_output());
                    if !full {
                        break;
                    }
                }
            }
        }
        assert!(
            core.awaiting() || core.buffered() <= MAX_ARTICLE.max(512),
            "{} bytes held",
            core.buffered()
        );
        out.extend_from_slice(&core.take_output());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    for line in rest.split(|&b| b == b'\n') {
        let _ = parse_command(line);
    }
    assert_eq!(run(&[rest]), run(&[&rest[..at], &rest[at..]]));
    let factory = NntpFactory::new("h", store());
    let st = StringTransport::new();
    let t = st.transport();
    let mut nntp = factory.build_protocol(&t.get_peer()).unwrap();
    nntp.connection_made(&t);
    nntp.data_received(&t, &rest[..at]);
    nntp.data_received(&t, &rest[at..]);
});
