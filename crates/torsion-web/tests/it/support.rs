//! What the torsion-web tests share: a site listening on a loopback port, and one raw HTTP
//! exchange with it over a plain socket.

#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::reactor;
use torsion::tcp::ListeningPort;
use torsion_web::Site;

/// `site` listening on an ephemeral port of 127.0.0.1, and its address.
pub(crate) fn listen(site: Site) -> (ListeningPort, SocketAddr) {
    let port = reactor().listen_tcp_on(0, site, "127.0.0.1").unwrap();
    let addr = port.get_host().socket_addr().unwrap();
    (port, addr)
}

/// Sends `request` and reads until the server closes the connection.
pub(crate) async fn exchange(addr: SocketAddr, request: impl AsRef<[u8]>) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_ref()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The first line of a response.
pub(crate) fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}
