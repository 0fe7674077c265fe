//! The HAProxy PROXY protocol, versions 1 and 2: the real client address behind a load
//! balancer (Twisted's `twisted.protocols.haproxy`).
//!
//! A load balancer or TLS terminator that speaks the PROXY protocol (HAProxy's `send-proxy`
//! and `send-proxy-v2`, AWS NLB, nginx's `proxy_protocol on`, `curl --haproxy-protocol`)
//! opens each connection with a header naming the client it is relaying for. An
//! [`HAProxyWrappingFactory`] wraps any [`Factory`]: it reads that header, then hands the rest
//! of the bytes to the wrapped protocol, whose transport's
//! [`get_peer`](crate::transport::TransportImpl::get_peer) and `get_host` give the addresses
//! from the header instead of the load balancer's.
//!
//! - Version 1 is a text line, `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`, at most
//!   [`V1_MAX_LENGTH`] (107) bytes. `PROXY UNKNOWN` keeps the real addresses.
//! - Version 2 is binary: a 12-byte signature, version and command, family, a length, the
//!   addresses, then TLVs (skipped). The whole header is refused past
//!   [`DEFAULT_MAX_V2_LENGTH`] bytes (changeable). The `LOCAL` command (a health check from
//!   the balancer itself) and the `AF_UNSPEC` family keep the real addresses.
//!
//! A connection whose header is malformed or too long, or does not arrive within
//! [`DEFAULT_HEADER_TIMEOUT`] seconds, is closed with a log line; the wrapped protocol never
//! hears of it. Only put this in front of a port that only the load balancer can reach: the
//! header is believed, so anyone who can connect directly could claim any address. The
//! endpoint string `haproxy:tcp:8080` (or `haproxy:unix:/path`) listens this way.
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use torsion::protocols::haproxy::HAProxyWrappingFactory;
//! use torsion::{factory, testing::StringTransport, transport::Address, Factory, Protocol, Transport};
//!
//! struct WhoIsIt(Rc<RefCell<Vec<String>>>);
//! impl Protocol for WhoIsIt {
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) {
//!         self.0.borrow_mut().push(format!("{} said {}", t.get_peer(), String::from_utf8_lossy(data)));
//!     }
//! }
//!
//! let seen = Rc::new(RefCell::new(Vec::new()));
//! let log = seen.clone();
//! let f = HAProxyWrappingFactory::new(factory(move || WhoIsIt(log.clone())));
//! let mut p = f.build_protocol(&Address::Named("balancer".into())).unwrap();
//! let st = StringTransport::new();
//! p.connection_made(&st.transport());
//! p.data_received(&st.transport(), b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 80\r\nhello");
//! assert_eq!(seen.borrow()[0], "tcp:192.0.2.7:40000 said hello");
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;

use crate::protocol::{Factory, Protocol};
use crate::reactor::{reactor, DelayedCall, ReactorTime};
use crate::transport::{Address, Transport, TransportImpl};
use crate::Failure;

/// The longest version 1 header, `\r\n` included (the specification's 107 bytes).
pub const V1_MAX_LENGTH: usize = 107;

/// The signature that opens a version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part of a version 2 header: signature, version and command, family, length.
pub const V2_FIXED_LENGTH: usize = 16;

/// The longest version 2 header accepted by default, fixed part, addresses and TLVs
/// included. The format allows 65,551 bytes; real balancers send a few hundred.
pub const DEFAULT_MAX_V2_LENGTH: usize = 4096;

/// How long a connection may take to send its header by default, in seconds.
pub const DEFAULT_HEADER_TIMEOUT: f64 = 10.0;

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
    fn new(reason: impl Into<String>) -> InvalidProxyHeader {
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

// ---------------------------------------------------------------------------------------
// The wrapping factory and protocol

struct Settings {
    timeout: Cell<f64>,
    max_v2_length: Cell<usize>,
    clock: RefCell<Option<Rc<dyn ReactorTime>>>,
}

impl Settings {
    fn clock(&self) -> Rc<dyn ReactorTime> {
        self.clock
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(reactor()))
            .clone()
    }
}

/// Wraps any factory so that its connections start with a PROXY header (Twisted's
/// `HAProxyWrappingFactory`): see the [module docs](self).
pub struct HAProxyWrappingFactory<F> {
    wrapped: F,
    settings: Rc<Settings>,
}

impl<F: Factory> HAProxyWrappingFactory<F> {
    /// Wraps `wrapped`, with the default header time-out and version 2 length limit.
    pub fn new(wrapped: F) -> HAProxyWrappingFactory<F> {
        HAProxyWrappingFactory {
            wrapped,
            settings: Rc::new(Settings {
                timeout: Cell::new(DEFAULT_HEADER_TIMEOUT),
                max_v2_length: Cell::new(DEFAULT_MAX_V2_LENGTH),
                clock: RefCell::new(None),
            }),
        }
    }
}

impl<F> HAProxyWrappingFactory<F> {
    /// The wrapped factory.
    pub fn wrapped_factory(&self) -> &F {
        &self.wrapped
    }

    /// Changes how long new connections may take to send their header, in seconds.
    pub fn set_header_timeout(&self, seconds: f64) {
        self.settings.timeout.set(seconds);
    }

    /// How long a connection may take to send its header, in seconds.
    pub fn header_timeout(&self) -> f64 {
        self.settings.timeout.get()
    }

    /// Changes the longest version 2 header accepted (at least the 16-byte fixed part).
    pub fn set_max_v2_length(&self, bytes: usize) {
        self.settings.max_v2_length.set(bytes.max(V2_FIXED_LENGTH));
    }

    /// Times header time-outs with `clock` (a test [`Clock`](crate::testing::Clock)) instead
    /// of the current reactor.
    pub fn set_clock(&self, clock: impl ReactorTime + 'static) {
        *self.settings.clock.borrow_mut() = Some(Rc::new(clock));
    }
}

impl<F: Factory> Factory for HAProxyWrappingFactory<F> {
    type Protocol = HAProxyProtocol<F::Protocol>;

    fn build_protocol(&self, addr: &Address) -> Option<Self::Protocol> {
        let wrapped = self.wrapped.build_protocol(addr)?;
        Some(HAProxyProtocol {
            wrapped,
            settings: self.settings.clone(),
            state: State::Waiting {
                buf: Vec::new(),
                timer: None,
            },
        })
    }

    fn start_factory(&self) {
        self.wrapped.start_factory();
    }

    fn stop_factory(&self) {
        self.wrapped.stop_factory();
    }
}

impl<F> fmt::Debug for HAProxyWrappingFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HAProxyWrappingFactory")
            .field("wrapped", &std::any::type_name::<F>())
            .field("header_timeout", &self.settings.timeout.get())
            .finish()
    }
}

enum State {
    /// Reading the header: what has arrived of it, and the time-out.
    Waiting {
        buf: Vec<u8>,
        timer: Option<DelayedCall>,
    },
    /// The header was read: the wrapped protocol talks to this transport.
    Passing(Transport),
    /// The header was refused, or the connection ended before it arrived.
    Refused,
}

/// The protocol an [`HAProxyWrappingFactory`] makes (Twisted's `HAProxyProtocolWrapper`):
/// reads the header, then passes everything on to the wrapped protocol.
pub struct HAProxyProtocol<P> {
    wrapped: P,
    settings: Rc<Settings>,
    state: State,
}

impl<P> HAProxyProtocol<P> {
    /// The wrapped protocol.
    pub fn wrapped_protocol(&self) -> &P {
        &self.wrapped
    }

    /// The wrapped protocol, mutably.
    pub fn wrapped_protocol_mut(&mut self) -> &mut P {
        &mut self.wrapped
    }

    /// The transport the wrapped protocol talks to, once the header has been read.
    pub fn transport(&self) -> Option<&Transport> {
        match &self.state {
            State::Passing(t) => Some(t),
            _ => None,
        }
    }

    fn cancel_timer(&mut self) {
        if let State::Waiting { timer, .. } = &mut self.state {
            if let Some(call) = timer.take() {
                let _ = call.cancel();
            }
        }
    }

    fn refuse(&mut self, transport: &Transport, why: &InvalidProxyHeader) {
        self.cancel_timer();
        self.state = State::Refused;
        crate::log::error_event(format_args!(
            "{why} (from {}); connection closed",
            transport.get_peer()
        ));
        transport.abort_connection();
    }
}

impl<P: Protocol> Protocol for HAProxyProtocol<P> {
    fn connection_made(&mut self, transport: &Transport) {
        let State::Waiting { timer, .. } = &mut self.state else {
            return;
        };
        let seconds = self.settings.timeout.get();
        let t = transport.clone();
        *timer = Some(self.settings.clock().call_later_boxed(
            seconds,
            Box::new(move || {
                crate::log::error_event(format_args!(
                    "no PROXY protocol header from {} within {seconds} s; connection closed",
                    t.get_peer()
                ));
                t.abort_connection();
            }),
        ));
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        let parsed = match &mut self.state {
            State::Passing(t) => return self.wrapped.data_received(t, data),
            State::Refused => return,
            State::Waiting { buf, .. } => {
                let max = self.settings.max_v2_length.get();
                if buf.is_empty() {
                    // The usual case: the whole header in the first read, no copy.
                    match parse_header(data, max) {
                        Ok(None) => {
                            buf.extend_from_slice(data);
                            return;
                        }
                        Ok(Some((h, n))) => Ok((h, &data[n..])),
                        Err(e) => Err(e),
                    }
                } else {
                    // Only as much as can still belong to the header is kept: bounded.
                    let limit = max.max(V1_MAX_LENGTH);
                    let take = data.len().min(limit.saturating_sub(buf.len()));
                    buf.extend_from_slice(&data[..take]);
                    match parse_header(buf, max) {
                        Ok(None) if take < data.len() => {
                            Err(InvalidProxyHeader::new("header longer than the limit"))
                        }
                        Ok(None) => return,
                        Ok(Some((h, n))) => {
                            // n <= buf.len(); the header ended inside `buf`, the rest is
                            // what followed it in buf and all of data not yet copied.
                            let before = buf.len() - take;
                            Ok((h, &data[n - before..]))
                        }
                        Err(e) => Err(e),
                    }
                }
            }
        };
        match parsed {
            Err(e) => self.refuse(transport, &e),
            Ok((header, rest)) => {
                self.cancel_timer();
                let t = Transport::new(Rc::new(HAProxyTransport {
                    peer: header.source.unwrap_or_else(|| transport.get_peer()),
                    host: header.destination.unwrap_or_else(|| transport.get_host()),
                    real: transport.clone(),
                }));
                self.state = State::Passing(t.clone());
                self.wrapped.connection_made(&t);
                if !rest.is_empty() && !t.disconnecting() {
                    self.wrapped.data_received(&t, rest);
                }
            }
        }
    }

    fn read_connection_lost(&mut self, transport: &Transport) {
        match &self.state {
            State::Passing(t) => {
                let t = t.clone();
                self.wrapped.read_connection_lost(&t);
            }
            State::Waiting { buf, .. } => {
                if !buf.is_empty() {
                    crate::log::error_event(format_args!(
                        "{} closed its side in the middle of a PROXY protocol header; \
                         connection closed",
                        transport.get_peer()
                    ));
                }
                self.cancel_timer();
                self.state = State::Refused;
                transport.lose_connection();
            }
            State::Refused => transport.lose_connection(),
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.cancel_timer();
        if let State::Passing(_) = self.state {
            self.wrapped.connection_lost(reason);
        }
    }
}

impl<P> Drop for HAProxyProtocol<P> {
    fn drop(&mut self) {
        self.cancel_timer();
    }
}

impl<P> fmt::Debug for HAProxyProtocol<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting { .. } => "waiting for the header",
            State::Passing(_) => "passing",
            State::Refused => "refused",
        };
        f.debug_struct("HAProxyProtocol")
            .field("protocol", &std::any::type_name::<P>())
            .field("state", &state)
            .finish()
    }
}

/// The transport the wrapped protocol gets: the real one, with the header's addresses.
struct HAProxyTransport {
    real: Transport,
    peer: Address,
    host: Address,
}

impl TransportImpl for HAProxyTransport {
    fn write(&self, data: &[u8]) {
        self.real.write(data);
    }
    fn write_sequence(&self, data: &[&[u8]]) {
        self.real.write_sequence(data);
    }
    fn lose_connection(&self) {
        self.real.lose_connection();
    }
    fn abort_connection(&self) {
        self.real.abort_connection();
    }
    fn lose_write_connection(&self) {
        self.real.lose_write_connection();
    }
    fn get_peer(&self) -> Address {
        self.peer.clone()
    }
    fn get_host(&self) -> Address {
        self.host.clone()
    }
    fn buffered_size(&self) -> usize {
        self.real.buffered_size()
    }
    fn is_connected(&self) -> bool {
        self.real.is_connected()
    }
    fn disconnecting(&self) -> bool {
        self.real.disconnecting()
    }
    fn pause_producing(&self) {
        self.real.pause_producing();
    }
    fn resume_producing(&self) {
        self.real.resume_producing();
    }
    fn set_tcp_no_delay(&self, enabled: bool) -> io::Result<()> {
        self.real.set_tcp_no_delay(enabled)
    }
    fn get_tcp_no_delay(&self) -> io::Result<bool> {
        self.real.get_tcp_no_delay()
    }
    fn set_tcp_keep_alive(&self, enabled: bool) -> io::Result<()> {
        self.real.set_tcp_keep_alive(enabled)
    }
    fn get_tcp_keep_alive(&self) -> io::Result<bool> {
        self.real.get_tcp_keep_alive()
    }
}

/// A factory of boxed protocols, so that an endpoint can wrap any factory without a new type
/// per wrapping (used by the `haproxy:` endpoint).
pub(crate) struct BoxedFactory {
    inner: Box<dyn ErasedFactory>,
}

trait ErasedFactory {
    fn build(&self, addr: &Address) -> Option<Box<dyn Protocol>>;
    fn start(&self);
    fn stop(&self);
}

impl<F: Factory> ErasedFactory for F {
    fn build(&self, addr: &Address) -> Option<Box<dyn Protocol>> {
        self.build_protocol(addr)
            .map(|p| Box::new(p) as Box<dyn Protocol>)
    }
    fn start(&self) {
        self.start_factory();
    }
    fn stop(&self) {
        self.stop_factory();
    }
}

impl BoxedFactory {
    pub(crate) fn new<F: Factory>(f: F) -> BoxedFactory {
        BoxedFactory { inner: Box::new(f) }
    }
}

impl Factory for BoxedFactory {
    type Protocol = Box<dyn Protocol>;

    fn build_protocol(&self, addr: &Address) -> Option<Box<dyn Protocol>> {
        self.inner.build(addr)
    }
    fn start_factory(&self) {
        self.inner.start();
    }
    fn stop_factory(&self) {
        self.inner.stop();
    }
}
