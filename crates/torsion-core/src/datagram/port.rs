//! The datagram engine: a port's shared state, and the task that reads datagrams and calls
//! the protocol. Generic over the socket (UDP, Unix datagram); each socket kind implements
//! [`DatagramTransportImpl`](super::DatagramTransportImpl) for its `Port` in its own module.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

use socket2::SockRef;
use tokio::io::{Interest, Ready};

#[cfg(target_os = "linux")]
use super::batch::{self, SendQueue, Unsent};
use super::{DatagramProtocol, DatagramTransport, MAX_PACKET_SIZE_LIMIT};
use crate::defer::{succeed, Deferred, Trigger};
use crate::engine::{Callbacks, Closing};
use crate::error::ReactorNotRestartable;
use crate::reactor::{Disconnect, Reactor};
use crate::stream::{READ_BUF, READ_BUF_SIZE};
use crate::transport::Address;
use crate::Failure;

/// Datagrams read per wake-up before the port lets other tasks run.
const READS_PER_POLL: usize = 32;

/// What the engine needs of a non-blocking datagram socket (tokio's `UdpSocket` and
/// `UnixDatagram`).
pub(crate) trait DatagramSocket: AsFd + 'static {
    /// The sender's address as the socket reports it.
    type Peer;

    /// Waits for readiness (tokio's `ready`).
    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + '_;

    /// Runs `f`, clearing the readiness it reports `WouldBlock` for (tokio's `try_io`).
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;

    /// Reads one datagram (tokio's `try_recv_from`).
    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Self::Peer)>;

    /// Makes `cached` the address of `peer`, allocating only when it changed.
    fn cache_peer(peer: &Self::Peer, cached: &mut Address);

    /// The cache's starting value.
    fn blank_peer() -> Address;

    /// Whether reads and writes go in batches (`recvmmsg`, `sendmmsg`; see
    /// [`batch`](super::batch)): UDP on Linux.
    const BATCHED: bool = false;

    /// A sender read by a batched read, as this socket's kind of peer (`None` when the kind
    /// has no batched reads).
    fn peer_from_std(addr: SocketAddr) -> Option<Self::Peer> {
        let _ = addr;
        None
    }
}

/// A datagram port's shared state: the socket, where it is in its life, and who waits for it
/// to close. The port's task and every `DatagramTransport` point here.
pub(crate) struct Port<S> {
    sock: RefCell<Option<Rc<S>>>,
    pub(crate) host: Address,
    pub(crate) peer: RefCell<Option<Address>>,
    /// `Losing` once `stop_listening` (or the reactor's shutdown) asked it to close, then
    /// `Closed`.
    closing: Cell<Closing>,
    /// An `ECONNREFUSED` waits to be delivered to `connection_refused`.
    refused: Cell<bool>,
    callbacks: Callbacks,
    waker: RefCell<Option<Waker>>,
    closed_waiters: RefCell<Vec<Trigger<()>>>,
    dropped: Cell<u64>,
    /// Queued datagrams whose sending failed (see [`Port::send_or_queue`]).
    failed: Cell<u64>,
    /// True while the port's task delivers a batch of datagrams: writes are queued.
    batching: Cell<bool>,
    /// The datagrams written during a batch, sent together when it ends.
    #[cfg(target_os = "linux")]
    queue: RefCell<SendQueue>,
    max_packet_size: usize,
    live_id: Cell<Option<usize>>,
    reactor: Reactor,
}

impl<S: DatagramSocket> Port<S> {
    /// True once asked to stop, or closed.
    fn stopping(&self) -> bool {
        self.closing.get() != Closing::Open
    }

    /// Asks the port's task to close the port.
    fn stop(&self) {
        if self.closing.get() == Closing::Open {
            self.closing.set(Closing::Losing);
        }
    }

    /// Wakes the port's task, unless the event happened inside its own callback (the task
    /// looks at the port's state when the callback returns).
    fn notify(&self) {
        if !self.callbacks.running() {
            if let Some(w) = self.waker.borrow().as_ref() {
                w.wake_by_ref();
            }
        }
    }

    /// The open socket, or `NotConnected` once the port is stopping.
    pub(crate) fn socket(&self) -> io::Result<Rc<S>> {
        if self.stopping() {
            return Err(not_listening());
        }
        self.sock.borrow().clone().ok_or_else(not_listening)
    }

    /// Sends one datagram with `send` (which gets the socket), applying the engine's rules:
    /// retry on `EINTR`, drop and count on `EAGAIN`, `connection_refused` on `ECONNREFUSED`
    /// when connected. Unconnected, `ECONNREFUSED` is ignored when `stale_refusals` (UDP: it
    /// reports an earlier datagram's ICMP error, not this one's) and returned otherwise.
    pub(crate) fn send_with(
        &self,
        len: usize,
        dest: &dyn fmt::Display,
        stale_refusals: bool,
        send: impl Fn(SockRef<'_>) -> io::Result<usize>,
    ) -> io::Result<()> {
        let sock = self.socket()?;
        loop {
            return match send(SockRef::from(&*sock)) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.dropped.set(self.dropped.get() + 1);
                    tracing::debug!(
                        target: "torsion",
                        "{}: send buffer full, dropped a {len}-byte datagram to {dest}",
                        self.host
                    );
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    if self.peer.borrow().is_some() {
                        self.refused.set(true);
                        self.notify();
                        Ok(())
                    } else if stale_refusals {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
                Err(e) => Err(e),
            };
        }
    }

    /// Sends one datagram to `to` (`None`: the connected peer) as [`send_with`](Self::send_with)
    /// does — except while the port's task delivers a batch of datagrams read together
    /// (UDP on Linux), when a datagram of up to [`batch::MAX_QUEUED`] bytes is queued and sent
    /// with the others written during the batch, in one `sendmmsg`, when the batch ends (or
    /// the queue fills). A queued datagram's error cannot be returned: a full send buffer
    /// drops and counts it as ever, a refusal on a connected port reaches
    /// `connection_refused`, and any other error is logged and counted in
    /// [`failed_writes`](Self::failed_writes). Longer datagrams go at once, after the queue,
    /// so `EMSGSIZE` is still the `write`'s error.
    pub(crate) fn send_or_queue(
        &self,
        data: &[u8],
        to: Option<SocketAddr>,
        dest: &dyn fmt::Display,
        send: impl Fn(SockRef<'_>) -> io::Result<usize>,
    ) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if self.batching.get() {
            self.socket()?;
            if data.len() <= batch::MAX_QUEUED {
                if !self.queue.borrow().fits(data.len()) {
                    self.flush_queue();
                }
                self.queue.borrow_mut().push(data, to);
                return Ok(());
            }
            self.flush_queue();
        }
        let _ = to;
        self.send_with(data.len(), dest, true, send)
    }

    /// Sends the queued datagrams (see [`send_or_queue`](Self::send_or_queue)).
    #[cfg(target_os = "linux")]
    fn flush_queue(&self) {
        let sock = self.sock.borrow().clone();
        let mut queue = self.queue.borrow_mut();
        if queue.is_empty() {
            return;
        }
        let Some(sock) = sock else {
            // Closed under the batch (not seen: the task closes the socket after it).
            *queue = SendQueue::default();
            return;
        };
        queue.flush(sock.as_fd(), |why, len, to| match why {
            Unsent::Full => {
                self.dropped.set(self.dropped.get() + 1);
                tracing::debug!(
                    target: "torsion",
                    "{}: send buffer full, dropped a {len}-byte datagram to {}",
                    self.host,
                    batch::describe(to)
                );
            }
            Unsent::Refused => {
                // Connected: the peer refused. Unconnected, an earlier datagram's ICMP
                // error, ignored as an unbatched write ignores it.
                if self.peer.borrow().is_some() {
                    self.refused.set(true);
                    self.notify();
                }
            }
            Unsent::Failed(e) => {
                self.failed.set(self.failed.get() + 1);
                tracing::warn!(
                    target: "torsion",
                    "{}: a {len}-byte datagram to {} written during a batch was not sent: {e}",
                    self.host,
                    batch::describe(to)
                );
            }
        });
    }

    /// How many queued datagrams failed to go (see [`send_or_queue`](Self::send_or_queue)).
    pub(crate) fn failed_writes(&self) -> u64 {
        self.failed.get()
    }

    /// On a connected port, refuses destinations other than the peer (the system would send
    /// there anyway). `same` compares two addresses of this kind of socket.
    pub(crate) fn check_destination(
        &self,
        addr: &Address,
        same: impl Fn(&Address, &Address) -> bool,
    ) -> io::Result<()> {
        match &*self.peer.borrow() {
            Some(peer) if !same(peer, addr) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("this port is connected to {peer}; it cannot write to {addr}"),
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn dropped_writes(&self) -> u64 {
        self.dropped.get()
    }

    pub(crate) fn listening(&self) -> bool {
        !self.stopping()
    }

    pub(crate) fn stop_listening(&self) -> Deferred<()> {
        if self.closing.get() == Closing::Closed {
            return succeed(());
        }
        let d = Deferred::new();
        self.closed_waiters.borrow_mut().push(d.trigger());
        self.stop();
        if self.reactor.finished() {
            // The port's task went with the event loop: nobody else will close the socket.
            self.close();
        } else {
            self.notify();
        }
        d
    }

    /// Closes the socket and fires whoever waits for that.
    fn close(&self) {
        self.closing.set(Closing::Closed);
        let sock = self.sock.borrow_mut().take();
        drop(sock);
        if let Some(id) = self.live_id.take() {
            self.reactor.unregister_live(id);
        }
        let waiters = std::mem::take(&mut *self.closed_waiters.borrow_mut());
        for t in waiters {
            let _ = t.try_callback(());
        }
    }

    /// Calls into the protocol with panics contained and logged.
    fn call<P>(&self, what: &str, f: impl FnOnce()) {
        if let Err(p) = self.callbacks.call(f) {
            crate::log::error_event(format_args!(
                "datagram protocol {} on {} panicked in {what} ({}); the port goes on",
                std::any::type_name::<P>(),
                self.host,
                p.message()
            ));
        }
    }
}

fn not_listening() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the port is not listening")
}

impl<S: DatagramSocket> Disconnect for Port<S> {
    fn disconnect_for_shutdown(&self) {
        self.stop();
        if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// Opens a datagram port on `sock`: records it with the reactor, runs the protocol's
/// `start_protocol`, and spawns the task that reads datagrams. `wrap` makes the transport
/// handle from the port (each socket kind implements
/// [`DatagramTransportImpl`](super::DatagramTransportImpl) itself).
pub(crate) fn open<S: DatagramSocket, P: DatagramProtocol>(
    reactor: &Reactor,
    sock: S,
    host: Address,
    peer: Option<Address>,
    max_packet_size: usize,
    mut proto: P,
    wrap: impl FnOnce(Rc<Port<S>>) -> DatagramTransport,
) -> Result<DatagramTransport, Failure> {
    let sock = Rc::new(sock);
    let port = Rc::new(Port {
        sock: RefCell::new(Some(sock.clone())),
        host,
        peer: RefCell::new(peer),
        closing: Cell::new(Closing::Open),
        refused: Cell::new(false),
        callbacks: Callbacks::default(),
        waker: RefCell::new(None),
        closed_waiters: RefCell::new(Vec::new()),
        dropped: Cell::new(0),
        failed: Cell::new(0),
        batching: Cell::new(false),
        #[cfg(target_os = "linux")]
        queue: RefCell::new(SendQueue::default()),
        max_packet_size: max_packet_size.clamp(1, MAX_PACKET_SIZE_LIMIT),
        live_id: Cell::new(None),
        reactor: reactor.clone(),
    });
    let weak: Weak<dyn Disconnect> = {
        let w: Weak<Port<S>> = Rc::downgrade(&port);
        w
    };
    port.live_id.set(Some(reactor.register_live(weak)));
    let transport = wrap(port.clone());

    let started = port.callbacks.call(|| proto.start_protocol(&transport));
    if let Err(p) = started {
        port.close();
        return Err(Failure::new(p));
    }
    let task = run_port(port.clone(), sock, proto, transport.clone());
    if reactor.spawn_task(task).is_none() {
        port.close();
        return Err(ReactorNotRestartable.into());
    }
    Ok(transport)
}

/// What woke the port's task.
enum Wake {
    State,
    Ready(io::Result<Ready>),
}

/// The port's task: reads datagrams and delivers them until the port stops.
async fn run_port<S: DatagramSocket, P: DatagramProtocol>(
    port: Rc<Port<S>>,
    sock: Rc<S>,
    mut proto: P,
    transport: DatagramTransport,
) {
    let mut from = S::blank_peer();
    loop {
        if port.refused.replace(false) {
            port.call::<P>("connection_refused", || {
                proto.connection_refused(&transport)
            });
        }
        if port.stopping() {
            break;
        }
        let woke = {
            let mut ready = pin!(sock.ready(Interest::READABLE | Interest::ERROR));
            poll_fn(|cx| {
                if port.stopping() || port.refused.get() {
                    return Poll::Ready(Wake::State);
                }
                {
                    let mut w = port.waker.borrow_mut();
                    match w.as_ref() {
                        Some(old) if old.will_wake(cx.waker()) => {}
                        _ => *w = Some(cx.waker().clone()),
                    }
                }
                ready.as_mut().poll(cx).map(Wake::Ready)
            })
            .await
        };
        let ready = match woke {
            Wake::State => continue,
            Wake::Ready(Ok(r)) => r,
            Wake::Ready(Err(e)) => {
                crate::log::error_event(format_args!(
                    "datagram port {} cannot wait for its socket ({e}); closing it",
                    port.host
                ));
                break;
            }
        };
        if ready.is_error() {
            take_socket_error(&port, &sock);
        }
        if ready.is_readable() && read(&port, &sock, &mut proto, &transport, &mut from) {
            // Fair share used, datagrams remain: let other tasks run, then come back.
            tokio::task::yield_now().await;
        }
    }
    port.call::<P>("stop_protocol", || proto.stop_protocol());
    drop(sock);
    port.close();
}

/// Reads the socket's pending error (`SO_ERROR`) and clears tokio's error readiness, in that
/// order inside `try_io` so that an error arriving meanwhile is not lost.
fn take_socket_error<S: DatagramSocket>(port: &Port<S>, sock: &S) {
    let mut taken = None;
    let _ = sock.try_io(Interest::ERROR, || {
        taken = SockRef::from(sock).take_error().ok().flatten();
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
    if let Some(e) = taken {
        socket_error(port, e);
    }
}

/// An error the socket reported on a read or as `SO_ERROR`.
fn socket_error<S: DatagramSocket>(port: &Port<S>, e: io::Error) {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        if port.peer.borrow().is_some() {
            port.refused.set(true);
        }
    } else {
        tracing::debug!(target: "torsion", "datagram port {}: socket error {e}", port.host);
    }
}

/// Reads and delivers up to [`READS_PER_POLL`] datagrams, in batches where the socket has
/// them. True when it stopped because the budget ran out (more may be waiting).
fn read<S: DatagramSocket, P: DatagramProtocol>(
    port: &Port<S>,
    sock: &S,
    proto: &mut P,
    transport: &DatagramTransport,
    from: &mut Address,
) -> bool {
    #[cfg(target_os = "linux")]
    if S::BATCHED {
        return read_many(port, sock, proto, transport, from);
    }
    read_one_by_one(port, sock, proto, transport, from)
}

/// [`read`] with `recvmmsg`: each batch read is delivered with writes queued, then the
/// writes go in one `sendmmsg`.
#[cfg(target_os = "linux")]
fn read_many<S: DatagramSocket, P: DatagramProtocol>(
    port: &Port<S>,
    sock: &S,
    proto: &mut P,
    transport: &DatagramTransport,
    from: &mut Address,
) -> bool {
    let v6 = matches!(port.host.socket_addr(), Some(SocketAddr::V6(_)));
    // One byte more than the largest datagram delivered, to see a longer one.
    let slot = port.max_packet_size + 1;
    batch::with_recv(|received| {
        let mut budget = READS_PER_POLL;
        while budget > 0 {
            if port.stopping() || port.refused.get() {
                return false;
            }
            let n = match sock.try_io(Interest::READABLE, || {
                received.recv(sock.as_fd(), v6, slot, budget)
            }) {
                Ok(0) => return false,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    socket_error(port, e);
                    budget -= 1;
                    continue;
                }
            };
            budget -= n;
            port.batching.set(true);
            for i in 0..n {
                if port.stopping() {
                    break;
                }
                let (data, peer) = received.datagram(i, slot);
                if let Some(peer) = peer.and_then(S::peer_from_std) {
                    S::cache_peer(&peer, from);
                }
                if data.len() == slot {
                    tracing::debug!(
                        target: "torsion",
                        "datagram port {}: dropped a datagram from {from} longer than \
                         max_packet_size ({} bytes)",
                        port.host,
                        port.max_packet_size
                    );
                    continue;
                }
                port.call::<P>("datagram_received", || {
                    proto.datagram_received(transport, data, from)
                });
            }
            port.batching.set(false);
            port.flush_queue();
        }
        true
    })
}

/// [`read`] one datagram per system call.
fn read_one_by_one<S: DatagramSocket, P: DatagramProtocol>(
    port: &Port<S>,
    sock: &S,
    proto: &mut P,
    transport: &DatagramTransport,
    from: &mut Address,
) -> bool {
    READ_BUF.with_borrow_mut(|buf| {
        if buf.len() < READ_BUF_SIZE {
            buf.resize(READ_BUF_SIZE, 0);
        }
        // One byte more than the largest datagram delivered, to see a longer one.
        let limit = port.max_packet_size + 1;
        for _ in 0..READS_PER_POLL {
            if port.stopping() || port.refused.get() {
                return false;
            }
            let (n, peer) = match sock.try_recv_from(&mut buf[..limit]) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    socket_error(port, e);
                    continue;
                }
            };
            S::cache_peer(&peer, from);
            if n == limit {
                tracing::debug!(
                    target: "torsion",
                    "datagram port {}: dropped a datagram from {from} longer than \
                     max_packet_size ({} bytes)",
                    port.host,
                    port.max_packet_size
                );
                continue;
            }
            port.call::<P>("datagram_received", || {
                proto.datagram_received(transport, &buf[..n], from)
            });
        }
        true
    })
}
