//! The box protocol, without I/O: [`AmpBox`] and its encoding, and [`BoxParser`], which cuts
//! boxes out of a byte stream with Twisted's limits.
//!
//! A box is a sequence of key/value pairs, each a 16-bit big-endian length and that many
//! bytes (a key 1 to 255 bytes, a value up to 65,535), ended by a zero-length key:
//!
//! ```
//! use torsion_amp::wire::{AmpBox, BoxParser};
//!
//! let mut b = AmpBox::new();
//! b.insert("_command", "Sum");
//! b.insert("a", "13");
//! let bytes = b.to_bytes().unwrap();
//! assert_eq!(&bytes[..12], b"\x00\x08_command\x00\x03"); // keys are written sorted
//!
//! let mut parser = BoxParser::new(1 << 20);
//! parser.push(&bytes);
//! assert_eq!(parser.next_box().unwrap(), Some(b));
//! assert_eq!(parser.next_box().unwrap(), None); // nothing more yet
//! ```

use std::cmp::Ordering;
use std::fmt;

use crate::error::{AmpError, TooLong};

/// The longest key: 255 bytes (Twisted's `MAX_KEY_LENGTH`).
pub const MAX_KEY_LENGTH: usize = 0xFF;
/// The longest value: 65,535 bytes (Twisted's `MAX_VALUE_LENGTH`).
pub const MAX_VALUE_LENGTH: usize = 0xFFFF;

/// The key of a question's tag.
pub const ASK: &[u8] = b"_ask";
/// The key of an answer's tag.
pub const ANSWER: &[u8] = b"_answer";
/// The key of an error answer's tag.
pub const ERROR: &[u8] = b"_error";
/// The key of a command's name.
pub const COMMAND: &[u8] = b"_command";
/// The key of an error answer's code.
pub const ERROR_CODE: &[u8] = b"_error_code";
/// The key of an error answer's description.
pub const ERROR_DESCRIPTION: &[u8] = b"_error_description";

/// Where a key or a value lies in a box's bytes.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

/// One key and its value.
#[derive(Debug, Clone, Copy)]
struct Pair {
    key: Span,
    value: Span,
}

/// One AMP box: keys to values, both bytes (Twisted's `AmpBox`). Keys are kept sorted, so a
/// box is written as Twisted writes it, byte for byte; a key received twice keeps its last
/// value, as in Twisted's dictionary.
///
/// Boxes are small (a handful of short keys and values, made and read once per call), so a
/// box keeps all its keys and values back to back in one buffer, with a list of where each
/// pair lies, sorted by key: a box costs two allocations however many keys it has, and a key
/// is found by comparing it with a few others (lengths first; by a binary search in a box of
/// more than 8 keys). A value replaced or removed stays in the buffer until the box is cleared
/// or dropped.
#[derive(Clone, Default)]
pub struct AmpBox {
    /// Keys and values, back to back (for a box read from the wire, its encoding, length
    /// prefixes and all).
    bytes: Vec<u8>,
    /// One per key, sorted by key, keys unique.
    pairs: Vec<Pair>,
}

impl AmpBox {
    /// An empty box.
    pub fn new() -> AmpBox {
        AmpBox::default()
    }

    /// An empty box with room for `pairs` keys and values of `bytes` bytes in all.
    pub fn with_capacity(pairs: usize, bytes: usize) -> AmpBox {
        AmpBox {
            bytes: Vec::with_capacity(bytes),
            pairs: Vec::with_capacity(pairs),
        }
    }

    /// True for a box small enough to keep for reuse once handled (a connection keeps one or
    /// two; a burst of large boxes does not stay in memory).
    pub(crate) fn worth_keeping(&self) -> bool {
        self.bytes.capacity() <= 64 * 1024 && self.pairs.capacity() <= 64
    }

    /// Sorts the pairs of a box read from the wire whose keys did not come in order
    /// (Twisted and Torsion write them sorted); a key given twice keeps its last value (the
    /// sort is stable).
    fn sort_received(&mut self) {
        let key = |p: &Pair| &self.bytes[p.key.start..p.key.end];
        self.pairs.sort_by(|a, b| compare(key(a), key(b)));
        self.pairs.dedup_by(|later, kept| {
            let same = key(later) == key(kept);
            if same {
                kept.value = later.value;
            }
            same
        });
    }

    fn key_of(&self, p: &Pair) -> &[u8] {
        &self.bytes[p.key.start..p.key.end]
    }

    fn value_of(&self, p: &Pair) -> &[u8] {
        &self.bytes[p.value.start..p.value.end]
    }

    /// Which pair has `key`: in a box of a few keys, the one whose key has its length and
    /// bytes (lengths are compared first, and most differ).
    fn position(&self, key: &[u8]) -> Option<usize> {
        if self.pairs.len() > 8 {
            return self.find(key).ok();
        }
        self.pairs
            .iter()
            .position(|p| p.key.end - p.key.start == key.len() && self.key_of(p) == key)
    }

    /// Where `key` is among the pairs, or where it would go: in a box of a few keys, the
    /// first key not before it (fewer steps than a binary search, each cheaper).
    fn find(&self, key: &[u8]) -> Result<usize, usize> {
        if self.pairs.len() > 8 {
            return self
                .pairs
                .binary_search_by(|p| compare(self.key_of(p), key));
        }
        for (i, p) in self.pairs.iter().enumerate() {
            match compare(self.key_of(p), key) {
                Ordering::Less => {}
                Ordering::Equal => return Ok(i),
                Ordering::Greater => return Err(i),
            }
        }
        Err(self.pairs.len())
    }

    fn append(&mut self, data: &[u8]) -> Span {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        Span {
            start,
            end: self.bytes.len(),
        }
    }

    /// Sets `key` to `value`, returning the old value. Limits are checked when the box is
    /// written.
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        let (key, value) = (key.as_ref(), value.as_ref());
        match self.find(key) {
            Ok(i) => {
                let old = self.value_of(&self.pairs[i]).to_vec();
                self.pairs[i].value = self.append(value);
                Some(old)
            }
            Err(i) => {
                let pair = Pair {
                    key: self.append(key),
                    value: self.append(value),
                };
                self.pairs.insert(i, pair);
                None
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        self.position(key.as_ref())
            .map(|i| self.value_of(&self.pairs[i]))
    }

    /// Takes `key` out of the box.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        let i = self.position(key.as_ref())?;
        let value = self.value_of(&self.pairs[i]).to_vec();
        self.pairs.remove(i);
        Some(value)
    }

    /// True if the box has `key`.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> bool {
        self.position(key.as_ref()).is_some()
    }

    /// How many keys it has.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True for a box without keys.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Empties the box, keeping its memory for the next keys.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.pairs.clear();
    }

    /// The keys and values, keys sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs
            .iter()
            .map(|p| (self.key_of(p), self.value_of(p)))
    }

    /// How many bytes [`write_to`](Self::write_to) appends.
    pub fn encoded_len(&self) -> usize {
        2 + self
            .iter()
            .map(|(k, v)| 4 + k.len() + v.len())
            .sum::<usize>()
    }

    /// Checks AMP's limits: an empty key, a key over 255 bytes or a value over 65,535 is
    /// refused with [`TooLong`] (local), and nothing is written.
    pub fn check(&self) -> Result<(), TooLong> {
        match self.iter().find_map(|(k, v)| over_limit(k, v)) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Appends the box's encoding to `out` (Twisted's `serialize`), or refuses as
    /// [`check`](Self::check) does, leaving `out` untouched.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), TooLong> {
        let before = out.len();
        for (k, v) in self.iter() {
            if let Some(e) = over_limit(k, v) {
                out.truncate(before);
                return Err(e);
            }
            // Both fit in 16 bits: checked just above.
            out.extend_from_slice(&(k.len() as u16).to_be_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(v);
        }
        out.extend_from_slice(&[0, 0]);
        Ok(())
    }

    /// The box's encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TooLong> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out)?;
        Ok(out)
    }
}

/// The limit a key and its value break (as local strings), if any.
fn over_limit(k: &[u8], v: &[u8]) -> Option<TooLong> {
    if k.len() > MAX_KEY_LENGTH || k.is_empty() {
        Some(TooLong {
            is_key: true,
            is_local: true,
            length: k.len(),
            key: None,
        })
    } else if v.len() > MAX_VALUE_LENGTH {
        Some(TooLong {
            is_key: false,
            is_local: true,
            length: v.len(),
            key: Some(k.to_vec()),
        })
    } else {
        None
    }
}

/// Keys in byte order, as Python sorts bytes. Keys are short: a loop costs less than a call
/// to `memcmp`.
fn compare(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

impl PartialEq for AmpBox {
    fn eq(&self, other: &AmpBox) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for AmpBox {}

/// Bytes shown as a Rust byte string would be written (`b"_ask"`).
struct ByteStr<'a>(&'a [u8]);

impl fmt::Debug for ByteStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("b\"")?;
        for &c in self.0 {
            write!(f, "{}", std::ascii::escape_default(c))?;
        }
        f.write_str("\"")
    }
}

impl fmt::Debug for AmpBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (ByteStr(k), ByteStr(v))))
            .finish()
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(K, V)> for AmpBox {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> AmpBox {
        let mut b = AmpBox::new();
        for (k, v) in iter {
            b.insert(k, v);
        }
        b
    }
}

/// Cuts boxes out of a byte stream (Twisted's `BinaryBoxProtocol` parser), incrementally.
///
/// Twisted's limits: a key length prefix over 255 is [`TooLong`] (Twisted closes the
/// connection); a value cannot exceed 65,535 (its prefix is 16 bits). Beyond Twisted, a box
/// whose encoding grows past `max_box` bytes before its end is [`AmpError::BoxTooLarge`]: a
/// peer that never ends a box would otherwise hold memory without bound. Errors are final:
/// once one is returned, the stream cannot be read further.
///
/// Empty boxes (a zero-length key where a box starts) are returned: the connection refuses
/// them, nested boxes (an `AmpList`) allow them.
///
/// A box's bytes stay in the parser's buffer until its end arrives; the whole box is then
/// copied out at once ([`AmpBox`] keeps its pairs in one buffer).
#[derive(Debug)]
pub struct BoxParser {
    buf: Vec<u8>,
    /// Where the box being read starts in `buf` (what is before was returned).
    start: usize,
    /// How many bytes of that box are whole keys and values, checked.
    scanned: usize,
    /// Those keys and values, where they lie from `start`.
    pairs: Vec<Pair>,
    /// A key read, waiting for its value.
    key: Option<Span>,
    /// True while the box's keys came in order (each after the one before).
    sorted: bool,
    /// A box handled and given back ([`recycle`](Self::recycle)), to read the next into.
    spare: Option<AmpBox>,
    max_box: usize,
    failed: Option<AmpError>,
}

impl BoxParser {
    /// A parser refusing boxes larger than `max_box` encoded bytes.
    pub fn new(max_box: usize) -> BoxParser {
        BoxParser {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            pairs: Vec::new(),
            key: None,
            sorted: true,
            spare: None,
            max_box,
            failed: None,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received and not yet part of a returned box.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// True when no box is partly read (the stream is between boxes).
    pub fn between_boxes(&self) -> bool {
        self.buf.len() == self.start
    }

    /// The next whole box, `None` until more bytes come, or the error that ends the stream.
    pub fn next_box(&mut self) -> Result<Option<AmpBox>, AmpError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        // The box being read, and what follows it.
        let data = &self.buf[self.start..];
        let mut at = self.scanned;
        let error = loop {
            let Some(prefix) = data.get(at..at + 2) else {
                break None;
            };
            let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
            if self.key.is_none() && len > MAX_KEY_LENGTH {
                break Some(AmpError::TooLong(TooLong {
                    is_key: true,
                    is_local: false,
                    length: len,
                    key: None,
                }));
            }
            if at + 2 + len > self.max_box {
                break Some(AmpError::BoxTooLarge {
                    limit: self.max_box,
                });
            }
            if data.len() < at + 2 + len {
                break None;
            }
            let string = Span {
                start: at + 2,
                end: at + 2 + len,
            };
            at = string.end;
            match self.key.take() {
                None if len == 0 => {
                    let mut b = self.spare.take().unwrap_or_default();
                    b.bytes.extend_from_slice(&data[..at - 2]);
                    std::mem::swap(&mut b.pairs, &mut self.pairs); // the spare's are empty
                    if !self.sorted {
                        b.sort_received();
                    }
                    self.start += at;
                    self.scanned = 0;
                    self.sorted = true;
                    return Ok(Some(b));
                }
                None => self.key = Some(string),
                Some(key) => {
                    if let Some(last) = self.pairs.last() {
                        let key_of = |s: Span| &data[s.start..s.end];
                        self.sorted &= compare(key_of(last.key), key_of(key)).is_lt();
                    }
                    self.pairs.push(Pair { key, value: string });
                }
            }
        };
        self.scanned = at;
        match error {
            Some(e) => Err(self.fail(e)),
            None => Ok(None),
        }
    }

    /// Takes the bytes received and not part of a returned box (a box partly read
    /// included), leaving the parser between boxes: what follows a protocol switch belongs
    /// to the new protocol.
    pub fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        self.pairs.clear();
        self.key = None;
        self.sorted = true;
        rest
    }

    /// Takes back a box once it is handled, to read the next one into its memory instead of
    /// new memory: a box is read and dropped for every call. One small box is kept.
    pub(crate) fn recycle(&mut self, mut b: AmpBox) {
        if self.spare.is_none() && b.worth_keeping() {
            b.clear();
            self.spare = Some(b);
        }
    }

    fn fail(&mut self, e: AmpError) -> AmpError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        self.pairs = Vec::new();
        self.start = 0;
        self.scanned = 0;
        e
    }
}

/// Every box in `data`, which must end where a box ends (Twisted's `parseString`, used for
/// `AmpList` values). Empty boxes are allowed.
pub fn parse_boxes(data: &[u8]) -> Result<Vec<AmpBox>, AmpError> {
    let mut parser = BoxParser::new(usize::MAX);
    parser.push(data);
    let mut out = Vec::new();
    while let Some(b) = parser.next_box()? {
        out.push(b);
    }
    if !parser.between_boxes() {
        return Err(AmpError::Truncated);
    }
    Ok(out)
}
