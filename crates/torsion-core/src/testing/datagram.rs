//! `FakeDatagramTransport`: a datagram transport that records writes (Twisted's
//! `FakeDatagramTransport`).

use std::cell::{Cell, RefCell};
use std::io;
use std::net::IpAddr;
use std::rc::Rc;

use crate::datagram::{DatagramTransport, DatagramTransportImpl};
use crate::defer::{succeed, Deferred};
use crate::transport::Address;
use crate::udp::MulticastInterface;

/// A datagram transport that records the datagrams written to it and the groups joined, for
/// testing a [`DatagramProtocol`](crate::datagram::DatagramProtocol) without sockets (Twisted's
/// `proto_helpers.FakeDatagramTransport`).
///
/// ```
/// use torsion::datagram::{DatagramProtocol, DatagramTransport};
/// use torsion::testing::FakeDatagramTransport;
/// use torsion::transport::Address;
///
/// struct Echo;
/// impl DatagramProtocol for Echo {
///     fn datagram_received(&mut self, t: &DatagramTransport, data: &[u8], addr: &Address) {
///         t.write(data, addr).unwrap();
///     }
/// }
///
/// let fake = FakeDatagramTransport::new(Address::Udp("127.0.0.1:9999".parse().unwrap()));
/// let t = fake.transport();
/// let peer = Address::Udp("192.0.2.7:5000".parse().unwrap());
/// let mut p = Echo;
/// p.start_protocol(&t);
/// p.datagram_received(&t, b"ping", &peer);
/// assert_eq!(fake.written(), vec![(b"ping".to_vec(), peer)]);
/// ```
#[derive(Clone)]
pub struct FakeDatagramTransport {
    inner: Rc<FakeInner>,
}

struct FakeInner {
    host: Address,
    written: RefCell<Vec<(Vec<u8>, Address)>>,
    peer: RefCell<Option<Address>>,
    groups: RefCell<Vec<(IpAddr, MulticastInterface)>>,
    ttl: Cell<u32>,
    loopback: Cell<bool>,
    broadcast: Cell<bool>,
    listening: Cell<bool>,
}

impl FakeDatagramTransport {
    /// A fresh transport at `host`, with nothing written.
    pub fn new(host: Address) -> FakeDatagramTransport {
        FakeDatagramTransport {
            inner: Rc::new(FakeInner {
                host,
                written: RefCell::new(Vec::new()),
                peer: RefCell::new(None),
                groups: RefCell::new(Vec::new()),
                ttl: Cell::new(1),
                loopback: Cell::new(true),
                broadcast: Cell::new(false),
                listening: Cell::new(true),
            }),
        }
    }

    /// A [`DatagramTransport`] handle recording into this fake.
    pub fn transport(&self) -> DatagramTransport {
        DatagramTransport::new(self.inner.clone())
    }

    /// The datagrams written so far, with their destinations (Twisted's `written`).
    pub fn written(&self) -> Vec<(Vec<u8>, Address)> {
        self.inner.written.borrow().clone()
    }

    /// Takes the datagrams written so far, leaving none.
    pub fn take_written(&self) -> Vec<(Vec<u8>, Address)> {
        std::mem::take(&mut *self.inner.written.borrow_mut())
    }

    /// The multicast groups joined and not left.
    pub fn groups(&self) -> Vec<(IpAddr, MulticastInterface)> {
        self.inner.groups.borrow().clone()
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the port is not listening")
}

impl FakeInner {
    fn open(&self) -> io::Result<()> {
        if self.listening.get() {
            Ok(())
        } else {
            Err(closed())
        }
    }
}

impl DatagramTransportImpl for FakeInner {
    fn write(&self, data: &[u8], addr: &Address) -> io::Result<()> {
        self.open()?;
        if let Some(peer) = &*self.peer.borrow() {
            if peer != addr {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("this port is connected to {peer}; it cannot write to {addr}"),
                ));
            }
        }
        self.written
            .borrow_mut()
            .push((data.to_vec(), addr.clone()));
        Ok(())
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        let peer = self.peer.borrow().clone().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "send needs a connected socket")
        })?;
        self.write(data, &peer)
    }

    fn connect(&self, addr: &Address) -> io::Result<()> {
        self.open()?;
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
        self.listening.set(false);
        succeed(())
    }

    fn listening(&self) -> bool {
        self.listening.get()
    }

    fn set_broadcast_allowed(&self, allowed: bool) -> io::Result<()> {
        self.open()?;
        self.broadcast.set(allowed);
        Ok(())
    }

    fn get_broadcast_allowed(&self) -> io::Result<bool> {
        self.open()?;
        Ok(self.broadcast.get())
    }

    fn join_group(&self, group: IpAddr, interface: MulticastInterface) -> io::Result<()> {
        self.open()?;
        if !group.is_multicast() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{group} is not a multicast address"),
            ));
        }
        self.groups.borrow_mut().push((group, interface));
        Ok(())
    }

    fn leave_group(&self, group: IpAddr, interface: MulticastInterface) -> io::Result<()> {
        self.open()?;
        let mut groups = self.groups.borrow_mut();
        match groups.iter().position(|g| *g == (group, interface)) {
            Some(i) => {
                groups.remove(i);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{group} was not joined on that interface"),
            )),
        }
    }

    fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.open()?;
        self.ttl.set(ttl);
        Ok(())
    }

    fn get_ttl(&self) -> io::Result<u32> {
        self.open()?;
        Ok(self.ttl.get())
    }

    fn set_loopback_mode(&self, on: bool) -> io::Result<()> {
        self.open()?;
        self.loopback.set(on);
        Ok(())
    }

    fn get_loopback_mode(&self) -> io::Result<bool> {
        self.open()?;
        Ok(self.loopback.get())
    }

    fn set_outgoing_interface(&self, _interface: MulticastInterface) -> io::Result<()> {
        self.open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_fakes_send_to_their_peer_only_and_groups_are_tracked() {
        let fake = FakeDatagramTransport::new(Address::Udp("127.0.0.1:1".parse().unwrap()));
        let t = fake.transport();
        let peer = Address::Udp("127.0.0.1:2".parse().unwrap());
        assert_eq!(
            t.send(b"x").unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        t.connect(&peer).unwrap();
        t.send(b"a").unwrap();
        let other = Address::Udp("127.0.0.1:3".parse().unwrap());
        assert!(t.write(b"b", &other).is_err());
        assert_eq!(fake.take_written(), vec![(b"a".to_vec(), peer)]);
        assert!(fake.written().is_empty());

        let g: IpAddr = "239.1.2.3".parse().unwrap();
        t.join_group(g, MulticastInterface::Default).unwrap();
        assert!(t
            .join_group("10.0.0.1".parse().unwrap(), MulticastInterface::Default)
            .is_err());
        assert_eq!(fake.groups(), vec![(g, MulticastInterface::Default)]);
        t.leave_group(g, MulticastInterface::Default).unwrap();
        assert!(t.leave_group(g, MulticastInterface::Default).is_err());
        t.set_ttl(4).unwrap();
        assert_eq!(t.get_ttl().unwrap(), 4);

        assert!(t.stop_listening().called());
        assert!(!t.listening());
        assert_eq!(
            t.write(b"late", &other).unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    }
}
