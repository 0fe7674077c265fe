//! Port forwarding: relay every connection of a listening port to `host:port` (Twisted's
//! `twisted.protocols.portforward`).
//!
//! A [`ProxyFactory`] is a server factory. Each accepted connection (a [`ProxyServer`])
//! pauses reading and connects to the destination; once that connection (a [`ProxyClient`])
//! is made, reading resumes and bytes flow both ways unchanged. When either side closes,
//! the other is closed once what was written to it has been sent. A destination that cannot
//! be reached closes the accepted connection, with a log line.
//!
//! Flow control: each side's transport is registered as the streaming
//! [producer](crate::producer) of the other (as Twisted's `ProxyClient` does), with
//! watermarks [`HIGH_WATER`] and [`LOW_WATER`]: when the side being written to has more than
//! `HIGH_WATER` bytes waiting, the side being read from is paused until they drain to
//! `LOW_WATER`, so a fast sender and a slow receiver never make the forwarder buffer without
//! bound. (A transport that takes no producers falls back to checking every
//! [`DRAIN_CHECK_INTERVAL`] seconds.)
//!
//! ```
//! use torsion::protocols::portforward::ProxyFactory;
//! use torsion::{factory, Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
//! }
//!
//! let r = Reactor::new();
//! let echo = r.listen_tcp_on(0, factory(|| Echo), "127.0.0.1").unwrap();
//! let dest = echo.get_host().port().unwrap();
//! let forwarder = r.listen_tcp_on(0, ProxyFactory::new("127.0.0.1", dest), "127.0.0.1").unwrap();
//! assert!(forwarder.listening());
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use crate::protocol::{ClientFactory, Factory, Protocol};
use crate::reactor::reactor;
use crate::tcp::{Connector, DEFAULT_CONNECT_TIMEOUT};
use crate::transport::{Address, Transport};
use crate::ConnectionEnd;
use crate::Failure;

/// Past this many bytes waiting to be sent on one side, the other side stops reading.
pub const HIGH_WATER: usize = 256 * 1024;

/// Below this many bytes waiting, the paused side reads again.
pub const LOW_WATER: usize = 64 * 1024;

/// How often a side paused for flow control checks whether the other side has drained, in
/// seconds, when its transports take no producers.
pub const DRAIN_CHECK_INTERVAL: f64 = 0.005;

/// The most bytes kept from the accepted side while the destination connection is being
/// made (reading is paused then, so this only holds what had already been read).
const MAX_EARLY_BYTES: usize = 1024 * 1024;

/// Forwards the connections of a listening port to `host:port` (Twisted's `ProxyFactory`).
#[derive(Debug, Clone)]
pub struct ProxyFactory {
    host: String,
    port: u16,
    timeout: f64,
}

impl ProxyFactory {
    /// Forwards to `host:port` (a name or an IP address), with the default 30 s connection
    /// time-out.
    pub fn new(host: impl Into<String>, port: u16) -> ProxyFactory {
        ProxyFactory {
            host: host.into(),
            port,
            timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Sets the time allowed to connect to the destination, in seconds.
    pub fn with_timeout(mut self, seconds: f64) -> ProxyFactory {
        self.timeout = seconds;
        self
    }

    /// The destination's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The destination's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Factory for ProxyFactory {
    type Protocol = ProxyServer;

    fn build_protocol(&self, _addr: &Address) -> Option<ProxyServer> {
        Some(ProxyServer {
            dest: self.clone(),
            link: Rc::new(Link::default()),
        })
    }
}

/// One forwarded connection: both transports, and what arrived early.
#[derive(Default)]
struct Link {
    server: RefCell<Option<Transport>>,
    client: RefCell<Option<Transport>>,
    connector: RefCell<Option<Connector>>,
    early: RefCell<Vec<u8>>,
    /// Whether each side is paused for flow control (server side, client side).
    server_paused: Cell<bool>,
    client_paused: Cell<bool>,
    /// Each transport is the registered producer of the other: they pause each other.
    wired: Cell<bool>,
    closed: Cell<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

impl Link {
    fn transport(&self, side: Side) -> Option<Transport> {
        match side {
            Side::Server => self.server.borrow().clone(),
            Side::Client => self.client.borrow().clone(),
        }
    }

    fn paused(&self, side: Side) -> &Cell<bool> {
        match side {
            Side::Server => &self.server_paused,
            Side::Client => &self.client_paused,
        }
    }

    /// Bytes read on `from`: written to the other side, pausing `from` if the other side has
    /// too much waiting.
    fn forward(self: &Rc<Self>, from: Side, from_transport: &Transport, data: &[u8]) {
        let to = match from {
            Side::Server => Side::Client,
            Side::Client => Side::Server,
        };
        let Some(peer) = self.transport(to) else {
            return;
        };
        peer.write(data);
        if self.wired.get() {
            return; // the transports pause each other
        }
        if peer.buffered_size() > HIGH_WATER && !self.paused(from).replace(true) {
            from_transport.pause_producing();
            self.watch_drain(from, from_transport.clone(), peer);
        }
    }

    /// Resumes `side` once `peer` has drained below [`LOW_WATER`] (only for transports that
    /// take no producers).
    fn watch_drain(self: &Rc<Self>, side: Side, transport: Transport, peer: Transport) {
        let link = Rc::downgrade(self);
        let _ = reactor().call_later(DRAIN_CHECK_INTERVAL, move || {
            let Some(link) = link.upgrade() else { return };
            if link.closed.get() || !peer.is_connected() {
                return;
            }
            if peer.buffered_size() < LOW_WATER {
                link.paused(side).set(false);
                transport.resume_producing();
            } else {
                link.watch_drain(side, transport, peer);
            }
        });
    }

    /// Registers each transport as the streaming producer of the other (Twisted's
    /// `ProxyClient.connectionMade`). If either refuses, neither is registered and the
    /// polling fallback is used.
    fn wire(&self, server: &Transport, client: &Transport) {
        for t in [server, client] {
            t.set_write_buffer_limits(HIGH_WATER, LOW_WATER);
        }
        if client
            .register_producer(Rc::new(server.clone()), true)
            .is_err()
        {
            return;
        }
        if server
            .register_producer(Rc::new(client.clone()), true)
            .is_err()
        {
            client.unregister_producer();
            return;
        }
        self.wired.set(true);
    }

    /// One side is gone: close the other and break the cycles.
    fn close(&self, gone: Side) {
        if self.closed.replace(true) {
            return;
        }
        let other = match gone {
            Side::Server => self.client.borrow_mut().take(),
            Side::Client => self.server.borrow_mut().take(),
        };
        if let Some(t) = other {
            t.lose_connection();
        }
        // Taken out first: stopping calls client_connection_failed, which looks again.
        let connector = self.connector.borrow_mut().take();
        if let Some(c) = connector {
            c.stop_connecting();
        }
        self.server.borrow_mut().take();
        self.client.borrow_mut().take();
        self.early.borrow_mut().clear();
    }
}

/// The accepted side of a forwarded connection (Twisted's `ProxyServer`).
pub struct ProxyServer {
    dest: ProxyFactory,
    link: Rc<Link>,
}

impl Protocol for ProxyServer {
    fn connection_made(&mut self, transport: &Transport) {
        // Read nothing more until the destination answers.
        transport.pause_producing();
        *self.link.server.borrow_mut() = Some(transport.clone());
        let factory = ProxyClientFactory {
            link: self.link.clone(),
            dest: format!("{}:{}", self.dest.host, self.dest.port),
        };
        let connector = reactor().connect_tcp_timeout(
            &self.dest.host,
            self.dest.port,
            factory,
            self.dest.timeout,
        );
        if !self.link.closed.get() {
            *self.link.connector.borrow_mut() = Some(connector);
        }
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        if self.link.client.borrow().is_some() {
            self.link.forward(Side::Server, transport, data);
            return;
        }
        let mut early = self.link.early.borrow_mut();
        if early.len() + data.len() > MAX_EARLY_BYTES {
            drop(early);
            crate::log::error_event(format_args!(
                "port forward: {} sent more than {MAX_EARLY_BYTES} bytes before the \
                 destination connected; connection closed",
                transport.get_peer()
            ));
            transport.abort_connection();
            return;
        }
        early.extend_from_slice(data);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.link.close(Side::Server);
    }
}

impl fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyServer")
            .field("dest", &self.dest)
            .finish()
    }
}

/// The factory of one forwarded connection's outgoing side (Twisted's
/// `ProxyClientFactory`).
pub struct ProxyClientFactory {
    link: Rc<Link>,
    dest: String,
}

impl Factory for ProxyClientFactory {
    type Protocol = ProxyClient;

    fn build_protocol(&self, _addr: &Address) -> Option<ProxyClient> {
        Some(ProxyClient {
            link: self.link.clone(),
        })
    }
}

impl ClientFactory for ProxyClientFactory {
    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        self.link.connector.borrow_mut().take();
        if let Some(server) = self.link.server.borrow().clone() {
            crate::log::error_event(format_args!(
                "port forward: cannot connect {} to {}: {}; connection closed",
                server.get_peer(),
                self.dest,
                reason.error_message()
            ));
        }
        self.link.close(Side::Client);
    }

    fn client_connection_lost(&self, _connector: &Connector, _reason: Failure) {
        self.link.connector.borrow_mut().take();
    }
}

impl fmt::Debug for ProxyClientFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyClientFactory")
            .field("dest", &self.dest)
            .finish()
    }
}

/// The outgoing side of a forwarded connection (Twisted's `ProxyClient`).
pub struct ProxyClient {
    link: Rc<Link>,
}

impl Protocol for ProxyClient {
    fn connection_made(&mut self, transport: &Transport) {
        let Some(server) = self.link.server.borrow().clone() else {
            transport.lose_connection(); // the accepted side went away meanwhile
            return;
        };
        *self.link.client.borrow_mut() = Some(transport.clone());
        let early = std::mem::take(&mut *self.link.early.borrow_mut());
        if !early.is_empty() {
            transport.write(&early);
        }
        self.link.wire(&server, transport);
        server.resume_producing();
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.link.forward(Side::Client, transport, data);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.link.close(Side::Client);
    }
}

impl fmt::Debug for ProxyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyClient").finish()
    }
}
