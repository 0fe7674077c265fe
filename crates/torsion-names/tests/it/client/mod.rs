//! The client side: hosts file, resolv.conf, the UDP/TCP client, cache and chain, the
//! reactor's name resolution, and a real server (dnsmasq).

mod cache_chain;
mod dnsmasq;
mod edns;
mod hosts;
mod reactor;
mod resolv_conf;
mod search;
mod udp;

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;

use torsion::datagram::{DatagramProtocol, DatagramTransport};
use torsion::transport::Address;
use torsion::udp::UdpOptions;
use torsion::Reactor;
use torsion_names::proto::op::{Message, MessageType};
use torsion_names::proto::rr::rdata::A;
use torsion_names::{Name, RData, Record};

/// What a fake server does with a query: the datagrams to send back (to the asker).
type Handler = dyn Fn(&Message, SocketAddr) -> Vec<Vec<u8>>;

/// A DNS server played by the test on the reactor's UDP: records each query and answers
/// with what its handler says.
pub(crate) struct FakeServer {
    pub(crate) port: DatagramTransport,
    pub(crate) seen: Rc<RefCell<Vec<(Message, SocketAddr)>>>,
}

struct FakeProtocol {
    handler: Rc<Handler>,
    seen: Rc<RefCell<Vec<(Message, SocketAddr)>>>,
}

impl DatagramProtocol for FakeProtocol {
    fn datagram_received(&mut self, t: &DatagramTransport, data: &[u8], addr: &Address) {
        let Ok(query) = Message::from_vec(data) else {
            return;
        };
        let Address::Udp(from) = addr else { return };
        self.seen.borrow_mut().push((query.clone(), *from));
        for reply in (self.handler)(&query, *from) {
            t.write(&reply, addr).unwrap();
        }
    }
}

impl FakeServer {
    pub(crate) fn start(
        reactor: &Reactor,
        handler: impl Fn(&Message, SocketAddr) -> Vec<Vec<u8>> + 'static,
    ) -> FakeServer {
        let seen: Rc<RefCell<Vec<(Message, SocketAddr)>>> = Rc::default();
        let protocol = FakeProtocol {
            handler: Rc::new(handler),
            seen: seen.clone(),
        };
        let options = UdpOptions {
            interface: Ipv4Addr::LOCALHOST.into(),
            ..UdpOptions::default()
        };
        let port = reactor.listen_udp_with(0, protocol, options).unwrap();
        FakeServer { port, seen }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.port.get_host().socket_addr().unwrap()
    }
}

/// The response to `query`: same id and question, with these answers.
pub(crate) fn reply(query: &Message, answers: Vec<Record>) -> Message {
    let mut m = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.add_queries(query.queries.clone());
    m.add_answers(answers);
    m
}

/// A Torsion DNS server answering from `zone` (master-file text) over UDP only, on the
/// test's reactor, on a free port of 127.0.0.1.
pub(crate) fn serve_zone(reactor: &Reactor, zone: &str) -> (DatagramTransport, SocketAddr) {
    use torsion_names::authority::FileAuthority;
    use torsion_names::server::{DnsDatagramProtocol, DnsServer, ServerConfig};
    let zone = Rc::new(FileAuthority::parse(zone, None, "test").unwrap());
    let server =
        Rc::new(DnsServer::new(zone.clone(), ServerConfig::default()).with_zones(vec![zone]));
    let options = UdpOptions {
        interface: Ipv4Addr::LOCALHOST.into(),
        ..UdpOptions::default()
    };
    let port = reactor
        .listen_udp_with(0, DnsDatagramProtocol::new(server), options)
        .unwrap();
    let addr = port.get_host().socket_addr().unwrap();
    (port, addr)
}

/// An A record.
pub(crate) fn a(name: &Name, ip: [u8; 4], ttl: u32) -> Record {
    Record::from_rdata(name.clone(), ttl, RData::A(A(Ipv4Addr::from(ip))))
}

/// A file in a fresh temporary directory, removed when the test ends.
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
}

impl TempFile {
    pub(crate) fn new(name: &str, text: &str) -> TempFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "torsion-names-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        TempFile { path }
    }

    /// Rewrites the file, and moves its modification time so the change shows however
    /// coarse the file system's clock.
    pub(crate) fn rewrite(&self, text: &str) {
        let before = std::fs::metadata(&self.path).unwrap().modified().unwrap();
        std::fs::write(&self.path, text).unwrap();
        let file = std::fs::File::options()
            .write(true)
            .open(&self.path)
            .unwrap();
        file.set_modified(before + std::time::Duration::from_secs(5))
            .unwrap();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
