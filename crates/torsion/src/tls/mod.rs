//! TLS (Twisted's `listenSSL`, `connectSSL`, `startTLS` and `twisted.internet.ssl`), with
//! [rustls](https://docs.rs/rustls) and its `ring` provider: no OpenSSL.
//!
//! ```text
//!   your Protocol         plaintext: data_received, write, lose_connection
//!        ^   |
//!   TLS layer (rustls)    handshake, records, close_notify          <- this module
//!        ^   |
//!   connection engine     ciphertext: socket reads, the write buffer, flushing
//! ```
//!
//! TLS is a layer inside a connection, not a socket of its own, so it works over any stream
//! transport and a running plaintext connection can switch to it
//! ([`start_tls`](crate::transport::TransportImpl::start_tls), for STARTTLS protocols).
//! Protocols see plaintext and do not know TLS is there: `connection_made` comes as soon as
//! the TCP connection is up (writes made before the handshake completes are sent once it
//! does), and [`peer_certificate`](crate::transport::TransportImpl::peer_certificate) and
//! [`negotiated_protocol`](crate::transport::TransportImpl::negotiated_protocol) tell what
//! the handshake agreed once data flows.
//!
//! `lose_connection` sends everything written, then TLS's `close_notify`, then closes. A
//! peer's `close_notify` is a clean end ([`ConnectionDone`](crate::error::ConnectionDone)); a
//! TCP end without one is [`ConnectionLost`](crate::error::ConnectionLost) (it could be a
//! truncation attack). A handshake or protocol error (an untrusted or wrong-name
//! certificate, a missing client certificate, garbage instead of TLS) ends the connection
//! with a [`TlsError`] naming the cause: the protocol's `connection_lost` gets it and so, for
//! a client, does the factory's `client_connection_lost` (the TCP connection was made, as in
//! Twisted). A client context that cannot make a connection at all (a bad server name) is
//! reported to `client_connection_failed`.
//!
//! An echo server and a client that trusts its self-signed certificate:
//!
//! ```
//! use torsion::tls::{ClientContext, Identity, ServerContext};
//! use torsion::{factory, Failure, Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
//! }
//!
//! struct Hello;
//! impl Protocol for Hello {
//!     fn connection_made(&mut self, t: &Transport) { t.write(b"hello over TLS") }
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) {
//!         assert_eq!(data, b"hello over TLS");
//!         assert!(t.peer_certificate().is_some());
//!         t.lose_connection();
//!     }
//!     fn connection_lost(&mut self, _: Failure) { torsion::reactor().stop().unwrap() }
//! }
//!
//! // A self-signed certificate for "localhost", made for the test.
//! let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
//! let (cert_pem, key_pem) = (made.cert.pem(), made.signing_key.serialize_pem());
//!
//! let server = ServerContext::new(Identity::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())?)?;
//! let client = ClientContext::builder().trust([made.cert.der().clone()]).build()?;
//!
//! let r = Reactor::new();
//! let port = r.listen_tls_on(0, factory(|| Echo), server, "127.0.0.1").unwrap();
//! let port_number = port.get_host().port().unwrap();
//! r.connect_tls("localhost", port_number, factory(|| Hello), client);
//! r.run().unwrap();
//! # Ok::<(), torsion::tls::TlsError>(())
//! ```

mod context;
pub(crate) mod layer;

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ServerConfig;
use tokio::net::TcpStream;

pub use crate::error::TlsError;
pub use context::{
    load_certificates, load_private_key, ClientContext, ClientContextBuilder, Identity,
    ServerContext, ServerContextBuilder,
};
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::port::Acceptor;
use crate::protocol::{ClientFactory, Factory, Protocol};
use crate::stream::{Conn, StreamSocket, Tasked};
use crate::tcp::{Connector, ListenOptions, ListeningPort, DEFAULT_CONNECT_TIMEOUT};
use crate::transport::Address;
use crate::{Failure, Reactor};
use layer::TlsLayer;

/// Either side's settings, for [`start_tls`](crate::transport::TransportImpl::start_tls):
/// a [`ServerContext`] makes this end the TLS server, a [`ClientContext`] the client.
#[derive(Clone, Debug)]
pub enum TlsContext {
    /// Be the TLS client.
    Client(ClientContext),
    /// Be the TLS server.
    Server(ServerContext),
}

impl From<ClientContext> for TlsContext {
    fn from(c: ClientContext) -> TlsContext {
        TlsContext::Client(c)
    }
}

impl From<ServerContext> for TlsContext {
    fn from(s: ServerContext) -> TlsContext {
        TlsContext::Server(s)
    }
}

impl TlsContext {
    /// The layer for a running connection to `peer`. A client without a server name of its
    /// own checks the certificate against the peer's IP address.
    pub(crate) fn layer_for(&self, peer: &Address) -> Result<TlsLayer, TlsError> {
        match self {
            TlsContext::Client(c) => c.layer_for_peer(peer),
            TlsContext::Server(s) => s.layer(),
        }
    }
}

/// An accepted stream with the server settings its connection will use.
pub(crate) struct TlsStream<S> {
    sock: S,
    config: Arc<ServerConfig>,
}

/// A listener whose connections start with a server TLS layer.
struct TlsAcceptor<A> {
    inner: A,
    config: Arc<ServerConfig>,
}

impl<A: Acceptor> Acceptor for TlsAcceptor<A>
where
    A::Stream: StreamSocket,
{
    type Stream = TlsStream<A::Stream>;

    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<crate::port::Accepted<Self::Stream>>> {
        let (sock, peer, host) = std::task::ready!(self.inner.poll_accept(cx))?;
        let config = self.config.clone();
        Poll::Ready(Ok((TlsStream { sock, config }, peer, host)))
    }

    fn serve<P: Protocol>(
        reactor: &Reactor,
        stream: Self::Stream,
        peer: Address,
        host: Address,
        proto: P,
    ) {
        let layer = match TlsLayer::server(stream.config) {
            Ok(layer) => layer,
            Err(e) => {
                tracing::info!(target: "torsion", %peer, "{e}; closing that connection");
                return;
            }
        };
        let conn = Conn::new(stream.sock, peer, host);
        // A new connection is neither closing nor TLS yet, so this cannot fail.
        if conn.install_tls(layer).is_ok() {
            crate::stream::start(reactor, conn, proto);
        }
    }
}

impl Reactor {
    /// Listens for TLS connections on `port` on all IPv4 interfaces (Twisted's
    /// `listenSSL(port, factory, contextFactory)`); port 0 picks a free port.
    pub fn listen_tls<F: Factory>(
        &self,
        port: u16,
        factory: F,
        context: ServerContext,
    ) -> Result<ListeningPort, Failure> {
        self.listen_tls_on(port, factory, context, "0.0.0.0")
    }

    /// [`listen_tls`](Self::listen_tls) on one interface (an IPv4 or IPv6 address).
    pub fn listen_tls_on<F: Factory>(
        &self,
        port: u16,
        factory: F,
        context: ServerContext,
        interface: &str,
    ) -> Result<ListeningPort, Failure> {
        self.listen_tls_with(port, factory, context, interface, ListenOptions::default())
    }

    /// [`listen_tls_on`](Self::listen_tls_on) with socket [`ListenOptions`] (the listen
    /// backlog, Twisted's `backlog=`; `SO_REUSEPORT`).
    pub fn listen_tls_with<F: Factory>(
        &self,
        port: u16,
        factory: F,
        context: ServerContext,
        interface: &str,
        options: ListenOptions,
    ) -> Result<ListeningPort, Failure> {
        let (listener, host) = self.bind_tcp(port, interface, options)?;
        let acceptor = TlsAcceptor {
            inner: listener,
            config: context.config().clone(),
        };
        crate::port::listen(self, acceptor, Address::Tcp(host), factory)
    }

    /// Connects to `host:port` over TLS (Twisted's `connectSSL`), checking the server's
    /// certificate against `host` (or the context's own server name), with the default 30 s
    /// time-out for the TCP connection.
    pub fn connect_tls<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        context: ClientContext,
    ) -> Connector {
        self.connect_tls_timeout(host, port, factory, context, DEFAULT_CONNECT_TIMEOUT)
    }

    /// [`connect_tls`](Self::connect_tls) with a time-out in seconds.
    pub fn connect_tls_timeout<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        context: ClientContext,
        timeout: f64,
    ) -> Connector {
        self.connect_tls_from(host, port, factory, context, timeout, None)
    }

    /// [`connect_tls_timeout`](Self::connect_tls_timeout) from a local address (Twisted's
    /// `bindAddress`; see [`connect_tcp_from`](Self::connect_tcp_from)).
    pub fn connect_tls_from<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        context: ClientContext,
        timeout: f64,
        bind_address: Option<std::net::SocketAddr>,
    ) -> Connector {
        let prepare = Rc::new(move |conn: &Conn<Tasked<TcpStream>>, host: &str| {
            let layer = context.layer(host)?;
            conn.install_tls(layer).map_err(Failure::new)
        });
        self.connect_tcp_prepared(host, port, factory, timeout, bind_address, Some(prepare))
    }
}
