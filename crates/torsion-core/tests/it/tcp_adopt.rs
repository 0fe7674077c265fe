//! `Reactor::adopt_stream_port` (Twisted's `adoptStreamPort`): a listening socket made
//! elsewhere — TCP on IPv4 or IPv6, or a Unix socket — is served like one the reactor made;
//! anything else is refused with `CannotListenError`, and the socket is closed when the port
//! stops.

use std::io::{Read, Write};

use torsion::error::CannotListenError;
use torsion::{factory, reactor, Failure, Protocol, Transport};

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// Sends `msg` from a thread (the reactor keeps running meanwhile) and reads the echo.
async fn echo_over<S: Read + Write + Send + 'static>(stream: S, msg: &'static [u8]) -> Vec<u8> {
    torsion::threads::defer_to_thread(move || {
        let mut s = stream;
        s.write_all(msg).unwrap();
        let mut got = vec![0; msg.len()];
        s.read_exact(&mut got).unwrap();
        got
    })
    .await
    .unwrap()
}

#[torsion::test]
async fn an_adopted_tcp_listener_serves_on_ipv4_and_ipv6() -> Result<(), Failure> {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let Ok(socket) = std::net::TcpListener::bind(bind) else {
            continue; // no IPv6 on this host
        };
        let addr = socket.local_addr().unwrap();
        let port = reactor().adopt_stream_port(socket, factory(|| Echo))?;
        assert_eq!(port.get_host().port(), Some(addr.port()));
        let client = std::net::TcpStream::connect(addr).unwrap();
        assert_eq!(echo_over(client, b"adopted").await, b"adopted");
        port.stop_listening().await?;
        // Closed with the port: nothing listens there any more.
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
    Ok(())
}

#[torsion::test]
async fn an_adopted_unix_listener_serves_and_its_file_stays() -> Result<(), Failure> {
    let temp = crate::support::TempPath::new("adopted");
    let path = temp.0.clone();
    let socket = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let port = reactor().adopt_stream_port(socket, factory(|| Echo))?;
    let client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    assert_eq!(echo_over(client, b"over unix").await, b"over unix");
    port.stop_listening().await?;
    assert!(path.exists(), "the file belongs to whoever made the socket");
    Ok(())
}

#[torsion::test]
async fn sockets_that_do_not_listen_are_refused() -> Result<(), Failure> {
    // A bound but not listening TCP socket.
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let err = reactor()
        .adopt_stream_port(s, factory(|| Echo))
        .unwrap_err();
    assert!(err.check::<CannotListenError>(), "{err:?}");
    assert!(err.error_message().contains("not listening"), "{err}");

    // A datagram socket.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = reactor()
        .adopt_stream_port(udp, factory(|| Echo))
        .unwrap_err();
    assert!(err.check::<CannotListenError>(), "{err:?}");
    assert!(err.error_message().contains("not a stream socket"), "{err}");

    // Not a socket at all: a file.
    let file = std::fs::File::open("/dev/null").unwrap();
    let err = reactor()
        .adopt_stream_port(file, factory(|| Echo))
        .unwrap_err();
    assert!(err.check::<CannotListenError>(), "{err:?}");
    assert!(err.error_message().contains("not a socket"), "{err}");
    Ok(())
}
