//! Authoritative answers from a zone (Twisted's `twisted.names.authority`): [`FileAuthority`]
//! holds one zone's records, loaded from a BIND master file (Twisted's `BindAuthority`) or
//! given as records, and answers queries for names in it as a [`Resolver`].
//!
//! - A name in the zone with records of the asked type: those records in the answer, the
//!   zone's NS records in the authority section, and the addresses of the NS, MX and SRV
//!   targets that the zone holds in the additional section.
//! - A name with a CNAME: the CNAME in the answer, followed (inside the zone) by the records
//!   of the asked type at its target.
//! - A name at or under a delegation (NS records below the apex): a referral, the NS records
//!   in the authority section and their glue addresses in the additional section.
//! - A name that exists without records of that type (or an empty non-terminal): an empty
//!   answer with the SOA in the authority section (NODATA).
//! - A name in the zone that does not exist, under a wildcard (RFC 4592): the wildcard's
//!   records with the name asked as their owner. `*.example.com` answers for
//!   `anything.example.com` and `a.b.example.com` — not for names that exist, empty
//!   non-terminals (names with nothing but names below them) included, nor below them: the
//!   wildcard that applies is the one at the closest existing ancestor (the "closest
//!   encloser"), and when that has none, the name does not exist.
//! - A name in the zone that does not exist: [`AuthoritativeDomainError`] carrying the SOA,
//!   which a server answers NXDOMAIN with the SOA in the authority section.
//! - A name outside the zone: [`DomainError`], so that a chain asks its next resolver.
//!
//! ```
//! use torsion_names::authority::FileAuthority;
//! use torsion_names::error::AuthoritativeDomainError;
//! use torsion_names::{RData, Resolver};
//!
//! let zone = "$ORIGIN example.com.\n$TTL 3600\n\
//!     @ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n\
//!     @ IN NS ns1\n\
//!     ns1 IN A 192.0.2.1\n\
//!     www IN CNAME ns1\n";
//! let authority = FileAuthority::parse(zone, None, "example.com.zone").unwrap();
//! let answer = authority.lookup_address("www.example.com").result().unwrap().unwrap();
//! assert!(matches!(answer.answers[0].data, RData::CNAME(_)));
//! assert!(matches!(answer.answers[1].data, RData::A(_)));
//!
//! let missing = authority.lookup_address("nope.example.com").result().unwrap().unwrap_err();
//! let nx = missing.downcast_ref::<AuthoritativeDomainError>().unwrap();
//! assert!(matches!(nx.1.as_ref().unwrap().data, RData::SOA(_)));
//! ```
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;
use torsion::defer::{fail, succeed, Deferred};

use crate::error::{AuthoritativeDomainError, DomainError};
use crate::{Answer, Query, Resolver};

/// How many CNAMEs an answer follows inside the zone before it stops (a loop guard).
const MAX_CNAME_CHAIN: usize = 8;

/// A zone that could not be loaded: where (the file, and the line when it is known) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneError {
    /// The file (or the label given for text).
    pub source: String,
    /// The line (from 1) the problem is on, when the parser lets it be found.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.source, line, self.message),
            None => write!(f, "{}: {}", self.source, self.message),
        }
    }
}

impl std::error::Error for ZoneError {}

/// One zone's records, answering with authority (Twisted's `FileAuthority`; loaded from a
/// BIND master file it is Twisted's `BindAuthority`). See the [module](self) for the answers.
#[derive(Debug, Clone)]
pub struct FileAuthority {
    origin: Name,
    soa: Record,
    /// Records by lower-cased owner name, in zone order.
    records: HashMap<Name, Vec<Record>>,
    /// Every record but the SOA, in zone order: by owner name (DNSSEC's canonical order), then
    /// type (for zone transfers and writing out).
    order: Vec<Record>,
    /// Names with no records but names under them (empty non-terminals, RFC 4592): they
    /// exist, so a query for them is NODATA, not NXDOMAIN. Kept as a set so that telling
    /// costs one look-up, not a scan of the zone per query for a name that is not there.
    empty_non_terminals: HashSet<Name>,
    /// The zone's own NS records (at the apex), which go in the authority section of every
    /// positive answer: kept apart so that no answer looks them up.
    apex_ns: Vec<Record>,
    /// Whether the zone delegates any name below its apex (has NS records there): when it
    /// does not, no answer walks up the name looking for a delegation.
    delegates: bool,
}

impl FileAuthority {
    /// Loads a BIND master file (Twisted's `BindAuthority(filename)`): `$ORIGIN`, `$TTL`,
    /// `$INCLUDE` (relative to the file), `@`, relative names, parentheses and comments. With
    /// no `$ORIGIN`, the origin is the file's name, as with Twisted (`example.com` serves
    /// `example.com.`).
    ///
    /// # Errors
    /// A [`ZoneError`] naming the file and, where it can be told, the line.
    pub fn load(path: impl AsRef<Path>) -> Result<FileAuthority, ZoneError> {
        let path = path.as_ref();
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ZoneError {
            source: source.clone(),
            line: None,
            message: e.to_string(),
        })?;
        let origin = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| Name::from_ascii(n).ok())
            .filter(|n| n.num_labels() > 0);
        Self::parse_with_path(&text, origin, &source, Some(path))
    }

    /// Parses zone text; `origin` applies until a `$ORIGIN` line, and `source` names the text
    /// in errors. `$INCLUDE` is refused (there is no file to be relative to).
    ///
    /// # Errors
    /// A [`ZoneError`] naming `source` and, where it can be told, the line.
    pub fn parse(
        text: &str,
        origin: Option<Name>,
        source: &str,
    ) -> Result<FileAuthority, ZoneError> {
        Self::parse_with_path(text, origin, source, None)
    }

    fn parse_with_path(
        text: &str,
        origin: Option<Name>,
        source: &str,
        path: Option<&Path>,
    ) -> Result<FileAuthority, ZoneError> {
        let run = |text: &str| {
            // The parser is a dependency's; a panic in it on odd text is a load error here.
            std::panic::catch_unwind(|| {
                Parser::new(text, path.map(Path::to_path_buf), origin.clone()).parse()
            })
            .map_err(|_| "the zone parser failed on this text".to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        };
        let (zone_origin, sets) = match run(text) {
            Ok(parsed) => parsed,
            Err(message) => {
                let line = error_line(text, &message, &run);
                return Err(ZoneError {
                    source: source.to_string(),
                    line,
                    message,
                });
            }
        };
        let mut records = Vec::new();
        for set in sets.into_values() {
            records.extend(set.records_without_rrsigs().cloned());
        }
        // The parser keeps sets in a map; order them by owner, then type, so that answers and
        // transfers are the same from one load to the next.
        records.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then(u16::from(a.record_type()).cmp(&u16::from(b.record_type())))
        });
        Self::from_records(zone_origin, records).map_err(|message| ZoneError {
            source: source.to_string(),
            line: None,
            message,
        })
    }

    /// An authority for `origin` from its records: exactly one SOA, at the origin. Records
    /// outside the zone are left out (with a warning), as they could never be answered.
    ///
    /// # Errors
    /// What is wrong with the zone, as a sentence.
    pub fn from_records(
        origin: Name,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<FileAuthority, String> {
        let mut origin = origin.to_lowercase();
        origin.set_fqdn(true);
        let mut soa = None;
        let mut by_name: HashMap<Name, Vec<Record>> = HashMap::new();
        let mut order = Vec::new();
        for mut record in records {
            record.name.set_fqdn(true);
            if !origin.zone_of(&record.name) {
                tracing::warn!(
                    target: "torsion_names::authority",
                    "{record}: outside the zone {origin}, left out"
                );
                continue;
            }
            if let RData::SOA(_) = record.data {
                if record.name.to_lowercase() != origin {
                    return Err(format!(
                        "an SOA record for {} where the zone is {origin}: the SOA belongs at the origin",
                        record.name
                    ));
                }
                if soa.is_some() {
                    return Err(format!("more than one SOA record for {origin}"));
                }
                soa = Some(record);
                continue;
            }
            by_name
                .entry(record.name.to_lowercase())
                .or_default()
                .push(record.clone());
            order.push(record);
        }
        let Some(soa) = soa else {
            return Err(format!(
                "no SOA record for {origin}: a zone starts with one (\"@ IN SOA ns hostmaster serial refresh retry expire minimum\")"
            ));
        };
        by_name
            .entry(origin.clone())
            .or_default()
            .insert(0, soa.clone());
        let mut empty_non_terminals = HashSet::new();
        for name in by_name.keys() {
            let mut above = name.base_name();
            while above.num_labels() > origin.num_labels() && !by_name.contains_key(&above) {
                if !empty_non_terminals.insert(above.clone()) {
                    break;
                }
                above = above.base_name();
            }
        }
        let apex_ns: Vec<Record> = by_name[&origin]
            .iter()
            .filter(|r| r.record_type() == RecordType::NS)
            .cloned()
            .collect();
        let delegates = by_name.iter().any(|(name, records)| {
            name != &origin && records.iter().any(|r| r.record_type() == RecordType::NS)
        });
        Ok(FileAuthority {
            origin,
            soa,
            records: by_name,
            order,
            empty_non_terminals,
            apex_ns,
            delegates,
        })
    }

    /// The zone's origin (its apex), lower-case.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The zone's SOA record.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// Every record of the zone, SOA first (the order of a zone transfer, without its
    /// closing SOA).
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        std::iter::once(&self.soa).chain(self.order.iter())
    }

    /// The records of a zone transfer (AXFR, RFC 5936): the SOA, every other record, and
    /// the SOA again.
    pub fn transfer(&self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.order.len() + 2);
        out.push(self.soa.clone());
        out.extend(self.order.iter().cloned());
        out.push(self.soa.clone());
        out
    }

    /// The zone as master-file text (`$ORIGIN`, then one absolute record a line), which
    /// [`parse`](Self::parse) reads back to the same records.
    pub fn to_zone_text(&self) -> String {
        let mut out = format!("$ORIGIN {}\n", self.origin);
        for record in self.records() {
            out.push_str(&zone_line(record));
            out.push('\n');
        }
        out
    }

    /// Whether `name` is in this zone (the origin or under it).
    pub fn serves(&self, name: &Name) -> bool {
        self.origin.zone_of(name)
    }

    fn at(&self, name: &Name) -> &[Record] {
        self.records.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    fn of_type<'a>(&'a self, name: &Name, t: RecordType) -> impl Iterator<Item = &'a Record> {
        self.at(name)
            .iter()
            .filter(move |r| t == RecordType::ANY || r.record_type() == t)
    }

    /// The delegation point at or above `name` (below the apex), if any.
    fn delegation(&self, name: &Name) -> Option<Name> {
        if !self.delegates {
            return None;
        }
        let mut cut = name.clone();
        while cut.num_labels() > self.origin.num_labels() {
            if self.of_type(&cut, RecordType::NS).next().is_some() {
                return Some(cut);
            }
            cut = cut.base_name();
        }
        None
    }

    /// Whether `name` exists: it has records, or names below it do.
    fn exists(&self, name: &Name) -> bool {
        self.records.contains_key(name) || self.empty_non_terminals.contains(name)
    }

    /// The wildcard that answers for `name`, which does not exist (RFC 4592 section 3.3.1):
    /// `*.` and the closest existing ancestor of `name`, when the zone has it.
    fn wildcard_for(&self, name: &Name) -> Option<Name> {
        let mut encloser = name.base_name();
        while encloser.num_labels() > self.origin.num_labels() && !self.exists(&encloser) {
            encloser = encloser.base_name();
        }
        let wildcard = encloser.prepend_label("*").ok()?;
        self.records.contains_key(&wildcard).then_some(wildcard)
    }

    /// The zone's addresses (A and AAAA) of `target`. Names compare and hash without regard
    /// to case, so it is looked up as it is (made absolute if it is not).
    fn addresses(&self, target: &Name, into: &mut Vec<Record>) {
        let absolute;
        let target = if target.is_fqdn() {
            target
        } else {
            let mut t = target.clone();
            t.set_fqdn(true);
            absolute = t;
            &absolute
        };
        if !self.serves(target) {
            return;
        }
        for r in self.at(target) {
            if matches!(r.record_type(), RecordType::A | RecordType::AAAA) && !into.contains(r) {
                into.push(r.clone());
            }
        }
    }

    /// Answers `query` (the work of [`Resolver::query`], without the Deferred).
    ///
    /// # Errors
    /// [`DomainError`] outside the zone, [`AuthoritativeDomainError`] (with the SOA) for a
    /// name the zone does not have.
    pub fn lookup(&self, query: &Query) -> Result<Answer, torsion::Failure> {
        // Names compare and hash without regard to case: no need to lower it.
        let mut name = query.name.clone();
        // "www.example.com" as typed is the absolute name here.
        name.set_fqdn(true);
        if !self.serves(&name) || !matches!(query.class, DNSClass::IN | DNSClass::ANY) {
            return Err(torsion::Failure::without_backtrace(DomainError(
                query.clone(),
            )));
        }
        let mut answer = Answer::default();
        if let Some(cut) = self.delegation(&name) {
            // A referral: the child zone's servers, and the addresses we hold for them.
            for ns in self.of_type(&cut, RecordType::NS) {
                answer.authority.push(ns.clone());
                if let RData::NS(target) = &ns.data {
                    self.addresses(&target.0, &mut answer.additional);
                }
            }
            return Ok(answer);
        }
        // Records are read at the name, or at the wildcard that answers for it, with the
        // name asked as their owner (synthesised).
        let mut current = name;
        let mut synthesised = None;
        if !self.exists(&current) {
            let Some(wildcard) = self.wildcard_for(&current) else {
                return Err(torsion::Failure::without_backtrace(
                    AuthoritativeDomainError(query.clone(), Some(self.soa.clone())),
                ));
            };
            let mut owner = query.name.clone();
            owner.set_fqdn(true);
            synthesised = Some((wildcard.clone(), owner));
            current = wildcard;
        }
        let owned = |r: &Record, at: &Name| -> Record {
            let mut r = r.clone();
            if let Some((wildcard, owner)) = &synthesised {
                if at == wildcard {
                    r.name = owner.clone();
                }
            }
            r
        };
        for _ in 0..=MAX_CNAME_CHAIN {
            // The records at the name, looked up once for both the type and a CNAME.
            let here = self.at(&current);
            let asked = |r: &&Record| {
                query.record_type == RecordType::ANY || r.record_type() == query.record_type
            };
            let before = answer.answers.len();
            answer
                .answers
                .extend(here.iter().filter(asked).map(|r| owned(r, &current)));
            if answer.answers.len() > before {
                break;
            }
            let cname = here.iter().find(|r| r.record_type() == RecordType::CNAME);
            match cname {
                Some(c) if query.record_type != RecordType::CNAME => {
                    answer.answers.push(owned(c, &current));
                    let RData::CNAME(target) = &c.data else { break };
                    current = target.0.clone();
                    current.set_fqdn(true);
                    if !self.serves(&current) {
                        break;
                    }
                }
                _ => break,
            }
        }
        let positive = answer
            .answers
            .iter()
            .any(|r| query.record_type == RecordType::ANY || r.record_type() == query.record_type);
        if !positive && answer.answers.is_empty() {
            answer.authority.push(self.soa.clone());
            return Ok(answer);
        }
        if query.record_type != RecordType::NS {
            answer.authority.extend(self.apex_ns.iter().cloned());
        }
        let mut additional = Vec::new();
        for r in answer.answers.iter().chain(answer.authority.iter()) {
            let target = match &r.data {
                RData::NS(ns) => &ns.0,
                RData::MX(mx) => &mx.exchange,
                RData::SRV(srv) => &srv.target,
                _ => continue,
            };
            self.addresses(target, &mut additional);
        }
        additional.retain(|r| !answer.answers.contains(r));
        answer.additional = additional;
        Ok(answer)
    }
}

impl Resolver for FileAuthority {
    fn query(&self, query: &Query) -> Deferred<Answer> {
        match self.lookup(query) {
            Ok(answer) => succeed(answer),
            Err(failure) => fail(failure),
        }
    }
}

/// One record as a master-file line. Hickory's text form is used, except for TXT, whose
/// strings it writes bare: here each is quoted, with `"`, `\\` and unprintable bytes escaped
/// (RFC 1035 5.1), so that spaces, semicolons and quotes read back as they were.
fn zone_line(record: &Record) -> String {
    let RData::TXT(txt) = &record.data else {
        return record.to_string();
    };
    let mut line = format!("{} {} {} TXT", record.name, record.ttl, record.dns_class);
    for part in txt.txt_data.iter() {
        line.push_str(" \"");
        for &b in part.iter() {
            match b {
                b'"' | b'\\' => {
                    line.push('\\');
                    line.push(char::from(b));
                }
                b' '..=b'~' => line.push(char::from(b)),
                _ => line.push_str(&format!("\\{b:03}")),
            }
        }
        line.push('"');
    }
    line
}

/// The line a parse error is on: the shortest prefix of the text (in whole lines) that fails
/// with the same message. The parser stops at its first error, so a longer prefix fails the
/// same way and a shorter one parses (or fails otherwise): a binary search finds it.
fn error_line<T>(
    text: &str,
    message: &str,
    run: &dyn Fn(&str) -> Result<T, String>,
) -> Option<usize> {
    let ends: Vec<usize> = text
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .chain(std::iter::once(text.len()))
        .collect();
    let fails_at = |k: usize| matches!(run(&text[..ends[k]]), Err(m) if m == message);
    let (mut lo, mut hi) = (0, ends.len() - 1);
    if !fails_at(hi) {
        return None;
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails_at(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo + 1)
}
