//! TLS over TCP: the reactor's `listen_tls*` and `connect_tls*` (Twisted's `listenSSL` and
//! `connectSSL`). The TLS itself is a byte layer ([`crate::tls`]) the connection engine runs
//! between the socket and the protocol; this file only puts it on new TCP connections.

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ServerConfig;
use tokio::net::TcpStream;

use super::{AcceptorWrap, Prepare};
use crate::port::Acceptor;
use crate::protocol::Protocol;
use crate::stream::{Conn, StreamSocket, Tasked};
use crate::tls::layer::TlsLayer;
use crate::tls::{ClientContext, ServerContext};
use crate::transport::Address;
use crate::{Failure, Reactor};

/// An accepted stream with the server settings its connection will use.
pub(crate) struct TlsStream<S> {
    sock: S,
    config: Arc<ServerConfig>,
}

/// Puts a server TLS layer on a TCP acceptor of either driver.
struct WithTls(Arc<ServerConfig>);

impl AcceptorWrap for WithTls {
    type Out<A: Acceptor<Stream: StreamSocket>> = TlsAcceptor<A>;
    fn wrap<A: Acceptor<Stream: StreamSocket>>(self, inner: A) -> TlsAcceptor<A> {
        TlsAcceptor {
            inner,
            config: self.0,
        }
    }
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

/// What a TLS client does to each new TCP connection before its protocol is built: puts
/// the client layer on it, checking the certificate against `host`.
pub(crate) fn client_layer(context: ClientContext) -> Prepare {
    Rc::new(move |conn: &Conn<Tasked<TcpStream>>, host: &str| {
        let layer = context.layer(host)?;
        conn.install_tls(layer).map_err(Failure::new)
    })
}

/// The wrapping that puts a server TLS layer on a TCP acceptor of either driver.
pub(crate) fn server_layer(context: &ServerContext) -> impl AcceptorWrap {
    WithTls(context.config().clone())
}
