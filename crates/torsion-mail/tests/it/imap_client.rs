//! The Torsion IMAP client against the Torsion IMAP server over TCP: login, select, search,
//! fetch, store, expunge, logout, each a Deferred awaited in turn; and a refused login
//! failing its Deferred with the server's `NO`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use torsion::defer::ensure_deferred;
use torsion::{factory, reactor, Failure, Reactor};
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_mail::imap::ImapFactory;
use torsion_mail::imap_client::{ImapClient, ImapError, Value};
use torsion_mail::imap_store::Folder;
use torsion_mail::{MaildirDomain, SmtpRealm};

use crate::support::TempDir;

#[test]
fn the_client_drives_the_server_through_the_common_commands() {
    let dir = TempDir::new("imap-client");
    let domain = MaildirDomain::new("example.org", dir.path()).unwrap();
    let alice = domain.add_user("alice").unwrap();
    Folder::append(
        alice.path(),
        b"From: Bob <bob@example.net>\r\nSubject: first\r\n\r\nOne.\r\n",
        "",
        None,
    )
    .unwrap();
    Folder::append(alice.path(), b"Subject: second\r\n\r\nTwo.\r\n", "S", None).unwrap();
    let portal = Portal::new(SmtpRealm);
    let users = InMemoryUsernamePasswordDatabaseDontUse::new();
    users.add_user("alice", "pass word");
    portal.register_checker(users);
    let server = ImapFactory::new("imap.example.org", domain)
        .portal(portal)
        .login_without_tls(true)
        .auth_failure_delay(Duration::ZERO);

    let r = Reactor::new();
    let port = r.listen_tcp_on(0, server, "127.0.0.1").unwrap();
    let number = port.get_host().port().unwrap();
    let seen = Rc::new(RefCell::new(Vec::<String>::new()));
    let s = seen.clone();
    r.call_when_running(move || {
        let client = ImapClient::new();
        let c = client.clone();
        drop(reactor().connect_tcp("127.0.0.1", number, factory(move || c.clone())));
        drop(
            ensure_deferred(async move {
                let refused = client.login("alice", "wrong").await;
                let f = refused.expect_err("a wrong password was taken");
                let e = f.downcast_ref::<ImapError>().expect("an ImapError").clone();
                s.borrow_mut()
                    .push(format!("refused {} {}", e.status, e.text));
                client.login("alice", "pass word").await?;
                let info = client.select("INBOX").await?;
                s.borrow_mut().push(format!(
                    "exists {} recent {} validity {} next {:?}",
                    info.exists,
                    info.recent,
                    info.uid_validity.is_some(),
                    info.uid_next
                ));
                let unseen = client.search("UNSEEN").await?;
                s.borrow_mut().push(format!("unseen {unseen:?}"));
                let got = client
                    .fetch(
                        "1:2",
                        "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY[TEXT])",
                    )
                    .await?;
                for m in &got {
                    s.borrow_mut().push(format!(
                        "{} uid {:?} flags {:?} subject {:?} text {:?}",
                        m.seq,
                        m.uid(),
                        m.flags().unwrap_or_default(),
                        String::from_utf8_lossy(
                            m.bytes("BODY[HEADER.FIELDS (SUBJECT)]").unwrap_or_default()
                        ),
                        String::from_utf8_lossy(m.bytes("BODY[TEXT]").unwrap_or_default()),
                    ));
                }
                let env = client.fetch("1", "ENVELOPE").await?;
                if let Some(Value::List(e)) = env[0].get("ENVELOPE") {
                    s.borrow_mut().push(format!("envelope subject {:?}", e[1]));
                }
                let stored = client.store("2", "+FLAGS", &["\\Deleted"]).await?;
                s.borrow_mut()
                    .push(format!("stored {:?}", stored[0].flags()));
                let gone = client.expunge().await?;
                s.borrow_mut().push(format!("expunged {gone:?}"));
                let uids = client.uid_search("ALL").await?;
                s.borrow_mut().push(format!("uids {uids:?}"));
                client.logout().await?;
                Ok::<(), Failure>(())
            })
            .add_both(|r| {
                if let Err(f) = &r {
                    eprintln!("client failed: {f}");
                }
                drop(reactor().stop());
                r
            }),
        );
    });
    let guard = r.clone();
    r.call_later(60.0, move || drop(guard.stop()));
    r.run().unwrap();
    drop(port);
    let seen = seen.borrow().clone();
    assert_eq!(
        seen,
        [
            "refused NO [AUTHENTICATIONFAILED] Authentication failed",
            "exists 2 recent 0 validity true next Some(3)",
            "unseen [1]",
            "1 uid Some(1) flags [\"\\\\Seen\"] subject \"Subject: first\\r\\n\\r\\n\" text \"One.\\r\\n\"",
            "2 uid Some(2) flags [\"\\\\Seen\"] subject \"Subject: second\\r\\n\\r\\n\" text \"Two.\\r\\n\"",
            "envelope subject Str([102, 105, 114, 115, 116])",
            "stored Some([\"\\\\Seen\", \"\\\\Deleted\"])",
            "expunged [2]",
            "uids [1]",
        ]
    );
}
