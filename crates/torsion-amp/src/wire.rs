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

use std::collections::BTreeMap;

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

/// One AMP box: keys to values, both bytes (Twisted's `AmpBox`). Keys are kept sorted, so a
/// box is written as Twisted writes it, byte for byte; a key received twice keeps its last
/// value, as in Twisted's dictionary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmpBox {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl AmpBox {
    /// An empty box.
    pub fn new() -> AmpBox {
        AmpBox::default()
    }

    /// Sets `key` to `value`, returning the old value. Limits are checked when the box is
    /// written.
    pub fn insert(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        self.map.insert(key.into(), value.into())
    }

    /// The value of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        self.map.get(key.as_ref()).map(Vec::as_slice)
    }

    /// Takes `key` out of the box.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        self.map.remove(key.as_ref())
    }

    /// True if the box has `key`.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> bool {
        self.map.contains_key(key.as_ref())
    }

    /// How many keys it has.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True for a box without keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The keys and values, keys sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// How many bytes [`write_to`](Self::write_to) appends.
    pub fn encoded_len(&self) -> usize {
        2 + self
            .map
            .iter()
            .map(|(k, v)| 4 + k.len() + v.len())
            .sum::<usize>()
    }

    /// Checks AMP's limits: an empty key, a key over 255 bytes or a value over 65,535 is
    /// refused with [`TooLong`] (local), and nothing is written.
    pub fn check(&self) -> Result<(), TooLong> {
        for (k, v) in &self.map {
            if k.len() > MAX_KEY_LENGTH || k.is_empty() {
                return Err(TooLong {
                    is_key: true,
                    is_local: true,
                    length: k.len(),
                    key: None,
                });
            }
            if v.len() > MAX_VALUE_LENGTH {
                return Err(TooLong {
                    is_key: false,
                    is_local: true,
                    length: v.len(),
                    key: Some(k.clone()),
                });
            }
        }
        Ok(())
    }

    /// Appends the box's encoding to `out` (Twisted's `serialize`), or refuses as
    /// [`check`](Self::check) does, leaving `out` untouched.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), TooLong> {
        self.check()?;
        out.reserve(self.encoded_len());
        for (k, v) in &self.map {
            // Both fit in 16 bits: checked above.
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
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }
}

impl<K: Into<Vec<u8>>, V: Into<Vec<u8>>> FromIterator<(K, V)> for AmpBox {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> AmpBox {
        AmpBox {
            map: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
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
#[derive(Debug)]
pub struct BoxParser {
    buf: Vec<u8>,
    /// Where unread bytes start in `buf`.
    pos: usize,
    current: AmpBox,
    /// The key read, waiting for its value.
    key: Option<Vec<u8>>,
    /// Encoded bytes of the box being read so far.
    box_bytes: usize,
    max_box: usize,
    failed: Option<AmpError>,
}

impl BoxParser {
    /// A parser refusing boxes larger than `max_box` encoded bytes.
    pub fn new(max_box: usize) -> BoxParser {
        BoxParser {
            buf: Vec::new(),
            pos: 0,
            current: AmpBox::new(),
            key: None,
            box_bytes: 0,
            max_box,
            failed: None,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received and not yet part of a returned box.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos + self.box_bytes
    }

    /// True when no box is partly read (the stream is between boxes).
    pub fn between_boxes(&self) -> bool {
        self.buf.len() == self.pos && self.box_bytes == 0
    }

    /// The next whole box, `None` until more bytes come, or the error that ends the stream.
    pub fn next_box(&mut self) -> Result<Option<AmpBox>, AmpError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            let rest = &self.buf[self.pos..];
            if rest.len() < 2 {
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            if self.key.is_none() && len > MAX_KEY_LENGTH {
                return Err(self.fail(AmpError::TooLong(TooLong {
                    is_key: true,
                    is_local: false,
                    length: len,
                    key: None,
                })));
            }
            if self.box_bytes + 2 + len > self.max_box {
                return Err(self.fail(AmpError::BoxTooLarge {
                    limit: self.max_box,
                }));
            }
            if rest.len() < 2 + len {
                return Ok(None);
            }
            let string = rest[2..2 + len].to_vec();
            self.pos += 2 + len;
            self.box_bytes += 2 + len;
            match self.key.take() {
                Some(key) => {
                    self.current.insert(key, string);
                }
                None if len == 0 => {
                    self.box_bytes = 0;
                    return Ok(Some(std::mem::take(&mut self.current)));
                }
                None => self.key = Some(string),
            }
        }
    }

    fn fail(&mut self, e: AmpError) -> AmpError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        self.pos = 0;
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
