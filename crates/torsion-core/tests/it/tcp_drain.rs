//! Graceful stops: `ListeningPort::drain` closes the port, asks each connection it accepted
//! to finish (`Protocol::drain`) and fires when they are gone, or aborts the rest at the
//! deadline; `StreamServerEndpointService` with a drain time-out makes its stop wait for
//! that. Also `SO_REUSEPORT` through `ListenOptions`.
//!
//! Ports are ephemeral; clients are tokio sockets on the reactor's own event loop.

use std::cell::Cell;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::application::{Service, StreamServerEndpointService};
use torsion::endpoints::server_from_string;
use torsion::tcp::ListenOptions;
use torsion::{factory, reactor, Failure, Protocol, Transport};

/// Echoes; when asked to drain, closes at once if `drains`, else ignores the request.
struct Echo {
    drains: bool,
    drained: Rc<Cell<usize>>,
}

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }

    fn drain(&mut self, t: &Transport) {
        self.drained.set(self.drained.get() + 1);
        if self.drains {
            t.lose_connection();
        }
    }
}

/// Connects and makes sure the server has the connection (one echoed byte).
async fn connected(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
    s
}

/// Reads until the server closes; true if it closed (EOF or reset).
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

#[torsion::test(timeout = 10)]
async fn drain_closes_connections_that_finish_and_fires_early() -> Result<(), Failure> {
    let drained = Rc::new(Cell::new(0));
    let d = drained.clone();
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Echo {
            drains: true,
            drained: d.clone(),
        }),
        "127.0.0.1",
    )?;
    let number = port.get_host().port().unwrap();
    let mut a = connected(number).await;
    let mut b = connected(number).await;
    assert_eq!(port.connection_count(), 2);

    let started = reactor().seconds();
    port.drain(30.0).await?;
    assert!(
        reactor().seconds() - started < 5.0,
        "drain waited for the deadline"
    );
    assert_eq!(drained.get(), 2);
    assert_eq!(port.connection_count(), 0);
    assert!(!port.listening());
    assert!(closed_by_server(&mut a).await);
    assert!(closed_by_server(&mut b).await);
    assert!(
        TcpStream::connect(("127.0.0.1", number)).await.is_err(),
        "a drained port still accepts"
    );
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn drain_aborts_what_is_left_at_the_deadline() -> Result<(), Failure> {
    let drained = Rc::new(Cell::new(0));
    let d = drained.clone();
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Echo {
            drains: false,
            drained: d.clone(),
        }),
        "127.0.0.1",
    )?;
    let mut a = connected(port.get_host().port().unwrap()).await;
    let started = reactor().seconds();
    port.drain(0.3).await?;
    let took = reactor().seconds() - started;
    assert!(took >= 0.25, "fired after {took} s, before the deadline");
    assert_eq!(drained.get(), 1, "the protocol was not asked to drain");
    assert!(closed_by_server(&mut a).await);
    // The aborted connection's task has ended by now.
    torsion::task::defer_later(&reactor(), 0.05, || ()).await?;
    assert_eq!(port.connection_count(), 0);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn drain_with_no_connections_fires_at_once() -> Result<(), Failure> {
    let drained = Rc::new(Cell::new(0));
    let d = drained.clone();
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Echo {
            drains: true,
            drained: d.clone(),
        }),
        "127.0.0.1",
    )?;
    let done = port.drain(30.0);
    assert!(done.called());
    done.await?;
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_service_with_a_drain_timeout_stops_once_its_connections_have() -> Result<(), Failure> {
    let drained = Rc::new(Cell::new(0));
    let d = drained.clone();
    let endpoint = server_from_string(&reactor(), "tcp:0:interface=127.0.0.1").unwrap();
    let service = StreamServerEndpointService::new(
        endpoint,
        factory(move || Echo {
            drains: true,
            drained: d.clone(),
        }),
    );
    service.set_drain_timeout(Some(30.0));
    service.start_service();
    let address = service.when_listening().await?;
    let mut a = connected(address.port().unwrap()).await;
    service.stop_service().await?;
    assert_eq!(drained.get(), 1);
    assert!(closed_by_server(&mut a).await);
    assert!(service.listening_address().is_none());
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_taken_port_needs_reuse_port_on_both_sockets() -> Result<(), Failure> {
    let drained = Rc::new(Cell::new(0));
    let d = drained.clone();
    let make = move || {
        let d = d.clone();
        factory(move || Echo {
            drains: true,
            drained: d.clone(),
        })
    };
    let r = reactor();
    let plain = r.listen_tcp_on(0, make(), "127.0.0.1")?;
    let number = plain.get_host().port().unwrap();
    let shared = ListenOptions::default().reuse_port(true);
    assert!(
        r.listen_tcp_with(number, make(), "127.0.0.1", shared)
            .is_err(),
        "SO_REUSEPORT on one socket only must not share the port"
    );
    plain.stop_listening().await?;

    let first = r.listen_tcp_with(0, make(), "127.0.0.1", shared)?;
    let number = first.get_host().port().unwrap();
    let second = r.listen_tcp_with(number, make(), "127.0.0.1", shared)?;
    let mut s = connected(number).await;
    s.shutdown().await.unwrap();
    assert!(closed_by_server(&mut s).await);
    first.stop_listening().await?;
    second.stop_listening().await?;
    Ok(())
}

/// Answers each line; closes at once when asked to drain.
struct Answer;

impl torsion::protocols::basic::LineOnlyReceiver for Answer {
    fn line_received(&mut self, t: &torsion::protocols::basic::LineSender<'_>, line: &[u8]) {
        t.send_line(line);
    }

    fn drain(&mut self, t: &torsion::protocols::basic::LineSender<'_>) {
        t.lose_connection();
    }
}

#[torsion::test(timeout = 10)]
async fn framing_receivers_hear_the_drain() -> Result<(), Failure> {
    use torsion::protocols::basic::LineOnly;
    let port = reactor().listen_tcp_on(0, factory(|| LineOnly::new(Answer)), "127.0.0.1")?;
    let mut s = TcpStream::connect(("127.0.0.1", port.get_host().port().unwrap())).await?;
    s.write_all(b"hi\r\n").await?;
    let mut b = [0u8; 4];
    s.read_exact(&mut b).await?;
    let started = reactor().seconds();
    port.drain(30.0).await?;
    assert!(
        reactor().seconds() - started < 5.0,
        "the line protocol did not drain"
    );
    assert!(closed_by_server(&mut s).await);
    Ok(())
}
