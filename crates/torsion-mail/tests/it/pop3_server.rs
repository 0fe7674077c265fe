//! The POP3 server: its state machine alone (order of commands, deletions at QUIT only,
//! limits, properties of the dot-stuffing), and the protocol over in-memory transports
//! (login through cred, the maildrop lock, STLS refused in the clear, the idle timeout on
//! the test `Clock`, delayed and limited failed logins, RETR streamed with bounded memory).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proptest::prelude::*;
use torsion::testing::{Clock, StringTransport};
use torsion::transport::{Address, TransportImpl};
use torsion::{Factory, Protocol, Transport};
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_mail::delivery::Message;
use torsion_mail::pop3_core::{DotStuffer, Pop3Core, Pop3Event, Pop3Limits};
use torsion_mail::{Mailbox, MaildirDomain, MaildirRealm, Pop3, Pop3Factory};

use crate::support::TempDir;

fn core() -> Pop3Core {
    let mut c = Pop3Core::new("pop.example.org", Pop3Limits::default());
    c.set_login_allowed_without_tls(true);
    c.take_output();
    c
}

fn logged_in() -> Pop3Core {
    let mut c = core();
    c.receive(b"USER alice\r\nPASS pw\r\n");
    assert!(matches!(c.poll(), Some(Pop3Event::Login { .. })));
    c.login_succeeded(vec![("a".into(), 10), ("b".into(), 20), ("c".into(), 30)]);
    c.take_output();
    c
}

fn say(c: &mut Pop3Core, line: &str) -> (String, Option<Pop3Event>) {
    c.receive(line.as_bytes());
    let e = c.poll();
    (String::from_utf8(c.take_output()).unwrap(), e)
}

#[test]
fn transaction_commands_are_refused_before_login_and_login_commands_after() {
    let mut c = core();
    for cmd in [
        "STAT", "LIST", "UIDL", "RETR 1", "TOP 1 0", "DELE 1", "RSET", "NOOP",
    ] {
        let (out, e) = say(&mut c, &format!("{cmd}\r\n"));
        assert_eq!(out, "-ERR log in first\r\n", "{cmd}");
        assert_eq!(e, None);
    }
    let (out, _) = say(&mut c, "PASS x\r\n");
    assert_eq!(out, "-ERR USER first\r\n");
    let mut c = logged_in();
    let (out, _) = say(&mut c, "USER bob\r\n");
    assert_eq!(out, "-ERR already logged in\r\n");
}

#[test]
fn stat_list_uidl_and_deletions_are_marked_until_quit() {
    let mut c = logged_in();
    assert_eq!(say(&mut c, "STAT\r\n").0, "+OK 3 60\r\n");
    assert_eq!(
        say(&mut c, "LIST\r\n").0,
        "+OK\r\n1 10\r\n2 20\r\n3 30\r\n.\r\n"
    );
    assert_eq!(say(&mut c, "uidl 2\r\n").0, "+OK 2 b\r\n");
    assert_eq!(say(&mut c, "DELE 2\r\n").0, "+OK message 2 deleted\r\n");
    assert_eq!(say(&mut c, "DELE 2\r\n").0, "-ERR message deleted\r\n");
    assert_eq!(say(&mut c, "RETR 2\r\n").0, "-ERR message deleted\r\n");
    assert_eq!(say(&mut c, "STAT\r\n").0, "+OK 2 40\r\n");
    assert_eq!(say(&mut c, "UIDL\r\n").0, "+OK\r\n1 a\r\n3 c\r\n.\r\n");
    assert_eq!(say(&mut c, "RSET\r\n").0, "+OK maildrop has 3 messages\r\n");
    assert_eq!(say(&mut c, "STAT\r\n").0, "+OK 3 60\r\n");
    say(&mut c, "DELE 3\r\n");
    say(&mut c, "DELE 1\r\n");
    let (out, e) = say(&mut c, "QUIT\r\n");
    assert_eq!(out, "");
    assert_eq!(
        e,
        Some(Pop3Event::Update {
            deleted: vec![0, 2]
        })
    );
    c.update_done(true);
    assert_eq!(c.poll(), Some(Pop3Event::Close));
    assert_eq!(
        String::from_utf8(c.take_output()).unwrap(),
        "+OK signing off (1 messages left)\r\n"
    );
}

#[test]
fn message_numbers_out_of_range_or_malformed_are_refused() {
    let mut c = logged_in();
    for arg in ["0", "4", "-1", "x", "99999999999999999999999", "1 2"] {
        let (out, e) = say(&mut c, &format!("RETR {arg}\r\n"));
        assert!(out.starts_with("-ERR"), "RETR {arg}: {out}");
        assert_eq!(e, None);
    }
    assert!(say(&mut c, "TOP 1\r\n").0.starts_with("-ERR"));
    assert!(say(&mut c, "TOP 1 x\r\n").0.starts_with("-ERR"));
    let (out, e) = say(&mut c, "TOP 3 5\r\n");
    assert_eq!(out, "");
    assert_eq!(
        e,
        Some(Pop3Event::Retrieve {
            index: 2,
            lines: Some(5)
        })
    );
}

#[test]
fn retrieve_waits_for_the_message_and_answers_in_order() {
    let mut c = logged_in();
    c.receive(b"RETR 1\r\nNOOP\r\n");
    assert_eq!(
        c.poll(),
        Some(Pop3Event::Retrieve {
            index: 0,
            lines: None
        })
    );
    assert_eq!(c.poll(), None, "NOOP waits for the message");
    c.retrieve_ok();
    assert_eq!(c.take_output(), b"+OK message follows\r\n");
    assert_eq!(c.poll(), None);
    c.retrieve_done();
    assert_eq!(c.poll(), None);
    assert_eq!(c.take_output(), b"+OK\r\n");
}

#[test]
fn capa_lists_user_and_stls_only_when_usable() {
    let mut c = Pop3Core::new("h", Pop3Limits::default());
    c.set_tls_available(true);
    c.take_output();
    let (out, _) = say(&mut c, "CAPA\r\n");
    assert!(
        out.contains("\r\nSTLS\r\n") && !out.contains("USER"),
        "{out}"
    );
    assert!(out.ends_with("\r\n.\r\n") && out.contains("PIPELINING"));
    assert_eq!(
        say(&mut c, "USER a\r\n").0,
        "-ERR [AUTH] log in after STLS\r\n"
    );
    let (out, e) = say(&mut c, "STLS\r\nUSER pipelined\r\n");
    assert_eq!(out, "+OK begin TLS negotiation\r\n");
    assert_eq!(e, Some(Pop3Event::StartTls));
    assert_eq!(c.buffered(), 0, "what was pipelined after STLS is dropped");
    c.tls_started();
    let (out, _) = say(&mut c, "CAPA\r\n");
    assert!(out.contains("USER") && !out.contains("STLS"), "{out}");
    assert_eq!(say(&mut c, "STLS\r\n").0, "-ERR TLS already on\r\n");
}

#[test]
fn apop_is_not_offered() {
    let mut c = core();
    assert!(c.take_output().is_empty());
    let greeting = Pop3Core::new("h", Pop3Limits::default()).take_output();
    assert!(
        !greeting.contains(&b'<'),
        "no APOP timestamp in the greeting"
    );
    let (out, e) = say(&mut c, "APOP alice 0123456789abcdef0123456789abcdef\r\n");
    assert_eq!(out, "-ERR not supported; use USER and PASS\r\n");
    assert_eq!(e, None);
}

#[test]
fn a_one_megabyte_line_is_refused_and_never_held() {
    let mut c = core();
    let big = vec![b'A'; 1 << 20];
    for piece in big.chunks(4096) {
        c.receive(piece);
        assert_eq!(c.poll(), None);
        assert!(c.buffered() <= 255 + 4096);
    }
    c.receive(b"\r\nNOOP\r\nQUIT\r\n");
    assert_eq!(c.poll(), Some(Pop3Event::Close));
    assert_eq!(
        String::from_utf8(c.take_output()).unwrap(),
        "-ERR line too long\r\n-ERR log in first\r\n+OK bye\r\n"
    );
}

#[test]
fn pipelined_garbage_is_cut_off_after_twenty_errors() {
    let mut c = core();
    c.receive(&b"GARBAGE\r\n".repeat(1000));
    assert_eq!(c.poll(), Some(Pop3Event::Close));
    let out = String::from_utf8(c.take_output()).unwrap();
    assert_eq!(out.lines().count(), 20);
    assert!(out.ends_with("-ERR too many errors, closing\r\n"));
    assert!(c.closed() && c.buffered() == 0);
}

#[test]
fn the_third_failed_login_closes() {
    let mut c = core();
    for i in 1..=3 {
        c.receive(b"USER alice\r\nPASS wrong\r\n");
        assert!(matches!(c.poll(), Some(Pop3Event::Login { .. })));
        assert_eq!(c.login_failed(), i == 3);
    }
    assert_eq!(c.poll(), Some(Pop3Event::Close));
}

fn stuffed(message: &[u8], lines: Option<u64>, split: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = DotStuffer::new(lines);
    for piece in message.chunks(split.max(1)) {
        s.feed(piece, &mut out);
    }
    s.finish(&mut out);
    out
}

/// What a client (poplib) does with a multi-line response: lines, unstuffed.
fn unstuff(wire: &[u8]) -> Vec<u8> {
    let text = wire.strip_suffix(b".\r\n").expect("ends with the dot line");
    let mut out = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "{line:?}");
        let line = line.strip_prefix(b".").unwrap_or(line);
        assert!(!line.is_empty());
        out.extend_from_slice(&line[..line.len() - 2]);
        out.push(b'\n');
    }
    out
}

proptest! {
    #[test]
    fn stuffing_round_trips_lf_messages_in_any_pieces(
        lines in proptest::collection::vec("[.a-z\r ]{0,6}", 0..20),
        split in 1usize..40,
    ) {
        let mut message = Vec::new();
        for l in &lines {
            // A stored CR right before LF is part of the line ending, not the text.
            let l = l.trim_end_matches('\r');
            message.extend_from_slice(l.as_bytes());
            message.push(b'\n');
        }
        let wire = stuffed(&message, None, split);
        prop_assert_eq!(&wire, &stuffed(&message, None, usize::MAX));
        // No line but the last is a lone dot; every LF is CRLF.
        let body = &wire[..wire.len() - 3];
        prop_assert!(!body.windows(5).any(|w| w == b"\r\n.\r\n"));
        prop_assert!(!body.starts_with(b".\r\n"));
        prop_assert_eq!(memchr::memchr_iter(b'\n', body).count(), lines.len());
        prop_assert_eq!(unstuff(&wire), message);
    }

    #[test]
    fn the_core_never_panics_and_its_output_stays_small(
        input in proptest::collection::vec(any::<u8>(), 0..4000),
        split in 1usize..300,
    ) {
        let mut c = core();
        for piece in input.chunks(split) {
            c.receive(piece);
            while let Some(e) = c.poll() {
                match e {
                    Pop3Event::Login { .. } => c.login_succeeded(vec![("u".into(), 5)]),
                    Pop3Event::Retrieve { .. } => { c.retrieve_ok(); c.retrieve_done(); }
                    Pop3Event::Update { .. } => c.update_done(true),
                    Pop3Event::StartTls => c.tls_started(),
                    Pop3Event::Close => {}
                }
            }
            prop_assert!(c.buffered() < 255 + split);
            c.take_output();
        }
    }
}

#[test]
fn top_sends_the_headers_the_blank_line_and_n_body_lines() {
    let m = b"A: 1\nB: 2\n\n.one\ntwo\nthree\n";
    assert_eq!(stuffed(m, Some(0), 3), b"A: 1\r\nB: 2\r\n\r\n.\r\n");
    assert_eq!(
        stuffed(m, Some(2), 1),
        b"A: 1\r\nB: 2\r\n\r\n..one\r\ntwo\r\n.\r\n"
    );
    assert_eq!(stuffed(m, Some(99), 5), stuffed(m, None, 5));
}

// --- The protocol, over in-memory transports. ---

struct Pop3Wire {
    st: StringTransport,
    t: Transport,
    pop: Pop3,
}

impl Pop3Wire {
    fn new(factory: &Pop3Factory) -> Pop3Wire {
        let st = StringTransport::new();
        let t = st.transport();
        let mut pop = factory.build_protocol(&t.get_peer()).unwrap();
        pop.connection_made(&t);
        let greeting = String::from_utf8(st.take()).unwrap();
        assert!(greeting.starts_with("+OK pop.example.org"), "{greeting}");
        Pop3Wire { st, t, pop }
    }

    fn send(&mut self, data: &str) -> String {
        self.pop.data_received(&self.t, data.as_bytes());
        String::from_utf8(self.st.take()).unwrap()
    }
}

/// A domain with alice (two messages) and bob, and a POP3 factory over it with
/// in-memory passwords (checked at once) and no failed-login delay.
fn server(dir: &std::path::Path) -> (Pop3Factory, std::path::PathBuf) {
    let domain = MaildirDomain::new("example.org", dir).unwrap();
    let alice = domain.add_user("alice").unwrap();
    domain.add_user("bob").unwrap();
    for body in ["first\n", "second\n.dot\n"] {
        let mut m = alice.deliver().unwrap();
        m.write(format!("Subject: s\n\n{body}").as_bytes()).unwrap();
        Box::new(m).finish().unwrap();
        std::thread::sleep(Duration::from_millis(2)); // distinct, ordered names
    }
    let checker = InMemoryUsernamePasswordDatabaseDontUse::new();
    checker.add_user("alice", "wonderland");
    checker.add_user("bob", "builder");
    let portal = Portal::new(MaildirRealm::new(vec![domain]));
    portal.register_checker(checker);
    let factory = Pop3Factory::new("pop.example.org", portal)
        .login_without_tls(true)
        .auth_failure_delay(Duration::ZERO);
    (factory, dir.join("alice"))
}

fn count(dir: &std::path::Path) -> usize {
    Mailbox::open(&torsion_mail::Maildir::create(dir).unwrap())
        .unwrap()
        .len()
}

#[test]
fn deletions_apply_at_quit_only_and_a_lost_connection_deletes_nothing() {
    let dir = TempDir::new("pop3-dele");
    let (factory, alice) = server(dir.path());
    let mut w = Pop3Wire::new(&factory);
    assert_eq!(
        w.send("USER alice\r\nPASS wonderland\r\n"),
        "+OK send PASS\r\n+OK maildrop has 2 messages (49 octets)\r\n"
    );
    assert_eq!(
        w.send("RETR 2\r\n"),
        "+OK message follows\r\nSubject: s\r\n\r\nsecond\r\n..dot\r\n.\r\n"
    );
    assert_eq!(
        w.send("DELE 1\r\nDELE 2\r\n"),
        "+OK message 1 deleted\r\n+OK message 2 deleted\r\n"
    );
    assert_eq!(count(&alice), 2);
    w.pop.connection_lost(torsion::ConnectionEnd::Aborted);
    assert_eq!(count(&alice), 2, "no QUIT, no deletions");

    let mut w = Pop3Wire::new(&factory);
    w.send("USER alice\r\nPASS wonderland\r\nDELE 1\r\n");
    assert_eq!(count(&alice), 2);
    assert_eq!(w.send("QUIT\r\n"), "+OK signing off (1 messages left)\r\n");
    assert!(w.st.disconnecting());
    assert_eq!(count(&alice), 1);
}

#[test]
fn a_second_session_for_the_same_maildrop_is_refused_in_use() {
    let dir = TempDir::new("pop3-lock");
    let (factory, _) = server(dir.path());
    let mut one = Pop3Wire::new(&factory);
    assert!(one
        .send("USER alice\r\nPASS wonderland\r\n")
        .ends_with("+OK maildrop has 2 messages (49 octets)\r\n"));
    let mut two = Pop3Wire::new(&factory);
    assert_eq!(
        two.send("USER alice\r\nPASS wonderland\r\n"),
        "+OK send PASS\r\n-ERR [IN-USE] maildrop already locked by another session\r\n"
    );
    // Another user is not locked out; and the lock goes with the first session.
    let mut bob = Pop3Wire::new(&factory);
    assert!(bob
        .send("USER bob\r\nPASS builder\r\n")
        .contains("+OK maildrop has 0"));
    one.send("QUIT\r\n");
    one.pop.connection_lost(torsion::ConnectionEnd::Done);
    assert!(two
        .send("USER alice\r\nPASS wonderland\r\n")
        .contains("+OK maildrop has 2"));
}

#[test]
fn failed_logins_are_delayed_and_the_third_closes() {
    let dir = TempDir::new("pop3-brute");
    let (factory, _) = server(dir.path());
    let clock = Clock::new();
    let factory = factory
        .auth_failure_delay(Duration::from_secs(1))
        .clock(clock.clone());
    let mut w = Pop3Wire::new(&factory);
    for i in 1..=3 {
        assert_eq!(w.send("USER alice\r\nPASS guess\r\n"), "+OK send PASS\r\n");
        clock.advance(0.9);
        assert_eq!(
            String::from_utf8(w.st.take()).unwrap(),
            "",
            "not answered before the delay"
        );
        clock.advance(0.2);
        let out = String::from_utf8(w.st.take()).unwrap();
        assert!(out.starts_with("-ERR [AUTH]"), "{out}");
        assert_eq!(w.st.disconnecting(), i == 3);
    }
    // An unknown user is refused the same way.
    let mut w = Pop3Wire::new(&factory);
    w.send("USER mallory\r\nPASS x\r\n");
    clock.advance(1.1);
    assert!(String::from_utf8(w.st.take())
        .unwrap()
        .starts_with("-ERR [AUTH]"));
}

#[test]
fn an_idle_client_is_dropped_after_ten_minutes_without_deletions() {
    let dir = TempDir::new("pop3-idle");
    let (factory, alice) = server(dir.path());
    assert_eq!(
        torsion_mail::pop3::DEFAULT_TIMEOUT,
        Duration::from_secs(600)
    );
    let clock = Clock::new();
    let mut w = Pop3Wire::new(&factory.clock(clock.clone()));
    w.send("USER alice\r\nPASS wonderland\r\nDELE 1\r\n");
    clock.advance(599.0);
    assert!(!w.st.disconnecting());
    w.send("NOOP\r\n");
    clock.advance(599.0);
    assert!(
        !w.st.disconnecting(),
        "the period restarts with each command"
    );
    clock.advance(2.0);
    assert_eq!(
        String::from_utf8(w.st.take()).unwrap(),
        "-ERR idle for too long, closing\r\n"
    );
    assert!(w.st.disconnecting());
    assert_eq!(count(&alice), 2);
}

#[test]
fn stls_is_refused_without_a_certificate_and_user_without_tls_by_default() {
    let dir = TempDir::new("pop3-notls");
    let (factory, _) = server(dir.path());
    let mut w = Pop3Wire::new(&factory.login_without_tls(false));
    assert_eq!(w.send("STLS\r\n"), "-ERR STLS not available\r\n");
    assert_eq!(
        w.send("USER alice\r\n"),
        "-ERR [AUTH] log in after STLS\r\n"
    );
}

/// A transport whose client reads nothing until the test says so: what is written counts
/// as unsent.
struct Unread {
    st: StringTransport,
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

#[test]
fn retr_of_a_large_message_reads_the_file_only_as_the_client_takes_it() {
    let dir = TempDir::new("pop3-big");
    let (factory, alice) = server(dir.path());
    let maildir = torsion_mail::Maildir::create(&alice).unwrap();
    let mut m = maildir.deliver().unwrap();
    let line = format!(".{}\n", "x".repeat(98));
    m.write(b"Subject: big\n\n").unwrap();
    for _ in 0..50_000 {
        m.write(line.as_bytes()).unwrap(); // 5 MB
    }
    Box::new(m).finish().unwrap();
    let st = StringTransport::new();
    let unread = Rc::new(Unread {
        st: st.clone(),
        t: st.transport(),
        unsent: Cell::new(0),
    });
    let t = Transport::new(unread.clone());
    // A slow reader: 100 s between pieces, far past the 600 s idle time-out in all.
    let clock = Clock::new();
    let factory = factory.clock(clock.clone());
    let mut pop = factory.build_protocol(&t.get_peer()).unwrap();
    pop.connection_made(&t);
    let (high, _) = t.write_buffer_limits();
    pop.data_received(&t, b"USER alice\r\nPASS wonderland\r\nRETR 3\r\n");
    unread.st.set_buffered_size(unread.unsent.get());
    let held = st.value().len();
    assert!(
        held <= high + (64 << 10) * 2,
        "{held} bytes written for a client that reads nothing (high watermark {high})"
    );
    assert!(
        st.paused(),
        "the client is not read while its message waits"
    );
    // The client reads: the rest follows, a bounded piece at a time.
    let mut rounds = 0;
    while st.paused() {
        clock.advance(100.0);
        unread.unsent.set(0);
        unread.st.set_buffered_size(0);
        assert!(unread.unsent.get() <= high + (64 << 10) * 2);
        unread.st.set_buffered_size(unread.unsent.get());
        rounds += 1;
        assert!(rounds < 10_000);
    }
    assert!(rounds > 10, "sent in {rounds} rounds");
    assert!(
        !st.disconnecting(),
        "a slow reader of a large message is not idle"
    );
    let out = st.take();
    let body = &out[out
        .windows(16)
        .position(|w| w == b"Subject: big\r\n\r\n")
        .unwrap()..];
    assert_eq!(body.len(), 14 + 2 + 50_000 * 102 + 3);
    assert!(body.starts_with(b"Subject: big\r\n\r\n..xxx"));
    assert!(body.ends_with(b"xx\r\n.\r\n"));
    pop.data_received(&t, b"NOOP\r\n");
    assert_eq!(st.take(), b"+OK\r\n");
}

#[test]
fn a_mailbox_lists_messages_in_delivery_order_by_number_not_by_text() {
    let dir = TempDir::new("mailbox-order");
    let maildir = torsion_mail::Maildir::create(dir.path()).unwrap();
    // Made by hand: "M9" sorts after "M10" as text, before it as a number.
    for (name, sub) in [
        ("1700000000.M10P1Q2.h", "new"),
        ("1700000000.M9P1Q1.h:2,S", "cur"),
        ("999999999.M5P1Q0.h", "new"),
        (".hidden", "new"),
    ] {
        std::fs::write(dir.path().join(sub).join(name), name).unwrap();
    }
    let mailbox = Mailbox::open(&maildir).unwrap();
    let uids: Vec<&str> = mailbox.messages().iter().map(|m| m.uid()).collect();
    assert_eq!(
        uids,
        [
            "999999999.M5P1Q0.h",
            "1700000000.M9P1Q1.h",
            "1700000000.M10P1Q2.h"
        ]
    );
}

/// POP3's listing and IMAP's folder read the same Maildir: a message IMAP moved to `cur/` and
/// renamed for its flags after POP3 listed it is still read and deleted by POP3, and IMAP's
/// next scan no longer finds it.
#[test]
fn a_message_imap_renamed_after_the_listing_is_still_read_and_deleted() {
    use std::io::Read;
    use torsion_mail::imap_store::Folder;
    let dir = TempDir::new("pop3-imap-rename");
    let maildir = torsion_mail::Maildir::create(dir.path()).unwrap();
    for body in ["one", "two"] {
        let mut m = Box::new(maildir.deliver().unwrap());
        m.write(format!("Subject: s\r\n\r\n{body}\r\n").as_bytes())
            .unwrap();
        m.finish().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let listing = Mailbox::open(&maildir).unwrap();
    assert_eq!(listing.len(), 2);
    let mut folder = Folder::open(dir.path().to_owned()).unwrap();
    folder.set_flags(0, "S").unwrap();
    folder.set_flags(1, "F").unwrap();
    let mut text = String::new();
    listing.messages()[0]
        .open()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "Subject: s\n\none\n");
    listing.messages()[1].delete().unwrap();
    let after = Folder::open(dir.path().to_owned()).unwrap();
    assert_eq!(after.messages().len(), 1);
    assert_eq!(after.messages()[0].flags, "S");
    assert_eq!(Mailbox::open(&maildir).unwrap().len(), 1);
}

/// IMAP gives UIDs in the order of delivery, as POP3 lists: a name's microseconds are a number
/// (`M99800` was delivered before `M101900`, though it sorts after it as text). Before, IMAP
/// sorted names as text, so two messages delivered 2 ms apart across such a boundary had their
/// UIDs swapped against POP3's listing.
#[test]
fn imap_uids_and_the_pop3_listing_follow_delivery_order() {
    use torsion_mail::imap_store::Folder;
    let dir = TempDir::new("pop3-imap-order");
    let maildir = torsion_mail::Maildir::create(dir.path()).unwrap();
    let names = [
        "1765000000.M99800P7Q0.host",
        "1765000000.M101900P7Q1.host",
        "1765000001.M5P7Q2.host",
    ];
    // Written in an order that is neither the delivery order nor the names' text order.
    for i in [2, 0, 1] {
        std::fs::write(
            dir.path().join("new").join(names[i]),
            format!("Subject: {i}\r\n\r\n"),
        )
        .unwrap();
    }
    let folder = Folder::open(dir.path().to_owned()).unwrap();
    let by_uid: Vec<&str> = folder.messages().iter().map(|m| m.base.as_str()).collect();
    assert_eq!(by_uid, names);
    let uids: Vec<u32> = folder.messages().iter().map(|m| m.uid).collect();
    assert!(uids.windows(2).all(|w| w[0] < w[1]), "{uids:?}");
    let listing = Mailbox::open(&maildir).unwrap();
    let listed: Vec<&str> = listing
        .messages()
        .iter()
        .map(|m| m.uid().split(':').next().unwrap())
        .collect();
    assert_eq!(listed, names);
}
