//! The NNTP server's state machine, without network I/O: bytes in, responses out.
//!
//! [`ServerCore`] reads commands from what the client sent ([`receive`](ServerCore::receive))
//! and answers them from its [`Store`] in order, pipelined or not; responses pile up in
//! [`take_output`](ServerCore::take_output). Only a login needs a decision from outside:
//! `AUTHINFO PASS` comes out of [`poll`](ServerCore::poll) as [`Event::Auth`] and nothing
//! further is read until [`auth_succeeded`](ServerCore::auth_succeeded) or
//! [`auth_failed`](ServerCore::auth_failed) answers it. [`Event::Close`] says the
//! connection is to close once the output is sent. Past [`MAX_OUTPUT`] bytes of answers not
//! taken, it stops too, until they are.
//!
//! Memory is bounded: a command line is at most [`Limits::max_line`] bytes (512 with its
//! CRLF, RFC 3977 3.1; a longer one is dropped as it arrives and answered 501), a posted
//! article at most [`Limits::max_article_size`] (dropped as it arrives past that, answered
//! 441 at its end), and after [`Limits::max_errors`] refused commands the client is answered
//! 400 and dropped.
//!
//! ```
//! use torsion_news::server_core::{Config, ServerCore};
//! use torsion_news::store::Store;
//!
//! let store = Store::in_memory();
//! store.create_group("local.test", "", 0).unwrap();
//! let mut core = ServerCore::new(Config::new("news.example"), store);
//! core.receive(b"GROUP local.test\r\nPOST\r\n");
//! assert_eq!(core.poll(), None);
//! core.receive(b"From: a@b\r\nNewsgroups: local.test\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nARTICLE 1\r\n");
//! assert_eq!(core.poll(), None);
//! let out = String::from_utf8(core.take_output()).unwrap();
//! assert!(out.starts_with("200 news.example"));
//! assert!(out.contains("211 0 1 0 local.test\r\n340 "));
//! assert!(out.contains("240 Article received OK\r\n220 1 <"));
//! assert!(out.ends_with("\r\n\r\n..dot\r\n.\r\n"));
//! ```
use crate::store::{GroupInfo, Overview, Store};
use crate::wire::{
    dot_stuff, format_date_compact, format_date_rfc5322, header, headers, parse_command_at,
    split_article, wildmat, Command, ListKind, Spec,
};

/// The most output the core makes before it stops reading commands until
/// [`take_output`](ServerCore::take_output) takes it (64 KiB; one answer may pass it by up to
/// an article or a listing): a client that pipelines commands and reads no answers is
/// stopped by its connection's write buffer, not by the server's memory.
pub const MAX_OUTPUT: usize = 64 << 10;

/// The limits a server holds its clients to.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The longest command line, CRLF included (512, RFC 3977 3.1).
    pub max_line: usize,
    /// The largest article POST takes, in bytes after dot-unstuffing (1 MiB).
    pub max_article_size: usize,
    /// Refused commands before the client is answered 400 and dropped (20).
    pub max_errors: u32,
    /// Failed logins before the client is dropped (3).
    pub max_auth_failures: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line: 512,
            max_article_size: 1 << 20,
            max_errors: 20,
            max_auth_failures: 3,
        }
    }
}

/// Who may post.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Posting {
    /// Anyone.
    Open,
    /// Clients logged in with AUTHINFO (the server has a portal).
    AuthRequired,
    /// Nobody: a read-only server.
    Closed,
}

/// How a server behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// Its name, in the greeting, `Path:` and the message-ids it makes.
    pub hostname: String,
    /// Its limits.
    pub limits: Limits,
    /// Who may post ([`Posting::Open`] by default).
    pub posting: Posting,
    /// Whether AUTHINFO USER/PASS is offered (a portal checks it).
    pub auth: bool,
    /// Whether NEWNEWS is answered (off by default: listing every new article of a big
    /// server is costly, and RFC 3977 7.4 lets servers refuse it).
    pub newnews: bool,
}

impl Config {
    /// Defaults for a server named `hostname`: open posting, no AUTHINFO, no NEWNEWS.
    pub fn new(hostname: &str) -> Config {
        Config {
            hostname: hostname.to_owned(),
            limits: Limits::default(),
            posting: Posting::Open,
            auth: false,
            newnews: false,
        }
    }
}

/// What the core needs decided, or tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// AUTHINFO USER and PASS were given: answer with
    /// [`auth_succeeded`](ServerCore::auth_succeeded) or [`auth_failed`](ServerCore::auth_failed).
    Auth {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// The connection is to close once the output is sent (QUIT, too many errors or
    /// failed logins).
    Close,
}

enum Phase {
    Command,
    Post {
        article: Vec<u8>,
        oversize: bool,
        midline: bool,
    },
}

/// One NNTP server connection's state; see the [module](self).
pub struct ServerCore {
    config: Config,
    store: Store,
    input: Vec<u8>,
    output: Vec<u8>,
    phase: Phase,
    discarding: bool,
    group: Option<String>,
    current: Option<u64>,
    user: Option<String>,
    pending_user: Option<String>,
    awaiting_auth: bool,
    errors: u32,
    auth_failures: u32,
    closed: bool,
    now: i64,
}

const OVERVIEW_FMT: &str =
    "Subject:\r\nFrom:\r\nDate:\r\nMessage-ID:\r\nReferences:\r\n:bytes\r\n:lines\r\n";

const HELP: &str = "ARTICLE [message-id|number]\r\nAUTHINFO USER name|PASS password\r\n\
BODY [message-id|number]\r\nCAPABILITIES\r\nDATE\r\nGROUP newsgroup\r\n\
HDR header [message-id|range]\r\nHEAD [message-id|number]\r\nHELP\r\nLAST\r\n\
LIST [ACTIVE [wildmat]|NEWSGROUPS [wildmat]|OVERVIEW.FMT|HEADERS]\r\n\
LISTGROUP [newsgroup [range]]\r\nMODE READER\r\nNEWGROUPS [yy]yymmdd hhmmss [GMT]\r\n\
NEWNEWS wildmat [yy]yymmdd hhmmss [GMT]\r\nNEXT\r\nOVER [range|message-id]\r\nPOST\r\nQUIT\r\n\
STAT [message-id|number]\r\nXHDR header [message-id|range]\r\nXOVER [range]\r\n";

fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b':')
}

impl ServerCore {
    /// A connection to a server configured by `config`, serving `store`; its greeting is
    /// already in the output.
    pub fn new(config: Config, store: Store) -> ServerCore {
        let mut core = ServerCore {
            config,
            store,
            input: Vec::new(),
            output: Vec::new(),
            phase: Phase::Command,
            discarding: false,
            group: None,
            current: None,
            user: None,
            pending_user: None,
            awaiting_auth: false,
            errors: 0,
            auth_failures: 0,
            closed: false,
            now: 0,
        };
        let line = if core.may_post() {
            format!(
                "200 {} Torsion NNTP service ready, posting allowed\r\n",
                core.config.hostname
            )
        } else {
            format!(
                "201 {} Torsion NNTP service ready, posting prohibited\r\n",
                core.config.hostname
            )
        };
        core.output.extend_from_slice(line.as_bytes());
        core
    }

    /// Sets the time (Unix seconds) for DATE, NEWGROUPS' two-digit years, and posted
    /// articles' `Date:` and arrival.
    pub fn set_now(&mut self, now: i64) {
        self.now = now;
    }

    /// Takes bytes from the client. Nothing is answered until [`poll`](Self::poll).
    pub fn receive(&mut self, data: &[u8]) {
        if self.closed {
            return;
        }
        self.input.extend_from_slice(data);
    }

    /// The responses made so far, taken.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Bytes received and not yet read.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// Whether the connection is over (QUIT, errors, time-out).
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Whether [`MAX_OUTPUT`] bytes of answers wait to be taken: [`poll`](Self::poll)
    /// answers nothing more until they are.
    pub fn output_full(&self) -> bool {
        self.output.len() >= MAX_OUTPUT
    }

    /// Whether a login waits for its answer.
    pub fn awaiting(&self) -> bool {
        self.awaiting_auth
    }

    /// Whether an article is being received (POST's 340 was sent).
    pub fn in_post(&self) -> bool {
        matches!(self.phase, Phase::Post { .. })
    }

    /// The user logged in, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    fn may_post(&self) -> bool {
        match self.config.posting {
            Posting::Open => true,
            Posting::AuthRequired => self.user.is_some(),
            Posting::Closed => false,
        }
    }

    fn say(&mut self, line: &str) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    /// Counts a refused command; past the limit, answers 400 and closes.
    fn refused(&mut self) -> Option<Event> {
        self.errors += 1;
        if self.errors >= self.config.limits.max_errors {
            self.say("400 Too many errors, closing connection");
            self.closed = true;
            self.input.clear();
            return Some(Event::Close);
        }
        None
    }

    /// The idle time-out fired: answers 400 and closes (an article being posted is
    /// dropped).
    pub fn timed_out(&mut self) {
        if self.closed {
            return;
        }
        self.say("400 Idle timeout, closing connection");
        self.closed = true;
        self.phase = Phase::Command;
        self.input.clear();
    }

    /// The login of the last [`Event::Auth`] succeeded, as `user`.
    pub fn auth_succeeded(&mut self, user: &str) {
        if !self.awaiting_auth {
            return;
        }
        self.awaiting_auth = false;
        self.user = Some(user.to_owned());
        self.say("281 Authentication accepted");
    }

    /// The login of the last [`Event::Auth`] failed: answers 481; returns true (and closes)
    /// after [`Limits::max_auth_failures`] failures.
    pub fn auth_failed(&mut self) -> bool {
        if !self.awaiting_auth {
            return false;
        }
        self.awaiting_auth = false;
        self.auth_failures += 1;
        self.say("481 Authentication failed");
        if self.auth_failures >= self.config.limits.max_auth_failures {
            self.say("400 Too many failed logins, closing connection");
            self.closed = true;
            self.input.clear();
            return true;
        }
        false
    }

    /// Answers what was received, until the input runs out or something must be decided.
    pub fn poll(&mut self) -> Option<Event> {
        loop {
            if self.closed || self.awaiting_auth || self.output_full() {
                return None;
            }
            if self.in_post() {
                if !self.read_article() {
                    return None;
                }
                continue;
            }
            if self.discarding {
                match memchr::memchr(b'\n', &self.input) {
                    None => {
                        self.input.clear();
                        return None;
                    }
                    Some(i) => {
                        self.input.drain(..=i);
                        self.discarding = false;
                        self.say("501 Line too long");
                        if let Some(e) = self.refused() {
                            return Some(e);
                        }
                        continue;
                    }
                }
            }
            let Some(i) = memchr::memchr(b'\n', &self.input) else {
                if self.input.len() > self.config.limits.max_line {
                    self.input.clear();
                    self.discarding = true;
                }
                return None;
            };
            let line: Vec<u8> = self.input.drain(..=i).collect();
            if line.len() > self.config.limits.max_line {
                self.say("501 Line too long");
                if let Some(e) = self.refused() {
                    return Some(e);
                }
                continue;
            }
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            match parse_command_at(body, self.now) {
                Ok(command) => {
                    if let Some(e) = self.command(command) {
                        return Some(e);
                    }
                }
                Err(e) => {
                    self.output.extend_from_slice(e.response());
                    if let Some(e) = self.refused() {
                        return Some(e);
                    }
                }
            }
        }
    }

    /// Reads the article being posted; true once it ended (and was answered).
    fn read_article(&mut self) -> bool {
        let max = self.config.limits.max_article_size;
        loop {
            let Phase::Post {
                article,
                oversize,
                midline,
            } = &mut self.phase
            else {
                return true;
            };
            let Some(i) = memchr::memchr(b'\n', &self.input) else {
                if self.input.len() > max {
                    // A line longer than the whole limit: the article is too large.
                    self.input.clear();
                    *article = Vec::new();
                    *oversize = true;
                    *midline = true;
                }
                return false;
            };
            let line: Vec<u8> = self.input.drain(..=i).collect();
            if *midline {
                *midline = false;
                continue;
            }
            let content = line.strip_suffix(b"\n").unwrap_or(&line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if content == b"." {
                let article = std::mem::take(article);
                let oversize = *oversize;
                self.phase = Phase::Command;
                self.finish_post(article, oversize);
                return true;
            }
            let content = content.strip_prefix(b".").unwrap_or(content);
            if !*oversize {
                if article.len() + content.len() + 2 > max {
                    *article = Vec::new();
                    *oversize = true;
                } else {
                    article.extend_from_slice(content);
                    article.extend_from_slice(b"\r\n");
                }
            }
        }
    }

    fn finish_post(&mut self, article: Vec<u8>, oversize: bool) {
        if oversize {
            let line = format!(
                "441 Article too large (at most {} bytes)",
                self.config.limits.max_article_size
            );
            self.say(&line);
            return;
        }
        match self.prepare(&article) {
            Err(why) => self.say(&format!("441 {why}")),
            Ok((text, groups)) => match self.store.post(&text, &groups, self.now) {
                Ok(_) => self.say("240 Article received OK"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.say("441 No such newsgroup here");
                }
                Err(e) => {
                    tracing::error!("NNTP: storing an article failed: {e}");
                    self.say("441 Posting failed: the article could not be stored");
                }
            },
        }
    }

    /// Checks a posted article's headers and adds those missing (Path, Message-ID, Date):
    /// the article to store and its groups, or why it is refused.
    fn prepare(&self, article: &[u8]) -> Result<(Vec<u8>, Vec<String>), String> {
        let (head, body) = split_article(article);
        if head.is_empty() || !article[head.len()..].starts_with(b"\r\n") {
            return Err("Article has no header section".to_owned());
        }
        for raw in head.split(|&b| b == b'\n') {
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.is_empty() || line[0] == b' ' || line[0] == b'\t' {
                continue;
            }
            let name = line.split(|&b| b == b':').next().unwrap_or(line);
            if !line.contains(&b':') || !is_header_name(&String::from_utf8_lossy(name)) {
                return Err("Malformed header line".to_owned());
            }
        }
        let hs = headers(head);
        for required in ["From", "Newsgroups", "Subject"] {
            if header(&hs, required).is_none_or(str::is_empty) {
                return Err(format!("Missing {required} header"));
            }
        }
        let groups: Vec<String> = header(&hs, "Newsgroups")
            .unwrap_or("")
            .split(',')
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty())
            .collect();
        let mut added = String::new();
        if header(&hs, "Path").is_none() {
            added.push_str(&format!("Path: {}!not-for-mail\r\n", self.config.hostname));
        }
        let mut out = Vec::with_capacity(article.len() + 128);
        out.extend_from_slice(added.as_bytes());
        out.extend_from_slice(head);
        match header(&hs, "Message-ID") {
            Some(id) => {
                let id = id.trim();
                if crate::wire::parse_command_at(format!("STAT {id}").as_bytes(), 0)
                    != Ok(Command::Stat(Spec::Id(id.to_owned())))
                {
                    return Err("Malformed Message-ID".to_owned());
                }
                if self.store.locate(id).is_some() {
                    return Err("Duplicate article: that Message-ID is here already".to_owned());
                }
            }
            None => {
                // Unique: this process's id and the store's serial (a restarted process
                // may reuse a pid, so one already here is skipped).
                let id = loop {
                    let id = format!(
                        "<{}.{}.{}@{}>",
                        self.now,
                        std::process::id(),
                        self.store.next_serial(),
                        self.config.hostname
                    );
                    if self.store.locate(&id).is_none() {
                        break id;
                    }
                };
                out.extend_from_slice(format!("Message-ID: {id}\r\n").as_bytes());
            }
        }
        if header(&hs, "Date").is_none() {
            let date = format!("Date: {}\r\n", format_date_rfc5322(self.now));
            out.extend_from_slice(date.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        Ok((out, groups))
    }

    fn active_line(&self, g: &GroupInfo) -> String {
        let status = if self.config.posting == Posting::Closed {
            'n'
        } else {
            'y'
        };
        format!("{} {} {} {status}", g.name, g.high, g.low)
    }

    fn select_group(&mut self, name: &str) -> Option<GroupInfo> {
        let g = self.store.group(name)?;
        self.group = Some(g.name.clone());
        self.current = (g.count > 0).then_some(g.low);
        Some(g)
    }

    /// The article a spec names: (group, number in it, number to report), or the error
    /// line. Selecting by number moves the current article.
    fn locate(&mut self, spec: &Spec) -> Result<(String, u64, u64), &'static str> {
        match spec {
            Spec::Id(id) => match self.store.locate(id) {
                Some((g, n)) => Ok((g, n, 0)),
                None => Err("430 No article with that message-id"),
            },
            Spec::Number(n) => {
                let Some(g) = self.group.clone() else {
                    return Err("412 No newsgroup selected");
                };
                if self.store.overview(&g, *n).is_none() {
                    return Err("423 No article with that number");
                }
                self.current = Some(*n);
                Ok((g, *n, *n))
            }
            Spec::Current | Spec::Range(_) => {
                let Some(g) = self.group.clone() else {
                    return Err("412 No newsgroup selected");
                };
                match self.current {
                    Some(n) if self.store.overview(&g, n).is_some() => Ok((g, n, n)),
                    _ => Err("420 Current article number is invalid"),
                }
            }
        }
    }

    /// The articles OVER or HDR mean: (number to report, group, number).
    fn articles(&mut self, spec: Option<&Spec>) -> Result<Vec<(u64, String, u64)>, &'static str> {
        match spec {
            Some(Spec::Range(r)) => {
                let Some(g) = self.group.clone() else {
                    return Err("412 No newsgroup selected");
                };
                let high = r.high.unwrap_or(u64::MAX);
                let found: Vec<_> = self
                    .store
                    .numbers(&g, r.low, high)
                    .into_iter()
                    .map(|n| (n, g.clone(), n))
                    .collect();
                if found.is_empty() {
                    return Err("423 No articles in that range");
                }
                Ok(found)
            }
            Some(spec) => {
                let (g, n, shown) = self.locate(spec)?;
                Ok(vec![(shown, g, n)])
            }
            None => {
                let (g, n, shown) = self.locate(&Spec::Current)?;
                Ok(vec![(shown, g, n)])
            }
        }
    }

    fn field(&self, o: &Overview, group: &str, n: u64, field: &str) -> String {
        match field.to_ascii_lowercase().as_str() {
            ":bytes" | "bytes" => o.bytes.to_string(),
            ":lines" | "lines" => o.lines.to_string(),
            "subject" => o.subject.clone(),
            "from" => o.from.clone(),
            "date" => o.date.clone(),
            "message-id" => o.message_id.clone(),
            "references" => o.references.clone(),
            _ => match self.store.article(group, n) {
                Ok(Some(text)) => {
                    let hs = headers(split_article(&text).0);
                    header(&hs, field)
                        .unwrap_or("")
                        .replace(['\t', '\r', '\n'], " ")
                }
                _ => String::new(),
            },
        }
    }

    fn command(&mut self, command: Command) -> Option<Event> {
        match command {
            Command::Capabilities => {
                let mut caps = String::from(
                    "101 Capability list:\r\nVERSION 2\r\nREADER\r\nIMPLEMENTATION Torsion\r\n",
                );
                if self.may_post() {
                    caps.push_str("POST\r\n");
                }
                if self.config.newnews {
                    caps.push_str("NEWNEWS\r\n");
                }
                caps.push_str(
                    "LIST ACTIVE NEWSGROUPS OVERVIEW.FMT HEADERS\r\nOVER MSGID\r\nHDR\r\n",
                );
                if self.config.auth && self.user.is_none() {
                    caps.push_str("AUTHINFO USER\r\n");
                }
                caps.push_str(".\r\n");
                self.output.extend_from_slice(caps.as_bytes());
            }
            Command::ModeReader => {
                if self.may_post() {
                    self.say("200 Reader mode, posting allowed");
                } else {
                    self.say("201 Reader mode, posting prohibited");
                }
            }
            Command::List(kind) => self.list(kind),
            Command::Group(name) => match self.select_group(&name) {
                Some(g) => self.say(&format!("211 {} {} {} {}", g.count, g.low, g.high, g.name)),
                None => self.say("411 No such newsgroup"),
            },
            Command::ListGroup(name, range) => {
                let name = match name.or_else(|| self.group.clone()) {
                    Some(n) => n,
                    None => {
                        self.say("412 No newsgroup selected");
                        return None;
                    }
                };
                let Some(g) = self.select_group(&name) else {
                    self.say("411 No such newsgroup");
                    return None;
                };
                self.say(&format!(
                    "211 {} {} {} {} list follows",
                    g.count, g.low, g.high, g.name
                ));
                let (low, high) =
                    range.map_or((0, u64::MAX), |r| (r.low, r.high.unwrap_or(u64::MAX)));
                let mut block = String::new();
                for n in self.store.numbers(&name, low, high) {
                    block.push_str(&n.to_string());
                    block.push_str("\r\n");
                }
                block.push_str(".\r\n");
                self.output.extend_from_slice(block.as_bytes());
            }
            Command::Article(spec) => self.retrieve(&spec, 220),
            Command::Head(spec) => self.retrieve(&spec, 221),
            Command::Body(spec) => self.retrieve(&spec, 222),
            Command::Stat(spec) => self.retrieve(&spec, 223),
            Command::Next | Command::Last => {
                let next = command == Command::Next;
                let Some(g) = self.group.clone() else {
                    self.say("412 No newsgroup selected");
                    return None;
                };
                let Some(cur) = self.current else {
                    self.say("420 Current article number is invalid");
                    return None;
                };
                let found = if next {
                    self.store
                        .numbers(&g, cur.saturating_add(1), u64::MAX)
                        .first()
                        .copied()
                } else if cur == 0 {
                    None
                } else {
                    self.store.numbers(&g, 0, cur - 1).last().copied()
                };
                match found {
                    Some(n) => {
                        self.current = Some(n);
                        let id = self
                            .store
                            .overview(&g, n)
                            .map(|o| o.message_id)
                            .unwrap_or_default();
                        self.say(&format!("223 {n} {id} retrieved"));
                    }
                    None if next => self.say("421 No next article in this group"),
                    None => self.say("422 No previous article in this group"),
                }
            }
            Command::Post => {
                if self.may_post() {
                    self.say("340 Send article to be posted. End with <CR-LF>.<CR-LF>");
                    self.phase = Phase::Post {
                        article: Vec::new(),
                        oversize: false,
                        midline: false,
                    };
                } else if self.config.posting == Posting::AuthRequired {
                    self.say("480 Authentication required to post");
                } else {
                    self.say("440 Posting not permitted");
                }
            }
            Command::Over(spec) => match self.articles(spec.as_ref()) {
                Err(line) => self.say(line),
                Ok(found) => {
                    let mut block = String::from("224 Overview information follows\r\n");
                    for (shown, g, n) in found {
                        if let Some(o) = self.store.overview(&g, n) {
                            block.push_str(&format!(
                                "{shown}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\r\n",
                                o.subject,
                                o.from,
                                o.date,
                                o.message_id,
                                o.references,
                                o.bytes,
                                o.lines
                            ));
                        }
                    }
                    block.push_str(".\r\n");
                    self.output.extend_from_slice(block.as_bytes());
                }
            },
            Command::Hdr { field, spec, x } => match self.articles(spec.as_ref()) {
                Err(line) => self.say(line),
                Ok(found) => {
                    let by_id = matches!(spec, Some(Spec::Id(_)));
                    let mut block = String::from(if x {
                        "221 Header follows\r\n"
                    } else {
                        "225 Headers follow\r\n"
                    });
                    for (shown, g, n) in found {
                        if let Some(o) = self.store.overview(&g, n) {
                            let value = self.field(&o, &g, n, &field);
                            let key = if x && by_id {
                                o.message_id.clone()
                            } else {
                                shown.to_string()
                            };
                            block.push_str(&format!("{key} {value}\r\n"));
                        }
                    }
                    block.push_str(".\r\n");
                    self.output.extend_from_slice(block.as_bytes());
                }
            },
            Command::NewGroups(since) => {
                let mut block = String::from("231 List of new newsgroups follows\r\n");
                for g in self.store.groups() {
                    if g.created >= since {
                        block.push_str(&self.active_line(&g));
                        block.push_str("\r\n");
                    }
                }
                block.push_str(".\r\n");
                self.output.extend_from_slice(block.as_bytes());
            }
            Command::NewNews(pattern, since) => {
                if !self.config.newnews {
                    self.say("503 NEWNEWS is disabled on this server");
                    return None;
                }
                let mut block = String::from("230 List of new articles follows\r\n");
                for id in self.store.new_news(&pattern, since) {
                    block.push_str(&id);
                    block.push_str("\r\n");
                }
                block.push_str(".\r\n");
                self.output.extend_from_slice(block.as_bytes());
            }
            Command::Date => {
                let line = format!("111 {}", format_date_compact(self.now));
                self.say(&line);
            }
            Command::Help => {
                self.say("100 Help text follows");
                self.output.extend_from_slice(HELP.as_bytes());
                self.say(".");
            }
            Command::Quit => {
                self.say("205 Connection closing");
                self.closed = true;
                self.input.clear();
                return Some(Event::Close);
            }
            Command::AuthUser(user) => {
                if !self.config.auth {
                    self.say("502 Authentication is not available");
                } else if self.user.is_some() {
                    self.say("502 Already authenticated");
                } else {
                    self.pending_user = Some(user);
                    self.say("381 Password required");
                }
            }
            Command::AuthPass(password) => {
                if !self.config.auth || self.user.is_some() {
                    self.say("502 Authentication is not available");
                } else if let Some(user) = self.pending_user.take() {
                    self.awaiting_auth = true;
                    return Some(Event::Auth { user, password });
                } else {
                    self.say("482 Authentication commands issued out of sequence");
                }
            }
        }
        None
    }

    fn list(&mut self, kind: ListKind) {
        let mut block = String::new();
        match kind {
            ListKind::Active(pattern) => {
                block.push_str("215 List of newsgroups follows\r\n");
                for g in self.store.groups() {
                    if pattern.as_deref().is_none_or(|p| wildmat(p, &g.name)) {
                        block.push_str(&self.active_line(&g));
                        block.push_str("\r\n");
                    }
                }
            }
            ListKind::Newsgroups(pattern) => {
                block.push_str("215 List of newsgroups and descriptions follows\r\n");
                for g in self.store.groups() {
                    if pattern.as_deref().is_none_or(|p| wildmat(p, &g.name)) {
                        block.push_str(&format!("{}\t{}\r\n", g.name, g.description));
                    }
                }
            }
            ListKind::OverviewFmt => {
                block.push_str("215 Order of fields in overview database\r\n");
                block.push_str(OVERVIEW_FMT);
            }
            ListKind::Headers => {
                block.push_str(
                    "215 Headers and metadata items supported\r\n:\r\n:bytes\r\n:lines\r\n",
                );
            }
        }
        block.push_str(".\r\n");
        self.output.extend_from_slice(block.as_bytes());
    }

    fn retrieve(&mut self, spec: &Spec, code: u16) {
        let (g, n, shown) = match self.locate(spec) {
            Ok(found) => found,
            Err(line) => {
                self.say(line);
                return;
            }
        };
        let id = self
            .store
            .overview(&g, n)
            .map(|o| o.message_id)
            .unwrap_or_default();
        let status = format!("{code} {shown} {id}");
        if code == 223 {
            self.say(&status);
            return;
        }
        let text = match self.store.article(&g, n) {
            Ok(Some(text)) => text,
            Ok(None) => {
                self.say("423 No article with that number");
                return;
            }
            Err(e) => {
                tracing::error!("NNTP: reading article {n} of {g} failed: {e}");
                self.say("403 Internal fault: the article cannot be read");
                return;
            }
        };
        self.say(&status);
        let (head, body) = split_article(&text);
        let part: &[u8] = match code {
            220 => &text,
            221 => head,
            _ => body,
        };
        let stuffed = dot_stuff(part);
        self.output.extend_from_slice(&stuffed);
    }
}
