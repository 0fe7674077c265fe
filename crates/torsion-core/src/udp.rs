//! UDP (Twisted's `listenUDP`, `listenMulticast` and `IUDPTransport`).
//!
//! [`Reactor::listen_udp`] opens a UDP port for one [`DatagramProtocol`] and returns its
//! [`DatagramTransport`]: write datagrams to any address with it, connect it to one peer,
//! join multicast groups, set the multicast TTL and loopback, and stop listening. How the
//! engine treats long datagrams, full send buffers, ICMP errors and panics is described in
//! [`crate::datagram`].
//!
//! A round trip on the loopback interface: the client sends "ping" from `start_protocol`, the
//! echo port answers, and the client stops the reactor when the answer arrives.
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddr};
//! use torsion::datagram::{DatagramProtocol, DatagramTransport};
//! use torsion::transport::Address;
//! use torsion::udp::UdpOptions;
//! use torsion::{reactor, Reactor};
//!
//! struct Echo;
//! impl DatagramProtocol for Echo {
//!     fn datagram_received(&mut self, t: &DatagramTransport, data: &[u8], addr: &Address) {
//!         t.write(data, addr).unwrap();
//!     }
//! }
//!
//! struct Client { server: Address }
//! impl DatagramProtocol for Client {
//!     fn start_protocol(&mut self, t: &DatagramTransport) {
//!         t.write(b"ping", &self.server).unwrap();
//!     }
//!     fn datagram_received(&mut self, _: &DatagramTransport, data: &[u8], addr: &Address) {
//!         assert_eq!((data, addr), (&b"ping"[..], &self.server));
//!         reactor().stop().unwrap();
//!     }
//! }
//!
//! let r = Reactor::new();
//! let loopback = UdpOptions { interface: Ipv4Addr::LOCALHOST.into(), ..UdpOptions::default() };
//! let echo = r.listen_udp_with(0, Echo, loopback).unwrap();
//! let server = echo.get_host();
//! r.listen_udp_with(0, Client { server }, loopback).unwrap();
//! r.run().unwrap();
//! ```
//!
//! Multicast: every UDP port can join groups. Two ports sharing one port number
//! ([`Reactor::listen_multicast`] with `listen_multiple`) each get a copy of a group's
//! datagrams:
//!
//! ```no_run
//! use std::net::{IpAddr, Ipv4Addr};
//! use torsion::datagram::{DatagramProtocol, DatagramTransport};
//! use torsion::transport::Address;
//! use torsion::udp::MulticastInterface;
//! use torsion::reactor;
//!
//! struct Listener;
//! impl DatagramProtocol for Listener {
//!     fn start_protocol(&mut self, t: &DatagramTransport) {
//!         let group = IpAddr::V4(Ipv4Addr::new(228, 0, 0, 5));
//!         t.join_group(group, MulticastInterface::Default).unwrap();
//!         t.set_ttl(2).unwrap();
//!     }
//!     fn datagram_received(&mut self, _: &DatagramTransport, data: &[u8], addr: &Address) {
//!         println!("{addr} says {}", String::from_utf8_lossy(data));
//!     }
//! }
//!
//! reactor().listen_multicast(9999, Listener, true).unwrap();
//! reactor().run().unwrap();
//! ```

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::{Interest, Ready};
use tokio::net::UdpSocket;

pub use crate::datagram::MulticastInterface;
use crate::datagram::{
    DatagramProtocol, DatagramSocket, DatagramTransport, DatagramTransportImpl, Port,
    DEFAULT_MAX_PACKET_SIZE, MAX_PACKET_SIZE_LIMIT,
};
use crate::defer::Deferred;
use crate::error::{CannotListenError, ReactorNotRestartable};
use crate::reactor::Reactor;
use crate::transport::Address;
use crate::Failure;

/// Options for [`Reactor::listen_udp_with`] (Twisted's `listenUDP` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpOptions {
    /// The address to bind (Twisted's `interface`): `0.0.0.0` (the default) for every IPv4
    /// interface, `::` for every IPv6 (and, on Linux, IPv4) interface, or one address.
    pub interface: IpAddr,
    /// The largest datagram delivered (Twisted's `maxPacketSize`, default 8192, at most
    /// 65535). Longer datagrams are dropped with a debug log line, not cut short.
    pub max_packet_size: usize,
    /// Let other sockets bind the same port (`SO_REUSEADDR` and `SO_REUSEPORT`; Twisted's
    /// `listenMultiple`), so several listeners each get a group's multicast datagrams.
    pub listen_multiple: bool,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            interface: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            listen_multiple: false,
        }
    }
}

impl DatagramSocket for UdpSocket {
    type Peer = SocketAddr;

    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + '_ {
        UdpSocket::ready(self, interest)
    }

    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        UdpSocket::try_io(self, interest, f)
    }

    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        UdpSocket::try_recv_from(self, buf)
    }

    fn cache_peer(peer: &SocketAddr, cached: &mut Address) {
        *cached = Address::Udp(*peer);
    }

    fn blank_peer() -> Address {
        Address::Udp(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }

    #[cfg(target_os = "linux")]
    const BATCHED: bool = true;

    fn peer_from_std(addr: SocketAddr) -> Option<SocketAddr> {
        Some(addr)
    }
}

fn bind_socket(addr: SocketAddr, listen_multiple: bool) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if listen_multiple {
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

impl Reactor {
    /// Opens UDP port `port` on every IPv4 interface for `protocol` (Twisted's
    /// `listenUDP(port, protocol)`); port 0 picks a free port, readable with
    /// [`get_host`](DatagramTransportImpl::get_host). The protocol's `start_protocol` runs
    /// before this returns; a panic there fails the call.
    pub fn listen_udp<P: DatagramProtocol>(
        &self,
        port: u16,
        protocol: P,
    ) -> Result<DatagramTransport, Failure> {
        self.listen_udp_with(port, protocol, UdpOptions::default())
    }

    /// [`listen_udp`](Self::listen_udp) with options: the interface, the largest datagram,
    /// and port sharing. Fails with [`CannotListenError`] naming the address.
    pub fn listen_udp_with<P: DatagramProtocol>(
        &self,
        port: u16,
        protocol: P,
        options: UdpOptions,
    ) -> Result<DatagramTransport, Failure> {
        let addr = SocketAddr::new(options.interface, port);
        let cannot = |e| CannotListenError::new(format!("udp:{addr}"), e);
        if !(1..=MAX_PACKET_SIZE_LIMIT).contains(&options.max_packet_size) {
            return Err(cannot(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("max_packet_size must be 1 to {MAX_PACKET_SIZE_LIMIT}"),
            ))
            .into());
        }
        let std_socket = bind_socket(addr, options.listen_multiple).map_err(cannot)?;
        let socket = self
            .with_context(|| UdpSocket::from_std(std_socket))
            .ok_or(ReactorNotRestartable)?
            .map_err(cannot)?;
        let host = socket.local_addr().map_err(cannot)?;
        crate::datagram::open(
            self,
            socket,
            Address::Udp(host),
            None,
            options.max_packet_size,
            protocol,
            |port| DatagramTransport::new(port),
        )
    }

    /// Opens a UDP port for multicast on every IPv4 interface (Twisted's
    /// `listenMulticast(port, protocol, listenMultiple=...)`): the same port as
    /// [`listen_udp`](Self::listen_udp), with `listen_multiple` letting several sockets share
    /// the port number. Join groups with
    /// [`join_group`](DatagramTransportImpl::join_group).
    pub fn listen_multicast<P: DatagramProtocol>(
        &self,
        port: u16,
        protocol: P,
        listen_multiple: bool,
    ) -> Result<DatagramTransport, Failure> {
        let options = UdpOptions {
            listen_multiple,
            ..UdpOptions::default()
        };
        self.listen_udp_with(port, protocol, options)
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_owned())
}

impl Port<UdpSocket> {
    fn is_v6(&self) -> bool {
        matches!(self.host, Address::Udp(SocketAddr::V6(_)))
    }

    /// The socket address to send to: UDP only, and IPv4 as IPv4-mapped IPv6 on an IPv6
    /// socket (which reaches IPv4 peers when dual-stack).
    fn destination(&self, addr: &Address) -> io::Result<SocketAddr> {
        let Address::Udp(sa) = addr else {
            return Err(invalid("a UDP port sends to UDP addresses only"));
        };
        Ok(match sa {
            SocketAddr::V4(v4) if self.is_v6() => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            _ => *sa,
        })
    }

    fn membership(
        &self,
        group: IpAddr,
        interface: MulticastInterface,
        join: bool,
    ) -> io::Result<()> {
        let sock = self.socket()?;
        let s = socket2::SockRef::from(&*sock);
        match (group, interface) {
            (IpAddr::V4(g), MulticastInterface::Default | MulticastInterface::Address(_)) => {
                let ifaddr = match interface {
                    MulticastInterface::Address(a) => a,
                    _ => Ipv4Addr::UNSPECIFIED,
                };
                if join {
                    s.join_multicast_v4(&g, &ifaddr)
                } else {
                    s.leave_multicast_v4(&g, &ifaddr)
                }
            }
            (IpAddr::V4(g), MulticastInterface::Index(i)) => v4_membership_by_index(&s, g, i, join),
            (IpAddr::V6(_), MulticastInterface::Address(_)) => Err(invalid(
                "an IPv6 multicast membership names its interface by index",
            )),
            (IpAddr::V6(g), iface) => {
                let index = match iface {
                    MulticastInterface::Index(i) => i,
                    _ => 0,
                };
                if join {
                    s.join_multicast_v6(&g, index)
                } else {
                    s.leave_multicast_v6(&g, index)
                }
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn v4_membership_by_index(
    s: &socket2::SockRef<'_>,
    group: Ipv4Addr,
    index: u32,
    join: bool,
) -> io::Result<()> {
    let iface = socket2::InterfaceIndexOrAddress::Index(index);
    if join {
        s.join_multicast_v4_n(&group, &iface)
    } else {
        s.leave_multicast_v4_n(&group, &iface)
    }
}

#[cfg(not(target_os = "linux"))]
fn v4_membership_by_index(
    _s: &socket2::SockRef<'_>,
    _group: Ipv4Addr,
    _index: u32,
    _join: bool,
) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "IPv4 multicast by interface index is Linux-only here; use an interface address",
    ))
}

impl DatagramTransportImpl for Port<UdpSocket> {
    fn write(&self, data: &[u8], addr: &Address) -> io::Result<()> {
        let dest = self.destination(addr)?;
        // 192.0.2.1 and ::ffff:192.0.2.1 are the same peer to an IPv6 socket.
        self.check_destination(addr, |peer, _| self.destination(peer).ok() == Some(dest))?;
        let to = SockAddr::from(dest);
        self.send_or_queue(data, Some(dest), &dest, |s| s.send_to(data, &to))
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        let Some(peer) = self.peer.borrow().clone() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "send needs a connected socket; use write(data, addr)",
            ));
        };
        self.send_or_queue(data, None, &peer, |s| s.send(data))
    }

    fn connect(&self, addr: &Address) -> io::Result<()> {
        let dest = self.destination(addr)?;
        let sock = self.socket()?;
        socket2::SockRef::from(&*sock).connect(&dest.into())?;
        *self.peer.borrow_mut() = Some(addr.clone());
        Ok(())
    }

    fn get_host(&self) -> Address {
        self.host.clone()
    }

    fn get_peer(&self) -> Option<Address> {
        self.peer.borrow().clone()
    }

    fn stop_listening(&self) -> Deferred<()> {
        Port::stop_listening(self)
    }

    fn listening(&self) -> bool {
        Port::listening(self)
    }

    fn failed_writes(&self) -> u64 {
        Port::failed_writes(self)
    }

    fn dropped_writes(&self) -> u64 {
        Port::dropped_writes(self)
    }

    fn set_broadcast_allowed(&self, allowed: bool) -> io::Result<()> {
        socket2::SockRef::from(&*self.socket()?).set_broadcast(allowed)
    }

    fn get_broadcast_allowed(&self) -> io::Result<bool> {
        socket2::SockRef::from(&*self.socket()?).broadcast()
    }

    fn join_group(&self, group: IpAddr, interface: MulticastInterface) -> io::Result<()> {
        self.membership(group, interface, true)
    }

    fn leave_group(&self, group: IpAddr, interface: MulticastInterface) -> io::Result<()> {
        self.membership(group, interface, false)
    }

    fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let sock = self.socket()?;
        let s = socket2::SockRef::from(&*sock);
        if self.is_v6() {
            s.set_multicast_hops_v6(ttl)
        } else {
            s.set_multicast_ttl_v4(ttl)
        }
    }

    fn get_ttl(&self) -> io::Result<u32> {
        let sock = self.socket()?;
        let s = socket2::SockRef::from(&*sock);
        if self.is_v6() {
            s.multicast_hops_v6()
        } else {
            s.multicast_ttl_v4()
        }
    }

    fn set_loopback_mode(&self, on: bool) -> io::Result<()> {
        let sock = self.socket()?;
        let s = socket2::SockRef::from(&*sock);
        if self.is_v6() {
            s.set_multicast_loop_v6(on)
        } else {
            s.set_multicast_loop_v4(on)
        }
    }

    fn get_loopback_mode(&self) -> io::Result<bool> {
        let sock = self.socket()?;
        let s = socket2::SockRef::from(&*sock);
        if self.is_v6() {
            s.multicast_loop_v6()
        } else {
            s.multicast_loop_v4()
        }
    }

    fn set_outgoing_interface(&self, interface: MulticastInterface) -> io::Result<()> {
        let sock = self.socket()?;
        let s = socket2::SockRef::from(&*sock);
        match (self.is_v6(), interface) {
            (false, MulticastInterface::Default) => s.set_multicast_if_v4(&Ipv4Addr::UNSPECIFIED),
            (false, MulticastInterface::Address(a)) => s.set_multicast_if_v4(&a),
            (false, MulticastInterface::Index(_)) => Err(invalid(
                "an IPv4 socket names its outgoing interface by address",
            )),
            (true, MulticastInterface::Default) => s.set_multicast_if_v6(0),
            (true, MulticastInterface::Index(i)) => s.set_multicast_if_v6(i),
            (true, MulticastInterface::Address(_)) => Err(invalid(
                "an IPv6 socket names its outgoing interface by index",
            )),
        }
    }
}
