//! Client endpoints: parsing and writing client descriptions, and connecting to them.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;

use super::grammar::{split_kind, Bound, EndpointError, Writer};
use super::tls::connect_tls;
use crate::error::ConnectError;
use crate::protocol::ClientFactory;
use crate::tcp::{Connector, DEFAULT_CONNECT_TIMEOUT};
use crate::{Failure, Reactor};

/// A parsed client endpoint string: where and how to connect.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientDescription {
    /// `tcp:host=HOST:port=PORT:timeout=S` or `tcp:HOST:PORT` — TCP.
    Tcp {
        /// The host name or IP address.
        host: String,
        /// The port.
        port: u16,
        /// The connection time-out in seconds (default 30).
        timeout: f64,
        /// The local address to connect from: an IP address, or `address:port`.
        bind_address: Option<String>,
    },
    /// `unix:path=PATH:timeout=S:checkPID=0|1` or `unix:PATH` — a Unix socket.
    Unix {
        /// The socket's path.
        path: String,
        /// The connection time-out in seconds (default 30).
        timeout: f64,
        /// Whether to check the server's lock file first (default false).
        check_pid: bool,
    },
    /// `tls:host=HOST:port=PORT:...` or `tls:HOST:PORT` (or `ssl:`) — TLS over TCP.
    Tls {
        /// The host name or IP address, also the name the certificate must show.
        host: String,
        /// The port.
        port: u16,
        /// The connection time-out in seconds (default 30).
        timeout: f64,
        /// The local address to connect from.
        bind_address: Option<String>,
        /// A PEM file with a client certificate.
        certificate: Option<String>,
        /// A PEM file with the client certificate's private key.
        private_key: Option<String>,
        /// A PEM file or folder of trusted roots; `None` for the platform's.
        trust_roots: Option<String>,
    },
}

const TCP_CLIENT: &[&str] = &["host", "port", "timeout", "bindAddress"];
const UNIX_CLIENT: &[&str] = &["path", "timeout", "checkPID"];
const TLS_CLIENT: &[&str] = &[
    "host",
    "port",
    "timeout",
    "bindAddress",
    "certificate",
    "privateKey",
    "trustRoots",
];

impl FromStr for ClientDescription {
    type Err = EndpointError;

    /// Parses a client endpoint string (Twisted's `clientFromString`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, mut args, mut kw) = split_kind(s, "client")?;
        match kind.as_str() {
            "tcp" | "tls" | "ssl" => {
                // Twisted's _parseClientTCP: with host= given, one positional is the port.
                if args.len() == 1 && kw.iter().any(|(k, _)| k == "host") {
                    kw.push(("port".into(), args.remove(0)));
                }
                let tls = kind != "tcp";
                let b = if tls {
                    Bound::bind("tls", TLS_CLIENT, args, kw)?
                } else {
                    Bound::bind("tcp", TCP_CLIENT, args, kw)?
                };
                let host = b.required("host")?.to_owned();
                let port = b.required_number("port")?;
                let timeout = b.seconds_or("timeout", DEFAULT_CONNECT_TIMEOUT)?;
                let bind_address = b.string("bindAddress");
                Ok(if tls {
                    ClientDescription::Tls {
                        host,
                        port,
                        timeout,
                        bind_address,
                        certificate: b.string("certificate"),
                        private_key: b.string("privateKey"),
                        trust_roots: b.string("trustRoots"),
                    }
                } else {
                    ClientDescription::Tcp {
                        host,
                        port,
                        timeout,
                        bind_address,
                    }
                })
            }
            "unix" => {
                let b = Bound::bind("unix", UNIX_CLIENT, args, kw)?;
                Ok(ClientDescription::Unix {
                    path: b.required("path")?.to_owned(),
                    timeout: b.seconds_or("timeout", DEFAULT_CONNECT_TIMEOUT)?,
                    check_pid: b.flag_or("checkPID", false)?,
                })
            }
            _ => Err(EndpointError::UnknownType {
                kind,
                side: "client",
            }),
        }
    }
}

impl fmt::Display for ClientDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timeout = |w: &mut Writer<'_, '_>, t: f64| {
            if t == DEFAULT_CONNECT_TIMEOUT {
                Ok(())
            } else {
                w.kw("timeout", t)
            }
        };
        match self {
            ClientDescription::Tcp {
                host,
                port,
                timeout: t,
                bind_address,
            } => {
                f.write_str("tcp")?;
                let mut w = Writer { f };
                w.kw("host", host)?;
                w.kw("port", port)?;
                timeout(&mut w, *t)?;
                w.opt("bindAddress", bind_address)
            }
            ClientDescription::Unix {
                path,
                timeout: t,
                check_pid,
            } => {
                f.write_str("unix")?;
                let mut w = Writer { f };
                w.kw("path", path)?;
                timeout(&mut w, *t)?;
                if *check_pid {
                    w.kw("checkPID", 1)?;
                }
                Ok(())
            }
            ClientDescription::Tls {
                host,
                port,
                timeout: t,
                bind_address,
                certificate,
                private_key,
                trust_roots,
            } => {
                f.write_str("tls")?;
                let mut w = Writer { f };
                w.kw("host", host)?;
                w.kw("port", port)?;
                timeout(&mut w, *t)?;
                w.opt("bindAddress", bind_address)?;
                w.opt("certificate", certificate)?;
                w.opt("privateKey", private_key)?;
                w.opt("trustRoots", trust_roots)
            }
        }
    }
}

/// Parses `s` and binds it to `reactor` (Twisted's `clientFromString`).
///
/// # Errors
/// An [`EndpointError`] naming the part of `s` that is wrong.
pub fn client_from_string(reactor: &Reactor, s: &str) -> Result<ClientEndpoint, EndpointError> {
    Ok(ClientEndpoint::new(reactor, s.parse()?))
}

/// A place to connect to, bound to a reactor (Twisted's `IStreamClientEndpoint`).
#[derive(Clone)]
pub struct ClientEndpoint {
    reactor: Reactor,
    description: ClientDescription,
}

impl ClientEndpoint {
    /// An endpoint for a parsed description.
    pub fn new(reactor: &Reactor, description: ClientDescription) -> ClientEndpoint {
        ClientEndpoint {
            reactor: reactor.clone(),
            description,
        }
    }

    /// The reactor this endpoint connects with.
    pub fn reactor(&self) -> &Reactor {
        &self.reactor
    }

    /// Where this endpoint connects to.
    pub fn description(&self) -> &ClientDescription {
        &self.description
    }

    /// Starts connecting with `factory`, which hears how it goes as with
    /// [`Reactor::connect_tcp`].
    ///
    /// # Errors
    /// A [`ConnectError`] failure, at once, when a `bindAddress` is not an address or a TLS
    /// file cannot be used; the factory is not called then.
    pub fn connect<F: ClientFactory>(&self, factory: F) -> Result<Connector, Failure> {
        match &self.description {
            ClientDescription::Tcp {
                host,
                port,
                timeout,
                bind_address,
            } => {
                let bind = match bind_address {
                    None => None,
                    Some(b) => Some(parse_bind_address(b).ok_or_else(|| {
                        unsupported_connect(
                            &self.description,
                            "bindAddress is not an IP address (or address:port)",
                        )
                    })?),
                };
                Ok(self
                    .reactor
                    .connect_tcp_from(host, *port, factory, *timeout, bind))
            }
            ClientDescription::Unix {
                path,
                timeout,
                check_pid,
            } => connect_unix(&self.reactor, path.into(), *timeout, *check_pid, factory),
            ClientDescription::Tls { .. } => connect_tls(&self.reactor, &self.description, factory),
        }
    }
}

impl fmt::Debug for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientEndpoint")
            .field(&self.description.to_string())
            .finish()
    }
}

impl fmt::Display for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.description.fmt(f)
    }
}

/// A client's `bindAddress`: an IP address (any port), or an address with a port
/// (`10.0.0.2:4000`, `[::1]:4000`).
pub(super) fn parse_bind_address(s: &str) -> Option<std::net::SocketAddr> {
    let s = s.trim();
    if let Ok(ip) = s
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        return Some(std::net::SocketAddr::new(ip, 0));
    }
    s.parse().ok()
}

pub(super) fn unsupported_connect(description: &ClientDescription, why: &str) -> Failure {
    Failure::new(ConnectError::new(
        description.to_string(),
        io::Error::new(io::ErrorKind::Unsupported, why.to_owned()),
    ))
}

/// Connects to a Unix socket. `check_pid` is accepted for Twisted compatibility; Torsion's
/// Unix ports keep no lock file to check.
fn connect_unix<F: ClientFactory>(
    reactor: &Reactor,
    path: PathBuf,
    timeout: f64,
    _check_pid: bool,
    factory: F,
) -> Result<Connector, Failure> {
    Ok(reactor.connect_unix_timeout(path, factory, timeout))
}
