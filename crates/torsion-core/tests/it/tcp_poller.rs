//! Accepted TCP connections run in the reactor's poller (one epoll set, one task): these
//! tests cover what the poller itself must get right. A connection woken by a transport call
//! made outside its callbacks (a timer) runs; many connections come and go, their slots are
//! reused, and nothing is left registered.
//!
//! Ports are ephemeral; each test fails after 10 s and checks that no port or connection is
//! left open.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torsion::ConnectionEnd;
use torsion::{factory, reactor, Failure, Protocol, Transport};

/// Writes `late` from a timer, outside any callback of its connection, then closes.
struct LateWriter;

impl Protocol for LateWriter {
    fn connection_made(&mut self, t: &Transport) {
        let t = t.clone();
        reactor().call_later(0.01, move || {
            t.write(b"late");
            t.lose_connection();
        });
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

#[torsion::test(timeout = 10)]
async fn a_write_from_a_timer_wakes_an_idle_connection() -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| LateWriter), "127.0.0.1")?;
    let mut sock = tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap()).await?;
    let mut got = Vec::new();
    sock.read_to_end(&mut got).await?;
    port.stop_listening().await?;
    assert_eq!(got, b"late");
    Ok(())
}

/// Echoes.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

#[torsion::test(timeout = 10)]
async fn many_connections_come_and_go_and_leave_nothing_open() -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();
    for round in 0..3 {
        let mut socks = Vec::new();
        for _ in 0..200 {
            socks.push(tokio::net::TcpStream::connect(addr).await?);
        }
        for (i, s) in socks.iter_mut().enumerate() {
            s.write_all(format!("{round}:{i};").as_bytes()).await?;
        }
        for (i, s) in socks.iter_mut().enumerate() {
            let want = format!("{round}:{i};");
            let mut got = vec![0; want.len()];
            s.read_exact(&mut got).await?;
            assert_eq!(got, want.as_bytes());
        }
        drop(socks);
        while port.connection_count() > 0 {
            tokio::task::yield_now().await;
        }
    }
    port.stop_listening().await?;
    Ok(())
}

/// Echoes, and panics when dropped.
struct PanicsOnDrop;

impl Protocol for PanicsOnDrop {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("PanicsOnDrop dropped");
    }
}

#[torsion::test(timeout = 10)]
async fn a_protocol_that_panics_when_dropped_takes_no_other_connection_with_it(
) -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| PanicsOnDrop), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();
    let mut other = tokio::net::TcpStream::connect(addr).await?;
    other.write_all(b"before").await?;
    let mut got = [0; 6];
    other.read_exact(&mut got).await?;
    // The first connection ends; its protocol's drop panics.
    let first = tokio::net::TcpStream::connect(addr).await?;
    drop(first);
    while port.connection_count() > 1 {
        tokio::task::yield_now().await;
    }
    // The other connection, in the same poller, is still served.
    other.write_all(b"after!").await?;
    other.read_exact(&mut got).await?;
    assert_eq!(&got, b"after!");
    drop(other);
    while port.connection_count() > 0 {
        tokio::task::yield_now().await;
    }
    port.stop_listening().await?;
    Ok(())
}

/// Echoes, and counts its end.
struct CountedEcho(std::rc::Rc<std::cell::Cell<usize>>);

impl Protocol for CountedEcho {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.0.set(self.0.get() + 1);
    }
}

#[torsion::test(timeout = 10)]
async fn open_handles_counts_the_connections_the_poller_runs() -> Result<(), Failure> {
    // The poller answers for its connections (the reactor's registry holds only the port).
    let r = reactor();
    let before = r.open_handles();
    let lost = std::rc::Rc::new(std::cell::Cell::new(0));
    let l = lost.clone();
    let port = r.listen_tcp_on(0, factory(move || CountedEcho(l.clone())), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();
    let mut socks = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        // An echo proves the server side has started.
        s.write_all(b"x").await?;
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await?;
        socks.push(s);
    }
    assert_eq!(r.open_handles(), before + 1 + 3);
    // Closing our ends: the server sees each close and ends that connection.
    drop(socks);
    port.stop_listening().await?;
    assert_eq!(r.open_handles(), 3 - lost.get() + before);
    Ok(())
}
