//! `MemoryReactor`: code written against `ReactorTcp` is tested without sockets, and the same
//! code runs on the real reactor.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::net::ReactorTcp;
use torsion::protocols::policies::TimeoutFactory;
use torsion::testing::{connected_pair, MemoryReactor};
use torsion::transport::Address;
use torsion::{factory, reactor, Failure, Protocol, Transport};

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// A factory whose type a test can name.
struct EchoFactory;

impl torsion::Factory for EchoFactory {
    type Protocol = Echo;
    fn build_protocol(&self, _: &Address) -> Option<Echo> {
        Some(Echo)
    }
}

#[test]
fn a_recorded_factory_can_be_looked_at_as_its_own_type() {
    let r = MemoryReactor::new();
    r.listen_tcp(7, EchoFactory).unwrap();
    assert!(r.tcp_servers()[0].factory::<EchoFactory>().is_some());
    assert!(r.tcp_servers()[0].factory::<u32>().is_none());
}

/// Keeps what it receives.
struct Collect(Rc<RefCell<Vec<u8>>>);

impl Protocol for Collect {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"hello");
    }
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        self.0.borrow_mut().extend_from_slice(data);
    }
}

/// The code under test: an echo server with a 60 s idle time-out on `port`, and a client
/// to `upstream`.
fn start<R: ReactorTcp>(
    r: &R,
    port: u16,
    upstream: u16,
    got: Rc<RefCell<Vec<u8>>>,
) -> Result<(R::Port, R::Connector), Failure> {
    let server = r.listen_tcp(port, TimeoutFactory::new(factory(|| Echo), 60.0))?;
    let client = r.connect_tcp("127.0.0.1", upstream, factory(move || Collect(got.clone())));
    Ok((server, client))
}

#[test]
fn a_memory_reactor_records_listens_and_connects_and_their_factories_build_protocols() {
    let r = MemoryReactor::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (port, connector) = start(&r, 8080, 9090, got.clone()).unwrap();

    let servers = r.tcp_servers();
    assert_eq!(servers.len(), 1);
    assert_eq!((servers[0].host(), servers[0].port()), ("0.0.0.0", 8080));
    assert_eq!(port.get_host().to_string(), "tcp:0.0.0.0:8080");
    assert!(servers[0].factory::<EchoFactory>().is_none());

    let clients = r.tcp_clients();
    assert_eq!(clients.len(), 1);
    assert_eq!((clients[0].host(), clients[0].port()), ("127.0.0.1", 9090));
    assert_eq!(connector.destination(), ("127.0.0.1", 9090));

    // The recorded factories' protocols talk to each other through memory.
    let peer = Address::Named("memory".into());
    let server = servers[0].build_protocol(&peer).unwrap();
    let client = clients[0].build_protocol(&peer).unwrap();
    let mut pump = connected_pair(client, server);
    pump.flush();
    assert_eq!(&*got.borrow(), b"hello");

    assert!(!servers[0].stopped());
    port.stop_listening();
    connector.disconnect();
    assert!(servers[0].stopped() && clients[0].stopped());
}

#[torsion::test]
async fn the_same_code_listens_and_connects_on_the_real_reactor() -> Result<(), Failure> {
    let got = Rc::new(RefCell::new(Vec::new()));
    // Bind first to learn a free port, then point the client at it.
    let probe = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let upstream = probe.get_host().socket_addr().unwrap().port();
    let (port, connector) = start(&reactor(), 0, upstream, got.clone())?;
    assert_ne!(port.get_host().socket_addr().unwrap().port(), 0);
    while got.borrow().len() < 5 {
        torsion::task::defer_later(&reactor(), 0.01, || ()).await?;
    }
    assert_eq!(&*got.borrow(), b"hello");
    connector.disconnect();
    port.stop_listening().await?;
    probe.stop_listening().await?;
    for _ in 0..100 {
        if reactor().open_handles() == 0 {
            break;
        }
        torsion::task::defer_later(&reactor(), 0.01, || ()).await?;
    }
    Ok(())
}

/// A datagram protocol that counts what it gets.
#[derive(Default)]
struct Counter {
    got: usize,
}

impl torsion::datagram::DatagramProtocol for Counter {
    fn datagram_received(
        &mut self,
        _: &torsion::datagram::DatagramTransport,
        _: &[u8],
        _: &Address,
    ) {
        self.got += 1;
    }
}

/// The code under test: a service on a Unix socket, a client of another, a TLS port, a TLS
/// client and a UDP port — written against the reactor traits.
fn start_everything<R>(r: &R, ca: &crate::support::tls::Ca) -> Result<(), Failure>
where
    R: torsion::net::ReactorUnix + torsion::net::ReactorTls + torsion::net::ReactorUdp,
{
    r.listen_unix(std::path::Path::new("/run/app.sock"), EchoFactory)?;
    r.connect_unix(std::path::Path::new("/run/db.sock"), factory(|| Echo));
    let server = torsion::tls::ServerContext::new(ca.leaf(&["app.test"]))?;
    r.listen_tls(8443, EchoFactory, server)?;
    let client = torsion::tls::ClientContext::builder()
        .trust([ca.cert()])
        .build()?;
    r.connect_tls("api.test", 443, factory(|| Echo), client);
    r.listen_udp(5353, Counter::default())?;
    Ok(())
}

#[test]
fn a_memory_reactor_records_unix_tls_and_udp_too() {
    let r = MemoryReactor::new();
    let ca = crate::support::tls::Ca::new("memory");
    start_everything(&r, &ca).unwrap();

    let unix = r.unix_servers();
    assert_eq!(unix.len(), 1);
    assert_eq!(unix[0].path(), Some(std::path::Path::new("/run/app.sock")));
    assert!(unix[0].factory::<EchoFactory>().is_some());
    assert_eq!(
        r.unix_clients()[0].path(),
        Some(std::path::Path::new("/run/db.sock"))
    );

    let tls = r.tls_servers();
    assert_eq!((tls[0].host(), tls[0].port()), ("0.0.0.0", 8443));
    assert!(tls[0]
        .tls_context::<torsion::tls::ServerContext>()
        .is_some());
    assert!(tls[0]
        .tls_context::<torsion::tls::ClientContext>()
        .is_none());
    let tls_client = &r.tls_clients()[0];
    assert_eq!((tls_client.host(), tls_client.port()), ("api.test", 443));
    assert!(tls_client
        .tls_context::<torsion::tls::ClientContext>()
        .is_some());
    // TLS calls are not TCP calls, as in Twisted's sslServers/tcpServers.
    assert!(r.tcp_servers().is_empty() && r.tcp_clients().is_empty());

    let udp = r.udp_ports();
    assert_eq!(udp[0].port(), 5353);
    // Drive the recorded protocol through a fake datagram transport.
    let fake =
        torsion::testing::FakeDatagramTransport::new(Address::Udp("0.0.0.0:5353".parse().unwrap()));
    let peer = Address::Udp("192.0.2.1:4000".parse().unwrap());
    udp[0]
        .with_protocol(|p: &mut Counter| {
            use torsion::datagram::DatagramProtocol;
            p.datagram_received(&fake.transport(), b"q", &peer);
        })
        .unwrap();
    assert_eq!(udp[0].with_protocol(|p: &mut Counter| p.got), Some(1));
    assert_eq!(udp[0].with_protocol(|p: &mut u8| *p), None);
}

#[torsion::test]
async fn the_same_unix_tls_and_udp_code_runs_on_the_real_reactor() -> Result<(), Failure> {
    // The real reactor implements the same traits: the code above opens real sockets.
    let temp = crate::support::TempPath::new("memory-reactor-real");
    let r = reactor();
    let port = torsion::net::ReactorUnix::listen_unix(&r, &temp.0, EchoFactory)?;
    assert_eq!(port.get_host(), temp.address());
    port.stop_listening().await?;
    let udp = torsion::net::ReactorUdp::listen_udp(&r, 0, Counter::default())?;
    assert_ne!(udp.get_host().port(), Some(0));
    udp.stop_listening().await?;
    Ok(())
}
