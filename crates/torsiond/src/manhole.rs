//! The runner's manhole (`--manhole ENDPOINT`): a console into the running `torsiond`,
//! for every plugin, exposing the runner's own state through a
//! [`Registry`](torsion_conch::manhole::Registry): the listening ports and their open
//! connections, the requests served (where the plugin counts them, with
//! [`count_request`]), the log level (changeable), and a graceful `stop()`.
//!
//! With `--manhole-keys FILE` the console is served over SSH, on any interface, to the keys
//! listed in that OpenSSH `authorized_keys` file (through cred's checker; the file is read at
//! every login), with line editing, history and Tab completion in a shell with a pty, and
//! `ssh -p PORT host 'connections()'` running one command. The host key is
//! `--manhole-host-key FILE`, or `manhole_host_ed25519_key` in torsiond's state folder
//! (`$XDG_STATE_HOME/torsiond`, else `~/.local/state/torsiond`), made on first start with a
//! log line giving its fingerprint. Without `--manhole-keys` it is telnet, which has no
//! authentication, and so only on a loopback interface.

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use torsion::endpoints::ServerDescription;
use torsion::transport::Address;
use torsion::{ConnectionEnd, Factory, Protocol, Reactor, Transport};
use torsion_conch::manhole::rhai;
use torsion_conch::manhole::{is_loopback, ssh_server, ManholeFactory, Registry};
use torsion_conch::ssh::{HostKey, SshOptions};

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
    static SSH_PORT: RefCell<Option<torsion_conch::ssh::SshPort>> = const { RefCell::new(None) };
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

/// How the manhole is served, worked out (and its files checked) before anything starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ManholePlace {
    /// Telnet on a loopback interface.
    Telnet {
        /// The port (0 for any).
        port: u16,
        /// The loopback interface.
        interface: String,
    },
    /// SSH, to the keys of an `authorized_keys` file.
    Ssh {
        /// Where to listen.
        address: SocketAddr,
        /// The `authorized_keys` file.
        keys: PathBuf,
        /// The host key's file.
        host_key: PathBuf,
    },
}

/// The host key's file name in torsiond's state folder.
pub(crate) const HOST_KEY_NAME: &str = "manhole_host_ed25519_key";

/// torsiond's state folder: `$XDG_STATE_HOME/torsiond`, else `~/.local/state/torsiond`.
fn state_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| {
        let p = PathBuf::from(v);
        p.is_absolute().then_some(p)
    };
    std::env::var_os("XDG_STATE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".local/state"))
        })
        .map(|d| d.join("torsiond"))
}

/// Where the manhole is served: SSH when `keys` is given, otherwise telnet on loopback.
/// For SSH, the keys file must be readable, and the host key is loaded, or made (and
/// logged) where it is missing, so that a mistake shows at once.
///
/// # Errors
/// Why it cannot be served, for the user.
pub(crate) fn place(
    description: &ServerDescription,
    keys: Option<&Path>,
    host_key: Option<&Path>,
) -> Result<ManholePlace, String> {
    let Some(keys) = keys else {
        let (port, interface) = telnet_place(description)?;
        return Ok(ManholePlace::Telnet { port, interface });
    };
    let (port, interface) = match description {
        ServerDescription::Tcp {
            port, interface, ..
        } => (*port, interface.clone().unwrap_or_else(|| "0.0.0.0".into())),
        ServerDescription::Tcp6 {
            port, interface, ..
        } => (*port, interface.clone()),
        other => {
            return Err(format!(
                "--manhole {other}: the SSH manhole takes a tcp: or tcp6: endpoint \
                 (tcp:PORT, tcp:PORT:interface=IP)"
            ))
        }
    };
    let bare = interface.trim_start_matches('[').trim_end_matches(']');
    let address = (bare, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("--manhole: cannot listen on interface {interface:?}"))?;
    let text = std::fs::read_to_string(keys)
        .map_err(|e| format!("--manhole-keys {}: {e}", keys.display()))?;
    let parsed = torsion_conch::keys::parse_authorized_keys(&text);
    if !parsed.malformed.is_empty() {
        tracing::warn!(
            target: "torsiond",
            "--manhole-keys {}: lines {:?} are not keys and are ignored",
            keys.display(),
            parsed.malformed
        );
    }
    if !parsed.keys.iter().any(|k| k.options.is_none()) {
        tracing::warn!(
            target: "torsiond",
            "--manhole-keys {}: no key without options: nobody can log in until one is added",
            keys.display()
        );
    }
    let host_key = match host_key {
        Some(path) => path.to_path_buf(),
        None => {
            let dir = state_dir().ok_or(
                "the SSH manhole needs a host key: give --manhole-host-key FILE (neither \
                 XDG_STATE_HOME nor HOME is set, so torsiond has no state folder)",
            )?;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("the manhole's state folder {}: {e}", dir.display()))?;
            dir.join(HOST_KEY_NAME)
        }
    };
    HostKey::load_or_generate(&host_key).map_err(|e| format!("--manhole-host-key: {e}"))?;
    Ok(ManholePlace::Ssh {
        address,
        keys: keys.to_path_buf(),
        host_key,
    })
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

/// Starts the manhole on `reactor` (worker 0's), after the services bound their ports.
///
/// # Errors
/// A message for the user when it cannot listen.
pub(crate) fn start(
    reactor: &Reactor,
    place: &ManholePlace,
    plugin: &str,
    workers: usize,
) -> Result<(), String> {
    let registry = runner_registry(plugin, workers);
    match place {
        ManholePlace::Telnet { port, interface } => {
            let listening = ManholeFactory::listen_telnet(reactor, *port, interface, registry)
                .map_err(|e| e.to_string())?;
            let address = listening.get_host();
            tracing::info!(
                target: "torsiond",
                "manhole: telnet console on {address} (loopback only)"
            );
            // The port keeps listening with its handle dropped, until the reactor stops.
            drop(listening);
        }
        ManholePlace::Ssh {
            address,
            keys,
            host_key,
        } => {
            let key = HostKey::load(host_key).map_err(|e| format!("--manhole-host-key: {e}"))?;
            let fingerprint = key.fingerprint();
            let server = ssh_server(registry, keys, vec![key], SshOptions::default());
            let listening = server
                .listen(*address)
                .map_err(|e| format!("the manhole could not listen: {e}"))?;
            let local = listening.local_addr();
            let kind = if local.is_ipv4() { "tcp" } else { "tcp6" };
            tracing::info!(
                target: "torsiond",
                "manhole: SSH console on {kind}:{}:{} (keys in {}, host key {fingerprint})",
                local.ip(),
                local.port(),
                keys.display()
            );
            // Dropping the port would stop accepting: it is kept until the thread ends.
            SSH_PORT.with(|p| *p.borrow_mut() = Some(listening));
        }
    }
    Ok(())
}
