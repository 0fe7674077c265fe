//! The reactor's own name resolution through torsion-names: `connect_tcp` and
//! `HostnameEndpoint` to a host name answered from a hosts file or a DNS server.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;

use torsion::defer::Deferred;
use torsion::endpoints::HostnameEndpoint;
use torsion::error::DnsLookupError;
use torsion::{factory, Failure, Protocol, Transport};
use torsion_names::client::{create_resolver, NameResolver};
use torsion_names::hosts::HostsResolver;
use torsion_names::Resolver;

use super::{a, reply, FakeServer, TempFile};

/// A client that says who it reached, then closes.
struct Reached(Rc<RefCell<Option<torsion::defer::Trigger<SocketAddr>>>>);

impl Protocol for Reached {
    fn connection_made(&mut self, t: &Transport) {
        if let Some(trigger) = self.0.borrow_mut().take() {
            trigger.callback(t.get_peer().socket_addr().unwrap());
        }
        t.lose_connection();
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

struct Idle;
impl Protocol for Idle {
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

#[torsion::test(timeout = 10)]
async fn connect_tcp_and_hostname_endpoint_resolve_through_the_installed_names_resolver(
) -> Result<(), Failure> {
    let r = torsion::reactor();
    let hosts = TempFile::new("hosts", "127.0.0.1 service.test\n::1 v6only.test\n");
    r.install_name_resolver(NameResolver::new(HostsResolver::new(&hosts.path)));
    let server = r.listen_tcp(0, factory(|| Idle))?;
    let port = server.get_host().port().unwrap();

    assert_eq!(
        r.resolve("service.test").await?,
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    // IPv6 addresses too (Twisted's adapter asks getHostByName: IPv4 only).
    assert_eq!(
        r.resolve("v6only.test").await?,
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
    );
    let unknown = r.resolve("unknown.test").await.unwrap_err();
    assert!(unknown.check::<DnsLookupError>(), "{unknown}");

    let d = Deferred::new();
    let trigger = Rc::new(RefCell::new(Some(d.trigger())));
    let t = trigger.clone();
    r.connect_tcp("service.test", port, factory(move || Reached(t.clone())));
    assert_eq!(d.await?, SocketAddr::from(([127, 0, 0, 1], port)));

    let endpoint = HostnameEndpoint::new(&r, "service.test", port);
    let connected = endpoint.connect(factory(|| Idle)).await?;
    assert_eq!(
        connected
            .transport()
            .get_peer()
            .socket_addr()
            .unwrap()
            .port(),
        port
    );
    connected.transport().lose_connection();
    let missing = HostnameEndpoint::new(&r, "unknown.test", port);
    assert!(missing
        .connect(factory(|| Idle))
        .await
        .unwrap_err()
        .check::<DnsLookupError>());
    server.stop_listening().await?;
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn create_resolver_asks_hosts_then_cache_then_servers() -> Result<(), Failure> {
    let r = torsion::reactor();
    let hosts = TempFile::new("hosts", "192.0.2.80 local.test\n");
    let server = FakeServer::start(&r, |q, _| {
        vec![reply(q, vec![a(&q.queries[0].name, [192, 0, 2, 53], 300)])
            .to_vec()
            .unwrap()]
    });
    let resolver = create_resolver(&r, Some(vec![server.addr()]), None, Some(&hosts.path));
    assert_eq!(
        resolver.get_host_by_name("local.test").await?,
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 80))
    );
    assert!(server.seen.borrow().is_empty(), "the hosts file answered");
    for _ in 0..3 {
        assert_eq!(
            resolver.get_host_by_name("remote.test").await?,
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53))
        );
    }
    assert_eq!(
        server.seen.borrow().len(),
        1,
        "the cache answered after the first"
    );

    // The whole chain as the reactor's resolver: a connect to a name only the server knows.
    r.install_name_resolver(NameResolver::new(resolver));
    assert_eq!(
        r.resolve("other.test").await?,
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53))
    );
    server.port.stop_listening();
    Ok(())
}
