//! Fuzzes the POP3 server: any bytes, in two chunks, never panic the state machine, the
//! dot-stuffing or the protocol; the core holds at most a line's worth of unread input when
//! nothing waits for an answer; split and whole input give the same replies; the stuffed
//! form of any input has no lone `.` line before its end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion::testing::StringTransport;
use torsion::{Factory, Protocol};
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_mail::pop3_core::{DotStuffer, Pop3Core, Pop3Event, Pop3Limits};
use torsion_mail::{MaildirDomain, MaildirRealm, Pop3Factory};

/// Runs the core over the chunks, every other login failing; returns the replies.
fn run(chunks: &[&[u8]]) -> Vec<u8> {
    let mut c = Pop3Core::new("h", Pop3Limits::default());
    c.set_tls_available(true);
    c.set_login_allowed_without_tls(true);
    let mut out = Vec::new();
    let mut logins = 0;
    for chunk in chunks {
        c.receive(chunk);
        while let Some(e) = c.poll() {
            match e {
                Pop3Event::Login { .. } => {
                    logins += 1;
                    if logins % 2 == 0 {
                        c.login_succeeded(vec![("a".into(), 10), ("b".into(), 20)]);
                    } else {
                        c.login_failed();
                    }
                }
                Pop3Event::Retrieve { .. } => {
                    c.retrieve_ok();
                    c.retrieve_done();
                }
                Pop3Event::Update { .. } => c.update_done(true),
                Pop3Event::StartTls => c.tls_started(),
                Pop3Event::Close => {}
            }
        }
        assert!(c.buffered() < 255, "{} bytes held", c.buffered());
        out.extend_from_slice(&c.take_output());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let whole = run(&[rest]);
    // STLS drops what was sent after it in the same read, so the split changes the outcome
    // after one; otherwise, split and whole agree.
    if !rest.windows(4).any(|w| w.eq_ignore_ascii_case(b"STLS")) {
        assert_eq!(whole, run(&[&rest[..at], &rest[at..]]));
    }
    let mut stuffed = Vec::new();
    let mut s = DotStuffer::new(None);
    s.feed(&rest[..at], &mut stuffed);
    s.feed(&rest[at..], &mut stuffed);
    s.finish(&mut stuffed);
    let body = &stuffed[..stuffed.len() - 3];
    assert!(!body.windows(5).any(|w| w == b"\r\n.\r\n") && !body.starts_with(b".\r\n"));

    let root = std::env::temp_dir().join(format!("pop3-fuzz-{}", std::process::id()));
    let domain = MaildirDomain::new("example.org", &root).unwrap();
    domain.add_user("u").unwrap();
    let checker = InMemoryUsernamePasswordDatabaseDontUse::new();
    checker.add_user("u", "p");
    let portal = Portal::new(MaildirRealm::new(vec![domain]));
    portal.register_checker(checker);
    let factory = Pop3Factory::new("h", portal)
        .login_without_tls(true)
        .auth_failure_delay(std::time::Duration::ZERO);
    let st = StringTransport::new();
    let t = st.transport();
    let mut pop = factory.build_protocol(&t.get_peer()).unwrap();
    pop.connection_made(&t);
    pop.data_received(&t, &rest[..at]);
    pop.data_received(&t, &rest[at..]);
});
