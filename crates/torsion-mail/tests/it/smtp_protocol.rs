//! The SMTP protocol over in-memory transports: delivery decisions, AUTH through a cred
//! portal, Maildir delivery and what a lost connection leaves.

use std::time::Duration;

use torsion::ConnectionEnd;
use torsion::Protocol;
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_mail::{MaildirDomain, SmtpFactory, SmtpRealm};

use crate::support::{codes, files_in, Memory, TempDir, Wire};

fn portal() -> Portal<SmtpRealm> {
    let users = InMemoryUsernamePasswordDatabaseDontUse::new();
    users.add_user("alice", "wonderland");
    let portal = Portal::new(SmtpRealm);
    portal.register_checker(users);
    portal
}

#[test]
fn delivery_decides_senders_and_recipients_and_gets_each_recipients_copy() {
    let memory = Memory::default();
    let mut w = Wire::new(&SmtpFactory::new("mx.example.org", memory.clone()));
    assert!(w.greeting.starts_with("220 mx.example.org ESMTP"));
    let r = w.send(
        b"EHLO c\r\nMAIL FROM:<spammer@x.org>\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<nobody@example.org>\r\n\
          RCPT TO:<b@elsewhere.net>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@Example.Org>\r\nDATA\r\n\
          Subject: t\r\n\r\nbody\r\n.\r\n",
    );
    assert_eq!(
        codes(&r),
        [250, 550, 250, 550, 550, 250, 250, 354, 250],
        "{r}"
    );
    let seen = memory.0.borrow();
    assert_eq!(seen.messages.len(), 2);
    assert_eq!(seen.messages[0].0.to_string(), "b@example.org");
    assert_eq!(seen.messages[1].1, b"Subject: t\r\n\r\nbody\r\n");
}

#[test]
fn rset_drops_the_transaction_and_a_lost_connection_discards_the_message() {
    let memory = Memory::default();
    let mut w = Wire::new(&SmtpFactory::new("h", memory.clone()));
    w.send(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nRSET\r\nDATA\r\n");
    assert_eq!(codes(&w.replies()), []);
    let r = w.send(b"MAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nhalf a mess");
    assert_eq!(codes(&r), [250, 250, 354]);
    w.smtp.connection_lost(ConnectionEnd::Done);
    let seen = memory.0.borrow();
    assert!(seen.messages.is_empty());
    assert_eq!(seen.discarded, 1);
}

#[test]
fn auth_plain_and_login_log_in_through_the_portal() {
    let factory = SmtpFactory::new("h", Memory::default())
        .portal(portal())
        .auth_without_tls(true)
        .auth_failure_delay(Duration::ZERO);
    let mut w = Wire::new(&factory);
    let r = w.send(b"EHLO c\r\nAUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n"); // alice / wonderland
    assert!(r.contains("250 AUTH PLAIN LOGIN\r\n"), "{r}");
    assert!(
        r.ends_with("235 2.7.0 Authentication successful\r\n"),
        "{r}"
    );

    let mut w = Wire::new(&factory);
    // LOGIN: alice / looking-glass, then alice / wonderland.
    let r = w.send(b"EHLO c\r\nAUTH LOGIN YWxpY2U=\r\nbG9va2luZy1nbGFzcw==\r\n");
    assert_eq!(codes(&r), [250, 334, 535], "{r}");
    let r = w.send(b"AUTH LOGIN\r\nYWxpY2U=\r\nd29uZGVybGFuZA==\r\n");
    assert_eq!(codes(&r), [334, 334, 235], "{r}");
    // A PLAIN authorization identity naming someone else is refused.
    let mut w = Wire::new(&factory);
    let r = w.send(b"EHLO c\r\nAUTH PLAIN Ym9iAGFsaWNlAHdvbmRlcmxhbmQ=\r\n"); // bob\0alice\0...
    assert_eq!(codes(&r), [250, 535]);
}

#[test]
fn three_failed_logins_close_the_connection() {
    let factory = SmtpFactory::new("h", Memory::default())
        .portal(portal())
        .auth_without_tls(true)
        .auth_failure_delay(Duration::ZERO);
    let mut w = Wire::new(&factory);
    let r = w.send(
        b"EHLO c\r\nAUTH PLAIN AGFsaWNlAHg=\r\nAUTH PLAIN AGFsaWNlAHg=\r\nAUTH PLAIN AGFsaWNlAHg=\r\nNOOP\r\n",
    );
    assert_eq!(codes(&r), [250, 535, 535, 535, 421], "{r}");
    assert!(w.st.disconnecting());
}

#[test]
fn auth_is_not_offered_in_the_clear_by_default() {
    let factory = SmtpFactory::new("h", Memory::default()).portal(portal());
    let mut w = Wire::new(&factory);
    let r = w.send(b"EHLO c\r\nAUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n");
    assert!(!r.contains("AUTH"), "AUTH not advertised: {r}");
    assert!(
        r.ends_with("538 5.7.11 Encryption required for requested authentication mechanism\r\n")
    );
}

#[test]
fn maildir_delivery_is_atomic_and_a_lost_connection_leaves_nothing() {
    let dir = TempDir::new("atomic");
    let domain = MaildirDomain::new("example.org", dir.path()).unwrap();
    domain.add_user("alice").unwrap();
    let factory = SmtpFactory::new("mx.example.org", domain);
    let new = dir.path().join("alice/new");
    let tmp = dir.path().join("alice/tmp");

    let mut w = Wire::new(&factory);
    let r = w.send(
        b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: x\r\n\r\n",
    );
    assert_eq!(codes(&r), [250, 250, 250, 354]);
    assert!(files_in(&new).is_empty(), "nothing in new/ mid-message");
    assert!(
        files_in(&tmp).is_empty(),
        "a small message is kept in memory until it is stored"
    );
    // Past 64 KiB it is written to tmp/ as it arrives.
    let line = [b'x'; 98];
    for _ in 0..700 {
        assert_eq!(w.send(&[&line[..], b"\r\n"].concat()), "");
    }
    assert!(files_in(&new).is_empty(), "nothing in new/ mid-message");
    assert_eq!(
        files_in(&tmp).len(),
        1,
        "a large message is being written in tmp/"
    );
    w.smtp.connection_lost(ConnectionEnd::Done);
    assert!(files_in(&new).is_empty());
    assert!(
        files_in(&tmp).is_empty(),
        "an abandoned message is removed from tmp/"
    );

    let mut w = Wire::new(&factory);
    let r = w.send(
        b"EHLO c\r\nMAIL FROM:<b@x.org>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n\
          Subject: y\r\n\r\n..dotted\r\nline\r\n.\r\n",
    );
    assert_eq!(codes(&r), [250, 250, 250, 550, 354, 250], "{r}");
    let stored = files_in(&new);
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8(stored[0].clone()).unwrap();
    assert!(text.starts_with("Received: from c (string-transport-peer)\n\tby mx.example.org with ESMTP\n\tfor <alice@example.org>; "), "{text}");
    assert!(
        text.ends_with(" +0000\nSubject: y\n\n.dotted\nline\n"),
        "{text}"
    );
    assert!(files_in(&tmp).is_empty());
}

/// A delivery whose messages are stored when the test says: `eom_received` gives a Deferred
/// the test fires, as a delivery storing in another thread or on another machine does.
#[derive(Clone, Default)]
struct Later(std::rc::Rc<std::cell::RefCell<Vec<torsion::defer::Trigger<()>>>>);

struct LaterMessage(Later);

impl torsion_mail::Message for LaterMessage {
    fn write(&mut self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        unreachable!("the server calls eom_received")
    }
    fn eom_received(self: Box<Self>) -> torsion::defer::Deferred<()> {
        let d = torsion::defer::Deferred::new();
        self.0 .0.borrow_mut().push(d.trigger());
        d
    }
}

impl torsion_mail::MessageDelivery for Later {
    fn validate_from(
        &self,
        _: &torsion_mail::Session,
        _: &torsion_mail::ReversePath,
    ) -> Result<(), torsion_mail::Reply> {
        Ok(())
    }
    fn validate_to(
        &self,
        _: &torsion_mail::Session,
        _: &torsion_mail::Address,
    ) -> Result<torsion_mail::MessageFactory, torsion_mail::Reply> {
        let later = self.clone();
        Ok(Box::new(move || {
            Ok(Box::new(LaterMessage(later)) as Box<dyn torsion_mail::Message>)
        }))
    }
}

#[test]
fn the_end_of_data_is_answered_once_every_copy_is_stored_and_commands_wait_for_it() {
    let later = Later::default();
    let mut w = Wire::new(&SmtpFactory::new("h", later.clone()));
    // Two recipients, and the next transaction pipelined behind the body's end.
    let r = w.send(
        b"EHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nRCPT TO:<c@x.org>\r\nDATA\r\n\
          hi\r\n.\r\nMAIL FROM:<d@x.org>\r\nNOOP\r\n",
    );
    assert_eq!(codes(&r), [250, 250, 250, 250, 354], "{r}");
    let stores: Vec<_> = later.0.borrow_mut().drain(..).collect();
    assert_eq!(stores.len(), 2);
    let mut stores = stores.into_iter();
    stores.next().unwrap().callback(());
    assert_eq!(codes(&w.replies()), [], "one copy is not stored yet");
    stores.next().unwrap().callback(());
    let r = w.replies();
    assert_eq!(codes(&r), [250, 250, 250], "{r}");
    assert!(r.starts_with("250 2.0.0 Message accepted"), "{r}");

    // A copy that cannot be stored: 451, and the session goes on.
    let r = w.send(b"RCPT TO:<b@x.org>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\n");
    assert_eq!(codes(&r), [250, 354], "{r}");
    let store = later.0.borrow_mut().pop().unwrap();
    store.errback(torsion::Failure::new(std::io::Error::other("disk full")));
    let r = w.replies();
    assert_eq!(codes(&r), [451, 250], "{r}");
}

#[test]
fn a_plain_folder_under_the_domain_becomes_a_users_maildir() {
    let dir = TempDir::new("plain-folder");
    std::fs::create_dir_all(dir.path().join("carol")).unwrap();
    let domain = MaildirDomain::new("example.org", dir.path()).unwrap();
    assert_eq!(domain.users(), ["carol"]);
    for sub in ["tmp", "new", "cur"] {
        assert!(dir.path().join("carol").join(sub).is_dir(), "{sub}");
    }
    let mut w = Wire::new(&SmtpFactory::new("h", domain));
    let r = w.send(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\nhi\r\n.\r\n");
    assert_eq!(codes(&r), [250, 250, 250, 354, 250], "{r}");
    assert_eq!(files_in(&dir.path().join("carol/new")).len(), 1);
}
