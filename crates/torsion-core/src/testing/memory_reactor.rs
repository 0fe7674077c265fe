//! `MemoryReactor`: records TCP listens and connects without opening sockets (Twisted's
//! `twisted.internet.testing.MemoryReactor`).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use crate::net::ReactorTcp;
use crate::protocol::{ClientFactory, Factory, Protocol};
use crate::transport::Address;
use crate::Failure;

type Build = Box<dyn Fn(&Address) -> Option<Box<dyn Protocol>>>;

/// A factory that a [`MemoryReactor`] was given, with what it was given for.
pub struct RecordedFactory {
    host: String,
    port: u16,
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
    pub fn host(&self) -> &str {
        &self.host
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
            .field("stopped", &self.stopped())
            .finish()
    }
}

/// What [`MemoryReactor::listen_tcp`] returns: a port that never accepts.
#[derive(Debug, Clone)]
pub struct MemoryPort {
    port: u16,
    stopped: Rc<Cell<bool>>,
}

impl MemoryPort {
    /// The address it "listens" on: `0.0.0.0:PORT`.
    pub fn get_host(&self) -> Address {
        Address::Tcp(std::net::SocketAddr::from(([0, 0, 0, 0], self.port)))
    }

    /// Marks the port stopped (see [`RecordedFactory::stopped`]).
    pub fn stop_listening(&self) {
        self.stopped.set(true);
    }
}

/// What [`MemoryReactor::connect_tcp`] returns: a connector that never connects.
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    host: String,
    port: u16,
    stopped: Rc<Cell<bool>>,
}

impl MemoryConnector {
    /// The host and port it was asked to connect to.
    pub fn destination(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// Marks the connector stopped (see [`RecordedFactory::stopped`]).
    pub fn disconnect(&self) {
        self.stopped.set(true);
    }
}

/// A [`ReactorTcp`] that records `listen_tcp` and `connect_tcp` calls and opens nothing
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
    servers: RefCell<Vec<Rc<RecordedFactory>>>,
    clients: RefCell<Vec<Rc<RecordedFactory>>>,
}

impl MemoryReactor {
    /// A reactor that has recorded nothing.
    pub fn new() -> MemoryReactor {
        MemoryReactor::default()
    }

    /// The `listen_tcp` calls so far, oldest first (Twisted's `tcpServers`).
    pub fn tcp_servers(&self) -> Vec<Rc<RecordedFactory>> {
        self.servers.borrow().clone()
    }

    /// The `connect_tcp` calls so far, oldest first (Twisted's `tcpClients`).
    pub fn tcp_clients(&self) -> Vec<Rc<RecordedFactory>> {
        self.clients.borrow().clone()
    }
}

impl fmt::Debug for MemoryReactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReactor")
            .field("tcp_servers", &self.servers.borrow())
            .field("tcp_clients", &self.clients.borrow())
            .finish()
    }
}

impl ReactorTcp for MemoryReactor {
    type Port = MemoryPort;
    type Connector = MemoryConnector;

    fn listen_tcp<F: Factory>(&self, port: u16, factory: F) -> Result<MemoryPort, Failure> {
        let recorded = RecordedFactory::new("0.0.0.0", port, factory);
        let stopped = recorded.stopped.clone();
        self.servers.borrow_mut().push(Rc::new(recorded));
        Ok(MemoryPort { port, stopped })
    }

    fn connect_tcp<F: ClientFactory>(&self, host: &str, port: u16, factory: F) -> MemoryConnector {
        let recorded = RecordedFactory::new(host, port, factory);
        let stopped = recorded.stopped.clone();
        self.clients.borrow_mut().push(Rc::new(recorded));
        MemoryConnector {
            host: host.to_owned(),
            port,
            stopped,
        }
    }
}
