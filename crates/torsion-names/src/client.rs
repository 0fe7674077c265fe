//! The DNS client (Twisted's `twisted.names.client`): [`ClientResolver`] asks name servers
//! over UDP, retrying with timeouts and falling back to TCP for truncated answers;
//! [`create_resolver`] chains it behind `/etc/hosts` and a cache, as Twisted's
//! `createResolver`; [`NameResolver`] lets the reactor use any of them for its own name
//! resolution (`connect_tcp` to a host name, `HostnameEndpoint`).
//!
//! How a query goes:
//!
//! - Each try goes out from a **fresh UDP port** chosen by the system (Linux picks ephemeral
//!   ports at random) with a **fresh random 16-bit id** from a cryptographic generator, as
//!   Twisted's `_connectedProtocol` opens a new random port per query. An off-path attacker
//!   must guess both, and a late answer to an abandoned try finds its port closed.
//! - An answer is taken only when it comes **from the server asked**, carries the **id sent**,
//!   is a response, and asks **the same question** (name, case aside; type; class). Anything
//!   else is dropped with a debug log line and the try goes on waiting (Twisted matches the
//!   id only).
//! - Tries go round the servers in order, one round per timeout: Twisted's default
//!   `(1, 3, 11, 45)` seconds, or resolv.conf's `options timeout:N attempts:N`. After the last
//!   the lookup fails with [`DnsQueryTimeoutError`]. A try that cannot go out (no port of the
//!   server's address family, an IPv6 server on a host without IPv6) moves on to the next at
//!   once; when none could, the lookup fails with the reason.
//! - Queries over UDP carry an **EDNS(0)** OPT record offering a [`DEFAULT_EDNS_PAYLOAD`]
//!   (1232-byte) buffer, so answers up to that size come over UDP (Twisted's client sends no
//!   EDNS: 512 bytes). A server that answers FORMERR or NOTIMP to it is asked again at once
//!   without EDNS (RFC 6891 section 7); [`ClientResolver::set_edns`] changes the size or turns
//!   EDNS off.
//! - An answer with TC set is asked again over TCP, of the server that sent it (10 s timeout).
//! - The response code becomes the failures of [`error`](crate::error): NXDOMAIN
//!   [`DnsNameError`], SERVFAIL [`DnsServerError`], and so on, as Twisted's `_errormap`.
//! - A relative name (no trailing dot: `lookup_address("db")`, or a [`Query`] whose name is
//!   not fully qualified) goes through resolv.conf's **search list** as glibc's `res_search`
//!   does: a name with fewer dots than `options ndots:N` (default 1) is tried with each search
//!   domain appended first and as it is last; one with as many or more is tried as it is
//!   first. NXDOMAIN, SERVFAIL and an empty answer move on to the next; the first answer with
//!   records wins; any other failure (a timeout) ends the search. A trailing dot means
//!   absolute: `lookup_address("db.")` asks `db.` only. See [`ClientResolver::search_names`].
//!
//! Time comes from a [`ReactorTime`] (the reactor by default), so tests drive the timeouts
//! with a [`Clock`](torsion::testing::Clock) while the datagrams are real:
//!
//! ```
//! use std::rc::Rc;
//! use torsion::testing::Clock;
//! use torsion::Reactor;
//! use torsion_names::client::ClientResolver;
//! use torsion_names::error::DnsQueryTimeoutError;
//! use torsion_names::Resolver;
//!
//! let reactor = Reactor::new();
//! // Nobody answers on this port: every try times out.
//! let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
//! let client = ClientResolver::new(&reactor, vec![silent.local_addr().unwrap()]);
//! let clock = Rc::new(Clock::new());
//! client.set_clock(clock.clone());
//! let d = client.lookup_address("example.com");
//! clock.pump(&[1.0, 3.0, 11.0]);
//! assert!(d.result().is_none());
//! clock.advance(45.0);
//! assert!(d.result().unwrap().unwrap_err().check::<DnsQueryTimeoutError>());
//! ```
use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::rc::{Rc, Weak};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as WireQuery, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use torsion::datagram::{DatagramProtocol, DatagramTransport};
use torsion::defer::{fail, succeed, Deferred, Trigger};
use torsion::error::DnsLookupError;
use torsion::reactor::{DelayedCall, HostnameResolver, ReactorTime};
use torsion::tcp::Connector;
use torsion::transport::Address;
use torsion::udp::UdpOptions;
use torsion::{ClientFactory, Factory, Failure, Protocol, Reactor, Transport};

use crate::cache::CacheResolver;
use crate::chain::{search_in_turn, ResolverChain};
use crate::error::{
    DnsFormatError, DnsNameError, DnsNotImplementedError, DnsQueryRefusedError,
    DnsQueryTimeoutError, DnsServerError, DnsUnknownError,
};
use crate::hosts::{HostsResolver, DEFAULT_HOSTS};
use crate::resolv_conf::{ResolvConf, ResolvConfFile, DEFAULT_RESOLV_CONF};
use crate::resolver::{Answer, Query, Resolver};

/// Twisted's default timeouts: one round over the servers for each, in seconds.
pub const DEFAULT_TIMEOUTS: [f64; 4] = [1.0, 3.0, 11.0, 45.0];

/// The timeout of a TCP query (Twisted's `queryTCP` default, 10 seconds).
pub const TCP_TIMEOUT: f64 = 10.0;

/// The UDP buffer size the client offers in its EDNS(0) record by default: 1232 bytes, the
/// DNS flag day 2020 figure, which fits the IPv6 minimum MTU without fragments.
pub const DEFAULT_EDNS_PAYLOAD: u16 = 1232;

/// The largest UDP answer read: the largest UDP payload, so no answer is lost to the buffer.
const MAX_UDP_ANSWER: usize = 65535;

/// The largest TCP answer: its 2-byte length prefix cannot say more.
const MAX_TCP_ANSWER: usize = 65535;

/// Where the servers come from.
enum Servers {
    Fixed(Vec<SocketAddr>),
    File(RefCell<ResolvConfFile>),
}

struct Inner {
    reactor: Reactor,
    clock: RefCell<Rc<dyn ReactorTime>>,
    servers: Servers,
    timeouts: RefCell<Option<Vec<f64>>>,
    tcp_timeout: Cell<f64>,
    /// The search list and ndots set by [`ClientResolver::set_search`], over resolv.conf's.
    search: RefCell<Option<(Vec<Name>, u8)>>,
    /// The EDNS(0) buffer size offered, or `None` for no EDNS.
    edns: Cell<Option<u16>>,
}

/// A DNS client asking name servers over UDP and TCP (Twisted's `client.Resolver`); cheap
/// to clone.
#[derive(Clone)]
pub struct ClientResolver {
    inner: Rc<Inner>,
}

impl ClientResolver {
    /// A client asking `servers`, in order. With no server it asks `127.0.0.1:53`.
    pub fn new(reactor: &Reactor, servers: Vec<SocketAddr>) -> ClientResolver {
        let servers = if servers.is_empty() {
            vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)]
        } else {
            servers
        };
        ClientResolver::with(reactor, Servers::Fixed(servers))
    }

    /// A client asking the servers of the resolv.conf at `path` (Twisted's `resolv=`), read
    /// again when it changes (see [`ResolvConfFile::current`]).
    pub fn from_resolv_conf(reactor: &Reactor, path: impl AsRef<Path>) -> ClientResolver {
        let file = ResolvConfFile::open(path.as_ref(), reactor.seconds());
        ClientResolver::with(reactor, Servers::File(RefCell::new(file)))
    }

    /// A client asking the servers of `/etc/resolv.conf`.
    pub fn system(reactor: &Reactor) -> ClientResolver {
        ClientResolver::from_resolv_conf(reactor, DEFAULT_RESOLV_CONF)
    }

    fn with(reactor: &Reactor, servers: Servers) -> ClientResolver {
        ClientResolver {
            inner: Rc::new(Inner {
                reactor: reactor.clone(),
                clock: RefCell::new(Rc::new(reactor.clone())),
                servers,
                timeouts: RefCell::new(None),
                tcp_timeout: Cell::new(TCP_TIMEOUT),
                search: RefCell::new(None),
                edns: Cell::new(Some(DEFAULT_EDNS_PAYLOAD)),
            }),
        }
    }

    /// Tells time (timeouts, resolv.conf re-reads) by `clock` instead of the reactor; tests
    /// give a [`Clock`](torsion::testing::Clock).
    pub fn set_clock(&self, clock: Rc<dyn ReactorTime>) {
        *self.inner.clock.borrow_mut() = clock;
    }

    /// Sets the timeouts, one round over the servers each (Twisted's `timeout=`). An empty
    /// list means the default.
    pub fn set_timeouts(&self, timeouts: Vec<f64>) {
        let timeouts = timeouts.into_iter().map(|t| t.max(0.0)).collect::<Vec<_>>();
        *self.inner.timeouts.borrow_mut() = (!timeouts.is_empty()).then_some(timeouts);
    }

    /// Sets the UDP buffer size offered in the EDNS(0) record of each UDP query (at least
    /// 512), or with `None` sends no EDNS, as Twisted's client. Default
    /// [`DEFAULT_EDNS_PAYLOAD`].
    pub fn set_edns(&self, payload: Option<u16>) {
        self.inner.edns.set(payload.map(|p| p.max(512)));
    }

    /// Sets the timeout of TCP queries, in seconds (default [`TCP_TIMEOUT`]).
    pub fn set_tcp_timeout(&self, seconds: f64) {
        self.inner.tcp_timeout.set(seconds.max(0.0));
    }

    /// The servers asked now, in order.
    pub fn servers(&self) -> Vec<SocketAddr> {
        match &self.inner.servers {
            Servers::Fixed(servers) => servers.clone(),
            Servers::File(file) => file
                .borrow_mut()
                .current(self.clock().seconds())
                .nameservers
                .clone(),
        }
    }

    /// The timeouts used now: those set, else resolv.conf's options, else
    /// [`DEFAULT_TIMEOUTS`].
    pub fn timeouts(&self) -> Vec<f64> {
        if let Some(set) = &*self.inner.timeouts.borrow() {
            return set.clone();
        }
        if let Servers::File(file) = &self.inner.servers {
            if let Some(t) = file.borrow_mut().current(self.clock().seconds()).timeouts() {
                return t;
            }
        }
        DEFAULT_TIMEOUTS.to_vec()
    }

    /// Sets the search list and `ndots` (resolv.conf's `search` and `options ndots:N`), over
    /// what resolv.conf says. Domains that are not valid names are skipped.
    pub fn set_search(&self, domains: &[&str], ndots: u8) {
        let domains = domains.iter().filter_map(|d| absolute(d)).collect();
        *self.inner.search.borrow_mut() = Some((domains, ndots));
    }

    /// The search list and `ndots` used now: those set, else resolv.conf's, else none and 1.
    fn search(&self) -> (Vec<Name>, u8) {
        if let Some(set) = &*self.inner.search.borrow() {
            return set.clone();
        }
        if let Servers::File(file) = &self.inner.servers {
            let mut file = file.borrow_mut();
            let conf = file.current(self.clock().seconds());
            let domains = conf.search.iter().filter_map(|d| absolute(d)).collect();
            return (domains, conf.ndots);
        }
        (Vec::new(), 1)
    }

    /// The names asked for `name`, in order, as glibc's `res_search` tries them: a fully
    /// qualified name (trailing dot) as it is only; a relative name with at least `ndots`
    /// dots as it is, then with each search domain appended; one with fewer dots with each
    /// search domain appended, then as it is.
    ///
    /// ```
    /// use torsion::Reactor;
    /// use torsion_names::client::ClientResolver;
    /// use torsion_names::Name;
    ///
    /// let client = ClientResolver::new(&Reactor::new(), vec![]);
    /// client.set_search(&["lab.example.com", "example.com"], 1);
    /// let names = |n: &str| -> Vec<String> {
    ///     client.search_names(&Name::from_utf8(n).unwrap()).iter().map(|n| n.to_string()).collect()
    /// };
    /// assert_eq!(names("db"), ["db.lab.example.com.", "db.example.com.", "db."]);
    /// assert_eq!(names("db.eu"), ["db.eu.", "db.eu.lab.example.com.", "db.eu.example.com."]);
    /// assert_eq!(names("db."), ["db."]);
    /// ```
    pub fn search_names(&self, name: &Name) -> Vec<Name> {
        let mut as_is = name.clone();
        as_is.set_fqdn(true);
        if name.is_fqdn() {
            return vec![as_is];
        }
        let (domains, ndots) = self.search();
        let dots = usize::from(name.num_labels()).saturating_sub(1);
        let mut names = Vec::with_capacity(domains.len() + 1);
        if dots >= usize::from(ndots) {
            names.push(as_is.clone());
        }
        names.extend(
            domains
                .iter()
                .filter_map(|d| name.clone().append_domain(d).ok()),
        );
        if dots < usize::from(ndots) {
            names.push(as_is);
        }
        names
    }

    /// Asks `query` for each of `names` in turn (see [`search_names`](Self::search_names)).
    fn search_in_turn(&self, query: Query, names: Vec<Name>) -> Deferred<Answer> {
        let client = self.clone();
        search_in_turn(Rc::new(move |q: &Query| client.query_udp(q)), query, names)
    }

    fn clock(&self) -> Rc<dyn ReactorTime> {
        self.inner.clock.borrow().clone()
    }

    /// Asks `query` over UDP, round the servers with the timeouts (Twisted's `queryUDP`);
    /// a truncated answer is asked again over TCP.
    pub fn query_udp(&self, query: &Query) -> Deferred<Answer> {
        let lookup = Rc::new(Lookup {
            client: self.clone(),
            query: query.clone(),
            servers: self.servers(),
            timeouts: self.timeouts(),
            trigger: RefCell::new(None),
            attempt: RefCell::new(None),
            tries: Cell::new(0),
            sent: Cell::new(false),
            edns: Cell::new(self.inner.edns.get()),
        });
        let weak = Rc::downgrade(&lookup);
        let d = Deferred::with_canceller(move |_trigger| {
            if let Some(lookup) = weak.upgrade() {
                lookup.stop_attempt();
            }
        });
        *lookup.trigger.borrow_mut() = Some(d.trigger());
        Lookup::send_next(&lookup);
        d
    }

    /// Asks `query` of `server` over TCP (Twisted's `queryTCP`), failing with
    /// [`DnsQueryTimeoutError`] after the TCP timeout.
    pub fn query_tcp(&self, query: &Query, server: SocketAddr) -> Deferred<Answer> {
        let id = rand::random::<u16>();
        let bytes = match encode(id, query, None) {
            Ok(bytes) => bytes,
            Err(failure) => return fail(failure),
        };
        let d = Deferred::new();
        let shared = Rc::new(TcpQuery {
            query: query.clone(),
            id,
            framed: [&(bytes.len() as u16).to_be_bytes()[..], &bytes].concat(),
            trigger: RefCell::new(Some(d.trigger())),
            timer: RefCell::new(None),
            connector: RefCell::new(None),
        });
        let connector = self.inner.reactor.connect_tcp_timeout(
            &server.ip().to_string(),
            server.port(),
            TcpFactory(shared.clone()),
            self.inner.tcp_timeout.get(),
        );
        *shared.connector.borrow_mut() = Some(connector);
        let on_timeout = shared.clone();
        let timer = self.clock().call_later_boxed(
            self.inner.tcp_timeout.get(),
            Box::new(move || {
                if let Some(connector) = on_timeout.connector.borrow_mut().take() {
                    connector.stop_connecting();
                    connector.disconnect();
                }
                on_timeout.finish(Err(Failure::new(DnsQueryTimeoutError(
                    on_timeout.query.clone(),
                ))));
            }),
        );
        *shared.timer.borrow_mut() = Some(timer);
        d
    }
}

impl Resolver for ClientResolver {
    /// Asks `query` over UDP (TCP when truncated); a name that is not fully qualified goes
    /// through the search list (see [`search_names`](ClientResolver::search_names)).
    fn query(&self, query: &Query) -> Deferred<Answer> {
        if query.name.is_fqdn() {
            return self.query_udp(query);
        }
        let names = self.search_names(&query.name);
        self.search_in_turn(query.clone(), names)
    }

    /// Looks up `name` as given: without a trailing dot it is relative, and goes through the
    /// search list (the trait's default makes every name absolute).
    fn lookup_record(&self, name: &str, record_type: RecordType) -> Deferred<Answer> {
        match Name::from_utf8(name) {
            Ok(parsed) => self.query(&Query::new(parsed, record_type)),
            Err(error) => fail(error),
        }
    }
}

/// A domain of the search list as an absolute name.
fn absolute(domain: &str) -> Option<Name> {
    let mut name = Name::from_utf8(domain).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// The query's message: a fresh id, recursion desired, and an EDNS(0) record offering
/// `edns` bytes when given.
fn encode(id: u16, query: &Query, edns: Option<u16>) -> Result<Vec<u8>, Failure> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    if let Some(payload) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(payload);
        opt.set_version(0);
        message.set_edns(opt);
    }
    let mut question = WireQuery::query(query.name.clone(), query.record_type);
    question.set_query_class(query.class);
    message.add_query(question);
    message.to_vec().map_err(Failure::new)
}

/// Why an answer is not the one awaited, or `None` when it is.
fn mismatch(message: &Message, id: u16, query: &Query) -> Option<&'static str> {
    if message.metadata.id != id {
        return Some("another query id");
    }
    if message.metadata.message_type != MessageType::Response {
        return Some("not a response");
    }
    match message.queries.as_slice() {
        [q] if q.name().eq_ignore_root(&query.name)
            && q.query_type() == query.record_type
            && q.query_class() == query.class =>
        {
            None
        }
        _ => Some("another question"),
    }
}

/// The answer, or the failure its response code means (Twisted's `filterAnswers` and
/// `_errormap`).
fn answer_of(message: Message, query: &Query) -> Result<Answer, Failure> {
    let q = query.clone();
    match message.metadata.response_code {
        ResponseCode::NoError => Ok(Answer {
            answers: message.answers,
            authority: message.authorities,
            additional: message.additionals,
        }),
        ResponseCode::FormErr => Err(Failure::new(DnsFormatError(q))),
        ResponseCode::ServFail => Err(Failure::new(DnsServerError(q))),
        ResponseCode::NXDomain => Err(Failure::new(DnsNameError(q))),
        ResponseCode::NotImp => Err(Failure::new(DnsNotImplementedError(q))),
        ResponseCode::Refused => Err(Failure::new(DnsQueryRefusedError(q))),
        _ => Err(Failure::new(DnsUnknownError(q))),
    }
}

/// One UDP lookup: its tries, and the Deferred to fire.
struct Lookup {
    client: ClientResolver,
    query: Query,
    servers: Vec<SocketAddr>,
    timeouts: Vec<f64>,
    trigger: RefCell<Option<Trigger<Answer>>>,
    attempt: RefCell<Option<Attempt>>,
    tries: Cell<usize>,
    /// Whether any try went out (a port could be opened for it).
    sent: Cell<bool>,
    /// The EDNS buffer size offered, until a server shows it does not speak EDNS.
    edns: Cell<Option<u16>>,
}

/// The try in flight: its port and its timer.
struct Attempt {
    port: DatagramTransport,
    timer: DelayedCall,
}

impl Lookup {
    /// Closes the try in flight, if any.
    fn stop_attempt(&self) {
        if let Some(attempt) = self.attempt.borrow_mut().take() {
            let _ = attempt.timer.cancel();
            attempt.port.stop_listening();
        }
    }

    fn finish(&self, outcome: Result<Answer, Failure>) {
        self.stop_attempt();
        if let Some(trigger) = self.trigger.borrow_mut().take() {
            let _ = trigger.fire(outcome);
        }
    }

    /// Sends the next try, or fails the lookup when the timeouts are spent.
    fn send_next(this: &Rc<Lookup>) {
        this.stop_attempt();
        let tries = this.tries.get();
        let round = tries / this.servers.len().max(1);
        let (Some(&timeout), Some(&server)) = (
            this.timeouts.get(round),
            this.servers.get(tries % this.servers.len().max(1)),
        ) else {
            return this.finish(Err(Failure::new(DnsQueryTimeoutError(this.query.clone()))));
        };
        this.tries.set(tries + 1);
        let id = rand::random::<u16>();
        let bytes = match encode(id, &this.query, this.edns.get()) {
            Ok(bytes) => bytes,
            Err(failure) => return this.finish(Err(failure)),
        };
        let interface = match server.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let options = UdpOptions {
            interface,
            max_packet_size: MAX_UDP_ANSWER,
            ..UdpOptions::default()
        };
        let protocol = AnswerListener {
            lookup: Rc::downgrade(this),
            id,
            server,
        };
        let port = match this
            .client
            .inner
            .reactor
            .listen_udp_with(0, protocol, options)
        {
            Ok(port) => port,
            Err(failure) => {
                // No port for this server's family (an IPv6 server on a host without IPv6):
                // on to the next server at once; the lookup fails with this failure only if
                // no try could be sent at all.
                tracing::debug!(%server, error = %failure.error_message(), "DNS query not sent");
                let total = this.servers.len() * this.timeouts.len();
                if this.tries.get() >= total && !this.sent.get() {
                    return this.finish(Err(failure));
                }
                return Lookup::send_next(this);
            }
        };
        this.sent.set(true);
        if let Err(e) = port.write(&bytes, &Address::Udp(server)) {
            // The next try (or the timeout) follows; a server that cannot be reached is one
            // that does not answer.
            tracing::debug!(%server, error = %e, "DNS query not sent");
        }
        let next = this.clone();
        let timer = this
            .client
            .clock()
            .call_later_boxed(timeout, Box::new(move || Lookup::send_next(&next)));
        *this.attempt.borrow_mut() = Some(Attempt { port, timer });
    }

    fn answered(this: &Rc<Lookup>, message: Message, server: SocketAddr) {
        this.stop_attempt();
        let code = message.metadata.response_code;
        if this.edns.get().is_some() && matches!(code, ResponseCode::FormErr | ResponseCode::NotImp)
        {
            // A server from before EDNS (RFC 6891 section 7): the same server again, at once,
            // without it, for the rest of this lookup.
            tracing::debug!(%server, ?code, "DNS server refused EDNS; asking again without it");
            this.edns.set(None);
            this.tries.set(this.tries.get().saturating_sub(1));
            return Lookup::send_next(this);
        }
        if message.metadata.truncation {
            let lookup = this.clone();
            this.client
                .query_tcp(&this.query, server)
                .add_both(move |outcome| {
                    lookup.finish(outcome);
                    Ok::<(), Failure>(())
                });
        } else {
            this.finish(answer_of(message, &this.query));
        }
    }
}

/// The UDP port of one try: takes the one answer that matches.
struct AnswerListener {
    lookup: Weak<Lookup>,
    id: u16,
    server: SocketAddr,
}

impl DatagramProtocol for AnswerListener {
    fn datagram_received(&mut self, _: &DatagramTransport, data: &[u8], addr: &Address) {
        let Some(lookup) = self.lookup.upgrade() else {
            return;
        };
        if *addr != Address::Udp(self.server) {
            tracing::debug!(from = %addr, expected = %self.server, "DNS answer dropped: from an address not asked");
            return;
        }
        let message = match Message::from_vec(data) {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(from = %addr, error = %e, "DNS answer dropped: malformed");
                return;
            }
        };
        if let Some(why) = mismatch(&message, self.id, &lookup.query) {
            tracing::debug!(from = %addr, why, "DNS answer dropped: does not match the query");
            return;
        }
        Lookup::answered(&lookup, message, self.server);
    }
}

/// One TCP query: what to send, what to expect, the Deferred to fire.
struct TcpQuery {
    query: Query,
    id: u16,
    framed: Vec<u8>,
    trigger: RefCell<Option<Trigger<Answer>>>,
    timer: RefCell<Option<DelayedCall>>,
    connector: RefCell<Option<Connector>>,
}

impl TcpQuery {
    fn finish(&self, outcome: Result<Answer, Failure>) {
        if let Some(timer) = self.timer.borrow_mut().take() {
            let _ = timer.cancel();
        }
        self.connector.borrow_mut().take();
        if let Some(trigger) = self.trigger.borrow_mut().take() {
            let _ = trigger.fire(outcome);
        }
    }
}

/// The factory of a TCP query's one connection.
struct TcpFactory(Rc<TcpQuery>);

impl Factory for TcpFactory {
    type Protocol = TcpAnswer;

    fn build_protocol(&self, _addr: &Address) -> Option<TcpAnswer> {
        Some(TcpAnswer {
            query: self.0.clone(),
            buffer: Vec::new(),
        })
    }
}

impl ClientFactory for TcpFactory {
    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        self.0.finish(Err(reason));
    }
}

/// The TCP connection of one query: sends it framed, reads one framed answer.
struct TcpAnswer {
    query: Rc<TcpQuery>,
    buffer: Vec<u8>,
}

impl Protocol for TcpAnswer {
    fn connection_made(&mut self, transport: &Transport) {
        transport.write(&self.query.framed);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        self.buffer.extend_from_slice(data);
        while self.buffer.len() >= 2 {
            let length = usize::from(u16::from_be_bytes([self.buffer[0], self.buffer[1]]));
            if self.buffer.len() < 2 + length.min(MAX_TCP_ANSWER) {
                return;
            }
            let frame: Vec<u8> = self.buffer.drain(..2 + length).skip(2).collect();
            match Message::from_vec(&frame) {
                Ok(message) => match mismatch(&message, self.query.id, &self.query.query) {
                    None => {
                        transport.lose_connection();
                        return self.query.finish(answer_of(message, &self.query.query));
                    }
                    Some(why) => {
                        tracing::debug!(
                            why,
                            "DNS answer over TCP dropped: does not match the query"
                        )
                    }
                },
                Err(e) => tracing::debug!(error = %e, "DNS answer over TCP dropped: malformed"),
            }
        }
    }

    fn connection_lost(&mut self, reason: torsion::ConnectionEnd) {
        // Before the answer, even a clean close is a failure of the query (a no-op after).
        self.query.finish(Err(reason.into()));
    }
}

/// Twisted's `createResolver`: the hosts file, then a cache, then a [`ClientResolver`]
/// asking `servers` (or resolv.conf's, when `None`), chained. Answers from the servers are
/// kept in the cache (Twisted's chain puts a cache in the same place, which nothing fills:
/// docs/design.md, "The DNS cache is bounded and fills itself").
///
/// A name without a trailing dot is relative: unless the hosts file has it as given, it is
/// asked as each name of the client's search list in turn
/// ([`ClientResolver::search_names`], resolv.conf's `search` and `ndots`), each through the
/// whole chain ([`ResolverChain::with_search`]).
///
/// `resolv_conf` and `hosts` default to `/etc/resolv.conf` and `/etc/hosts`. When both
/// `servers` and `resolv_conf` are given, `servers` are asked and the file gives the search
/// list and `ndots` (read once, here).
pub fn create_resolver(
    reactor: &Reactor,
    servers: Option<Vec<SocketAddr>>,
    resolv_conf: Option<&Path>,
    hosts: Option<&Path>,
) -> ResolverChain {
    let hosts = HostsResolver::new(hosts.unwrap_or(Path::new(DEFAULT_HOSTS)));
    let cache = CacheResolver::new(Rc::new(reactor.clone()));
    let client = match servers {
        Some(servers) => {
            let client = ClientResolver::new(reactor, servers);
            // Servers given and a resolv.conf too: that file's search list (read now).
            if let Some(text) = resolv_conf.and_then(|path| std::fs::read_to_string(path).ok()) {
                let conf = ResolvConf::parse(&text);
                let domains: Vec<&str> = conf.search.iter().map(String::as_str).collect();
                client.set_search(&domains, conf.ndots);
            }
            client
        }
        None => ClientResolver::from_resolv_conf(
            reactor,
            resolv_conf.unwrap_or(Path::new(DEFAULT_RESOLV_CONF)),
        ),
    };
    // A relative name goes through the client's search list, each name tried through the
    // whole chain; one the hosts file has as given is asked as it is only, as glibc's
    // "files" source answers it before "dns" searches.
    let searcher = client.clone();
    let known = hosts.clone();
    let search = move |name: &Name| {
        if known.table().addresses(&name.to_string()).is_empty() {
            searcher.search_names(name)
        } else {
            let mut as_is = name.clone();
            as_is.set_fqdn(true);
            vec![as_is]
        }
    };
    let filling = cache.filling(client);
    ResolverChain::new(vec![Box::new(hosts), Box::new(cache), Box::new(filling)])
        .with_search(search)
}

/// Any DNS [`Resolver`] as the reactor's name resolver (Twisted's
/// `installResolver`/`_SimpleResolverComplexifier`): install it with
/// `reactor.install_name_resolver(NameResolver::new(resolver))` and every connection to a
/// host name asks it, never `getaddrinfo`.
///
/// A name is asked for AAAA and A at once; the addresses come IPv6 first, then IPv4, as
/// `getaddrinfo` orders them for a host with both (a `HostnameEndpoint` races them, happy
/// eyeballs). An IP address is answered as it is.
///
/// ```
/// use std::net::Ipv4Addr;
/// use torsion::defer::{fail, succeed};
/// use torsion::Reactor;
/// use torsion_names::client::NameResolver;
/// use torsion_names::error::DomainError;
/// use torsion_names::proto::rr::rdata::A;
/// use torsion_names::{Answer, Query, RData, Record, RecordType};
///
/// let table = |q: &Query| match q.record_type {
///     RecordType::A => succeed(Answer {
///         answers: vec![Record::from_rdata(q.name.clone(), 60, RData::A(A(Ipv4Addr::new(10, 1, 2, 3))))],
///         ..Answer::default()
///     }),
///     _ => fail(DomainError(q.clone())),
/// };
/// let reactor = Reactor::new();
/// reactor.install_name_resolver(NameResolver::new(table));
/// assert_eq!(reactor.resolve("db.internal").result().unwrap().unwrap().to_string(), "10.1.2.3");
/// ```
#[derive(Clone)]
pub struct NameResolver<R> {
    resolver: Rc<R>,
}

impl<R: Resolver + 'static> NameResolver<R> {
    /// The reactor's name resolver asking `resolver`.
    pub fn new(resolver: R) -> NameResolver<R> {
        NameResolver {
            resolver: Rc::new(resolver),
        }
    }
}

/// The addresses in an answer (any owner name: the CNAMEs that lead to them come with them).
fn addresses(answer: &Answer) -> Vec<IpAddr> {
    answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

impl<R: Resolver + 'static> HostnameResolver for NameResolver<R> {
    fn resolve_host_name(&self, host: &str, port: u16) -> Deferred<Vec<SocketAddr>> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return succeed(vec![SocketAddr::new(ip, port)]);
        }
        let v6 = self.resolver.lookup_ipv6_address(host);
        let v4 = self.resolver.lookup_address(host);
        let name = host.to_owned();
        v6.add_both_deferred(move |six| {
            v4.add_both(move |four| {
                let mut found = Vec::new();
                let mut failures = Vec::new();
                for outcome in [six, four] {
                    match outcome {
                        Ok(answer) => found.extend(addresses(&answer)),
                        Err(failure) => failures.push(failure.error_message()),
                    }
                }
                found.dedup();
                if found.is_empty() {
                    tracing::debug!(host = %name, ?failures, "no address");
                    Err(Failure::new(DnsLookupError::not_found(&name)))
                } else {
                    Ok(found
                        .into_iter()
                        .map(|ip| SocketAddr::new(ip, port))
                        .collect())
                }
            })
        })
    }
}
