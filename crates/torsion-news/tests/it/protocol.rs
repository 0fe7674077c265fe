//! The protocol over in-memory transports: greeting, pipelining, QUIT, the idle time-out on
//! the test Clock, and AUTHINFO through a cred portal.

use std::time::Duration;

use torsion::testing::Clock;
use torsion::Protocol;
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_news::{NewsRealm, NntpFactory};

use crate::support::{codes, test_store, Wire};

fn portal() -> Portal<NewsRealm> {
    let users = InMemoryUsernamePasswordDatabaseDontUse::new();
    users.add_user("alice", "wonderland");
    let portal = Portal::new(NewsRealm);
    portal.register_checker(users);
    portal
}

#[test]
fn pipelined_commands_are_answered_in_order_and_quit_closes() {
    let factory = NntpFactory::new("news.example", test_store());
    let mut w = Wire::new(&factory);
    assert_eq!(
        w.greeting,
        "200 news.example Torsion NNTP service ready, posting allowed\r\n"
    );
    let out = w.send(b"MODE READER\r\nGROUP local.test\r\nGROUP nope\r\nQUIT\r\nDATE\r\n");
    assert_eq!(codes(&out), [200, 211, 411, 205]);
    assert!(w.st.disconnecting());
}

#[test]
fn an_idle_client_is_answered_400_and_dropped() {
    let clock = Clock::new();
    let factory = NntpFactory::new("h", test_store())
        .clock(clock.clone())
        .timeout(Some(Duration::from_secs(60)));
    let mut w = Wire::new(&factory);
    clock.advance(59.0);
    // Any byte restarts the period.
    assert_eq!(w.send(b"DA"), "");
    clock.advance(59.0);
    assert!(!w.st.disconnecting());
    assert_eq!(codes(&w.send(b"TE\r\n")), [111]);
    clock.advance(60.0);
    assert_eq!(w.st.take(), b"400 Idle timeout, closing connection\r\n");
    assert!(w.st.disconnecting());
}

#[test]
fn a_client_stalled_mid_post_is_dropped_and_its_article_discarded() {
    let clock = Clock::new();
    let store = test_store();
    let factory = NntpFactory::new("h", store.clone())
        .clock(clock.clone())
        .timeout(Some(Duration::from_secs(60)));
    let mut w = Wire::new(&factory);
    assert_eq!(
        codes(&w.send(b"POST\r\nFrom: a@b\r\nNewsgroups: local.test\r\nSubject: s\r\n\r\nhalf")),
        [340]
    );
    clock.advance(61.0);
    assert_eq!(w.st.take(), b"400 Idle timeout, closing connection\r\n");
    assert!(w.st.disconnecting());
    w.nntp.connection_lost(torsion::ConnectionEnd::Done);
    assert_eq!(store.group("local.test").unwrap().count, 0);
}

#[test]
fn authinfo_through_a_portal_lets_posting_in() {
    let store = test_store();
    let factory = NntpFactory::new("h", store.clone()).portal(portal());
    let mut w = Wire::new(&factory);
    assert!(w.greeting.starts_with("201 "), "{}", w.greeting);
    assert_eq!(codes(&w.send(b"POST\r\n")), [480]);
    assert_eq!(
        codes(&w.send(b"AUTHINFO USER alice\r\nAUTHINFO PASS nope\r\n")),
        [381, 481]
    );
    assert_eq!(
        codes(
            &w.send(b"AUTHINFO USER alice\r\nAUTHINFO PASS wonderland\r\nMODE READER\r\nPOST\r\n")
        ),
        [381, 281, 200, 340]
    );
    assert_eq!(
        codes(&w.send(b"From: a@b\r\nNewsgroups: local.test\r\nSubject: s\r\n\r\nhi\r\n.\r\n")),
        [240]
    );
    assert_eq!(store.group("local.test").unwrap().count, 1);
}
