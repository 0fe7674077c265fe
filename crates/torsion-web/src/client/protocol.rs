//! The protocol object the reactor drives for one client connection, and the factory that
//! makes it for one connection attempt.

use std::cell::RefCell;

use torsion::defer::Trigger;
use torsion::tcp::Connector;
use torsion::transport::Address;
use torsion::ConnectionEnd;
use torsion::{ClientFactory, Factory, Failure, Protocol, Transport};

use super::connection::ClientConn;

/// The protocol of one client connection (Twisted's `HTTP11ClientProtocol`), made by an
/// [`HttpClientFactory`]. A TLS connector runs it over its TLS transport.
pub struct Http11ClientProtocol {
    conn: ClientConn,
    connected: Option<Trigger<ClientConn>>,
}

impl Protocol for Http11ClientProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        self.conn.connection_made(transport, self.connected.take());
    }

    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        self.conn.data_received(data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.conn.connection_lost(reason.into());
    }
}

/// Makes the [`Http11ClientProtocol`] of one connection attempt and tells the pool how the
/// attempt went. The agent hands one to `connect_tcp`, or to a
/// [`TlsConnector`](super::TlsConnector) for `https`.
pub struct HttpClientFactory {
    conn: ClientConn,
    connected: RefCell<Option<Trigger<ClientConn>>>,
}

impl HttpClientFactory {
    pub(crate) fn new(conn: ClientConn, connected: Trigger<ClientConn>) -> HttpClientFactory {
        HttpClientFactory {
            conn,
            connected: RefCell::new(Some(connected)),
        }
    }
}

impl HttpClientFactory {
    /// Fails the attempt after the transport connected but before this factory's protocol
    /// ran (a proxy that refused the tunnel).
    #[cfg(feature = "tls")]
    pub(crate) fn fail(&self, reason: Failure) {
        if let Some(t) = self.connected.take() {
            let _ = t.try_errback(reason);
        }
    }
}

impl Factory for HttpClientFactory {
    type Protocol = Http11ClientProtocol;

    fn build_protocol(&self, _addr: &Address) -> Option<Http11ClientProtocol> {
        Some(Http11ClientProtocol {
            conn: self.conn.clone(),
            connected: self.connected.take(),
        })
    }
}

impl ClientFactory for HttpClientFactory {
    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        if let Some(t) = self.connected.take() {
            let _ = t.try_errback(reason);
        }
    }
}
