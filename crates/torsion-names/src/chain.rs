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

use torsion::defer::{fail, Deferred};
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

/// Resolvers asked in turn until one answers (Twisted's `ResolverChain`); cheap to clone.
#[derive(Clone)]
pub struct ResolverChain {
    resolvers: Rc<[Box<dyn Resolver>]>,
}

impl ResolverChain {
    /// A chain asking `resolvers` in order. An empty chain fails every query with
    /// [`DomainError`], as Twisted's.
    pub fn new(resolvers: Vec<Box<dyn Resolver>>) -> ResolverChain {
        ResolverChain {
            resolvers: resolvers.into(),
        }
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
    fn query(&self, query: &Query) -> Deferred<Answer> {
        ask_from(self.resolvers.clone(), 0, query.clone())
    }
}
