//! A chain of resolvers asked in turn (Twisted's `twisted.names.resolve.ResolverChain`).
//!
//! [`ResolverChain`] asks its first resolver; when that one fails with a failure that means
//! "not mine" it asks the next, and so on. As Twisted's `FailureHandler` (which traps
//! `DomainError`, `TimeoutError` and `NotImplementedError`), the chain moves on when a
//! resolver fails with [`DomainError`] or any `Dns*Error` of [`error`](crate::error) (in
//! Twisted they are all `DomainError`s: NXDOMAIN, SERVFAIL, REFUSED, ...), with
//! [`DnsQueryTimeoutError`] or torsion's [`TimeoutError`]. An
//! [`AuthoritativeDomainError`](crate::error::AuthoritativeDomainError) stops it: the zone
//! that owns the name said it does not exist. Any other failure stops it too.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use torsion::defer::{fail, succeed};
//! use torsion_names::chain::ResolverChain;
//! use torsion_names::error::DomainError;
//! use torsion_names::proto::rr::rdata::A;
//! use torsion_names::{Answer, Query, RData, Record, Resolver};
//!
//! let not_mine = |q: &Query| fail::<Answer>(DomainError(q.clone()));
//! let mine = |q: &Query| {
//!     let a = Record::from_rdata(q.name.clone(), 60, RData::A(A(Ipv4Addr::new(192, 0, 2, 9))));
//!     succeed(Answer { answers: vec![a], ..Answer::default() })
//! };
//! let chain = ResolverChain::new(vec![Box::new(not_mine), Box::new(mine)]);
//! let answer = chain.lookup_address("example.org").result().unwrap().unwrap();
//! assert_eq!(answer.answers.len(), 1);
//! ```
use std::rc::Rc;

use hickory_proto::rr::{Name, RecordType};
use torsion::defer::{fail, succeed, Deferred};
use torsion::error::TimeoutError;
use torsion::Failure;

use crate::error::{
    DnsFormatError, DnsNameError, DnsNotImplementedError, DnsQueryRefusedError,
    DnsQueryTimeoutError, DnsServerError, DnsUnknownError, DomainError,
};
use crate::resolver::{Answer, Query, Resolver};

/// True when `failure` lets a chain ask its next resolver (Twisted's `FailureHandler` trap:
/// a `DomainError` or a subclass of it, or a timeout).
pub fn moves_on(failure: &Failure) -> bool {
    failure.check_any::<(
        DomainError,
        DnsNameError,
        DnsServerError,
        DnsQueryRefusedError,
    )>() || failure.check_any::<(DnsFormatError, DnsNotImplementedError, DnsUnknownError)>()
        || failure.check_any::<(DnsQueryTimeoutError, TimeoutError)>()
}

/// The names a relative name is asked as, in order (a search list; see
/// [`ResolverChain::with_search`]).
type SearchList = Rc<dyn Fn(&Name) -> Vec<Name>>;

/// Resolvers asked in turn until one answers (Twisted's `ResolverChain`); cheap to clone.
#[derive(Clone)]
pub struct ResolverChain {
    resolvers: Rc<[Box<dyn Resolver>]>,
    search: Option<SearchList>,
}

impl ResolverChain {
    /// A chain asking `resolvers` in order. An empty chain fails every query with
    /// [`DomainError`], as Twisted's.
    pub fn new(resolvers: Vec<Box<dyn Resolver>>) -> ResolverChain {
        ResolverChain {
            resolvers: resolvers.into(),
            search: None,
        }
    }

    /// The same chain, asking a relative name (no trailing dot) as each of the names
    /// `search` gives for it in turn, every one through the whole chain, until one has
    /// records (glibc's `res_search`: NXDOMAIN, SERVFAIL or no records move on to the next name,
    /// any other failure ends the search). `create_resolver` gives its
    /// client's [`search_names`](crate::ClientResolver::search_names), so that resolv.conf's
    /// search list applies to lookups through the chain. Without it, every name is absolute
    /// (as in Twisted).
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use torsion::defer::{fail, succeed};
    /// use torsion_names::chain::ResolverChain;
    /// use torsion_names::error::DnsNameError;
    /// use torsion_names::proto::rr::rdata::A;
    /// use torsion_names::{Answer, Name, Query, RData, Record, Resolver};
    ///
    /// // Knows db.lab.test. only.
    /// let zone = |q: &Query| {
    ///     if q.name.to_string() != "db.lab.test." {
    ///         return fail(DnsNameError(q.clone()));
    ///     }
    ///     let a = Record::from_rdata(q.name.clone(), 60, RData::A(A(Ipv4Addr::new(192, 0, 2, 5))));
    ///     succeed(Answer { answers: vec![a], ..Answer::default() })
    /// };
    /// let chain = ResolverChain::new(vec![Box::new(zone)]).with_search(|name: &Name| {
    ///     let lab = Name::from_utf8("lab.test.").unwrap();
    ///     vec![name.clone().append_domain(&lab).unwrap(), Name::from_utf8(&format!("{name}.")).unwrap()]
    /// });
    /// let answer = chain.lookup_address("db").result().unwrap().unwrap();
    /// assert_eq!(answer.answers[0].name.to_string(), "db.lab.test.");
    /// // A trailing dot: absolute, not searched.
    /// assert!(chain.lookup_address("db.").result().unwrap().is_err());
    /// ```
    pub fn with_search(mut self, search: impl Fn(&Name) -> Vec<Name> + 'static) -> ResolverChain {
        self.search = Some(Rc::new(search));
        self
    }

    /// How many resolvers the chain holds.
    pub fn len(&self) -> usize {
        self.resolvers.len()
    }

    /// True for a chain of no resolver.
    pub fn is_empty(&self) -> bool {
        self.resolvers.is_empty()
    }
}

fn ask_from(resolvers: Rc<[Box<dyn Resolver>]>, index: usize, query: Query) -> Deferred<Answer> {
    let Some(resolver) = resolvers.get(index) else {
        return fail(Failure::without_backtrace(DomainError(query)));
    };
    let d = resolver.query(&query);
    if index + 1 == resolvers.len() {
        return d;
    }
    d.add_errback_deferred(move |failure| {
        if moves_on(&failure) {
            ask_from(resolvers, index + 1, query)
        } else {
            fail(failure)
        }
    })
}

impl Resolver for ResolverChain {
    /// Asks each resolver in turn; a relative name goes through the search list when the
    /// chain has one ([`with_search`](ResolverChain::with_search)).
    fn query(&self, query: &Query) -> Deferred<Answer> {
        match &self.search {
            Some(search) if !query.name.is_fqdn() => {
                let resolvers = self.resolvers.clone();
                let ask = move |q: &Query| ask_from(resolvers.clone(), 0, q.clone());
                search_in_turn(Rc::new(ask), query.clone(), search(&query.name))
            }
            _ => ask_from(self.resolvers.clone(), 0, query.clone()),
        }
    }

    /// Looks up `name`: with a search list, a name without a trailing dot is relative and
    /// searched; without one, every name is absolute (the trait's default).
    fn lookup_record(&self, name: &str, record_type: RecordType) -> Deferred<Answer> {
        match Name::from_utf8(name) {
            Ok(mut parsed) => {
                if self.search.is_none() {
                    parsed.set_fqdn(true);
                }
                self.query(&Query::new(parsed, record_type))
            }
            Err(error) => fail(error),
        }
    }
}

/// What a search has seen so far.
#[derive(Default)]
struct Searched {
    /// The first empty answer (NODATA), returned when no name has records.
    nodata: Option<Answer>,
    /// A name was answered SERVFAIL.
    servfail: Option<Failure>,
    /// The last failure.
    last: Option<Failure>,
}

/// Asks `query` under each of `names` in turn with `ask`, as glibc's `res_search` does: an
/// NXDOMAIN, a SERVFAIL or an empty answer moves on to the next name; the first answer with
/// records wins; any other failure (a timeout, a refusal) ends the search with it. When no
/// name had records: the first empty answer, else the SERVFAIL, else the last failure.
pub(crate) fn search_in_turn(
    ask: Rc<dyn Resolver>,
    query: Query,
    names: Vec<Name>,
) -> Deferred<Answer> {
    search_step(ask, query, Rc::new(names), 0, Searched::default())
}

fn search_step(
    ask: Rc<dyn Resolver>,
    query: Query,
    names: Rc<Vec<Name>>,
    i: usize,
    mut seen: Searched,
) -> Deferred<Answer> {
    let Some(name) = names.get(i) else {
        return match seen {
            Searched {
                nodata: Some(answer),
                ..
            } => succeed(answer),
            Searched {
                servfail: Some(failure),
                ..
            }
            | Searched {
                last: Some(failure),
                ..
            } => fail(failure),
            _ => fail(Failure::new(DnsNameError(query))),
        };
    };
    let mut asked = query.clone();
    asked.name = name.clone();
    ask.query(&asked).add_both_deferred(move |outcome| {
        match outcome {
            Ok(answer) if !answer.answers.is_empty() => return succeed(answer),
            Ok(answer) => {
                seen.nodata.get_or_insert(answer);
            }
            Err(failure) if failure.check::<DnsServerError>() => {
                seen.servfail.get_or_insert(failure);
            }
            Err(failure) if failure.check::<DnsNameError>() => seen.last = Some(failure),
            Err(failure) => return fail(failure),
        }
        search_step(ask, query, names, i + 1, seen)
    })
}
