//! An ordered list of header fields, stored in two buffers rather than two allocations per
//! field, so that parsing a head costs the same two allocations however many fields it has.

use std::fmt;
use std::ops::Range;

/// An ordered list of `(name, value)` header fields.
///
/// Names are compared ASCII-case-insensitively and keep the case they were given, for output.
/// Values are bytes (HTTP allows obs-text); [`get_str`](Headers::get_str) gives them as text
/// when they are UTF-8. Repeated fields are kept in order, as received.
///
/// Nothing is validated on insertion: [`write_response_head`](super::write_response_head)
/// replaces any CR or LF when serialising, so no value can split a response.
///
/// ```
/// use torsion_web::proto::Headers;
///
/// let mut h = Headers::new();
/// h.add("Set-Cookie", "a=1");
/// h.add("set-cookie", "b=2");
/// h.set("Connection", "keep-alive, Upgrade");
/// assert_eq!(h.get("SET-COOKIE"), Some(&b"a=1"[..]));
/// assert_eq!(h.get_all("set-cookie").count(), 2);
/// assert!(h.has_token("connection", "upgrade"));
/// assert_eq!(h.iter().next(), Some(("Set-Cookie", &b"a=1"[..])));
/// ```
#[derive(Clone, Default)]
pub struct Headers {
    /// Every name and value ever added, back to back. Names come from `&str` (or from
    /// httparse, which admits only token characters), so a name's range is always UTF-8.
    bytes: Vec<u8>,
    /// The live fields, in order, as ranges into `bytes`.
    entries: Vec<Entry>,
    /// Bytes of `bytes` no longer referred to (removed fields).
    dead: usize,
}

#[derive(Clone, Debug)]
struct Entry {
    name: Range<usize>,
    value: Range<usize>,
}

/// Removed bytes are reclaimed once there are at least this many and they outweigh live ones.
const COMPACT_AT: usize = 1024;

impl Headers {
    /// An empty list; allocates nothing until the first field is added.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `fields` fields holding `bytes` bytes of names and values.
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        Headers {
            bytes: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(fields),
            dead: 0,
        }
    }

    /// Builds the list from httparse's fields with exactly two allocations.
    pub(super) fn from_httparse(fields: &[httparse::Header<'_>]) -> Self {
        let len = fields.iter().map(|f| f.name.len() + f.value.len()).sum();
        let mut h = Headers {
            bytes: Vec::with_capacity(len),
            entries: Vec::with_capacity(fields.len()),
            dead: 0,
        };
        for f in fields {
            h.push(f.name, f.value);
        }
        h
    }

    /// A field's name, as bytes (lookups compare bytes).
    #[inline]
    fn name_bytes(&self, e: &Entry) -> &[u8] {
        &self.bytes[e.name.clone()]
    }

    /// A field's name as text; names are stored from `&str`, so the check never fails.
    #[inline]
    fn name_of(&self, e: &Entry) -> &str {
        std::str::from_utf8(self.name_bytes(e)).unwrap_or_default()
    }

    #[inline]
    fn value_of(&self, e: &Entry) -> &[u8] {
        &self.bytes[e.value.clone()]
    }

    #[inline]
    fn is_called(&self, e: &Entry, name: &str) -> bool {
        self.name_bytes(e).eq_ignore_ascii_case(name.as_bytes())
    }

    #[inline]
    fn push(&mut self, name: &str, value: &[u8]) {
        if self.entries.capacity() == 0 {
            // The first field of a list made empty: room for a handful more at once, so that
            // a resource setting a few response headers does not reallocate for each.
            self.entries.reserve(8);
            self.bytes.reserve(256 + name.len() + value.len());
        }
        let n = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        let v = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.entries.push(Entry {
            name: n..v,
            value: v..self.bytes.len(),
        });
    }

    /// The value of the first field called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|e| self.is_called(e, name))
            .map(|e| self.value_of(e))
    }

    /// The value of the first field called `name`, if there is one and it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every field called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.entries
            .iter()
            .filter(move |e| self.is_called(e, name))
            .map(move |e| self.value_of(e))
    }

    /// Replaces every field called `name` by one field with this value, placed last.
    pub fn set(&mut self, name: &str, value: impl AsRef<[u8]>) {
        self.remove(name);
        self.add(name, value);
    }

    /// Appends a field, keeping any others of the same name.
    pub fn add(&mut self, name: &str, value: impl AsRef<[u8]>) {
        self.push(name, value.as_ref());
    }

    /// Removes every field called `name`.
    pub fn remove(&mut self, name: &str) {
        let before = self.entries.len();
        let bytes = &self.bytes;
        let mut dead = 0;
        self.entries.retain(|e| {
            let keep = !bytes[e.name.clone()].eq_ignore_ascii_case(name.as_bytes());
            if !keep {
                dead += e.name.len() + e.value.len();
            }
            keep
        });
        if self.entries.len() == before {
            return;
        }
        self.dead += dead;
        self.reclaim();
    }

    /// Gives back the space of removed fields: all of it when no field is left, otherwise
    /// once removed bytes dominate (so `set` in a loop cannot grow the buffers without bound).
    fn reclaim(&mut self) {
        if self.entries.is_empty() {
            self.bytes.clear();
            self.dead = 0;
        } else if self.dead >= COMPACT_AT && self.dead > self.bytes.len() - self.dead {
            let old = std::mem::take(self);
            let mut new = Headers {
                bytes: Vec::with_capacity(old.bytes.len() - old.dead),
                entries: Vec::with_capacity(old.entries.len()),
                dead: 0,
            };
            for (n, v) in old.iter() {
                new.push(n, v);
            }
            *self = new;
        }
    }

    /// Whether there is a field called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every field, in order, with names in their original case.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries
            .iter()
            .map(move |e| (self.name_of(e), self.value_of(e)))
    }

    /// Every field in order, its name as bytes: for code that only compares or copies names,
    /// which [`iter`](Self::iter) would check as UTF-8 one by one.
    pub(crate) fn iter_bytes(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(move |e| (self.name_bytes(e), self.value_of(e)))
    }

    /// The number of fields (repeated names counted each time).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any field called `name` lists `token` among its comma-separated elements,
    /// compared case-insensitively, like `close` in `Connection: keep-alive, Close`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        let token = token.as_bytes();
        self.get_all(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
    }

    /// An upper bound of the bytes `name: value\r\n` lines take for every field.
    pub(crate) fn wire_len(&self) -> usize {
        self.bytes.len() - self.dead + 4 * self.entries.len()
    }
}

/// Strips optional whitespace (spaces and tabs) from both ends.
pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

impl PartialEq for Headers {
    /// Same fields in the same order, names compared exactly.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(n, v)| (n, String::from_utf8_lossy(v).into_owned())),
            )
            .finish()
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut h = Headers::new();
        h.extend(iter);
        h
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> Extend<(N, V)> for Headers {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        for (n, v) in iter {
            self.add(n.as_ref(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_lookup_keeps_case() {
        let mut h = Headers::new();
        h.add("Content-Type", "text/html");
        assert_eq!(h.get("content-type"), Some(&b"text/html"[..]));
        assert_eq!(h.get_str("CONTENT-TYPE"), Some("text/html"));
        assert!(h.contains("cOnTeNt-TyPe"));
        assert!(!h.contains("content"));
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("Content-Type", &b"text/html"[..])]
        );
    }

    #[test]
    fn get_str_refuses_non_utf8() {
        let mut h = Headers::new();
        h.add("X", vec![0xff, 0xfe]);
        assert_eq!(h.get("x"), Some(&[0xff, 0xfe][..]));
        assert_eq!(h.get_str("x"), None);
    }

    #[test]
    fn add_keeps_order_set_replaces_all() {
        let mut h = Headers::new();
        h.add("A", "1");
        h.add("B", "2");
        h.add("a", "3");
        assert_eq!(h.get_all("A").collect::<Vec<_>>(), [&b"1"[..], b"3"]);
        assert_eq!(h.len(), 3);
        h.set("A", "4");
        assert_eq!(h.len(), 2);
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("B", &b"2"[..]), ("A", &b"4"[..])]
        );
        h.remove("b");
        h.remove("nothing");
        assert_eq!(h.iter().collect::<Vec<_>>(), [("A", &b"4"[..])]);
        h.remove("A");
        assert!(h.is_empty());
        assert_eq!(h.get("a"), None);
    }

    #[test]
    fn set_in_a_loop_does_not_grow_without_bound() {
        let mut h = Headers::new();
        h.set("Keep", "me");
        for i in 0..10_000 {
            h.set("Date", format!("value number {i}"));
            h.set("Server", "torsion");
        }
        assert!(h.bytes.len() < 4 * COMPACT_AT, "{}", h.bytes.len());
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [
                ("Keep", &b"me"[..]),
                ("Date", &b"value number 9999"[..]),
                ("Server", &b"torsion"[..])
            ]
        );
    }

    #[test]
    fn tokens() {
        let mut h = Headers::new();
        h.add("Connection", "keep-alive, Close");
        h.add("connection", "\tUpgrade ,");
        assert!(h.has_token("connection", "close"));
        assert!(h.has_token("Connection", "KEEP-ALIVE"));
        assert!(h.has_token("connection", "upgrade"));
        assert!(!h.has_token("connection", "clos"));
        assert!(!h.has_token("connection", "keep-alive, close"));
        assert!(!h.has_token("upgrade", "upgrade"));
    }

    #[test]
    fn trim() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn equality_debug_and_collect() {
        let a: Headers = [("A", "1"), ("B", "2")].into_iter().collect();
        let mut b = Headers::new();
        b.add("Z", "0");
        b.add("A", "1");
        b.add("B", "2");
        b.remove("z");
        assert_eq!(a, b);
        assert_ne!(a, Headers::new());
        assert_eq!(format!("{a:?}"), r#"[("A", "1"), ("B", "2")]"#);
        assert!(a.wire_len() >= "A: 1\r\nB: 2\r\n".len());
    }
}
