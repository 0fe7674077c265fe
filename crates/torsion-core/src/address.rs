//! Addresses: where a connection's end is (Twisted's `IAddress`).
//!
//! ```
//! use torsion::transport::Address;
//!
//! let a = Address::Tcp("127.0.0.1:8080".parse().unwrap());
//! assert_eq!(a.port(), Some(8080));
//! assert_eq!(a.to_string(), "tcp:127.0.0.1:8080");
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a connection's end is (Twisted's `IAddress`: `IPv4Address`, `UNIXAddress`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A TCP address (IPv4 or IPv6).
    Tcp(SocketAddr),
    /// A UDP address.
    Udp(SocketAddr),
    /// A Unix socket path (`None` for an unnamed socket).
    Unix(Option<PathBuf>),
    /// Any other endpoint, named for humans (test transports, processes, stdio).
    Named(String),
}

impl Address {
    /// The IP socket address, for TCP and UDP.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Address::Tcp(a) | Address::Udp(a) => Some(*a),
            _ => None,
        }
    }

    /// The port, for TCP and UDP.
    pub fn port(&self) -> Option<u16> {
        self.socket_addr().map(|a| a.port())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "tcp:{a}"),
            Address::Udp(a) => write!(f, "udp:{a}"),
            Address::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Address::Unix(None) => f.write_str("unix:(unnamed)"),
            Address::Named(n) => f.write_str(n),
        }
    }
}
