//! Connection limits: `LimitTotalConnectionsFactory` (at most N connections open at once) and
//! `LimitConnectionsByPeer` (at most N from each peer address), as in Twisted.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use super::wrapper::{Wrapped, Wrapper, WrappingFactory};
use crate::protocol::Factory;
use crate::transport::Address;

/// The [`Wrapper`] of a [`LimitTotalConnectionsFactory`]: counts open connections and
/// refuses those past the limit.
#[derive(Debug)]
pub struct TotalLimitPolicy {
    limit: Cell<Option<usize>>,
    count: Cell<usize>,
}

impl Wrapper for TotalLimitPolicy {
    type State = ();
    const WRAPS_TRANSPORT: bool = false;

    fn admit(&self, addr: &Address) -> Option<()> {
        let count = self.count.get();
        if self.limit.get().is_some_and(|limit| count >= limit) {
            tracing::debug!(target: "torsion", "connection limit reached; refusing {addr}");
            return None;
        }
        self.count.set(count + 1);
        Some(())
    }

    fn release(&self, _conn: &Wrapped<Self>) {
        self.count.set(self.count.get().saturating_sub(1));
    }
}

/// Refuses connections past a number open at once (Twisted's
/// `LimitTotalConnectionsFactory`): a connection over the limit is closed as soon as it is
/// accepted. The count goes down when a connection is lost.
///
/// ```
/// use torsion::protocols::policies::LimitTotalConnectionsFactory;
/// use torsion::{factory, testing::StringTransport, transport::Address};
/// use torsion::{ConnectionEnd, Factory, Protocol, Transport};
///
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _: &Transport, _: &[u8]) {}
/// }
///
/// let f = LimitTotalConnectionsFactory::new(factory(|| Quiet), 1);
/// let addr = Address::Named("peer".into());
/// let mut first = f.build_protocol(&addr).unwrap();
/// first.connection_made(&StringTransport::new().transport());
/// assert!(f.build_protocol(&addr).is_none()); // over the limit: refused
/// first.connection_lost(ConnectionEnd::Done);
/// assert_eq!(f.connection_count(), 0);
/// assert!(f.build_protocol(&addr).is_some());
/// ```
pub struct LimitTotalConnectionsFactory<F> {
    inner: WrappingFactory<F, TotalLimitPolicy>,
}

impl<F: Factory> LimitTotalConnectionsFactory<F> {
    /// Wraps `wrapped`, allowing at most `connection_limit` connections at once.
    pub fn new(wrapped: F, connection_limit: usize) -> LimitTotalConnectionsFactory<F> {
        let policy = TotalLimitPolicy {
            limit: Cell::new(Some(connection_limit)),
            count: Cell::new(0),
        };
        LimitTotalConnectionsFactory {
            inner: WrappingFactory::new(wrapped, policy),
        }
    }
}

impl<F> LimitTotalConnectionsFactory<F> {
    /// How many connections are open (Twisted's `connectionCount`).
    pub fn connection_count(&self) -> usize {
        self.inner.wrapper().count.get()
    }

    /// The limit (Twisted's `connectionLimit`); `None` is no limit.
    pub fn connection_limit(&self) -> Option<usize> {
        self.inner.wrapper().limit.get()
    }

    /// Changes the limit; connections already open stay open.
    pub fn set_connection_limit(&self, limit: Option<usize>) {
        self.inner.wrapper().limit.set(limit);
    }
}

wrapping_newtype!(LimitTotalConnectionsFactory, TotalLimitPolicy);

impl<F> fmt::Debug for LimitTotalConnectionsFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitTotalConnectionsFactory")
            .field("connection_limit", &self.connection_limit())
            .field("connection_count", &self.connection_count())
            .finish()
    }
}

/// Twisted's default for `LimitConnectionsByPeer.maxConnectionsPerPeer`.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 5;

/// The [`Wrapper`] of a [`LimitConnectionsByPeer`]: counts connections per peer IP address.
/// Its per-connection state is the address counted (`None` for peers without an IP
/// address, such as Unix sockets, which are not limited).
#[derive(Debug)]
pub struct PeerLimitPolicy {
    max: Cell<usize>,
    peers: RefCell<HashMap<IpAddr, usize>>,
}

/// The IP a peer is counted under: IPv4-mapped IPv6 addresses count as their IPv4 address.
fn peer_ip(addr: &Address) -> Option<IpAddr> {
    addr.socket_addr().map(|a| a.ip().to_canonical())
}

impl Wrapper for PeerLimitPolicy {
    type State = Option<IpAddr>;
    const WRAPS_TRANSPORT: bool = false;

    fn admit(&self, addr: &Address) -> Option<Option<IpAddr>> {
        let Some(ip) = peer_ip(addr) else {
            return Some(None);
        };
        let mut peers = self.peers.borrow_mut();
        if peers.get(&ip).copied().unwrap_or(0) >= self.max.get() {
            tracing::debug!(target: "torsion", "too many connections from {ip}; refusing {addr}");
            return None;
        }
        *peers.entry(ip).or_insert(0) += 1;
        Some(Some(ip))
    }

    fn release(&self, conn: &Wrapped<Self>) {
        let Some(ip) = conn.state() else { return };
        let mut peers = self.peers.borrow_mut();
        if let Some(n) = peers.get_mut(ip) {
            *n -= 1;
            if *n == 0 {
                peers.remove(ip);
            }
        }
    }
}

/// Refuses connections from a peer IP address that already has a number of connections
/// open (Twisted's `LimitConnectionsByPeer`). Peers are counted by IP address, not port; a
/// peer's entry is removed when its last connection goes, so the table holds only peers
/// with open connections.
///
/// ```
/// use torsion::protocols::policies::LimitConnectionsByPeer;
/// use torsion::{factory, transport::Address, Factory, Protocol, Transport};
///
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _: &Transport, _: &[u8]) {}
/// }
///
/// let f = LimitConnectionsByPeer::new(factory(|| Quiet), 1);
/// let a = Address::Tcp("10.0.0.1:4000".parse().unwrap());
/// let a2 = Address::Tcp("10.0.0.1:4001".parse().unwrap());
/// let b = Address::Tcp("10.0.0.2:4000".parse().unwrap());
/// let first = f.build_protocol(&a).unwrap();
/// assert!(f.build_protocol(&a2).is_none()); // same IP, other port: refused
/// let other = f.build_protocol(&b).unwrap();
/// assert_eq!(f.peer_count(), 2);
/// drop((first, other)); // never connected: released all the same
/// assert_eq!(f.peer_count(), 0);
/// ```
pub struct LimitConnectionsByPeer<F> {
    inner: WrappingFactory<F, PeerLimitPolicy>,
}

impl<F: Factory> LimitConnectionsByPeer<F> {
    /// Wraps `wrapped`, allowing at most `max_connections_per_peer` connections from each
    /// peer IP address (Twisted's default is [`DEFAULT_MAX_CONNECTIONS_PER_PEER`]).
    pub fn new(wrapped: F, max_connections_per_peer: usize) -> LimitConnectionsByPeer<F> {
        let policy = PeerLimitPolicy {
            max: Cell::new(max_connections_per_peer),
            peers: RefCell::new(HashMap::new()),
        };
        LimitConnectionsByPeer {
            inner: WrappingFactory::new(wrapped, policy),
        }
    }
}

impl<F> LimitConnectionsByPeer<F> {
    /// The limit per peer (Twisted's `maxConnectionsPerPeer`).
    pub fn max_connections_per_peer(&self) -> usize {
        self.inner.wrapper().max.get()
    }

    /// Changes the limit per peer; connections already open stay open.
    pub fn set_max_connections_per_peer(&self, max: usize) {
        self.inner.wrapper().max.set(max);
    }

    /// How many connections `ip` has open.
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        let peers = self.inner.wrapper().peers.borrow();
        peers.get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    /// How many peers have connections open (the size of Twisted's `peerConnections`).
    pub fn peer_count(&self) -> usize {
        self.inner.wrapper().peers.borrow().len()
    }
}

wrapping_newtype!(LimitConnectionsByPeer, PeerLimitPolicy);

impl<F> fmt::Debug for LimitConnectionsByPeer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitConnectionsByPeer")
            .field("max_connections_per_peer", &self.max_connections_per_peer())
            .field("peers", &self.peer_count())
            .finish()
    }
}
