//! IRC messages: parsing a line into its parts, and building a line safely.
//!
//! A line is `[@tags] [:prefix] COMMAND [params...] [:trailing]` (RFC 1459 §2.3.1, RFC 2812
//! §2.3.1, IRCv3 message tags). Parsing borrows from the line and allocates nothing; building
//! refuses anything that would change the line's meaning on the wire (a CR, LF or NUL, or a
//! middle parameter that is empty, holds a space or starts with `:`), which is how a careless
//! bot becomes an injection vector.
//!
//! ```
//! use torsion_words::irc::Message;
//!
//! let m = Message::parse(":alice!a@example.org PRIVMSG #torsion :hello there").unwrap();
//! assert_eq!(m.prefix, Some("alice!a@example.org"));
//! assert_eq!(m.nick(), Some("alice"));
//! assert_eq!(m.command, "PRIVMSG");
//! assert_eq!(m.params(), ["#torsion", "hello there"]);
//! ```

use std::fmt;

/// At most this many parameters in a message (RFC 2812: fourteen, then the trailing one).
pub const MAX_PARAMS: usize = 15;

/// The longest line IRC allows, CR LF included (RFC 1459 §2.3); tags (IRCv3) come on top.
pub const MAX_LINE: usize = 512;

/// The most room IRCv3 message tags may take in front of a line.
pub const MAX_TAGS: usize = 8191;

/// One IRC message, borrowed from its line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// IRCv3 message tags, unparsed (without the leading `@`), if any.
    pub tags: Option<&'a str>,
    /// Where the message comes from (`nick!user@host` or a server name), if given.
    pub prefix: Option<&'a str>,
    /// The command: a word (`PRIVMSG`) or a three-digit numeric reply (`001`).
    pub command: &'a str,
    params: [&'a str; MAX_PARAMS],
    len: usize,
}

/// Why a line is not an IRC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError(&'static str);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed IRC message: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

impl<'a> Message<'a> {
    /// Parses one line (without its line ending; a trailing CR is ignored).
    ///
    /// Runs of spaces between parts are accepted, as servers in the field send them. Past
    /// fourteen middle parameters, the rest of the line is the fifteenth.
    pub fn parse(line: &'a str) -> Result<Message<'a>, ParseError> {
        let mut rest = line.strip_suffix('\r').unwrap_or(line);
        let mut tags = None;
        if let Some(after) = rest.strip_prefix('@') {
            let (t, r) = after
                .split_once(' ')
                .ok_or(ParseError("tags but no command"))?;
            tags = Some(t);
            rest = r.trim_start_matches(' ');
        }
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (p, r) = after
                .split_once(' ')
                .ok_or(ParseError("prefix but no command"))?;
            if p.is_empty() {
                return Err(ParseError("empty prefix"));
            }
            prefix = Some(p);
            rest = r.trim_start_matches(' ');
        }
        let (command, mut rest) = match rest.split_once(' ') {
            Some((c, r)) => (c, r),
            None => (rest, ""),
        };
        if command.is_empty() {
            return Err(ParseError("no command"));
        }
        let numeric = command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit());
        if !numeric && !command.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ParseError("a command is letters or three digits"));
        }
        let mut params = [""; MAX_PARAMS];
        let mut len = 0;
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params[len] = trailing;
                len += 1;
                break;
            }
            if len == MAX_PARAMS - 1 {
                params[len] = rest;
                len += 1;
                break;
            }
            let (p, r) = match rest.split_once(' ') {
                Some((p, r)) => (p, r),
                None => (rest, ""),
            };
            params[len] = p;
            len += 1;
            rest = r;
        }
        Ok(Message {
            tags,
            prefix,
            command,
            params,
            len,
        })
    }

    /// The parameters, the trailing one included.
    pub fn params(&self) -> &[&'a str] {
        &self.params[..self.len]
    }

    /// Parameter `i`, if there is one.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params().get(i).copied()
    }

    /// The last parameter (usually the text), if there is one.
    pub fn last(&self) -> Option<&'a str> {
        self.params().last().copied()
    }

    /// The nickname in the prefix (`alice` of `alice!a@example.org`), if there is a prefix.
    pub fn nick(&self) -> Option<&'a str> {
        self.prefix.map(nick_of)
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("tags", &self.tags)
            .field("prefix", &self.prefix)
            .field("command", &self.command)
            .field("params", &self.params())
            .finish()
    }
}

/// The nickname part of a prefix: `alice` of `alice!a@example.org` (a server name, which has
/// no `!`, comes back whole).
pub fn nick_of(prefix: &str) -> &str {
    prefix.split_once('!').map_or(prefix, |(nick, _)| nick)
}

/// IRC's case folding (RFC 1459 §2.2): ASCII letters, and `[]\~` as the lower case of `{}|^`.
fn fold(b: u8) -> u8 {
    match b {
        b'[' => b'{',
        b']' => b'}',
        b'\\' => b'|',
        b'~' => b'^',
        _ => b.to_ascii_lowercase(),
    }
}

/// Whether two nicknames or channel names are the same to an IRC server (RFC 1459 case
/// folding: `Alice` is `alice`, `[bot]` is `{bot}`).
pub fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// Why a line could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParam {
    /// The parameter that was refused.
    pub param: String,
    /// Why.
    pub why: &'static str,
}

impl fmt::Display for InvalidParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid IRC parameter {:?}: {}", self.param, self.why)
    }
}

impl std::error::Error for InvalidParam {}

/// Checks a middle parameter (a target, a channel, a nickname).
pub(crate) fn check_middle(p: &str) -> Result<(), InvalidParam> {
    let why = if p.is_empty() {
        "empty"
    } else if p.starts_with(':') {
        "starts with ':'"
    } else if p.bytes().any(|b| matches!(b, b' ' | b'\r' | b'\n' | 0)) {
        "holds a space, CR, LF or NUL"
    } else {
        return Ok(());
    };
    Err(InvalidParam {
        param: p.to_owned(),
        why,
    })
}

/// Checks a trailing parameter (free text, without line breaks).
pub(crate) fn check_trailing(p: &str) -> Result<(), InvalidParam> {
    if p.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(InvalidParam {
            param: p.to_owned(),
            why: "holds a CR, LF or NUL",
        });
    }
    Ok(())
}

/// Builds `COMMAND middle... [:trailing]` (without the line ending), or says which
/// parameter would break the line (or that the line would be longer than IRC allows).
///
/// ```
/// use torsion_words::irc::build_line;
///
/// assert_eq!(
///     build_line("PRIVMSG", &["#torsion"], Some("hi: there")).unwrap(),
///     "PRIVMSG #torsion :hi: there"
/// );
/// assert!(build_line("PRIVMSG", &["#a b"], Some("x")).is_err());
/// assert!(build_line("PRIVMSG", &["#a"], Some("x\r\nQUIT")).is_err());
/// ```
pub fn build_line(
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) -> Result<String, InvalidParam> {
    check_middle(command)?;
    let mut line = String::with_capacity(64);
    line.push_str(command);
    for p in middle {
        check_middle(p)?;
        line.push(' ');
        line.push_str(p);
    }
    if let Some(t) = trailing {
        check_trailing(t)?;
        line.push_str(" :");
        line.push_str(t);
    }
    check_length(&line)?;
    Ok(line)
}

/// Checks that `line` fits IRC's 512 bytes with its CR LF.
pub(crate) fn check_length(line: &str) -> Result<(), InvalidParam> {
    if line.len() + 2 > MAX_LINE {
        let mut cut = 40.min(line.len());
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        return Err(InvalidParam {
            param: format!("{}...", &line[..cut]),
            why: "the line would be over 510 bytes",
        });
    }
    Ok(())
}

/// Cuts `text` into pieces of at most `max` bytes each, at line breaks (`\n`, with any `\r`
/// and NUL dropped) and, where a line is too long, at the last space in its second half or
/// else at a character boundary (Twisted's `irc.split`). Empty lines are dropped.
pub(crate) fn split_text(text: &str, max: usize) -> Vec<String> {
    let max = max.max(16);
    let mut out = Vec::new();
    for raw in text.split('\n') {
        let line: String = raw.chars().filter(|&c| c != '\r' && c != '\0').collect();
        let mut rest = line.as_str();
        while rest.len() > max {
            let mut cut = max;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let piece = match rest[..cut].rfind(' ') {
                Some(space) if space >= cut / 2 => space,
                _ => cut,
            };
            out.push(rest[..piece].to_owned());
            rest = rest[piece..].strip_prefix(' ').unwrap_or(&rest[piece..]);
        }
        if !rest.is_empty() {
            out.push(rest.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefix_command_middle_and_trailing() {
        let m = Message::parse(":irc.test 001 bot :Welcome to the network bot").unwrap();
        assert_eq!(m.prefix, Some("irc.test"));
        assert_eq!(m.nick(), Some("irc.test"));
        assert_eq!(m.command, "001");
        assert_eq!(m.params(), ["bot", "Welcome to the network bot"]);
    }

    #[test]
    fn parses_tags_runs_of_spaces_and_a_trailing_cr() {
        let m = Message::parse("@time=2026-12-05T00:00:00Z  :a!b@c   JOIN   #x\r").unwrap();
        assert_eq!(m.tags, Some("time=2026-12-05T00:00:00Z"));
        assert_eq!(m.prefix, Some("a!b@c"));
        assert_eq!(m.params(), ["#x"]);
    }

    #[test]
    fn an_empty_trailing_parameter_is_a_parameter() {
        let m = Message::parse("TOPIC #x :").unwrap();
        assert_eq!(m.params(), ["#x", ""]);
    }

    #[test]
    fn past_fourteen_middles_the_rest_is_the_last_parameter() {
        let line = format!(
            "CMD {}",
            (1..=17)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let m = Message::parse(&line).unwrap();
        assert_eq!(m.params().len(), MAX_PARAMS);
        assert_eq!(m.last(), Some("15 16 17"));
    }

    #[test]
    fn refuses_lines_without_a_command() {
        for bad in [
            "",
            ":prefix",
            ":prefix ",
            "@tags",
            ": PRIVMSG x",
            "PRIV-MSG x",
            "12 x",
        ] {
            assert!(Message::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_compare_with_irc_case_folding() {
        assert!(same_name("Alice", "alice"));
        assert!(same_name("[bot]^", "{BOT}~"));
        assert!(!same_name("alice", "alicia"));
    }

    #[test]
    fn split_text_breaks_at_newlines_spaces_and_char_boundaries() {
        assert_eq!(split_text("a\r\nb\n\nc\0", 100), ["a", "b", "c"]);
        let long = "word ".repeat(10);
        for piece in split_text(&long, 16) {
            assert!(piece.len() <= 16, "{piece:?}");
        }
        let wide = "é".repeat(40); // two bytes each, no spaces
        let pieces = split_text(&wide, 17);
        assert!(pieces.iter().all(|p| p.len() <= 17));
        assert_eq!(pieces.concat(), wide);
    }
}
