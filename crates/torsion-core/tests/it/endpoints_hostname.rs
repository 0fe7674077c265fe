//! `HostnameEndpoint` (Twisted's, with RFC 8305 ordering): resolves a name, races its
//! addresses, and fires with the first connection; fails with a `ConnectError` for a name
//! that does not resolve and with the last failure when every address refuses; cancelling
//! stops it.

use torsion::endpoints::HostnameEndpoint;
use torsion::error::{CancelledError, ConnectError, ConnectionRefusedError};
use torsion::{factory, reactor, Failure, Protocol, Transport};

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

#[derive(Default)]
struct Quiet {
    made: bool,
}
impl Protocol for Quiet {
    fn connection_made(&mut self, _t: &Transport) {
        self.made = true;
    }
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[torsion::test]
async fn hostname_endpoint_connects_to_localhost_whichever_family_listens() -> Result<(), Failure> {
    // Only 127.0.0.1 listens: if "localhost" gives ::1 first, that attempt is refused and
    // the IPv4 one starts at once.
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let p = port.get_host().port().unwrap();
    let endpoint = HostnameEndpoint::new(&reactor(), "localhost", p);
    assert_eq!(endpoint.to_string(), format!("localhost:{p}"));
    let conn = endpoint.connect(factory(Quiet::default)).await?;
    assert!(conn.with_protocol(|q| q.made));
    assert_eq!(conn.transport().get_peer().port(), Some(p));
    conn.transport().lose_connection();

    // An IP address is used as is, without resolving.
    let conn = HostnameEndpoint::new(&reactor(), "127.0.0.1", p)
        .connect(factory(Quiet::default))
        .await?;
    conn.transport().lose_connection();
    port.stop_listening().await?;
    Ok(())
}

#[torsion::test]
async fn hostname_endpoint_fails_with_the_last_failure_or_a_lookup_error() -> Result<(), Failure> {
    let err = HostnameEndpoint::new(&reactor(), "127.0.0.1", free_port())
        .connect(factory(|| Echo))
        .await
        .unwrap_err();
    assert!(err.check::<ConnectionRefusedError>(), "{err:?}");

    let err = HostnameEndpoint::new(&reactor(), "no-such-host.invalid", 80)
        .connect(factory(|| Echo))
        .await
        .unwrap_err();
    assert!(err.check::<ConnectError>(), "{err:?}");
    assert!(
        err.error_message().contains("no-such-host.invalid"),
        "{err}"
    );
    Ok(())
}

#[torsion::test]
async fn cancelling_a_hostname_connect_stops_it() -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| Echo), "127.0.0.1")?;
    let p = port.get_host().port().unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let d = HostnameEndpoint::new(&reactor(), host, p).connect(factory(Quiet::default));
        d.cancel();
        let err = d.await.unwrap_err();
        assert!(err.check::<CancelledError>(), "{host}: {err:?}");
    }
    port.stop_listening().await?;
    Ok(())
}
