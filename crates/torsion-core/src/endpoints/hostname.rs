//! [`HostnameEndpoint`]: connect to a host name by racing its addresses (Twisted's
//! `HostnameEndpoint`, with RFC 8305 "happy eyeballs" ordering).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::{Rc, Weak};

use super::client::{ClientDescription, ClientEndpoint};
use super::connect::ConnectedProtocol;
use crate::defer::{Deferred, Trigger};
use crate::error::{CancelledError, ConnectError, DnsLookupError};
use crate::protocol::Factory;
use crate::reactor::{DelayedCall, ReactorTime};
use crate::tcp::DEFAULT_CONNECT_TIMEOUT;
use crate::{Failure, Reactor};

/// Seconds between starting one address's attempt and the next (Twisted's
/// `_DEFAULT_ATTEMPT_DELAY`; RFC 8305 recommends 0.25).
pub const DEFAULT_ATTEMPT_DELAY: f64 = 0.3;

/// A name resolver: the addresses for a host and port, later.
type Resolver = Rc<dyn Fn(&str, u16) -> Deferred<Vec<SocketAddr>>>;

/// Orders addresses as RFC 8305 section 4 says: families alternate, starting with the
/// family of the first address, each family keeping the resolver's order.
fn interleave(addrs: Vec<SocketAddr>) -> VecDeque<SocketAddr> {
    let first_v6 = addrs.first().is_some_and(SocketAddr::is_ipv6);
    let (mut a, mut b): (VecDeque<_>, VecDeque<_>) =
        addrs.into_iter().partition(|s| s.is_ipv6() == first_v6);
    let mut out = VecDeque::with_capacity(a.len() + b.len());
    loop {
        match (a.pop_front(), b.pop_front()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// A host name and port to connect to, trying each address the name resolves to
/// (Twisted's `HostnameEndpoint`).
///
/// [`connect`](Self::connect) resolves the name (an IP address is used as is), orders the
/// addresses IPv6 and IPv4 alternately (RFC 8305), and starts an attempt on the first; every
/// [attempt delay](Self::set_attempt_delay) (0.3 s, as Twisted) without a connection, or at
/// once when an attempt fails, it starts one on the next address. The first to connect wins
/// and the others are cancelled; if all fail, it fails with the last failure.
///
/// ```no_run
/// use torsion::endpoints::HostnameEndpoint;
/// use torsion::{factory, Protocol, Transport};
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: &Transport) { t.write(b"HEAD / HTTP/1.0\r\n\r\n") }
///     fn data_received(&mut self, _t: &Transport, data: &[u8]) { println!("{data:?}") }
/// }
///
/// # async fn demo() -> Result<(), torsion::Failure> {
/// let endpoint = HostnameEndpoint::new(&torsion::reactor(), "example.com", 80);
/// let conn = endpoint.connect(factory(|| Hello)).await?;
/// println!("connected to {}", conn.transport().get_peer());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HostnameEndpoint {
    reactor: Reactor,
    clock: Option<Rc<dyn ReactorTime>>,
    resolver: Option<Resolver>,
    host: String,
    port: u16,
    timeout: f64,
    bind_address: Option<IpAddr>,
    attempt_delay: f64,
}

impl HostnameEndpoint {
    /// An endpoint for `host` (a name or an IP address) and `port`, with Twisted's defaults:
    /// a 30 s time-out per attempt and 0.3 s between attempts.
    pub fn new(reactor: &Reactor, host: &str, port: u16) -> HostnameEndpoint {
        HostnameEndpoint {
            reactor: reactor.clone(),
            clock: None,
            resolver: None,
            host: host.trim_matches(|c| c == '[' || c == ']').to_owned(),
            port,
            timeout: DEFAULT_CONNECT_TIMEOUT,
            bind_address: None,
            attempt_delay: DEFAULT_ATTEMPT_DELAY,
        }
    }

    /// Sets each attempt's time-out in seconds (Twisted's `timeout`).
    pub fn set_timeout(&mut self, seconds: f64) -> &mut Self {
        self.timeout = seconds;
        self
    }

    /// Connects from a local address (Twisted's `bindAddress`); addresses of the other family
    /// are then skipped.
    pub fn set_bind_address(&mut self, address: Option<IpAddr>) -> &mut Self {
        self.bind_address = address;
        self
    }

    /// Sets the seconds between starting attempts (Twisted's `attemptDelay`); negative or
    /// not-a-number values count as 0.
    pub fn set_attempt_delay(&mut self, seconds: f64) -> &mut Self {
        self.attempt_delay = if seconds >= 0.0 { seconds } else { 0.0 };
        self
    }

    /// Times the stagger between attempts with `clock` (such as a
    /// [`testing::Clock`](crate::testing::Clock)) instead of the reactor.
    pub fn set_clock(&mut self, clock: impl ReactorTime + 'static) -> &mut Self {
        self.clock = Some(Rc::new(clock));
        self
    }

    /// Resolves names with `resolver` instead of the reactor's
    /// [name resolver](crate::Reactor::name_resolver) (Twisted's `nameResolver` argument):
    /// given the host and port, a Deferred of the addresses. Also used for IP addresses when
    /// set.
    pub fn set_resolver(
        &mut self,
        resolver: impl Fn(&str, u16) -> Deferred<Vec<SocketAddr>> + 'static,
    ) -> &mut Self {
        self.resolver = Some(Rc::new(resolver));
        self
    }

    /// The host name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connects, building the protocol with `factory` for the connection that wins; fires
    /// with the [connected protocol](ConnectedProtocol). Fails with a [`DnsLookupError`] when
    /// the name does not resolve, else with the last attempt's
    /// failure; cancelling it stops the resolution and every attempt, failing it with
    /// [`CancelledError`].
    pub fn connect<F: Factory>(&self, factory: F) -> Deferred<ConnectedProtocol<F::Protocol>> {
        let race: Rc<Race<F>> = Rc::new(Race {
            endpoint: self.clone(),
            factory: Rc::new(factory),
            winner: RefCell::new(None),
            left: RefCell::default(),
            pending: RefCell::default(),
            next_id: Cell::new(0),
            timer: RefCell::new(None),
            resolving: RefCell::new(None),
            last_failure: RefCell::new(None),
            done: Cell::new(false),
        });
        let weak: Weak<Race<F>> = Rc::downgrade(&race);
        let d = Deferred::with_canceller(move |t| {
            let _ = t.try_errback(CancelledError);
            if let Some(race) = weak.upgrade() {
                race.finish();
            }
        });
        *race.winner.borrow_mut() = Some(d.trigger());
        let resolved: Deferred<Vec<SocketAddr>> =
            match (&self.resolver, self.host.parse::<IpAddr>()) {
                (Some(resolve), _) => resolve(&self.host, self.port),
                (None, Ok(ip)) => {
                    race.start(vec![SocketAddr::new(ip, self.port)]);
                    return d;
                }
                (None, Err(_)) => self
                    .reactor
                    .name_resolver()
                    .resolve_host_name(&self.host, self.port),
            };
        let r = race.clone();
        let resolving = resolved.add_both(move |found| {
            match found {
                Ok(addrs) => r.start(addrs),
                // Cancelled by `finish`: nothing left to do.
                Err(f) if r.done.get() && f.check::<CancelledError>() => {}
                Err(f) => r.fail(f),
            }
            Ok::<(), Failure>(())
        });
        if !race.done.get() {
            *race.resolving.borrow_mut() = Some(resolving);
        }
        d
    }
}

impl fmt::Display for HostnameEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for HostnameEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostnameEndpoint({self})")
    }
}

/// One `connect`: the addresses left, the attempts in progress, the Deferred to fire.
struct Race<F: Factory> {
    endpoint: HostnameEndpoint,
    factory: Rc<F>,
    winner: RefCell<Option<Trigger<ConnectedProtocol<F::Protocol>>>>,
    left: RefCell<VecDeque<SocketAddr>>,
    pending: RefCell<Vec<(u64, Option<Deferred<()>>)>>,
    next_id: Cell<u64>,
    timer: RefCell<Option<DelayedCall>>,
    resolving: RefCell<Option<Deferred<()>>>,
    last_failure: RefCell<Option<Failure>>,
    done: Cell<bool>,
}

impl<F: Factory> Race<F> {
    fn start(self: &Rc<Self>, addrs: Vec<SocketAddr>) {
        self.resolving.borrow_mut().take();
        if addrs.is_empty() {
            return self.fail(Failure::new(DnsLookupError::not_found(&self.endpoint.host)));
        }
        *self.left.borrow_mut() = interleave(addrs);
        self.next();
    }

    /// Starts an attempt on the next address, and schedules the one after.
    fn next(self: &Rc<Self>) {
        if self.done.get() {
            return;
        }
        if let Some(t) = self.timer.borrow_mut().take() {
            let _ = t.cancel();
        }
        let Some(addr) = self.left.borrow_mut().pop_front() else {
            return self.check_done();
        };
        let e = &self.endpoint;
        let endpoint = ClientEndpoint::new(
            &e.reactor,
            ClientDescription::Tcp {
                host: addr.ip().to_string(),
                port: addr.port(),
                timeout: e.timeout,
                bind_address: e.bind_address.map(|b| b.to_string()),
            },
        );
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.pending.borrow_mut().push((id, None));
        let race = self.clone();
        let d = endpoint
            .connect_deferred(self.factory.clone())
            .add_both(move |outcome| {
                race.pending.borrow_mut().retain(|(i, _)| *i != id);
                match outcome {
                    Ok(conn) => race.won(conn),
                    Err(f) => race.attempt_failed(f),
                }
                Ok::<(), Failure>(())
            });
        if let Some(slot) = self.pending.borrow_mut().iter_mut().find(|(i, _)| *i == id) {
            slot.1 = Some(d);
        }
        if !self.done.get() && !self.left.borrow().is_empty() {
            let race = self.clone();
            let clock: Rc<dyn ReactorTime> = match &e.clock {
                Some(c) => c.clone(),
                None => Rc::new(e.reactor.clone()),
            };
            let call = clock.call_later_boxed(e.attempt_delay, Box::new(move || race.next()));
            *self.timer.borrow_mut() = Some(call);
        }
    }

    fn won(self: &Rc<Self>, conn: ConnectedProtocol<F::Protocol>) {
        let winner = self.winner.borrow_mut().take();
        match winner {
            Some(t) if !self.done.get() => {
                self.finish();
                let _ = t.try_callback(conn);
            }
            // Another attempt won (or the connect was cancelled) in the same moment.
            _ => conn.transport().abort_connection(),
        }
    }

    fn attempt_failed(self: &Rc<Self>, f: Failure) {
        if self.done.get() {
            return;
        }
        *self.last_failure.borrow_mut() = Some(f);
        if self.left.borrow().is_empty() {
            self.check_done();
        } else {
            // RFC 8305 section 5: a failed attempt starts the next one at once.
            self.next();
        }
    }

    /// Fails the connect once no address is left and no attempt is in progress.
    fn check_done(self: &Rc<Self>) {
        if self.done.get() || !self.pending.borrow().is_empty() || !self.left.borrow().is_empty() {
            return;
        }
        let f = self.last_failure.borrow_mut().take().unwrap_or_else(|| {
            Failure::new(ConnectError::new(
                self.endpoint.to_string(),
                io::Error::new(io::ErrorKind::NotFound, "no address could be tried"),
            ))
        });
        self.fail(f);
    }

    fn fail(self: &Rc<Self>, f: Failure) {
        let winner = self.winner.borrow_mut().take();
        self.finish();
        if let Some(t) = winner {
            let _ = t.try_errback(f);
        }
    }

    /// Stops everything still going: the timer, the resolution, the other attempts.
    fn finish(&self) {
        self.done.set(true);
        self.left.borrow_mut().clear();
        if let Some(t) = self.timer.borrow_mut().take() {
            let _ = t.cancel();
        }
        let resolving = self.resolving.borrow_mut().take();
        if let Some(r) = resolving {
            r.cancel();
        }
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        for (_, d) in pending {
            if let Some(d) = d {
                d.cancel();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::interleave;
    use std::net::SocketAddr;

    fn addrs(s: &[&str]) -> Vec<SocketAddr> {
        s.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn addresses_alternate_families_starting_with_the_first() {
        let got = interleave(addrs(&[
            "[::1]:1",
            "[::2]:1",
            "[::3]:1",
            "10.0.0.1:1",
            "10.0.0.2:1",
        ]));
        let want = addrs(&["[::1]:1", "10.0.0.1:1", "[::2]:1", "10.0.0.2:1", "[::3]:1"]);
        assert_eq!(Vec::from(got), want);
        let got = interleave(addrs(&["10.0.0.1:1", "10.0.0.2:1", "[::1]:1"]));
        assert_eq!(
            Vec::from(got),
            addrs(&["10.0.0.1:1", "[::1]:1", "10.0.0.2:1"])
        );
        assert!(interleave(Vec::new()).is_empty());
    }
}
