//! NNTP on the wire, without I/O (RFC 3977): commands parsed from a line, article ranges,
//! wildmats, dot-stuffing of multi-line blocks, and the dates NNTP speaks.
//!
//! ```
//! use torsion_news::wire::{dot_stuff, parse_command, Command, Range, Spec};
//!
//! assert_eq!(parse_command(b"group comp.lang.rust"), Ok(Command::Group("comp.lang.rust".into())));
//! assert_eq!(parse_command(b"ARTICLE <a@b>"), Ok(Command::Article(Spec::Id("<a@b>".into()))));
//! assert_eq!(parse_command(b"OVER 3-"), Ok(Command::Over(Some(Spec::Range(Range { low: 3, high: None })))));
//! assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
//! ```

/// Which article a command means: the current one, a number in the current group, a range
/// of numbers (OVER, HDR, LISTGROUP), or a message-id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// No argument: the current article.
    Current,
    /// An article number.
    Number(u64),
    /// A range of numbers.
    Range(Range),
    /// A message-id, angle brackets included.
    Id(String),
}

/// A range of article numbers, `low-high` (`high` `None`: open, `low-`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// The first number.
    pub low: u64,
    /// The last number, if any.
    pub high: Option<u64>,
}

impl Range {
    /// Whether `n` is in the range.
    pub fn contains(&self, n: u64) -> bool {
        n >= self.low && self.high.is_none_or(|h| n <= h)
    }
}

/// The LIST keywords served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// `LIST` or `LIST ACTIVE [wildmat]`: `name high low status`.
    Active(Option<String>),
    /// `LIST NEWSGROUPS [wildmat]`: `name<TAB>description`.
    Newsgroups(Option<String>),
    /// `LIST OVERVIEW.FMT`: the fields of an OVER line.
    OverviewFmt,
    /// `LIST HEADERS`: the headers HDR can give (all of them).
    Headers,
}

/// An NNTP command, as [`parse_command`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `CAPABILITIES`
    Capabilities,
    /// `MODE READER`
    ModeReader,
    /// `LIST ...`
    List(ListKind),
    /// `GROUP name`
    Group(String),
    /// `LISTGROUP [name [range]]`
    ListGroup(Option<String>, Option<Range>),
    /// `ARTICLE [n|<id>]`
    Article(Spec),
    /// `HEAD [n|<id>]`
    Head(Spec),
    /// `BODY [n|<id>]`
    Body(Spec),
    /// `STAT [n|<id>]`
    Stat(Spec),
    /// `NEXT`
    Next,
    /// `LAST`
    Last,
    /// `POST`
    Post,
    /// `OVER [range|<id>]`; `xover` says it was spelt `XOVER`.
    Over(Option<Spec>),
    /// `HDR field [range|<id>]`, or `XHDR` (`x`: answered 221 instead of 225).
    Hdr {
        /// The header (or `:bytes`, `:lines`).
        field: String,
        /// Which articles (`None`: the current one).
        spec: Option<Spec>,
        /// Spelt `XHDR`.
        x: bool,
    },
    /// `NEWGROUPS date time [GMT]`: groups made since, in Unix seconds.
    NewGroups(i64),
    /// `NEWNEWS wildmat date time [GMT]`.
    NewNews(String, i64),
    /// `DATE`
    Date,
    /// `HELP`
    Help,
    /// `QUIT`
    Quit,
    /// `AUTHINFO USER name`
    AuthUser(String),
    /// `AUTHINFO PASS password`
    AuthPass(String),
}

/// Why a line is not a command: answered 500 or 501.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// No such command (500).
    Unknown,
    /// A known command with wrong arguments (501).
    Syntax,
}

impl CommandError {
    /// The status line for the error, CRLF included.
    pub fn response(self) -> &'static [u8] {
        match self {
            CommandError::Unknown => b"500 Unknown command\r\n",
            CommandError::Syntax => b"501 Syntax error\r\n",
        }
    }
}

fn is_message_id(s: &str) -> bool {
    s.len() >= 3
        && s.len() <= 250
        && s.starts_with('<')
        && s.ends_with('>')
        && s[1..s.len() - 1]
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'<' && b != b'>')
        && s.contains('@')
}

fn number(s: &str) -> Result<u64, CommandError> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax);
    }
    s.parse().map_err(|_| CommandError::Syntax)
}

/// Parses `n`, `n-` or `n-m`.
pub fn parse_range(s: &str) -> Result<Range, CommandError> {
    match s.split_once('-') {
        None => {
            let n = number(s)?;
            Ok(Range {
                low: n,
                high: Some(n),
            })
        }
        Some((low, "")) => Ok(Range {
            low: number(low)?,
            high: None,
        }),
        Some((low, high)) => Ok(Range {
            low: number(low)?,
            high: Some(number(high)?),
        }),
    }
}

fn article_spec(args: &[&str]) -> Result<Spec, CommandError> {
    match args {
        [] => Ok(Spec::Current),
        [a] if is_message_id(a) => Ok(Spec::Id((*a).to_owned())),
        [a] => Ok(Spec::Number(number(a)?)),
        _ => Err(CommandError::Syntax),
    }
}

fn range_spec(arg: Option<&&str>) -> Result<Option<Spec>, CommandError> {
    match arg {
        None => Ok(None),
        Some(a) if is_message_id(a) => Ok(Some(Spec::Id((*a).to_owned()))),
        Some(a) => Ok(Some(Spec::Range(parse_range(a)?))),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (the inverse of `days_from_civil`): (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Parses NEWGROUPS' and NEWNEWS' `[yy]yymmdd hhmmss` (UTC; RFC 3977 7.3.2: a two-digit
/// year is in the current century or the one before, whichever is nearest `now`).
pub fn parse_datetime(date: &str, time: &str, now: i64) -> Result<i64, CommandError> {
    if !(date.len() == 6 || date.len() == 8)
        || time.len() != 6
        || !date.bytes().chain(time.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(CommandError::Syntax);
    }
    let n = |s: &str| s.parse::<i64>().map_err(|_| CommandError::Syntax);
    let (year, rest) = if date.len() == 8 {
        (n(&date[..4])?, &date[4..])
    } else {
        let yy = n(&date[..2])?;
        let this = civil_from_days(now.div_euclid(86_400)).0;
        let century = this - this % 100;
        let year = if century + yy > this {
            century - 100 + yy
        } else {
            century + yy
        };
        (year, &date[2..])
    };
    let (month, day) = (n(&rest[..2])?, n(&rest[2..])?);
    let (h, m, s) = (n(&time[..2])?, n(&time[2..4])?, n(&time[4..])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return Err(CommandError::Syntax);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// `yyyymmddhhmmss` (DATE's answer), UTC.
pub fn format_date_compact(secs: i64) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}{mo:02}{d:02}{:02}{:02}{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// An RFC 5322 date (`Mon, 07 Dec 2026 03:14:06 +0000`), for a `Date:` header, UTC.
pub fn format_date_rfc5322(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let t = secs.rem_euclid(86_400);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(mo - 1) as usize],
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

fn datetime_args(args: &[&str], now: i64) -> Result<i64, CommandError> {
    match args {
        [date, time] => parse_datetime(date, time, now),
        [date, time, gmt] if gmt.eq_ignore_ascii_case("GMT") => parse_datetime(date, time, now),
        _ => Err(CommandError::Syntax),
    }
}

/// Parses one command line (without its line ending). Keywords are case-insensitive
/// (RFC 3977 3.1); `now` (Unix seconds) places two-digit years.
pub fn parse_command_at(line: &[u8], now: i64) -> Result<Command, CommandError> {
    let line = std::str::from_utf8(line).map_err(|_| CommandError::Syntax)?;
    let line = line.trim_end_matches(['\r', '\n']);
    let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
    let Some(verb) = words.next() else {
        return Err(CommandError::Unknown);
    };
    let args: Vec<&str> = words.collect();
    let verb = verb.to_ascii_uppercase();
    let none = |c: Command| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(CommandError::Syntax)
        }
    };
    match verb.as_str() {
        "CAPABILITIES" => Ok(Command::Capabilities),
        "MODE" => match args.as_slice() {
            [m] if m.eq_ignore_ascii_case("READER") => Ok(Command::ModeReader),
            _ => Err(CommandError::Syntax),
        },
        "LIST" => {
            let kw = args.first().map(|k| k.to_ascii_uppercase());
            let pattern = args.get(1).map(|p| (*p).to_owned());
            if args.len() > 2 {
                return Err(CommandError::Syntax);
            }
            match kw.as_deref() {
                None => Ok(Command::List(ListKind::Active(None))),
                Some("ACTIVE") => Ok(Command::List(ListKind::Active(pattern))),
                Some("NEWSGROUPS") => Ok(Command::List(ListKind::Newsgroups(pattern))),
                Some("OVERVIEW.FMT") if pattern.is_none() => {
                    Ok(Command::List(ListKind::OverviewFmt))
                }
                Some("HEADERS")
                    if args.len() == 1
                        || pattern.as_deref() == Some("MSGID")
                        || pattern.as_deref() == Some("RANGE") =>
                {
                    Ok(Command::List(ListKind::Headers))
                }
                _ => Err(CommandError::Syntax),
            }
        }
        "GROUP" => match args.as_slice() {
            [g] => Ok(Command::Group((*g).to_owned())),
            _ => Err(CommandError::Syntax),
        },
        "LISTGROUP" => match args.as_slice() {
            [] => Ok(Command::ListGroup(None, None)),
            [g] => Ok(Command::ListGroup(Some((*g).to_owned()), None)),
            [g, r] => Ok(Command::ListGroup(
                Some((*g).to_owned()),
                Some(parse_range(r)?),
            )),
            _ => Err(CommandError::Syntax),
        },
        "ARTICLE" => Ok(Command::Article(article_spec(&args)?)),
        "HEAD" => Ok(Command::Head(article_spec(&args)?)),
        "BODY" => Ok(Command::Body(article_spec(&args)?)),
        "STAT" => Ok(Command::Stat(article_spec(&args)?)),
        "NEXT" => none(Command::Next),
        "LAST" => none(Command::Last),
        "POST" => none(Command::Post),
        "OVER" | "XOVER" => {
            if args.len() > 1 {
                return Err(CommandError::Syntax);
            }
            Ok(Command::Over(range_spec(args.first())?))
        }
        "HDR" | "XHDR" => {
            if args.is_empty() || args.len() > 2 {
                return Err(CommandError::Syntax);
            }
            Ok(Command::Hdr {
                field: args[0].to_owned(),
                spec: range_spec(args.get(1))?,
                x: verb == "XHDR",
            })
        }
        "NEWGROUPS" => Ok(Command::NewGroups(datetime_args(&args, now)?)),
        "NEWNEWS" => match args.split_first() {
            Some((wildmat, rest)) => Ok(Command::NewNews(
                (*wildmat).to_owned(),
                datetime_args(rest, now)?,
            )),
            None => Err(CommandError::Syntax),
        },
        "DATE" => none(Command::Date),
        "HELP" => none(Command::Help),
        "QUIT" => none(Command::Quit),
        "AUTHINFO" => {
            // The password may hold spaces: take the rest of the line after the keyword.
            let rest = line.trim_start_matches([' ', '\t'])[8..].trim_start_matches([' ', '\t']);
            let (kw, value) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
            let value = value.trim_start_matches([' ', '\t']);
            if value.is_empty() {
                return Err(CommandError::Syntax);
            }
            match kw.to_ascii_uppercase().as_str() {
                "USER" => Ok(Command::AuthUser(value.to_owned())),
                "PASS" => Ok(Command::AuthPass(value.to_owned())),
                _ => Err(CommandError::Syntax),
            }
        }
        _ => Err(CommandError::Unknown),
    }
}

/// [`parse_command_at`] with two-digit years placed around the year 2000 + now.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    parse_command_at(line, now)
}

/// Whether `name` matches `wildmat` (RFC 3977 4: `*`, `?`, comma-separated patterns, the
/// last that matches deciding, `!` negating). Bounded: patterns are matched without
/// backtracking blow-up (the classic two-pointer algorithm).
pub fn wildmat(pattern: &str, name: &str) -> bool {
    let mut result = false;
    for part in pattern.split(',') {
        let (neg, pat) = match part.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, part),
        };
        if glob(pat.as_bytes(), name.as_bytes()) {
            result = !neg;
        }
    }
    result
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A multi-line block's body, dot-stuffed and ended with `.` (RFC 3977 3.1.1): every line
/// starting with `.` gets another, and a last line without CRLF gets one.
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    let mut at_start = true;
    for &b in data {
        if at_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_start = b == b'\n';
    }
    if !data.is_empty() && !data.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The header section of an article (up to, not including, the empty line) and its body.
pub fn split_article(article: &[u8]) -> (&[u8], &[u8]) {
    if article.starts_with(b"\r\n") {
        return (&[], &article[2..]);
    }
    match memchr::memmem::find(article, b"\r\n\r\n") {
        Some(i) => (&article[..i + 2], &article[i + 4..]),
        None => (article, &[]),
    }
}

/// The headers of a header section, unfolded: (name, value) in order, names as written.
pub fn headers(section: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for raw in section.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(text.trim());
            }
            continue;
        }
        if let Some((name, value)) = text.split_once(':') {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// The first header named `name` (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(format_date_compact(0), "19700101000000");
        let t = parse_datetime("20261207", "031406", 0).unwrap();
        assert_eq!(format_date_compact(t), "20261207031406");
        assert_eq!(format_date_rfc5322(t), "Mon, 07 Dec 2026 03:14:06 +0000");
        assert_eq!(parse_datetime("261207", "031406", t), Ok(t));
        assert_eq!(
            format_date_compact(parse_datetime("991231", "235959", t).unwrap()),
            "19991231235959"
        );
        assert!(parse_datetime("20261307", "000000", t).is_err());
    }

    #[test]
    fn wildmats() {
        assert!(wildmat("comp.*", "comp.lang.rust"));
        assert!(!wildmat("comp.*,!comp.lang.*", "comp.lang.rust"));
        assert!(wildmat("*", "x"));
        assert!(wildmat("a?c", "abc"));
        assert!(!wildmat("a?c", "ac"));
    }
}
