//! The failures a DNS lookup ends with, as Twisted's `twisted.names.error`.
//!
//! Each carries the [`Query`] it answers. A Deferred from a [`Resolver`](crate::Resolver)
//! fails with one of these inside its [`Failure`](torsion::Failure); trap it by type:
//!
//! ```
//! use torsion::defer::fail;
//! use torsion_names::error::DnsNameError;
//! use torsion_names::{Answer, Query, RecordType};
//!
//! let query = Query::new("nowhere.example.".parse().unwrap(), RecordType::A);
//! let d = fail::<Answer>(DnsNameError(query));
//! let failure = d.result().unwrap().unwrap_err();
//! assert!(failure.check::<DnsNameError>());
//! ```
use std::fmt;

use hickory_proto::rr::Record;

use crate::Query;

macro_rules! query_errors {
    ($($(#[$doc:meta])* $name:ident => $what:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub Query);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($what, ": {}"), self.0)
            }
        }

        impl std::error::Error for $name {}
    )*};
}

query_errors! {
    /// The name is not in a domain this resolver knows (Twisted's `DomainError`): a
    /// [`ResolverChain`-style](crate::Resolver) chain moves on to its next resolver.
    DomainError => "not a domain this resolver serves";
    /// A server answered NXDOMAIN (Twisted's `DNSNameError`).
    DnsNameError => "no such domain name (NXDOMAIN)";
    /// A server answered FORMERR: it could not read the query (Twisted's `DNSFormatError`).
    DnsFormatError => "the server could not read the query (FORMERR)";
    /// A server answered SERVFAIL (Twisted's `DNSServerError`).
    DnsServerError => "the server failed (SERVFAIL)";
    /// A server answered NOTIMP (Twisted's `DNSNotImplementedError`).
    DnsNotImplementedError => "the server does not implement this query (NOTIMP)";
    /// A server answered REFUSED (Twisted's `DNSQueryRefusedError`).
    DnsQueryRefusedError => "the server refused the query (REFUSED)";
    /// A server answered with another error code (Twisted's `DNSUnknownError`).
    DnsUnknownError => "the server answered with an unknown error";
    /// No answer came before the last timeout (Twisted's `DNSQueryTimeoutError`).
    DnsQueryTimeoutError => "no answer before the timeout";
}

/// The name does not exist, said by a zone's own authority (Twisted's
/// `AuthoritativeDomainError`): final, a chain stops here and a server answers NXDOMAIN.
///
/// The second field is the zone's SOA record, when the authority knows it: a server puts it
/// in the authority section of its NXDOMAIN answer, so that resolvers can cache the absence
/// for the SOA's negative TTL (RFC 2308).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthoritativeDomainError(pub Query, pub Option<Record>);

impl fmt::Display for AuthoritativeDomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no such name in an authoritative zone: {}", self.0)
    }
}

impl std::error::Error for AuthoritativeDomainError {}
