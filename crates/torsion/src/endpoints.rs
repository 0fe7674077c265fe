//! Endpoints: where to listen or connect, from strings (Twisted's `twisted.internet.endpoints`
//! and `strports`).
//!
//! An endpoint string names a kind of transport and its arguments, separated by colons:
//! `type:positional:keyword=value:...`. A backslash makes the next character literal, so
//! `\:` is a colon inside a value (IPv6 addresses) and `\\` is a backslash. Positional
//! arguments fill the kind's parameters in order; keyword arguments name them (Twisted's
//! `_parse` rules, with Python's call rules: a parameter given twice, an unknown keyword, too
//! many positional arguments or a missing one are errors).
//!
//! | server string | meaning |
//! |---|---|
//! | `tcp:8080` | TCP port 8080 on every IPv4 interface |
//! | `tcp:port=8080:interface=127.0.0.1:backlog=50` | the same, keywords, one interface |
//! | `tcp6:8080:interface=\:\:1` | TCP over IPv6 (default interface `::`) |
//! | `unix:/path/sock:mode=660:lockfile=0` | a Unix socket (mode in octal) |
//! | `tls:8443:privateKey=key.pem:certKey=cert.pem` | TLS over TCP (`ssl:` is an alias) |
//! | `systemd:domain=INET:index=0` | a socket passed by systemd socket activation |
//! | `haproxy:tcp:8080` | any of these, behind a load balancer speaking the PROXY protocol |
//!
//! | client string | meaning |
//! |---|---|
//! | `tcp:host=example.com:port=80:timeout=30` or `tcp:example.com:80` | TCP |
//! | `tcp:example.com:80:bindAddress=10.0.0.2` | TCP from a chosen local address |
//! | `unix:path=/path/sock:timeout=5` or `unix:/path/sock` | a Unix socket |
//! | `tls:host=example.com:port=443` | TLS over TCP |
//!
//! TLS servers take Twisted's arguments: `privateKey` (a PEM file with the key, default
//! `server.pem`), `certKey` (the certificate chain; default: the `privateKey` file, which then
//! holds both), `extraCertChain` (intermediates to send after it), `interface`, `backlog`;
//! `sslmethod` and `dhParameters` are accepted and ignored (rustls negotiates TLS 1.2 or 1.3
//! and uses only elliptic-curve key exchange). TLS clients take `trustRoots` (a PEM file, or
//! a folder of them, with the CAs to trust; default: the system's roots), `certificate` and
//! `privateKey` (a client certificate; the key defaults to the certificate's file).
//!
//! A bare port number such as `"8080"` (deprecated in Twisted) is refused with an error that
//! says to write `tcp:8080`. Kinds are matched case-insensitively, as Twisted does for
//! clients. [`Display`](std::fmt::Display) writes a description back as a string that parses
//! to the same description, leaving out arguments that have their default values.
//!
//! What listens and connects today: `tcp`, `tcp6` and `unix` (with `backlog=`, `mode=`
//! and a client's `bindAddress=`); `systemd` adopts the socket systemd passed (checked with
//! `LISTEN_PID` and `LISTEN_FDS`; `INET` and `INET6` take a TCP socket, `UNIX` a Unix one);
//! `haproxy:` wraps any of them in a [`HAProxyWrappingFactory`], so the protocols see the
//! client addresses the load balancer sends. `tls` listens and connects with
//! [`torsion::tls`](mod@crate::tls) (the `tls` feature, on by default). Unix `lockfile=` and
//! `checkPID=` are accepted; a Unix port never replaces a socket that another process listens
//! on.
//!
//! ```
//! use torsion::endpoints::{ClientDescription, ServerDescription};
//!
//! let server: ServerDescription = r"tcp6:8080:interface=\:\:1".parse().unwrap();
//! assert_eq!(
//!     server,
//!     ServerDescription::Tcp6 { port: 8080, interface: "::1".into(), backlog: 1024 }
//! );
//! assert_eq!(server.to_string(), r"tcp6:8080:interface=\:\:1");
//!
//! let client: ClientDescription = "tcp:example.com:80".parse().unwrap();
//! assert_eq!(client.to_string(), "tcp:host=example.com:port=80");
//!
//! let err = "tcp:8080:intrface=::1".parse::<ServerDescription>().unwrap_err();
//! assert_eq!(err.to_string(), "unknown keyword 'intrface' for a tcp endpoint (expected port, interface, backlog)");
//! ```
//!
//! With a reactor, [`server_from_string`] and [`client_from_string`] make endpoints that
//! listen and connect:
//!
//! ```
//! use torsion::{endpoints::server_from_string, factory, Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) { t.write(data) }
//! }
//!
//! let r = Reactor::new();
//! let endpoint = server_from_string(&r, "tcp:0:interface=127.0.0.1").unwrap();
//! let port = endpoint.listen(factory(|| Echo)).result().unwrap().unwrap();
//! assert!(port.listening());
//! port.stop_listening();
//! ```

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;

use crate::defer::{fail, succeed, Deferred};
use crate::error::{CannotListenError, ConnectError};
use crate::protocol::{ClientFactory, Factory};
use crate::protocols::haproxy::{BoxedFactory, HAProxyWrappingFactory};
use crate::tcp::{Connector, ListenOptions, ListeningPort, DEFAULT_CONNECT_TIMEOUT};
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

/// The first file descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: usize = 3;

// ---------------------------------------------------------------------------------------
// Errors

/// What is wrong with an endpoint string; its [`Display`](fmt::Display) names the part.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// The string is empty.
    Empty,
    /// A bare port number such as `8080`; write `tcp:8080`.
    BarePort(String),
    /// The kind (the part before the first colon) is not one Torsion knows.
    UnknownType {
        /// The kind as written.
        kind: String,
        /// `"server"` or `"client"`.
        side: &'static str,
    },
    /// A required argument is missing.
    MissingArgument {
        /// The endpoint kind.
        kind: &'static str,
        /// The missing argument's name.
        name: &'static str,
    },
    /// An argument that must be a number is not one (or is out of range).
    BadNumber {
        /// The argument's name.
        name: &'static str,
        /// The value as written.
        value: String,
    },
    /// An argument has a value outside its allowed set.
    BadValue {
        /// The argument's name.
        name: &'static str,
        /// The value as written.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// A keyword the endpoint kind does not take.
    UnknownKeyword {
        /// The endpoint kind.
        kind: &'static str,
        /// The keyword as written.
        keyword: String,
        /// The keywords the kind takes.
        expected: &'static [&'static str],
    },
    /// More positional arguments than the kind has parameters.
    TooManyArguments {
        /// The endpoint kind.
        kind: &'static str,
        /// The first extra argument.
        extra: String,
    },
    /// The same parameter was given twice (positionally and by keyword, or two keywords).
    DuplicateArgument {
        /// The endpoint kind.
        kind: &'static str,
        /// The parameter's name.
        name: &'static str,
    },
    /// The string ends with a lone backslash.
    UnterminatedEscape {
        /// The byte offset of the backslash.
        position: usize,
    },
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Empty => write!(f, "empty endpoint description"),
            EndpointError::BarePort(p) => write!(
                f,
                "bare port number '{p}' is not an endpoint description; write 'tcp:{p}'"
            ),
            EndpointError::UnknownType { kind, side } => {
                write!(f, "unknown {side} endpoint type '{kind}'")
            }
            EndpointError::MissingArgument { kind, name } => {
                write!(f, "missing {name} for a {kind} endpoint")
            }
            EndpointError::BadNumber { name, value } => {
                write!(f, "bad number in '{name}={value}'")
            }
            EndpointError::BadValue {
                name,
                value,
                expected,
            } => write!(f, "bad value in '{name}={value}' (expected {expected})"),
            EndpointError::UnknownKeyword {
                kind,
                keyword,
                expected,
            } => write!(
                f,
                "unknown keyword '{keyword}' for a {kind} endpoint (expected {})",
                expected.join(", ")
            ),
            EndpointError::TooManyArguments { kind, extra } => {
                write!(
                    f,
                    "too many arguments for a {kind} endpoint, from '{extra}'"
                )
            }
            EndpointError::DuplicateArgument { kind, name } => {
                write!(f, "{name} given more than once for a {kind} endpoint")
            }
            EndpointError::UnterminatedEscape { position } => {
                write!(
                    f,
                    "unterminated escape: backslash at the end (offset {position})"
                )
            }
        }
    }
}

impl std::error::Error for EndpointError {}

// ---------------------------------------------------------------------------------------
// Tokenizing (Twisted's _tokenize and _parse)

/// Keyword arguments in the order written: `(keyword, value)` pairs.
pub type KeywordArgs = Vec<(String, String)>;

/// The positional and keyword arguments of an endpoint string, kind first (Twisted's
/// `_parse`): `"tcp:80:interface=\:\:1"` gives `(["tcp", "80"], [("interface", "::1")])`.
/// After a `=`, only a `:` ends the value, so `a=b=c` is `a` = `b=c`.
///
/// # Errors
/// [`EndpointError::UnterminatedEscape`] for a trailing lone backslash.
pub fn parse_args(s: &str) -> Result<(Vec<String>, KeywordArgs), EndpointError> {
    let mut args = Vec::new();
    let mut kw = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut equals_allowed = true;
    let mut chars = s.char_indices();
    let mut add = |parts: &mut Vec<String>| {
        let mut p = std::mem::take(parts).into_iter();
        match (p.next(), p.next()) {
            (Some(a), None) => args.push(a),
            (Some(k), Some(v)) => kw.push((k, v)),
            _ => {}
        }
    };
    while let Some((i, c)) = chars.next() {
        match c {
            ':' => {
                parts.push(std::mem::take(&mut current));
                add(&mut parts);
                equals_allowed = true;
            }
            '=' if equals_allowed => {
                parts.push(std::mem::take(&mut current));
                equals_allowed = false;
            }
            '\\' => match chars.next() {
                Some((_, n)) => current.push(n),
                None => return Err(EndpointError::UnterminatedEscape { position: i }),
            },
            c => current.push(c),
        }
    }
    parts.push(current);
    add(&mut parts);
    Ok((args, kw))
}

/// Escapes `\`, `:` and `=` so a value reads back as itself.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ':' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Arguments bound to a kind's parameters, by Python's call rules.
struct Bound {
    kind: &'static str,
    values: Vec<(&'static str, String)>,
}

impl Bound {
    fn bind(
        kind: &'static str,
        params: &'static [&'static str],
        args: Vec<String>,
        kw: Vec<(String, String)>,
    ) -> Result<Bound, EndpointError> {
        if args.len() > params.len() {
            return Err(EndpointError::TooManyArguments {
                kind,
                extra: args[params.len()].clone(),
            });
        }
        let mut values: Vec<(&'static str, String)> = params.iter().copied().zip(args).collect();
        for (k, v) in kw {
            let Some(name) = params.iter().copied().find(|p| *p == k) else {
                return Err(EndpointError::UnknownKeyword {
                    kind,
                    keyword: k,
                    expected: params,
                });
            };
            if values.iter().any(|(n, _)| *n == name) {
                return Err(EndpointError::DuplicateArgument { kind, name });
            }
            values.push((name, v));
        }
        Ok(Bound { kind, values })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &'static str) -> Result<&str, EndpointError> {
        self.get(name).ok_or(EndpointError::MissingArgument {
            kind: self.kind,
            name,
        })
    }

    fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    fn number<N: FromStr>(&self, name: &'static str, value: &str) -> Result<N, EndpointError> {
        value.trim().parse().map_err(|_| EndpointError::BadNumber {
            name,
            value: value.to_owned(),
        })
    }

    fn required_number<N: FromStr>(&self, name: &'static str) -> Result<N, EndpointError> {
        let v = self.required(name)?;
        self.number(name, v)
    }

    fn number_or<N: FromStr>(&self, name: &'static str, default: N) -> Result<N, EndpointError> {
        match self.get(name) {
            Some(v) => self.number(name, v),
            None => Ok(default),
        }
    }

    fn seconds_or(&self, name: &'static str, default: f64) -> Result<f64, EndpointError> {
        let t: f64 = self.number_or(name, default)?;
        if t.is_finite() && t >= 0.0 {
            Ok(t)
        } else {
            Err(EndpointError::BadNumber {
                name,
                value: self.get(name).unwrap_or_default().to_owned(),
            })
        }
    }

    /// Twisted's `bool(int(value))`.
    fn flag_or(&self, name: &'static str, default: bool) -> Result<bool, EndpointError> {
        Ok(self.number_or::<i64>(name, i64::from(default))? != 0)
    }
}

/// The rest of `s` after `kind:` (the kind matched case-insensitively), for kinds that wrap
/// a whole other endpoint string.
fn strip_kind<'a>(s: &'a str, kind: &str) -> Option<&'a str> {
    let head = s.get(..=kind.len())?;
    (head[..kind.len()].eq_ignore_ascii_case(kind) && head.ends_with(':'))
        .then(|| &s[kind.len() + 1..])
}

fn split_kind(
    s: &str,
    side: &'static str,
) -> Result<(String, Vec<String>, KeywordArgs), EndpointError> {
    if s.is_empty() {
        return Err(EndpointError::Empty);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EndpointError::BarePort(s.to_owned()));
    }
    let (mut args, kw) = parse_args(s)?;
    if args.is_empty() {
        // "port=80": the first part was a keyword, so there is no kind.
        return Err(EndpointError::UnknownType {
            kind: s.split(':').next().unwrap_or_default().to_owned(),
            side,
        });
    }
    let kind = args.remove(0);
    Ok((kind.to_ascii_lowercase(), args, kw))
}

/// Writes `kind:first:key=value...`, leaving defaults out.
struct Writer<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
}

impl Writer<'_, '_> {
    fn pos(&mut self, v: impl fmt::Display) -> fmt::Result {
        write!(self.f, ":{}", escape(&v.to_string()))
    }
    fn kw(&mut self, k: &str, v: impl fmt::Display) -> fmt::Result {
        write!(self.f, ":{k}={}", escape(&v.to_string()))
    }
    fn opt(&mut self, k: &str, v: &Option<String>) -> fmt::Result {
        match v {
            Some(v) => self.kw(k, v),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Server descriptions

/// The address family of a socket passed by systemd (Twisted's `domain=` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemdDomain {
    /// `INET`: an IPv4 socket.
    Inet,
    /// `INET6`: an IPv6 socket.
    Inet6,
    /// `UNIX`: a Unix socket.
    Unix,
}

impl fmt::Display for SystemdDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SystemdDomain::Inet => "INET",
            SystemdDomain::Inet6 => "INET6",
            SystemdDomain::Unix => "UNIX",
        })
    }
}

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
    },
    /// `tcp6:PORT:interface=IP:backlog=N` — TCP over IPv6.
    Tcp6 {
        /// The port; 0 picks a free one.
        port: u16,
        /// The interface to listen on (default `::`).
        interface: String,
        /// The listen backlog (default 1024).
        backlog: u32,
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

const TCP_SERVER: &[&str] = &["port", "interface", "backlog"];
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
                Ok(if v6 {
                    ServerDescription::Tcp6 {
                        port,
                        interface: b.string("interface").unwrap_or_else(|| "::".into()),
                        backlog,
                    }
                } else {
                    ServerDescription::Tcp {
                        port,
                        interface: b.string("interface").filter(|i| !i.is_empty()),
                        backlog,
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
        match self {
            ServerDescription::Tcp {
                port,
                interface,
                backlog: b,
            } => {
                f.write_str("tcp")?;
                let mut w = Writer { f };
                w.pos(port)?;
                w.opt("interface", interface)?;
                backlog(&mut w, *b)
            }
            ServerDescription::Tcp6 {
                port,
                interface,
                backlog: b,
            } => {
                f.write_str("tcp6")?;
                let mut w = Writer { f };
                w.pos(port)?;
                if interface != "::" {
                    w.kw("interface", interface)?;
                }
                backlog(&mut w, *b)
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
                w.opt("dhParameters", dh_parameters)
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

// ---------------------------------------------------------------------------------------
// Client descriptions

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

// ---------------------------------------------------------------------------------------
// Endpoints

/// A place to listen, bound to a reactor (Twisted's `IStreamServerEndpoint`).
#[derive(Clone)]
pub struct ServerEndpoint {
    reactor: Reactor,
    description: ServerDescription,
    options: ListenOptions,
}

/// Parses `s` and binds it to `reactor` (Twisted's `serverFromString`).
///
/// # Errors
/// An [`EndpointError`] naming the part of `s` that is wrong.
pub fn server_from_string(reactor: &Reactor, s: &str) -> Result<ServerEndpoint, EndpointError> {
    Ok(ServerEndpoint::new(reactor, s.parse()?))
}

/// Parses `s` and binds it to `reactor` (Twisted's `clientFromString`).
///
/// # Errors
/// An [`EndpointError`] naming the part of `s` that is wrong.
pub fn client_from_string(reactor: &Reactor, s: &str) -> Result<ClientEndpoint, EndpointError> {
    Ok(ClientEndpoint::new(reactor, s.parse()?))
}

impl ServerEndpoint {
    /// An endpoint for a parsed description.
    pub fn new(reactor: &Reactor, description: ServerDescription) -> ServerEndpoint {
        ServerEndpoint {
            reactor: reactor.clone(),
            description,
            options: ListenOptions::default(),
        }
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
    pub fn listen<F: Factory>(&self, factory: F) -> Deferred<ListeningPort> {
        let result = match &self.description {
            ServerDescription::Tcp {
                port,
                interface,
                backlog,
            } => self.reactor.listen_tcp_with(
                *port,
                factory,
                interface.as_deref().unwrap_or("0.0.0.0"),
                self.options.backlog(*backlog),
            ),
            ServerDescription::Tcp6 {
                port,
                interface,
                backlog,
            } => self.reactor.listen_tcp_with(
                *port,
                factory,
                interface,
                self.options.backlog(*backlog),
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
            ServerDescription::Tls { .. } => {
                listen_tls(&self.reactor, &self.description, factory, self.options)
            }
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

#[cfg(not(feature = "tls"))]
fn unsupported_listen(description: &ServerDescription, why: &str) -> Failure {
    Failure::new(CannotListenError::new(
        description.to_string(),
        io::Error::new(io::ErrorKind::Unsupported, why.to_owned()),
    ))
}

/// What systemd passed to this process, read from the environment once (`listenfd` then
/// removes `LISTEN_PID` and `LISTEN_FDS`, as `sd_listen_fds` does, so that child processes
/// do not take them for theirs). Each descriptor is taken out once: it gets one owner,
/// however many endpoints ask for it.
struct Inherited {
    /// Whether `LISTEN_PID` named this process.
    ours: bool,
    /// `LISTEN_FDS`.
    count: usize,
    /// `LISTEN_FDNAMES`, split at colons.
    names: Vec<String>,
    fds: listenfd::ListenFd,
}

impl Inherited {
    fn from_env() -> Inherited {
        let ours = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            == Some(std::process::id());
        let count = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let names = std::env::var("LISTEN_FDNAMES")
            .map(|n| n.split(':').map(str::to_owned).collect())
            .unwrap_or_default();
        // Only descriptors meant for this process are adopted.
        let fds = if ours {
            listenfd::ListenFd::from_env()
        } else {
            listenfd::ListenFd::empty()
        };
        Inherited {
            ours,
            count,
            names,
            fds,
        }
    }
}

static INHERITED: std::sync::Mutex<Option<Inherited>> = std::sync::Mutex::new(None);

/// Why a systemd endpoint cannot listen.
fn systemd_error(index: usize, why: impl Into<String>) -> Failure {
    Failure::new(CannotListenError::new(
        format!("systemd socket {index} (fd {})", LISTEN_FDS_START + index),
        io::Error::new(io::ErrorKind::NotFound, why.into()),
    ))
}

/// Systemd socket activation (`sd_listen_fds`): takes descriptor `3 + index` that systemd
/// (or `systemd-socket-activate`, or any launcher speaking the protocol) passed, checked
/// with `LISTEN_PID` and `LISTEN_FDS`. The descriptor is adopted through the `listenfd`
/// crate, which checks that it is a socket of the right kind.
fn listen_systemd<F: Factory>(
    reactor: &Reactor,
    domain: SystemdDomain,
    index: usize,
    factory: F,
) -> Result<ListeningPort, Failure> {
    let mut guard = INHERITED.lock().unwrap_or_else(|p| p.into_inner());
    let inherited = guard.get_or_insert_with(Inherited::from_env);
    if !inherited.ours {
        return Err(systemd_error(
            index,
            "no sockets were passed to this process (LISTEN_PID is not our pid)",
        ));
    }
    if inherited.count <= index {
        return Err(systemd_error(
            index,
            format!(
                "systemd passed {} socket(s), so there is no index {index}",
                inherited.count
            ),
        ));
    }
    let what = match inherited.names.get(index).filter(|n| !n.is_empty()) {
        Some(n) => format!("socket {index} ('{n}')"),
        None => format!("socket {index}"),
    };
    let fds = &mut inherited.fds;
    match domain {
        SystemdDomain::Inet | SystemdDomain::Inet6 => match fds.take_tcp_listener(index) {
            Ok(Some(l)) => {
                drop(guard);
                reactor.listen_tcp_adopt(l, factory)
            }
            Ok(None) => Err(systemd_error(index, format!("{what} was already taken"))),
            Err(e) => Err(systemd_error(
                index,
                format!("{what} is not a listening TCP socket: {e}"),
            )),
        },
        SystemdDomain::Unix => match fds.take_unix_listener(index) {
            Ok(Some(l)) => {
                drop(guard);
                reactor.listen_unix_adopt(l, factory)
            }
            Ok(None) => Err(systemd_error(index, format!("{what} was already taken"))),
            Err(e) => Err(systemd_error(
                index,
                format!("{what} is not a listening Unix socket: {e}"),
            )),
        },
    }
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
fn parse_bind_address(s: &str) -> Option<std::net::SocketAddr> {
    let s = s.trim();
    if let Ok(ip) = s
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        return Some(std::net::SocketAddr::new(ip, 0));
    }
    s.parse().ok()
}

fn unsupported_connect(description: &ClientDescription, why: &str) -> Failure {
    Failure::new(ConnectError::new(
        description.to_string(),
        io::Error::new(io::ErrorKind::Unsupported, why.to_owned()),
    ))
}

// ---------------------------------------------------------------------------------------
// TLS

/// Listens on a `tls:` server description: loads the PEM files, then listens with
/// [`Reactor::listen_tls_with`]. A file that cannot be used fails with a
/// [`CannotListenError`] naming it.
#[cfg(feature = "tls")]
fn listen_tls<F: Factory>(
    reactor: &Reactor,
    description: &ServerDescription,
    factory: F,
    options: ListenOptions,
) -> Result<ListeningPort, Failure> {
    use crate::tls::{load_certificates, load_private_key, Identity, ServerContext};
    let ServerDescription::Tls {
        port,
        interface,
        backlog,
        private_key,
        cert_key,
        extra_cert_chain,
        ..
    } = description
    else {
        unreachable!("listen_tls is called for tls descriptions only")
    };
    let context = (|| {
        let chain = load_certificates(cert_key.as_deref().unwrap_or(private_key))?;
        let mut identity = Identity::new(chain, load_private_key(private_key)?)?;
        if let Some(extra) = extra_cert_chain {
            identity = identity.with_extra_chain(load_certificates(extra)?);
        }
        ServerContext::new(identity)
    })()
    .map_err(|e| {
        CannotListenError::new(
            description.to_string(),
            io::Error::new(io::ErrorKind::InvalidInput, e),
        )
    })?;
    reactor.listen_tls_with(
        *port,
        factory,
        context,
        interface.as_deref().unwrap_or("0.0.0.0"),
        options.backlog(*backlog),
    )
}

#[cfg(not(feature = "tls"))]
fn listen_tls<F: Factory>(
    _reactor: &Reactor,
    description: &ServerDescription,
    _factory: F,
    _options: ListenOptions,
) -> Result<ListeningPort, Failure> {
    Err(unsupported_listen(description, TLS_OFF))
}

/// Connects a `tls:` client description: loads the trusted roots and the client
/// certificate, then connects with [`Reactor::connect_tls_from`]. A file that cannot be
/// used fails at once with a [`ConnectError`] naming it.
#[cfg(feature = "tls")]
fn connect_tls<F: ClientFactory>(
    reactor: &Reactor,
    description: &ClientDescription,
    factory: F,
) -> Result<Connector, Failure> {
    use crate::tls::{load_certificates, load_private_key, ClientContext, Identity};
    let ClientDescription::Tls {
        host,
        port,
        timeout,
        bind_address,
        certificate,
        private_key,
        trust_roots,
    } = description
    else {
        unreachable!("connect_tls is called for tls descriptions only")
    };
    let bind = match bind_address {
        None => None,
        Some(b) => Some(parse_bind_address(b).ok_or_else(|| {
            unsupported_connect(
                description,
                "bindAddress is not an IP address (or address:port)",
            )
        })?),
    };
    let context = (|| {
        let mut builder = ClientContext::builder();
        if let Some(roots) = trust_roots {
            builder = builder.trust(load_roots(std::path::Path::new(roots))?);
        }
        if let Some(cert) = certificate {
            let key = load_private_key(private_key.as_deref().unwrap_or(cert))?;
            builder = builder.identity(Identity::new(load_certificates(cert)?, key)?);
        }
        builder.build()
    })()
    .map_err(|e| {
        ConnectError::new(
            description.to_string(),
            io::Error::new(io::ErrorKind::InvalidInput, e),
        )
    })?;
    Ok(reactor.connect_tls_from(host, *port, factory, context, *timeout, bind))
}

/// The CA certificates in a PEM file, or in every PEM file of a folder (Twisted's
/// `trustRoots` folder); files without certificates in a folder are skipped.
#[cfg(feature = "tls")]
fn load_roots(
    path: &std::path::Path,
) -> Result<Vec<crate::tls::CertificateDer<'static>>, crate::tls::TlsError> {
    use crate::tls::{load_certificates, TlsError};
    if !path.is_dir() {
        return load_certificates(path);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| TlsError::Config(format!("cannot read {}: {e}", path.display())))?;
    let mut roots = Vec::new();
    for entry in entries.flatten() {
        if entry.path().is_file() {
            roots.extend(load_certificates(entry.path()).unwrap_or_default());
        }
    }
    if roots.is_empty() {
        return Err(TlsError::Config(format!(
            "no certificate found in the folder {}",
            path.display()
        )));
    }
    Ok(roots)
}

#[cfg(not(feature = "tls"))]
fn connect_tls<F: ClientFactory>(
    _reactor: &Reactor,
    description: &ClientDescription,
    _factory: F,
) -> Result<Connector, Failure> {
    Err(unsupported_connect(description, TLS_OFF))
}

#[cfg(not(feature = "tls"))]
const TLS_OFF: &str = "TLS is not compiled in (torsion's `tls` feature is off)";

// ---------------------------------------------------------------------------------------
// Unix sockets

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
