//! The runner's manhole (`--manhole ENDPOINT`): a console into the running `torsiond`,
//! for every plugin, exposing the runner's own state through a
//! [`Registry`](torsion_conch::manhole::Registry): the listening ports and their open
//! connections, the requests served (where the plugin counts them, with
//! [`count_request`]), the log level (changeable), and a graceful `stop()`.
//!
//! Telnet for now, and so only on a loopback interface; once the SSH server lands, the same
//! option with `--manhole-keys FILE` serves the console over SSH instead.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use torsion::endpoints::ServerDescription;
use torsion::transport::Address;
use torsion::{ConnectionEnd, Factory, Protocol, Reactor, Transport};
use torsion_conch::manhole::rhai;
use torsion_conch::manhole::{is_loopback, ManholeFactory, Registry};

use crate::exit::stop_workers;
use crate::logging;

/// What the runner knows of one listening port, on this worker thread.
#[derive(Debug)]
pub(crate) struct PortStats {
    endpoint: String,
    address: RefCell<Option<String>>,
    open: Cell<u64>,
    accepted: Cell<u64>,
}

impl PortStats {
    /// Records where the port listens, once it does.
    pub(crate) fn set_address(&self, address: String) {
        *self.address.borrow_mut() = Some(address);
    }

    fn name(&self) -> String {
        self.address
            .borrow()
            .clone()
            .unwrap_or_else(|| self.endpoint.clone())
    }
}

thread_local! {
    static PORTS: RefCell<Vec<Rc<PortStats>>> = const { RefCell::new(Vec::new()) };
    static REQUESTS: Cell<u64> = const { Cell::new(0) };
}

/// Counts one request served on this worker thread, for the manhole's `requests` (the web
/// plugin counts each finished HTTP request; a plugin of another kind may count its own
/// units of work).
pub fn count_request() {
    REQUESTS.with(|r| r.set(r.get() + 1));
}

/// A factory that counts the connections of one listening port (open now, accepted in all)
/// for the manhole, and otherwise is the factory it wraps. Every
/// [`ListenService`](crate::ListenService) wraps its factory in one.
pub struct CountingFactory<F> {
    inner: F,
    stats: Rc<PortStats>,
}

impl<F> CountingFactory<F> {
    /// Wraps `inner`, listed as `endpoint` until it listens.
    pub(crate) fn new(inner: F, endpoint: String) -> CountingFactory<F> {
        let stats = Rc::new(PortStats {
            endpoint,
            address: RefCell::new(None),
            open: Cell::new(0),
            accepted: Cell::new(0),
        });
        PORTS.with(|p| p.borrow_mut().push(stats.clone()));
        CountingFactory { inner, stats }
    }

    /// The port's record.
    pub(crate) fn stats(&self) -> Rc<PortStats> {
        self.stats.clone()
    }
}

impl<F: Factory> Factory for CountingFactory<F> {
    type Protocol = Counted<F::Protocol>;

    fn build_protocol(&self, addr: &Address) -> Option<Self::Protocol> {
        self.inner.build_protocol(addr).map(|inner| Counted {
            inner,
            stats: self.stats.clone(),
            open: false,
        })
    }
    fn start_factory(&self) {
        self.inner.start_factory();
    }
    fn stop_factory(&self) {
        self.inner.stop_factory();
    }
}

/// A protocol counted as an open connection of its port while it is connected.
pub struct Counted<P> {
    inner: P,
    stats: Rc<PortStats>,
    open: bool,
}

impl<P: Protocol> Protocol for Counted<P> {
    fn connection_made(&mut self, t: &Transport) {
        self.open = true;
        self.stats.open.set(self.stats.open.get() + 1);
        self.stats.accepted.set(self.stats.accepted.get() + 1);
        self.inner.connection_made(t);
    }
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.inner.data_received(t, data);
    }
    fn read_connection_lost(&mut self, t: &Transport) {
        self.inner.read_connection_lost(t);
    }
    fn write_connection_lost(&mut self, t: &Transport) {
        self.inner.write_connection_lost(t);
    }
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        if std::mem::take(&mut self.open) {
            self.stats.open.set(self.stats.open.get().saturating_sub(1));
        }
        self.inner.connection_lost(reason);
    }
    fn drain(&mut self, t: &Transport) {
        self.inner.drain(t);
    }
}

/// Where a telnet manhole may listen: a TCP endpoint on a loopback interface, as
/// `(port, interface)`.
///
/// # Errors
/// Why it may not, for the user.
pub(crate) fn telnet_place(description: &ServerDescription) -> Result<(u16, String), String> {
    let (port, interface) = match description {
        ServerDescription::Tcp {
            port, interface, ..
        } => (*port, interface.clone().unwrap_or_else(|| "0.0.0.0".into())),
        ServerDescription::Tcp6 {
            port, interface, ..
        } => (*port, interface.clone()),
        other => {
            return Err(format!(
                "--manhole {other}: the telnet manhole takes a tcp: or tcp6: endpoint on a \
                 loopback interface (tcp:PORT:interface=127.0.0.1)"
            ))
        }
    };
    if !is_loopback(&interface) {
        return Err(format!(
            "refusing a telnet manhole on {interface}: telnet has no authentication or \
             encryption, so --manhole takes a loopback interface only \
             (tcp:{port}:interface=127.0.0.1); the SSH manhole (--manhole-keys) is for others"
        ));
    }
    Ok((port, interface))
}

/// The registry of the runner's state, on this worker thread.
pub(crate) fn runner_registry(plugin: &str, workers: usize) -> Registry {
    let reg = Registry::new();
    reg.value_rw(
        "log_level",
        || logging::log_level().to_string(),
        |level: String| logging::set_log_level(&level),
    );
    reg.value("requests", || {
        REQUESTS.with(Cell::get).try_into().unwrap_or(i64::MAX)
    });
    let plugin = plugin.to_string();
    reg.value("plugin", move || plugin.clone());
    reg.value("workers", move || workers as i64);
    reg.value("pid", || i64::from(std::process::id()));
    reg.function("ports", || -> rhai::Array {
        PORTS.with(|p| {
            p.borrow()
                .iter()
                .map(|s| {
                    let mut m = rhai::Map::new();
                    m.insert("endpoint".into(), s.endpoint.clone().into());
                    m.insert("address".into(), s.name().into());
                    m.insert("open".into(), (s.open.get() as i64).into());
                    m.insert("accepted".into(), (s.accepted.get() as i64).into());
                    rhai::Dynamic::from_map(m)
                })
                .collect()
        })
    });
    reg.function("connections", || -> rhai::Map {
        PORTS.with(|p| {
            p.borrow()
                .iter()
                .map(|s| (s.name().into(), (s.open.get() as i64).into()))
                .collect()
        })
    });
    reg.function("stop", || {
        tracing::info!(target: "torsiond", "stop() from the manhole: stopping gracefully");
        stop_workers();
    });
    reg
}

/// Starts the telnet manhole on `reactor` (worker 0's), after the services bound their
/// ports.
///
/// # Errors
/// A message for the user when it cannot listen.
pub(crate) fn start(
    reactor: &Reactor,
    description: &ServerDescription,
    plugin: &str,
    workers: usize,
) -> Result<(), String> {
    let (port, interface) = telnet_place(description)?;
    let registry = runner_registry(plugin, workers);
    let listening = ManholeFactory::listen_telnet(reactor, port, &interface, registry)
        .map_err(|e| e.to_string())?;
    let address = listening.get_host();
    tracing::info!(
        target: "torsiond",
        "manhole: telnet console on {address} (loopback only)"
    );
    // The port keeps listening with its handle dropped, until the reactor stops.
    drop(listening);
    Ok(())
}
