//! `MemoryReactor`: records TCP, TLS, Unix-socket and UDP listens and connects without
//! opening sockets (Twisted's `twisted.internet.testing.MemoryReactor`).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::datagram::DatagramProtocol;
#[cfg(feature = "tls")]
use crate::net::ReactorTls;
use crate::net::{ReactorTcp, ReactorUdp, ReactorUnix};
use crate::protocol::{ClientFactory, Factory, Protocol};
#[cfg(feature = "tls")]
use crate::tls::{ClientContext, ServerContext};
use crate::transport::Address;
use crate::Failure;

type Build = Box<dyn Fn(&Address) -> Option<Box<dyn Protocol>>>;

/// A factory that a [`MemoryReactor`] was given, with what it was given for.
pub struct RecordedFactory {
    host: String,
    port: u16,
    path: Option<PathBuf>,
    context: Option<Box<dyn Any>>,
    factory: Rc<dyn Any>,
    build: Build,
    stopped: Rc<Cell<bool>>,
}

impl RecordedFactory {
    fn new<F: Factory>(host: &str, port: u16, factory: F) -> RecordedFactory {
        let factory = Rc::new(factory);
        let f = factory.clone();
        RecordedFactory {
            host: host.to_owned(),
            port,
            path: None,
            context: None,
            factory,
            build: Box::new(move |addr| {
                f.build_protocol(addr)
                    .map(|p| Box::new(p) as Box<dyn Protocol>)
            }),
            stopped: Rc::new(Cell::new(false)),
        }
    }

    /// The port: listened on, or connected to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host connected to; for a listen, the interface (`"0.0.0.0"`, as `listen_tcp`).
    /// Empty for a Unix socket.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The Unix socket's path, for `listen_unix` and `connect_unix` (Twisted records it in
    /// place of the host).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The TLS context `listen_tls` ([`ServerContext`](crate::tls::ServerContext)) or
    /// `connect_tls` ([`ClientContext`](crate::tls::ClientContext)) was given, if it is a `C`.
    pub fn tls_context<C: 'static>(&self) -> Option<&C> {
        self.context.as_ref()?.downcast_ref::<C>()
    }

    /// The factory, if it is an `F`.
    pub fn factory<F: 'static>(&self) -> Option<&F> {
        self.factory.downcast_ref::<F>()
    }

    /// Has the factory build a protocol for a connection from (or to) `addr`, as the reactor
    /// would; drive it with a [`StringTransport`](super::StringTransport) or
    /// [`connected_pair`](super::connected_pair).
    pub fn build_protocol(&self, addr: &Address) -> Option<Box<dyn Protocol>> {
        (self.build)(addr)
    }

    /// True once the port was stopped, or the connector disconnected.
    pub fn stopped(&self) -> bool {
        self.stopped.get()
    }
}

impl fmt::Debug for RecordedFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedFactory")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &self.path)
            .field("tls", &self.context.is_some())
            .field("stopped", &self.stopped())
            .finish()
    }
}

/// What [`MemoryReactor`]'s `listen_*` methods return: a port that never accepts.
#[derive(Debug, Clone)]
pub struct MemoryPort {
    host: Address,
    stopped: Rc<Cell<bool>>,
}

impl MemoryPort {
    /// The address it "listens" on: `0.0.0.0:PORT` (TCP, TLS or UDP), or the socket's path.
    pub fn get_host(&self) -> Address {
        self.host.clone()
    }

    /// Marks the port stopped (see [`RecordedFactory::stopped`]).
    pub fn stop_listening(&self) {
        self.stopped.set(true);
    }
}

/// What [`MemoryReactor`]'s `connect_*` methods return: a connector that never connects.
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    host: String,
    port: u16,
    path: Option<PathBuf>,
    stopped: Rc<Cell<bool>>,
}

impl MemoryConnector {
    /// The host and port it was asked to connect to (`("", 0)` for a Unix socket).
    pub fn destination(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// The Unix socket it was asked to connect to.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Marks the connector stopped (see [`RecordedFactory::stopped`]).
    pub fn disconnect(&self) {
        self.stopped.set(true);
    }
}

/// A [`ReactorTcp`] (and [`ReactorTls`](crate::net::ReactorTls), [`ReactorUnix`],
/// [`ReactorUdp`]) that records listens and connects and opens nothing
/// (Twisted's `MemoryReactor`), so a test can check what code asked for and then drive the
/// protocols the recorded factories build.
///
/// ```
/// use torsion::net::ReactorTcp;
/// use torsion::testing::{MemoryReactor, StringTransport};
/// use torsion::{factory, transport::Address, Failure, Protocol, Transport};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
/// }
///
/// fn start<R: ReactorTcp>(reactor: &R) -> Result<R::Port, Failure> {
///     reactor.listen_tcp(8007, factory(|| Echo))
/// }
///
/// let reactor = MemoryReactor::new();
/// start(&reactor).unwrap();
/// let servers = reactor.tcp_servers();
/// assert_eq!(servers.len(), 1);
/// assert_eq!(servers[0].port(), 8007);
///
/// let mut p = servers[0].build_protocol(&Address::Named("client".into())).unwrap();
/// let st = StringTransport::new();
/// p.connection_made(&st.transport());
/// p.data_received(&st.transport(), b"ping");
/// assert_eq!(st.value(), b"ping");
/// ```
#[derive(Default)]
pub struct MemoryReactor {
    tcp_servers: RefCell<Vec<Rc<RecordedFactory>>>,
    tcp_clients: RefCell<Vec<Rc<RecordedFactory>>>,
    tls_servers: RefCell<Vec<Rc<RecordedFactory>>>,
    tls_clients: RefCell<Vec<Rc<RecordedFactory>>>,
    unix_servers: RefCell<Vec<Rc<RecordedFactory>>>,
    unix_clients: RefCell<Vec<Rc<RecordedFactory>>>,
    udp_ports: RefCell<Vec<Rc<RecordedDatagram>>>,
}

/// A UDP port a [`MemoryReactor`] was asked to open, with its protocol.
pub struct RecordedDatagram {
    port: u16,
    protocol: RefCell<Box<dyn Any>>,
    stopped: Rc<Cell<bool>>,
}

impl RecordedDatagram {
    /// The port asked for.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Calls `f` with the protocol, if it is a `P` (to drive it with a
    /// [`FakeDatagramTransport`](super::FakeDatagramTransport), or look at its state).
    pub fn with_protocol<P: 'static, R>(&self, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        self.protocol.borrow_mut().downcast_mut::<P>().map(f)
    }

    /// True once the port was stopped.
    pub fn stopped(&self) -> bool {
        self.stopped.get()
    }
}

impl fmt::Debug for RecordedDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedDatagram")
            .field("port", &self.port)
            .field("stopped", &self.stopped())
            .finish()
    }
}

fn on_all_interfaces(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([0, 0, 0, 0], port))
}

impl MemoryReactor {
    /// A reactor that has recorded nothing.
    pub fn new() -> MemoryReactor {
        MemoryReactor::default()
    }

    /// The `listen_tcp` calls so far, oldest first (Twisted's `tcpServers`).
    pub fn tcp_servers(&self) -> Vec<Rc<RecordedFactory>> {
        self.tcp_servers.borrow().clone()
    }

    /// The `connect_tcp` calls so far, oldest first (Twisted's `tcpClients`).
    pub fn tcp_clients(&self) -> Vec<Rc<RecordedFactory>> {
        self.tcp_clients.borrow().clone()
    }

    /// The `listen_tls` calls so far, oldest first (Twisted's `sslServers`).
    pub fn tls_servers(&self) -> Vec<Rc<RecordedFactory>> {
        self.tls_servers.borrow().clone()
    }

    /// The `connect_tls` calls so far, oldest first (Twisted's `sslClients`).
    pub fn tls_clients(&self) -> Vec<Rc<RecordedFactory>> {
        self.tls_clients.borrow().clone()
    }

    /// The `listen_unix` calls so far, oldest first (Twisted's `unixServers`).
    pub fn unix_servers(&self) -> Vec<Rc<RecordedFactory>> {
        self.unix_servers.borrow().clone()
    }

    /// The `connect_unix` calls so far, oldest first (Twisted's `unixClients`).
    pub fn unix_clients(&self) -> Vec<Rc<RecordedFactory>> {
        self.unix_clients.borrow().clone()
    }

    /// The `listen_udp` calls so far, oldest first (Twisted's `udpPorts`).
    pub fn udp_ports(&self) -> Vec<Rc<RecordedDatagram>> {
        self.udp_ports.borrow().clone()
    }

    fn record_listen(
        list: &RefCell<Vec<Rc<RecordedFactory>>>,
        recorded: RecordedFactory,
        host: Address,
    ) -> MemoryPort {
        let stopped = recorded.stopped.clone();
        list.borrow_mut().push(Rc::new(recorded));
        MemoryPort { host, stopped }
    }

    fn record_connect(
        list: &RefCell<Vec<Rc<RecordedFactory>>>,
        recorded: RecordedFactory,
    ) -> MemoryConnector {
        let connector = MemoryConnector {
            host: recorded.host.clone(),
            port: recorded.port,
            path: recorded.path.clone(),
            stopped: recorded.stopped.clone(),
        };
        list.borrow_mut().push(Rc::new(recorded));
        connector
    }
}

impl fmt::Debug for MemoryReactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReactor")
            .field("tcp_servers", &self.tcp_servers.borrow())
            .field("tcp_clients", &self.tcp_clients.borrow())
            .field("tls_servers", &self.tls_servers.borrow())
            .field("tls_clients", &self.tls_clients.borrow())
            .field("unix_servers", &self.unix_servers.borrow())
            .field("unix_clients", &self.unix_clients.borrow())
            .field("udp_ports", &self.udp_ports.borrow())
            .finish()
    }
}

impl ReactorTcp for MemoryReactor {
    type Port = MemoryPort;
    type Connector = MemoryConnector;

    fn listen_tcp<F: Factory>(&self, port: u16, factory: F) -> Result<MemoryPort, Failure> {
        let recorded = RecordedFactory::new("0.0.0.0", port, factory);
        let host = Address::Tcp(on_all_interfaces(port));
        Ok(Self::record_listen(&self.tcp_servers, recorded, host))
    }

    fn connect_tcp<F: ClientFactory>(&self, host: &str, port: u16, factory: F) -> MemoryConnector {
        Self::record_connect(&self.tcp_clients, RecordedFactory::new(host, port, factory))
    }
}

#[cfg(feature = "tls")]
impl ReactorTls for MemoryReactor {
    type Port = MemoryPort;
    type Connector = MemoryConnector;

    fn listen_tls<F: Factory>(
        &self,
        port: u16,
        factory: F,
        context: ServerContext,
    ) -> Result<MemoryPort, Failure> {
        let mut recorded = RecordedFactory::new("0.0.0.0", port, factory);
        recorded.context = Some(Box::new(context));
        let host = Address::Tcp(on_all_interfaces(port));
        Ok(Self::record_listen(&self.tls_servers, recorded, host))
    }

    fn connect_tls<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: F,
        context: ClientContext,
    ) -> MemoryConnector {
        let mut recorded = RecordedFactory::new(host, port, factory);
        recorded.context = Some(Box::new(context));
        Self::record_connect(&self.tls_clients, recorded)
    }
}

impl ReactorUnix for MemoryReactor {
    type Port = MemoryPort;
    type Connector = MemoryConnector;

    fn listen_unix<F: Factory>(&self, path: &Path, factory: F) -> Result<MemoryPort, Failure> {
        let mut recorded = RecordedFactory::new("", 0, factory);
        recorded.path = Some(path.to_path_buf());
        let host = Address::Unix(Some(path.to_path_buf()));
        Ok(Self::record_listen(&self.unix_servers, recorded, host))
    }

    fn connect_unix<F: ClientFactory>(&self, path: &Path, factory: F) -> MemoryConnector {
        let mut recorded = RecordedFactory::new("", 0, factory);
        recorded.path = Some(path.to_path_buf());
        Self::record_connect(&self.unix_clients, recorded)
    }
}

impl ReactorUdp for MemoryReactor {
    type Port = MemoryPort;

    fn listen_udp<P: DatagramProtocol>(
        &self,
        port: u16,
        protocol: P,
    ) -> Result<MemoryPort, Failure> {
        let stopped = Rc::new(Cell::new(false));
        self.udp_ports.borrow_mut().push(Rc::new(RecordedDatagram {
            port,
            protocol: RefCell::new(Box::new(protocol)),
            stopped: stopped.clone(),
        }));
        Ok(MemoryPort {
            host: Address::Udp(on_all_interfaces(port)),
            stopped,
        })
    }
}
