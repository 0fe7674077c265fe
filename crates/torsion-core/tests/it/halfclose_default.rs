//! A protocol that does not override `read_connection_lost` (Twisted: one that is not an
//! `IHalfCloseableProtocol`) when the peer closes its sending half: Torsion sends what the
//! protocol already wrote, then closes and calls `connection_lost` with a clean end. Twisted
//! calls `connectionLost` at once and drops the unsent bytes; docs/design.md ("A peer's
//! half-close flushes before closing") says why Torsion differs.

use std::cell::RefCell;
use std::rc::Rc;

use crate::support::next;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torsion::defer::DeferredQueue;
use torsion::{factory, reactor, ConnectionEnd, Failure, Protocol, Transport};

/// Bigger than loopback's socket buffers together, so most of it is still in the
/// transport's buffer when the peer's end of stream is read.
const REPLY: usize = 16 << 20;

#[derive(Default)]
struct Seen {
    request: RefCell<Vec<u8>>,
    /// How each connection ended, one item per connection.
    ended: DeferredQueue<String>,
}

/// Answers the first bytes it gets with a large reply; everything else is the default.
struct BigReply {
    seen: Rc<Seen>,
}

impl Protocol for BigReply {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        let first = self.seen.request.borrow().is_empty();
        self.seen.request.borrow_mut().extend_from_slice(data);
        if first {
            let reply: Vec<u8> = (0..REPLY).map(|i| (i % 251) as u8).collect();
            t.write(&reply);
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        let how = if reason.is_clean() {
            "clean".to_string()
        } else {
            reason.to_string()
        };
        self.seen.ended.put(how).unwrap();
    }
}

#[torsion::test(timeout = 10)]
async fn default_read_connection_lost_sends_pending_writes_then_closes() -> Result<(), Failure> {
    let seen: Rc<Seen> = Rc::default();
    let s = seen.clone();
    let port = reactor().listen_tcp_on(
        0,
        factory(move || BigReply { seen: s.clone() }),
        "127.0.0.1",
    )?;
    let mut peer = tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap()).await?;
    // The request and the end of the peer's sending half leave together, before the peer
    // reads anything: the server reads the end of stream while most of its reply is unsent.
    peer.write_all(b"GET").await?;
    peer.shutdown().await?;
    let mut reply = Vec::new();
    peer.read_to_end(&mut reply).await?;
    let how = next(&seen.ended).await;
    port.stop_listening().await?;
    assert_eq!(*seen.request.borrow(), b"GET");
    // Twisted would have dropped what did not fit in the socket buffers.
    assert_eq!(reply.len(), REPLY, "the reply was cut short");
    assert!(reply.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    assert_eq!(how, "clean");
    Ok(())
}

/// Never writes: the peer's half-close ends the connection at once, as in Twisted.
struct Silent {
    seen: Rc<Seen>,
}

impl Protocol for Silent {
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.seen.request.borrow_mut().extend_from_slice(data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.seen.ended.put(reason.is_clean().to_string()).unwrap();
    }
}

#[torsion::test(timeout = 10)]
async fn with_nothing_to_send_a_half_close_ends_the_connection_cleanly() -> Result<(), Failure> {
    let seen: Rc<Seen> = Rc::default();
    let s = seen.clone();
    let port =
        reactor().listen_tcp_on(0, factory(move || Silent { seen: s.clone() }), "127.0.0.1")?;
    let mut peer = tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap()).await?;
    peer.write_all(b"bye").await?;
    peer.shutdown().await?;
    // The server closes its side too: the peer reads the end of stream, with no data.
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).await?;
    assert!(rest.is_empty());
    assert_eq!(next(&seen.ended).await, "true");
    port.stop_listening().await?;
    assert_eq!(*seen.request.borrow(), b"bye");
    Ok(())
}
