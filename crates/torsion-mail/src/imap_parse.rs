//! IMAP4rev1 commands read and responses written, without I/O (RFC 3501, with LITERAL+ of
//! RFC 7888).
//!
//! Two layers:
//!
//! - [`Framer`] cuts the byte stream into whole commands. A command is a line, or a line
//!   ending in a literal's announcement (`{12}` or, non-synchronising, `{12+}`) followed by
//!   that many bytes and the rest of the command. It enforces [`Limits`]: a line longer than
//!   [`Limits::max_line`] is dropped as it arrives ([`Frame::TooLong`]), and a literal
//!   larger than [`Limits::max_literal`] is refused *before* a byte of it is read
//!   ([`Frame::LiteralTooLarge`]): a synchronising one is answered `NO [TOOBIG]` and never
//!   sent by the client, and a non-synchronising one — whose bytes are on their way — is
//!   answered `BAD [TOOBIG]` and the connection closed, as RFC 7888 section 4 says.
//! - [`parse_command`] turns one framed command into a [`Command`]: tags, atoms, quoted
//!   strings, literals, sequence sets, search keys and fetch items.
//!
//! The writing half ([`quoted_or_literal`], [`nstring`]) quotes what can be quoted and sends
//! the rest as literals.
//!
//! ```
//! use torsion_mail::imap_parse::{parse_command, CommandKind, Frame, Framer, Limits};
//!
//! let mut f = Framer::new(Limits::default());
//! f.push(b"a1 LOGIN {5}\r\n");
//! assert_eq!(f.next(), Some(Frame::Continuation)); // the server says "+ ..."
//! assert_eq!(f.next(), None);
//! f.push(b"alice \"wonder land\"\r\n");
//! let Some(Frame::Command(bytes)) = f.next() else { panic!() };
//! let cmd = parse_command(&bytes).unwrap();
//! assert_eq!(cmd.tag, "a1");
//! assert_eq!(
//!     cmd.kind,
//!     CommandKind::Login { user: "alice".into(), password: b"wonder land".to_vec() }
//! );
//! ```

/// How much a client may send at once.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The longest line of a command, without its literals (64 KiB; RFC 7162 asks servers
    /// to take at least 8,192 bytes).
    pub max_line: usize,
    /// The largest literal (an APPENDed message, say): 10 MiB by default.
    pub max_literal: u64,
    /// The largest whole command, lines and literals together (`max_literal` + 64 KiB by
    /// default).
    pub max_command: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line: 64 << 10,
            max_literal: 10 << 20,
            max_command: (10 << 20) + (64 << 10),
        }
    }
}

/// What the [`Framer`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole command: its lines (CRLF between them, none at the end) with each literal's
    /// announcement and bytes in place.
    Command(Vec<u8>),
    /// A synchronising literal was announced and fits: send a continuation (`+ ...`) so the
    /// client sends it.
    Continuation,
    /// A line longer than [`Limits::max_line`]: it is dropped up to its end. Answer `BAD`
    /// (tagged with `tag` if one was seen).
    TooLong {
        /// The command's tag, if it had one.
        tag: Option<String>,
    },
    /// A literal over [`Limits::max_literal`] (or making the command longer than
    /// [`Limits::max_command`]) was announced; the command is dropped.
    LiteralTooLarge {
        /// The command's tag, if it had one.
        tag: Option<String>,
        /// Non-synchronising (`{n+}`): the client is sending it anyway, so answer `BAD
        /// [TOOBIG]` and close the connection (RFC 7888 section 4). Synchronising: answer
        /// `NO [TOOBIG]`; the client will not send it, and the connection goes on.
        non_synchronising: bool,
    },
}

/// Cuts bytes into commands; see the [module](self) documentation.
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    buf: Vec<u8>,
    /// Where the line being looked at starts in `buf`.
    scan: usize,
    /// Bytes of a literal still to come before the command goes on.
    literal_left: Option<usize>,
    /// Dropping input up to the next LF (after a line that was too long).
    discarding: bool,
}

impl Framer {
    /// A framer holding clients to `limits`.
    pub fn new(limits: Limits) -> Framer {
        Framer {
            limits,
            buf: Vec::new(),
            scan: 0,
            literal_left: None,
            discarding: false,
        }
    }

    /// Bytes received.
    pub fn push(&mut self, data: &[u8]) {
        if self.discarding {
            if let Some(i) = memchr::memchr(b'\n', data) {
                self.discarding = false;
                self.buf.extend_from_slice(&data[i + 1..]);
            }
        } else {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes held, not yet part of a command given out.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the framer is half way through a command (in a literal, or after one).
    pub fn mid_command(&self) -> bool {
        self.scan > 0 || self.literal_left.is_some()
    }

    /// Drops everything buffered (after STARTTLS, what was sent with it in the clear).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.scan = 0;
        self.literal_left = None;
        self.discarding = false;
    }

    fn tag(&self) -> Option<String> {
        let end = self.buf[..self.buf.len().min(64)]
            .iter()
            .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
            .unwrap_or(self.buf.len().min(64));
        let t = &self.buf[..end];
        (!t.is_empty() && t.iter().all(|&b| is_tag_char(b)))
            .then(|| String::from_utf8_lossy(t).into_owned())
    }

    /// The next thing found, if the bytes so far make one.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Frame> {
        loop {
            if self.discarding {
                return None;
            }
            if let Some(n) = self.literal_left {
                if self.buf.len() - self.scan < n {
                    return None;
                }
                self.scan += n;
                self.literal_left = None;
                continue;
            }
            let Some(rel) = memchr::memchr(b'\n', &self.buf[self.scan..]) else {
                // + 1: the line's CR may be among the bytes (a line of max_line bytes
                // and its CR, waiting for the LF, is not too long yet).
                if self.buf.len() - self.scan > self.limits.max_line + 1 {
                    let tag = self.tag();
                    self.clear();
                    self.discarding = true;
                    return Some(Frame::TooLong { tag });
                }
                return None;
            };
            let lf = self.scan + rel;
            let mut line = &self.buf[self.scan..lf];
            if let Some(l) = line.strip_suffix(b"\r") {
                line = l;
            }
            if line.len() > self.limits.max_line {
                let tag = self.tag();
                self.buf.drain(..=lf);
                self.scan = 0;
                return Some(Frame::TooLong { tag });
            }
            if let Some((n, plus)) = literal_announced(line) {
                let total = (lf as u64 + 1).saturating_add(n);
                if n > self.limits.max_literal || total > self.limits.max_command as u64 {
                    let tag = self.tag();
                    self.buf.drain(..=lf);
                    self.scan = 0;
                    return Some(Frame::LiteralTooLarge {
                        tag,
                        non_synchronising: plus,
                    });
                }
                self.scan = lf + 1;
                self.literal_left = Some(n as usize);
                if !plus {
                    return Some(Frame::Continuation);
                }
                continue;
            }
            let end = lf - usize::from(lf > 0 && self.buf[lf - 1] == b'\r');
            let command = self.buf[..end].to_vec();
            self.buf.drain(..=lf);
            self.scan = 0;
            return Some(Frame::Command(command));
        }
    }
}

/// `{123}` or `{123+}` at the end of a line: the size and whether it is non-synchronising.
fn literal_announced(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = memchr::memrchr(b'{', inner)?;
    let mut digits = &inner[open + 1..];
    let plus = if let Some(d) = digits.strip_suffix(b"+") {
        digits = d;
        true
    } else {
        false
    };
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
    Some((n, plus))
}

fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

fn is_tag_char(b: u8) -> bool {
    is_atom_char(b) && b != b'+'
}

/// One end of a sequence range: a number or `*` (the last message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqNum {
    /// A message sequence number or UID.
    Num(u32),
    /// The largest in use.
    Star,
}

/// A sequence set (`1,3:5,7:*`), of sequence numbers or UIDs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqSet(pub Vec<(SeqNum, SeqNum)>);

impl SeqSet {
    /// Whether `n` is in the set, `*` standing for `max`.
    pub fn contains(&self, n: u32, max: u32) -> bool {
        let v = |s: SeqNum| match s {
            SeqNum::Num(x) => x,
            SeqNum::Star => max,
        };
        self.0.iter().any(|&(a, b)| {
            let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
            lo <= n && n <= hi
        })
    }
}

/// A calendar date, as SEARCH's SINCE/BEFORE/ON and APPEND's date carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// The year.
    pub year: i32,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Date {
    /// Days since 1970-01-01.
    pub fn days(&self) -> i64 {
        days_from_civil(self.year as i64, self.month as i64, self.day as i64)
    }

    /// The date `days` after 1970-01-01.
    pub fn from_days(days: i64) -> Date {
        let (y, m, d) = civil_from_days(days);
        Date {
            year: y as i32,
            month: m as u8,
            day: d as u8,
        }
    }

    /// Parses `7-Dec-2026` or `07-Dec-2026`.
    pub fn parse(s: &str) -> Option<Date> {
        let mut it = s.split('-');
        let day: u8 = it.next()?.trim().parse().ok()?;
        let mon = it.next()?;
        let year: i32 = it.next()?.parse().ok()?;
        if it.next().is_some() || !(1..=31).contains(&day) || !(1..=9999).contains(&year) {
            return None;
        }
        let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as u8 + 1;
        Some(Date { year, month, day })
    }

    /// The month's three-letter name.
    pub fn month_name(&self) -> &'static str {
        MONTHS[usize::from(self.month.clamp(1, 12) - 1)]
    }
}

/// Howard Hinnant's days-from-civil.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `dd-Mon-yyyy hh:mm:ss +0000` for a Unix time: INTERNALDATE's form.
pub fn internal_date(unix: i64) -> String {
    let d = Date::from_days(unix.div_euclid(86400));
    let s = unix.rem_euclid(86400);
    format!(
        "{:02}-{}-{:04} {:02}:{:02}:{:02} +0000",
        d.day,
        d.month_name(),
        d.year,
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Parses INTERNALDATE's form (APPEND's date) into a Unix time.
pub fn parse_internal_date(s: &str) -> Option<i64> {
    let (date, rest) = s.trim().split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let d = Date::parse(date)?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| {
            (p.len() == 2)
                .then(|| p.parse().ok())
                .flatten()
                .filter(|&v| (0..61).contains(&v))
        })
        .collect::<Option<_>>()?;
    if t.len() != 3 || zone.len() != 5 || !zone.is_ascii() {
        return None;
    }
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zh: i64 = zone[1..3].parse().ok()?;
    let zm: i64 = zone[3..5].parse().ok()?;
    Some(d.days() * 86400 + t[0] * 3600 + t[1] * 60 + t[2] - sign * (zh * 3600 + zm * 60))
}

/// What part of a message a `BODY[...]` names.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Section {
    /// The part's number path (`1.2` is `[1, 2]`); empty for the whole message.
    pub part: Vec<u32>,
    /// What of it.
    pub text: Option<SectionText>,
}

/// The textual end of a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionText {
    /// `HEADER`.
    Header,
    /// `HEADER.FIELDS (...)`.
    HeaderFields(Vec<String>),
    /// `HEADER.FIELDS.NOT (...)`.
    HeaderFieldsNot(Vec<String>),
    /// `TEXT`.
    Text,
    /// `MIME` (of a numbered part).
    Mime,
}

/// One FETCH item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchAtt {
    /// `ENVELOPE`.
    Envelope,
    /// `FLAGS`.
    Flags,
    /// `INTERNALDATE`.
    InternalDate,
    /// `RFC822` (as `BODY[]`, setting `\Seen`).
    Rfc822,
    /// `RFC822.HEADER`.
    Rfc822Header,
    /// `RFC822.SIZE`.
    Rfc822Size,
    /// `RFC822.TEXT`.
    Rfc822Text,
    /// `UID`.
    Uid,
    /// `BODYSTRUCTURE`.
    BodyStructure,
    /// `BODY` without a section: the structure without extensions.
    Body,
    /// `BODY[...]` or `BODY.PEEK[...]`, maybe `<offset.count>`.
    Section {
        /// `PEEK`: do not set `\Seen`.
        peek: bool,
        /// Which section.
        section: Section,
        /// `<offset.count>`.
        partial: Option<(u32, u32)>,
    },
}

/// A SEARCH key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    /// Every message.
    All,
    /// A flag set (`\Answered` is `'R'`, ... as in the Maildir info): `SEEN`, `ANSWERED`,
    /// `FLAGGED`, `DELETED`, `DRAFT`.
    Flag(char, bool),
    /// `NEW` (recent and unseen).
    New,
    /// `OLD` (not recent).
    Old,
    /// `RECENT`.
    Recent,
    /// `KEYWORD x` (true) or `UNKEYWORD x` (false); keywords are not stored.
    Keyword(String, bool),
    /// A header's value contains a string (`FROM`, `TO`, `CC`, `BCC`, `SUBJECT`, `HEADER`).
    Header(String, String),
    /// `BODY x`.
    Body(String),
    /// `TEXT x`.
    Text(String),
    /// Internal date before.
    Before(Date),
    /// Internal date on.
    On(Date),
    /// Internal date on or after.
    Since(Date),
    /// `Date:` header before.
    SentBefore(Date),
    /// `Date:` header on.
    SentOn(Date),
    /// `Date:` header on or after.
    SentSince(Date),
    /// Larger than.
    Larger(u64),
    /// Smaller than.
    Smaller(u64),
    /// `UID set`.
    Uid(SeqSet),
    /// A bare sequence set.
    Seq(SeqSet),
    /// `NOT`.
    Not(Box<SearchKey>),
    /// `OR`.
    Or(Box<SearchKey>, Box<SearchKey>),
    /// A parenthesised list, or the top level: all of them.
    And(Vec<SearchKey>),
}

/// STORE's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// `FLAGS`.
    Replace,
    /// `+FLAGS`.
    Add,
    /// `-FLAGS`.
    Remove,
}

/// What a command asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandKind {
    /// `CAPABILITY`.
    Capability,
    /// `NOOP`.
    Noop,
    /// `LOGOUT`.
    Logout,
    /// `STARTTLS`.
    StartTls,
    /// `AUTHENTICATE mech [initial-response]` (SASL-IR).
    Authenticate {
        /// The mechanism, upper-cased.
        mechanism: String,
        /// A base64 initial response, if given.
        initial: Option<String>,
    },
    /// `LOGIN user password`.
    Login {
        /// The user.
        user: String,
        /// The password.
        password: Vec<u8>,
    },
    /// `SELECT mailbox`.
    Select(String),
    /// `EXAMINE mailbox`.
    Examine(String),
    /// `CREATE mailbox`.
    Create(String),
    /// `DELETE mailbox`.
    Delete(String),
    /// `RENAME from to`.
    Rename(String, String),
    /// `SUBSCRIBE mailbox`.
    Subscribe(String),
    /// `UNSUBSCRIBE mailbox`.
    Unsubscribe(String),
    /// `LIST reference pattern`.
    List(String, String),
    /// `LSUB reference pattern`.
    Lsub(String, String),
    /// `STATUS mailbox (items)`, items upper-cased.
    Status(String, Vec<String>),
    /// `APPEND mailbox [(flags)] [date] literal`.
    Append {
        /// Where.
        mailbox: String,
        /// Its flags.
        flags: Vec<String>,
        /// Its internal date (a Unix time).
        date: Option<i64>,
        /// The message.
        message: Vec<u8>,
    },
    /// `CHECK`.
    Check,
    /// `CLOSE`.
    Close,
    /// `EXPUNGE`.
    Expunge,
    /// `[UID] SEARCH [CHARSET x] keys`.
    Search {
        /// `UID SEARCH`.
        uid: bool,
        /// All of these.
        key: SearchKey,
    },
    /// `[UID] FETCH set items`.
    Fetch {
        /// `UID FETCH`.
        uid: bool,
        /// Which.
        set: SeqSet,
        /// What.
        items: Vec<FetchAtt>,
    },
    /// `[UID] STORE set [+-]FLAGS[.SILENT] (flags)`.
    Store {
        /// `UID STORE`.
        uid: bool,
        /// Which.
        set: SeqSet,
        /// How.
        mode: StoreMode,
        /// `.SILENT`.
        silent: bool,
        /// The flags.
        flags: Vec<String>,
    },
    /// `[UID] COPY set mailbox`.
    Copy {
        /// `UID COPY`.
        uid: bool,
        /// Which.
        set: SeqSet,
        /// Where to.
        mailbox: String,
    },
    /// `IDLE` (RFC 2177).
    Idle,
}

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Its tag.
    pub tag: String,
    /// What it asks.
    pub kind: CommandKind,
}

/// Why a command could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The tag, if the command had a valid one (answer `tag BAD`, else `* BAD`).
    pub tag: Option<String>,
    /// What was wrong.
    pub message: String,
}

type R<T> = Result<T, String>;

/// The most nested parentheses in a SEARCH (NOT/OR/lists): deeper is refused rather than
/// recursed into.
const MAX_DEPTH: usize = 32;

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> P<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn sp(&mut self) -> R<()> {
        if self.peek() == Some(b' ') {
            self.i += 1;
            Ok(())
        } else {
            Err("expected a space".into())
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> R<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected {:?}", b as char))
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn atom(&mut self) -> R<String> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err("expected an atom".into());
        }
        Ok(String::from_utf8_lossy(a).into_owned())
    }

    fn number(&mut self) -> R<u64> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() || d.len() > 19 {
            return Err("expected a number".into());
        }
        std::str::from_utf8(d)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "expected a number".into())
    }

    fn nz_u32(&mut self) -> R<u32> {
        match u32::try_from(self.number()?) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("expected a number from 1 to 4294967295".into()),
        }
    }

    fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return Err("unterminated string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.i += 1;
                        }
                        _ => return Err("bad escape in a string".into()),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> R<Vec<u8>> {
        self.expect(b'{')?;
        let n = self.number()?;
        self.eat(b'+');
        self.expect(b'}')?;
        self.eat(b'\r');
        self.expect(b'\n')?;
        let n = usize::try_from(n).map_err(|_| "literal too large")?;
        if self.s.len() - self.i < n {
            return Err("literal cut short".into());
        }
        let v = self.s[self.i..self.i + n].to_vec();
        self.i += n;
        Ok(v)
    }

    fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => Err("expected a string".into()),
        }
    }

    fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || b == b']');
                if a.is_empty() {
                    return Err("expected a string".into());
                }
                Ok(a.to_vec())
            }
        }
    }

    fn astring_text(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| "not UTF-8".into())
    }

    fn mailbox(&mut self) -> R<String> {
        let m = self.astring_text()?;
        Ok(if m.eq_ignore_ascii_case("INBOX") {
            "INBOX".into()
        } else {
            m
        })
    }

    fn list_mailbox(&mut self) -> R<String> {
        match self.peek() {
            Some(b'"') | Some(b'{') => {
                String::from_utf8(self.string()?).map_err(|_| "not UTF-8".into())
            }
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || matches!(b, b'%' | b'*' | b']'));
                if a.is_empty() {
                    return Err("expected a mailbox pattern".into());
                }
                Ok(String::from_utf8_lossy(a).into_owned())
            }
        }
    }

    fn seq_num(&mut self) -> R<SeqNum> {
        if self.eat(b'*') {
            Ok(SeqNum::Star)
        } else {
            Ok(SeqNum::Num(self.nz_u32()?))
        }
    }

    fn seq_set(&mut self) -> R<SeqSet> {
        let mut v = Vec::new();
        loop {
            let a = self.seq_num()?;
            let b = if self.eat(b':') { self.seq_num()? } else { a };
            v.push((a, b));
            if !self.eat(b',') {
                return Ok(SeqSet(v));
            }
        }
    }

    fn flag(&mut self) -> R<String> {
        let back = self.eat(b'\\');
        let a = self.atom()?;
        Ok(if back { format!("\\{a}") } else { a })
    }

    fn flag_list(&mut self) -> R<Vec<String>> {
        self.expect(b'(')?;
        let mut v = Vec::new();
        if self.eat(b')') {
            return Ok(v);
        }
        loop {
            v.push(self.flag()?);
            if self.eat(b')') {
                return Ok(v);
            }
            self.sp()?;
        }
    }

    fn date(&mut self) -> R<Date> {
        let s = if self.peek() == Some(b'"') {
            String::from_utf8_lossy(&self.quoted()?).into_owned()
        } else {
            String::from_utf8_lossy(self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-'))
                .into_owned()
        };
        Date::parse(&s).ok_or_else(|| format!("bad date {s:?}"))
    }

    fn search_key(&mut self, depth: usize) -> R<SearchKey> {
        if depth > MAX_DEPTH {
            return Err("search nested too deeply".into());
        }
        if self.eat(b'(') {
            let mut keys = vec![self.search_key(depth + 1)?];
            while !self.eat(b')') {
                self.sp()?;
                keys.push(self.search_key(depth + 1)?);
            }
            return Ok(SearchKey::And(keys));
        }
        if self.peek().is_some_and(|b| b.is_ascii_digit() || b == b'*') {
            return Ok(SearchKey::Seq(self.seq_set()?));
        }
        let word = self.atom()?.to_ascii_uppercase();
        let flag = |c, on| Ok(SearchKey::Flag(c, on));
        match word.as_str() {
            "ALL" => Ok(SearchKey::All),
            "ANSWERED" => flag('R', true),
            "UNANSWERED" => flag('R', false),
            "DELETED" => flag('T', true),
            "UNDELETED" => flag('T', false),
            "DRAFT" => flag('D', true),
            "UNDRAFT" => flag('D', false),
            "FLAGGED" => flag('F', true),
            "UNFLAGGED" => flag('F', false),
            "SEEN" => flag('S', true),
            "UNSEEN" => flag('S', false),
            "NEW" => Ok(SearchKey::New),
            "OLD" => Ok(SearchKey::Old),
            "RECENT" => Ok(SearchKey::Recent),
            "KEYWORD" | "UNKEYWORD" => {
                self.sp()?;
                Ok(SearchKey::Keyword(self.atom()?, word == "KEYWORD"))
            }
            "FROM" | "TO" | "CC" | "BCC" | "SUBJECT" => {
                self.sp()?;
                Ok(SearchKey::Header(
                    word.to_ascii_lowercase(),
                    self.search_text()?,
                ))
            }
            "HEADER" => {
                self.sp()?;
                let name = self.search_text()?;
                self.sp()?;
                Ok(SearchKey::Header(
                    name.to_ascii_lowercase(),
                    self.search_text()?,
                ))
            }
            "BODY" => {
                self.sp()?;
                Ok(SearchKey::Body(self.search_text()?))
            }
            "TEXT" => {
                self.sp()?;
                Ok(SearchKey::Text(self.search_text()?))
            }
            "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" => {
                self.sp()?;
                let d = self.date()?;
                Ok(match word.as_str() {
                    "BEFORE" => SearchKey::Before(d),
                    "ON" => SearchKey::On(d),
                    "SINCE" => SearchKey::Since(d),
                    "SENTBEFORE" => SearchKey::SentBefore(d),
                    "SENTON" => SearchKey::SentOn(d),
                    _ => SearchKey::SentSince(d),
                })
            }
            "LARGER" | "SMALLER" => {
                self.sp()?;
                let n = self.number()?;
                Ok(if word == "LARGER" {
                    SearchKey::Larger(n)
                } else {
                    SearchKey::Smaller(n)
                })
            }
            "UID" => {
                self.sp()?;
                Ok(SearchKey::Uid(self.seq_set()?))
            }
            "NOT" => {
                self.sp()?;
                Ok(SearchKey::Not(Box::new(self.search_key(depth + 1)?)))
            }
            "OR" => {
                self.sp()?;
                let a = self.search_key(depth + 1)?;
                self.sp()?;
                let b = self.search_key(depth + 1)?;
                Ok(SearchKey::Or(Box::new(a), Box::new(b)))
            }
            _ => Err(format!("unknown search key {word}")),
        }
    }

    fn search_text(&mut self) -> R<String> {
        Ok(String::from_utf8_lossy(&self.astring()?).into_owned())
    }

    fn header_list(&mut self) -> R<Vec<String>> {
        self.expect(b'(')?;
        let mut v = Vec::new();
        loop {
            v.push(self.astring_text()?.to_ascii_lowercase());
            if self.eat(b')') {
                return Ok(v);
            }
            self.sp()?;
        }
    }

    fn section(&mut self) -> R<Section> {
        self.expect(b'[')?;
        let mut s = Section::default();
        if self.eat(b']') {
            return Ok(s);
        }
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            s.part.push(self.nz_u32()?);
            if s.part.len() > MAX_DEPTH {
                return Err("section nested too deeply".into());
            }
            if !self.eat(b'.') {
                self.expect(b']')?;
                return Ok(s);
            }
        }
        let word = self
            .take_while(|b| b.is_ascii_alphanumeric() || b == b'.')
            .to_ascii_uppercase();
        s.text = Some(match &word[..] {
            b"HEADER" => SectionText::Header,
            b"TEXT" => SectionText::Text,
            b"MIME" if !s.part.is_empty() => SectionText::Mime,
            b"HEADER.FIELDS" => {
                self.sp()?;
                SectionText::HeaderFields(self.header_list()?)
            }
            b"HEADER.FIELDS.NOT" => {
                self.sp()?;
                SectionText::HeaderFieldsNot(self.header_list()?)
            }
            _ => return Err("bad section".into()),
        });
        self.expect(b']')?;
        Ok(s)
    }

    fn fetch_att(&mut self) -> R<FetchAtt> {
        let word = self
            .take_while(|b| b.is_ascii_alphanumeric() || b == b'.')
            .to_ascii_uppercase();
        Ok(match &word[..] {
            b"ENVELOPE" => FetchAtt::Envelope,
            b"FLAGS" => FetchAtt::Flags,
            b"INTERNALDATE" => FetchAtt::InternalDate,
            b"RFC822" => FetchAtt::Rfc822,
            b"RFC822.HEADER" => FetchAtt::Rfc822Header,
            b"RFC822.SIZE" => FetchAtt::Rfc822Size,
            b"RFC822.TEXT" => FetchAtt::Rfc822Text,
            b"UID" => FetchAtt::Uid,
            b"BODYSTRUCTURE" => FetchAtt::BodyStructure,
            b"BODY" | b"BODY.PEEK" => {
                if self.peek() != Some(b'[') {
                    if &word[..] == b"BODY" {
                        return Ok(FetchAtt::Body);
                    }
                    return Err("BODY.PEEK needs a section".into());
                }
                let section = self.section()?;
                let partial = if self.eat(b'<') {
                    let o = u32::try_from(self.number()?).map_err(|_| "bad partial")?;
                    self.expect(b'.')?;
                    let n = u32::try_from(self.number()?).map_err(|_| "bad partial")?;
                    if n == 0 {
                        return Err("bad partial".into());
                    }
                    self.expect(b'>')?;
                    Some((o, n))
                } else {
                    None
                };
                FetchAtt::Section {
                    peek: &word[..] == b"BODY.PEEK",
                    section,
                    partial,
                }
            }
            _ => return Err("unknown fetch item".into()),
        })
    }

    fn fetch_items(&mut self) -> R<Vec<FetchAtt>> {
        use FetchAtt::*;
        if self.eat(b'(') {
            let mut v = Vec::new();
            loop {
                v.push(self.fetch_att()?);
                if v.len() > 64 {
                    return Err("too many fetch items".into());
                }
                if self.eat(b')') {
                    return Ok(v);
                }
                self.sp()?;
            }
        }
        let save = self.i;
        let word = self
            .take_while(|b| b.is_ascii_alphabetic())
            .to_ascii_uppercase();
        match &word[..] {
            b"ALL" => Ok(vec![Flags, InternalDate, Rfc822Size, Envelope]),
            b"FAST" => Ok(vec![Flags, InternalDate, Rfc822Size]),
            b"FULL" => Ok(vec![Flags, InternalDate, Rfc822Size, Envelope, Body]),
            _ => {
                self.i = save;
                Ok(vec![self.fetch_att()?])
            }
        }
    }
}

/// Parses one command as the [`Framer`] gives it.
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let mut p = P { s: line, i: 0 };
    let tag = p.take_while(is_tag_char);
    if tag.is_empty() {
        return Err(ParseError {
            tag: None,
            message: "missing tag".into(),
        });
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    let kind = command_kind(&mut p).and_then(|k| {
        if p.at_end() {
            Ok(k)
        } else {
            Err("unexpected text after the command".into())
        }
    });
    match kind {
        Ok(kind) => Ok(Command { tag, kind }),
        Err(message) => Err(ParseError {
            tag: Some(tag),
            message,
        }),
    }
}

fn command_kind(p: &mut P<'_>) -> R<CommandKind> {
    use CommandKind as K;
    p.sp()?;
    let name = p.atom()?.to_ascii_uppercase();
    let mut uid = false;
    let name = if name == "UID" {
        uid = true;
        p.sp()?;
        p.atom()?.to_ascii_uppercase()
    } else {
        name
    };
    if uid && !matches!(name.as_str(), "FETCH" | "STORE" | "COPY" | "SEARCH") {
        return Err(format!("UID {name} is not a command"));
    }
    Ok(match name.as_str() {
        "CAPABILITY" => K::Capability,
        "NOOP" => K::Noop,
        "LOGOUT" => K::Logout,
        "STARTTLS" => K::StartTls,
        "CHECK" => K::Check,
        "CLOSE" => K::Close,
        "EXPUNGE" => K::Expunge,
        "IDLE" => K::Idle,
        "AUTHENTICATE" => {
            p.sp()?;
            let mechanism = p.atom()?.to_ascii_uppercase();
            let initial = if p.eat(b' ') {
                Some(
                    String::from_utf8_lossy(
                        p.take_while(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
                    )
                    .into_owned(),
                )
            } else {
                None
            };
            K::Authenticate { mechanism, initial }
        }
        "LOGIN" => {
            p.sp()?;
            let user = p.astring_text()?;
            p.sp()?;
            K::Login {
                user,
                password: p.astring()?,
            }
        }
        "SELECT" | "EXAMINE" | "CREATE" | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" => {
            p.sp()?;
            let m = p.mailbox()?;
            match name.as_str() {
                "SELECT" => K::Select(m),
                "EXAMINE" => K::Examine(m),
                "CREATE" => K::Create(m),
                "DELETE" => K::Delete(m),
                "SUBSCRIBE" => K::Subscribe(m),
                _ => K::Unsubscribe(m),
            }
        }
        "RENAME" => {
            p.sp()?;
            let a = p.mailbox()?;
            p.sp()?;
            K::Rename(a, p.mailbox()?)
        }
        "LIST" | "LSUB" => {
            p.sp()?;
            let reference = p.mailbox()?;
            p.sp()?;
            let pattern = p.list_mailbox()?;
            if name == "LIST" {
                K::List(reference, pattern)
            } else {
                K::Lsub(reference, pattern)
            }
        }
        "STATUS" => {
            p.sp()?;
            let m = p.mailbox()?;
            p.sp()?;
            p.expect(b'(')?;
            let mut items = Vec::new();
            loop {
                items.push(p.atom()?.to_ascii_uppercase());
                if p.eat(b')') {
                    break;
                }
                p.sp()?;
            }
            K::Status(m, items)
        }
        "APPEND" => {
            p.sp()?;
            let mailbox = p.mailbox()?;
            p.sp()?;
            let mut flags = Vec::new();
            if p.peek() == Some(b'(') {
                flags = p.flag_list()?;
                p.sp()?;
            }
            let mut date = None;
            if p.peek() == Some(b'"') {
                let d = String::from_utf8_lossy(&p.quoted()?).into_owned();
                date = Some(parse_internal_date(&d).ok_or("bad date")?);
                p.sp()?;
            }
            K::Append {
                mailbox,
                flags,
                date,
                message: p.literal()?,
            }
        }
        "SEARCH" => {
            p.sp()?;
            let save = p.i;
            if p.atom().is_ok_and(|w| w.eq_ignore_ascii_case("CHARSET")) {
                p.sp()?;
                let cs = p.astring_text()?;
                if !(cs.eq_ignore_ascii_case("UTF-8") || cs.eq_ignore_ascii_case("US-ASCII")) {
                    return Err("[BADCHARSET (UTF-8 US-ASCII)] unsupported charset".into());
                }
                p.sp()?;
            } else {
                p.i = save;
            }
            let mut keys = vec![p.search_key(0)?];
            while p.eat(b' ') {
                keys.push(p.search_key(0)?);
                if keys.len() > 256 {
                    return Err("too many search keys".into());
                }
            }
            K::Search {
                uid,
                key: SearchKey::And(keys),
            }
        }
        "FETCH" => {
            p.sp()?;
            let set = p.seq_set()?;
            p.sp()?;
            K::Fetch {
                uid,
                set,
                items: p.fetch_items()?,
            }
        }
        "STORE" => {
            p.sp()?;
            let set = p.seq_set()?;
            p.sp()?;
            let mode = if p.eat(b'+') {
                StoreMode::Add
            } else if p.eat(b'-') {
                StoreMode::Remove
            } else {
                StoreMode::Replace
            };
            let what = p.atom()?.to_ascii_uppercase();
            let silent = match what.as_str() {
                "FLAGS" => false,
                "FLAGS.SILENT" => true,
                _ => return Err("STORE takes FLAGS or FLAGS.SILENT".into()),
            };
            p.sp()?;
            let flags = if p.peek() == Some(b'(') {
                p.flag_list()?
            } else {
                let mut v = vec![p.flag()?];
                while p.eat(b' ') {
                    v.push(p.flag()?);
                }
                v
            };
            K::Store {
                uid,
                set,
                mode,
                silent,
                flags,
            }
        }
        "COPY" => {
            p.sp()?;
            let set = p.seq_set()?;
            p.sp()?;
            K::Copy {
                uid,
                set,
                mailbox: p.mailbox()?,
            }
        }
        _ => return Err(format!("unknown command {name}")),
    })
}

/// `s` as a quoted string if it can be one (printable ASCII, no more than 1,000 bytes),
/// else as a literal.
pub fn quoted_or_literal(s: &[u8]) -> Vec<u8> {
    if s.len() <= 1000 && s.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        let mut out = Vec::with_capacity(s.len() + 2);
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        out
    } else {
        literal(s)
    }
}

/// `s` as a literal (`{n}` CRLF and the bytes).
pub fn literal(s: &[u8]) -> Vec<u8> {
    let mut out = format!("{{{}}}\r\n", s.len()).into_bytes();
    out.extend_from_slice(s);
    out
}

/// `NIL` for `None`, else [`quoted_or_literal`].
pub fn nstring(s: Option<&[u8]>) -> Vec<u8> {
    match s {
        None => b"NIL".to_vec(),
        Some(s) => quoted_or_literal(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for days in [-1, 0, 59, 365, 11016, 20429, 2932896] {
            assert_eq!(Date::from_days(days).days(), days);
        }
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(
            parse_internal_date("17-Jul-1996 02:44:25 -0700"),
            Some(837596665)
        );
        assert_eq!(
            parse_internal_date("17-Jul-1996 99999999999999999:44:25 -0700"),
            None
        );
    }
}
