//! The POP3 server's state machine, without I/O (RFC 1939, with RFC 2449's CAPA and
//! response codes and RFC 2595's STLS): bytes in, replies and events out.
//!
//! [`Pop3Core`] answers what it can by itself: command syntax and order (AUTHORIZATION, then
//! TRANSACTION after a login), CAPA, STAT, LIST, UIDL, DELE, RSET, NOOP, message numbers,
//! the line length limit and the error cap. What needs the outside world comes out of
//! [`poll`](Pop3Core::poll) as a [`Pop3Event`] (credentials to check, STLS, a message to
//! send, deletions to apply at QUIT), and the core reads no further command until the
//! caller answers it. So commands pipelined by a client (RFC 2449's PIPELINING) are
//! answered in order. Deletions are only marked until QUIT (RFC 1939's UPDATE state): a
//! connection that ends any other way deletes nothing.
//!
//! Memory is bounded: a command line is at most [`Pop3Limits::max_line`] bytes (255 with
//! its CRLF, RFC 2449 section 4); a longer one is dropped as it arrives and answered
//! `-ERR`. Message contents never pass through the core: the caller streams them through a
//! [`DotStuffer`], which turns stored LF line endings into CRLF and byte-stuffs lines
//! starting with a dot.
//!
//! ```
//! use torsion_mail::pop3_core::{Pop3Core, Pop3Event, Pop3Limits};
//!
//! let mut core = Pop3Core::new("pop.example.org", Pop3Limits::default());
//! core.set_login_allowed_without_tls(true);
//! core.receive(b"USER alice\r\nPASS secret words\r\nSTAT\r\nDELE 1\r\nQUIT\r\n");
//! let Some(Pop3Event::Login { user, password }) = core.poll() else { panic!() };
//! assert_eq!((user.as_str(), password.as_slice()), ("alice", &b"secret words"[..]));
//! core.login_succeeded(vec![("uid-1".into(), 120), ("uid-2".into(), 80)]);
//! assert_eq!(core.poll(), Some(Pop3Event::Update { deleted: vec![0] }));
//! core.update_done(true);
//! assert_eq!(core.poll(), Some(Pop3Event::Close));
//! let out = String::from_utf8(core.take_output()).unwrap();
//! assert!(out.starts_with("+OK pop.example.org POP3 server ready\r\n"));
//! assert!(out.contains("+OK 2 200\r\n+OK message 1 deleted\r\n"), "{out}");
//! ```
use std::collections::VecDeque;

/// The limits a server holds its clients to.
#[derive(Clone, Debug)]
pub struct Pop3Limits {
    /// The longest command line, its CRLF included (255, RFC 2449 section 4).
    pub max_line: usize,
    /// Failed logins before the connection is closed (3).
    pub max_auth_failures: u32,
    /// Refused commands before the connection is closed (20): a client sending garbage is
    /// not answered for ever.
    pub max_errors: u32,
}

impl Default for Pop3Limits {
    fn default() -> Pop3Limits {
        Pop3Limits {
            max_line: 255,
            max_auth_failures: 3,
            max_errors: 20,
        }
    }
}

/// What the core needs done, or tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pop3Event {
    /// USER and PASS were given: [`login_succeeded`](Pop3Core::login_succeeded),
    /// [`login_failed`](Pop3Core::login_failed), [`mailbox_locked`](Pop3Core::mailbox_locked)
    /// or [`login_unavailable`](Pop3Core::login_unavailable).
    Login {
        /// The user name.
        user: String,
        /// The password (the rest of the PASS line, spaces included).
        password: Vec<u8>,
    },
    /// STLS was accepted: its `+OK` is in the output, to be sent before TLS starts; then
    /// start TLS and call [`tls_started`](Pop3Core::tls_started). What the client
    /// pipelined after it was dropped.
    StartTls,
    /// RETR or TOP of a message (its index, from 0): open it, then
    /// [`retrieve_ok`](Pop3Core::retrieve_ok) and stream it through a [`DotStuffer`] made
    /// with these `lines`, then [`retrieve_done`](Pop3Core::retrieve_done); or
    /// [`retrieve_failed`](Pop3Core::retrieve_failed).
    Retrieve {
        /// The message's index in the list given at login.
        index: usize,
        /// TOP's body line count; `None` for RETR (the whole message).
        lines: Option<u64>,
    },
    /// QUIT in TRANSACTION: delete these messages (indices), then
    /// [`update_done`](Pop3Core::update_done).
    Update {
        /// Indices of the messages marked deleted, ascending.
        deleted: Vec<usize>,
    },
    /// The connection is to close once the output is sent.
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Awaiting {
    Nothing,
    Login,
    Retrieve,
    Streaming,
    Update,
}

#[derive(Debug)]
struct Entry {
    uid: String,
    size: u64,
    deleted: bool,
}

/// The POP3 server's state machine for one connection; see the [module](self).
#[derive(Debug)]
pub struct Pop3Core {
    limits: Pop3Limits,
    input: Vec<u8>,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    output: Vec<u8>,
    events: VecDeque<Pop3Event>,
    awaiting: Awaiting,
    user: Option<String>,
    messages: Option<Vec<Entry>>,
    tls_available: bool,
    tls_active: bool,
    login_without_tls: bool,
    auth_failures: u32,
    errors: u32,
    closed: bool,
}

/// Output past this stops [`Pop3Core::poll`] until it is taken.
const OUTPUT_BATCH: usize = 64 << 10;

impl Pop3Core {
    /// A connection to a server named `hostname`; its greeting is already in the output.
    pub fn new(hostname: &str, limits: Pop3Limits) -> Pop3Core {
        let host: String = hostname.chars().filter(|c| c.is_ascii_graphic()).collect();
        Pop3Core {
            limits,
            input: Vec::new(),
            discarding: false,
            output: format!("+OK {host} POP3 server ready\r\n").into_bytes(),
            events: VecDeque::new(),
            awaiting: Awaiting::Nothing,
            user: None,
            messages: None,
            tls_available: false,
            tls_active: false,
            login_without_tls: false,
            auth_failures: 0,
            errors: 0,
            closed: false,
        }
    }

    /// Offers STLS (the caller has a certificate).
    pub fn set_tls_available(&mut self, available: bool) {
        self.tls_available = available;
    }

    /// Takes USER and PASS on a connection without TLS. Off by default: with it off,
    /// USER is refused `-ERR [AUTH]` until STLS, and CAPA lists no USER.
    pub fn set_login_allowed_without_tls(&mut self, allowed: bool) {
        self.login_without_tls = allowed;
    }

    /// Whether TLS is on.
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// TLS started after [`Pop3Event::StartTls`].
    pub fn tls_started(&mut self) {
        self.tls_active = true;
    }

    /// The logged-in user, in TRANSACTION.
    pub fn user(&self) -> Option<&str> {
        self.messages.as_ref().and(self.user.as_deref())
    }

    /// Whether the connection is closing: nothing more will be read.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// How many received bytes wait to be read as commands.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// The replies so far, taken.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Whether [`poll`](Self::poll) stopped because the output is large: take it (and
    /// let it drain) and poll again.
    pub fn output_full(&self) -> bool {
        self.output.len() >= OUTPUT_BATCH
    }

    /// Bytes from the client.
    pub fn receive(&mut self, mut data: &[u8]) {
        if self.closed {
            return;
        }
        if self.discarding {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    self.discarding = false;
                    data = &data[i + 1..];
                }
                None => return,
            }
        }
        self.input.extend_from_slice(data);
    }

    /// The next event, answering every command it can on the way; `None` when it needs more
    /// input, waits for the answer to an event, or has a batch of output to be taken.
    pub fn poll(&mut self) -> Option<Pop3Event> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            if self.closed || self.awaiting != Awaiting::Nothing || self.output_full() {
                return None;
            }
            let line = match memchr::memchr(b'\n', &self.input) {
                Some(i) if i < self.limits.max_line => {
                    let mut line: Vec<u8> = self.input.drain(..=i).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    line
                }
                Some(i) => {
                    self.input.drain(..=i);
                    self.error("line too long");
                    continue;
                }
                None if self.input.len() >= self.limits.max_line => {
                    self.input.clear();
                    self.discarding = true;
                    self.error("line too long");
                    continue;
                }
                None => return None,
            };
            self.command(&line);
        }
    }

    fn reply(&mut self, text: &str) {
        self.output.extend_from_slice(text.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    /// A refused command: `-ERR`, and the connection closed past the error cap.
    fn error(&mut self, text: &str) {
        self.errors += 1;
        if self.errors >= self.limits.max_errors {
            self.reply("-ERR too many errors, closing");
            self.close();
        } else {
            self.reply(&format!("-ERR {text}"));
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.input.clear();
        self.events.push_back(Pop3Event::Close);
    }

    fn login_allowed(&self) -> bool {
        self.tls_active || self.login_without_tls
    }

    fn command(&mut self, line: &[u8]) {
        let Ok(line) = std::str::from_utf8(line) else {
            return self.error("commands are ASCII");
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v, a),
            None => (line, ""),
        };
        let verb = verb.to_ascii_uppercase();
        let args: Vec<&str> = arg.split(' ').filter(|a| !a.is_empty()).collect();
        match (verb.as_str(), self.messages.is_some()) {
            ("CAPA", _) => self.capa(),
            ("QUIT", false) => {
                self.reply("+OK bye");
                self.close();
            }
            ("QUIT", true) => {
                let deleted = self.entries().enumerate();
                let deleted = deleted.filter(|(_, e)| e.deleted).map(|(i, _)| i).collect();
                self.awaiting = Awaiting::Update;
                self.events.push_back(Pop3Event::Update { deleted });
            }
            ("NOOP", true) => self.reply("+OK"),
            ("STLS", false) => {
                if !self.tls_available {
                    self.error("STLS not available")
                } else if self.tls_active {
                    self.error("TLS already on")
                } else if !arg.is_empty() {
                    self.error("STLS takes no argument")
                } else {
                    self.reply("+OK begin TLS negotiation");
                    self.user = None;
                    self.input.clear();
                    self.discarding = false;
                    self.events.push_back(Pop3Event::StartTls);
                }
            }
            ("USER", false) => {
                if !self.login_allowed() {
                    self.error("[AUTH] log in after STLS")
                } else if args.len() != 1 {
                    self.error("USER takes one name")
                } else {
                    self.user = Some(args[0].to_owned());
                    self.reply("+OK send PASS");
                }
            }
            ("PASS", false) => match self.user.clone() {
                Some(user) if !arg.is_empty() => {
                    self.awaiting = Awaiting::Login;
                    self.events.push_back(Pop3Event::Login {
                        user,
                        password: arg.as_bytes().to_vec(),
                    });
                }
                Some(_) => self.error("PASS takes a password"),
                None => self.error("USER first"),
            },
            ("APOP" | "AUTH", false) => self.error("not supported; use USER and PASS"),
            ("STAT", true) => {
                let (n, size) = self
                    .entries()
                    .filter(|e| !e.deleted)
                    .fold((0, 0), |(n, s), e| (n + 1, s + e.size));
                self.reply(&format!("+OK {n} {size}"));
            }
            ("LIST" | "UIDL", true) => self.listing(verb == "UIDL", &args),
            ("RETR", true) => {
                if let Some(index) = self.message_number(&args, 1) {
                    self.retrieve(index, None);
                }
            }
            ("TOP", true) => {
                let lines = args.get(1).and_then(|n| parse_number(n));
                match (self.message_number(&args, 2), lines) {
                    (Some(index), Some(lines)) => self.retrieve(index, Some(lines)),
                    (Some(_), None) => self.error("TOP takes a message number and a line count"),
                    _ => {}
                }
            }
            ("DELE", true) => {
                if let Some(index) = self.message_number(&args, 1) {
                    if let Some(e) = self.messages.as_mut().and_then(|m| m.get_mut(index)) {
                        e.deleted = true;
                    }
                    self.reply(&format!("+OK message {} deleted", index + 1));
                }
            }
            ("RSET", true) => {
                if let Some(m) = self.messages.as_mut() {
                    m.iter_mut().for_each(|e| e.deleted = false);
                }
                let n = self.entries().count();
                self.reply(&format!("+OK maildrop has {n} messages"));
            }
            ("STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "RSET" | "NOOP", false) => {
                self.error("log in first")
            }
            ("USER" | "PASS" | "APOP" | "AUTH" | "STLS", true) => self.error("already logged in"),
            _ => self.error("unknown command"),
        }
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.messages.iter().flatten()
    }

    fn capa(&mut self) {
        let mut out = String::from("+OK capability list follows\r\nTOP\r\nUIDL\r\n");
        if self.messages.is_none() {
            if self.login_allowed() {
                out.push_str("USER\r\n");
            }
            if self.tls_available && !self.tls_active {
                out.push_str("STLS\r\n");
            }
        }
        out.push_str("RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION Torsion\r\n.");
        self.reply(&out);
    }

    /// The message a command's first argument names (`want` arguments in all), or an
    /// error answered.
    fn message_number(&mut self, args: &[&str], want: usize) -> Option<usize> {
        if args.len() != want {
            self.error("wrong number of arguments");
            return None;
        }
        let n = parse_number(args[0]).unwrap_or(0) as usize;
        let live = n
            .checked_sub(1)
            .and_then(|i| self.messages.as_ref()?.get(i).map(|e| (i, e.deleted)));
        match live {
            Some((i, false)) => Some(i),
            Some((_, true)) => {
                self.error("message deleted");
                None
            }
            None => {
                self.error("no such message");
                None
            }
        }
    }

    fn listing(&mut self, uidl: bool, args: &[&str]) {
        let line = |i: usize, e: &Entry| {
            if uidl {
                format!("{} {}", i + 1, e.uid)
            } else {
                format!("{} {}", i + 1, e.size)
            }
        };
        match args.len() {
            0 => {
                let mut out = String::from("+OK\r\n");
                for (i, e) in self.entries().enumerate().filter(|(_, e)| !e.deleted) {
                    out.push_str(&line(i, e));
                    out.push_str("\r\n");
                }
                out.push('.');
                self.reply(&out);
            }
            _ => {
                if let Some(i) = self.message_number(args, 1) {
                    let text = self
                        .messages
                        .as_ref()
                        .and_then(|m| m.get(i))
                        .map(|e| line(i, e))
                        .unwrap_or_default();
                    self.reply(&format!("+OK {text}"));
                }
            }
        }
    }

    fn retrieve(&mut self, index: usize, lines: Option<u64>) {
        self.awaiting = Awaiting::Retrieve;
        self.events.push_back(Pop3Event::Retrieve { index, lines });
    }

    /// The login worked: its maildrop's messages, `(unique id, size)` each, in order.
    /// Answers `+OK` and enters TRANSACTION.
    pub fn login_succeeded(&mut self, messages: Vec<(String, u64)>) {
        if self.awaiting != Awaiting::Login {
            return;
        }
        self.awaiting = Awaiting::Nothing;
        let n = messages.len();
        let size: u64 = messages.iter().map(|m| m.1).sum();
        self.messages = Some(
            messages
                .into_iter()
                .map(|(uid, size)| Entry {
                    uid,
                    size,
                    deleted: false,
                })
                .collect(),
        );
        self.reply(&format!("+OK maildrop has {n} messages ({size} octets)"));
    }

    /// The login failed (answer it after a delay): `-ERR [AUTH]`, and the connection
    /// closed after [`Pop3Limits::max_auth_failures`]. Returns whether it is closing.
    pub fn login_failed(&mut self) -> bool {
        if self.awaiting != Awaiting::Login {
            return self.closed;
        }
        self.awaiting = Awaiting::Nothing;
        self.user = None;
        self.auth_failures += 1;
        if self.auth_failures >= self.limits.max_auth_failures {
            self.reply("-ERR [AUTH] invalid user name or password; too many failures, closing");
            self.close();
        } else {
            self.reply("-ERR [AUTH] invalid user name or password");
        }
        self.closed
    }

    /// The login worked but the maildrop is in use by another session: `-ERR [IN-USE]`
    /// (RFC 1939 section 4, RFC 2449 section 8.1.1), still in AUTHORIZATION.
    pub fn mailbox_locked(&mut self) {
        if self.awaiting == Awaiting::Login {
            self.awaiting = Awaiting::Nothing;
            self.user = None;
            self.reply("-ERR [IN-USE] maildrop already locked by another session");
        }
    }

    /// Logins cannot be checked now (too many at once, the maildrop unreadable):
    /// `-ERR [SYS/TEMP]`, still in AUTHORIZATION.
    pub fn login_unavailable(&mut self) {
        if self.awaiting == Awaiting::Login {
            self.awaiting = Awaiting::Nothing;
            self.user = None;
            self.reply("-ERR [SYS/TEMP] cannot log in now, try again later");
        }
    }

    /// The message of a [`Pop3Event::Retrieve`] is open: `+OK`; take the output, then
    /// stream the message.
    pub fn retrieve_ok(&mut self) {
        if self.awaiting == Awaiting::Retrieve {
            self.awaiting = Awaiting::Streaming;
            self.reply("+OK message follows");
        }
    }

    /// The message of a [`Pop3Event::Retrieve`] cannot be read (gone): `-ERR`.
    pub fn retrieve_failed(&mut self) {
        if self.awaiting == Awaiting::Retrieve {
            self.awaiting = Awaiting::Nothing;
            self.reply("-ERR [SYS/TEMP] cannot read that message now");
        }
    }

    /// The message (and its terminating `.` line) was written: read the next command.
    pub fn retrieve_done(&mut self) {
        if self.awaiting == Awaiting::Streaming {
            self.awaiting = Awaiting::Nothing;
        }
    }

    /// The deletions of [`Pop3Event::Update`] were applied (`ok`) or some failed: the
    /// final reply, then [`Pop3Event::Close`].
    pub fn update_done(&mut self, ok: bool) {
        if self.awaiting != Awaiting::Update {
            return;
        }
        self.awaiting = Awaiting::Nothing;
        if ok {
            let left = self.entries().filter(|e| !e.deleted).count();
            self.reply(&format!("+OK signing off ({left} messages left)"));
        } else {
            self.reply("-ERR [SYS/TEMP] some deleted messages not removed");
        }
        self.close();
    }

    /// The idle timeout fired: the connection closes without UPDATE (RFC 1939 section 3:
    /// no messages are deleted).
    pub fn timed_out(&mut self) {
        if !self.closed {
            self.reply("-ERR idle for too long, closing");
            self.close();
        }
    }
}

/// A decimal number of at most 19 digits, nothing else.
fn parse_number(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() < 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Turns a stored message (LF or CRLF line endings) into a POP3 multi-line response body:
/// CRLF line endings, a `.` put before every line starting with one (RFC 1939 section 3),
/// and [`finish`](Self::finish)ed by the `.` line. For TOP, it stops after the headers, the
/// blank line and `lines` lines of the body. It keeps what it needs between pieces, so a
/// message can be fed in pieces of any size.
///
/// ```
/// use torsion_mail::pop3_core::DotStuffer;
///
/// let mut out = Vec::new();
/// let mut s = DotStuffer::new(None);
/// s.feed(b"Subject: x\n\n.hidden\nlast", &mut out);
/// s.finish(&mut out);
/// assert_eq!(out, b"Subject: x\r\n\r\n..hidden\r\nlast\r\n.\r\n");
///
/// let mut top = Vec::new();
/// let mut s = DotStuffer::new(Some(1));
/// s.feed(b"A: b\n\none\ntwo\n", &mut top);
/// s.finish(&mut top);
/// assert_eq!(top, b"A: b\r\n\r\none\r\n.\r\n");
/// ```
#[derive(Clone, Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    line_len: usize,
    pending_cr: bool,
    in_headers: bool,
    lines_left: Option<u64>,
    done: bool,
}

impl DotStuffer {
    /// For RETR (`None`) or TOP with `lines` body lines.
    pub fn new(lines: Option<u64>) -> DotStuffer {
        DotStuffer {
            at_line_start: true,
            line_len: 0,
            pending_cr: false,
            in_headers: true,
            lines_left: lines,
            done: false,
        }
    }

    /// Whether TOP has all it wants: the rest of the message need not be read.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The next piece of the message, written to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() && !self.done {
            let (segment, newline) = match memchr::memchr(b'\n', data) {
                Some(i) => (&data[..i], true),
                None => (data, false),
            };
            data = &data[segment.len() + usize::from(newline)..];
            let mut segment = segment;
            if self.pending_cr && !segment.is_empty() {
                out.push(b'\r');
                self.line_len += 1;
                self.pending_cr = false;
                self.at_line_start = false;
            }
            if !segment.is_empty() && self.at_line_start {
                if segment[0] == b'.' {
                    out.push(b'.');
                }
                self.at_line_start = false;
            }
            if let Some(rest) = segment.strip_suffix(b"\r") {
                segment = rest;
                self.pending_cr = true;
            }
            if !segment.is_empty() {
                self.at_line_start = false;
            }
            out.extend_from_slice(segment);
            self.line_len += segment.len();
            if newline {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.end_line();
            }
        }
    }

    fn end_line(&mut self) {
        let empty = self.line_len == 0;
        self.line_len = 0;
        self.at_line_start = true;
        if self.in_headers {
            if empty {
                self.in_headers = false;
                if self.lines_left == Some(0) {
                    self.done = true;
                }
            }
        } else if let Some(n) = self.lines_left.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.done = true;
            }
        }
    }

    /// The end of the message: a last line ending if it had none, and the `.` line.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.done {
            if self.pending_cr {
                out.push(b'\r');
                self.line_len += 1;
            }
            if !self.at_line_start || self.line_len > 0 {
                out.extend_from_slice(b"\r\n");
            }
        }
        self.done = true;
        out.extend_from_slice(b".\r\n");
    }
}
