//! TLS over TCP: the reactor's `listen_tls*` and `connect_tls*` (Twisted's `listenSSL` and
//! `connectSSL`). The TLS itself is a byte layer ([`crate::tls`]) the connection engine runs
//! between the socket and the protocol; this file only puts it on new TCP connections.

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ServerConfig;
use tokio::net::TcpStream;

use super::{AcceptorWrap, Connector, ListenOptions, ListeningPort, DEFAULT_CONNECT_TIMEOUT};
use crate::port::Acceptor;
use crate::protocol::{ClientFactory, Factory, Protocol};
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
        let wrap = WithTls(context.config().clone());
        listener.listen(self, host, factory, wrap)
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
