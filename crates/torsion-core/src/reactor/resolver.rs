//! Name resolution: the reactor's pluggable resolver (Twisted's `IHostnameResolver`,
//! `reactor.nameResolver` and `reactor.installNameResolver`).
//!
//! Every connection to a host name — [`connect_tcp`](crate::Reactor::connect_tcp), TLS
//! clients, [`HostnameEndpoint`](crate::endpoints::HostnameEndpoint), the web client — asks
//! the reactor's resolver for the name's addresses. The default, [`SystemResolver`], calls the
//! system's `getaddrinfo` on a background thread, so a slow DNS server never blocks the
//! reactor. Install another one (a DNS client, a fixed table for tests, a cache) with
//! [`Reactor::install_name_resolver`](crate::Reactor::install_name_resolver); a closure
//! `Fn(&str, u16) -> Deferred<Vec<SocketAddr>>` is a resolver too:
//!
//! ```
//! use std::net::SocketAddr;
//! use torsion::defer::{fail, succeed};
//! use torsion::error::DnsLookupError;
//! use torsion::{Failure, Reactor};
//!
//! let r = Reactor::new();
//! r.install_name_resolver(|host: &str, port: u16| {
//!     if host == "db.internal" {
//!         succeed(vec![SocketAddr::from(([10, 0, 0, 7], port))])
//!     } else {
//!         fail(Failure::new(DnsLookupError::not_found(host)))
//!     }
//! });
//! let ip = r.resolve("db.internal").result().unwrap().unwrap();
//! assert_eq!(ip.to_string(), "10.0.0.7");
//! let missing = r.resolve("nowhere.internal").result().unwrap().unwrap_err();
//! assert!(missing.check::<DnsLookupError>());
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use crate::defer::{spawn_on, succeed, Deferred};
use crate::error::DnsLookupError;
use crate::runtime::Loop;
use crate::Failure;

/// Something that turns a host name into addresses (Twisted's `IHostnameResolver`).
///
/// Implement it for a resolver of your own and install it with
/// [`Reactor::install_name_resolver`](crate::Reactor::install_name_resolver). A closure
/// `Fn(&str, u16) -> Deferred<Vec<SocketAddr>>` implements it.
pub trait HostnameResolver {
    /// The addresses of `host`, each with `port`, in the order to try them. Fails with a
    /// [`DnsLookupError`] when the name has none. `host` may also be an IP address (written
    /// without brackets); a resolver should then answer with that address.
    fn resolve_host_name(&self, host: &str, port: u16) -> Deferred<Vec<SocketAddr>>;
}

impl<F: Fn(&str, u16) -> Deferred<Vec<SocketAddr>>> HostnameResolver for F {
    fn resolve_host_name(&self, host: &str, port: u16) -> Deferred<Vec<SocketAddr>> {
        self(host, port)
    }
}

/// A shared resolver, such as the one [`install_name_resolver`] returns, so it can be put back.
///
/// [`install_name_resolver`]: crate::Reactor::install_name_resolver
impl HostnameResolver for Rc<dyn HostnameResolver> {
    fn resolve_host_name(&self, host: &str, port: u16) -> Deferred<Vec<SocketAddr>> {
        (**self).resolve_host_name(host, port)
    }
}

/// The system's resolver: `getaddrinfo` (so `/etc/hosts`, `/etc/resolv.conf` and
/// `nsswitch.conf` apply), run on tokio's blocking-thread pool so the reactor goes on
/// meanwhile (Twisted's `GAIResolver`). IP addresses are answered at once, without a lookup.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl HostnameResolver for SystemResolver {
    fn resolve_host_name(&self, host: &str, port: u16) -> Deferred<Vec<SocketAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return succeed(vec![SocketAddr::new(ip, port)]);
        }
        let host = host.to_owned();
        // On the loop's next turn, inside the runtime (the lookup runs on its blocking pool).
        spawn_on(&Loop::current(), async move {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(found) => {
                    let found: Vec<SocketAddr> = found.collect();
                    if found.is_empty() {
                        Err(Failure::new(DnsLookupError::not_found(&host)))
                    } else {
                        Ok(found)
                    }
                }
                Err(e) => Err(Failure::new(DnsLookupError::new(&host, e))),
            }
        })
        .add_callback_result(|found| found)
    }
}

/// The first address of `found` (for `Reactor::resolve`).
pub(super) fn first_address(name: &str, found: Vec<SocketAddr>) -> Result<IpAddr, Failure> {
    found.first().map(SocketAddr::ip).ok_or_else(|| {
        Failure::new(DnsLookupError::new(
            name,
            io::Error::new(io::ErrorKind::NotFound, "the resolver gave no address"),
        ))
    })
}
