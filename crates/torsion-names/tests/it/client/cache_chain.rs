//! The cache (Twisted's `CacheResolver`), the chain (`ResolverChain`), and
//! `get_host_by_name` following CNAMEs.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

use torsion::defer::{fail, succeed, Deferred};
use torsion::error::{DnsLookupError, TimeoutError};
use torsion::testing::Clock;
use torsion_names::cache::CacheResolver;
use torsion_names::chain::ResolverChain;
use torsion_names::error::{
    AuthoritativeDomainError, DnsNameError, DnsQueryTimeoutError, DnsServerError, DomainError,
};
use torsion_names::proto::rr::rdata::CNAME;
use torsion_names::{Answer, Query, RData, Record, RecordType, Resolver};

use super::a;

fn query(name: &str) -> Query {
    Query::new(name.parse().unwrap(), RecordType::A)
}

fn answer_with(records: Vec<Record>) -> Answer {
    Answer {
        answers: records,
        ..Answer::default()
    }
}

#[test]
fn the_cache_honours_the_smallest_ttl_and_ages_the_records() {
    let clock = Rc::new(Clock::new());
    let cache = CacheResolver::new(clock.clone());
    let q = query("www.example.test.");
    let mut answer = answer_with(vec![a(&q.name, [192, 0, 2, 1], 300)]);
    answer.additional.push(a(
        &"ns.example.test.".parse().unwrap(),
        [192, 0, 2, 53],
        100,
    ));
    cache.cache_result(&q, &answer);
    clock.advance(40.0);
    let aged = cache.query(&q).result().unwrap().unwrap();
    assert_eq!((aged.answers[0].ttl, aged.additional[0].ttl), (260, 60));
    // The key ignores whether the name was written absolute, and its case.
    let relative = cache
        .lookup_address("WWW.example.test")
        .result()
        .unwrap()
        .unwrap();
    assert_eq!(relative.answers[0].ttl, 260);
    clock.advance(60.0);
    assert!(cache
        .query(&q)
        .result()
        .unwrap()
        .unwrap_err()
        .check::<DomainError>());
    assert!(cache.is_empty(), "an expired entry is dropped when found");
}

#[test]
fn the_cache_keeps_nothing_without_a_ttl_and_misses_with_domain_error() {
    let clock = Rc::new(Clock::new());
    let cache = CacheResolver::new(clock);
    let q = query("zero.example.test.");
    cache.cache_result(&q, &answer_with(vec![a(&q.name, [192, 0, 2, 1], 0)]));
    cache.cache_result(&q, &Answer::default());
    assert!(cache.is_empty());
    assert!(cache
        .query(&q)
        .result()
        .unwrap()
        .unwrap_err()
        .check::<DomainError>());
}

#[test]
fn the_cache_is_bounded_dropping_expired_then_oldest() {
    let clock = Rc::new(Clock::new());
    let cache = CacheResolver::with_max_entries(clock.clone(), 3);
    let store = |name: &str, ttl| {
        let q = query(name);
        cache.cache_result(&q, &answer_with(vec![a(&q.name, [192, 0, 2, 1], ttl)]));
    };
    store("short.test.", 10);
    store("old.test.", 1000);
    store("mid.test.", 1000);
    clock.advance(20.0);
    store("new.test.", 1000);
    assert_eq!(cache.len(), 3, "the expired entry made room");
    assert!(cache.query(&query("old.test.")).result().unwrap().is_ok());
    store("newer.test.", 1000);
    assert_eq!(cache.len(), 3);
    assert!(
        cache.query(&query("old.test.")).result().unwrap().is_err(),
        "oldest dropped"
    );
    assert!(cache.query(&query("newer.test.")).result().unwrap().is_ok());
    // Storing one name over and over keeps one entry and bounded bookkeeping.
    for _ in 0..100 {
        store("mid.test.", 1000);
    }
    assert_eq!(cache.len(), 3);
}

#[test]
fn a_filling_cache_keeps_what_upstream_answers() {
    let clock = Rc::new(Clock::new());
    let cache = CacheResolver::new(clock.clone());
    let asked = Rc::new(Cell::new(0));
    let count = asked.clone();
    let upstream = move |q: &Query| {
        count.set(count.get() + 1);
        succeed(answer_with(vec![a(&q.name, [192, 0, 2, 9], 60)]))
    };
    let chain = ResolverChain::new(vec![
        Box::new(cache.clone()),
        Box::new(cache.filling(upstream)),
    ]);
    for _ in 0..3 {
        assert!(chain
            .lookup_address("cached.example.test")
            .result()
            .unwrap()
            .is_ok());
    }
    assert_eq!(asked.get(), 1);
    clock.advance(60.0);
    assert!(chain
        .lookup_address("cached.example.test")
        .result()
        .unwrap()
        .is_ok());
    assert_eq!(asked.get(), 2, "asked again once the TTL ran out");
}

/// A resolver failing every query with `failure`, counting how often it was asked.
fn failing(make: fn(Query) -> torsion::Failure, asked: Rc<Cell<u32>>) -> Box<dyn Resolver> {
    Box::new(move |q: &Query| -> Deferred<Answer> {
        asked.set(asked.get() + 1);
        fail(make(q.clone()))
    })
}

#[test]
fn the_chain_moves_on_as_twisteds_failure_handler_and_stops_at_authority() {
    let moves_on: [fn(Query) -> torsion::Failure; 5] = [
        |q| torsion::Failure::new(DomainError(q)),
        |q| torsion::Failure::new(DnsNameError(q)),
        |q| torsion::Failure::new(DnsServerError(q)),
        |q| torsion::Failure::new(DnsQueryTimeoutError(q)),
        |_| torsion::Failure::new(TimeoutError),
    ];
    for make in moves_on {
        let next = Rc::new(Cell::new(0));
        let chain = ResolverChain::new(vec![
            failing(make, Rc::default()),
            failing(|q| torsion::Failure::new(DomainError(q)), next.clone()),
        ]);
        let failure = chain
            .lookup_address("x.test")
            .result()
            .unwrap()
            .unwrap_err();
        assert_eq!(next.get(), 1, "moved on after {}", make(query("x.test.")));
        assert!(failure.check::<DomainError>());
    }
    let stops: [fn(Query) -> torsion::Failure; 2] = [
        |q| torsion::Failure::new(AuthoritativeDomainError(q, None)),
        |_| torsion::Failure::new(std::io::Error::other("something else")),
    ];
    for make in stops {
        let next = Rc::new(Cell::new(0));
        let chain = ResolverChain::new(vec![
            failing(make, Rc::default()),
            failing(make, next.clone()),
        ]);
        assert!(chain.lookup_address("x.test").result().unwrap().is_err());
        assert_eq!(next.get(), 0, "stopped at {}", make(query("x.test.")));
    }
    let empty = ResolverChain::new(Vec::new());
    assert!(empty
        .lookup_address("x.test")
        .result()
        .unwrap()
        .unwrap_err()
        .check::<DomainError>());
}

#[test]
fn get_host_by_name_follows_cnames_across_lookups_within_its_effort() {
    let cname = |from: &str, to: &str| {
        Record::from_rdata(
            from.parse().unwrap(),
            60,
            RData::CNAME(CNAME(to.parse().unwrap())),
        )
    };
    // www -> alias -> host (asked separately) -> 192.0.2.5; loop.test -> loop.test forever.
    let asked = Rc::new(Cell::new(0));
    let count = asked.clone();
    let resolver = Rc::new(move |q: &Query| {
        count.set(count.get() + 1);
        assert_eq!(q.record_type, RecordType::A, "A, not Twisted's ANY");
        let name = q.name.to_string();
        let records = match name.as_str() {
            "www.example.test." => vec![
                cname("www.example.test.", "alias.example.test."),
                cname("alias.example.test.", "host.example.test."),
            ],
            "host.example.test." => vec![a(&q.name, [192, 0, 2, 5], 60)],
            "loop.test." | "loop2.test." => vec![
                cname("loop.test.", "loop2.test."),
                cname("loop2.test.", "loop.test."),
            ],
            "empty.test." => vec![],
            _ => return fail(DnsNameError(q.clone())),
        };
        succeed(answer_with(records))
    });
    let ip = resolver
        .get_host_by_name("www.example.test")
        .result()
        .unwrap()
        .unwrap();
    assert_eq!(ip, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5)));
    assert_eq!(asked.get(), 2);
    asked.set(0);
    let looped = resolver
        .get_host_by_name("loop.test")
        .result()
        .unwrap()
        .unwrap_err();
    assert!(looped.check::<DnsLookupError>());
    assert!(asked.get() <= 11, "bounded by the effort: {}", asked.get());
    let empty = resolver
        .get_host_by_name("empty.test")
        .result()
        .unwrap()
        .unwrap_err();
    assert!(empty.check::<DnsLookupError>());
    let nx = resolver
        .get_host_by_name("nowhere.test")
        .result()
        .unwrap()
        .unwrap_err();
    assert!(
        nx.check::<DnsNameError>(),
        "the lookup's failure passes through"
    );
}
