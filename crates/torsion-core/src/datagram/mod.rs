//! Datagram protocols and transports (Twisted's `DatagramProtocol` and `IUDPTransport`),
//! shared by [UDP](crate::udp) and [Unix datagram sockets](crate::unix_datagram).
//!
//! A datagram socket has no connections: one [`DatagramProtocol`] object serves the whole
//! port and hears every datagram with the address it came from. It writes with the
//! [`DatagramTransport`] it gets on every call — a cheap handle to the port, also returned by
//! [`Reactor::listen_udp`](crate::Reactor::listen_udp), so "keep transports, not protocols"
//! holds here too.
//!
//! ```
//! use torsion::datagram::{DatagramProtocol, DatagramTransport};
//! use torsion::transport::Address;
//! use torsion::Reactor;
//!
//! /// Twisted's UDP echo, in Rust.
//! struct Echo;
//!
//! impl DatagramProtocol for Echo {
//!     fn datagram_received(&mut self, t: &DatagramTransport, data: &[u8], addr: &Address) {
//!         let _ = t.write(data, addr); // UDP is lossy: a failed send is not this echo's concern
//!     }
//! }
//!
//! let r = Reactor::new();
//! let port = r.listen_udp(0, Echo).unwrap(); // port 0: any free port
//! assert_ne!(port.get_host().port(), Some(0));
//! port.stop_listening();
//! ```
//!
//! How the engine behaves, whatever the socket:
//!
//! - Datagrams are read into the thread's shared 64 KiB buffer (nothing is allocated per
//!   datagram), at most 32 per wake-up before other tasks get a turn.
//! - A datagram longer than the port's `max_packet_size` is dropped with a debug log line,
//!   never delivered cut short (Twisted hands over the truncated bytes; a truncated datagram is
//!   a malformed message, and a protocol cannot tell it was cut).
//! - UDP on Linux reads in batches: up to 32 datagrams with one `recvmmsg`. The datagrams
//!   written while a batch is delivered (from `datagram_received`) are queued and sent with
//!   one `sendmmsg` when it is done, in the order written; such a write returns `Ok` once
//!   queued, and a later error of the send is logged and counted
//!   ([`failed_writes`](DatagramTransportImpl::failed_writes)) — except a datagram over 9 KiB,
//!   which goes at once. Twisted sends every write at once (docs/design.md, "UDP writes during
//!   a read batch are sent together").
//! - Other writes go straight to the socket: one system call per datagram, no buffer. When the
//!   socket's send buffer is full the datagram is dropped with a debug log line and counted
//!   ([`dropped_writes`](DatagramTransportImpl::dropped_writes)) — the loss UDP allows anyway, and what keeps a
//!   flood of writes from growing memory. (Twisted raises the `EAGAIN` instead; few callers
//!   can do better than drop.) A datagram too long for the socket is an error
//!   (`EMSGSIZE`, Twisted's `MessageLengthError`).
//! - On a connected socket, the kernel's "port unreachable" (ICMP) reaches the protocol's
//!   [`connection_refused`](DatagramProtocol::connection_refused), whether it shows up on a
//!   read, a write, or as a socket error with nothing to read.
//! - A panic in any protocol method is caught and logged; the port keeps working (a panic in
//!   `start_protocol` fails the listen call instead).
//! - The protocol is never re-entered: `stop_listening` or a refused write inside a callback
//!   take effect after it returns.

#[cfg(target_os = "linux")]
mod batch;
mod port;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Deref;
use std::rc::Rc;

use crate::defer::Deferred;
use crate::transport::Address;

pub(crate) use port::{open, DatagramSocket, Port};

/// Which interface a multicast membership or outgoing multicast datagram uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MulticastInterface {
    /// Let the system choose (`INADDR_ANY`, or interface index 0 for IPv6).
    #[default]
    Default,
    /// The IPv4 interface with this address (Twisted's `interface="127.0.0.1"`).
    Address(Ipv4Addr),
    /// The interface with this index (as `ip link` numbers them); the only way to name an
    /// interface for IPv6.
    Index(u32),
}

/// The default largest datagram a port delivers (Twisted's `maxPacketSize`, 8192).
pub const DEFAULT_MAX_PACKET_SIZE: usize = 8192;

/// The largest `max_packet_size` a port accepts: the largest UDP payload there is.
pub const MAX_PACKET_SIZE_LIMIT: usize = 65535;

/// The meaning of datagrams (Twisted's `DatagramProtocol`). One object serves a whole port.
///
/// Every method gets the port's [`DatagramTransport`]. A panic in any method is caught and
/// logged, and the port keeps working.
pub trait DatagramProtocol: 'static {
    /// The port is open (Twisted's `startProtocol`); called once, before any datagram.
    fn start_protocol(&mut self, transport: &DatagramTransport) {
        let _ = transport;
    }

    /// A datagram arrived from `addr` (Twisted's `datagramReceived`). `data` is the whole
    /// datagram (perhaps empty); reply with `transport.write(reply, addr)`.
    fn datagram_received(&mut self, transport: &DatagramTransport, data: &[u8], addr: &Address);

    /// On a connected socket, the peer said nobody listens there (an ICMP "port unreachable"
    /// for UDP; Twisted's `connectionRefused`). The socket stays open and connected.
    fn connection_refused(&mut self, transport: &DatagramTransport) {
        let _ = transport;
    }

    /// The port has closed (Twisted's `stopProtocol`): `stop_listening` or reactor shutdown.
    fn stop_protocol(&mut self) {}
}

impl DatagramProtocol for Box<dyn DatagramProtocol> {
    fn start_protocol(&mut self, transport: &DatagramTransport) {
        (**self).start_protocol(transport)
    }
    fn datagram_received(&mut self, transport: &DatagramTransport, data: &[u8], addr: &Address) {
        (**self).datagram_received(transport, data, addr)
    }
    fn connection_refused(&mut self, transport: &DatagramTransport) {
        (**self).connection_refused(transport)
    }
    fn stop_protocol(&mut self) {
        (**self).stop_protocol()
    }
}

fn unsupported<T>() -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "not supported by this datagram transport",
    ))
}

/// What a datagram transport does; implement it to make a new kind (a test double, say).
///
/// The socket options (broadcast, multicast, TTL) are UDP's; other transports answer
/// `Unsupported`, as the defaults do.
pub trait DatagramTransportImpl {
    /// Sends one datagram to `addr` (Twisted's `write(datagram, addr)`).
    ///
    /// Never blocks. `Ok` means the datagram was handed to the system or, when the socket's
    /// send buffer was full, dropped and counted in [`dropped_writes`](Self::dropped_writes)
    /// — or, for UDP on Linux inside `datagram_received`, queued to go with the batch's other
    /// writes (its error, if any, then logged and counted in
    /// [`failed_writes`](Self::failed_writes); see [the module](self)).
    /// Errors: the port is closed (`NotConnected`), `addr` is not this transport's kind of
    /// address (`InvalidInput`), the datagram is too long (`EMSGSIZE`), and other socket
    /// errors. On a connected socket `addr` must be the peer (`InvalidInput` otherwise, as
    /// Twisted asserts).
    fn write(&self, data: &[u8], addr: &Address) -> io::Result<()>;

    /// Sends one datagram to the connected peer (Twisted's `write(datagram)` after
    /// `connect`); `NotConnected` when the socket is not connected.
    fn send(&self, data: &[u8]) -> io::Result<()>;

    /// Connects the socket to `addr` (Twisted's `connect(host, port)`): from now on only
    /// datagrams from `addr` arrive, [`send`](Self::send) goes there, and a "port
    /// unreachable" reaches [`DatagramProtocol::connection_refused`]. Connecting again moves
    /// the socket to a new peer. UDP takes IP addresses only (no name resolution).
    fn connect(&self, addr: &Address) -> io::Result<()>;

    /// This end's address; with port 0 this tells the port the system chose.
    fn get_host(&self) -> Address;

    /// The peer given to [`connect`](Self::connect), if any.
    fn get_peer(&self) -> Option<Address>;

    /// Closes the socket (Twisted's `stopListening`). The protocol's `stop_protocol` runs,
    /// then the socket is closed and the Deferred fires. Calling it again gives a Deferred
    /// that fires at the same time (or at once, when already closed).
    fn stop_listening(&self) -> Deferred<()>;

    /// True until the port has been told to stop listening.
    fn listening(&self) -> bool;

    /// How many datagrams were dropped because the socket's send buffer was full.
    fn dropped_writes(&self) -> u64 {
        0
    }

    /// How many datagrams written while a batch of datagrams was delivered (UDP on Linux:
    /// see [the module](self)) failed to go when the batch's writes were sent, with an error
    /// `write` would have returned had it sent at once. Each is also logged.
    fn failed_writes(&self) -> u64 {
        0
    }

    /// Allows sending to broadcast addresses (`SO_BROADCAST`; Twisted's
    /// `setBroadcastAllowed`).
    fn set_broadcast_allowed(&self, _allowed: bool) -> io::Result<()> {
        unsupported()
    }

    /// Reads `SO_BROADCAST`.
    fn get_broadcast_allowed(&self) -> io::Result<bool> {
        unsupported()
    }

    /// Joins the multicast `group` on `interface` (Twisted's `joinGroup`). Twisted returns a
    /// Deferred; the system call is synchronous, so this returns its result.
    fn join_group(&self, _group: IpAddr, _interface: MulticastInterface) -> io::Result<()> {
        unsupported()
    }

    /// Leaves the multicast `group` on `interface` (Twisted's `leaveGroup`).
    fn leave_group(&self, _group: IpAddr, _interface: MulticastInterface) -> io::Result<()> {
        unsupported()
    }

    /// Sets the time-to-live (IPv4) or hop limit (IPv6) of outgoing multicast datagrams
    /// (Twisted's `setTTL`; default 1, this network only).
    fn set_ttl(&self, _ttl: u32) -> io::Result<()> {
        unsupported()
    }

    /// Reads the multicast time-to-live (Twisted's `getTTL`).
    fn get_ttl(&self) -> io::Result<u32> {
        unsupported()
    }

    /// Whether this host's own multicast datagrams come back to its group members (Twisted's
    /// `setLoopbackMode`; on by default).
    fn set_loopback_mode(&self, _on: bool) -> io::Result<()> {
        unsupported()
    }

    /// Reads the multicast loopback mode (Twisted's `getLoopbackMode`).
    fn get_loopback_mode(&self) -> io::Result<bool> {
        unsupported()
    }

    /// Chooses the interface outgoing multicast datagrams leave by (Twisted's
    /// `setOutgoingInterface`).
    fn set_outgoing_interface(&self, _interface: MulticastInterface) -> io::Result<()> {
        unsupported()
    }
}

/// A handle to a datagram port: cheap to clone, every clone the same port. All of
/// [`DatagramTransportImpl`]'s methods are available on it.
#[derive(Clone)]
pub struct DatagramTransport {
    inner: Rc<dyn DatagramTransportImpl>,
}

impl DatagramTransport {
    /// Wraps a transport implementation.
    pub fn new(inner: Rc<dyn DatagramTransportImpl>) -> DatagramTransport {
        DatagramTransport { inner }
    }

    /// True when both handles are the same port.
    pub fn same(&self, other: &DatagramTransport) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Deref for DatagramTransport {
    type Target = dyn DatagramTransportImpl;

    fn deref(&self) -> &Self::Target {
        &*self.inner
    }
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport")
            .field("host", &self.inner.get_host())
            .field("peer", &self.inner.get_peer())
            .field("listening", &self.inner.listening())
            .finish()
    }
}
