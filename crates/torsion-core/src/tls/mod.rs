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
//! ([`start_tls`](crate::transport::Transport::start_tls), for STARTTLS protocols).
//! Protocols see plaintext and do not know TLS is there: `connection_made` comes as soon as
//! the TCP connection is up (writes made before the handshake completes are sent once it
//! does), and [`peer_certificate`](crate::transport::Transport::peer_certificate) and
//! [`negotiated_protocol`](crate::transport::Transport::negotiated_protocol) tell what
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
//! use torsion::{factory, ConnectionEnd, Failure, Protocol, Reactor, Transport};
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
//!     fn connection_lost(&mut self, _: ConnectionEnd) { torsion::reactor().stop().unwrap() }
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

pub use crate::error::TlsError;
pub use context::{
    load_certificates, load_certificates_pem, load_private_key, ClientContext,
    ClientContextBuilder, Identity, ServerContext, ServerContextBuilder, DEFAULT_HANDSHAKE_TIMEOUT,
};
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::address::Address;
use layer::TlsLayer;

/// Either side's settings, for [`start_tls`](crate::transport::TlsTransport::start_tls):
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
