//! Fuzzes the IMAP server: any bytes, in two chunks, never panic the framer, the command
//! parser or the protocol (logged in, with a mailbox of two messages selected); the framer
//! gives the same frames however the bytes are split and holds at most a command.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use torsion::testing::StringTransport;
use torsion::{ConnectionEnd, Factory, Protocol};
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_mail::imap::ImapFactory;
use torsion_mail::imap_parse::{parse_command, Frame, Framer, Limits};
use torsion_mail::imap_store::Folder;
use torsion_mail::SmtpRealm;

fn limits() -> Limits {
    Limits {
        max_line: 256,
        max_literal: 1024,
        max_command: 4096,
    }
}

fn frames(chunks: &[&[u8]]) -> Vec<Frame> {
    let mut f = Framer::new(limits());
    let mut out = Vec::new();
    for c in chunks {
        f.push(c);
        while let Some(frame) = f.next() {
            if let Frame::Command(bytes) = &frame {
                let _ = parse_command(bytes);
            }
            out.push(frame);
        }
        assert!(f.buffered() <= 4096 + c.len(), "{} bytes held", f.buffered());
    }
    out
}

/// A Maildir made once per process: alice's, with two messages.
fn maildir() -> &'static std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("imap-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let alice = dir.join("alice");
        for m in [
            &b"From: a@example.net\r\nSubject: one\r\n\r\nbody\r\n"[..],
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
        ] {
            Folder::append(&alice, m, "", None).unwrap();
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    assert_eq!(frames(&[rest]), frames(&[&rest[..at], &rest[at..]]));

    // The protocol, logged in with INBOX selected (mutations are kept to the session: the
    // input cannot name another user's files, and folders it makes stay under the scratch
    // folder).
    let root = maildir().clone();
    let portal = Portal::new(SmtpRealm);
    let users = InMemoryUsernamePasswordDatabaseDontUse::new();
    users.add_user("alice", "pw");
    portal.register_checker(users);
    let factory = ImapFactory::with_mailboxes("h", move |u: &str| {
        (u == "alice").then(|| root.join("alice"))
    })
    .portal(portal)
    .login_without_tls(true)
    .auth_failure_delay(std::time::Duration::ZERO)
    // No timers left behind by a run (nothing fires them here).
    .timeout(None)
    .limits(limits());
    let st = StringTransport::new();
    let t = st.transport();
    let mut imap = factory.build_protocol(&t.get_peer()).unwrap();
    imap.connection_made(&t);
    imap.data_received(&t, b"a LOGIN alice pw\r\nb SELECT INBOX\r\n");
    imap.data_received(&t, &rest[..at]);
    imap.data_received(&t, &rest[at..]);
    assert!(imap.buffered() <= 4096 + rest.len().min(4096 + 256));
    // Ends the session: an IDLE's poll timer is cancelled.
    imap.connection_lost(ConnectionEnd::Done);
});
