//! StartTLS over AMP (Twisted's `amp.StartTLS`): the answer goes in the clear, then both ends
//! start TLS on the same connection; calls made while the answer is awaited are held and go
//! over TLS. Torsion against Torsion over TCP, and against Python Twisted both ways.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::ensure_deferred;
use torsion::endpoints::client_from_string;
use torsion::{factory, Failure, Reactor};
use torsion_amp::{command, Amp, AmpError, Locator, RemoteError, StartTls, UnhandledCommand};

use crate::support::{reactor, run_until_peer_ends, twisted_python, Peer, Pki};

command! {
    /// `Sum(a, b) -> total`.
    pub struct Sum { a: i64, b: i64 }
    response #[derive(Debug)] SumResult { total: i64 }
}

fn sums() -> Locator {
    Locator::new().responder(|c: Sum, _| Ok::<_, RemoteError>(SumResult { total: c.a + c.b }))
}

/// Runs `body` on a fresh reactor until it finishes (or two minutes pass) and returns its
/// outcome.
fn run<F>(r: &Reactor, body: F) -> Result<(), Failure>
where
    F: std::future::Future<Output = Result<(), Failure>> + 'static,
{
    let done: Rc<RefCell<Option<Result<(), Failure>>>> = Rc::default();
    let d2 = done.clone();
    drop(ensure_deferred(body).add_both(move |out| {
        *d2.borrow_mut() = Some(out);
        drop(torsion::reactor().stop());
        Ok::<(), Failure>(())
    }));
    let guard = r.clone();
    r.call_later(120.0, move || drop(guard.stop()));
    r.run().unwrap();
    let out = done.borrow_mut().take().expect("finished in time");
    out
}

#[test]
fn start_tls_between_torsion_client_and_server() {
    let pki = Pki::new();
    let r = reactor();
    let server = pki.server();
    let port = r
        .listen_tcp_on(
            0,
            factory(move || Amp::new(sums().start_tls(server.clone()))),
            "127.0.0.1",
        )
        .unwrap();
    let port = port.get_host().port().unwrap();
    let client = pki.client();
    let r2 = r.clone();
    run(&r, async move {
        let endpoint = client_from_string(&r2, &format!("tcp:127.0.0.1:{port}"))?;
        let conn = endpoint
            .connect_deferred(factory(|| Amp::new(Locator::new())))
            .await?;
        let amp = conn.protocol().borrow().sender();
        assert_eq!(amp.call_remote(Sum { a: 1, b: 2 }).await?.total, 3);
        let t = amp.transport().unwrap();
        assert_eq!(t.peer_certificate(), None, "in the clear before StartTLS");
        let started = amp.call_start_tls(client);
        // Asked before the answer: held, then sent over TLS.
        let held = amp.call_remote(Sum { a: 13, b: 81 });
        started.await?;
        assert_eq!(held.await?.total, 94);
        assert!(t.peer_certificate().is_some(), "TLS is on after StartTLS");
        assert_eq!(amp.call_remote(Sum { a: 5, b: 5 }).await?.total, 10);
        // Once only: refused here without asking, and by the peer if asked anyway.
        let again = amp.call_start_tls(pki_client_again()).await.unwrap_err();
        assert_eq!(
            again.downcast_ref::<AmpError>(),
            Some(&AmpError::OnlyOneTls)
        );
        let asked = amp.call_remote(StartTls {}).await.unwrap_err();
        assert!(RemoteError::check(&asked, "TLS_ERROR"), "{asked}");
        assert_eq!(amp.call_remote(Sum { a: 2, b: 2 }).await?.total, 4);
        conn.transport().lose_connection();
        Ok(())
    })
    .unwrap();
}

/// A client context that is never used (the second StartTLS is refused before it is).
fn pki_client_again() -> torsion::tls::ClientContext {
    Pki::new().client()
}

/// Twisted keeps a refused StartTLS's held boxes forever; Torsion closes the connection
/// rather than send them in the clear, and keeps it when nothing was held.
#[test]
fn a_refused_start_tls_keeps_the_connection_unless_calls_were_held() {
    let pki = Pki::new();
    let r = reactor();
    let port = r
        .listen_tcp_on(0, factory(|| Amp::new(sums())), "127.0.0.1")
        .unwrap();
    let port = port.get_host().port().unwrap();
    let r2 = r.clone();
    run(&r, async move {
        let endpoint = client_from_string(&r2, &format!("tcp:127.0.0.1:{port}"))?;
        let connect = || endpoint.connect_deferred(factory(|| Amp::new(Locator::new())));
        // Nothing held: refused, and the connection goes on in the clear.
        let conn = connect().await?;
        let amp = conn.protocol().borrow().sender();
        let refused = amp.call_start_tls(pki.client()).await.unwrap_err();
        assert!(refused.check::<UnhandledCommand>(), "{refused}");
        assert_eq!(amp.call_remote(Sum { a: 1, b: 2 }).await?.total, 3);
        assert!(amp.transport().unwrap().peer_certificate().is_none());
        conn.transport().lose_connection();
        // A call held for TLS: refused, and the connection closes without sending it.
        let conn = connect().await?;
        let amp = conn.protocol().borrow().sender();
        let started = amp.call_start_tls(pki.client());
        let held = amp.call_remote(Sum { a: 13, b: 81 });
        assert!(started.await.unwrap_err().check::<UnhandledCommand>());
        let lost = held.await.unwrap_err();
        let lost = lost.downcast_ref::<AmpError>().cloned();
        assert!(
            matches!(&lost, Some(AmpError::ConnectionLost { reason }) if reason.contains("refused StartTLS")),
            "{lost:?}"
        );
        assert!(!amp.is_connected());
        Ok(())
    })
    .unwrap();
}

#[test]
fn twisted_client_starts_tls_with_a_torsion_server() {
    let Some(py) = twisted_python() else { return };
    let pki = Pki::new();
    let (ca, _, _) = pki.files("twisted-client");
    let r = reactor();
    let server = pki.server();
    let port = r
        .listen_tcp_on(
            0,
            factory(move || Amp::new(sums().start_tls(server.clone()))),
            "127.0.0.1",
        )
        .unwrap();
    let port = port.get_host().port().unwrap().to_string();
    let ca = ca.to_str().unwrap().to_string();
    let (ok, out) = run_until_peer_ends(&r, Peer::start(&py, &["tls-client", &port, &ca]));
    assert!(ok, "Twisted's client failed:\n{out}");
    for check in ["ok sum in the clear", "ok sum over tls", "ok tls"] {
        assert!(out.contains(check), "{check} missing:\n{out}");
    }
}

#[test]
fn torsion_client_starts_tls_with_a_twisted_server() {
    let Some(py) = twisted_python() else { return };
    let pki = Pki::new();
    let (_, cert, key) = pki.files("twisted-server");
    let peer = Peer::start(
        &py,
        &["tls-server", cert.to_str().unwrap(), key.to_str().unwrap()],
    );
    let line = peer.line().expect("the Twisted server started");
    let port: u16 = line.strip_prefix("listening ").unwrap().parse().unwrap();
    let r = reactor();
    let r2 = r.clone();
    let client = pki.client();
    run(&r, async move {
        let endpoint = client_from_string(&r2, &format!("tcp:127.0.0.1:{port}"))?;
        let conn = endpoint
            .connect_deferred(factory(|| Amp::new(Locator::new())))
            .await?;
        let amp = conn.protocol().borrow().sender();
        assert_eq!(amp.call_remote(Sum { a: 1, b: 2 }).await?.total, 3);
        let started = amp.call_start_tls(client);
        let held = amp.call_remote(Sum { a: 13, b: 81 });
        started.await?;
        assert_eq!(held.await?.total, 94);
        let t = amp.transport().unwrap();
        assert!(
            t.peer_certificate().is_some(),
            "TLS with Twisted's certificate"
        );
        let many: Vec<_> = (0..200)
            .map(|i| amp.call_remote(Sum { a: i, b: i }))
            .collect();
        for (i, d) in many.into_iter().enumerate() {
            assert_eq!(d.await?.total, 2 * i as i64);
        }
        conn.transport().lose_connection();
        Ok(())
    })
    .unwrap();
    drop(peer);
}
