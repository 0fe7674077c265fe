//! Torsion's NNTP client against Torsion's server over TCP: greeting, LIST, GROUP, POST, OVER,
//! ARTICLE/HEAD/BODY, a refusal as an `NntpError`, AUTHINFO, QUIT; and commands given
//! before the connection is made wait for the greeting.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::ensure_deferred;
use torsion::endpoints::{client_from_string, connect_protocol};
use torsion::{Failure, Reactor};
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_news::{NewsRealm, NntpClient, NntpError, NntpFactory};

use crate::support::test_store;

/// Runs `script` with a client connected to a server made by `factory`; returns its result.
fn run<T: 'static, F>(factory: NntpFactory, script: impl FnOnce(NntpClient) -> F + 'static) -> T
where
    F: std::future::Future<Output = Result<T, Failure>> + 'static,
{
    let r = Reactor::new();
    let port = r.listen_tcp_on(0, factory, "127.0.0.1").unwrap();
    let number = port.get_host().port().unwrap();
    let out: Rc<RefCell<Option<Result<T, Failure>>>> = Rc::default();
    let o = out.clone();
    let r2 = r.clone();
    r.call_when_running(move || {
        let endpoint = client_from_string(&r2, &format!("tcp:127.0.0.1:{number}")).unwrap();
        let client = NntpClient::new();
        // The script's first commands are queued before the connection exists.
        let script = script(client.clone());
        drop(connect_protocol(&endpoint, client));
        drop(ensure_deferred(script).add_both(move |res| {
            *o.borrow_mut() = Some(res);
            drop(torsion::reactor().stop());
            Ok::<(), Failure>(())
        }));
    });
    let guard = r.clone();
    r.call_later(60.0, move || drop(guard.stop()));
    r.run().unwrap();
    drop(port);
    let res = out
        .borrow_mut()
        .take()
        .expect("the script finished in time");
    res.unwrap()
}

#[test]
fn the_client_reads_and_posts() {
    let store = test_store();
    let (greeting, list, group, over, article, head, body, missing) = run(
        NntpFactory::new("news.example", store.clone()),
        |c| async move {
            let greeting = c.greeting().await?;
            let list = c.list().await?;
            c.post(b"From: a@example.org\nNewsgroups: local.test\nSubject: from the client\nMessage-ID: <c1@example.org>\n\n.dot\nline two\n")
                .await?;
            let group = c.group("local.test").await?;
            let over = c.over("1-").await?;
            let article = c.article("<c1@example.org>").await?;
            let head = c.head("1").await?;
            let body = c.body("").await?;
            let missing = c.group("no.such").await.map(|_| ()).unwrap_err();
            c.quit().await?;
            Ok((greeting, list, group, over, article, head, body, missing))
        },
    );
    assert_eq!(greeting.code, 200);
    assert_eq!(
        list,
        vec![
            ("local.empty".to_string(), 0, 1, "y".to_string()),
            ("local.test".to_string(), 0, 1, "y".to_string())
        ]
    );
    assert_eq!(
        (group.count, group.low, group.high, group.name.as_str()),
        (1, 1, 1, "local.test")
    );
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].subject, "from the client");
    assert_eq!(over[0].message_id, "<c1@example.org>");
    assert_eq!(over[0].lines, 2);
    // What the client got is what the store holds, byte for byte.
    assert_eq!(article, store.article("local.test", 1).unwrap().unwrap());
    assert!(article.ends_with(b"\r\n\r\n.dot\r\nline two\r\n"));
    assert!(head.starts_with(b"Path: news.example!not-for-mail\r\n"));
    assert_eq!(body, b".dot\r\nline two\r\n");
    let e = missing.downcast_ref::<NntpError>().expect("an NntpError");
    assert_eq!((e.code, e.text.as_str()), (411, "No such newsgroup"));
}

#[test]
fn the_client_logs_in_before_posting() {
    let users = InMemoryUsernamePasswordDatabaseDontUse::new();
    users.add_user("alice", "wonderland");
    let portal = Portal::new(NewsRealm);
    portal.register_checker(users);
    let store = test_store();
    let (refused, wrong) = run(
        NntpFactory::new("h", store.clone()).portal(portal),
        |c| async move {
            let article = b"From: a@b\nNewsgroups: local.test\nSubject: s\n\nx\n";
            let refused = c.post(article).await.unwrap_err();
            let wrong = c.login("alice", "nope").await.unwrap_err();
            c.login("alice", "wonderland").await?;
            c.post(article).await?;
            Ok((refused, wrong))
        },
    );
    assert_eq!(refused.downcast_ref::<NntpError>().unwrap().code, 480);
    assert_eq!(wrong.downcast_ref::<NntpError>().unwrap().code, 481);
    assert_eq!(store.group("local.test").unwrap().count, 1);
}
