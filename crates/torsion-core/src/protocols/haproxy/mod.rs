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
use std::rc::Rc;

use crate::protocol::{Factory, Protocol};
use crate::reactor::{reactor, DelayedCall, ReactorTime};
use crate::transport::{Address, Transport, TransportImpl};
use crate::ConnectionEnd;

mod header;

pub use header::{
    parse_header, InvalidProxyHeader, ProxyHeader, DEFAULT_MAX_V2_LENGTH, V1_MAX_LENGTH,
    V2_FIXED_LENGTH, V2_SIGNATURE,
};

/// How long a connection may take to send its header by default, in seconds.
pub const DEFAULT_HEADER_TIMEOUT: f64 = 10.0;

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

    fn write_connection_lost(&mut self, transport: &Transport) {
        // Only the wrapped protocol can have shut the write half (the header is read first).
        let _ = transport;
        if let State::Passing(t) = &self.state {
            let t = t.clone();
            self.wrapped.write_connection_lost(&t);
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
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

/// Only the addresses change; everything else is the real transport's.
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
    fn get_peer(&self) -> Address {
        self.peer.clone()
    }
    fn get_host(&self) -> Address {
        self.host.clone()
    }
    fn wrapped(&self) -> Option<&Transport> {
        Some(&self.real)
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
