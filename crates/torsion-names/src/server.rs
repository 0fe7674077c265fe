//! A DNS server (Twisted's `twisted.names.server`): [`DnsServer`], an I/O-free core that turns
//! the bytes of a query into the bytes of its answers, and the protocols that carry it —
//! [`DnsDatagramProtocol`] over UDP and [`DnsServerFactory`] over TCP, as Twisted names them.
//!
//! The core asks a [`Resolver`] (an authority, a chain, any source of answers) and waits for
//! its Deferred, however late it fires. Its rules:
//!
//! - Bytes without even a readable header, and messages that are responses, are dropped (a
//!   debug log line each, and the `dropped` counter); a query with a readable header that
//!   does not decode is answered FORMERR.
//! - A name no resolver knows ([`DomainError`]) is answered REFUSED: this server is not an
//!   open resolver for names it does not serve. [`AuthoritativeDomainError`] is NXDOMAIN with
//!   the zone's SOA in the authority section.
//! - Size: an answer over UDP is at most 512 bytes, or with EDNS(0) the buffer size the query
//!   gives, never more than [`ServerConfig::udp_ceiling`] (1232 by default, the size that
//!   crosses the Internet without IP fragments, DNS flag day 2020) and never less than 512.
//!   What does not fit loses its additional section first (RFC 2181 9), then every record,
//!   and has the TC flag set, so the client asks again over TCP. An answer is thus never
//!   larger than the query allows: no amplification beyond it.
//! - AXFR: over TCP, for a zone this server was given with [`DnsServer::with_zones`], the
//!   whole zone in as many messages as it takes; over UDP, and for other names, REFUSED.
//! - IXFR (RFC 1995), from a server that keeps no history: the whole zone as AXFR sends it
//!   over TCP to a client whose serial is older, the current SOA alone to one up to date and
//!   over UDP (which tells an older client to ask over TCP).
//! - EDNS versions above 0 are answered BADVERS (RFC 6891).
//! - Counters (queries, answers per response code, dropped, truncated, transfers) are kept in
//!   [`Counters`] and logged by [`DnsServer::log_counters`].
//! - The zones given with [`DnsServer::with_zones`] answer the names in them themselves (as a
//!   chain with the zones first would), and their answers to plain UDP queries are kept,
//!   encoded, by the query's bytes after the id: a repeat is answered by copying them and
//!   patching the id, without decoding anything ([`DnsServer::answer_kept`]; NSD precompiles
//!   its answers for the same reason). Answers from the resolver (a cache, upstream servers)
//!   are never kept; replacing the zones ([`DnsServer::set_zones`]) forgets them all, and so
//!   does going over [`ServerConfig::answer_cache_bytes`].
//!
//! ```
//! use std::rc::Rc;
//! use torsion::transport::Address;
//! use torsion_names::authority::FileAuthority;
//! use torsion_names::proto::op::{Message, ResponseCode};
//! use torsion_names::proto::rr::RecordType;
//! use torsion_names::server::{DnsServer, ServerConfig, Transport};
//! use torsion_names::Name;
//!
//! let zone = FileAuthority::parse(
//!     "$ORIGIN example.com.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\nwww A 192.0.2.80\n",
//!     None,
//!     "example.com",
//! )
//! .unwrap();
//! let zone = Rc::new(zone);
//! let server = Rc::new(DnsServer::new(zone.clone(), ServerConfig::default()).with_zones(vec![zone]));
//!
//! let mut query = Message::query();
//! query.add_query(torsion_names::proto::op::Query::query(
//!     Name::from_ascii("www.example.com.").unwrap(),
//!     RecordType::A,
//! ));
//! let peer = Address::Udp("192.0.2.9:5353".parse().unwrap());
//! let replies = server
//!     .handle(&query.to_vec().unwrap(), Transport::Udp, &peer)
//!     .expect("a query is answered")
//!     .result()
//!     .unwrap()
//!     .unwrap();
//! let answer = Message::from_vec(&replies[0]).unwrap();
//! assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
//! assert!(answer.metadata.authoritative);
//! assert_eq!(answer.answers.len(), 1);
//! ```
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::rc::Rc;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use torsion::datagram::{DatagramProtocol, DatagramTransport};
use torsion::defer::{succeed, Deferred};
use torsion::protocol::Factory;
use torsion::protocols::policies::IdleTimeout;
use torsion::reactor::{ReactorTime, SharedClock};
use torsion::transport::Address;
use torsion::transport::WritePolicy;
use torsion::{ConnectionEnd, Failure, Protocol, Transport as StreamTransport};

use crate::authority::FileAuthority;
use crate::error::{AuthoritativeDomainError, DnsNameError, DomainError};
use crate::{Answer, Query, Resolver};

/// The largest answer over UDP to a query without EDNS (RFC 1035 4.2.1).
pub const PLAIN_UDP_LIMIT: usize = 512;

/// The default [`ServerConfig::udp_ceiling`]: 1232 bytes, DNS flag day 2020's size that
/// fits a 1280-byte IPv6 packet, so answers are never fragmented.
pub const DEFAULT_UDP_CEILING: u16 = 1232;

/// The largest DNS message over TCP (its length is two bytes).
const TCP_LIMIT: usize = 65_535;

/// Queries of one TCP connection waiting for their answers: past this, the connection is not
/// read until some are answered (RFC 7766 pipelining, bounded).
pub const TCP_PIPELINE: usize = 128;

/// The most bytes of answers a TCP connection may leave unread before it is closed: a
/// client that sends queries and never reads cannot make the server hold its answers for
/// ever. Above any zone transfer this server is expected to make.
pub const TCP_WRITE_LIMIT: usize = 64 << 20;

/// The default [`ServerConfig::answer_cache_bytes`]: 1 MiB, some 8,000 answers of a
/// typical size (a key of ~30 bytes and an answer of ~60), or at least 600 of the largest
/// (1232-byte answers under the default ceiling).
pub const DEFAULT_ANSWER_CACHE_BYTES: usize = 1 << 20;

/// What one kept answer counts for beyond its key's and its answer's bytes: the map's slot,
/// the two boxes' headers and the allocator's rounding, roughly.
pub const KEPT_ENTRY_OVERHEAD: usize = 64;

/// Which transport a query came over: it decides the size limit and whether AXFR is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A datagram: answers limited to 512 bytes, or the EDNS size up to the ceiling.
    Udp,
    /// A stream: answers up to 65535 bytes, and zone transfers.
    Tcp,
}

/// A server's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerConfig {
    /// The most a UDP answer may be, whatever buffer size a query's EDNS gives (default
    /// [`DEFAULT_UDP_CEILING`]; at least 512). It is also the size this server's EDNS
    /// record advertises.
    pub udp_ceiling: u16,
    /// Whether the resolver recurses (Twisted's `--recursive`): sets RA in answers.
    pub recursive: bool,
    /// How long a TCP connection may stay idle before it is closed (default 10 seconds;
    /// `None`: for ever).
    pub tcp_idle_timeout: Option<f64>,
    /// The most queries waiting for their resolver at once; more are dropped (and counted),
    /// so a resolver that never answers cannot make the server's memory grow. Default 4096.
    pub max_in_flight: usize,
    /// The most bytes of kept answers (see [`DnsServer::answer_kept`]): the encoded answers
    /// of the server's zones to plain UDP queries, with their keys, counted at their length
    /// plus [`KEPT_ENTRY_OVERHEAD`] each. When one more would not fit, every kept answer is
    /// forgotten and keeping starts again. Default [`DEFAULT_ANSWER_CACHE_BYTES`]; 0 keeps
    /// none.
    pub answer_cache_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            udp_ceiling: DEFAULT_UDP_CEILING,
            recursive: false,
            tcp_idle_timeout: Some(10.0),
            max_in_flight: 4096,
            answer_cache_bytes: DEFAULT_ANSWER_CACHE_BYTES,
        }
    }
}

/// What a server has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages received.
    pub queries: u64,
    /// Answers sent, by response code (`NoError`, `NXDomain`, `Refused`, ...).
    pub answers: BTreeMap<String, u64>,
    /// Messages dropped unanswered: unreadable, responses, or too many in flight.
    pub dropped: u64,
    /// UDP answers cut short with TC set.
    pub truncated: u64,
    /// Zone transfers (AXFR) served.
    pub transfers: u64,
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} queries, answers:", self.queries)?;
        if self.answers.is_empty() {
            write!(f, " none")?;
        }
        for (code, n) in &self.answers {
            write!(f, " {code}={n}")?;
        }
        write!(
            f,
            ", {} dropped, {} truncated, {} transfers",
            self.dropped, self.truncated, self.transfers
        )
    }
}

/// The server's core (Twisted's `DNSServerFactory.handleQuery` and its helpers, without
/// I/O): bytes in, the bytes of the answers out. See the [module](self) for the rules.
pub struct DnsServer {
    resolver: Rc<dyn Resolver>,
    zones: RefCell<Vec<Rc<FileAuthority>>>,
    config: ServerConfig,
    counters: RefCell<Counters>,
    /// Answers by response code (a number, so counting allocates nothing).
    rcodes: RefCell<BTreeMap<u16, u64>>,
    in_flight: Cell<usize>,
    kept: RefCell<Kept>,
}

/// The longest plain query (see [`plain_key`]): a header, a name of 255 bytes, type and
/// class, and an OPT record without options. Longer messages are not looked up.
const PLAIN_QUERY_MAX: usize = 12 + 255 + 4 + 11;

/// How many answers the front of the kept answers holds (a power of two; see [`Kept`]).
const FRONT_SLOTS: usize = 256;

/// The answers of the zones to plain UDP queries, by the query's bytes after its id.
///
/// Two levels. `answers` holds them all, in a map keyed with SipHash and a random key, so
/// that the names a client picks cannot be made to collide. In front of it, `front` holds
/// up to [`FRONT_SLOTS`] of them, direct-mapped: a key's slot is picked by foldhash (a
/// fraction of SipHash's cost on a query-sized key), each slot holds one answer, and a hit is
/// one key compare. A slot never holds more than one answer, so keys that share a slot (by
/// chance, or chosen by a client who learnt the seed, which foldhash does not claim to keep
/// from an interactive attacker) cost one compare and a look-up in `answers`, never a chain:
/// the front is safe from hash flooding by construction, whatever its hash. Its seed is
/// drawn afresh with every flush.
struct Kept {
    answers: HashMap<Rc<[u8]>, Rc<KeptAnswer>>,
    front: Box<[Option<Rc<KeptAnswer>>]>,
    front_seed: foldhash::fast::RandomState,
    /// What `answers` counts for against [`ServerConfig::answer_cache_bytes`].
    bytes: usize,
    hits: u64,
    /// Of the hits, the truncated answers, and the answers by response code (the four bits
    /// of the header's; `counters` adds them to the others).
    truncated: u64,
    codes: [u64; 16],
    flushes: u64,
}

impl Default for Kept {
    fn default() -> Self {
        Kept {
            answers: HashMap::new(),
            front: vec![None; FRONT_SLOTS].into_boxed_slice(),
            front_seed: foldhash::fast::RandomState::default(),
            bytes: 0,
            hits: 0,
            truncated: 0,
            codes: [0; 16],
            flushes: 0,
        }
    }
}

impl Kept {
    /// Forgets every answer (the counts of hits and flushes stay), and draws a new seed for
    /// the front.
    fn forget(&mut self) {
        self.answers = HashMap::new();
        self.front.fill(None);
        self.front_seed = foldhash::fast::RandomState::default();
        self.bytes = 0;
    }

    /// The slot of `key` in the front.
    fn slot(&self, key: &[u8]) -> usize {
        self.front_seed.hash_one(key) as usize & (FRONT_SLOTS - 1)
    }

    /// The answer kept for `key`, from the front or else from the map (and then put in
    /// front, in place of whichever answer had the slot).
    fn get(&mut self, key: &[u8]) -> Option<&KeptAnswer> {
        let slot = self.slot(key);
        if !matches!(&self.front[slot], Some(a) if *a.key == *key) {
            self.front[slot] = Some(Rc::clone(self.answers.get(key)?));
        }
        self.front[slot].as_deref()
    }
}

/// One kept answer: its key (shared with the map), its bytes (the id is patched per
/// query), and what it counts as.
struct KeptAnswer {
    key: Rc<[u8]>,
    bytes: Box<[u8]>,
    code: u16,
    truncated: bool,
}

/// What a server keeps of its zones' answers ([`DnsServer::kept_answers`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeptAnswers {
    /// Answers kept now.
    pub entries: usize,
    /// What they count for against [`ServerConfig::answer_cache_bytes`]: their keys' and
    /// answers' bytes, plus [`KEPT_ENTRY_OVERHEAD`] each.
    pub bytes: usize,
    /// Queries answered from them since the server started.
    pub hits: u64,
    /// How many times they were all forgotten because one more would not fit.
    pub flushes: u64,
}

/// The key of a "plain" query, its bytes after the two-byte id, read without decoding the
/// message: a query (QR clear) of opcode QUERY, one question of class IN whose name has no
/// compression pointer and whose type is not a zone transfer, no answer or authority
/// records, and at most one additional record, an OPT at the root without options (EDNS
/// options such as cookies differ per client, and would only fill the cache). Nothing may
/// follow. Anything else is `None`, and goes the whole way.
///
/// The key is every byte the server reads but the id: the question as sent (its case, so
/// 0x20 randomisation gets its own case back), RD and CD, and the OPT record's buffer size,
/// version and flags, which decide the answer's size, TC and EDNS.
fn plain_key(query: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]))
    };
    if query.len() > PLAIN_QUERY_MAX || query.len() < 17 || query[2] & 0xF8 != 0 {
        return None;
    }
    let (questions, answers, authority, additional) = (word(4)?, word(6)?, word(8)?, word(10)?);
    if questions != 1 || answers != 0 || authority != 0 || additional > 1 {
        return None;
    }
    let mut at = 12;
    let mut name_len = 0;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        name_len += len + 1;
        if len > 63 || name_len > 255 {
            return None;
        }
        at += len;
    }
    let (qtype, qclass) = (word(at)?, word(at + 2)?);
    at += 4;
    // IXFR and AXFR.
    if qclass != 1 || qtype == 251 || qtype == 252 {
        return None;
    }
    if additional == 1 {
        // The root name, type OPT (41), buffer size, extended code, version, flags and an
        // empty RDATA.
        if *query.get(at)? != 0 || word(at + 1)? != 41 || word(at + 9)? != 0 {
            return None;
        }
        at += 11;
    }
    (at == query.len()).then(|| &query[2..])
}

impl fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsServer")
            .field(
                "zones",
                &self
                    .zones
                    .borrow()
                    .iter()
                    .map(|z| z.origin().to_string())
                    .collect::<Vec<_>>(),
            )
            .field("config", &self.config)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// A server answering from `resolver`.
    pub fn new(resolver: Rc<dyn Resolver>, config: ServerConfig) -> DnsServer {
        DnsServer {
            resolver,
            zones: RefCell::new(Vec::new()),
            config,
            counters: RefCell::new(Counters::default()),
            rcodes: RefCell::new(BTreeMap::new()),
            in_flight: Cell::new(0),
            kept: RefCell::new(Kept::default()),
        }
    }

    /// The zones this server is the authority for: answers for names in them are flagged
    /// authoritative (AA), and they can be transferred with AXFR over TCP.
    ///
    /// A query of class IN or ANY for a name in one of them is answered by that zone (the
    /// first given that holds the name) without asking the resolver — as a chain with the
    /// zones first, Twisted's order, would answer it — and over UDP its answer is kept (see
    /// [`answer_kept`](Self::answer_kept)): a zone's answers change only when the zone does.
    #[must_use]
    pub fn with_zones(self, zones: Vec<Rc<FileAuthority>>) -> DnsServer {
        self.set_zones(zones);
        self
    }

    /// Replaces the zones (a reload), forgetting every kept answer.
    pub fn set_zones(&self, zones: Vec<Rc<FileAuthority>>) {
        *self.zones.borrow_mut() = zones;
        self.kept.borrow_mut().forget();
    }

    /// The zones this server is the authority for.
    pub fn zones(&self) -> Vec<Rc<FileAuthority>> {
        self.zones.borrow().clone()
    }

    /// What the server keeps of its zones' answers, and how often they served.
    pub fn kept_answers(&self) -> KeptAnswers {
        let kept = self.kept.borrow();
        KeptAnswers {
            entries: kept.answers.len(),
            bytes: kept.bytes,
            hits: kept.hits,
            flushes: kept.flushes,
        }
    }

    /// Answers a UDP `query` from the kept answers, without decoding it: when the server
    /// has answered the same bytes after the id from one of its zones before, `out` is set
    /// to that answer with this query's id, the query is counted as answered, and the result
    /// is true. Otherwise nothing changes and [`handle`](Self::handle) answers it.
    ///
    /// Kept are the zones' answers to plain queries only (one question of class IN, at
    /// most an OPT record without options; see the module), never an answer from the
    /// resolver (a cache's or an upstream server's, whose TTLs count down), and never over
    /// TCP. They are forgotten when the zones are replaced ([`set_zones`](Self::set_zones)),
    /// and all at once when one more would go over [`ServerConfig::answer_cache_bytes`].
    pub fn answer_kept(&self, query: &[u8], out: &mut Vec<u8>) -> bool {
        if query.len() < 12 || query.len() > PLAIN_QUERY_MAX {
            return false;
        }
        let mut kept = self.kept.borrow_mut();
        let Some(answer) = kept.get(&query[2..]) else {
            return false;
        };
        out.clear();
        out.extend_from_slice(&answer.bytes);
        out[..2].copy_from_slice(&query[..2]);
        let (code, truncated) = (answer.code, answer.truncated);
        // Counted here, and added to the others by `counters`: one borrow per hit.
        kept.hits += 1;
        kept.truncated += u64::from(truncated);
        kept.codes[usize::from(code)] += 1;
        true
    }

    /// Keeps `answer`, a zone's answer to `query` over UDP, when the query is plain.
    fn keep(&self, query: &[u8], answer: &[u8]) {
        let Some(key) = plain_key(query) else { return };
        if answer.len() < 12 {
            return;
        }
        let size = key.len() + answer.len() + KEPT_ENTRY_OVERHEAD;
        let limit = self.config.answer_cache_bytes;
        if size > limit {
            return;
        }
        let mut kept = self.kept.borrow_mut();
        if kept.bytes + size > limit {
            // Forget them all: bounded, no bookkeeping per hit (as an LRU's), and a set of
            // names that stops being asked leaves (where refusing new ones once full would
            // keep the first names for ever, a flood of random ones included).
            kept.forget();
            kept.flushes += 1;
        }
        let key: Rc<[u8]> = key.into();
        let entry = KeptAnswer {
            key: Rc::clone(&key),
            bytes: answer.into(),
            code: u16::from(answer[3] & 0x0F),
            truncated: answer[2] & 0x02 != 0,
        };
        // An answer replaced in the map must not stay in front.
        let slot = kept.slot(&key);
        kept.front[slot] = None;
        if kept.answers.insert(key, Rc::new(entry)).is_none() {
            kept.bytes += size;
        }
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        let mut counters = self.counters.borrow().clone();
        let kept = self.kept.borrow();
        counters.queries += kept.hits;
        counters.truncated += kept.truncated;
        let mut rcodes = self.rcodes.borrow().clone();
        for (code, &n) in (0u16..).zip(kept.codes.iter()) {
            if n > 0 {
                *rcodes.entry(code).or_default() += n;
            }
        }
        counters.answers = rcodes
            .iter()
            .map(|(&code, &n)| (format!("{:?}", <ResponseCode as From<u16>>::from(code)), n))
            .collect();
        counters
    }

    /// Logs the counters (target `torsion_names::server`, level info).
    pub fn log_counters(&self) {
        tracing::info!(target: "torsion_names::server", "dns: {}", self.counters());
    }

    /// Answers the message `query` that came over `transport` from `peer`: `None` when it is
    /// dropped, else a Deferred of the messages to send back (one, or several for a zone
    /// transfer), which fires when the resolver has answered.
    pub fn handle(
        self: &Rc<Self>,
        query: &[u8],
        transport: Transport,
        peer: &Address,
    ) -> Option<Deferred<Vec<Vec<u8>>>> {
        if transport == Transport::Udp {
            let mut out = Vec::new();
            if self.answer_kept(query, &mut out) {
                return Some(succeed(vec![out]));
            }
        }
        self.counters.borrow_mut().queries += 1;
        let header = match Header::read(&mut BinDecoder::new(query)) {
            Ok(header) => header,
            Err(error) => return self.drop_message(peer, &format!("no DNS header ({error})")),
        };
        if header.metadata.message_type == MessageType::Response {
            return self.drop_message(peer, "a response, not a query");
        }
        let request = match Message::from_vec(query) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(target: "torsion_names::server", "{peer}: FORMERR: {error}");
                let mut response = Message::response(header.metadata.id, header.metadata.op_code);
                response.metadata.recursion_desired = header.metadata.recursion_desired;
                response.metadata.response_code = ResponseCode::FormErr;
                return Some(succeed(vec![self.encode(response, PLAIN_UDP_LIMIT)]));
            }
        };
        let limit = self.limit(&request, transport);
        let refuse = |code| {
            Some(succeed(vec![
                self.encode(self.response(&request, code), limit)
            ]))
        };
        if request.metadata.op_code != OpCode::Query {
            return refuse(ResponseCode::NotImp);
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return refuse(ResponseCode::BADVERS);
        }
        let [question] = request.queries.as_slice() else {
            return refuse(ResponseCode::FormErr);
        };
        // Names compare and hash without regard to case: no need to lower it.
        let mut name = question.name().clone();
        name.set_fqdn(true);
        match question.query_type() {
            RecordType::AXFR => return Some(succeed(self.transfer(&request, &name, transport))),
            RecordType::IXFR => return Some(succeed(self.incremental(&request, &name, transport))),
            _ => {}
        }
        let ask = Query {
            name: question.name().clone(),
            record_type: question.query_type(),
            class: question.query_class(),
        };
        if matches!(ask.class, DNSClass::IN | DNSClass::ANY) {
            let zone = self
                .zones
                .borrow()
                .iter()
                .find(|z| z.serves(&name))
                .cloned();
            if let Some(zone) = zone {
                // The zone answers at once, and the same way until it is replaced.
                let bytes = self.answer(&request, &name, zone.lookup(&ask), limit);
                if transport == Transport::Udp {
                    self.keep(query, &bytes);
                }
                return Some(succeed(vec![bytes]));
            }
        }
        if self.in_flight.get() >= self.config.max_in_flight {
            return self.drop_message(peer, "too many queries waiting for the resolver");
        }
        self.in_flight.set(self.in_flight.get() + 1);
        let server = Rc::clone(self);
        let d = self.resolver.query(&ask).add_both(move |outcome| {
            server.in_flight.set(server.in_flight.get() - 1);
            Ok::<_, Failure>(vec![server.answer(&request, &name, outcome, limit)])
        });
        Some(d)
    }

    fn drop_message<T>(&self, peer: &Address, why: &str) -> Option<T> {
        self.counters.borrow_mut().dropped += 1;
        tracing::debug!(target: "torsion_names::server", "{peer}: dropped: {why}");
        None
    }

    /// The largest answer `request` may have over `transport`.
    fn limit(&self, request: &Message, transport: Transport) -> usize {
        match (transport, &request.edns) {
            (Transport::Tcp, _) => TCP_LIMIT,
            (Transport::Udp, None) => PLAIN_UDP_LIMIT,
            (Transport::Udp, Some(edns)) => usize::from(edns.max_payload()).clamp(
                PLAIN_UDP_LIMIT,
                usize::from(self.config.udp_ceiling).max(PLAIN_UDP_LIMIT),
            ),
        }
    }

    /// An empty response to `request` with `code`: its id, question, RD and CD, and an EDNS
    /// record when it had one.
    fn response(&self, request: &Message, code: ResponseCode) -> Message {
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.checking_disabled = request.metadata.checking_disabled;
        response.metadata.recursion_available = self.config.recursive;
        response.metadata.response_code = code;
        response.add_queries(request.queries.iter().cloned());
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(self.config.udp_ceiling.max(512));
            edns.set_version(0);
            response.set_edns(edns);
        }
        response
    }

    /// The answer to `request` from the resolver's outcome.
    fn answer(
        &self,
        request: &Message,
        name: &Name,
        outcome: Result<Answer, Failure>,
        limit: usize,
    ) -> Vec<u8> {
        let ours = self.zones.borrow().iter().any(|z| z.serves(name));
        let response = match outcome {
            Ok(answer) => {
                let mut response = self.response(request, ResponseCode::NoError);
                let referral = answer.answers.is_empty()
                    && answer
                        .authority
                        .iter()
                        .all(|r| r.record_type() == RecordType::NS)
                    && !answer.authority.is_empty();
                response.metadata.authoritative = ours && !referral;
                response.answers = answer.answers;
                response.authorities = answer.authority;
                response.additionals = answer.additional;
                response
            }
            Err(failure) => {
                if let Some(nx) = failure.downcast_ref::<AuthoritativeDomainError>() {
                    let mut response = self.response(request, ResponseCode::NXDomain);
                    response.metadata.authoritative = true;
                    response.authorities.extend(nx.1.iter().cloned());
                    response
                } else if failure.check::<DnsNameError>() {
                    self.response(request, ResponseCode::NXDomain)
                } else if failure.check::<DomainError>() {
                    self.response(request, ResponseCode::Refused)
                } else {
                    tracing::debug!(
                        target: "torsion_names::server",
                        "SERVFAIL for {:?}: {}",
                        request.queries,
                        failure.error_message()
                    );
                    self.response(request, ResponseCode::ServFail)
                }
            }
        };
        self.encode(response, limit)
    }

    /// The zone whose origin is `name`, if this server serves it.
    fn zone_named(&self, name: &Name) -> Option<Rc<FileAuthority>> {
        self.zones
            .borrow()
            .iter()
            .find(|z| z.origin() == name)
            .cloned()
    }

    /// A zone transfer: the zone in messages of at most 64 KiB over TCP; REFUSED otherwise.
    fn transfer(&self, request: &Message, name: &Name, transport: Transport) -> Vec<Vec<u8>> {
        let zone = self.zone_named(name);
        let (Transport::Tcp, Some(zone)) = (transport, zone) else {
            let limit = self.limit(request, transport);
            return vec![self.encode(self.response(request, ResponseCode::Refused), limit)];
        };
        self.counters.borrow_mut().transfers += 1;
        let mut out = Vec::new();
        self.transfer_chunk(request, &zone.transfer(), &mut out);
        out
    }

    /// IXFR (RFC 1995) from a server that keeps no history of its zones: a client whose
    /// serial (the SOA in the query's authority section) is not older than the zone's gets
    /// the current SOA alone (up to date); an older one gets the whole zone as AXFR sends it
    /// (RFC 1995 section 4 allows it), over TCP. Over UDP the answer is the current SOA
    /// alone, which tells an older client to ask again over TCP (section 2). A query
    /// without the client's SOA is FORMERR; a zone not served here, REFUSED.
    fn incremental(&self, request: &Message, name: &Name, transport: Transport) -> Vec<Vec<u8>> {
        let limit = self.limit(request, transport);
        let zone = self.zone_named(name);
        let Some(zone) = zone else {
            return vec![self.encode(self.response(request, ResponseCode::Refused), limit)];
        };
        let theirs = request.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        });
        let Some(theirs) = theirs else {
            return vec![self.encode(self.response(request, ResponseCode::FormErr), limit)];
        };
        let current = match &zone.soa().data {
            RData::SOA(soa) => soa.serial,
            _ => 0,
        };
        if transport == Transport::Tcp && serial_older(theirs, current) {
            return self.transfer(request, name, transport);
        }
        let mut response = self.response(request, ResponseCode::NoError);
        response.metadata.authoritative = true;
        response.answers = vec![zone.soa().clone()];
        vec![self.encode(response, limit)]
    }

    /// Puts `records` in as few messages as fit in 64 KiB, halving until they do.
    fn transfer_chunk(&self, request: &Message, records: &[Record], out: &mut Vec<Vec<u8>>) {
        let mut response = self.response(request, ResponseCode::NoError);
        response.metadata.authoritative = true;
        response.answers = records.to_vec();
        // Hickory's encoder stops at 64 KiB, leaving records out and setting TC: a chunk is
        // whole when the header counts every record.
        let whole = |bytes: &Vec<u8>| {
            Header::read(&mut BinDecoder::new(bytes))
                .is_ok_and(|h| usize::from(h.counts.answers) == records.len())
        };
        match response.to_vec() {
            Ok(bytes) if whole(&bytes) => {
                self.count(ResponseCode::NoError);
                out.push(bytes);
            }
            _ if records.len() > 1 => {
                let (a, b) = records.split_at(records.len() / 2);
                self.transfer_chunk(request, a, out);
                self.transfer_chunk(request, b, out);
            }
            _ => {
                let failed = self.response(request, ResponseCode::ServFail);
                out.push(self.encode(failed, TCP_LIMIT));
            }
        }
    }

    fn count(&self, code: ResponseCode) {
        *self.rcodes.borrow_mut().entry(u16::from(code)).or_default() += 1;
    }

    /// The bytes of `response`, at most `limit` long: without the additional section if
    /// that is needed, else without any record and with TC set.
    fn encode(&self, mut response: Message, limit: usize) -> Vec<u8> {
        self.count(response.metadata.response_code);
        if let Ok(bytes) = response.to_vec() {
            if bytes.len() <= limit {
                return bytes;
            }
        }
        response.additionals.clear();
        if let Ok(bytes) = response.to_vec() {
            if bytes.len() <= limit {
                return bytes;
            }
        }
        response.answers.clear();
        response.authorities.clear();
        response.metadata.truncation = true;
        self.counters.borrow_mut().truncated += 1;
        match response.to_vec() {
            Ok(bytes) if bytes.len() <= limit => bytes,
            _ => {
                // Only the question is left; a name can make it at most ~270 bytes, so this
                // is unreachable in practice. Still: a header alone always fits.
                response.queries.clear();
                response.edns = None;
                response.to_vec().unwrap_or_default()
            }
        }
    }
}

/// The DNS server over UDP (Twisted's `DNSDatagramProtocol`): each datagram is a query to
/// the [`DnsServer`], each answer a datagram back to its sender.
#[derive(Debug, Clone)]
pub struct DnsDatagramProtocol {
    server: Rc<DnsServer>,
    /// A kept answer with the query's id, reused from one datagram to the next.
    reply: Vec<u8>,
}

impl DnsDatagramProtocol {
    /// A protocol serving `server`'s answers.
    pub fn new(server: Rc<DnsServer>) -> DnsDatagramProtocol {
        DnsDatagramProtocol {
            server,
            reply: Vec::new(),
        }
    }
}

impl DatagramProtocol for DnsDatagramProtocol {
    fn datagram_received(&mut self, transport: &DatagramTransport, data: &[u8], addr: &Address) {
        if self.server.answer_kept(data, &mut self.reply) {
            if let Err(error) = transport.write(&self.reply, addr) {
                tracing::debug!(target: "torsion_names::server", "{addr}: {error}");
            }
            return;
        }
        let Some(answers) = self.server.handle(data, Transport::Udp, addr) else {
            return;
        };
        let transport = transport.clone();
        let addr = addr.clone();
        drop(answers.add_callback(move |messages| {
            for message in messages {
                if let Err(error) = transport.write(&message, &addr) {
                    tracing::debug!(target: "torsion_names::server", "{addr}: {error}");
                }
            }
        }));
    }
}

/// The DNS server over TCP (Twisted's `DNSServerFactory`, as a factory of connections):
/// messages framed by a two-byte length, as many per connection as the client sends,
/// answered as their resolver answers; a connection idle for
/// [`ServerConfig::tcp_idle_timeout`] is closed.
#[derive(Clone)]
pub struct DnsServerFactory {
    server: Rc<DnsServer>,
    clock: Option<Rc<dyn ReactorTime>>,
}

impl fmt::Debug for DnsServerFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DnsServerFactory")
            .field(&self.server)
            .finish()
    }
}

impl DnsServerFactory {
    /// A factory serving `server`'s answers.
    pub fn new(server: Rc<DnsServer>) -> DnsServerFactory {
        DnsServerFactory {
            server,
            clock: None,
        }
    }

    /// Times idle connections on `clock` (a [`Clock`](torsion::testing::Clock) in tests)
    /// instead of the reactor.
    #[must_use]
    pub fn with_clock(mut self, clock: impl ReactorTime + 'static) -> DnsServerFactory {
        self.clock = Some(Rc::new(clock));
        self
    }

    /// The core it serves.
    pub fn server(&self) -> &Rc<DnsServer> {
        &self.server
    }
}

impl Factory for DnsServerFactory {
    type Protocol = DnsStreamProtocol;

    fn build_protocol(&self, addr: &Address) -> Option<DnsStreamProtocol> {
        let idle = IdleTimeout::new();
        if let Some(clock) = &self.clock {
            idle.set_clock(SharedClock::from_rc(Rc::clone(clock)));
        }
        Some(DnsStreamProtocol {
            server: Rc::clone(&self.server),
            buffer: Vec::new(),
            idle,
            peer: addr.clone(),
            pending: Rc::new(Cell::new(0)),
        })
    }
}

/// One TCP connection of a [`DnsServerFactory`] (Twisted's `DNSProtocol`). It stops reading
/// while [`TCP_PIPELINE`] of its queries wait for answers, and closes when more than
/// [`TCP_WRITE_LIMIT`] bytes of answers wait to be read.
pub struct DnsStreamProtocol {
    server: Rc<DnsServer>,
    /// Bytes of the message being received: at most its two-byte length and 65535 bytes.
    buffer: Vec<u8>,
    idle: IdleTimeout,
    peer: Address,
    /// Queries handed to the server whose answers have not come yet.
    pending: Rc<Cell<usize>>,
}

impl fmt::Debug for DnsStreamProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsStreamProtocol")
            .field("peer", &self.peer)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl Protocol for DnsStreamProtocol {
    fn connection_made(&mut self, transport: &StreamTransport) {
        transport.set_write_limit(TCP_WRITE_LIMIT, WritePolicy::Disconnect);
        self.idle.set_transport(transport);
        self.idle.set_timeout(self.server.config.tcp_idle_timeout);
    }

    fn data_received(&mut self, transport: &StreamTransport, data: &[u8]) {
        self.idle.reset_timeout();
        self.buffer.extend_from_slice(data);
        let mut start = 0;
        while let Some(len) = self
            .buffer
            .get(start..start + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        {
            let Some(message) = self.buffer.get(start + 2..start + 2 + len) else {
                break;
            };
            let answers = self.server.handle(message, Transport::Tcp, &self.peer);
            start += 2 + len;
            let Some(answers) = answers else { continue };
            let t = transport.clone();
            let pending = Rc::clone(&self.pending);
            pending.set(pending.get() + 1);
            drop(answers.add_callback(move |messages| {
                for message in messages {
                    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
                    t.write_sequence(&[&len.to_be_bytes(), &message]);
                }
                if pending.replace(pending.get() - 1) == TCP_PIPELINE {
                    t.resume_producing();
                }
            }));
        }
        self.buffer.drain(..start);
        if self.pending.get() >= TCP_PIPELINE {
            // Stop reading until answers come (the messages of this read are all handled:
            // one read is bounded, and nothing would wake a message left in the buffer).
            transport.pause_producing();
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.idle.set_timeout(None);
    }
}

/// Whether serial `a` is older than `b` in serial number arithmetic (RFC 1982: 32-bit
/// serials wrap, and `a` is older when `b` is less than 2^31 ahead of it).
fn serial_older(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}
