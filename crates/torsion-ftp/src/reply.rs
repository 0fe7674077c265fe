//! FTP replies (RFC 959 section 4.2), written and read without I/O.
//!
//! ```
//! use torsion_ftp::reply::{Reply, ReplyParser};
//!
//! let r = Reply::multi(211, vec!["Features:".into(), " UTF8".into(), "End".into()]);
//! assert_eq!(r.to_bytes(), b"211-Features:\r\n UTF8\r\n211 End\r\n");
//! let mut p = ReplyParser::new();
//! p.feed(&r.to_bytes());
//! assert_eq!(p.next_reply().unwrap().unwrap(), r);
//! ```

/// One reply: a code and its lines of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text, one entry per line (at least one).
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply.
    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        Reply { code, lines }
    }

    /// The text of the last line (the whole text of a one-line reply).
    pub fn text(&self) -> &str {
        self.lines.last().map(String::as_str).unwrap_or("")
    }

    /// The reply on the wire. Line breaks inside a line's text are replaced by spaces, and
    /// a middle line that would look like the last (`NNN `) gets a leading space, so a
    /// file name can never end or forge a reply.
    pub fn to_bytes(&self) -> Vec<u8> {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                .collect()
        };
        let mut out = Vec::new();
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = clean(self.lines.get(i).map(String::as_str).unwrap_or(""));
            if n == 1 {
                out.extend_from_slice(format!("{} {text}\r\n", self.code).as_bytes());
            } else if i == 0 {
                out.extend_from_slice(format!("{}-{text}\r\n", self.code).as_bytes());
            } else if i == n - 1 {
                out.extend_from_slice(format!("{} {text}\r\n", self.code).as_bytes());
            } else {
                let looks_final = text.len() >= 4
                    && text.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                    && text.as_bytes()[3] == b' ';
                if looks_final {
                    out.push(b' ');
                }
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }
}

/// Why a server's replies could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadReply(pub String);

impl std::fmt::Display for BadReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed FTP reply: {}", self.0)
    }
}

impl std::error::Error for BadReply {}

/// The longest reply line read, and the most lines one reply may have: a server that sends
/// more is refused rather than held in memory.
pub const MAX_REPLY_LINE: usize = 8 << 10;
/// See [`MAX_REPLY_LINE`].
pub const MAX_REPLY_LINES: usize = 1000;

/// Reads replies out of the bytes a server sends (the client's side).
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    pending: Option<Reply>,
}

impl ReplyParser {
    /// An empty parser.
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Adds bytes received.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete reply, if one has arrived.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, BadReply> {
        loop {
            let Some(end) = memchr::memchr(b'\n', &self.buf) else {
                if self.buf.len() > MAX_REPLY_LINE {
                    return Err(BadReply("a line too long".into()));
                }
                return Ok(None);
            };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse::<u16>().ok());
            let sep = line.as_bytes().get(3).copied();
            match self.pending.as_mut() {
                None => {
                    let Some(code) = code else {
                        return Err(BadReply(line.chars().take(80).collect()));
                    };
                    let text = line.get(4..).unwrap_or("").to_owned();
                    match sep {
                        Some(b'-') => self.pending = Some(Reply::multi(code, vec![text])),
                        Some(b' ') | None => return Ok(Some(Reply::new(code, text))),
                        _ => return Err(BadReply(line.chars().take(80).collect())),
                    }
                }
                Some(p) => {
                    if code == Some(p.code) && sep != Some(b'-') {
                        let mut done = self.pending.take().unwrap_or_else(|| Reply::new(0, ""));
                        done.lines.push(line.get(4..).unwrap_or("").to_owned());
                        return Ok(Some(done));
                    }
                    if p.lines.len() >= MAX_REPLY_LINES {
                        return Err(BadReply("too many lines in one reply".into()));
                    }
                    p.lines.push(line.to_owned());
                }
            }
        }
    }
}
