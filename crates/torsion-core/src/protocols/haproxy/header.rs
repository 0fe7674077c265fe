//! Reading a PROXY protocol header (versions 1 and 2) from bytes: no I/O, no clock.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::transport::Address;

/// The longest version 1 header, `\r\n` included (the specification's 107 bytes).
pub const V1_MAX_LENGTH: usize = 107;

/// The signature that opens a version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part of a version 2 header: signature, version and command, family, length.
pub const V2_FIXED_LENGTH: usize = 16;

/// The longest version 2 header accepted by default, fixed part, addresses and TLVs
/// included. The format allows 65,551 bytes; real balancers send a few hundred.
pub const DEFAULT_MAX_V2_LENGTH: usize = 4096;

const V1_PREFIX: &[u8] = b"PROXY ";

/// What a PROXY header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The protocol version, 1 or 2.
    pub version: u8,
    /// The client's address, or `None` to keep the connection's own peer address (version 1
    /// `UNKNOWN`, version 2 `LOCAL` or `AF_UNSPEC`).
    pub source: Option<Address>,
    /// The address the client connected to (this end, as the client saw it); `None` as for
    /// `source`.
    pub destination: Option<Address>,
}

/// A PROXY header that cannot be accepted (Twisted's `InvalidProxyHeader`): the connection
/// is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProxyHeader {
    reason: String,
}

impl InvalidProxyHeader {
    pub(super) fn new(reason: impl Into<String>) -> InvalidProxyHeader {
        InvalidProxyHeader {
            reason: reason.into(),
        }
    }

    /// What is wrong with the header.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for InvalidProxyHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid PROXY protocol header: {}", self.reason)
    }
}

impl std::error::Error for InvalidProxyHeader {}

/// Parses a PROXY header (version 1 or 2) at the start of `buf`.
///
/// `Ok(None)`: `buf` is a correct beginning, wait for more bytes. `Ok(Some((header, n)))`:
/// the header is the first `n` bytes; what follows is the application's. `Err`: `buf` does
/// not start with an acceptable header (not a PROXY header, malformed, or longer than
/// [`V1_MAX_LENGTH`] or `max_v2_length`). The answer depends only on the bytes, never on how
/// they were split.
///
/// ```
/// use torsion::protocols::haproxy::{parse_header, DEFAULT_MAX_V2_LENGTH};
///
/// let data = b"PROXY TCP6 2001:db8::1 ::1 443 8443\r\nGET /";
/// let (header, n) = parse_header(data, DEFAULT_MAX_V2_LENGTH).unwrap().unwrap();
/// assert_eq!(header.source.unwrap().to_string(), "tcp:[2001:db8::1]:443");
/// assert_eq!(&data[n..], b"GET /");
/// assert_eq!(parse_header(b"PROXY TCP", DEFAULT_MAX_V2_LENGTH), Ok(None));
/// assert!(parse_header(b"GET / HTTP/1.1\r\n", DEFAULT_MAX_V2_LENGTH).is_err());
/// ```
///
/// # Errors
/// [`InvalidProxyHeader`] naming what is wrong.
pub fn parse_header(
    buf: &[u8],
    max_v2_length: usize,
) -> Result<Option<(ProxyHeader, usize)>, InvalidProxyHeader> {
    let v1 = buf.len().min(V1_PREFIX.len());
    if buf[..v1] == V1_PREFIX[..v1] {
        return if buf.len() < V1_PREFIX.len() {
            Ok(None)
        } else {
            parse_v1(buf)
        };
    }
    let v2 = buf.len().min(V2_SIGNATURE.len());
    if buf[..v2] == V2_SIGNATURE[..v2] {
        return parse_v2(buf, max_v2_length);
    }
    Err(InvalidProxyHeader::new("not a PROXY protocol header"))
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, InvalidProxyHeader> {
    let window = &buf[..buf.len().min(V1_MAX_LENGTH)];
    let Some(lf) = memchr::memchr(b'\n', window) else {
        return if buf.len() >= V1_MAX_LENGTH {
            Err(InvalidProxyHeader::new(format!(
                "version 1 header longer than {V1_MAX_LENGTH} bytes"
            )))
        } else {
            Ok(None)
        };
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(InvalidProxyHeader::new(
            "version 1 header line does not end with CRLF",
        ));
    }
    let line = std::str::from_utf8(&window[V1_PREFIX.len()..lf - 1])
        .map_err(|_| InvalidProxyHeader::new("version 1 header is not ASCII"))?;
    let mut fields = line.split(' ');
    let family = fields.next().unwrap_or_default();
    let (source, destination) = match family {
        // "UNKNOWN" may be followed by anything; the receiver ignores it.
        "UNKNOWN" => (None, None),
        "TCP4" | "TCP6" => {
            let parts: Vec<&str> = fields.collect();
            let [src, dst, sport, dport] = parts[..] else {
                return Err(InvalidProxyHeader::new(
                    "version 1 header needs source, destination and two ports",
                ));
            };
            let v4 = family == "TCP4";
            let src = v1_address(src, sport, v4)?;
            let dst = v1_address(dst, dport, v4)?;
            (Some(Address::Tcp(src)), Some(Address::Tcp(dst)))
        }
        _ => {
            return Err(InvalidProxyHeader::new(
                "version 1 protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let header = ProxyHeader {
        version: 1,
        source,
        destination,
    };
    Ok(Some((header, lf + 1)))
}

fn v1_address(ip: &str, port: &str, v4: bool) -> Result<SocketAddr, InvalidProxyHeader> {
    let ip: IpAddr = if v4 {
        ip.parse::<Ipv4Addr>().map(IpAddr::V4)
    } else {
        ip.parse::<Ipv6Addr>().map(IpAddr::V6)
    }
    .map_err(|_| InvalidProxyHeader::new("bad address in version 1 header"))?;
    let port_ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    let port: u16 = port
        .parse()
        .ok()
        .filter(|_| port_ok)
        .ok_or_else(|| InvalidProxyHeader::new("bad port in version 1 header"))?;
    Ok(SocketAddr::new(ip, port))
}

fn parse_v2(
    buf: &[u8],
    max_v2_length: usize,
) -> Result<Option<(ProxyHeader, usize)>, InvalidProxyHeader> {
    if buf.len() < V2_FIXED_LENGTH {
        return Ok(None);
    }
    let version = buf[12] >> 4;
    let command = buf[12] & 0x0f;
    if version != 2 {
        return Err(InvalidProxyHeader::new(format!(
            "version 2 signature with version {version}"
        )));
    }
    if command > 1 {
        return Err(InvalidProxyHeader::new(format!(
            "unknown version 2 command {command}"
        )));
    }
    let family = buf[13];
    if !matches!(family, 0x00 | 0x11 | 0x12 | 0x21 | 0x22 | 0x31 | 0x32) {
        return Err(InvalidProxyHeader::new(format!(
            "unknown version 2 address family and protocol 0x{family:02x}"
        )));
    }
    let length = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = V2_FIXED_LENGTH + length;
    if total > max_v2_length {
        return Err(InvalidProxyHeader::new(format!(
            "version 2 header of {total} bytes is longer than the limit of {max_v2_length}"
        )));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[V2_FIXED_LENGTH..total];
    let local = command == 0;
    let addresses = if local {
        None // a LOCAL connection (health check) keeps its real addresses, whatever follows
    } else {
        v2_addresses(family, body)?
    };
    let (source, destination) = match addresses {
        Some((s, d)) => (Some(s), Some(d)),
        None => (None, None),
    };
    let header = ProxyHeader {
        version: 2,
        source,
        destination,
    };
    Ok(Some((header, total)))
}

/// The addresses of a version 2 `PROXY` header; what follows them (TLVs) is skipped.
fn v2_addresses(family: u8, body: &[u8]) -> Result<Option<(Address, Address)>, InvalidProxyHeader> {
    let need = match family >> 4 {
        0 => return Ok(None), // AF_UNSPEC: keep the real addresses
        1 => 12,
        2 => 36,
        _ => 216,
    };
    if body.len() < need {
        return Err(InvalidProxyHeader::new(format!(
            "version 2 address block of {} bytes, {need} needed",
            body.len()
        )));
    }
    let stream = family & 0x0f == 1;
    let ip = |ip: IpAddr, port: &[u8]| {
        let a = SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]]));
        if stream {
            Address::Tcp(a)
        } else {
            Address::Udp(a)
        }
    };
    Ok(Some(match family >> 4 {
        1 => {
            let s = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let d = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
            (ip(s.into(), &body[8..10]), ip(d.into(), &body[10..12]))
        }
        2 => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&body[..16]);
            d.copy_from_slice(&body[16..32]);
            (
                ip(Ipv6Addr::from(s).into(), &body[32..34]),
                ip(Ipv6Addr::from(d).into(), &body[34..36]),
            )
        }
        _ => (unix_address(&body[..108]), unix_address(&body[108..216])),
    }))
}

/// A 108-byte `sun_path`: the path up to its first NUL; an empty or abstract name (leading
/// NUL) has no path.
fn unix_address(raw: &[u8]) -> Address {
    let end = memchr::memchr(0, raw).unwrap_or(raw.len());
    if end == 0 {
        Address::Unix(None)
    } else {
        Address::Unix(Some(PathBuf::from(std::ffi::OsStr::from_bytes(
            &raw[..end],
        ))))
    }
}
