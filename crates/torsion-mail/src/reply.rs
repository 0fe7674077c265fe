//! SMTP replies: a code and its text, with an enhanced status code (RFC 3463) where there
//! is one.
//!
//! ```
//! use torsion_mail::reply::Reply;
//!
//! let r = Reply::new(550, "5.1.1 No such user here");
//! assert_eq!(r.to_bytes(), b"550 5.1.1 No such user here\r\n");
//! assert!(r.is_permanent());
//! let ehlo = Reply::multiline(250, ["mail.example.org", "PIPELINING", "8BITMIME"]);
//! assert_eq!(ehlo.to_bytes(), b"250-mail.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
//! ```
use std::fmt;

/// One reply, of one or more lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// A one-line reply. `code` is 200 to 599; control characters in `text` are replaced
    /// with spaces, so a text built from a peer's words cannot start another reply.
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply::multiline(code, [text.into()])
    }

    /// A reply of several lines (the first line is the one a client shows).
    pub fn multiline<S: Into<String>>(code: u16, lines: impl IntoIterator<Item = S>) -> Reply {
        let code = code.clamp(200, 599);
        let mut lines: Vec<String> = lines
            .into_iter()
            .map(|l| l.into().replace(|c: char| c.is_control(), " "))
            .collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        Reply { code, lines }
    }

    /// The three-digit code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The text lines.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// 5xx: the client must not try again as it was.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Appends the reply as it goes on the wire.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len() - 1;
        for (i, line) in self.lines.iter().enumerate() {
            Reply::write_line(out, self.code, i == last, line);
        }
    }

    /// Appends one line of a reply as [`write_to`](Self::write_to) does (`last`: the
    /// final line), without making a `Reply` first: what the server core answers with,
    /// once per command.
    pub(crate) fn write_line(out: &mut Vec<u8>, code: u16, last: bool, text: &str) {
        let code = code.clamp(200, 599);
        out.reserve(text.len() + 6);
        let digits = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            if last { b' ' } else { b'-' },
        ];
        out.extend_from_slice(&digits);
        // Control characters become spaces, as in `Reply::new`; text without any (every
        // reply of the server's own) is copied as it is.
        if may_hold_controls(text, b"") {
            out.extend_from_slice(text.replace(|c: char| c.is_control(), " ").as_bytes());
        } else {
            out.extend_from_slice(text.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The reply as it goes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// Whether `s` may hold a control character or one of `also` (ASCII bytes), by its bytes: the
/// C0 controls and DEL are single bytes, the C1 ones (U+0080 to U+009F) start with 0xC2 in
/// UTF-8. False means `s` can be copied as it is; true, that it must be filtered char by char.
pub(crate) fn may_hold_controls(s: &str, also: &[u8]) -> bool {
    s.bytes()
        .any(|b| b < 0x20 || b == 0x7f || b == 0xc2 || also.contains(&b))
}
