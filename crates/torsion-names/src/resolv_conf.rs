//! `/etc/resolv.conf`: the name servers to ask, the search list, the timeouts
//! (Twisted's `client.Resolver.parseConfig` and `maybeParseConfig`).
//!
//! [`ResolvConf::parse`] reads the text and never fails: unknown lines and malformed values
//! are skipped, as glibc does. With no `nameserver` line the server is `127.0.0.1:53`, as
//! glibc and Twisted use. [`ResolvConfFile`] holds a parsed file and reads it again when it
//! changed, looking at most once per [`RELOAD_INTERVAL`] of the clock it is given (see
//! [`ResolvConfFile::current`]).
//!
//! ```
//! use torsion_names::resolv_conf::ResolvConf;
//!
//! let conf = ResolvConf::parse("nameserver 192.0.2.53\nnameserver 2001:db8::53\n\
//!                               search example.com lab.example.com\noptions timeout:2 attempts:3\n");
//! assert_eq!(conf.nameservers[0].to_string(), "192.0.2.53:53");
//! assert_eq!(conf.nameservers[1].to_string(), "[2001:db8::53]:53");
//! assert_eq!(conf.search, ["example.com", "lab.example.com"]);
//! assert_eq!(conf.timeouts(), Some(vec![2.0, 2.0, 2.0]));
//! ```
use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The file read by default.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";

/// How often, in seconds of the reactor's clock, the file is looked at for changes
/// (Twisted's `_resolvReadInterval`, 60).
pub const RELOAD_INTERVAL: f64 = 60.0;

/// glibc's limit on name servers (`MAXNS`); later lines are ignored, as glibc does.
pub const MAX_NAMESERVERS: usize = 3;

/// glibc's limit on search domains; later ones are ignored (this also bounds memory).
pub const MAX_SEARCH: usize = 6;

/// The largest file read; the rest is ignored.
const MAX_FILE: u64 = 64 * 1024;

/// A parsed resolv.conf.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvConf {
    /// The servers to ask, in order; never empty (`127.0.0.1:53` when the file names none).
    pub nameservers: Vec<SocketAddr>,
    /// The search list (`search`, or the one `domain`; the later line wins, as in glibc).
    pub search: Vec<String>,
    /// `options ndots:N` (default 1).
    pub ndots: u8,
    /// `options timeout:N`, seconds per try, when given.
    pub timeout: Option<u32>,
    /// `options attempts:N`, rounds over the servers, when given.
    pub attempts: Option<u32>,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf {
            nameservers: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)],
            search: Vec::new(),
            ndots: 1,
            timeout: None,
            attempts: None,
        }
    }
}

impl ResolvConf {
    /// Reads resolv.conf text. `#` and `;` start comments; `nameserver ADDRESS` (IPv4 or
    /// IPv6, an IPv6 zone after `%` dropped, port 53), `domain NAME`, `search NAME...`,
    /// `options ndots:N timeout:N attempts:N` (glibc caps: 15, 30, 5).
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            ..ResolvConf::default()
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    let Some(addr) = words.next() else { continue };
                    let addr = addr.split('%').next().unwrap_or(addr);
                    if let Ok(ip) = addr.parse::<IpAddr>() {
                        if conf.nameservers.len() < MAX_NAMESERVERS {
                            conf.nameservers.push(SocketAddr::new(ip, 53));
                        }
                    }
                }
                Some("domain") => {
                    if let Some(domain) = words.next() {
                        conf.search = vec![domain.trim_end_matches('.').to_owned()];
                    }
                }
                Some("search") => {
                    conf.search = words
                        .take(MAX_SEARCH)
                        .map(|d| d.trim_end_matches('.').to_owned())
                        .collect();
                }
                Some("options") => {
                    for option in words {
                        let (name, value) = option.split_once(':').unwrap_or((option, ""));
                        let value = value.parse::<u32>().ok();
                        match (name, value) {
                            ("ndots", Some(n)) => conf.ndots = n.min(15) as u8,
                            ("timeout", Some(n)) => conf.timeout = Some(n.clamp(1, 30)),
                            ("attempts", Some(n)) => conf.attempts = Some(n.clamp(1, 5)),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers = ResolvConf::default().nameservers;
        }
        conf
    }

    /// The client's timeouts from `options timeout`/`attempts` (glibc defaults 5 and 2 for
    /// the one not given), or `None` when the file sets neither, leaving Twisted's
    /// `(1, 3, 11, 45)`. Each timeout is one round over every server, as in Twisted.
    pub fn timeouts(&self) -> Option<Vec<f64>> {
        if self.timeout.is_none() && self.attempts.is_none() {
            return None;
        }
        let each = f64::from(self.timeout.unwrap_or(5));
        Some(vec![each; self.attempts.unwrap_or(2) as usize])
    }
}

type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A resolv.conf file, parsed, and parsed again when it changes.
#[derive(Debug)]
pub struct ResolvConfFile {
    path: PathBuf,
    stamp: Stamp,
    checked_at: Option<f64>,
    conf: ResolvConf,
}

impl ResolvConfFile {
    /// Reads the file at `path` now (a missing file reads as an empty one, as Twisted does).
    pub fn open(path: impl Into<PathBuf>, now: f64) -> ResolvConfFile {
        let mut file = ResolvConfFile {
            path: path.into(),
            stamp: None,
            checked_at: None,
            conf: ResolvConf::default(),
        };
        file.reload(now);
        file
    }

    /// The path read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reload(&mut self, now: f64) {
        self.checked_at = Some(now);
        let stamp = stamp(&self.path);
        if stamp.is_some() && stamp == self.stamp {
            return;
        }
        let mut text = Vec::new();
        if let Ok(file) = fs::File::open(&self.path) {
            let _ = file.take(MAX_FILE).read_to_end(&mut text);
        }
        self.conf = ResolvConf::parse(&String::from_utf8_lossy(&text));
        self.stamp = stamp;
        tracing::debug!(path = %self.path.display(), servers = ?self.conf.nameservers, "resolv.conf read");
    }

    /// The configuration at time `now` (seconds of the reactor's clock): when
    /// [`RELOAD_INTERVAL`] has passed since the file was last looked at, its modification
    /// time and length are checked and it is read again if either changed.
    ///
    /// Twisted re-checks on a 60-second timer of its own; here the check is made by the
    /// lookup that comes after the interval, so an idle resolver keeps no timer and costs
    /// nothing (docs/design.md, "resolv.conf is re-read lazily").
    pub fn current(&mut self, now: f64) -> &ResolvConf {
        if self
            .checked_at
            .is_none_or(|at| now - at >= RELOAD_INTERVAL || now < at)
        {
            self.reload(now);
        }
        &self.conf
    }
}
