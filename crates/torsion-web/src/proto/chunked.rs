//! The chunked transfer coding (RFC 9112 section 7.1): an incremental decoder with limits, and
//! the two encoding functions.

use super::ParseError;

/// Longest chunk-size line, extensions included, CRLF excluded.
const MAX_SIZE_LINE: usize = 1024;
/// Largest trailer section, CRLFs included.
const MAX_TRAILERS: usize = 16384;

/// An incremental decoder for chunked bodies.
///
/// Feed it bytes as they arrive, split anywhere; it appends the payload to `out` and says how
/// many input bytes it used. Once [`is_done`](ChunkedDecoder::is_done), it has consumed the
/// last chunk, the trailer section and its final CRLF, and nothing more: the rest of the input
/// belongs to the next message.
///
/// It is strict where leniency lets two parsers disagree: lines end with CRLF (not bare LF),
/// chunk sizes are hex digits without sign, spaces or `0x`, and every chunk's data ends with
/// CRLF. Chunk extensions are accepted and ignored; trailer fields are checked for shape and
/// discarded. Limits: a chunk-size line of at most 1024 bytes, a trailer section of at most
/// 16384 bytes ([`ParseError::HeadersTooLarge`]), and a body of at most `max_body` bytes
/// ([`ParseError::BodyTooLarge`], reported as soon as a chunk size would exceed it). After an
/// error the decoder keeps returning it.
///
/// ```
/// use torsion_web::proto::ChunkedDecoder;
///
/// let mut d = ChunkedDecoder::new(1024);
/// let mut body = Vec::new();
/// assert_eq!(d.decode(b"4;name=val\r\nWi", &mut body)?, 14);
/// assert_eq!(d.decode(b"ki\r\n0\r\nExpires: never\r\n\r\nNEXT", &mut body)?, 25);
/// assert!(d.is_done());
/// assert_eq!(body, b"Wiki");
/// # Ok::<(), torsion_web::proto::ParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    max_body: u64,
    /// Payload bytes announced so far (all chunk sizes added up).
    total: u64,
    /// The chunk size being read, then the data bytes left in the chunk.
    size: u64,
    /// Bytes of the current chunk-size line, or of the trailer section.
    line: usize,
    error: Option<ParseError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size (`line` counts them).
    Size,
    /// Spaces after the size; only a `;` may follow.
    SizeSpace,
    /// In chunk extensions, up to CR.
    Extension,
    /// After the CR of a chunk-size line.
    SizeLf,
    /// In chunk data (`size` bytes left).
    Data,
    /// After chunk data: CR expected.
    DataCr,
    /// After chunk data and CR: LF expected.
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// After the CR of a trailer line.
    TrailerLf,
    /// After the CR of the final empty line.
    FinalLf,
    /// The body is complete.
    Done,
}

impl ChunkedDecoder {
    /// A decoder that refuses bodies of more than `max_body` bytes.
    pub fn new(max_body: u64) -> Self {
        ChunkedDecoder {
            state: State::Size,
            max_body,
            total: 0,
            size: 0,
            line: 0,
            error: None,
        }
    }

    /// Whether the whole body, trailers and final CRLF included, has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The number of payload bytes decoded so far.
    pub fn body_len(&self) -> u64 {
        self.total
            - if self.state == State::Data {
                self.size
            } else {
                0
            }
    }

    /// Decodes from `input`, appending payload to `out`; returns the number of bytes of `input`
    /// consumed. All of `input` is consumed unless the body ends inside it (then the decoder
    /// stops right after the final CRLF) or an error is found.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ParseError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.run(input, out) {
            Ok(n) => Ok(n),
            Err(e) => {
                self.error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ParseError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                // The hot path: copy as much data as there is.
                let n = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                out.extend_from_slice(&input[i..i + n]);
                i += n;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
                State::Size => match hex_value(b) {
                    Some(d) => {
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(d)))
                            .ok_or(ParseError::Malformed("chunk size overflows"))?;
                        self.size_line_byte()?;
                        State::Size
                    }
                    None if self.line == 0 => {
                        return Err(ParseError::Malformed("invalid chunk size"))
                    }
                    None => self.after_size(b)?,
                },
                State::SizeSpace => {
                    self.size_line_byte()?;
                    match b {
                        b' ' | b'\t' => State::SizeSpace,
                        b';' => State::Extension,
                        _ => return Err(ParseError::Malformed("invalid chunk size")),
                    }
                }
                State::Extension => match b {
                    b'\r' => State::SizeLf,
                    _ if is_field_byte(b) => {
                        self.size_line_byte()?;
                        State::Extension
                    }
                    _ => return Err(ParseError::Malformed("invalid chunk extension")),
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ParseError::Malformed("chunk size line without CRLF"));
                    }
                    self.line = 0;
                    if self.size == 0 {
                        State::TrailerStart
                    } else {
                        self.total = match self.total.checked_add(self.size) {
                            Some(t) if t <= self.max_body => t,
                            _ => return Err(ParseError::BodyTooLarge),
                        };
                        State::Data
                    }
                }
                State::Data => unreachable!("handled above"),
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    _ => return Err(ParseError::Malformed("chunk data without CRLF")),
                },
                State::DataLf => match b {
                    b'\n' => State::Size,
                    _ => return Err(ParseError::Malformed("chunk data without CRLF")),
                },
                State::TrailerStart => {
                    self.trailer_byte()?;
                    match b {
                        b'\r' => State::FinalLf,
                        _ if is_tchar(b) => State::Trailer,
                        _ => return Err(ParseError::Malformed("invalid trailer field")),
                    }
                }
                State::Trailer => {
                    self.trailer_byte()?;
                    match b {
                        b'\r' => State::TrailerLf,
                        _ if is_field_byte(b) => State::Trailer,
                        _ => return Err(ParseError::Malformed("invalid trailer field")),
                    }
                }
                State::TrailerLf => {
                    self.trailer_byte()?;
                    match b {
                        b'\n' => State::TrailerStart,
                        _ => return Err(ParseError::Malformed("trailer field without CRLF")),
                    }
                }
                State::FinalLf => {
                    self.trailer_byte()?;
                    if b != b'\n' {
                        return Err(ParseError::Malformed("chunked body without final CRLF"));
                    }
                    self.state = State::Done;
                    return Ok(i);
                }
                State::Done => return Ok(i - 1),
            };
        }
        Ok(i)
    }

    /// The first byte after a chunk size's digits.
    fn after_size(&mut self, b: u8) -> Result<State, ParseError> {
        match b {
            b'\r' => Ok(State::SizeLf),
            b';' => {
                self.size_line_byte()?;
                Ok(State::Extension)
            }
            b' ' | b'\t' => {
                self.size_line_byte()?;
                Ok(State::SizeSpace)
            }
            _ => Err(ParseError::Malformed("invalid chunk size")),
        }
    }

    fn size_line_byte(&mut self) -> Result<(), ParseError> {
        self.line += 1;
        if self.line > MAX_SIZE_LINE {
            return Err(ParseError::Malformed("chunk size line too long"));
        }
        Ok(())
    }

    fn trailer_byte(&mut self) -> Result<(), ParseError> {
        self.line += 1;
        if self.line > MAX_TRAILERS {
            return Err(ParseError::HeadersTooLarge);
        }
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Bytes allowed inside a field line or extension: anything but control characters (HTAB
/// excepted), so CR and LF can only end a line.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Token characters (RFC 9110 section 5.6.2), with which a field name starts.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Appends one chunk holding `data`: its size in hex, CRLF, the data, CRLF. Appends nothing
/// for empty data (an empty chunk would end the body).
///
/// ```
/// let mut out = Vec::new();
/// torsion_web::proto::encode_chunk(&mut out, b"hello, world");
/// torsion_web::proto::encode_chunk(&mut out, b"");
/// assert_eq!(out, b"c\r\nhello, world\r\n");
/// ```
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut hex = [0u8; 16];
    let mut i = hex.len();
    let mut n = data.len();
    while n > 0 {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
    }
    out.reserve(hex.len() - i + data.len() + 4);
    out.extend_from_slice(&hex[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and an empty trailer section, `0\r\n\r\n`, which ends a chunked body.
pub fn encode_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` in one call with a generous limit.
    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ParseError> {
        let mut d = ChunkedDecoder::new(1 << 20);
        let mut out = Vec::new();
        let n = d.decode(input, &mut out)?;
        Ok((out, n, d.is_done()))
    }

    /// Decodes `input` one byte at a time, checking each byte is consumed until done.
    fn decode_bytewise(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ParseError> {
        let mut d = ChunkedDecoder::new(1 << 20);
        let mut out = Vec::new();
        let mut used = 0;
        for b in input {
            let n = d.decode(std::slice::from_ref(b), &mut out)?;
            used += n;
            if d.is_done() {
                break;
            }
            assert_eq!(n, 1);
        }
        Ok((out, used, d.is_done()))
    }

    fn malformed(input: &[u8]) {
        let whole = decode_all(input);
        assert!(
            matches!(whole, Err(ParseError::Malformed(_))),
            "{:?}: {whole:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(decode_bytewise(input).unwrap_err(), whole.unwrap_err());
    }

    #[test]
    fn simple_body() {
        let wire = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
        assert_eq!(
            decode_all(wire),
            Ok((b"hello, world".to_vec(), wire.len(), true))
        );
        assert_eq!(decode_bytewise(wire), decode_all(wire));
    }

    #[test]
    fn stops_after_final_crlf() {
        let wire = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let (out, n, done) = decode_all(wire).unwrap();
        assert_eq!((out.as_slice(), n, done), (&b"abc"[..], 13, true));
        let mut d = ChunkedDecoder::new(10);
        let mut out = Vec::new();
        assert_eq!(d.decode(wire, &mut out), Ok(13));
        // Once done, nothing more is taken.
        assert_eq!(d.decode(b"more", &mut out), Ok(0));
        assert_eq!(d.body_len(), 3);
    }

    #[test]
    fn incomplete_body_is_not_done() {
        let wire = b"5\r\nhello\r\n0\r\n\r\n";
        for cut in 0..wire.len() {
            let (_, n, done) = decode_all(&wire[..cut]).unwrap();
            assert_eq!((n, done), (cut, false), "cut at {cut}");
        }
    }

    #[test]
    fn hex_sizes_any_case_and_leading_zeros() {
        let data = vec![b'x'; 0x1a];
        for size in ["1a", "1A", "001a", "0000000000000000000000001A"] {
            let mut wire = format!("{size}\r\n").into_bytes();
            wire.extend_from_slice(&data);
            wire.extend_from_slice(b"\r\n0\r\n\r\n");
            assert_eq!(decode_all(&wire).unwrap().0, data, "{size}");
        }
        assert_eq!(decode_all(b"000\r\n\r\n"), Ok((vec![], 7, true)));
    }

    #[test]
    fn extensions_are_ignored() {
        let wire = b"5;foo=bar\r\nhello\r\n6 ; a=\"q;\\\"x\" ;b\r\n world\r\n0;last\r\n\r\n";
        assert_eq!(
            decode_all(wire).unwrap(),
            (b"hello world".to_vec(), wire.len(), true)
        );
        assert_eq!(decode_bytewise(wire), decode_all(wire));
    }

    #[test]
    fn trailers_are_consumed() {
        let wire = b"2\r\nhi\r\n0\r\nExpires: never\r\nX-Sum: \t12\r\n\r\nnext";
        let (out, n, done) = decode_all(wire).unwrap();
        assert_eq!(
            (out.as_slice(), n, done),
            (&b"hi"[..], wire.len() - 4, true)
        );
        assert_eq!(decode_bytewise(wire), decode_all(wire));
    }

    #[test]
    fn invalid_sizes() {
        for wire in [
            &b"\r\n"[..],
            b"x\r\n",
            b"-1\r\n",
            b"+1\r\n",
            b"0x5\r\n",
            b" 5\r\n",
            b"5 \r\n",
            b"5\t\r\n",
            b"5z\r\n",
            b"5\n",
            b"5\rx",
            b"5;a\nb",
            b"5;a\x00\r\n",
            b"5;a\x7f\r\n",
            b";ext\r\n",
        ] {
            malformed(wire);
        }
    }

    #[test]
    fn sizes_overflowing_u64() {
        // The largest u64 is a valid (if huge) size; one digit more overflows.
        let mut d = ChunkedDecoder::new(u64::MAX);
        assert_eq!(d.decode(b"ffffffffffffffff\r\n", &mut Vec::new()), Ok(18));
        malformed(b"10000000000000000\r\n");
        malformed(b"fffffffffffffffff\r\n");
        assert_eq!(
            decode_all(b"10000000000000000\r\n"),
            Err(ParseError::Malformed("chunk size overflows"))
        );
    }

    #[test]
    fn data_must_end_with_crlf() {
        malformed(b"3\r\nabcd\r\n");
        malformed(b"3\r\nabc\n0\r\n\r\n");
        malformed(b"3\r\nabc\rx");
    }

    #[test]
    fn bad_trailers_and_endings() {
        malformed(b"0\r\n\n");
        malformed(b"0\r\n\rx");
        malformed(b"0\r\n folded: x\r\n\r\n");
        malformed(b"0\r\n:x\r\n\r\n");
        malformed(b"0\r\nA: b\nC: d\r\n\r\n");
        malformed(b"0\r\nA: b\rC\r\n\r\n");
        malformed(b"0\r\nA: \x01\r\n\r\n");
    }

    #[test]
    fn size_line_limit() {
        let mut ok = b"1;".to_vec();
        ok.resize(MAX_SIZE_LINE, b'a');
        ok.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(decode_all(&ok).unwrap().0, b"x");
        let mut long = b"1;".to_vec();
        long.resize(MAX_SIZE_LINE + 1, b'a');
        assert_eq!(
            decode_all(&long),
            Err(ParseError::Malformed("chunk size line too long"))
        );
        // Endless zeros are cut off too.
        assert!(decode_all(&[b'0'; MAX_SIZE_LINE + 1]).is_err());
        assert!(decode_all(&[b'0'; MAX_SIZE_LINE]).is_ok());
    }

    #[test]
    fn trailer_limit_is_431() {
        let mut wire = b"0\r\n".to_vec();
        while wire.len() < MAX_TRAILERS + 3 - 20 {
            wire.extend_from_slice(b"X-Pad: 0123456789\r\n");
        }
        let mut ok = wire.clone();
        ok.extend_from_slice(b"\r\n");
        assert!(ok.len() - 3 <= MAX_TRAILERS);
        assert!(decode_all(&ok).unwrap().2);
        wire.extend_from_slice(b"X-Pad: 0123456789\r\n\r\n");
        assert!(wire.len() - 3 > MAX_TRAILERS);
        assert_eq!(decode_all(&wire), Err(ParseError::HeadersTooLarge));
        assert_eq!(ParseError::HeadersTooLarge.status(), 431);
    }

    #[test]
    fn body_limit_is_413_before_the_data() {
        let mut d = ChunkedDecoder::new(10);
        let mut out = Vec::new();
        assert_eq!(d.decode(b"6\r\nabcdef\r\n", &mut out), Ok(11));
        assert_eq!(d.decode(b"4\r\n", &mut out), Ok(3));
        assert_eq!(d.body_len(), 6);
        assert_eq!(d.decode(b"wxyz\r\n", &mut out), Ok(6));
        assert_eq!(d.body_len(), 10);
        // One byte over: refused when the size is read, before any of its data.
        assert_eq!(d.decode(b"1\r\n", &mut out), Err(ParseError::BodyTooLarge));
        assert_eq!(out, b"abcdefwxyz");
        assert_eq!(ParseError::BodyTooLarge.status(), 413);
        // Sizes that would overflow the running total are refused the same way.
        let mut d = ChunkedDecoder::new(u64::MAX);
        assert_eq!(d.decode(b"1\r\nx\r\n", &mut out), Ok(6));
        assert_eq!(
            d.decode(b"ffffffffffffffff\r\n", &mut out),
            Err(ParseError::BodyTooLarge)
        );
    }

    #[test]
    fn errors_are_sticky() {
        let mut d = ChunkedDecoder::new(100);
        let mut out = Vec::new();
        assert!(d.decode(b"zz", &mut out).is_err());
        assert_eq!(
            d.decode(b"0\r\n\r\n", &mut out),
            Err(ParseError::Malformed("invalid chunk size"))
        );
        assert!(!d.is_done());
    }

    #[test]
    fn encoding() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"");
        assert!(out.is_empty());
        encode_chunk(&mut out, b"a");
        encode_chunk(&mut out, &[b'b'; 255]);
        encode_chunk(&mut out, &[b'c'; 4096]);
        encode_last_chunk(&mut out);
        assert!(out.starts_with(b"1\r\na\r\nff\r\nbbb"));
        let mut expected = b"a".to_vec();
        expected.extend_from_slice(&[b'b'; 255]);
        expected.extend_from_slice(&[b'c'; 4096]);
        assert_eq!(decode_all(&out), Ok((expected, out.len(), true)));
        assert!(out.ends_with(b"c\r\n0\r\n\r\n"));
        let mut last = Vec::new();
        encode_last_chunk(&mut last);
        assert_eq!(last, b"0\r\n\r\n");
    }
}
