//! Percent-decoding of paths and query strings, and form-urlencoded query parsing.

/// Decodes `%XX` escapes (either case of hex digit) into bytes. Anything else, including `+`
/// and escapes that are not two hex digits, is left as it is.
///
/// ```
/// use torsion_web::proto::percent_decode;
///
/// assert_eq!(percent_decode(b"/a%20b/%E2%9C%93+%zz%4"), "/a b/✓+%zz%4".as_bytes());
/// ```
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    decode(input, false)
}

/// Parses an `application/x-www-form-urlencoded` string, such as a query string without its
/// `?`, into `(name, value)` pairs in order.
///
/// Pairs are separated by `&`; `+` means a space and `%XX` escapes are decoded in both names
/// and values. A pair without `=` has an empty value; empty pairs are skipped. This matches
/// Python's `parse_qsl(keep_blank_values=True)`, which Twisted uses for `request.args`.
///
/// ```
/// use torsion_web::proto::parse_query;
///
/// let pairs = parse_query(b"q=hello+world&lang=en&lang=fr&flag&&x=%3D%26");
/// let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
/// assert_eq!(pairs, [
///     (&b"q"[..], &b"hello world"[..]),
///     (b"lang", b"en"),
///     (b"lang", b"fr"),
///     (b"flag", b""),
///     (b"x", b"=&"),
/// ]);
/// ```
pub fn parse_query(input: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match memchr::memchr(b'=', pair) {
            Some(eq) => (decode(&pair[..eq], true), decode(&pair[eq + 1..], true)),
            None => (decode(pair, true), Vec::new()),
        })
        .collect()
}

/// Percent-decodes `input`, turning `+` into a space when `plus_is_space`.
fn decode(input: &[u8], plus_is_space: bool) -> Vec<u8> {
    let special = |b: &u8| *b == b'%' || (plus_is_space && *b == b'+');
    let Some(first) = input.iter().position(special) else {
        return input.to_vec();
    };
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    let mut i = first;
    while i < input.len() {
        let b = input[i];
        match b {
            b'%' => match (
                input.get(i + 1).and_then(hex),
                input.get(i + 2).and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b""), b"");
        assert_eq!(percent_decode(b"/plain/path"), b"/plain/path");
        assert_eq!(percent_decode(b"%41%62%2f%2F"), b"Ab//");
        assert_eq!(percent_decode(b"%00%ff%FF"), b"\0\xff\xff");
        assert_eq!(percent_decode(b"a+b"), b"a+b");
        // Invalid escapes stay as they are.
        assert_eq!(percent_decode(b"%"), b"%");
        assert_eq!(percent_decode(b"%4"), b"%4");
        assert_eq!(percent_decode(b"%g1"), b"%g1");
        assert_eq!(percent_decode(b"%4g"), b"%4g");
        assert_eq!(percent_decode(b"%%41"), b"%A");
        assert_eq!(percent_decode(b"100%"), b"100%");
        // Decoding happens once: "%2541" is "%41", not "A".
        assert_eq!(percent_decode(b"%2541"), b"%41");
    }

    #[test]
    fn query_parsing() {
        let q = |s: &[u8]| parse_query(s);
        let pair = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
        assert!(q(b"").is_empty());
        assert!(q(b"&&").is_empty());
        assert_eq!(q(b"a=1&b=2"), [pair("a", "1"), pair("b", "2")]);
        assert_eq!(q(b"a=1&a=2"), [pair("a", "1"), pair("a", "2")]);
        assert_eq!(q(b"a&b="), [pair("a", ""), pair("b", "")]);
        assert_eq!(q(b"="), [pair("", "")]);
        assert_eq!(q(b"a=b=c"), [pair("a", "b=c")]);
        assert_eq!(q(b"a+b=c+d%2Be"), [pair("a b", "c d+e")]);
        assert_eq!(q(b"x=%zz;y=1"), [pair("x", "%zz;y=1")]);
        assert_eq!(q(b"k=%C3%A9"), [pair("k", "é")]);
    }
}
