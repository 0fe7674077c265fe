//! SMTP commands as a client sends them (RFC 5321 section 4.1), parsed without I/O.
//!
//! [`parse_command`] reads one command line (without its CRLF) into a [`Command`]; it never
//! panics, whatever the bytes, and says what is wrong with a line it refuses
//! ([`CommandError`], answered 500 or 501 by the server).
//!
//! ```
//! use torsion_mail::command::{parse_command, Body, Command};
//!
//! let Command::Mail { from, params } =
//!     parse_command(b"MAIL FROM:<alice@example.org> SIZE=1024 BODY=8BITMIME").unwrap()
//! else {
//!     unreachable!()
//! };
//! assert_eq!(from.unwrap().to_string(), "alice@example.org");
//! assert_eq!(params.size, Some(1024));
//! assert_eq!(params.body, Some(Body::EightBitMime));
//!
//! let Command::Rcpt { to } = parse_command(b"rcpt to:<bob@Example.ORG>").unwrap() else {
//!     unreachable!()
//! };
//! assert_eq!(to.domain(), "Example.ORG");
//! assert!(parse_command(b"RCPT TO:bob").is_err());
//! ```
use std::fmt;

/// The longest local part RFC 5321 allows (section 4.5.3.1.1).
const MAX_LOCAL: usize = 64;
/// The longest domain RFC 5321 allows (section 4.5.3.1.2).
const MAX_DOMAIN: usize = 255;

/// A mailbox, `local@domain` (RFC 5321's `Mailbox`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    local: String,
    domain: String,
}

impl Address {
    /// Parses `local@domain` (no angle brackets); `None` if it is not a mailbox.
    pub fn parse(s: &str) -> Option<Address> {
        let at = s.rfind('@')?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if !valid_local(local) || !valid_domain(domain) {
            return None;
        }
        Some(Address {
            local: local.to_owned(),
            domain: domain.to_owned(),
        })
    }

    /// The local part, as sent (quotes included, if it was quoted).
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain, as sent.
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// `MAIL FROM`'s path: a mailbox, or `None` for the null path `<>` of bounces.
pub type ReversePath = Option<Address>;

/// `BODY=` of `MAIL FROM` (RFC 6152).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// The parameters of `MAIL FROM` this server knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=`: the size the client declares (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152).
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `AUTH=`: the submitter the client names (RFC 4954), kept as sent.
    pub auth: Option<String>,
}

/// One SMTP command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `HELO domain`.
    Helo(String),
    /// `EHLO domain`.
    Ehlo(String),
    /// `MAIL FROM:<path> [params]`.
    Mail {
        /// The reverse path.
        from: ReversePath,
        /// Its parameters.
        params: MailParams,
    },
    /// `RCPT TO:<path>`.
    Rcpt {
        /// The forward path (source routes dropped, as RFC 5321 says a server may).
        to: Address,
    },
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy,
    /// `EXPN string`.
    Expn,
    /// `HELP [string]`.
    Help,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The mechanism, upper-cased.
        mechanism: String,
        /// The initial response, base64 (or `=` for an empty one), if given.
        initial: Option<String>,
    },
}

/// Why a command line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// No such command (500 5.5.1).
    Unrecognized,
    /// A known command with bad arguments (501 5.5.4), and what is wrong.
    Syntax(&'static str),
    /// A `MAIL FROM` parameter this server does not know (555 5.5.4).
    UnknownParameter,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Unrecognized => f.write_str("command unrecognized"),
            CommandError::Syntax(why) => f.write_str(why),
            CommandError::UnknownParameter => f.write_str("MAIL FROM parameter not recognized"),
        }
    }
}

impl std::error::Error for CommandError {}

/// Parses one command line, without its line ending.
///
/// Verbs are case-insensitive; a line that is not UTF-8 is refused (commands and addresses
/// are ASCII, or UTF-8 under SMTPUTF8).
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let line = std::str::from_utf8(line).map_err(|_| CommandError::Syntax("not UTF-8"))?;
    if line.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(CommandError::Syntax("control characters in the command"));
    }
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    if verb.len() > 8 {
        return Err(CommandError::Unrecognized);
    }
    let verb = verb.to_ascii_uppercase();
    let no_args = |c: Command| {
        if rest.trim().is_empty() {
            Ok(c)
        } else {
            Err(CommandError::Syntax("no arguments allowed"))
        }
    };
    match verb.as_str() {
        "HELO" | "EHLO" => {
            let name = rest.trim();
            if name.is_empty() || name.contains(' ') {
                return Err(CommandError::Syntax(
                    "a domain name or address literal is needed",
                ));
            }
            let name = name.to_owned();
            Ok(if verb == "HELO" {
                Command::Helo(name)
            } else {
                Command::Ehlo(name)
            })
        }
        "MAIL" => {
            let rest = strip_keyword(rest, "FROM:")
                .ok_or(CommandError::Syntax("MAIL FROM:<address> expected"))?;
            let (path, params) = take_path(rest)?;
            let from = if path.is_empty() {
                None
            } else {
                Some(parse_path(path)?)
            };
            Ok(Command::Mail {
                from,
                params: parse_mail_params(params)?,
            })
        }
        "RCPT" => {
            let rest = strip_keyword(rest, "TO:")
                .ok_or(CommandError::Syntax("RCPT TO:<address> expected"))?;
            let (path, params) = take_path(rest)?;
            if !params.trim().is_empty() {
                return Err(CommandError::UnknownParameter);
            }
            if path.eq_ignore_ascii_case("postmaster") {
                return Err(CommandError::Syntax(
                    "postmaster without a domain is not accepted here",
                ));
            }
            Ok(Command::Rcpt {
                to: parse_path(path)?,
            })
        }
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "QUIT" => no_args(Command::Quit),
        "STARTTLS" => no_args(Command::StartTls),
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "AUTH" => {
            let mut words = rest.split(' ').filter(|w| !w.is_empty());
            let mechanism = words
                .next()
                .ok_or(CommandError::Syntax("AUTH mechanism expected"))?
                .to_ascii_uppercase();
            let initial = words.next().map(str::to_owned);
            if words.next().is_some() {
                return Err(CommandError::Syntax(
                    "AUTH takes a mechanism and one response",
                ));
            }
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(CommandError::Unrecognized),
    }
}

/// `rest` after `keyword` (case-insensitive), with spaces after it skipped (a common
/// leniency: `MAIL FROM: <a@b>`).
fn strip_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let head = rest.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| rest[keyword.len()..].trim_start_matches(' '))
}

/// Splits `<path> params` into the path (inside the brackets) and what follows.
fn take_path(rest: &str) -> Result<(&str, &str), CommandError> {
    let rest = rest.strip_prefix('<').ok_or(CommandError::Syntax(
        "the address must be in angle brackets",
    ))?;
    let end = rest.find('>').ok_or(CommandError::Syntax(
        "the address must be in angle brackets",
    ))?;
    let after = &rest[end + 1..];
    if !after.is_empty() && !after.starts_with(' ') {
        return Err(CommandError::Syntax("a space must follow the address"));
    }
    Ok((&rest[..end], after))
}

/// A path without its brackets: an optional source route (`@a,@b:`), dropped, then a mailbox.
fn parse_path(path: &str) -> Result<Address, CommandError> {
    let mailbox = if path.starts_with('@') {
        let colon = path
            .find(':')
            .ok_or(CommandError::Syntax("malformed source route"))?;
        &path[colon + 1..]
    } else {
        path
    };
    Address::parse(mailbox).ok_or(CommandError::Syntax("malformed address"))
}

fn parse_mail_params(params: &str) -> Result<MailParams, CommandError> {
    let mut out = MailParams::default();
    for p in params.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = match p.find('=') {
            Some(i) => (&p[..i], Some(&p[i + 1..])),
            None => (p, None),
        };
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v))
                if !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) =>
            {
                out.size = Some(
                    v.parse()
                        .map_err(|_| CommandError::Syntax("SIZE is too large"))?,
                );
            }
            ("SIZE", _) => return Err(CommandError::Syntax("SIZE=number expected")),
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => out.body = Some(Body::SevenBit),
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                out.body = Some(Body::EightBitMime)
            }
            ("BODY", _) => return Err(CommandError::Syntax("BODY=7BIT or BODY=8BITMIME expected")),
            ("SMTPUTF8", None) => out.smtputf8 = true,
            ("AUTH", Some(v)) if !v.is_empty() => out.auth = Some(v.to_owned()),
            _ => return Err(CommandError::UnknownParameter),
        }
    }
    Ok(out)
}

fn valid_local(local: &str) -> bool {
    if local.is_empty() || local.len() > MAX_LOCAL {
        return false;
    }
    if let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        // A quoted string: printable characters, with `\` escaping the next one.
        let mut escaped = false;
        for c in inner.chars() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' || c.is_control() {
                return false;
            }
        }
        return !escaped;
    }
    // A dot-string: atoms of atext (RFC 5322; UTF-8 allowed, RFC 6531) between dots.
    local.split('.').all(|atom| {
        !atom.is_empty()
            && atom.chars().all(|c| {
                !c.is_ascii() || c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
            })
    })
}

fn valid_domain(domain: &str) -> bool {
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return false;
    }
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return !literal.is_empty()
            && literal
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":.-".contains(&b));
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || c == '-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parameters_and_errors() {
        assert_eq!(
            parse_command(b"MAIL FROM:<>").unwrap(),
            Command::Mail {
                from: None,
                params: MailParams::default()
            }
        );
        assert_eq!(
            parse_command(b"RCPT TO:<@relay.example,@b.example:joe@x.example>").unwrap(),
            Command::Rcpt {
                to: Address::parse("joe@x.example").unwrap()
            }
        );
        assert_eq!(
            parse_command(b"MAIL FROM:<a@b.c> SMTPUTF8 AUTH=<>").unwrap(),
            Command::Mail {
                from: Address::parse("a@b.c"),
                params: MailParams {
                    smtputf8: true,
                    auth: Some("<>".into()),
                    ..MailParams::default()
                }
            }
        );
        assert_eq!(
            parse_command(b"MAIL FROM:<a@b.c> X-FOO=1"),
            Err(CommandError::UnknownParameter)
        );
        assert!(matches!(
            parse_command(b"MAIL FROM:<a@b.c> SIZE=99999999999999999999999"),
            Err(CommandError::Syntax(_))
        ));
        assert!(parse_command(b"MAIL FROM:<a b@c>").is_err());
        assert!(parse_command(b"MAIL FROM:<a@-c>").is_err());
        assert!(parse_command(b"MAIL FROM:<a@c>x").is_err());
        assert_eq!(parse_command(b"FROB"), Err(CommandError::Unrecognized));
        assert!(parse_command(b"DATA now").is_err());
        assert_eq!(
            parse_command(b"auth plain AGEAYg==").unwrap(),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGEAYg==".into())
            }
        );
        assert_eq!(
            parse_command("RCPT TO:<\"j d\"@ü.example>".as_bytes()).unwrap(),
            Command::Rcpt {
                to: Address::parse("\"j d\"@ü.example").unwrap()
            }
        );
    }
}
