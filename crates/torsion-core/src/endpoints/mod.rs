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
//!     ServerDescription::Tcp6 {
//!         port: 8080,
//!         interface: "::1".into(),
//!         backlog: 1024,
//!         send_timeout: 60,
//!         write_limit: 0,
//!     }
//! );
//! assert_eq!(server.to_string(), r"tcp6:8080:interface=\:\:1");
//!
//! let client: ClientDescription = "tcp:example.com:80".parse().unwrap();
//! assert_eq!(client.to_string(), "tcp:host=example.com:port=80");
//!
//! let err = "tcp:8080:intrface=::1".parse::<ServerDescription>().unwrap_err();
//! assert_eq!(err.to_string(), "unknown keyword 'intrface' for a tcp endpoint (expected port, interface, backlog, sendTimeout, writeLimit)");
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
//!
//! A client endpoint connects two ways: [`ClientEndpoint::connect`] with a
//! [`ClientFactory`](crate::ClientFactory) that hears each attempt (and can retry through its
//! [`Connector`](crate::tcp::Connector)), or, as Twisted's `endpoint.connect(factory)`,
//! [`ClientEndpoint::connect_deferred`] (and [`connect_protocol`]) with a Deferred that fires
//! with the [`ConnectedProtocol`]. [`HostnameEndpoint`] connects to a host name by racing its
//! addresses; [`ClientService`](crate::application::ClientService) keeps a connection up.
//!
//! [`HAProxyWrappingFactory`]: crate::protocols::haproxy::HAProxyWrappingFactory

mod client;
mod connect;
mod grammar;
mod hostname;
mod server;
mod systemd;
mod tls;

pub use client::{client_from_string, ClientDescription, ClientEndpoint};
pub use connect::{connect_protocol, ConnectedProtocol, NoProtocol};
pub use grammar::{parse_args, EndpointError, KeywordArgs};
pub use hostname::{HostnameEndpoint, DEFAULT_ATTEMPT_DELAY};
pub use server::{
    server_from_string, ServerDescription, ServerEndpoint, DEFAULT_BACKLOG, DEFAULT_PRIVATE_KEY,
    DEFAULT_UNIX_MODE,
};
pub use systemd::{SystemdDomain, LISTEN_FDS_START};
