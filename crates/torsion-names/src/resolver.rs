//! [`Resolver`], Twisted's `IResolver`: one [`query`](Resolver::query) method, and the typed
//! lookups (`lookup_address`, `lookup_mail_exchange`, ...) built on it.
//!
//! The client, an authority, the cache and a chain of them all implement it, so a server or a
//! program holds any of them the same way.
//!
//! ```
//! use torsion::defer::fail;
//! use torsion_names::error::DomainError;
//! use torsion_names::{Answer, Query, Resolver};
//!
//! let nothing = |q: &Query| fail::<Answer>(DomainError(q.clone()));
//! let failure = nothing.lookup_mail_exchange("example.org").result().unwrap().unwrap_err();
//! assert!(failure.check::<DomainError>());
//! ```
use std::fmt;

use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use torsion::defer::{fail, Deferred};

/// A question: a name, a record type and a class (Twisted's `dns.Query`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// The name asked about.
    pub name: Name,
    /// The type of record wanted (A, MX, ...; any type by number with `RecordType::Unknown`).
    pub record_type: RecordType,
    /// The class, nearly always IN.
    pub class: DNSClass,
}

impl Query {
    /// A question for `name`'s records of `record_type`, class IN.
    pub fn new(name: Name, record_type: RecordType) -> Query {
        Query {
            name,
            record_type,
            class: DNSClass::IN,
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.name, self.class, self.record_type)
    }
}

/// What a lookup returns: the answer, authority and additional sections (Twisted's
/// `(answers, authority, additional)` tuple).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// Records answering the question (with any CNAMEs that lead to them).
    pub answers: Vec<Record>,
    /// Records naming the authority: NS records, or the SOA of a negative answer.
    pub authority: Vec<Record>,
    /// Records the answer refers to (the addresses of MX or NS targets).
    pub additional: Vec<Record>,
}

/// A source of DNS answers (Twisted's `IResolver`).
///
/// Implement [`query`](Resolver::query); the `lookup_*` methods ask it for one record type.
/// A lookup that finds nothing fails with a type from [`error`](crate::error).
pub trait Resolver {
    /// Answers `query`.
    fn query(&self, query: &Query) -> Deferred<Answer>;

    /// Records of any type by its number or name, for `name` (Twisted's `lookupRecord`-style
    /// entry point; the other lookups call it).
    fn lookup_record(&self, name: &str, record_type: RecordType) -> Deferred<Answer> {
        match Name::from_utf8(name) {
            Ok(parsed) => self.query(&Query::new(parsed, record_type)),
            Err(error) => fail(error),
        }
    }

    /// IPv4 addresses: A records (Twisted's `lookupAddress`).
    fn lookup_address(&self, name: &str) -> Deferred<Answer> {
        self.lookup_record(name, RecordType::A)
    }

    /// IPv6 addresses: AAAA records (Twisted's `lookupIPV6Address`).
    fn lookup_ipv6_address(&self, name: &str) -> Deferred<Answer> {
        self.lookup_record(name, RecordType::AAAA)
    }

    /// Mail exchangers: MX records (Twisted's `lookupMailExchange`).
    fn lookup_mail_exchange(&self, name: &str) -> Deferred<Answer> {
        self.lookup_record(name, RecordType::MX)
    }

    /// Text records: TXT (Twisted's `lookupText`).
    fn lookup_text(&self, name: &str) -> Deferred<Answer> {
        self.lookup_record(name, RecordType::TXT)
    }

    /// Services: SRV records, `name` as `_service._proto.domain` (Twisted's `lookupService`).
    fn lookup_service(&self, name: &str) -> Deferred<Answer> {
        self.lookup_record(name, RecordType::SRV)
    }

    /// Name servers: NS records (Twisted's `lookupNameservers`).
    fn lookup_name_servers(&self, name: &str) -> Deferred<Answer> {
        self.lookup_record(name, RecordType::NS)
    }

    /// Aliases: CNAME records (Twisted's `lookupCanonicalName`).
    fn lookup_canonical_name(&self, name: &str) -> Deferred<Answer> {
        self.lookup_record(name, RecordType::CNAME)
    }

    /// Reverse lookups: PTR records, `name` as `4.3.2.1.in-addr.arpa` (Twisted's
    /// `lookupPointer`).
    fn lookup_pointer(&self, name: &str) -> Deferred<Answer> {
        self.lookup_record(name, RecordType::PTR)
    }

    /// The zone's start of authority: SOA (Twisted's `lookupAuthority`).
    fn lookup_authority(&self, name: &str) -> Deferred<Answer> {
        self.lookup_record(name, RecordType::SOA)
    }

    /// Every record: ANY (Twisted's `lookupAllRecords`).
    fn lookup_all_records(&self, name: &str) -> Deferred<Answer> {
        self.lookup_record(name, RecordType::ANY)
    }
}

/// A closure from a query to a Deferred answer is a resolver (handy in tests).
impl<F: Fn(&Query) -> Deferred<Answer>> Resolver for F {
    fn query(&self, query: &Query) -> Deferred<Answer> {
        self(query)
    }
}

/// A shared resolver is a resolver, so a chain or a server can hold `Rc<dyn Resolver>`.
impl<R: Resolver + ?Sized> Resolver for std::rc::Rc<R> {
    fn query(&self, query: &Query) -> Deferred<Answer> {
        (**self).query(query)
    }
}
