//! The POP3 client against Torsion's POP3 server over real TCP (in the clear and after
//! STLS), and against a server that misbehaves (answers too large, silence).

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use torsion::defer::ensure_deferred;
use torsion::endpoints::client_from_string;
use torsion::{reactor, Factory, Failure, Reactor};
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_mail::delivery::Message;
use torsion_mail::{MaildirDomain, MaildirRealm, Pop3Client, Pop3ClientError, Pop3Factory};

use crate::support::{self_signed, TempDir};

/// Listens with `factory` on 127.0.0.1 and runs `body(port)` on the reactor until it ends.
pub(crate) fn run<F: Factory, T: 'static, Fut: Future<Output = Result<T, Failure>> + 'static>(
    factory: F,
    body: impl FnOnce(u16) -> Fut + 'static,
) -> Result<T, Failure> {
    let r = Reactor::new();
    let port = r.listen_tcp_on(0, factory, "127.0.0.1").unwrap();
    let number = port.get_host().port().unwrap();
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    r.call_when_running(move || {
        drop(ensure_deferred(body(number)).add_both(move |res| {
            *o.borrow_mut() = Some(res);
            drop(reactor().stop());
            Ok::<(), Failure>(())
        }));
    });
    let guard = r.clone();
    r.call_later(60.0, move || drop(guard.stop()));
    r.run().unwrap();
    drop(port);
    let res = out.borrow_mut().take();
    res.expect("the client finished in time")
}

fn server(dir: &std::path::Path) -> (Pop3Factory, MaildirDomain) {
    let domain = MaildirDomain::new("example.org", dir).unwrap();
    let alice = domain.add_user("alice").unwrap();
    for body in ["one\n.dot\n", "two\n"] {
        let mut m = alice.deliver().unwrap();
        m.write(format!("Subject: s\n\n{body}").as_bytes()).unwrap();
        Box::new(m).finish().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let checker = InMemoryUsernamePasswordDatabaseDontUse::new();
    checker.add_user("alice", "wonderland");
    let portal = Portal::new(MaildirRealm::new(vec![MaildirDomain::new(
        "example.org",
        dir,
    )
    .unwrap()]));
    portal.register_checker(checker);
    (
        Pop3Factory::new("pop.example.org", portal).auth_failure_delay(Duration::from_millis(10)),
        domain,
    )
}

fn endpoint(port: u16) -> torsion::endpoints::ClientEndpoint {
    client_from_string(&reactor(), &format!("tcp:127.0.0.1:{port}")).unwrap()
}

#[test]
fn the_client_lists_retrieves_and_deletes_against_torsions_server() {
    let dir = TempDir::new("pop3-client");
    let (factory, domain) = server(dir.path());
    let out = run(factory.login_without_tls(true), |port| async move {
        let c = Pop3Client::connect(&endpoint(port)).await?;
        let caps = c.capabilities().await?;
        assert!(caps.contains(&"UIDL".to_owned()) && caps.contains(&"USER".to_owned()));
        let wrong = c.login("alice", "guess").await.unwrap_err();
        let err = wrong.downcast_ref::<Pop3ClientError>().unwrap().clone();
        assert!(
            matches!(&err, Pop3ClientError::Server(t) if t.starts_with("[AUTH]")),
            "{err}"
        );
        c.login("alice", "wonderland").await?;
        let stat = c.stat().await?;
        let list = c.list().await?;
        let uidl = c.uidl().await?;
        let first = c.retrieve(1).await?;
        let top = c.top(2, 0).await?;
        let missing = c.retrieve(9).await.unwrap_err();
        assert!(missing.check::<Pop3ClientError>());
        c.delete(1).await?;
        let bye = c.quit().await?;
        Ok((stat, list, uidl.len(), first, top, bye))
    })
    .unwrap();
    let (stat, list, uids, first, top, bye) = out;
    assert_eq!(stat, (2, 44));
    assert_eq!(list, vec![(1, 25), (2, 19)]);
    assert_eq!(uids, 2);
    assert_eq!(first, b"Subject: s\r\n\r\none\r\n.dot\r\n");
    assert_eq!(top, b"Subject: s\r\n\r\n");
    assert_eq!(bye, "signing off (1 messages left)");
    let left = torsion_mail::Mailbox::open(&domain.maildir("alice").unwrap()).unwrap();
    assert_eq!(left.len(), 1);
}

#[test]
fn the_client_starts_tls_then_logs_in() {
    let dir = TempDir::new("pop3-client-tls");
    let (factory, _) = server(dir.path());
    let (tls, pem) = self_signed();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let out = run(factory.tls(tls), move |port| async move {
        let c = Pop3Client::connect(&endpoint(port)).await?;
        let refused = c.login("alice", "wonderland").await.unwrap_err();
        assert!(refused.check::<Pop3ClientError>(), "no login in the clear");
        let context = torsion::tls::ClientContext::trusting_pem_file(&ca)
            .unwrap()
            .with_server_name("localhost")
            .unwrap();
        c.start_tls(context).await?;
        c.login("alice", "wonderland").await?;
        let n = c.stat().await?.0;
        c.quit().await?;
        Ok(n)
    })
    .unwrap();
    assert_eq!(out, 2);
}

/// A server that answers RETR with an endless message: the client gives up at its limit.
struct Endless;

struct EndlessProtocol;

impl torsion::Protocol for EndlessProtocol {
    fn connection_made(&mut self, t: &torsion::Transport) {
        t.write(b"+OK hi\r\n");
    }
    fn data_received(&mut self, t: &torsion::Transport, data: &[u8]) {
        if data.starts_with(b"RETR") {
            t.write(b"+OK here\r\n");
            for _ in 0..64 {
                t.write(
                    &b"x"
                        .repeat(1023)
                        .into_iter()
                        .chain(*b"\r\n")
                        .collect::<Vec<u8>>(),
                );
            }
        }
    }
}

impl Factory for Endless {
    type Protocol = EndlessProtocol;
    fn build_protocol(&self, _: &torsion::transport::Address) -> Option<EndlessProtocol> {
        Some(EndlessProtocol)
    }
}

#[test]
fn an_answer_over_the_limit_fails_and_a_silent_server_times_out() {
    let out = run(Endless, |port| async move {
        let c = Pop3Client::connect(&endpoint(port)).await?;
        c.set_max_response(10_000);
        let big = c.retrieve(1).await.unwrap_err();
        let after = c.noop().await.unwrap_err();
        let c2 = Pop3Client::connect(&endpoint(port)).await?;
        c2.set_timeout(0.2);
        let silent = c2.stat().await.unwrap_err();
        Ok((
            big.downcast_ref::<Pop3ClientError>().cloned(),
            after.downcast_ref::<Pop3ClientError>().cloned(),
            silent.downcast_ref::<Pop3ClientError>().cloned(),
        ))
    })
    .unwrap();
    assert_eq!(out.0, Some(Pop3ClientError::TooLarge));
    assert_eq!(out.1, Some(Pop3ClientError::ConnectionLost));
    assert_eq!(out.2, Some(Pop3ClientError::TimedOut));
}

/// Hostile clients over real TCP — a 1 MB line, pipelined garbage, one that stalls holding
/// the maildrop — while a well-behaved client is served.
#[test]
fn hostile_clients_do_not_stop_others_being_served() {
    let dir = TempDir::new("pop3-hostile");
    let (factory, _) = server(dir.path());
    let out = run(factory.login_without_tls(true), |port| async move {
        let hostile = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut replies = Vec::new();
            // A 1 MB line, then a real command: refused, then answered.
            let mut a = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            a.write_all(&vec![b'x'; 1 << 20]).unwrap();
            a.write_all(b"\r\nQUIT\r\n").unwrap();
            let mut text = String::new();
            a.read_to_string(&mut text).unwrap();
            replies.push(text);
            // Garbage, pipelined: cut off.
            let mut b = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            b.write_all(&b"\x00\xffGARBAGE\r\n".repeat(5000)).unwrap();
            let mut text = Vec::new();
            b.read_to_end(&mut text).unwrap();
            replies.push(String::from_utf8_lossy(&text).into_owned());
            replies
        });
        // A stalled client holding the maildrop (logged in, then silent): the well-behaved
        // one is refused IN-USE, not made to wait.
        let staller = torsion::threads::defer_to_thread(move || {
            use std::io::{BufRead, Write};
            let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            (&s).write_all(b"USER alice\r\nPASS wonderland\r\n")
                .unwrap();
            let mut lines = std::io::BufReader::new(s.try_clone().unwrap()).lines();
            while !lines.next().unwrap().unwrap().starts_with("+OK maildrop") {}
            s
        })
        .await?;
        let c = Pop3Client::connect(&endpoint(port)).await?;
        let in_use = c
            .login("alice", "wonderland")
            .await
            .err()
            .and_then(|f| f.downcast_ref::<Pop3ClientError>().cloned());
        drop(staller);
        let replies = torsion::threads::defer_to_thread(move || hostile.join().unwrap()).await?;
        Ok((in_use, replies))
    })
    .unwrap();
    let (in_use, replies) = out;
    assert!(
        matches!(&in_use, Some(Pop3ClientError::Server(t)) if t.starts_with("[IN-USE]")),
        "{in_use:?}"
    );
    assert!(
        replies[0].contains("-ERR line too long\r\n+OK bye\r\n"),
        "{}",
        replies[0]
    );
    assert!(
        replies[1].ends_with("-ERR too many errors, closing\r\n"),
        "{}",
        replies[1]
    );
    assert!(replies[1].len() < 2000);
}
