//! The reactor's pluggable name resolver (Twisted's `reactor.nameResolver`,
//! `installNameResolver` and `reactor.resolve`): every connection to a host name asks the
//! installed resolver; a name it cannot resolve fails the connection with `DnsLookupError`;
//! IP addresses never reach it; the default resolves through the system.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;

use torsion::defer::{fail, succeed, Deferred};
use torsion::endpoints::{client_from_string, HostnameEndpoint};
use torsion::error::DnsLookupError;
use torsion::reactor::{HostnameResolver, SystemResolver};
use torsion::{factory, reactor, Failure, Protocol, Transport};

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

struct Quiet;
impl Protocol for Quiet {
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

/// A resolver that knows one name (`echo.test`, at 127.0.0.1) and records every question.
fn table(asked: Rc<RefCell<Vec<(String, u16)>>>) -> impl HostnameResolver {
    move |host: &str, port: u16| -> Deferred<Vec<SocketAddr>> {
        asked.borrow_mut().push((host.to_owned(), port));
        if host == "echo.test" {
            succeed(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)])
        } else {
            fail(Failure::new(DnsLookupError::not_found(host)))
        }
    }
}

#[torsion::test]
async fn connections_to_a_name_ask_the_installed_resolver() -> Result<(), Failure> {
    let asked = Rc::new(RefCell::new(Vec::new()));
    reactor().install_name_resolver(table(asked.clone()));
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let p = port.get_host().port().unwrap();

    // connect_tcp (through a `tcp:` client endpoint).
    let conn = client_from_string(&reactor(), &format!("tcp:echo.test:{p}"))?
        .connect_deferred(factory(|| Quiet))
        .await?;
    assert_eq!(conn.transport().get_peer().port(), Some(p));
    conn.transport().lose_connection();

    // HostnameEndpoint, with no resolver of its own.
    let conn = HostnameEndpoint::new(&reactor(), "echo.test", p)
        .connect(factory(|| Quiet))
        .await?;
    conn.transport().lose_connection();

    // An IP address is connected to without asking.
    let conn = client_from_string(&reactor(), &format!("tcp:127.0.0.1:{p}"))?
        .connect_deferred(factory(|| Quiet))
        .await?;
    conn.transport().lose_connection();

    assert_eq!(
        *asked.borrow(),
        vec![("echo.test".to_owned(), p), ("echo.test".to_owned(), p)]
    );
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn a_name_the_resolver_does_not_know_fails_the_connection_with_dns_lookup_error(
) -> Result<(), Failure> {
    reactor().install_name_resolver(table(Rc::default()));
    let err = client_from_string(&reactor(), "tcp:elsewhere.test:80")?
        .connect_deferred(factory(|| Quiet))
        .await
        .unwrap_err();
    assert!(err.check::<DnsLookupError>(), "{err:?}");
    assert!(err.error_message().contains("elsewhere.test"), "{err}");

    let err = HostnameEndpoint::new(&reactor(), "elsewhere.test", 80)
        .connect(factory(|| Quiet))
        .await
        .unwrap_err();
    assert!(err.check::<DnsLookupError>(), "{err:?}");
    Ok(())
}

#[torsion::test]
async fn resolve_answers_the_first_address_and_ip_addresses_as_they_are() -> Result<(), Failure> {
    let asked = Rc::new(RefCell::new(Vec::new()));
    let previous = reactor().install_name_resolver(table(asked.clone()));
    assert_eq!(
        reactor().resolve("echo.test").await?,
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    assert_eq!(
        reactor().resolve("::1").await?,
        "::1".parse::<IpAddr>().unwrap()
    );
    assert!(reactor()
        .resolve("elsewhere.test")
        .await
        .unwrap_err()
        .check::<DnsLookupError>());
    assert_eq!(asked.borrow().len(), 2, "the IP address was not looked up");

    // installing returns the resolver it replaced: put the system's back.
    let mine = reactor().install_name_resolver(previous);
    assert!(mine.resolve_host_name("echo.test", 7).await.is_ok());
    Ok(())
}

#[torsion::test]
async fn the_system_resolver_reads_the_hosts_file_and_reports_unknown_names() -> Result<(), Failure>
{
    let found = SystemResolver.resolve_host_name("localhost", 8080).await?;
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8080),
        "{found:?}"
    );
    // `.invalid` never resolves (RFC 6761).
    let err = SystemResolver
        .resolve_host_name("no-such-host.invalid", 80)
        .await
        .unwrap_err();
    assert!(err.check::<DnsLookupError>(), "{err:?}");
    assert!(
        err.error_message().contains("no-such-host.invalid"),
        "{err}"
    );

    Ok(())
}
