//! Answers from a hosts file (Twisted's `twisted.names.hosts.Resolver`).
//!
//! [`HostsResolver`] answers A, AAAA and ANY questions for the names of a hosts file
//! (`/etc/hosts` by default), and PTR questions for its addresses. A name the file does not
//! list fails with [`DomainError`], so a [chain](crate::Resolver) moves on to the next
//! resolver. The file is read again whenever its modification time or length changes
//! (checked at every lookup; Twisted reads the whole file at every lookup).
//!
//! [`HostsTable::parse`] is the parser alone: it never fails, skipping what it cannot read.
//!
//! ```
//! use torsion_names::hosts::HostsTable;
//!
//! let table = HostsTable::parse("127.0.0.1 localhost\n::1 localhost ip6-localhost # v6\n");
//! let found: Vec<String> = table.addresses("LOCALHOST").iter().map(|ip| ip.to_string()).collect();
//! assert_eq!(found, ["127.0.0.1", "::1"]);
//! assert_eq!(table.name_of("::1".parse().unwrap()), Some("localhost"));
//! ```
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use torsion::defer::{fail, succeed, Deferred};

use crate::error::DomainError;
use crate::resolver::{Answer, Query, Resolver};

/// The hosts file read by default.
pub const DEFAULT_HOSTS: &str = "/etc/hosts";

/// The TTL of the records a hosts file gives (Twisted's default, one hour).
pub const DEFAULT_TTL: u32 = 3600;

/// The largest hosts file read; past it the rest is ignored (a hosts file is a few KiB; this
/// keeps a mistaken path, `/dev/zero` say, from filling memory).
pub const MAX_HOSTS_FILE: u64 = 16 * 1024 * 1024;

/// A parsed hosts file: each name's addresses in file order, and each address's first name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsTable {
    by_name: HashMap<String, Vec<IpAddr>>,
    by_address: HashMap<IpAddr, String>,
}

/// A name as a table key: ASCII lower case, without the root's trailing dot.
fn key(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl HostsTable {
    /// Reads hosts-file text: `ADDRESS NAME [ALIAS...]` lines, `#` comments, blank lines.
    /// Lines whose first word is not an IP address are skipped; an IPv6 address may carry a
    /// zone (`fe80::1%eth0`), which is dropped.
    pub fn parse(text: &str) -> HostsTable {
        let mut table = HostsTable::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(first) = words.next() else { continue };
            let address = first.split('%').next().unwrap_or(first);
            let Ok(ip) = address.parse::<IpAddr>() else {
                continue;
            };
            for name in words {
                let name = key(name);
                if name.is_empty() {
                    continue;
                }
                let ips = table.by_name.entry(name.clone()).or_default();
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
                table.by_address.entry(ip).or_insert(name);
            }
        }
        table
    }

    /// `name`'s addresses, IPv4 and IPv6, in file order (case-insensitive; a trailing dot
    /// is ignored).
    pub fn addresses(&self, name: &str) -> &[IpAddr] {
        self.by_name.get(&key(name)).map_or(&[], Vec::as_slice)
    }

    /// The first name the file gives `ip` (for PTR answers).
    pub fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.by_address.get(&ip).map(String::as_str)
    }

    /// How many names the table holds.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when the file listed no name.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// What tells that a file changed: its modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read_bounded(path: &Path) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    if let Ok(file) = fs::File::open(path) {
        let _ = file.take(MAX_HOSTS_FILE).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

struct Loaded {
    stamp: Stamp,
    table: Rc<HostsTable>,
}

struct Inner {
    path: PathBuf,
    ttl: u32,
    loaded: RefCell<Loaded>,
}

/// A resolver answering from a hosts file (Twisted's `hosts.Resolver`); cheap to clone.
#[derive(Clone)]
pub struct HostsResolver {
    inner: Rc<Inner>,
}

impl Default for HostsResolver {
    fn default() -> Self {
        HostsResolver::new(DEFAULT_HOSTS)
    }
}

impl HostsResolver {
    /// A resolver for the hosts file at `path`, records with a TTL of [`DEFAULT_TTL`]. A
    /// missing file is an empty one (every name fails with [`DomainError`]) until it appears.
    pub fn new(path: impl Into<PathBuf>) -> HostsResolver {
        HostsResolver::with_ttl(path, DEFAULT_TTL)
    }

    /// As [`new`](Self::new), with the TTL given to the records (Twisted's `ttl`).
    pub fn with_ttl(path: impl Into<PathBuf>, ttl: u32) -> HostsResolver {
        HostsResolver {
            inner: Rc::new(Inner {
                path: path.into(),
                ttl,
                loaded: RefCell::new(Loaded {
                    stamp: None,
                    table: Rc::new(HostsTable::default()),
                }),
            }),
        }
    }

    /// The file's table now: read again if the file's modification time or length changed
    /// since the last read (or it appeared, or went away).
    pub fn table(&self) -> Rc<HostsTable> {
        let now = stamp(&self.inner.path);
        let mut loaded = self.inner.loaded.borrow_mut();
        if now != loaded.stamp || (now.is_some() && loaded.table.is_empty()) {
            let table = if now.is_some() {
                HostsTable::parse(&read_bounded(&self.inner.path))
            } else {
                HostsTable::default()
            };
            tracing::debug!(path = %self.inner.path.display(), names = table.len(), "hosts file read");
            *loaded = Loaded {
                stamp: now,
                table: Rc::new(table),
            };
        }
        loaded.table.clone()
    }

    fn answer(&self, query: &Query) -> Option<Answer> {
        let table = self.table();
        let ttl = self.inner.ttl;
        let record = |data| Record::from_rdata(query.name.clone(), ttl, data);
        let answers: Vec<Record> = match query.record_type {
            RecordType::A | RecordType::AAAA | RecordType::ANY => table
                .addresses(&query.name.to_ascii())
                .iter()
                .filter_map(|ip| match (ip, query.record_type) {
                    (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => {
                        Some(record(RData::A(A(*v4))))
                    }
                    (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
                        Some(record(RData::AAAA(AAAA(*v6))))
                    }
                    _ => None,
                })
                .collect(),
            RecordType::PTR => {
                let net = query.name.parse_arpa_name().ok()?;
                let full = match net.addr() {
                    IpAddr::V4(_) => net.prefix_len() == 32,
                    IpAddr::V6(_) => net.prefix_len() == 128,
                };
                let host = table.name_of(net.addr()).filter(|_| full)?;
                let mut target = Name::from_utf8(host).ok()?;
                target.set_fqdn(true);
                vec![record(RData::PTR(PTR(target)))]
            }
            _ => Vec::new(),
        };
        (!answers.is_empty()).then(|| Answer {
            answers,
            ..Answer::default()
        })
    }
}

impl Resolver for HostsResolver {
    fn query(&self, query: &Query) -> Deferred<Answer> {
        match self.answer(query) {
            Some(answer) => succeed(answer),
            None => fail(torsion::Failure::without_backtrace(DomainError(
                query.clone(),
            ))),
        }
    }
}
