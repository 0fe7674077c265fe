//! `write_connection_lost` (Twisted's `IHalfCloseableProtocol.writeConnectionLost`): a
//! protocol that calls `lose_write_connection` hears it once everything it wrote has been
//! handed to the socket and the socket's write half is shut, not before; the connection
//! then stays open for reading until the peer closes too.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::support::next;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torsion::defer::DeferredQueue;
use torsion::{factory, reactor, ConnectionEnd, Failure, Protocol, Transport};

/// Bigger than loopback's socket buffers together, so most of it is still in the
/// transport's buffer when the peer starts reading.
const PAYLOAD: usize = 16 << 20;

fn payload() -> Vec<u8> {
    (0..PAYLOAD).map(|i| (i % 251) as u8).collect()
}

#[derive(Default)]
struct Seen {
    /// What the protocol heard, in order.
    events: RefCell<Vec<String>>,
    /// How many times `write_connection_lost` was called.
    write_lost: Cell<usize>,
    /// The transport's buffered size when `write_connection_lost` was called.
    buffered_then: Cell<Option<usize>>,
    /// One item when `write_connection_lost` is called.
    write_lost_q: DeferredQueue<()>,
    /// How the connection ended.
    ended: DeferredQueue<String>,
}

/// Writes a large payload, closes its sending half, and keeps reading.
struct HalfCloser {
    seen: Rc<Seen>,
}

impl Protocol for HalfCloser {
    fn connection_made(&mut self, t: &Transport) {
        t.write(&payload());
        t.lose_write_connection();
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        // Bytes that arrive in several reads make one event.
        let text = String::from_utf8_lossy(data);
        let mut events = self.seen.events.borrow_mut();
        match events.last_mut() {
            Some(last) if last.starts_with("data ") => last.push_str(&text),
            _ => events.push(format!("data {text}")),
        }
    }

    fn write_connection_lost(&mut self, t: &Transport) {
        self.seen.write_lost.set(self.seen.write_lost.get() + 1);
        self.seen.buffered_then.set(Some(t.buffered_size()));
        self.seen.events.borrow_mut().push("write lost".into());
        self.seen.write_lost_q.put(()).unwrap();
    }

    fn read_connection_lost(&mut self, t: &Transport) {
        self.seen.events.borrow_mut().push("read lost".into());
        t.lose_connection();
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.seen.events.borrow_mut().push("connection lost".into());
        let how = if reason.is_clean() {
            "clean".to_string()
        } else {
            reason.to_string()
        };
        self.seen.ended.put(how).unwrap();
    }
}

#[torsion::test(timeout = 20)]
async fn write_connection_lost_follows_the_flush_and_reading_goes_on() -> Result<(), Failure> {
    let seen: Rc<Seen> = Rc::default();
    let s = seen.clone();
    let port = reactor().listen_tcp_on(
        0,
        factory(move || HalfCloser { seen: s.clone() }),
        "127.0.0.1",
    )?;
    let mut peer = tokio::net::TcpStream::connect(port.get_host().socket_addr().unwrap()).await?;
    // The first MiB: the rest does not fit in the socket buffers, so the write half cannot
    // have been shut yet.
    let mut received = vec![0; 1 << 20];
    peer.read_exact(&mut received).await?;
    assert_eq!(
        seen.write_lost.get(),
        0,
        "called before the payload was flushed"
    );
    peer.read_to_end(&mut received).await?;
    assert_eq!(received.len(), PAYLOAD, "the payload was cut short");
    assert!(received == payload(), "the payload was garbled");
    // End of stream read: the write half is shut, and the protocol heard it.
    next(&seen.write_lost_q).await;
    assert_eq!(seen.buffered_then.get(), Some(0));
    // The connection still reads: the peer's bytes arrive, then its end closes it.
    peer.write_all(b"after").await?;
    peer.shutdown().await?;
    let how = next(&seen.ended).await;
    port.stop_listening().await?;
    assert_eq!(how, "clean");
    assert_eq!(seen.write_lost.get(), 1);
    let events = seen.events.borrow().join(", ");
    assert_eq!(events, "write lost, data after, read lost, connection lost");
    Ok(())
}
