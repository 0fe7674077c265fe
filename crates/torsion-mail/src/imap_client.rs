//! An IMAP4rev1 client for the common commands, each returning a [`Deferred`] (Twisted's
//! `twisted.mail.imap4.IMAP4Client`): [`login`](ImapClient::login),
//! [`select`](ImapClient::select), [`examine`](ImapClient::examine),
//! [`search`](ImapClient::search), [`fetch`](ImapClient::fetch),
//! [`store`](ImapClient::store), [`logout`](ImapClient::logout), and
//! [`command`](ImapClient::command) for anything else.
//!
//! [`ImapClient`] is a cheap-to-clone handle that is also the connection's [`Protocol`]:
//! connect with a clone of it and call its methods. Commands are pipelined, each with its
//! own tag; untagged responses go to the oldest command still waiting. A `NO` or `BAD`
//! fails the command's Deferred with an [`ImapError`]; a lost connection fails every
//! command still waiting.
//!
//! Responses are parsed with literals of any size the server sends up to
//! [`MAX_RESPONSE`] bytes per response; a larger one fails the connection rather than
//! growing without bound.
//!
//! ```
//! use torsion::testing::StringTransport;
//! use torsion::Protocol;
//! use torsion_mail::imap_client::ImapClient;
//!
//! let st = StringTransport::new();
//! let t = st.transport();
//! let mut client = ImapClient::new();
//! client.connection_made(&t);
//! let found = client.search("UNSEEN");
//! assert_eq!(st.take(), b"A1 SEARCH UNSEEN\r\n");
//! client.data_received(&t, b"* OK ready\r\n* SEARCH 2 4\r\nA1 OK done\r\n");
//! assert_eq!(found.result().unwrap().unwrap(), vec![2, 4]);
//! ```
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use torsion::defer::{Deferred, Trigger};
use torsion::{ConnectionEnd, Failure, Protocol, Transport};

use crate::imap_parse::quoted_or_literal;

/// The largest response (a line and its literals) the client takes: 64 MiB.
pub const MAX_RESPONSE: usize = 64 << 20;

/// A command was answered `NO` or `BAD`, or the connection ended first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImapError {
    /// `NO`, `BAD`, or `LOST` for a connection that ended.
    pub status: String,
    /// The server's text.
    pub text: String,
}

impl fmt::Display for ImapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IMAP {}: {}", self.status, self.text)
    }
}

impl std::error::Error for ImapError {}

/// A parsed response value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An atom or number (`FLAGS`, `\Seen`, `12`, `BODY[HEADER]`).
    Atom(String),
    /// A quoted string or literal.
    Str(Vec<u8>),
    /// `NIL`.
    Nil,
    /// A parenthesised list.
    List(Vec<Value>),
}

impl Value {
    /// The bytes of a string, or of an atom.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            Value::Atom(a) => Some(a.as_bytes()),
            _ => None,
        }
    }
}

/// A command's outcome: its untagged responses (each with literals in place) and the
/// tagged `OK` text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The untagged responses, without `* ` and the final CRLF.
    pub untagged: Vec<Vec<u8>>,
    /// The text of the `OK`.
    pub text: String,
}

/// What SELECT or EXAMINE told.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailboxInfo {
    /// `EXISTS`.
    pub exists: u32,
    /// `RECENT`.
    pub recent: u32,
    /// `UIDVALIDITY`.
    pub uid_validity: Option<u32>,
    /// `UIDNEXT`.
    pub uid_next: Option<u32>,
    /// `FLAGS`.
    pub flags: Vec<String>,
    /// `[READ-ONLY]`.
    pub read_only: bool,
}

/// One message's FETCH response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Its sequence number.
    pub seq: u32,
    /// Item name (upper case, as sent: `BODY[HEADER]`) and value, in order.
    pub items: Vec<(String, Value)>,
}

impl Fetched {
    /// The value of item `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.items
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// `UID`, if fetched.
    pub fn uid(&self) -> Option<u32> {
        match self.get("UID")? {
            Value::Atom(a) => a.parse().ok(),
            _ => None,
        }
    }

    /// `FLAGS`, if fetched.
    pub fn flags(&self) -> Option<Vec<String>> {
        match self.get("FLAGS")? {
            Value::List(v) => Some(
                v.iter()
                    .filter_map(|f| match f {
                        Value::Atom(a) => Some(a.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The bytes of a string item (`RFC822`, `BODY[]`, `BODY[TEXT]`, ...).
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.get(name)?.bytes()
    }
}

struct Pending {
    tag: String,
    untagged: Vec<Vec<u8>>,
    done: Trigger<Response>,
}

#[derive(Default)]
struct State {
    transport: Option<Transport>,
    /// Commands written before the connection was made.
    queued: Vec<u8>,
    pending: VecDeque<Pending>,
    next_tag: u32,
    buf: Vec<u8>,
    greeting: Option<Vec<u8>>,
    lost: bool,
}

/// The client; see the [module](self) documentation.
#[derive(Clone, Default)]
pub struct ImapClient {
    state: Rc<RefCell<State>>,
}

fn lost() -> Failure {
    Failure::new(ImapError {
        status: "LOST".into(),
        text: "the connection ended".into(),
    })
}

impl ImapClient {
    /// A client not yet connected; commands issued now are sent once it is.
    pub fn new() -> ImapClient {
        ImapClient::default()
    }

    /// The server's greeting (`OK ...` without `* `), once received.
    pub fn greeting(&self) -> Option<Vec<u8>> {
        self.state.borrow().greeting.clone()
    }

    /// Sends `A<n> <command>` CRLF (`command` written as given, literals included) and
    /// returns its [`Response`].
    pub fn command(&self, command: &[u8]) -> Deferred<Response> {
        let d = Deferred::new();
        let mut s = self.state.borrow_mut();
        if s.lost {
            drop(s);
            d.errback(lost());
            return d;
        }
        s.next_tag += 1;
        let tag = format!("A{}", s.next_tag);
        let mut line = format!("{tag} ").into_bytes();
        line.extend_from_slice(command);
        line.extend_from_slice(b"\r\n");
        s.pending.push_back(Pending {
            tag,
            untagged: Vec::new(),
            done: d.trigger(),
        });
        match s.transport.clone() {
            Some(t) => {
                drop(s);
                t.write(&line);
            }
            None => s.queued.extend(line),
        }
        d
    }

    /// `LOGIN` (strings quoted, or sent as non-synchronising literals, LITERAL+).
    pub fn login(&self, user: &str, password: &str) -> Deferred<()> {
        let mut c = b"LOGIN ".to_vec();
        c.extend(astring(user.as_bytes()));
        c.push(b' ');
        c.extend(astring(password.as_bytes()));
        self.command(&c).add_callback(|_| ())
    }

    /// `SELECT mailbox`.
    pub fn select(&self, mailbox: &str) -> Deferred<MailboxInfo> {
        self.open("SELECT", mailbox)
    }

    /// `EXAMINE mailbox` (read-only).
    pub fn examine(&self, mailbox: &str) -> Deferred<MailboxInfo> {
        self.open("EXAMINE", mailbox)
    }

    fn open(&self, verb: &str, mailbox: &str) -> Deferred<MailboxInfo> {
        let mut c = format!("{verb} ").into_bytes();
        c.extend(astring(mailbox.as_bytes()));
        self.command(&c).add_callback(|r| {
            let mut info = MailboxInfo {
                read_only: r.text.starts_with("[READ-ONLY]"),
                ..MailboxInfo::default()
            };
            for u in &r.untagged {
                let text = String::from_utf8_lossy(u);
                let words: Vec<&str> = text.split(' ').collect();
                let code_num = |code: &str| {
                    text.split(&format!("[{code} "))
                        .nth(1)
                        .and_then(|r| r.split(']').next())
                        .and_then(|n| n.parse().ok())
                };
                match words.as_slice() {
                    [n, "EXISTS"] => info.exists = n.parse().unwrap_or(0),
                    [n, "RECENT"] => info.recent = n.parse().unwrap_or(0),
                    ["FLAGS", ..] => {
                        info.flags = text
                            .trim_start_matches("FLAGS (")
                            .trim_end_matches(')')
                            .split(' ')
                            .filter(|f| !f.is_empty())
                            .map(str::to_owned)
                            .collect()
                    }
                    ["OK", ..] => {
                        if let Some(v) = code_num("UIDVALIDITY") {
                            info.uid_validity = Some(v);
                        }
                        if let Some(v) = code_num("UIDNEXT") {
                            info.uid_next = Some(v);
                        }
                    }
                    _ => {}
                }
            }
            info
        })
    }

    /// `SEARCH criteria` (criteria as IMAP text): the sequence numbers found.
    pub fn search(&self, criteria: &str) -> Deferred<Vec<u32>> {
        self.searching(format!("SEARCH {criteria}"))
    }

    /// `UID SEARCH criteria`: the UIDs found.
    pub fn uid_search(&self, criteria: &str) -> Deferred<Vec<u32>> {
        self.searching(format!("UID SEARCH {criteria}"))
    }

    fn searching(&self, c: String) -> Deferred<Vec<u32>> {
        self.command(c.as_bytes()).add_callback(|r| {
            r.untagged
                .iter()
                .filter_map(|u| u.strip_prefix(b"SEARCH"))
                .flat_map(|rest| {
                    String::from_utf8_lossy(rest)
                        .split(' ')
                        .filter_map(|n| n.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect()
        })
    }

    /// `FETCH set items` (`"1:3"`, `"(FLAGS BODY.PEEK[])"`).
    pub fn fetch(&self, set: &str, items: &str) -> Deferred<Vec<Fetched>> {
        self.command(format!("FETCH {set} {items}").as_bytes())
            .add_callback(|r| fetched(&r))
    }

    /// `UID FETCH set items`.
    pub fn uid_fetch(&self, set: &str, items: &str) -> Deferred<Vec<Fetched>> {
        self.command(format!("UID FETCH {set} {items}").as_bytes())
            .add_callback(|r| fetched(&r))
    }

    /// `STORE set how (flags)`, `how` being `FLAGS`, `+FLAGS`, `-FLAGS` (maybe `.SILENT`):
    /// the FETCH responses the server sent back.
    pub fn store(&self, set: &str, how: &str, flags: &[&str]) -> Deferred<Vec<Fetched>> {
        self.command(format!("STORE {set} {how} ({})", flags.join(" ")).as_bytes())
            .add_callback(|r| fetched(&r))
    }

    /// `EXPUNGE`: the sequence numbers expunged, in the order the server sent them.
    pub fn expunge(&self) -> Deferred<Vec<u32>> {
        self.command(b"EXPUNGE").add_callback(|r| {
            r.untagged
                .iter()
                .filter_map(|u| {
                    let t = String::from_utf8_lossy(u).into_owned();
                    t.strip_suffix(" EXPUNGE").and_then(|n| n.parse().ok())
                })
                .collect()
        })
    }

    /// `LOGOUT`; the server then closes the connection.
    pub fn logout(&self) -> Deferred<()> {
        self.command(b"LOGOUT").add_callback(|_| ())
    }

    fn received(&self, data: &[u8]) {
        let mut s = self.state.borrow_mut();
        s.buf.extend_from_slice(data);
        loop {
            let Some(end) = response_end(&s.buf) else {
                if s.buf.len() > MAX_RESPONSE {
                    tracing::warn!("IMAP client: a response over {MAX_RESPONSE} bytes; closing");
                    if let Some(t) = s.transport.clone() {
                        t.abort_connection();
                    }
                    s.buf.clear();
                }
                return;
            };
            let unit: Vec<u8> = s.buf.drain(..end).collect();
            let unit = unit.strip_suffix(b"\r\n").unwrap_or(&unit).to_vec();
            if let Some(rest) = unit.strip_prefix(b"* ") {
                // The first response is the server's greeting.
                if s.greeting.is_none() {
                    s.greeting = Some(rest.to_vec());
                    continue;
                }
                match s.pending.front_mut() {
                    Some(p) => p.untagged.push(rest.to_vec()),
                    None => tracing::debug!(
                        "IMAP client: unsolicited {}",
                        String::from_utf8_lossy(rest)
                    ),
                }
                continue;
            }
            if unit.starts_with(b"+") {
                continue;
            }
            let text = String::from_utf8_lossy(&unit).into_owned();
            let mut words = text.splitn(3, ' ');
            let (tag, status, rest) = (
                words.next().unwrap_or(""),
                words.next().unwrap_or("").to_ascii_uppercase(),
                words.next().unwrap_or("").to_owned(),
            );
            let Some(i) = s.pending.iter().position(|p| p.tag == tag) else {
                continue;
            };
            let p = s.pending.remove(i).expect("found above");
            // Untagged responses of a command answered out of order stay with the next.
            let outcome = if status == "OK" {
                Ok(Response {
                    untagged: p.untagged,
                    text: rest,
                })
            } else {
                Err(Failure::new(ImapError { status, text: rest }))
            };
            drop(s);
            let _ = p.done.fire(outcome);
            s = self.state.borrow_mut();
        }
    }
}

/// Where the response starting `buf` ends (past its CRLF), literals included, if all in.
fn response_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let lf = i + memchr::memchr(b'\n', &buf[i..])?;
        let line = &buf[i..lf];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match literal_size(line) {
            Some(n) => {
                let next = lf.checked_add(1)?.checked_add(n)?;
                if next > buf.len() {
                    return None;
                }
                i = next;
            }
            None => return Some(lf + 1),
        }
    }
}

fn literal_size(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = memchr::memrchr(b'{', inner)?;
    let digits = &inner[open + 1..];
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn astring(s: &[u8]) -> Vec<u8> {
    let q = quoted_or_literal(s);
    if q.first() == Some(&b'{') {
        // Non-synchronising (LITERAL+): the client does not wait for a continuation.
        let mut out = format!("{{{}+}}\r\n", s.len()).into_bytes();
        out.extend_from_slice(s);
        out
    } else {
        q
    }
}

fn fetched(r: &Response) -> Vec<Fetched> {
    let mut out = Vec::new();
    for u in &r.untagged {
        let Some(sp) = u.iter().position(|&b| b == b' ') else {
            continue;
        };
        let Ok(seq) = String::from_utf8_lossy(&u[..sp]).parse::<u32>() else {
            continue;
        };
        let Some(rest) = u[sp + 1..].strip_prefix(b"FETCH ") else {
            continue;
        };
        let mut p = ValueParser { s: rest, i: 0 };
        let Some(Value::List(values)) = p.value(0) else {
            continue;
        };
        let mut items = Vec::new();
        let mut it = values.into_iter();
        while let (Some(Value::Atom(name)), Some(v)) = (it.next(), it.next()) {
            items.push((name.to_ascii_uppercase(), v));
        }
        out.push(Fetched { seq, items });
    }
    out
}

struct ValueParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl ValueParser<'_> {
    fn value(&mut self, depth: usize) -> Option<Value> {
        while self.s.get(self.i) == Some(&b' ') {
            self.i += 1;
        }
        match *self.s.get(self.i)? {
            b'(' if depth < 32 => {
                self.i += 1;
                let mut v = Vec::new();
                loop {
                    while self.s.get(self.i) == Some(&b' ') {
                        self.i += 1;
                    }
                    if self.s.get(self.i) == Some(&b')') {
                        self.i += 1;
                        return Some(Value::List(v));
                    }
                    v.push(self.value(depth + 1)?);
                }
            }
            b'"' => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    let b = *self.s.get(self.i)?;
                    self.i += 1;
                    match b {
                        b'"' => return Some(Value::Str(out)),
                        b'\\' => {
                            out.push(*self.s.get(self.i)?);
                            self.i += 1;
                        }
                        _ => out.push(b),
                    }
                }
            }
            b'{' => {
                let close = self.i + memchr::memchr(b'}', &self.s[self.i..])?;
                let n: usize = std::str::from_utf8(&self.s[self.i + 1..close])
                    .ok()?
                    .trim_end_matches('+')
                    .parse()
                    .ok()?;
                let start = close + 1 + usize::from(self.s.get(close + 1) == Some(&b'\r')) + 1;
                let end = start.checked_add(n)?;
                let v = self.s.get(start..end)?.to_vec();
                self.i = end;
                Some(Value::Str(v))
            }
            _ => {
                // An atom; a section's brackets may hold spaces and parentheses.
                let start = self.i;
                let mut bracket = 0usize;
                while let Some(&b) = self.s.get(self.i) {
                    match b {
                        b'[' => bracket += 1,
                        b']' => bracket = bracket.saturating_sub(1),
                        b' ' | b'(' | b')' if bracket == 0 => break,
                        _ => {}
                    }
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
                let a = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                Some(if a.eq_ignore_ascii_case("NIL") {
                    Value::Nil
                } else {
                    Value::Atom(a)
                })
            }
        }
    }
}

impl Protocol for ImapClient {
    fn connection_made(&mut self, t: &Transport) {
        let queued = {
            let mut s = self.state.borrow_mut();
            s.transport = Some(t.clone());
            std::mem::take(&mut s.queued)
        };
        if !queued.is_empty() {
            t.write(&queued);
        }
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.received(data);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        let pending: Vec<Pending> = {
            let mut s = self.state.borrow_mut();
            s.transport = None;
            s.lost = true;
            s.pending.drain(..).collect()
        };
        for p in pending {
            // LOGOUT's OK may race the close; every other command failed.
            let _ = p.done.fire(Err(lost()));
        }
    }
}
