//! The IMAP server over in-memory transports, timed on the test `Clock`: sessions, flags in
//! Maildir names, UIDs kept across connections, IDLE seeing a delivery, the 30-minute
//! autologout, and hostile clients (a 10 GB literal announced both ways, a 1 MB line,
//! garbage, password guessing) with bounded memory.

use std::time::Duration;

use torsion::testing::{Clock, StringTransport};
use torsion::{Factory, Protocol, Transport};
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_mail::command::Address;
use torsion_mail::delivery::{MessageDelivery, Session};
use torsion_mail::imap::{Imap, ImapFactory};
use torsion_mail::imap_store::Folder;
use torsion_mail::{MaildirDomain, SmtpRealm};

use crate::support::TempDir;

struct Wire {
    st: StringTransport,
    t: Transport,
    imap: Imap,
}

impl Wire {
    fn new(factory: &ImapFactory) -> Wire {
        let st = StringTransport::new();
        let t = st.transport();
        let mut imap = factory.build_protocol(&t.get_peer()).unwrap();
        imap.connection_made(&t);
        st.take();
        Wire { st, t, imap }
    }

    fn send(&mut self, data: &[u8]) -> String {
        self.imap.data_received(&self.t, data);
        self.out()
    }

    fn out(&mut self) -> String {
        String::from_utf8_lossy(&self.st.take()).into_owned()
    }
}

fn setup(name: &str, clock: &Clock) -> (TempDir, ImapFactory) {
    let dir = TempDir::new(name);
    let domain = MaildirDomain::new("example.org", dir.path()).unwrap();
    domain.add_user("alice").unwrap();
    let portal = Portal::new(SmtpRealm);
    let users = InMemoryUsernamePasswordDatabaseDontUse::new();
    users.add_user("alice", "secret");
    portal.register_checker(users);
    let factory = ImapFactory::new("imap.example.org", domain)
        .portal(portal)
        .login_without_tls(true)
        .clock(clock.clone());
    (dir, factory)
}

fn deliver(dir: &TempDir, text: &[u8]) {
    let domain = MaildirDomain::new("example.org", dir.path()).unwrap();
    let open = domain
        .validate_to(
            &Session::default(),
            &Address::parse("alice@example.org").unwrap(),
        )
        .unwrap();
    let mut m = open().unwrap();
    m.write(text).unwrap();
    m.finish().unwrap();
}

#[test]
fn flags_live_in_maildir_names_and_uids_survive_reconnecting() {
    let clock = Clock::new();
    let (dir, factory) = setup("imap-flags", &clock);
    deliver(&dir, b"Subject: one\r\n\r\n1\r\n");
    deliver(&dir, b"Subject: two\r\n\r\n2\r\n");
    let mut w = Wire::new(&factory);
    let out = w.send(b"a LOGIN alice secret\r\nb SELECT INBOX\r\n");
    assert!(out.contains("* 2 EXISTS\r\n* 2 RECENT\r\n"), "{out}");
    let validity = out
        .split("[UIDVALIDITY ")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .to_owned();
    let out = w.send(b"c STORE 2 +FLAGS (\\Seen \\Answered \\Flagged)\r\n");
    assert_eq!(
        out,
        "* 2 FETCH (FLAGS (\\Flagged \\Answered \\Seen \\Recent))\r\nc OK STORE completed\r\n"
    );
    let cur: Vec<String> = std::fs::read_dir(dir.path().join("alice/cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(cur.iter().any(|n| n.ends_with(":2,FRS")), "{cur:?}");
    assert!(cur.iter().any(|n| n.ends_with(":2,")), "{cur:?}");
    w.send(b"d LOGOUT\r\n");
    // A new connection: same UIDs and UIDVALIDITY, no longer recent, flags kept.
    let mut w = Wire::new(&factory);
    let out = w.send(b"a LOGIN alice secret\r\nb EXAMINE INBOX\r\nc UID FETCH 1:* (FLAGS)\r\n");
    assert!(out.contains(&format!("[UIDVALIDITY {validity}]")), "{out}");
    assert!(out.contains("* 0 RECENT"), "{out}");
    assert!(out.contains("* 1 FETCH (UID 1 FLAGS ())"), "{out}");
    assert!(
        out.contains("* 2 FETCH (UID 2 FLAGS (\\Flagged \\Answered \\Seen))"),
        "{out}"
    );
    // EXAMINE is read-only: no STORE, and BODY[] does not set \Seen.
    let out =
        w.send(b"d STORE 1 +FLAGS (\\Deleted)\r\ne FETCH 1 BODY[TEXT]\r\nf FETCH 1 FLAGS\r\n");
    assert!(out.contains("d NO [READ-ONLY]"), "{out}");
    assert!(out.contains("* 1 FETCH (BODY[TEXT] {3}\r\n1\r\n)"), "{out}");
    assert!(out.contains("* 1 FETCH (FLAGS ())"), "{out}");
}

#[test]
fn fetch_sections_partials_and_structure_of_a_multipart_message() {
    let clock = Clock::new();
    let (dir, factory) = setup("imap-mime", &clock);
    deliver(
        &dir,
        b"From: a@example.net\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
          Content-Type: multipart/mixed; boundary=XX\r\n\r\npreamble\r\n--XX\r\n\
          Content-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n--XX\r\n\
          Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
          AAEC\r\n--XX--\r\n",
    );
    let mut w = Wire::new(&factory);
    w.send(b"a LOGIN alice secret\r\nb SELECT INBOX\r\n");
    let out = w.send(b"c FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[]<0.4> BODY.PEEK[HEADER.FIELDS (subject)])\r\n");
    assert!(out.contains("BODY[1] {10}\r\nfirst part"), "{out}");
    assert!(
        out.contains("BODY[2.MIME] {77}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"),
        "{out}"
    );
    assert!(out.contains("BODY[]<0> {4}\r\nFrom"), "{out}");
    assert!(
        out.contains("BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: parts\r\n\r\n"),
        "{out}"
    );
    let out = w.send(b"d FETCH 1 BODYSTRUCTURE\r\n");
    assert!(
        out.contains(
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 10 1 NIL NIL NIL NIL)(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 4 NIL NIL NIL NIL) \"MIXED\""
        ),
        "{out}"
    );
    assert!(out.ends_with("d OK FETCH completed\r\n"), "{out}");
}

#[test]
fn idle_reports_a_delivery_on_the_next_poll_and_done_ends_it() {
    let clock = Clock::new();
    let (dir, factory) = setup("imap-idle", &clock);
    let mut w = Wire::new(&factory);
    w.send(b"a LOGIN alice secret\r\nb SELECT INBOX\r\n");
    assert_eq!(w.send(b"c IDLE\r\n"), "+ idling\r\n");
    deliver(&dir, b"Subject: new\r\n\r\nhi\r\n");
    clock.advance(0.5);
    assert_eq!(w.out(), "");
    clock.advance(0.6);
    assert_eq!(w.out(), "* 1 EXISTS\r\n* 1 RECENT\r\n");
    clock.advance(5.0);
    assert_eq!(w.out(), "");
    assert_eq!(w.send(b"DONE\r\n"), "c OK IDLE terminated\r\n");
    // An expunge elsewhere is told at the next NOOP.
    Folder::open(dir.path().join("alice"))
        .map(|mut f| {
            f.set_flags(0, "T").unwrap();
            f.expunge().unwrap()
        })
        .unwrap();
    assert_eq!(
        w.send(b"d NOOP\r\n"),
        "* 1 EXPUNGE\r\n* 0 EXISTS\r\nd OK Done\r\n"
    );
}

#[test]
fn an_idle_client_is_logged_out_after_thirty_minutes() {
    assert_eq!(
        torsion_mail::imap::DEFAULT_TIMEOUT,
        Duration::from_secs(30 * 60)
    );
    let clock = Clock::new();
    let (_dir, factory) = setup("imap-autologout", &clock);
    let mut w = Wire::new(&factory);
    w.send(b"a LOGIN alice secret\r\n");
    clock.advance(29.0 * 60.0);
    w.send(b"b NOOP\r\n");
    clock.advance(29.0 * 60.0);
    assert_eq!(w.out(), "");
    assert!(!w.st.disconnecting());
    clock.advance(61.0);
    assert_eq!(w.out(), "* BYE Autologout; idle for too long\r\n");
    assert!(w.st.disconnecting());
}

#[test]
fn login_is_refused_before_starttls_unless_configured() {
    let clock = Clock::new();
    let (_dir, factory) = setup("imap-logindisabled", &clock);
    let (ctx, _) = crate::support::self_signed();
    let factory = factory.login_without_tls(false).tls(ctx);
    let mut w = Wire::new(&factory);
    let out = w.send(
        b"a CAPABILITY\r\nb LOGIN alice secret\r\nc AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    );
    assert!(out.contains("STARTTLS LOGINDISABLED"), "{out}");
    assert!(!out.contains("AUTH=PLAIN"), "{out}");
    assert!(out.contains("b NO [PRIVACYREQUIRED]"), "{out}");
    assert!(out.contains("c NO [PRIVACYREQUIRED]"), "{out}");
}

#[test]
fn authenticate_plain_with_and_without_an_initial_response() {
    let clock = Clock::new();
    let (_dir, factory) = setup("imap-plain", &clock);
    let mut w = Wire::new(&factory);
    assert_eq!(w.send(b"a AUTHENTICATE PLAIN\r\n"), "+ \r\n");
    let out = w.send(b"AGFsaWNlAHNlY3JldA==\r\n");
    assert!(out.starts_with("a OK [CAPABILITY"), "{out}");
    let mut w = Wire::new(&factory);
    let out = w.send(b"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\nb SELECT INBOX\r\n");
    assert!(out.contains("b OK [READ-WRITE]"), "{out}");
}

#[test]
fn password_guessing_is_slowed_and_cut_off_after_three_failures() {
    let clock = Clock::new();
    let (_dir, factory) = setup("imap-brute", &clock);
    let mut w = Wire::new(&factory);
    // Pipelined guesses: each waits for the one before and its delay.
    let out = w
        .send(b"a LOGIN alice x\r\nb LOGIN alice y\r\nc LOGIN alice z\r\nd LOGIN alice secret\r\n");
    assert_eq!(out, "");
    clock.advance(0.99);
    assert_eq!(w.out(), "");
    clock.advance(0.02);
    assert_eq!(
        w.out(),
        "a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    );
    clock.advance(1.0);
    clock.advance(1.0);
    let out = w.out();
    assert_eq!(
        out,
        "b NO [AUTHENTICATIONFAILED] Authentication failed\r\nc NO [AUTHENTICATIONFAILED] Authentication failed\r\n* BYE Too many failed logins\r\n"
    );
    assert!(w.st.disconnecting());
}

#[test]
fn a_ten_gigabyte_synchronising_literal_is_refused_unread_and_the_session_goes_on() {
    let clock = Clock::new();
    let (_dir, factory) = setup("imap-10g", &clock);
    let mut w = Wire::new(&factory);
    w.send(b"a LOGIN alice secret\r\n");
    let out = w.send(b"b APPEND INBOX {10737418240}\r\n");
    assert_eq!(out, "b NO [TOOBIG] Literal too large\r\n");
    assert!(!w.st.disconnecting());
    let out = w.send(b"c APPEND INBOX {5}\r\n");
    assert_eq!(out, "+ Ready for literal data\r\n");
    let out = w.send(b"hello\r\nd NOOP\r\n");
    assert_eq!(out, "c OK APPEND completed\r\nd OK Done\r\n");
}

#[test]
fn a_ten_gigabyte_non_synchronising_literal_gets_bad_and_the_connection_closes() {
    let clock = Clock::new();
    let (_dir, factory) = setup("imap-10g-plus", &clock);
    let mut w = Wire::new(&factory);
    w.send(b"a LOGIN alice secret\r\n");
    let out = w.send(b"b APPEND INBOX {10737418240+}\r\nxxxxxxxxxxxxxxxx");
    assert_eq!(
        out,
        "b BAD [TOOBIG] Literal too large\r\n* BYE The literal being sent is too large\r\n"
    );
    assert!(w.st.disconnecting());
    // What follows is not read.
    assert_eq!(w.send(&[b'x'; 1 << 16]), "");
}

#[test]
fn a_megabyte_line_is_dropped_as_it_comes_with_bounded_memory() {
    let clock = Clock::new();
    let (_dir, factory) = setup("imap-1mb", &clock);
    let mut w = Wire::new(&factory);
    let mut out = String::new();
    out.push_str(&w.send(b"a LOGIN alice secret\r\nb SEARCH TEXT "));
    for _ in 0..64 {
        out.push_str(&w.send(&[b'x'; 16 << 10]));
        assert!(
            w.imap.buffered() <= (64 << 10) + (16 << 10),
            "{}",
            w.imap.buffered()
        );
    }
    out.push_str(&w.send(b"\r\nc NOOP\r\n"));
    assert!(
        out.contains("* BAD Line too long\r\n") || out.contains("b BAD Line too long\r\n"),
        "{out}"
    );
    assert!(out.ends_with("c OK Done\r\n"), "{out}");
    assert!(!w.st.disconnecting());
}

#[test]
fn garbage_is_answered_bad_and_twenty_bad_commands_close_the_connection() {
    let clock = Clock::new();
    let (_dir, factory) = setup("imap-garbage", &clock);
    let mut w = Wire::new(&factory);
    let out = w.send(b"\x00\xff garbage\r\na FROB\r\nb FETCH\r\nc SELECT INBOX\r\n");
    assert_eq!(
        out,
        "* BAD missing tag\r\na BAD unknown command FROB\r\nb BAD expected a space\r\nc BAD Log in first\r\n"
    );
    let mut out = String::new();
    for i in 0..20 {
        out.push_str(&w.send(format!("t{i} ((((\r\n").as_bytes()));
    }
    assert!(out.ends_with("* BYE Too many bad commands\r\n"), "{out}");
    assert!(w.st.disconnecting());
}

#[test]
fn a_client_that_reads_no_responses_stops_being_answered_and_read() {
    let clock = Clock::new();
    let (dir, factory) = setup("imap-unread", &clock);
    deliver(&dir, &[b'x'; 1000]);
    let mut w = Wire::new(&factory);
    assert!(
        w.st.streaming(),
        "the connection registers as a streaming producer"
    );
    w.send(b"a LOGIN alice secret\r\nb SELECT INBOX\r\n");
    let (high, _) = w.t.write_buffer_limits();
    // The client's unread responses fill the buffer past the high watermark.
    w.st.set_buffered_size(high + 1);
    assert!(w.st.producer_paused());
    let out = w.send(b"c FETCH 1 BODY.PEEK[]\r\nd NOOP\r\n");
    assert_eq!(
        out, "",
        "nothing more is answered while the client reads nothing"
    );
    assert!(w.st.paused(), "reading stopped");
    // It reads: the commands waiting are answered, in order, and reading resumes.
    w.st.set_buffered_size(0);
    let out = w.out();
    assert!(out.starts_with("* 1 FETCH (BODY[] {1000}"), "{out}");
    assert!(
        out.ends_with("c OK FETCH completed\r\nd OK Done\r\n"),
        "{out}"
    );
    assert!(!w.st.paused());
}

#[test]
fn a_folder_unchanged_on_disk_is_not_rescanned_and_any_change_is_seen() {
    let clock = Clock::new();
    let (dir, _factory) = setup("imap-unchanged", &clock);
    let inbox = dir.path().join("alice");
    deliver(&dir, b"Subject: one\r\n\r\n1\r\n");
    let settle = || {
        let old = std::time::SystemTime::now() - Duration::from_secs(10);
        for d in ["cur", "new"] {
            std::fs::File::open(inbox.join(d))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    };
    let folder = Folder::open(inbox.clone()).unwrap();
    // Just scanned, but changed within the last second: not trusted yet.
    assert!(!folder.unchanged());
    settle();
    let mut folder = Folder::open(inbox.clone()).unwrap();
    assert!(folder.unchanged());
    // Our own flag change renames within cur/, as another session's would.
    folder.set_flags(0, "S").unwrap();
    assert!(!folder.unchanged());
    settle();
    let folder = Folder::open(inbox.clone()).unwrap();
    assert!(folder.unchanged());
    deliver(&dir, b"Subject: two\r\n\r\n2\r\n");
    assert!(!folder.unchanged());
}
