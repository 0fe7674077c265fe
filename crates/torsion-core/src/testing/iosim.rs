//! Two protocols connected through memory (Twisted's `iosim.connect` and its `IOPump`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::producer::{Due, Producer, ProducerError, ProducerSlot};
use crate::transport::{Address, Transport, TransportImpl};
use crate::Protocol;

/// One side's transport: what its protocol writes waits here until the pump moves it.
struct Side {
    outgoing: RefCell<Vec<u8>>,
    lose: Cell<bool>,
    abort: Cell<bool>,
    write_closed: Cell<bool>,
    closed: Cell<bool>,
    paused: Cell<bool>,
    /// The other side has heard `read_connection_lost` for this side's half-close.
    eof_sent: Cell<bool>,
    host: Address,
    peer: Address,
    /// Flow control: the producer writing to this side, and the watermarks.
    producer: ProducerSlot,
}

impl Side {
    fn new(host: &str, peer: &str) -> Rc<Side> {
        Rc::new(Side {
            outgoing: RefCell::default(),
            lose: Cell::new(false),
            abort: Cell::new(false),
            write_closed: Cell::new(false),
            closed: Cell::new(false),
            paused: Cell::new(false),
            eof_sent: Cell::new(false),
            host: Address::Named(host.to_owned()),
            peer: Address::Named(peer.to_owned()),
            producer: ProducerSlot::default(),
        })
    }

    /// Makes the call the producer is owed for the bytes waiting now; true if one was made.
    fn drive_producer(&self) -> bool {
        let due = self.producer.due(self.outgoing.borrow().len());
        match due {
            Some((p, Due::Pause)) => p.pause_producing(),
            Some((p, Due::Resume)) => p.resume_producing(),
            None => return false,
        }
        true
    }

    /// The connection ended: stops the producer.
    fn stop_producer(&self) {
        if let Some(p) = self.producer.unregister() {
            p.stop_producing();
        }
    }
}

impl TransportImpl for Side {
    fn write(&self, data: &[u8]) {
        if !self.closed.get() && !self.write_closed.get() && !self.abort.get() {
            self.producer.wrote();
            self.outgoing.borrow_mut().extend_from_slice(data);
        }
    }
    fn lose_connection(&self) {
        self.lose.set(true);
    }
    fn abort_connection(&self) {
        self.abort.set(true);
    }
    fn lose_write_connection(&self) {
        self.write_closed.set(true);
    }
    fn get_peer(&self) -> Address {
        self.peer.clone()
    }
    fn get_host(&self) -> Address {
        self.host.clone()
    }
    fn buffered_size(&self) -> usize {
        self.outgoing.borrow().len()
    }
    fn is_connected(&self) -> bool {
        !self.closed.get()
    }
    fn disconnecting(&self) -> bool {
        self.closed.get() || self.lose.get() || self.abort.get()
    }
    fn pause_producing(&self) {
        self.paused.set(true);
    }
    fn resume_producing(&self) {
        self.paused.set(false);
    }
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        if self.closed.get() || self.lose.get() || self.abort.get() || self.write_closed.get() {
            return Err(ProducerError::Disconnected);
        }
        self.producer.register(producer, streaming)
    }
    fn unregister_producer(&self) {
        drop(self.producer.unregister());
    }
    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.producer.set_limits(high, low);
    }
    fn write_buffer_limits(&self) -> (usize, usize) {
        self.producer.limits()
    }
}

/// A client and a server protocol connected through memory. Nothing moves until
/// [`pump`](Pump::pump) or [`flush`](Pump::flush) is called, so a test sees every step.
///
/// ```
/// use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
/// use torsion::testing::connected_pair;
///
/// struct Shout;
/// impl LineReceiver for Shout {
///     fn line_received(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
///         t.send_line(&line.to_ascii_uppercase());
///     }
/// }
/// struct Ask(Vec<Vec<u8>>);
/// impl LineReceiver for Ask {
///     fn connection_made(&mut self, t: &mut LineTransport<'_>) { t.send_line(b"hi") }
///     fn line_received(&mut self, _: &mut LineTransport<'_>, line: &[u8]) {
///         self.0.push(line.to_vec());
///     }
/// }
///
/// let mut pump = connected_pair(Lines::new(Ask(vec![])), Lines::new(Shout));
/// pump.flush();
/// assert_eq!(pump.client().handler().0, vec![b"HI".to_vec()]);
/// ```
pub struct Pump<C, S> {
    client: C,
    server: S,
    client_side: Rc<Side>,
    server_side: Rc<Side>,
    client_t: Transport,
    server_t: Transport,
    closed: bool,
}

/// Connects `client` and `server` through memory and calls both `connection_made`s (server
/// first, as over TCP).
pub fn connected_pair<C: Protocol, S: Protocol>(client: C, server: S) -> Pump<C, S> {
    let client_side = Side::new("memory:client", "memory:server");
    let server_side = Side::new("memory:server", "memory:client");
    let mut pump = Pump {
        client,
        server,
        client_t: Transport::new(client_side.clone()),
        server_t: Transport::new(server_side.clone()),
        client_side,
        server_side,
        closed: false,
    };
    pump.server.connection_made(&pump.server_t);
    pump.client.connection_made(&pump.client_t);
    pump
}

impl<C: Protocol, S: Protocol> Pump<C, S> {
    /// The client protocol.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// The client protocol, mutably.
    pub fn client_mut(&mut self) -> &mut C {
        &mut self.client
    }

    /// The server protocol.
    pub fn server(&self) -> &S {
        &self.server
    }

    /// The server protocol, mutably.
    pub fn server_mut(&mut self) -> &mut S {
        &mut self.server
    }

    /// The client's transport (what the client protocol writes to).
    pub fn client_transport(&self) -> &Transport {
        &self.client_t
    }

    /// The server's transport.
    pub fn server_transport(&self) -> &Transport {
        &self.server_t
    }

    /// True once the connection has closed (both sides got `connection_lost`).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Moves pending bytes once in each direction, then handles closes. Returns true if
    /// anything moved.
    ///
    /// Registered producers are driven as a socket would: before the bytes move, a
    /// streaming producer with more than its high watermark waiting is paused; after, the
    /// buffer is empty, so a paused one is resumed and a pull producer is asked for more
    /// (a call counts as movement, so [`flush`](Self::flush) runs a pull producer to its end).
    pub fn pump(&mut self) -> bool {
        if self.closed {
            return false;
        }
        self.client_side.drive_producer();
        self.server_side.drive_producer();
        // As Twisted's IOPump: take both directions' bytes first, then deliver them, so a
        // reply travels on the next pump.
        let take = |from: &Side, to: &Side| {
            if to.paused.get() || from.abort.get() {
                Vec::new()
            } else {
                std::mem::take(&mut *from.outgoing.borrow_mut())
            }
        };
        let to_server = take(&self.client_side, &self.server_side);
        let to_client = take(&self.server_side, &self.client_side);
        let mut moved = false;
        if !to_server.is_empty() {
            moved = true;
            self.server.data_received(&self.server_t, &to_server);
        }
        if !to_client.is_empty() {
            moved = true;
            self.client.data_received(&self.client_t, &to_client);
        }
        moved |= self.client_side.drive_producer();
        moved |= self.server_side.drive_producer();
        moved |= self.half_close(true) | self.half_close(false);
        let done = |s: &Side| s.abort.get() || (s.lose.get() && s.outgoing.borrow().is_empty());
        if done(&self.client_side) || done(&self.server_side) || self.both_halves_closed() {
            let aborted = self.client_side.abort.get() || self.server_side.abort.get();
            self.close(aborted);
            moved = true;
        }
        moved
    }

    /// A side that closed its writing half, once its bytes are delivered: it hears
    /// `write_connection_lost` and the other side `read_connection_lost`, once.
    fn half_close(&mut self, from_client: bool) -> bool {
        let side = if from_client {
            &self.client_side
        } else {
            &self.server_side
        };
        if !side.write_closed.get() || side.eof_sent.get() || !side.outgoing.borrow().is_empty() {
            return false;
        }
        side.eof_sent.set(true);
        // As a real transport: the writer hears its half is shut, then the reader its end.
        if from_client {
            self.client.write_connection_lost(&self.client_t);
            self.server.read_connection_lost(&self.server_t);
        } else {
            self.server.write_connection_lost(&self.server_t);
            self.client.read_connection_lost(&self.client_t);
        }
        true
    }

    /// Both halves closed: the connection is done.
    fn both_halves_closed(&self) -> bool {
        self.client_side.eof_sent.get() && self.server_side.eof_sent.get()
    }

    fn close(&mut self, aborted: bool) {
        self.closed = true;
        self.client_side.closed.set(true);
        self.server_side.closed.set(true);
        // As a real transport, producers are stopped before `connection_lost`.
        self.server_side.stop_producer();
        self.client_side.stop_producer();
        let reason = || {
            if aborted {
                crate::ConnectionEnd::Aborted
            } else {
                crate::ConnectionEnd::Done
            }
        };
        self.server.connection_lost(reason());
        self.client.connection_lost(reason());
    }

    /// Pumps until nothing moves (at most 10,000 rounds, against protocols that talk
    /// forever). Returns the number of rounds that moved something.
    pub fn flush(&mut self) -> usize {
        let mut rounds = 0;
        while rounds < 10_000 && self.pump() {
            rounds += 1;
        }
        rounds
    }
}
