//! The protocol over in-memory transports: greeting, pipelining, QUIT, the idle time-out on
//! the test Clock, and AUTHINFO through a cred portal.

use std::time::Duration;

use std::cell::Cell;
use std::rc::Rc;

use torsion::testing::{Clock, StringTransport};
use torsion::transport::{Address, TransportImpl};
use torsion::{Factory, Protocol, Transport};
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

/// A connection whose client reads nothing until told to: a `StringTransport` that also
/// counts what was written and not yet read as its unsent buffer, as a socket's does.
struct Unread {
    t: Transport,
    unsent: Cell<usize>,
}

impl TransportImpl for Unread {
    fn write(&self, data: &[u8]) {
        self.unsent.set(self.unsent.get() + data.len());
        self.t.write(data);
    }
    fn lose_connection(&self) {
        self.t.lose_connection();
    }
    fn abort_connection(&self) {
        self.t.abort_connection();
    }
    fn get_peer(&self) -> Address {
        self.t.get_peer()
    }
    fn get_host(&self) -> Address {
        self.t.get_host()
    }
    fn wrapped(&self) -> Option<&Transport> {
        Some(&self.t)
    }
    fn buffered_size(&self) -> usize {
        self.unsent.get()
    }
}

/// A client that pipelines ARTICLE after ARTICLE (60 kB each) and reads nothing: past the
/// connection's high watermark nothing more is answered and reading stops; once the client
/// reads, answering resumes where it stopped, in order.
#[test]
fn a_client_that_pipelines_and_never_reads_stops_being_read() {
    let store = test_store();
    let body = "x".repeat(1000) + "\n";
    store
        .post(
            &crate::support::article("local.test", "big", &body.repeat(60)),
            &["local.test".into()],
            0,
        )
        .unwrap();
    let st = StringTransport::new();
    let unread = Rc::new(Unread {
        t: st.transport(),
        unsent: Cell::new(0),
    });
    let t = Transport::new(unread.clone());
    let factory = NntpFactory::new("h", store);
    let mut nntp = factory.build_protocol(&t.get_peer()).unwrap();
    nntp.connection_made(&t);
    assert!(
        st.streaming(),
        "the connection registers as a streaming producer"
    );
    let (high, _) = t.write_buffer_limits();
    nntp.data_received(&t, b"GROUP local.test\r\n");
    nntp.data_received(&t, &b"ARTICLE 1\r\n".repeat(2000));
    // The reactor tells the producer about the full buffer (later than the write).
    st.set_buffered_size(unread.unsent.get());
    let written = st.value().len();
    assert!(st.producer_paused());
    assert!(st.paused(), "reading stopped");
    let article_size = 60 * 1001 + 200;
    assert!(
        written <= high + torsion_news::server_core::MAX_OUTPUT + article_size,
        "{written} bytes of answers made for a client that reads nothing"
    );
    // A read in flight when reading paused is held, not answered.
    nntp.data_received(&t, b"DATE\r\n");
    assert_eq!(st.value().len(), written);
    // The client reads everything from now on: every answer comes, in order, DATE's last.
    for _ in 0..100_000 {
        unread.unsent.set(0);
        st.set_buffered_size(0);
        if !st.paused() && unread.unsent.get() == 0 {
            break;
        }
        st.set_buffered_size(unread.unsent.get());
    }
    let all = st.value();
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("\r\n220 1 ").count(), 2000);
    let date = text.rfind("\r\n.\r\n111 ").expect("DATE answered");
    assert!(
        date > text.rfind("\r\n220 1 ").unwrap(),
        "DATE answered last"
    );
    assert!(!st.paused());
}
