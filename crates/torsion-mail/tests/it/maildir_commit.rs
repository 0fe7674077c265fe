//! Maildir's group commit over real TCP: many senders at once are all answered 250 with
//! every message in `new/`, and a message whose file cannot be stored is answered 451
//! without failing the others committed with it.

use std::os::unix::fs::PermissionsExt;

use torsion::defer::DeferredList;
use torsion::Failure;
use torsion_mail::smtp_client::{send_mail, SendOptions, Sent, SmtpClientError};
use torsion_mail::{MaildirDomain, SmtpFactory};

use crate::pop3_client::run;
use crate::support::{files_in, TempDir};

/// Sends `count` messages at once, each on its own connection, the even ones to alice and
/// the odd ones to bob; their outcomes in order.
fn send_at_once(factory: SmtpFactory, count: usize) -> Vec<Result<Sent, Failure>> {
    run(factory, move |port| async move {
        let sends = (0..count)
            .map(|i| {
                let to = if i % 2 == 0 { "alice" } else { "bob" };
                send_mail(
                    "127.0.0.1",
                    port,
                    "sender@example.net",
                    &[&format!("{to}@example.org")],
                    format!("Subject: {i}\n\nmessage {i}\n").into_bytes(),
                    SendOptions {
                        timeout: 30.0,
                        ..SendOptions::new("client.example")
                    },
                )
            })
            .collect();
        DeferredList::builder(sends)
            .consume_errors(true)
            .build()
            .await
    })
    .unwrap()
}

/// The messages (`message N`) found in a Maildir's `new/`, sorted.
fn bodies_in(dir: &std::path::Path) -> Vec<usize> {
    let mut found: Vec<usize> = files_in(dir)
        .iter()
        .map(|m| {
            let text = String::from_utf8(m.clone()).unwrap();
            let line = text.lines().last().unwrap().to_owned();
            line.strip_prefix("message ").unwrap().parse().unwrap()
        })
        .collect();
    found.sort();
    found
}

#[test]
fn many_senders_at_once_are_all_answered_250_with_every_message_in_new() {
    let dir = TempDir::new("group-commit");
    let domain = MaildirDomain::new("example.org", dir.path()).unwrap();
    domain.add_user("alice").unwrap();
    domain.add_user("bob").unwrap();
    let outcomes = send_at_once(SmtpFactory::new("mx.example.org", domain), 40);
    for (i, outcome) in outcomes.iter().enumerate() {
        let sent = outcome
            .as_ref()
            .unwrap_or_else(|f| panic!("message {i}: {f}"));
        assert_eq!(sent.reply.0, 250, "message {i}: {:?}", sent.reply);
    }
    let even: Vec<usize> = (0..40).step_by(2).collect();
    let odd: Vec<usize> = (1..40).step_by(2).collect();
    assert_eq!(bodies_in(&dir.path().join("alice/new")), even);
    assert_eq!(bodies_in(&dir.path().join("bob/new")), odd);
    assert!(files_in(&dir.path().join("alice/tmp")).is_empty());
    assert!(files_in(&dir.path().join("bob/tmp")).is_empty());
}

#[test]
fn a_message_that_cannot_be_stored_is_answered_451_and_the_others_250() {
    let dir = TempDir::new("group-commit-fail");
    let domain = MaildirDomain::new("example.org", dir.path()).unwrap();
    domain.add_user("alice").unwrap();
    domain.add_user("bob").unwrap();
    // bob's new/ cannot take the rename: read-only, or (for root, whom permissions do not
    // stop) not a folder at all.
    let new = dir.path().join("bob/new");
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(new.join("probe"), b"").is_ok() {
        std::fs::remove_file(new.join("probe")).unwrap();
        std::fs::remove_dir(&new).unwrap();
        std::fs::write(&new, b"not a folder").unwrap();
    }
    let outcomes = send_at_once(SmtpFactory::new("mx.example.org", domain), 20);
    for (i, outcome) in outcomes.iter().enumerate() {
        if i % 2 == 0 {
            let sent = outcome
                .as_ref()
                .unwrap_or_else(|f| panic!("message {i}: {f}"));
            assert_eq!(sent.reply.0, 250, "message {i}");
        } else {
            let f = outcome.as_ref().expect_err("bob's message refused");
            match f.downcast_ref::<SmtpClientError>() {
                Some(SmtpClientError::Refused(cmd, 451, _)) if cmd == "DATA" => {}
                other => panic!("message {i}: {other:?}"),
            }
        }
    }
    let even: Vec<usize> = (0..20).step_by(2).collect();
    assert_eq!(bodies_in(&dir.path().join("alice/new")), even);
    // Nothing half-stored is left behind for bob.
    assert!(files_in(&dir.path().join("bob/tmp")).is_empty());
    if new.is_dir() {
        std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(files_in(&new).is_empty());
    }
}
