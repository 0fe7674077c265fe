//! Connecting through an endpoint with a Deferred (Twisted's `endpoint.connect(factory)` and
//! `connectProtocol`): it fires with the protocol once `connection_made` has run, fails with
//! the attempt's reason or `NoProtocol`, and cancelling it stops the attempt.

use std::cell::Cell;
use std::rc::Rc;

use torsion::defer::{Deferred, Trigger};
use torsion::endpoints::{client_from_string, connect_protocol, ClientEndpoint, NoProtocol};
use torsion::error::{CancelledError, ConnectError, ConnectionRefusedError};
use torsion::transport::Address;
use torsion::{factory, reactor, Factory, Failure, Protocol, Transport};

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// Remembers `connection_made` and fires `echoed` once `want` bytes came back.
struct Client {
    made: bool,
    got: Vec<u8>,
    want: usize,
    echoed: Option<Trigger<Vec<u8>>>,
}

impl Client {
    fn new(want: usize) -> (Client, Deferred<Vec<u8>>) {
        let d = Deferred::new();
        let c = Client {
            made: false,
            got: Vec::new(),
            want,
            echoed: Some(d.trigger()),
        };
        (c, d)
    }
}

impl Protocol for Client {
    fn connection_made(&mut self, _t: &Transport) {
        self.made = true;
    }
    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.want {
            if let Some(t) = self.echoed.take() {
                t.callback(self.got.clone());
            }
        }
    }
}

fn endpoint(port: u16) -> ClientEndpoint {
    client_from_string(&reactor(), &format!("tcp:127.0.0.1:{port}")).unwrap()
}

#[torsion::test]
async fn connect_deferred_fires_with_the_connected_protocol() -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let p = port.get_host().port().unwrap();
    let (client, echoed) = Client::new(5);
    let slot = std::cell::RefCell::new(Some(client));
    let conn = endpoint(p)
        .connect_deferred(factory(move || {
            slot.borrow_mut().take().expect("one connection")
        }))
        .await?;
    assert!(
        conn.with_protocol(|c| c.made),
        "fired before connection_made"
    );
    assert_eq!(conn.transport().get_peer().port(), Some(p));
    conn.transport().write(b"hello");
    assert_eq!(echoed.await?, b"hello");
    assert_eq!(conn.protocol().borrow().got, b"hello");
    conn.transport().lose_connection();
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn connect_protocol_connects_the_given_protocol() -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let (client, echoed) = Client::new(3);
    let conn = connect_protocol(&endpoint(port.get_host().port().unwrap()), client).await?;
    conn.transport().write(b"abc");
    assert_eq!(echoed.await?, b"abc");
    assert!(conn.with_protocol(|c| c.made));
    conn.transport().lose_connection();
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn connect_deferred_fails_with_the_reason_the_attempt_failed() -> Result<(), Failure> {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = endpoint(free)
        .connect_deferred(factory(|| Echo))
        .await
        .unwrap_err();
    assert!(err.check::<ConnectionRefusedError>(), "{err:?}");

    // A bad bindAddress fails before any attempt: the Deferred has already fired.
    let d = client_from_string(&reactor(), "tcp:127.0.0.1:1:bindAddress=nowhere")
        .unwrap()
        .connect_deferred(factory(|| Echo));
    let err = d.result().expect("fired at once").unwrap_err();
    assert!(err.check::<ConnectError>(), "{err:?}");
    Ok(())
}

/// Makes no protocol, as a factory that refuses a connection does.
struct Refuse;
impl Factory for Refuse {
    type Protocol = Echo;
    fn build_protocol(&self, _: &Address) -> Option<Echo> {
        None
    }
}

#[torsion::test]
async fn connect_deferred_fails_with_no_protocol_when_the_factory_makes_none() -> Result<(), Failure>
{
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let err = endpoint(port.get_host().port().unwrap())
        .connect_deferred(Refuse)
        .await
        .unwrap_err();
    assert!(err.check::<NoProtocol>(), "{err:?}");
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn cancelling_connect_deferred_stops_the_attempt() -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let p = port.get_host().port().unwrap();
    let built = Rc::new(Cell::new(0));
    let b = built.clone();
    let d = endpoint(p).connect_deferred(factory(move || {
        b.set(b.get() + 1);
        Echo
    }));
    d.cancel();
    let err = d.await.unwrap_err();
    assert!(err.check::<CancelledError>(), "{err:?}");

    // A whole exchange on a second connection later, the cancelled one never built a protocol.
    let (client, echoed) = Client::new(2);
    let conn = connect_protocol(&endpoint(p), client).await?;
    conn.transport().write(b"ok");
    assert_eq!(echoed.await?, b"ok");
    assert_eq!(built.get(), 0);
    conn.transport().lose_connection();
    port.stop_listening().await?;
    Ok(())
}
