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
use std::net::IpAddr;

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use torsion::defer::{fail, succeed, Deferred};
use torsion::error::DnsLookupError;
use torsion::Failure;

/// How many CNAMEs [`Resolver::get_host_by_name`] follows before giving up (Twisted's
/// `effort=10`).
pub const CNAME_EFFORT: u32 = 10;

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
            Ok(mut parsed) => {
                // A name given to a lookup is absolute (Twisted has no relative names here);
                // marking it so makes it equal to the same name read off the wire.
                parsed.set_fqdn(true);
                self.query(&Query::new(parsed, record_type))
            }
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

    /// The first IPv4 address of `name`, following CNAMEs (Twisted's `getHostByName`).
    ///
    /// Asks for `name`'s A records; when the answer holds only a CNAME chain, the target's
    /// addresses are taken from the same answer or asked for, up to [`CNAME_EFFORT`] times.
    /// A name with no address fails with torsion's [`DnsLookupError`]; the lookup's own
    /// failures ([`DnsNameError`](crate::error::DnsNameError), a timeout, ...) pass through.
    ///
    /// Differs from Twisted, which asks for ANY records: servers answer ANY with little or
    /// nothing since RFC 8482, so this asks for A (docs/design.md, "getHostByName asks for A").
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use torsion::defer::succeed;
    /// use torsion_names::proto::rr::rdata::{A, CNAME};
    /// use torsion_names::{Answer, Name, Query, RData, Record, Resolver};
    /// use std::rc::Rc;
    ///
    /// let resolver = Rc::new(|q: &Query| {
    ///     let www: Name = "www.example.".parse().unwrap();
    ///     let host: Name = "host.example.".parse().unwrap();
    ///     let answers = if q.name == www {
    ///         vec![Record::from_rdata(www, 60, RData::CNAME(CNAME(host)))]
    ///     } else {
    ///         vec![Record::from_rdata(host, 60, RData::A(A(Ipv4Addr::new(192, 0, 2, 1))))]
    ///     };
    ///     succeed(Answer { answers, ..Answer::default() })
    /// });
    /// let ip = resolver.get_host_by_name("www.example").result().unwrap().unwrap();
    /// assert_eq!(ip.to_string(), "192.0.2.1");
    /// ```
    fn get_host_by_name(&self, name: &str) -> Deferred<IpAddr>
    where
        Self: Clone + Sized + 'static,
    {
        let resolver = self.clone();
        let owned = name.to_owned();
        self.lookup_address(name)
            .add_callback_deferred(move |answer| {
                follow_cnames(resolver, owned, answer, CNAME_EFFORT)
            })
    }
}

/// The address for `wanted` in `answer`, following its CNAMEs, or a new lookup of the last
/// CNAME's target while `effort` lasts.
fn follow_cnames<R: Resolver + Clone + 'static>(
    resolver: R,
    wanted: String,
    answer: Answer,
    effort: u32,
) -> Deferred<IpAddr> {
    let Ok(mut name) = Name::from_utf8(&wanted) else {
        return fail(Failure::new(DnsLookupError::not_found(&wanted)));
    };
    // A relative name found through a search list (the client's) is answered under the name
    // the search found: follow that one.
    if !wanted.ends_with('.') && !answer.answers.iter().any(|r| r.name.eq_ignore_root(&name)) {
        if let Some(first) = answer.answers.first() {
            name = first.name.clone();
        }
    }
    // Walk the CNAME chain inside this answer (bounded by the answer's length, so a loop of
    // CNAMEs cannot spin forever).
    for _ in 0..=answer.answers.len() {
        if let Some(ip) = answer.answers.iter().find_map(|r| match &r.data {
            RData::A(a) if r.name.eq_ignore_root(&name) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) if r.name.eq_ignore_root(&name) => Some(IpAddr::V6(a.0)),
            _ => None,
        }) {
            return succeed(ip);
        }
        match answer.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name.eq_ignore_root(&name) => Some(target.0.clone()),
            _ => None,
        }) {
            Some(target) => name = target,
            None => break,
        }
    }
    if name.eq_ignore_root(&Name::from_utf8(&wanted).unwrap_or_default()) || effort == 0 {
        return fail(Failure::new(DnsLookupError::not_found(&wanted)));
    }
    let target = name.to_utf8();
    let next = resolver.clone();
    resolver
        .lookup_address(&target)
        .add_callback_deferred(move |answer| follow_cnames(next, target, answer, effort - 1))
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

    /// The shared resolver's own `lookup_record` (a client or chain that searches relative
    /// names keeps doing so when shared).
    fn lookup_record(&self, name: &str, record_type: RecordType) -> Deferred<Answer> {
        (**self).lookup_record(name, record_type)
    }
}
