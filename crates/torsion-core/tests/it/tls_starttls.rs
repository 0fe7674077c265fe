//! STARTTLS: a line protocol that talks plaintext, then both ends switch the running
//! connection to TLS with `start_tls` — over TCP and over a Unix socket (TLS is a layer of
//! the connection, not a kind of socket).

#![cfg(feature = "tls")]

use std::cell::RefCell;
use std::io::ErrorKind;
use std::rc::Rc;

use crate::support::tls::{next, Ca, Record};
use torsion::error::ConnectionDone;
use torsion::tls::{ClientContext, ServerContext, TlsContext};
use torsion::ConnectionEnd;
use torsion::{factory, reactor, Failure, Protocol, Transport};

/// Plaintext until the client says `STARTTLS`; then TLS, echoing.
struct Server {
    context: ServerContext,
    tls: bool,
    line: Vec<u8>,
    rec: Rc<Record>,
    second_start: Rc<RefCell<Option<ErrorKind>>>,
}

impl Protocol for Server {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        if self.tls {
            self.rec.saw(t, data);
            t.write(data);
            return;
        }
        self.line.extend_from_slice(data);
        if self.line == b"STARTTLS\r\n" {
            t.write(b"220 go ahead\r\n"); // still plaintext
            t.start_tls(self.context.clone().into()).unwrap();
            let again = t.start_tls(self.context.clone().into()).unwrap_err();
            *self.second_start.borrow_mut() = Some(again.kind());
            self.tls = true;
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

/// Asks for STARTTLS, switches on the answer, sends a secret and closes on its echo.
struct Client {
    context: TlsContext,
    tls: bool,
    rec: Rc<Record>,
}

impl Protocol for Client {
    fn connection_made(&mut self, t: &Transport) {
        assert_eq!(t.peer_certificate(), None);
        t.write(b"STARTTLS\r\n");
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        if !self.tls {
            assert_eq!(data, b"220 go ahead\r\n");
            t.start_tls(self.context.clone()).unwrap();
            self.tls = true;
            t.write(b"secret over TLS");
            return;
        }
        self.rec.saw(t, data);
        if self.rec.received.borrow().len() >= b"secret over TLS".len() {
            t.lose_connection();
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.rec.lost(reason.into());
    }
}

fn check(srec: &Record, crec: &Record, second: &RefCell<Option<ErrorKind>>) {
    assert_eq!(&*srec.received.borrow(), b"secret over TLS");
    assert_eq!(&*crec.received.borrow(), b"secret over TLS");
    assert!(
        crec.peer_certificate.borrow().is_some(),
        "the client saw the server's certificate"
    );
    assert_eq!(*second.borrow(), Some(ErrorKind::AlreadyExists));
    let (c, s) = (crec.reason(), srec.reason());
    assert!(c.check::<ConnectionDone>(), "client: {c}");
    assert!(s.check::<ConnectionDone>(), "server: {s}");
}

#[torsion::test(timeout = 20)]
async fn start_tls_after_a_plaintext_exchange_over_tcp() -> Result<(), Failure> {
    let ca = Ca::new("Torsion STARTTLS CA");
    let (srec, crec): (Rc<Record>, Rc<Record>) = Default::default();
    let second: Rc<RefCell<Option<ErrorKind>>> = Rc::default();
    let (s, ctx, sec) = (srec.clone(), ca.server(&["localhost"]), second.clone());
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Server {
            context: ctx.clone(),
            tls: false,
            line: Vec::new(),
            rec: s.clone(),
            second_start: sec.clone(),
        }),
        "127.0.0.1",
    )?;
    // Connected by IP: the client names the host its certificate must show.
    let client = ClientContext::builder()
        .trust([ca.cert()])
        .server_name("localhost")
        .build()
        .unwrap();
    let c = crec.clone();
    reactor().connect_tcp(
        "127.0.0.1",
        port.get_host().port().unwrap(),
        factory(move || Client {
            context: client.clone().into(),
            tls: false,
            rec: c.clone(),
        }),
    );
    next(&crec.ended).await;
    next(&srec.ended).await;
    port.stop_listening().await?;
    check(&srec, &crec, &second);
    Ok(())
}

#[torsion::test(timeout = 20)]
async fn start_tls_over_a_unix_socket() -> Result<(), Failure> {
    let ca = Ca::new("Torsion STARTTLS CA");
    let path = std::env::temp_dir().join(format!("torsion-starttls-{}.sock", std::process::id()));
    let (srec, crec): (Rc<Record>, Rc<Record>) = Default::default();
    let second: Rc<RefCell<Option<ErrorKind>>> = Rc::default();
    let (s, ctx, sec) = (srec.clone(), ca.server(&["unix.test"]), second.clone());
    let port = reactor().listen_unix(
        &path,
        factory(move || Server {
            context: ctx.clone(),
            tls: false,
            line: Vec::new(),
            rec: s.clone(),
            second_start: sec.clone(),
        }),
    )?;
    let client = ca.client().with_server_name("unix.test").unwrap();
    let c = crec.clone();
    reactor().connect_unix(
        &path,
        factory(move || Client {
            context: client.clone().into(),
            tls: false,
            rec: c.clone(),
        }),
    );
    next(&crec.ended).await;
    next(&srec.ended).await;
    port.stop_listening().await?;
    check(&srec, &crec, &second);
    Ok(())
}

/// Tries `start_tls` in `connection_made` and keeps the error.
struct TryStart {
    context: TlsContext,
    close_first: bool,
    error: Rc<RefCell<Option<std::io::Error>>>,
}

impl Protocol for TryStart {
    fn connection_made(&mut self, t: &Transport) {
        if self.close_first {
            t.lose_connection();
        }
        *self.error.borrow_mut() = t.start_tls(self.context.clone()).err();
        t.lose_connection();
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    fn connection_lost(&mut self, _: ConnectionEnd) {
        let _ = reactor().stop(); // both ends stop it: the second finds it stopping
    }
}

#[test]
fn start_tls_refuses_what_cannot_work_naming_the_cause() {
    let ca = Ca::new("Torsion CA");
    let cases: [(TlsContext, bool, &str); 2] = [
        // A client over a Unix socket has no IP address to check the certificate against.
        (ca.client().into(), false, "needs a server name"),
        // A connection that is closing cannot start TLS.
        (
            ca.server(&["x.test"]).into(),
            true,
            "the connection is closing",
        ),
    ];
    for (context, close_first, words) in cases {
        let path = std::env::temp_dir().join(format!(
            "torsion-starttls-refuse-{}-{close_first}.sock",
            std::process::id()
        ));
        let r = torsion::Reactor::new();
        r.set_install_signal_handlers(false);
        let port = r
            .listen_unix(
                &path,
                factory(|| TryStart {
                    context: ClientContext::builder()
                        .trust([Ca::new("x").cert()])
                        .build()
                        .unwrap()
                        .into(),
                    close_first: false,
                    error: Rc::default(),
                }),
            )
            .unwrap();
        let error: Rc<RefCell<Option<std::io::Error>>> = Rc::default();
        let e = error.clone();
        r.connect_unix(
            &path,
            factory(move || TryStart {
                context: context.clone(),
                close_first,
                error: e.clone(),
            }),
        );
        r.call_later(10.0, || {
            let _ = reactor().stop();
        });
        r.run().unwrap();
        port.stop_listening();
        let err = error.borrow_mut().take().expect("start_tls must fail");
        assert!(err.to_string().contains(words), "{err}");
    }
}
