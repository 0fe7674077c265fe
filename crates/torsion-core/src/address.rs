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

/// Writes addresses for humans and logs. A Unix path or a name can come from the network
/// (a PROXY protocol header names any path it likes), so control characters in them are
/// written escaped (`\n`, `\x1b`, and `\\` for a backslash): a log line written with an
/// address is always one line, with no terminal escape sequences in it.
///
/// ```
/// use std::path::PathBuf;
/// use torsion::transport::Address;
///
/// let a = Address::Unix(Some(PathBuf::from("/run/x\n\x1b[31m")));
/// assert_eq!(a.to_string(), "unix:/run/x\\n\\x1b[31m");
/// ```
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "tcp:{a}"),
            Address::Udp(a) => write!(f, "udp:{a}"),
            Address::Unix(Some(p)) => {
                f.write_str("unix:")?;
                write_escaped(f, &p.to_string_lossy())
            }
            Address::Unix(None) => f.write_str("unix:(unnamed)"),
            Address::Named(n) => write_escaped(f, n),
        }
    }
}

/// Writes `s` with its control characters (and backslashes, so the escaping reads back
/// unambiguously) escaped.
fn write_escaped(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    if !s.chars().any(|c| c.is_control() || c == '\\') {
        return f.write_str(s);
    }
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => {
                let n = u32::from(c);
                if n <= 0xff {
                    write!(f, "\\x{n:02x}")?
                } else {
                    write!(f, "\\u{{{n:x}}}")?
                }
            }
            c => fmt::Write::write_char(f, c)?,
        }
    }
    Ok(())
}
