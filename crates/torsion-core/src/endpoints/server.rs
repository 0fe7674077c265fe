//! Server endpoints: parsing and writing server descriptions, and listening on them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::grammar::{split_kind, strip_kind, Bound, EndpointError, Writer};
use super::systemd::{listen_systemd, SystemdDomain};
use super::tls::listen_tls;
use crate::defer::{fail, succeed, Deferred};
use crate::protocol::Factory;
use crate::protocols::haproxy::{BoxedFactory, HAProxyWrappingFactory};
use crate::tcp::{ListenOptions, ListeningPort};
use crate::{Failure, Reactor};

/// The listen backlog for endpoint strings without `backlog=`: 1024, as tokio and Go use.
///
/// Twisted's default is 50; a burst of new connections (a load balancer's warm-up, thousands
/// of clients reconnecting after a restart) overflows so short a queue and clients wait
/// for SYN retries, so Torsion keeps the larger figure it used before `backlog=` was applied.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Twisted's default file mode for a Unix socket, `0o666`.
pub const DEFAULT_UNIX_MODE: u32 = 0o666;

/// Twisted's default private key file for a TLS server, `server.pem`.
pub const DEFAULT_PRIVATE_KEY: &str = "server.pem";

/// A parsed server endpoint string: where and how to listen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerDescription {
    /// `tcp:PORT:interface=IP:backlog=N` — TCP over IPv4.
    Tcp {
        /// The port; 0 picks a free one.
        port: u16,
        /// The interface to listen on; `None` for every IPv4 interface.
        interface: Option<String>,
        /// The listen backlog (default 1024).
        backlog: u32,
        /// `sendTimeout=SECONDS` (whole seconds): how long a connection's writes may stay
        /// blocked with no progress before it is aborted (default 60, nginx's
        /// `send_timeout`; `0`: no limit, as Twisted). See
        /// [`ListeningPort::set_send_timeout`].
        send_timeout: u32,
        /// `writeLimit=BYTES`: the most bytes a connection may leave unsent before it is
        /// aborted (default 0: no limit, as Twisted). See
        /// [`ListeningPort::set_write_limit`].
        write_limit: usize,
    },
    /// `tcp6:PORT:interface=IP:backlog=N` — TCP over IPv6.
    Tcp6 {
        /// The port; 0 picks a free one.
        port: u16,
        /// The interface to listen on (default `::`).
        interface: String,
        /// The listen backlog (default 1024).
        backlog: u32,
        /// `sendTimeout=SECONDS` (whole seconds): how long a connection's writes may stay
        /// blocked with no progress before it is aborted (default 60, nginx's
        /// `send_timeout`; `0`: no limit, as Twisted). See
        /// [`ListeningPort::set_send_timeout`].
        send_timeout: u32,
        /// `writeLimit=BYTES`: the most bytes a connection may leave unsent before it is
        /// aborted (default 0: no limit, as Twisted). See
        /// [`ListeningPort::set_write_limit`].
        write_limit: usize,
    },
    /// `unix:PATH:mode=OCTAL:backlog=N:lockfile=0|1` — a Unix socket.
    Unix {
        /// The socket's path.
        address: String,
        /// The socket file's mode (default `0o666`).
        mode: u32,
        /// The listen backlog.
        backlog: u32,
        /// Whether to guard the socket with a lock file (default true).
        lockfile: bool,
    },
    /// `tls:PORT:privateKey=FILE:certKey=FILE:...` (or `ssl:`) — TLS over TCP.
    Tls {
        /// The port.
        port: u16,
        /// The interface to listen on; `None` for every IPv4 interface.
        interface: Option<String>,
        /// The listen backlog.
        backlog: u32,
        /// The PEM file with the private key (default `server.pem`).
        private_key: String,
        /// The PEM file with the certificate; `None` for the private key's file.
        cert_key: Option<String>,
        /// A PEM file with intermediate certificates.
        extra_cert_chain: Option<String>,
        /// A PEM file with Diffie-Hellman parameters.
        dh_parameters: Option<String>,
        /// `handshakeTimeout=SECONDS` (whole seconds): how long an accepted connection has to complete its
        /// TLS handshake before it is aborted (default 60, nginx's `ssl_handshake_timeout`;
        /// `0`: no limit, as Twisted). See [`ServerContext::with_handshake_timeout`].
        ///
        /// [`ServerContext::with_handshake_timeout`]: crate::tls::ServerContext::with_handshake_timeout
        handshake_timeout: u32,
        /// `sendTimeout=SECONDS` (whole seconds): how long a connection's writes may stay
        /// blocked with no progress before it is aborted (default 60, nginx's
        /// `send_timeout`; `0`: no limit, as Twisted). See
        /// [`ListeningPort::set_send_timeout`].
        send_timeout: u32,
        /// `writeLimit=BYTES`: the most bytes a connection may leave unsent before it is
        /// aborted (default 0: no limit, as Twisted). See
        /// [`ListeningPort::set_write_limit`].
        write_limit: usize,
    },
    /// `systemd:domain=INET:index=N` — the N-th socket systemd passed.
    Systemd {
        /// The socket's address family.
        domain: SystemdDomain,
        /// Which passed socket, counting from 0.
        index: usize,
    },
    /// `haproxy:ENDPOINT` (`haproxy:tcp:8080`, `haproxy:unix:/path`) — any other server
    /// endpoint whose connections start with a PROXY protocol header, read by an
    /// [`HAProxyWrappingFactory`].
    HAProxy(Box<ServerDescription>),
}

/// The handshake timeout of a `tls:` endpoint without `handshakeTimeout=`, in seconds (the
/// same as [`DEFAULT_HANDSHAKE_TIMEOUT`](crate::tls::DEFAULT_HANDSHAKE_TIMEOUT)).
const DEFAULT_HANDSHAKE_TIMEOUT_SECONDS: u32 = 60;

/// The send timeout of a `tcp:`, `tcp6:` or `tls:` endpoint without `sendTimeout=`, in
/// seconds (the same as [`DEFAULT_SEND_TIMEOUT`](crate::tcp::DEFAULT_SEND_TIMEOUT)).
const DEFAULT_SEND_TIMEOUT_SECONDS: u32 = 60;

/// `writeLimit=` bytes as a listener's setting: 0 is no limit, else
/// [`WritePolicy::Disconnect`](crate::transport::WritePolicy::Disconnect).
pub(super) fn write_limit_option(bytes: usize) -> Option<crate::transport::WriteLimit> {
    (bytes > 0).then(|| crate::transport::WriteLimit::disconnect(bytes))
}

/// `sendTimeout=` seconds as a listener's setting: 0 is no limit.
pub(super) fn send_timeout_option(seconds: u32) -> Option<std::time::Duration> {
    (seconds > 0).then(|| std::time::Duration::from_secs(u64::from(seconds)))
}

const TCP_SERVER: &[&str] = &["port", "interface", "backlog", "sendTimeout", "writeLimit"];
const UNIX_SERVER: &[&str] = &["address", "mode", "backlog", "lockfile"];
const TLS_SERVER: &[&str] = &[
    "port",
    "privateKey",
    "certKey",
    "sslmethod",
    "interface",
    "backlog",
    "extraCertChain",
    "dhParameters",
    "handshakeTimeout",
    "sendTimeout",
    "writeLimit",
];
const SYSTEMD_SERVER: &[&str] = &["domain", "index"];

impl FromStr for ServerDescription {
    type Err = EndpointError;

    /// Parses a server endpoint string (Twisted's `_parseServer`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(inner) = strip_kind(s, "haproxy") {
            let inner: ServerDescription = inner.parse()?;
            if let ServerDescription::HAProxy(_) = inner {
                return Err(EndpointError::BadValue {
                    name: "haproxy",
                    value: s.to_owned(),
                    expected: "one PROXY protocol layer, around a tcp, tcp6, unix, tls or \
                               systemd endpoint",
                });
            }
            return Ok(ServerDescription::HAProxy(Box::new(inner)));
        }
        let (kind, args, kw) = split_kind(s, "server")?;
        match kind.as_str() {
            "tcp" | "tcp6" => {
                let v6 = kind == "tcp6";
                let b = Bound::bind(if v6 { "tcp6" } else { "tcp" }, TCP_SERVER, args, kw)?;
                let port = b.required_number("port")?;
                let backlog = b.number_or("backlog", DEFAULT_BACKLOG)?;
                let send_timeout = b.number_or("sendTimeout", DEFAULT_SEND_TIMEOUT_SECONDS)?;
                let write_limit = b.number_or("writeLimit", 0)?;
                Ok(if v6 {
                    ServerDescription::Tcp6 {
                        port,
                        interface: b.string("interface").unwrap_or_else(|| "::".into()),
                        backlog,
                        send_timeout,
                        write_limit,
                    }
                } else {
                    ServerDescription::Tcp {
                        port,
                        interface: b.string("interface").filter(|i| !i.is_empty()),
                        backlog,
                        send_timeout,
                        write_limit,
                    }
                })
            }
            "unix" => {
                let b = Bound::bind("unix", UNIX_SERVER, args, kw)?;
                let mode = match b.get("mode") {
                    None => DEFAULT_UNIX_MODE,
                    Some(m) => u32::from_str_radix(m, 8).map_err(|_| EndpointError::BadNumber {
                        name: "mode",
                        value: m.to_owned(),
                    })?,
                };
                Ok(ServerDescription::Unix {
                    address: b.required("address")?.to_owned(),
                    mode,
                    backlog: b.number_or("backlog", DEFAULT_BACKLOG)?,
                    lockfile: b.flag_or("lockfile", true)?,
                })
            }
            "tls" | "ssl" => {
                let b = Bound::bind("tls", TLS_SERVER, args, kw)?;
                Ok(ServerDescription::Tls {
                    port: b.required_number("port")?,
                    interface: b.string("interface").filter(|i| !i.is_empty()),
                    backlog: b.number_or("backlog", DEFAULT_BACKLOG)?,
                    private_key: b
                        .string("privateKey")
                        .unwrap_or_else(|| DEFAULT_PRIVATE_KEY.into()),
                    cert_key: b.string("certKey"),
                    extra_cert_chain: b.string("extraCertChain"),
                    dh_parameters: b.string("dhParameters"),
                    handshake_timeout: b
                        .number_or("handshakeTimeout", DEFAULT_HANDSHAKE_TIMEOUT_SECONDS)?,
                    send_timeout: b.number_or("sendTimeout", DEFAULT_SEND_TIMEOUT_SECONDS)?,
                    write_limit: b.number_or("writeLimit", 0)?,
                })
            }
            "systemd" => {
                let b = Bound::bind("systemd", SYSTEMD_SERVER, args, kw)?;
                let domain = match b.required("domain")? {
                    "INET" => SystemdDomain::Inet,
                    "INET6" => SystemdDomain::Inet6,
                    "UNIX" => SystemdDomain::Unix,
                    other => {
                        return Err(EndpointError::BadValue {
                            name: "domain",
                            value: other.to_owned(),
                            expected: "INET, INET6 or UNIX",
                        })
                    }
                };
                Ok(ServerDescription::Systemd {
                    domain,
                    index: b.required_number("index")?,
                })
            }
            _ => Err(EndpointError::UnknownType {
                kind,
                side: "server",
            }),
        }
    }
}

impl fmt::Display for ServerDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backlog = |w: &mut Writer<'_, '_>, b: u32| {
            if b == DEFAULT_BACKLOG {
                Ok(())
            } else {
                w.kw("backlog", b)
            }
        };
        let send_timeout = |w: &mut Writer<'_, '_>, t: u32| {
            if t == DEFAULT_SEND_TIMEOUT_SECONDS {
                Ok(())
            } else {
                w.kw("sendTimeout", t)
            }
        };
        let write_limit = |w: &mut Writer<'_, '_>, l: usize| {
            if l == 0 {
                Ok(())
            } else {
                w.kw("writeLimit", l)
            }
        };
        match self {
            ServerDescription::Tcp {
                port,
                interface,
                backlog: b,
                send_timeout: t,
                write_limit: l,
            } => {
                f.write_str("tcp")?;
                let mut w = Writer { f };
                w.pos(port)?;
                w.opt("interface", interface)?;
                backlog(&mut w, *b)?;
                send_timeout(&mut w, *t)?;
                write_limit(&mut w, *l)
            }
            ServerDescription::Tcp6 {
                port,
                interface,
                backlog: b,
                send_timeout: t,
                write_limit: l,
            } => {
                f.write_str("tcp6")?;
                let mut w = Writer { f };
                w.pos(port)?;
                if interface != "::" {
                    w.kw("interface", interface)?;
                }
                backlog(&mut w, *b)?;
                send_timeout(&mut w, *t)?;
                write_limit(&mut w, *l)
            }
            ServerDescription::Unix {
                address,
                mode,
                backlog: b,
                lockfile,
            } => {
                f.write_str("unix")?;
                let mut w = Writer { f };
                w.pos(address)?;
                if *mode != DEFAULT_UNIX_MODE {
                    w.kw("mode", format_args!("{mode:o}"))?;
                }
                backlog(&mut w, *b)?;
                if !lockfile {
                    w.kw("lockfile", 0)?;
                }
                Ok(())
            }
            ServerDescription::Tls {
                port,
                interface,
                backlog: b,
                private_key,
                cert_key,
                extra_cert_chain,
                dh_parameters,
                handshake_timeout,
                send_timeout: t,
                write_limit: l,
            } => {
                f.write_str("tls")?;
                let mut w = Writer { f };
                w.pos(port)?;
                if private_key != DEFAULT_PRIVATE_KEY {
                    w.kw("privateKey", private_key)?;
                }
                w.opt("certKey", cert_key)?;
                w.opt("interface", interface)?;
                backlog(&mut w, *b)?;
                w.opt("extraCertChain", extra_cert_chain)?;
                w.opt("dhParameters", dh_parameters)?;
                if *handshake_timeout != DEFAULT_HANDSHAKE_TIMEOUT_SECONDS {
                    w.kw("handshakeTimeout", handshake_timeout)?;
                }
                send_timeout(&mut w, *t)?;
                write_limit(&mut w, *l)
            }
            ServerDescription::Systemd { domain, index } => {
                f.write_str("systemd")?;
                let mut w = Writer { f };
                w.kw("domain", domain)?;
                w.kw("index", index)
            }
            ServerDescription::HAProxy(inner) => write!(f, "haproxy:{inner}"),
        }
    }
}

/// A place to listen, bound to a reactor (Twisted's `IStreamServerEndpoint`).
#[derive(Clone)]
pub struct ServerEndpoint {
    reactor: Reactor,
    description: ServerDescription,
    options: ListenOptions,
    /// The protocols a `tls:` endpoint offers by ALPN, in order of preference.
    alpn: Vec<Vec<u8>>,
}

/// Parses `s` and binds it to `reactor` (Twisted's `serverFromString`).
///
/// # Errors
/// An [`EndpointError`] naming the part of `s` that is wrong.
pub fn server_from_string(reactor: &Reactor, s: &str) -> Result<ServerEndpoint, EndpointError> {
    Ok(ServerEndpoint::new(reactor, s.parse()?))
}

impl ServerEndpoint {
    /// An endpoint for a parsed description.
    pub fn new(reactor: &Reactor, description: ServerDescription) -> ServerEndpoint {
        ServerEndpoint {
            reactor: reactor.clone(),
            description,
            options: ListenOptions::default(),
            alpn: Vec::new(),
        }
    }

    /// This endpoint offering `protocols` by ALPN when it is a `tls:` endpoint (a web server
    /// offers `h2` and `http/1.1`, and speaks the one the client picks); other kinds ignore
    /// them. None by default: the TLS handshake then agrees on no protocol.
    pub fn with_alpn_protocols<I: IntoIterator<Item = P>, P: AsRef<[u8]>>(
        mut self,
        protocols: I,
    ) -> ServerEndpoint {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// This endpoint with socket options for TCP listening ports (`SO_REUSEPORT`); other
    /// kinds ignore them.
    pub fn with_listen_options(mut self, options: ListenOptions) -> ServerEndpoint {
        self.options = options;
        self
    }

    /// The socket options for TCP listening ports.
    pub fn listen_options(&self) -> ListenOptions {
        self.options
    }

    /// What this endpoint listens on.
    pub fn description(&self) -> &ServerDescription {
        &self.description
    }

    /// Listens with `factory` (Twisted's `endpoint.listen(factory)`). The Deferred fires with
    /// the listening port, or fails with a [`CannotListenError`] (the address is in use, the
    /// interface is not an address, or the kind cannot listen yet).
    ///
    /// [`CannotListenError`]: crate::error::CannotListenError
    pub fn listen<F: Factory>(&self, factory: F) -> Deferred<ListeningPort> {
        let result = match &self.description {
            ServerDescription::Tcp {
                port,
                interface,
                backlog,
                send_timeout,
                write_limit,
            } => self.reactor.listen_tcp_with(
                *port,
                factory,
                interface.as_deref().unwrap_or("0.0.0.0"),
                self.options
                    .backlog(*backlog)
                    .send_timeout(send_timeout_option(*send_timeout))
                    .write_limit(write_limit_option(*write_limit)),
            ),
            ServerDescription::Tcp6 {
                port,
                interface,
                backlog,
                send_timeout,
                write_limit,
            } => self.reactor.listen_tcp_with(
                *port,
                factory,
                interface,
                self.options
                    .backlog(*backlog)
                    .send_timeout(send_timeout_option(*send_timeout))
                    .write_limit(write_limit_option(*write_limit)),
            ),
            ServerDescription::Unix {
                address,
                mode,
                backlog,
                lockfile,
            } => listen_unix(
                &self.reactor,
                address.into(),
                *mode,
                *backlog,
                *lockfile,
                factory,
            ),
            ServerDescription::Tls { .. } => listen_tls(
                &self.reactor,
                &self.description,
                factory,
                self.options,
                &self.alpn,
            ),
            ServerDescription::Systemd { domain, index } => {
                listen_systemd(&self.reactor, *domain, *index, factory)
            }
            // The factory is boxed so that this arm's wrapping type does not depend on `F`
            // (the wrapping would otherwise nest without end at compile time).
            ServerDescription::HAProxy(inner) => {
                let wrapped = HAProxyWrappingFactory::new(BoxedFactory::new(factory));
                return ServerEndpoint::new(&self.reactor, (**inner).clone()).listen(wrapped);
            }
        };
        match result {
            Ok(port) => succeed(port),
            Err(f) => fail(f),
        }
    }
}

impl fmt::Debug for ServerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ServerEndpoint")
            .field(&self.description.to_string())
            .finish()
    }
}

impl fmt::Display for ServerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.description.fmt(f)
    }
}

/// Listens on a Unix socket with the endpoint's mode and backlog. `lockfile` is accepted for
/// Twisted compatibility: a socket file that another process listens on is never replaced,
/// and a stale one is cleaned up, which is what the lock file guards in Twisted.
fn listen_unix<F: Factory>(
    reactor: &Reactor,
    address: PathBuf,
    mode: u32,
    backlog: u32,
    _lockfile: bool,
    factory: F,
) -> Result<ListeningPort, Failure> {
    let options = crate::unix::UnixListenOptions {
        mode: Some(mode),
        backlog: Some(backlog),
        ..crate::unix::UnixListenOptions::default()
    };
    reactor.listen_unix_with(address, factory, options)
}
