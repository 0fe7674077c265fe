//! TLS over TCP: the reactor's `listen_tls*` and `connect_tls*` (Twisted's `listenSSL` and
//! `connectSSL`). The TLS itself is a byte layer ([`crate::tls`]) the connection engine runs
//! between the socket and the protocol; this file only puts it on new TCP connections.

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpStream;

use super::{AcceptorWrap, Prepare};
use crate::port::Acceptor;
use crate::protocol::Protocol;
use crate::stream::{Conn, StreamSocket, Tasked};
use crate::tls::layer::TlsLayer;
use crate::tls::{ClientContext, ServerContext};
use crate::transport::{Address, TransportImpl};
use crate::{Failure, Reactor};

/// An accepted stream with the server settings its connection will use.
pub(crate) struct TlsStream<S> {
    sock: S,
    config: Arc<ServerConfig>,
    handshake_timeout: Option<Duration>,
}

/// Puts a server TLS layer on a TCP acceptor of either driver.
struct WithTls(Arc<ServerConfig>, Option<Duration>);

impl AcceptorWrap for WithTls {
    type Out<A: Acceptor<Stream: StreamSocket>> = TlsAcceptor<A>;
    fn wrap<A: Acceptor<Stream: StreamSocket>>(self, inner: A) -> TlsAcceptor<A> {
        TlsAcceptor {
            inner,
            config: self.0,
            handshake_timeout: self.1,
        }
    }
}

/// A listener whose connections start with a server TLS layer.
struct TlsAcceptor<A> {
    inner: A,
    config: Arc<ServerConfig>,
    handshake_timeout: Option<Duration>,
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
        let stream = TlsStream {
            sock,
            config: self.config.clone(),
            handshake_timeout: self.handshake_timeout,
        };
        Poll::Ready(Ok((stream, peer, host)))
    }

    fn serve<P: Protocol>(
        reactor: &Reactor,
        stream: Self::Stream,
        peer: Address,
        host: Address,
        proto: P,
        send_timeout: Option<std::time::Duration>,
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
            if let Some(timeout) = stream.handshake_timeout {
                abort_unless_handshaken(reactor, &conn, timeout);
            }
            crate::stream::start(reactor, conn, proto, send_timeout);
        }
    }
}

/// Aborts `conn` if its handshake is still running in `timeout`: a peer that connects and
/// never finishes (or never starts) its handshake would otherwise hold the connection, and a
/// file descriptor, for ever. The timer holds the connection weakly; it does nothing to one
/// that has ended.
fn abort_unless_handshaken<S: StreamSocket>(
    reactor: &Reactor,
    conn: &Rc<Conn<S>>,
    timeout: Duration,
) {
    let weak = Rc::downgrade(conn);
    let timer = reactor.call_later(timeout, move || {
        let Some(conn) = weak.upgrade() else {
            return;
        };
        if conn.with_tls(|l| l.is_handshaking() && !l.failed) == Some(true) {
            tracing::info!(
                target: "torsion",
                peer = %conn.get_peer(),
                "TLS handshake timed out after {} s; aborting that connection",
                timeout.as_secs_f64()
            );
            conn.abort_connection();
        }
    });
    conn.set_handshake_timer(timer);
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
    WithTls(context.config().clone(), context.handshake_timeout())
}
