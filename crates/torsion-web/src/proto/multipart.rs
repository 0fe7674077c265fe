//! `multipart/form-data` (RFC 7578) parsing, incremental and I/O-free.
//!
//! [`MultipartParser`] is fed the body in pieces of any size, split anywhere, and reports
//! [`MultipartEvent`]s: a part's head, its data in pieces, its end, the end of the body. It
//! holds at most a part head (bounded by [`MultipartLimits::max_part_header`]) or one
//! delimiter's length of data between calls, whatever the part sizes: storing the data is the
//! caller's business (the server's [`form`](crate::request::form) module keeps small fields in memory
//! and spools files to disk).
//!
//! Written here rather than hosted: `multer`, the well-kept parser, is a `Stream` of `Bytes`
//! for an async runtime (tokio, `futures`), while the server is fed bytes by the reactor's
//! `data_received` and its other parsers (chunked, WebSocket) follow this module's pattern.
//!
//! ```
//! use torsion_web::proto::multipart::{MultipartEvent, MultipartLimits, MultipartParser};
//!
//! let body = b"--XyZ\r\n\
//!     Content-Disposition: form-data; name=\"title\"\r\n\r\n\
//!     Hello\r\n\
//!     --XyZ\r\n\
//!     Content-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\n\
//!     Content-Type: text/plain\r\n\r\n\
//!     file body\r\n\
//!     --XyZ--\r\n";
//! let mut parser = MultipartParser::new(b"XyZ", MultipartLimits::default());
//! let mut seen = Vec::new();
//! // Fed one byte at a time: the split does not matter.
//! for b in body.chunks(1) {
//!     parser.feed(b, &mut |event| {
//!         match event {
//!             MultipartEvent::Part(head) => {
//!                 seen.push(format!("{}={:?}", head.name, head.filename))
//!             }
//!             MultipartEvent::Data(d) => {
//!                 seen.last_mut().unwrap().push_str(std::str::from_utf8(d).unwrap())
//!             }
//!             MultipartEvent::PartEnd | MultipartEvent::End => {}
//!         }
//!         Ok(())
//!     })?;
//! }
//! parser.finish()?;
//! assert_eq!(seen, ["title=NoneHello", "doc=Some(\"a.txt\")file body"]);
//! # Ok::<(), torsion_web::proto::multipart::FormError>(())
//! ```

use std::fmt;

use memchr::memmem;

/// Limits a multipart body is parsed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartLimits {
    /// Most parts in one body (default 1000). More is a 413.
    pub max_parts: usize,
    /// Largest head of one part, in bytes, up to and including its blank line (default
    /// 8192). Larger is a 413.
    pub max_part_header: usize,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        MultipartLimits {
            max_parts: 1000,
            max_part_header: 8192,
        }
    }
}

/// Why a form body was refused: the status to answer (413 for a limit, 400 for a malformed
/// body, 500 when it could not be stored) and a message for the error page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError {
    status: u16,
    message: String,
}

impl FormError {
    /// A limit was passed (413).
    pub fn too_large(message: impl Into<String>) -> FormError {
        FormError {
            status: 413,
            message: message.into(),
        }
    }

    /// The body is not valid `multipart/form-data` (400).
    pub fn malformed(message: impl Into<String>) -> FormError {
        FormError {
            status: 400,
            message: message.into(),
        }
    }

    /// The body could not be stored (500).
    pub fn storage(message: impl Into<String>) -> FormError {
        FormError {
            status: 500,
            message: message.into(),
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// What was wrong, for the error page.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FormError {}

/// The head of one part: its `Content-Disposition` parameters and `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHead {
    /// The form field's name (`name=`).
    pub name: String,
    /// The file name as the client sent it (`filename=`, or `filename*=` decoded), not
    /// sanitised; `None` for a plain field.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if it has one.
    pub content_type: Option<String>,
}

/// What the parser found in the bytes it was fed.
#[derive(Debug, PartialEq, Eq)]
pub enum MultipartEvent<'a> {
    /// A part starts.
    Part(PartHead),
    /// Some of the current part's data (never empty).
    Data(&'a [u8]),
    /// The current part ended.
    PartEnd,
    /// The closing delimiter: nothing after it is looked at.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Just after a delimiter: `--` (the end) or the line end follows.
    AfterDelimiter,
    /// Reading a part's head.
    Head,
    /// Reading a part's data.
    Data,
    /// After the closing delimiter.
    End,
}

/// An incremental `multipart/form-data` parser (see the [module docs](self)).
pub struct MultipartParser {
    /// `\r\n--boundary`.
    delimiter: Vec<u8>,
    limits: MultipartLimits,
    state: State,
    /// Bytes not decided yet.
    buf: Vec<u8>,
    parts: usize,
}

impl fmt::Debug for MultipartParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultipartParser")
            .field("state", &self.state)
            .field("parts", &self.parts)
            .finish()
    }
}

/// The `boundary` parameter of a `multipart/form-data` content type, or `None` when the type
/// is something else or has no usable boundary (RFC 2046: 1 to 70 characters).
///
/// ```
/// use torsion_web::proto::multipart::form_data_boundary;
/// assert_eq!(
///     form_data_boundary("multipart/form-data; boundary=\"a b\""),
///     Some("a b".to_owned())
/// );
/// assert_eq!(form_data_boundary("text/plain; boundary=x"), None);
/// ```
pub fn form_data_boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let b = parameters(params)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))?
        .1;
    (!b.is_empty() && b.len() <= 70).then_some(b)
}

/// `; key=value; key="quoted \" value"` pairs, keys as written.
fn parameters(input: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ';' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return out;
        }
        let key_end = rest.find(['=', ';']).unwrap_or(rest.len());
        let key = rest[..key_end].trim().to_owned();
        rest = &rest[key_end..];
        let Some(after) = rest.strip_prefix('=') else {
            out.push((key, String::new()));
            continue;
        };
        let after = after.trim_start();
        if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    // A quoted-pair for `"` and `\` (curl escapes those); any other
                    // backslash is itself (old browsers sent whole Windows paths).
                    '\\' => match quoted[i + 1..].chars().next() {
                        Some(n @ ('"' | '\\')) => {
                            value.push(n);
                            chars.next();
                        }
                        _ => value.push('\\'),
                    },
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            out.push((key, value));
            rest = &quoted[end..];
        } else {
            let end = after.find(';').unwrap_or(after.len());
            out.push((key, after[..end].trim().to_owned()));
            rest = &after[end..];
        }
    }
}

/// RFC 5987's `charset'lang'percent-encoded` (`filename*=`); UTF-8 and ISO-8859-1 only.
fn ext_value(value: &str) -> Option<String> {
    let mut it = value.splitn(3, '\'');
    let charset = it.next()?;
    let _lang = it.next()?;
    let bytes = super::percent_decode(it.next()?.as_bytes());
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

impl MultipartParser {
    /// A parser for a body whose parts are delimited by `boundary` (see
    /// [`form_data_boundary`]).
    pub fn new(boundary: &[u8], limits: MultipartLimits) -> MultipartParser {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary);
        MultipartParser {
            delimiter,
            limits,
            state: State::Preamble,
            // The first delimiter may open the body, with no line end before it.
            buf: b"\r\n".to_vec(),
            parts: 0,
        }
    }

    /// Parts started so far.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// True once the closing delimiter was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::End
    }

    /// Parses `data`, the next bytes of the body, calling `on` with what it finds. An error
    /// from `on` stops the parse and is returned; after any error the parser must not be fed
    /// again.
    pub fn feed(
        &mut self,
        data: &[u8],
        on: &mut dyn FnMut(MultipartEvent<'_>) -> Result<(), FormError>,
    ) -> Result<(), FormError> {
        if self.state == State::End {
            // The epilogue is ignored (RFC 2046).
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let result = self.run(&mut pos, on);
        self.buf.drain(..pos);
        result
    }

    fn run(
        &mut self,
        pos: &mut usize,
        on: &mut dyn FnMut(MultipartEvent<'_>) -> Result<(), FormError>,
    ) -> Result<(), FormError> {
        let dlen = self.delimiter.len();
        loop {
            let rest = &self.buf[*pos..];
            match self.state {
                State::Preamble => match memmem::find(rest, &self.delimiter) {
                    Some(i) => {
                        *pos += i + dlen;
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        // Keep only what could still start a delimiter.
                        *pos += rest.len().saturating_sub(dlen - 1);
                        return Ok(());
                    }
                },
                State::AfterDelimiter => {
                    if rest.starts_with(b"--") {
                        self.state = State::End;
                        *pos = self.buf.len();
                        return on(MultipartEvent::End);
                    }
                    // Transport padding (spaces and tabs) may sit before the line end.
                    let pad = rest
                        .iter()
                        .take_while(|&&b| b == b' ' || b == b'\t')
                        .count();
                    if pad > 256 {
                        return Err(FormError::malformed(
                            "multipart body: a delimiter line is too long",
                        ));
                    }
                    let after = &rest[pad..];
                    if after.len() < 2 {
                        return Ok(());
                    }
                    if &after[..2] != b"\r\n" {
                        return Err(FormError::malformed(
                            "multipart body: a delimiter is not followed by a line end",
                        ));
                    }
                    *pos += pad + 2;
                    self.parts += 1;
                    if self.parts > self.limits.max_parts {
                        return Err(FormError::too_large(format!(
                            "The form has more than {} parts.",
                            self.limits.max_parts
                        )));
                    }
                    self.state = State::Head;
                }
                State::Head => {
                    // An empty head is a blank line at once.
                    let end = if rest.starts_with(b"\r\n") {
                        Some((0, 2))
                    } else {
                        memmem::find(rest, b"\r\n\r\n").map(|i| (i, i + 4))
                    };
                    let Some((head_end, used)) = end else {
                        if rest.len() > self.limits.max_part_header {
                            return Err(self.head_too_large());
                        }
                        return Ok(());
                    };
                    if used > self.limits.max_part_header {
                        return Err(self.head_too_large());
                    }
                    let head = parse_part_head(&rest[..head_end])?;
                    *pos += used;
                    self.state = State::Data;
                    on(MultipartEvent::Part(head))?;
                }
                State::Data => match memmem::find(rest, &self.delimiter) {
                    Some(i) => {
                        if i > 0 {
                            on(MultipartEvent::Data(&rest[..i]))?;
                        }
                        *pos += i + dlen;
                        self.state = State::AfterDelimiter;
                        on(MultipartEvent::PartEnd)?;
                    }
                    None => {
                        // Everything but a possible delimiter's start is data.
                        let safe = rest.len().saturating_sub(dlen - 1);
                        if safe > 0 {
                            on(MultipartEvent::Data(&rest[..safe]))?;
                        }
                        *pos += safe;
                        return Ok(());
                    }
                },
                State::End => return Ok(()),
            }
        }
    }

    fn head_too_large(&self) -> FormError {
        FormError::too_large(format!(
            "A form part's headers are larger than {} bytes.",
            self.limits.max_part_header
        ))
    }

    /// The body ended: an error unless the closing delimiter was seen.
    pub fn finish(&self) -> Result<(), FormError> {
        match self.state {
            State::End => Ok(()),
            State::Preamble => Err(FormError::malformed(
                "multipart body: no delimiter matches the Content-Type's boundary",
            )),
            _ => Err(FormError::malformed(
                "multipart body: it ended before its closing delimiter",
            )),
        }
    }
}

/// Parses a part's header lines (without the blank line).
fn parse_part_head(raw: &[u8]) -> Result<PartHead, FormError> {
    let mut disposition = None;
    let mut content_type = None;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            return Err(FormError::malformed(
                "multipart body: a part header line has no colon",
            ));
        };
        // Header values are UTF-8 in practice (browsers send file names that way).
        let name = String::from_utf8_lossy(&line[..colon]);
        let value = String::from_utf8_lossy(&line[colon + 1..])
            .trim()
            .to_owned();
        if name.trim().eq_ignore_ascii_case("content-disposition") {
            disposition = Some(value);
        } else if name.trim().eq_ignore_ascii_case("content-type") {
            content_type = Some(value);
        }
    }
    let Some(disposition) = disposition else {
        return Err(FormError::malformed(
            "multipart body: a part has no Content-Disposition",
        ));
    };
    let (kind, params) = disposition.split_once(';').unwrap_or((&disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(FormError::malformed(
            "multipart body: a part's Content-Disposition is not form-data",
        ));
    }
    let params = parameters(params);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let Some(name) = get("name") else {
        return Err(FormError::malformed("multipart body: a part has no name"));
    };
    let filename = get("filename*")
        .and_then(|v| ext_value(&v))
        .or_else(|| get("filename"));
    Ok(PartHead {
        name,
        filename,
        content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8], step: usize) -> Result<Vec<(PartHead, Vec<u8>)>, FormError> {
        let mut p = MultipartParser::new(b"b0und", MultipartLimits::default());
        let mut out: Vec<(PartHead, Vec<u8>)> = Vec::new();
        let mut ended = 0;
        for piece in body.chunks(step) {
            p.feed(piece, &mut |e| {
                match e {
                    MultipartEvent::Part(h) => out.push((h, Vec::new())),
                    MultipartEvent::Data(d) => {
                        assert!(!d.is_empty());
                        out.last_mut().unwrap().1.extend_from_slice(d);
                    }
                    MultipartEvent::PartEnd => ended += 1,
                    MultipartEvent::End => {}
                }
                Ok(())
            })?;
        }
        p.finish()?;
        assert_eq!(ended, out.len());
        Ok(out)
    }

    const BODY: &[u8] = b"preamble\r\n--b0und\r\n\
        Content-Disposition: form-data; name=\"a\"\r\n\r\n\
        one\r\n--b0un\r\n--b0und  \r\n\
        content-disposition: form-data; name=\"f\"; filename=\"x\\\"y.txt\"\r\n\
        Content-Type: text/plain\r\n\r\n\
        \r\n--b0unX\r\n\r\n--b0und--\r\nepilogue --b0und";

    #[test]
    fn any_split_gives_the_same_parts() {
        for step in [1, 2, 3, 7, 19, 1000] {
            let parts = parse(BODY, step).unwrap();
            assert_eq!(parts.len(), 2, "step {step}");
            assert_eq!(parts[0].0.name, "a");
            assert_eq!(parts[0].0.filename, None);
            assert_eq!(parts[0].1, b"one\r\n--b0un");
            assert_eq!(parts[1].0.filename.as_deref(), Some("x\"y.txt"));
            assert_eq!(parts[1].0.content_type.as_deref(), Some("text/plain"));
            assert_eq!(parts[1].1, b"\r\n--b0unX\r\n");
        }
    }

    #[test]
    fn a_body_opening_with_its_delimiter_and_an_empty_part() {
        let body = b"--b0und\r\nContent-Disposition: form-data; name=e\r\n\r\n\r\n--b0und--";
        let parts = parse(body, 4).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].0.name, "e");
        assert!(parts[0].1.is_empty());
    }

    #[test]
    fn malformed_bodies_are_400() {
        for body in [
            &b"no delimiter at all"[..],
            b"--b0und\r\nContent-Disposition: form-data; name=a\r\n\r\nunterminated",
            b"--b0und\r\nContent-Type: text/plain\r\n\r\nx\r\n--b0und--",
            b"--b0und\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b0und--",
            b"--b0und\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b0und--",
            b"--b0undX\r\n",
            b"--b0und\r\nno colon here\r\n\r\nx\r\n--b0und--",
        ] {
            let e = parse(body, 5).unwrap_err();
            assert_eq!(e.status(), 400, "{:?}: {e}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn limits_are_413_before_the_body_ends() {
        let limits = MultipartLimits {
            max_parts: 2,
            max_part_header: 100,
        };
        let mut p = MultipartParser::new(b"b", limits);
        let part = b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n";
        let mut body = Vec::new();
        for _ in 0..3 {
            body.extend_from_slice(part);
        }
        let e = p.feed(&body, &mut |_| Ok(())).unwrap_err();
        assert_eq!(e.status(), 413);
        assert!(e.message().contains("more than 2 parts"), "{e}");

        let mut p = MultipartParser::new(b"b", limits);
        let mut head = b"--b\r\nContent-Disposition: form-data; name=a\r\nX-Pad: ".to_vec();
        head.extend_from_slice(&[b'p'; 200]);
        let e = p.feed(&head, &mut |_| Ok(())).unwrap_err();
        assert_eq!(e.status(), 413);
        assert!(e.message().contains("headers are larger than 100"), "{e}");
    }

    #[test]
    fn memory_stays_bounded_by_the_delimiter_while_data_streams() {
        let mut p = MultipartParser::new(b"b0und", MultipartLimits::default());
        p.feed(
            b"--b0und\r\nContent-Disposition: form-data; name=f; filename=big\r\n\r\n",
            &mut |_| Ok(()),
        )
        .unwrap();
        let chunk = vec![b'-'; 65536];
        let mut total = 0;
        for _ in 0..64 {
            p.feed(&chunk, &mut |e| {
                if let MultipartEvent::Data(d) = e {
                    total += d.len();
                }
                Ok(())
            })
            .unwrap();
            assert!(p.buf.len() < 16, "{}", p.buf.len());
        }
        assert_eq!(total, 64 * 65536 - p.buf.len());
    }

    #[test]
    fn filename_star_is_decoded() {
        let body = "--b0und\r\nContent-Disposition: form-data; name=f; filename=\"fallback\"; \
                    filename*=UTF-8''na%C3%AFve.txt\r\n\r\nx\r\n--b0und--";
        let parts = parse(body.as_bytes(), 3).unwrap();
        assert_eq!(parts[0].0.filename.as_deref(), Some("naïve.txt"));
    }
}
