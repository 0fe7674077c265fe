//! A cache of answers that honours their TTLs (Twisted's `twisted.names.cache.CacheResolver`).
//!
//! [`CacheResolver`] answers a query it holds an unexpired answer for, with every TTL
//! lowered by the time the answer has spent in the cache, and fails any other with
//! [`DomainError`] so a [chain](crate::chain::ResolverChain) asks the next resolver. Answers
//! go in with [`cache_result`](CacheResolver::cache_result) (as a Twisted server does) or
//! through [`filling`](CacheResolver::filling), a resolver that asks another and keeps what it
//! answers. An answer lives for its smallest TTL; time is the reactor's clock (or a test
//! [`Clock`](torsion::testing::Clock)).
//!
//! Unlike Twisted's, the cache is bounded: at [`max_entries`](CacheResolver::with_max_entries)
//! the expired entries are dropped, then the oldest (docs/design.md, "The DNS cache is
//! bounded and fills itself").
//!
//! ```
//! use std::net::Ipv4Addr;
//! use std::rc::Rc;
//! use torsion::testing::Clock;
//! use torsion_names::cache::CacheResolver;
//! use torsion_names::error::DomainError;
//! use torsion_names::proto::rr::rdata::A;
//! use torsion_names::{Answer, Query, RData, Record, RecordType, Resolver};
//!
//! let clock = Rc::new(Clock::new());
//! let cache = CacheResolver::new(clock.clone());
//! let query = Query::new("example.org.".parse().unwrap(), RecordType::A);
//! let a = Record::from_rdata(query.name.clone(), 300, RData::A(A(Ipv4Addr::new(192, 0, 2, 1))));
//! cache.cache_result(&query, &Answer { answers: vec![a], ..Answer::default() });
//! clock.advance(100.0);
//! let answer = cache.query(&query).result().unwrap().unwrap();
//! assert_eq!(answer.answers[0].ttl, 200);
//! clock.advance(200.0);
//! assert!(cache.query(&query).result().unwrap().unwrap_err().check::<DomainError>());
//! ```
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use hickory_proto::rr::Record;
use torsion::defer::{fail, succeed, Deferred};
use torsion::reactor::ReactorTime;

use crate::error::DomainError;
use crate::resolver::{Answer, Query, Resolver};

/// How many answers a cache holds by default.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

struct Entry {
    stored_at: f64,
    expires_at: f64,
    answer: Answer,
    seq: u64,
}

struct Store {
    entries: HashMap<Query, Entry>,
    /// Insertion order, for evicting the oldest; stale pairs (an entry replaced since) are
    /// skipped and the queue is compacted when it grows past twice the bound.
    order: VecDeque<(u64, Query)>,
    next_seq: u64,
}

struct Inner {
    clock: Rc<dyn ReactorTime>,
    max_entries: usize,
    store: RefCell<Store>,
}

/// A TTL-honouring, bounded cache of answers (Twisted's `CacheResolver`); cheap to clone.
#[derive(Clone)]
pub struct CacheResolver {
    inner: Rc<Inner>,
}

/// The key a query is kept under: its name absolute, so `example.org` and `example.org.`
/// are one entry.
fn key(query: &Query) -> Query {
    let mut query = query.clone();
    query.name.set_fqdn(true);
    query
}

impl CacheResolver {
    /// An empty cache of at most [`DEFAULT_MAX_ENTRIES`] answers, telling time by `clock`
    /// (the [`Reactor`](torsion::Reactor), or a test clock).
    pub fn new(clock: Rc<dyn ReactorTime>) -> CacheResolver {
        CacheResolver::with_max_entries(clock, DEFAULT_MAX_ENTRIES)
    }

    /// An empty cache of at most `max_entries` answers (at least one).
    pub fn with_max_entries(clock: Rc<dyn ReactorTime>, max_entries: usize) -> CacheResolver {
        CacheResolver {
            inner: Rc::new(Inner {
                clock,
                max_entries: max_entries.max(1),
                store: RefCell::new(Store {
                    entries: HashMap::new(),
                    order: VecDeque::new(),
                    next_seq: 0,
                }),
            }),
        }
    }

    /// How many answers are held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.inner.store.borrow().entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps `answer` for `query` until its smallest TTL runs out (Twisted's
    /// `cacheResult`). An answer with no record, or a TTL of 0, is not kept.
    pub fn cache_result(&self, query: &Query, answer: &Answer) {
        let ttl = all_records(answer).map(|r| r.ttl).min().unwrap_or(0);
        if ttl == 0 {
            return;
        }
        let now = self.inner.clock.seconds();
        let mut store = self.inner.store.borrow_mut();
        let key = key(query);
        if !store.entries.contains_key(&key) && store.entries.len() >= self.inner.max_entries {
            store.entries.retain(|_, e| e.expires_at > now);
            while store.entries.len() >= self.inner.max_entries {
                let Some((seq, oldest)) = store.order.pop_front() else {
                    break;
                };
                if store.entries.get(&oldest).is_some_and(|e| e.seq == seq) {
                    store.entries.remove(&oldest);
                }
            }
        }
        let seq = store.next_seq;
        store.next_seq += 1;
        store.order.push_back((seq, key.clone()));
        store.entries.insert(
            key,
            Entry {
                stored_at: now,
                expires_at: now + f64::from(ttl),
                answer: answer.clone(),
                seq,
            },
        );
        if store.order.len() > 2 * self.inner.max_entries {
            let Store { entries, order, .. } = &mut *store;
            order.retain(|(seq, q)| entries.get(q).is_some_and(|e| e.seq == *seq));
        }
    }

    /// A resolver that asks `upstream` and keeps its answers here; the other half of a
    /// chain `[cache, cache.filling(upstream)]`.
    pub fn filling<R: Resolver + 'static>(&self, upstream: R) -> Filling<R> {
        Filling {
            cache: self.clone(),
            upstream,
        }
    }

    fn lookup(&self, query: &Query) -> Option<Answer> {
        let now = self.inner.clock.seconds();
        let key = key(query);
        let mut store = self.inner.store.borrow_mut();
        let entry = store.entries.get(&key)?;
        if now >= entry.expires_at {
            store.entries.remove(&key);
            return None;
        }
        let elapsed = (now - entry.stored_at).max(0.0) as u32;
        let age = |records: &[Record]| -> Vec<Record> {
            records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.ttl = r.ttl.saturating_sub(elapsed);
                    r
                })
                .collect()
        };
        Some(Answer {
            answers: age(&entry.answer.answers),
            authority: age(&entry.answer.authority),
            additional: age(&entry.answer.additional),
        })
    }
}

fn all_records(answer: &Answer) -> impl Iterator<Item = &Record> {
    answer
        .answers
        .iter()
        .chain(&answer.authority)
        .chain(&answer.additional)
}

impl Resolver for CacheResolver {
    fn query(&self, query: &Query) -> Deferred<Answer> {
        match self.lookup(query) {
            Some(answer) => succeed(answer),
            None => fail(torsion::Failure::without_backtrace(DomainError(
                query.clone(),
            ))),
        }
    }
}

/// A resolver that asks another and keeps its answers in a [`CacheResolver`]; made by
/// [`CacheResolver::filling`].
pub struct Filling<R> {
    cache: CacheResolver,
    upstream: R,
}

impl<R: Resolver> Resolver for Filling<R> {
    fn query(&self, query: &Query) -> Deferred<Answer> {
        let cache = self.cache.clone();
        let asked = query.clone();
        self.upstream.query(query).add_callback(move |answer| {
            cache.cache_result(&asked, &answer);
            answer
        })
    }
}
