//! The SMTP server's state machine, without I/O: bytes in, replies and events out.
//!
//! [`ServerCore`] takes what the client sent ([`receive`](ServerCore::receive)) and answers
//! everything it can by itself: syntax, command order, EHLO's extensions, NOOP, RSET, VRFY,
//! line and message size limits, the recipient cap, AUTH's exchanges. What needs a decision
//! from outside comes out of [`poll`](ServerCore::poll) as an [`Event`] (a sender, a
//! recipient, the message body, credentials to check, STARTTLS), and the core waits — reading
//! no further command — until the caller answers it ([`accept`](ServerCore::accept),
//! [`reject`](ServerCore::reject), [`start_data`](ServerCore::start_data),
//! [`finish_data`](ServerCore::finish_data), [`auth_succeeded`](ServerCore::auth_succeeded),
//! ...). That is what makes PIPELINING safe: commands are answered in order, whatever arrives
//! at once. Replies pile up in [`take_output`](ServerCore::take_output).
//!
//! Memory is bounded: a command line is at most [`Limits::max_line`] bytes (1,000 with its
//! CRLF, RFC 5321 section 4.5.3.1.4; a longer one is discarded as it arrives and answered
//! 500), message bodies pass through in chunks, and a body past
//! [`Limits::max_message_size`] is dropped as it arrives and answered 552 at its end.
//!
//! ```
//! use torsion_mail::server_core::{Event, Limits, ServerCore};
//!
//! let mut core = ServerCore::new("mx.example.org", Limits::default());
//! core.receive(b"EHLO client.example\r\nMAIL FROM:<a@example.net>\r\n");
//! // EHLO is answered by the core; the sender needs a decision.
//! let Some(Event::Mail { from, .. }) = core.poll() else { panic!() };
//! assert_eq!(from.unwrap().to_string(), "a@example.net");
//! assert_eq!(core.poll(), None); // waits for the answer
//! core.accept();
//! core.receive(b"RCPT TO:<b@example.org>\r\nDATA\r\nHi.\r\n..dot\r\n.\r\n");
//! let Some(Event::Rcpt { .. }) = core.poll() else { panic!() };
//! core.accept();
//! assert_eq!(core.poll(), Some(Event::Data));
//! core.start_data();
//! assert_eq!(core.poll(), Some(Event::Body(b"Hi.\r\n.dot\r\n".to_vec())));
//! assert_eq!(core.poll(), Some(Event::EndOfData));
//! core.finish_data(None);
//! let out = String::from_utf8(core.take_output()).unwrap();
//! assert!(out.starts_with("220 mx.example.org ESMTP"));
//! assert!(out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Message accepted\r\n"));
//! ```
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::command::{parse_command, Address, Command, CommandError, MailParams, ReversePath};
use crate::reply::Reply;

/// The limits a server holds its clients to.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The longest command line, its CRLF included (1,000, RFC 5321's minimum).
    pub max_line: usize,
    /// The largest message body (after dot-unstuffing), in bytes; advertised as `SIZE`.
    /// 10 MiB by default.
    pub max_message_size: u64,
    /// Recipients per message; more are answered 452 (100, RFC 5321's minimum).
    pub max_recipients: usize,
    /// Failed AUTH attempts before the connection is closed (3).
    pub max_auth_failures: u32,
    /// Refused commands (unknown, bad syntax, out of order) before the connection is closed
    /// with 421 (20): a client sending garbage is not answered for ever.
    pub max_errors: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line: 1000,
            max_message_size: 10 << 20,
            max_recipients: 100,
            max_auth_failures: 3,
            max_errors: 20,
        }
    }
}

/// What the core needs decided, or tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `MAIL FROM`, syntax and order checked: answer with [`accept`](ServerCore::accept)
    /// or [`reject`](ServerCore::reject).
    Mail {
        /// The sender (`None`: the null path of a bounce).
        from: ReversePath,
        /// Its parameters.
        params: MailParams,
    },
    /// `RCPT TO`, under the recipient cap: [`accept`](ServerCore::accept) or
    /// [`reject`](ServerCore::reject).
    Rcpt {
        /// The recipient.
        to: Address,
    },
    /// `DATA` with at least one recipient: [`start_data`](ServerCore::start_data) or
    /// [`reject`](ServerCore::reject).
    Data,
    /// Part of the message, dot-unstuffed, line endings as sent (CRLF). Nothing to answer.
    Body(Vec<u8>),
    /// The message is over [`Limits::max_message_size`]: the rest is dropped as it comes
    /// and answered 552; drop what was stored. Nothing to answer.
    Oversize,
    /// The message ended: [`finish_data`](ServerCore::finish_data).
    EndOfData,
    /// The transaction was dropped (RSET, HELO, EHLO, STARTTLS): forget its recipients.
    /// Nothing to answer.
    Reset,
    /// AUTH credentials (PLAIN or LOGIN): [`auth_succeeded`](ServerCore::auth_succeeded),
    /// [`auth_failed`](ServerCore::auth_failed) or
    /// [`auth_unavailable`](ServerCore::auth_unavailable).
    Auth {
        /// The authorization identity PLAIN may carry (empty: the same as `user`).
        authzid: String,
        /// The user name.
        user: String,
        /// The password.
        password: Vec<u8>,
    },
    /// STARTTLS was accepted: its 220 is in the output, which must be sent before TLS
    /// starts; then start TLS. What the client pipelined after it was dropped (RFC 3207).
    StartTls,
    /// The connection is to close once the output is sent (QUIT, too many errors or failed
    /// logins).
    Close,
}

#[derive(Debug, PartialEq, Eq)]
enum Awaiting {
    Nothing,
    Mail,
    Rcpt,
    Data,
    EndOfData,
    Auth,
}

#[derive(Debug)]
enum Phase {
    Command,
    Data,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword(String),
    Closed,
}

enum Line {
    Complete(Vec<u8>),
    TooLong,
    Incomplete,
}

/// A body line longer than this is passed on in pieces rather than held whole.
const BODY_PIECE: usize = 8 << 10;
/// Body bytes gathered into one [`Event::Body`].
const BODY_BATCH: usize = 64 << 10;
/// Replies held before [`ServerCore::poll`] stops answering commands until they are taken:
/// pipelined commands cost at most this much output until the caller sends it.
pub const MAX_OUTPUT: usize = 16 << 10;

/// Where body bytes go as they are scanned.
type BodySink<'a> = dyn FnMut(&[u8]) + 'a;

/// A message body's progress: dot-unstuffing, the size limit, the end marker.
///
/// The body is scanned in bulk rather than line by line: only a line starting with a dot
/// needs anything done to it (its dot dropped, or it is the end), so the run of lines up to
/// the next such line (one search for CRLF and a dot) is counted and copied at once.
#[derive(Debug)]
struct BodyScan {
    /// At the start of a line (after CRLF, or the body's start).
    line_start: bool,
    /// Body bytes so far, dot-unstuffed.
    size: u64,
    /// Past `max`: the rest is dropped as it comes.
    over: bool,
    max: u64,
}

/// Why [`BodyScan::scan`] stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// It needs more bytes (all were taken, or what is left may be the end marker or is
    /// part of a line).
    More,
    /// The end marker is next (not taken).
    End,
    /// The body just went over the limit (the batch is to be dropped).
    Oversize,
    /// The batch is full.
    Full,
}

impl BodyScan {
    fn new(max: u64) -> BodyScan {
        BodyScan {
            line_start: true,
            size: 0,
            over: false,
            max,
        }
    }

    /// Takes body bytes from `rest`, passing them on unstuffed to `sink` (unless over the
    /// limit), `room` bytes or a little more: how many it took, and why it stopped.
    fn scan(&mut self, rest: &[u8], room: usize, sink: &mut dyn FnMut(&[u8])) -> (usize, Stop) {
        let mut pos = 0;
        let mut passed = 0;
        loop {
            if passed >= room {
                return (pos, Stop::Full);
            }
            let rest = &rest[pos..];
            if rest.is_empty() {
                return (pos, Stop::More);
            }
            if self.line_start && rest[0] == b'.' {
                match rest {
                    [b'.', b'\r', b'\n', ..] => return (pos, Stop::End),
                    // Perhaps the end marker: wait for the rest of it.
                    [b'.'] | [b'.', b'\r'] => return (pos, Stop::More),
                    // A stuffed dot: dropped, not counted.
                    _ => {
                        pos += 1;
                        self.line_start = false;
                        continue;
                    }
                }
            }
            // Whole lines up to the next that starts with a dot, or up to the last whole
            // line here; a batch's worth at most.
            let window = &rest[..rest.len().min(BODY_BATCH)];
            let (take, ends_line) = match memchr::memmem::find(window, b"\r\n.") {
                Some(i) => (i + 2, true),
                None => match memchr::memmem::rfind(window, b"\r\n") {
                    Some(i) => (i + 2, true),
                    // A long line: pass it on in pieces, keeping a last CR (it may start
                    // the CRLF) for later.
                    None if window.len() > BODY_PIECE => {
                        (window.len() - usize::from(window.ends_with(b"\r")), false)
                    }
                    None => return (pos, Stop::More),
                },
            };
            self.size += take as u64;
            let was_over = self.over;
            if self.size > self.max {
                self.over = true;
            } else {
                sink(&window[..take]);
                passed += take;
            }
            pos += take;
            self.line_start = ends_line;
            if self.over && !was_over {
                return (pos, Stop::Oversize);
            }
        }
    }
}

/// The SMTP server state machine of one connection. See the [module](self) documentation.
#[derive(Debug)]
pub struct ServerCore {
    hostname: String,
    limits: Limits,
    input: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    phase: Phase,
    awaiting: Awaiting,
    discarding: bool,
    helo: Option<String>,
    extended: bool,
    in_transaction: bool,
    recipients: usize,
    /// Body bytes already scanned out of what arrived (see [`receive`](Self::receive)),
    /// the start of the next [`Event::Body`].
    body: Vec<u8>,
    scan: BodyScan,
    starttls_available: bool,
    tls_active: bool,
    auth_available: bool,
    auth_needs_tls: bool,
    authenticated: Option<String>,
    auth_failures: u32,
    errors: u32,
}

impl ServerCore {
    /// A connection's core; its 220 greeting is already in the output.
    pub fn new(hostname: &str, limits: Limits) -> ServerCore {
        let hostname: String = hostname
            .chars()
            .filter(|c| !c.is_control() && *c != ' ')
            .collect();
        let mut core = ServerCore {
            hostname,
            scan: BodyScan::new(limits.max_message_size),
            limits,
            input: Vec::new(),
            pos: 0,
            out: Vec::new(),
            phase: Phase::Command,
            awaiting: Awaiting::Nothing,
            discarding: false,
            helo: None,
            extended: false,
            in_transaction: false,
            recipients: 0,
            body: Vec::new(),
            starttls_available: false,
            tls_active: false,
            auth_available: false,
            auth_needs_tls: true,
            authenticated: None,
            auth_failures: 0,
            errors: 0,
        };
        let greeting = format!("{} ESMTP Torsion", core.hostname);
        core.reply(220, &greeting);
        core
    }

    /// Offers STARTTLS (the server has a certificate).
    pub fn set_starttls_available(&mut self, available: bool) {
        self.starttls_available = available;
    }

    /// Offers AUTH PLAIN and LOGIN: `available` when there is something to check
    /// credentials against, and with `needs_tls` only once TLS is on (RFC 4954 section 4:
    /// passwords are not to be sent in the clear).
    pub fn set_auth(&mut self, available: bool, needs_tls: bool) {
        self.auth_available = available;
        self.auth_needs_tls = needs_tls;
    }

    /// Marks the connection as TLS from the start (a port where TLS is implicit).
    pub fn set_tls_active(&mut self) {
        self.tls_active = true;
    }

    /// Whether TLS is on (after STARTTLS or from the start).
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The name the client gave in HELO or EHLO.
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// Whether the client said EHLO rather than HELO.
    pub fn extended(&self) -> bool {
        self.extended
    }

    /// The user AUTH logged in, if any.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Bytes received and not yet read: the caller pauses reading past a limit while it
    /// decides something slowly.
    pub fn buffered(&self) -> usize {
        self.input.len() - self.pos + self.body.len()
    }

    /// Whether an event waits for its answer.
    pub fn awaiting(&self) -> bool {
        self.awaiting != Awaiting::Nothing
    }

    /// Whether the connection is done (after QUIT or a 421).
    pub fn closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether a message body is being received (after 354, before its end).
    pub fn in_data(&self) -> bool {
        matches!(self.phase, Phase::Data) || self.awaiting == Awaiting::EndOfData
    }

    /// Whether [`poll`](Self::poll) stopped answering because [`MAX_OUTPUT`] bytes of
    /// replies wait to be taken: take them (and send them, when the connection can take
    /// more), then poll again.
    pub fn output_full(&self) -> bool {
        self.out.len() >= MAX_OUTPUT
    }

    /// Takes the replies written so far, to send.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Adds what the client sent.
    pub fn receive(&mut self, data: &[u8]) {
        self.receive_into(data, None);
    }

    /// Adds what the client sent as [`receive`](Self::receive) does, except that the
    /// message body it can pass on at once goes to `body` (dot-unstuffed, in order, as
    /// slices of `data`) rather than into an [`Event::Body`]: the bytes of a message are
    /// then never copied into the core. What is left (a part of a line, the end marker,
    /// commands) comes out of [`poll`](Self::poll) as usual, and so does any body the core
    /// held already, so `body` is only called when it has nothing of the message before.
    pub fn receive_with_body(&mut self, data: &[u8], mut body: impl FnMut(&[u8])) {
        self.receive_into(data, Some(&mut body));
    }

    fn receive_into(&mut self, data: &[u8], sink: Option<&mut BodySink<'_>>) {
        if self.closed() {
            return;
        }
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        // Mid-body with nothing held, the usual case for a message's bytes: its lines go
        // straight into the next Event::Body, instead of being copied in here first and
        // out again at `poll`. Only what cannot be decided yet (the end marker and what
        // follows it, a part of a line) is kept. Not when this could take the message past
        // its limit, nor past a batch: `poll` deals with those.
        if matches!(self.phase, Phase::Data)
            && self.input.is_empty()
            && self.scan.size.saturating_add(data.len() as u64) <= self.scan.max
        {
            let (scanned, _) = match sink {
                Some(sink) if self.body.is_empty() => self.scan.scan(data, usize::MAX, sink),
                _ => {
                    let body = &mut self.body;
                    let room = BODY_BATCH.saturating_sub(body.len());
                    self.scan
                        .scan(data, room, &mut |run| body.extend_from_slice(run))
                }
            };
            self.input.extend_from_slice(&data[scanned..]);
            return;
        }
        self.input.extend_from_slice(data);
    }

    /// The next event, or `None` when more bytes are needed or an event waits for its
    /// answer.
    ///
    /// It also returns `None` once [`MAX_OUTPUT`] bytes of replies wait
    /// ([`output_full`](Self::output_full)): a client pipelining thousands of commands
    /// gets its answers only as fast as it takes them.
    pub fn poll(&mut self) -> Option<Event> {
        loop {
            if self.awaiting() || self.output_full() {
                return None;
            }
            match self.phase {
                Phase::Closed => return None,
                Phase::Data => match self.poll_data() {
                    Some(event) => return Some(event),
                    // The message ended without an event (it was too large): on to the
                    // commands after it.
                    None if !matches!(self.phase, Phase::Data) => continue,
                    None => return None,
                },
                _ => {}
            }
            let line = match self.next_line() {
                Line::Incomplete => return None,
                Line::TooLong => {
                    self.phase = Phase::Command;
                    let text = format!(
                        "5.5.2 Line too long (the limit is {} octets including CRLF)",
                        self.limits.max_line
                    );
                    if let Some(e) = self.refuse(500, &text) {
                        return Some(e);
                    }
                    continue;
                }
                Line::Complete(line) => line,
            };
            let event = match std::mem::replace(&mut self.phase, Phase::Command) {
                Phase::AuthPlain => self.auth_plain(&line),
                Phase::AuthLoginUser => self.auth_login_user(&line),
                Phase::AuthLoginPassword(user) => self.auth_login_password(user, &line),
                _ => self.command(&line),
            };
            if event.is_some() {
                return event;
            }
        }
    }

    fn next_line(&mut self) -> Line {
        let rest = &self.input[self.pos..];
        match memchr::memchr(b'\n', rest) {
            Some(i) => {
                self.pos += i + 1;
                if std::mem::take(&mut self.discarding) || i + 1 > self.limits.max_line {
                    return Line::TooLong;
                }
                let mut line = &rest[..i];
                if let Some(l) = line.strip_suffix(b"\r") {
                    line = l;
                }
                Line::Complete(line.to_vec())
            }
            None => {
                if self.discarding || rest.len() >= self.limits.max_line {
                    self.discarding = true;
                    self.pos = self.input.len();
                }
                Line::Incomplete
            }
        }
    }

    fn reply(&mut self, code: u16, text: &str) {
        Reply::write_line(&mut self.out, code, true, text);
    }

    /// Answers a refused command; past [`Limits::max_errors`] closes the connection.
    fn refuse(&mut self, code: u16, text: &str) -> Option<Event> {
        self.reply(code, text);
        self.errors += 1;
        if self.errors >= self.limits.max_errors {
            return Some(self.close(421, "4.7.0 Too many errors, closing the connection"));
        }
        None
    }

    fn close(&mut self, code: u16, text: &str) -> Event {
        self.reply(code, text);
        self.phase = Phase::Closed;
        self.input = Vec::new();
        self.body = Vec::new();
        self.pos = 0;
        Event::Close
    }

    fn reset_transaction(&mut self) -> bool {
        let had = self.in_transaction;
        self.in_transaction = false;
        self.recipients = 0;
        had
    }

    fn command(&mut self, line: &[u8]) -> Option<Event> {
        let command = match parse_command(line) {
            Ok(c) => c,
            Err(e @ CommandError::Unrecognized) => return self.refuse(500, &format!("5.5.1 {e}")),
            Err(e @ CommandError::Syntax(_)) => return self.refuse(501, &format!("5.5.4 {e}")),
            Err(e @ CommandError::UnknownParameter) => {
                return self.refuse(555, &format!("5.5.4 {e}"))
            }
        };
        match command {
            Command::Helo(name) | Command::Ehlo(name) if name.len() > 255 => {
                self.refuse(501, "5.5.4 The name is too long")
            }
            Command::Helo(name) => {
                self.helo = Some(name);
                self.extended = false;
                let text = format!("{} Hello", self.hostname);
                self.reply(250, &text);
                self.reset_transaction().then_some(Event::Reset)
            }
            Command::Ehlo(name) => {
                self.helo = Some(name);
                self.extended = true;
                let mut lines = vec![
                    format!("{} Hello", self.hostname),
                    "PIPELINING".to_owned(),
                    format!("SIZE {}", self.limits.max_message_size),
                    "8BITMIME".to_owned(),
                    "SMTPUTF8".to_owned(),
                    "ENHANCEDSTATUSCODES".to_owned(),
                ];
                if self.starttls_available && !self.tls_active {
                    lines.push("STARTTLS".to_owned());
                }
                if self.auth_offered() {
                    lines.push("AUTH PLAIN LOGIN".to_owned());
                }
                Reply::multiline(250, lines).write_to(&mut self.out);
                self.reset_transaction().then_some(Event::Reset)
            }
            Command::Noop => {
                self.reply(250, "2.0.0 OK");
                None
            }
            Command::Help => {
                self.reply(214, "2.0.0 See RFC 5321");
                None
            }
            Command::Vrfy => {
                self.reply(
                    252,
                    "2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
                );
                None
            }
            Command::Expn => self.refuse(502, "5.5.1 EXPN is not supported"),
            Command::Quit => Some(self.close(221, "2.0.0 Bye")),
            Command::Rset => {
                self.reply(250, "2.0.0 Reset");
                self.reset_transaction().then_some(Event::Reset)
            }
            Command::Mail { from, params } => {
                if self.helo.is_none() {
                    return self.refuse(503, "5.5.1 Send HELO or EHLO first");
                }
                if self.in_transaction {
                    return self.refuse(503, "5.5.1 Nested MAIL command");
                }
                if params
                    .size
                    .is_some_and(|s| s > self.limits.max_message_size)
                {
                    return self.refuse(
                        552,
                        "5.3.4 Message size exceeds the fixed maximum message size",
                    );
                }
                self.awaiting = Awaiting::Mail;
                Some(Event::Mail { from, params })
            }
            Command::Rcpt { to } => {
                if !self.in_transaction {
                    return self.refuse(503, "5.5.1 Need MAIL before RCPT");
                }
                if self.recipients >= self.limits.max_recipients {
                    self.reply(452, "4.5.3 Too many recipients");
                    return None;
                }
                self.awaiting = Awaiting::Rcpt;
                Some(Event::Rcpt { to })
            }
            Command::Data => {
                if !self.in_transaction {
                    return self.refuse(503, "5.5.1 Need MAIL command");
                }
                if self.recipients == 0 {
                    return self.refuse(554, "5.5.1 No valid recipients");
                }
                self.awaiting = Awaiting::Data;
                Some(Event::Data)
            }
            Command::StartTls => {
                if !self.starttls_available {
                    return self.refuse(502, "5.5.1 STARTTLS is not available");
                }
                if self.tls_active {
                    return self.refuse(503, "5.5.1 TLS is already active");
                }
                self.reply(220, "2.0.0 Ready to start TLS");
                // RFC 3207 section 4.2: forget everything, including what was pipelined
                // after STARTTLS in the clear (it could be an attacker's).
                self.input = Vec::new();
                self.pos = 0;
                self.tls_active = true;
                self.helo = None;
                self.extended = false;
                self.authenticated = None;
                self.reset_transaction();
                Some(Event::StartTls)
            }
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial),
        }
    }

    fn auth_offered(&self) -> bool {
        self.auth_available && (self.tls_active || !self.auth_needs_tls)
    }

    fn auth(&mut self, mechanism: String, initial: Option<String>) -> Option<Event> {
        if !self.auth_available {
            return self.refuse(502, "5.5.1 AUTH is not available");
        }
        if !self.auth_offered() {
            return self.refuse(
                538,
                "5.7.11 Encryption required for requested authentication mechanism",
            );
        }
        if self.helo.is_none() || !self.extended {
            return self.refuse(503, "5.5.1 Send EHLO first");
        }
        if self.authenticated.is_some() {
            return self.refuse(503, "5.5.1 Already authenticated");
        }
        if self.in_transaction {
            return self.refuse(503, "5.5.1 AUTH is not allowed during a mail transaction");
        }
        match (mechanism.as_str(), initial) {
            ("PLAIN", None) => {
                self.phase = Phase::AuthPlain;
                self.reply(334, "");
                None
            }
            ("PLAIN", Some(initial)) => self.auth_plain(initial.as_bytes()),
            ("LOGIN", None) => {
                self.phase = Phase::AuthLoginUser;
                self.reply(334, "VXNlcm5hbWU6"); // "Username:"
                None
            }
            ("LOGIN", Some(initial)) => self.auth_login_user(initial.as_bytes()),
            _ => self.refuse(504, "5.5.4 Unrecognized authentication type"),
        }
    }

    /// Decodes one SASL response: `None` (answered) if cancelled or malformed.
    fn sasl_response(&mut self, line: &[u8]) -> Result<Vec<u8>, Option<Event>> {
        if line == b"*" {
            return Err(self.refuse(501, "5.7.0 Authentication cancelled"));
        }
        if line == b"=" {
            return Ok(Vec::new());
        }
        B64.decode(line)
            .map_err(|_| self.refuse(501, "5.5.2 Cannot decode the response"))
    }

    fn auth_plain(&mut self, line: &[u8]) -> Option<Event> {
        let decoded = match self.sasl_response(line) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let mut parts = decoded.splitn(3, |&b| b == 0);
        let (Some(authzid), Some(user), Some(password)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return self.refuse(501, "5.5.2 Malformed PLAIN response");
        };
        let (Ok(authzid), Ok(user)) = (std::str::from_utf8(authzid), std::str::from_utf8(user))
        else {
            return self.refuse(501, "5.5.2 Malformed PLAIN response");
        };
        self.awaiting = Awaiting::Auth;
        Some(Event::Auth {
            authzid: authzid.to_owned(),
            user: user.to_owned(),
            password: password.to_vec(),
        })
    }

    fn auth_login_user(&mut self, line: &[u8]) -> Option<Event> {
        let decoded = match self.sasl_response(line) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let Ok(user) = String::from_utf8(decoded) else {
            return self.refuse(501, "5.5.2 Malformed user name");
        };
        self.phase = Phase::AuthLoginPassword(user);
        self.reply(334, "UGFzc3dvcmQ6"); // "Password:"
        None
    }

    fn auth_login_password(&mut self, user: String, line: &[u8]) -> Option<Event> {
        let password = match self.sasl_response(line) {
            Ok(d) => d,
            Err(e) => return e,
        };
        self.awaiting = Awaiting::Auth;
        Some(Event::Auth {
            authzid: String::new(),
            user,
            password,
        })
    }

    /// The body after 354 (see [`BodyScan`]): what [`receive`](Self::receive) scanned
    /// already, then what is in the input.
    fn poll_data(&mut self) -> Option<Event> {
        let mut batch = std::mem::take(&mut self.body);
        let room = BODY_BATCH.saturating_sub(batch.len());
        let (scanned, stop) = self.scan.scan(&self.input[self.pos..], room, &mut |run| {
            batch.extend_from_slice(run)
        });
        self.pos += scanned;
        match stop {
            Stop::End if !batch.is_empty() && !self.scan.over => Some(Event::Body(batch)),
            Stop::End => self.end_of_data(),
            Stop::Oversize => Some(Event::Oversize),
            Stop::More | Stop::Full => (!batch.is_empty()).then_some(Event::Body(batch)),
        }
    }

    /// The end marker (`.` CRLF) is next: on to commands, after the 552 of a message that
    /// was too large, or waiting for [`finish_data`](Self::finish_data).
    fn end_of_data(&mut self) -> Option<Event> {
        self.pos += 3;
        self.phase = Phase::Command;
        if std::mem::take(&mut self.scan.over) {
            self.reset_transaction();
            self.reply(
                552,
                "5.3.4 Message size exceeds the fixed maximum message size",
            );
            return None;
        }
        self.awaiting = Awaiting::EndOfData;
        Some(Event::EndOfData)
    }

    fn answered(&mut self, expected: &[Awaiting]) -> Option<Awaiting> {
        if !expected.contains(&self.awaiting) {
            return None;
        }
        Some(std::mem::replace(&mut self.awaiting, Awaiting::Nothing))
    }

    /// Accepts the sender of [`Event::Mail`] (250) or the recipient of [`Event::Rcpt`]
    /// (250). Does nothing when neither waits.
    pub fn accept(&mut self) {
        match self.answered(&[Awaiting::Mail, Awaiting::Rcpt]) {
            Some(Awaiting::Mail) => {
                self.in_transaction = true;
                self.recipients = 0;
                self.reply(250, "2.1.0 Sender OK");
            }
            Some(_) => {
                self.recipients += 1;
                self.reply(250, "2.1.5 Recipient OK");
            }
            None => {}
        }
    }

    /// Refuses what [`Event::Mail`], [`Event::Rcpt`] or [`Event::Data`] asked, with
    /// `reply`. A refused DATA ends the transaction. Does nothing when none waits.
    pub fn reject(&mut self, reply: &Reply) {
        if let Some(what) = self.answered(&[Awaiting::Mail, Awaiting::Rcpt, Awaiting::Data]) {
            reply.write_to(&mut self.out);
            if what == Awaiting::Data {
                self.reset_transaction();
            }
        }
    }

    /// Starts the message after [`Event::Data`] (354).
    pub fn start_data(&mut self) {
        if self.answered(&[Awaiting::Data]).is_some() {
            self.reply(354, "End data with <CR><LF>.<CR><LF>");
            self.phase = Phase::Data;
            self.scan = BodyScan::new(self.limits.max_message_size);
        }
    }

    /// Answers [`Event::EndOfData`]: `None` for "accepted" (250), or the reply to give;
    /// either way the transaction is over.
    pub fn finish_data(&mut self, reply: Option<Reply>) {
        if self.answered(&[Awaiting::EndOfData]).is_some() {
            match reply {
                Some(reply) => reply.write_to(&mut self.out),
                None => self.reply(250, "2.0.0 Message accepted"),
            }
            self.reset_transaction();
        }
    }

    /// Answers [`Event::Auth`]: the user is logged in (235).
    pub fn auth_succeeded(&mut self, user: &str) {
        if self.answered(&[Awaiting::Auth]).is_some() {
            self.authenticated = Some(user.to_owned());
            self.reply(235, "2.7.0 Authentication successful");
        }
    }

    /// Answers [`Event::Auth`]: refused (535); past [`Limits::max_auth_failures`] the
    /// connection closes (421), and `Some(Event::Close)` says so.
    pub fn auth_failed(&mut self) -> Option<Event> {
        self.answered(&[Awaiting::Auth])?;
        self.reply(535, "5.7.8 Authentication credentials invalid");
        self.auth_failures += 1;
        (self.auth_failures >= self.limits.max_auth_failures)
            .then(|| self.close(421, "4.7.0 Too many failed logins, closing the connection"))
    }

    /// Answers [`Event::Auth`]: the credentials could not be checked now (454).
    pub fn auth_unavailable(&mut self) {
        if self.answered(&[Awaiting::Auth]).is_some() {
            self.reply(454, "4.7.0 Temporary authentication failure");
        }
    }

    /// Closes with 421 because the client said nothing for too long (Twisted's
    /// `timeoutConnection`), dropping what is pending, a message being received included.
    pub fn timed_out(&mut self) -> Event {
        self.awaiting = Awaiting::Nothing;
        let text = format!("4.4.2 {} Timeout, closing the connection", self.hostname);
        self.close(421, &text)
    }

    /// Closes with 421 (the server is going away), dropping what is pending.
    pub fn shutdown(&mut self) -> Event {
        self.awaiting = Awaiting::Nothing;
        self.close(421, "4.3.2 Service shutting down")
    }
}
