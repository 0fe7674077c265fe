//! `HostnameEndpoint` (Twisted's, with RFC 8305 ordering): resolves a name, races its
//! addresses, and fires with the first connection; fails with a `DnsLookupError` for a
//! name that does not resolve and with the last failure when every address refuses; cancelling
//! stops it.

use torsion::endpoints::HostnameEndpoint;
use torsion::error::{CancelledError, ConnectionRefusedError, DnsLookupError};
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
    assert!(err.check::<DnsLookupError>(), "{err:?}");
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

/// A loopback port whose accept queue is full, so a new connection's SYN is dropped and the
/// attempt hangs (Linux drops SYNs to a listener whose accept queue overflows); keep the
/// returned sockets alive.
#[cfg(target_os = "linux")]
fn black_hole() -> (socket2::Socket, std::net::TcpStream, u16) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    s.listen(0).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    let filler = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    (s, filler, port)
}

#[cfg(target_os = "linux")]
#[torsion::test]
async fn a_hanging_address_gets_the_next_one_started_after_the_attempt_delay() -> Result<(), Failure>
{
    let (_hole, _filler, p) = black_hole();
    let live = reactor().listen_tcp_on(p, factory(|| Echo), "127.0.0.2")?;
    let clock = torsion::testing::Clock::new();
    let mut endpoint = HostnameEndpoint::new(&reactor(), "twin.test", p);
    endpoint
        .set_clock(clock.clone())
        .set_resolver(move |host, port| {
            assert_eq!((host, port), ("twin.test", p));
            torsion::defer::succeed(vec![
                ([127, 0, 0, 1], port).into(),
                ([127, 0, 0, 2], port).into(),
            ])
        });
    let d = endpoint.connect(factory(Quiet::default));
    assert_eq!(
        clock.pending_call_times(),
        vec![0.3],
        "the next attempt is staggered"
    );
    assert!(!d.called());
    clock.advance(0.3);
    let conn = d.await?;
    assert_eq!(
        conn.transport().get_peer().to_string(),
        format!("tcp:127.0.0.2:{p}"),
        "the second address won"
    );
    assert!(clock.pending_call_times().is_empty());
    conn.transport().lose_connection();
    live.stop_listening().await?;
    Ok(())
}
