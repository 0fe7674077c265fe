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
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{}{}\r\n", self.code, sep, line).as_bytes());
        }
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
