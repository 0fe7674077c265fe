//! `Range: bytes=...` (RFC 9110 section 14.2) read against a representation's size.

/// At most this many ranges in one header; more and the header is ignored (RFC 9110 lets a
/// server ignore a Range that asks for many small or overlapping pieces).
const MAX_RANGES: usize = 32;

/// What a Range header asks of a representation of a given size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ranges {
    /// No usable Range: absent, malformed, another unit, or too greedy. Send everything (200).
    Whole,
    /// The satisfiable ranges, in the order asked, as inclusive `(first, last)` offsets (206).
    Parts(Vec<(u64, u64)>),
    /// No range overlaps the representation (416).
    Unsatisfiable,
}

/// Reads a Range header for a representation of `size` bytes.
///
/// Ranges that start past the end are dropped, ends past the end are clamped, `-n` means the
/// last `n` bytes. A syntax error anywhere (or `last < first`) makes the whole header ignored,
/// as RFC 9110 asks; so do more than [`MAX_RANGES`] ranges, or several ranges that add up to
/// more than the representation (overlaps).
pub(super) fn parse_range(header: &[u8], size: u64) -> Ranges {
    let Ok(text) = std::str::from_utf8(header) else {
        return Ranges::Whole;
    };
    let Some((unit, specs)) = text.trim().split_once('=') else {
        return Ranges::Whole;
    };
    if !unit.trim_end().eq_ignore_ascii_case("bytes") {
        return Ranges::Whole;
    }
    let mut parts = Vec::new();
    let mut asked = 0;
    for spec in specs.split(',') {
        let spec = spec.trim_matches([' ', '\t']);
        if spec.is_empty() {
            continue; // empty list elements are allowed
        }
        asked += 1;
        if asked > MAX_RANGES {
            return Ranges::Whole;
        }
        let Some((first, last)) = spec.split_once('-') else {
            return Ranges::Whole;
        };
        if first.is_empty() {
            let Some(n) = number(last) else {
                return Ranges::Whole;
            };
            if n > 0 && size > 0 {
                parts.push((size - n.min(size), size - 1));
            }
            continue;
        }
        let Some(first) = number(first) else {
            return Ranges::Whole;
        };
        let last = if last.is_empty() {
            None
        } else {
            match number(last) {
                Some(l) if l >= first => Some(l),
                _ => return Ranges::Whole,
            }
        };
        if first < size {
            parts.push((first, last.map_or(size - 1, |l| l.min(size - 1))));
        }
    }
    if asked == 0 {
        return Ranges::Whole;
    }
    if parts.is_empty() {
        return Ranges::Unsatisfiable;
    }
    let total = parts
        .iter()
        .fold(0u64, |sum, (a, b)| sum.saturating_add(b - a + 1));
    if parts.len() > 1 && total > size {
        return Ranges::Whole;
    }
    Ranges::Parts(parts)
}

/// A run of ASCII digits; too large a number reads as `u64::MAX` (still valid syntax).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(h: &str, size: u64) -> Ranges {
        parse_range(h.as_bytes(), size)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(p("bytes=0-9", 100), Ranges::Parts(vec![(0, 9)]));
        assert_eq!(p("bytes=90-", 100), Ranges::Parts(vec![(90, 99)]));
        assert_eq!(p("bytes=-10", 100), Ranges::Parts(vec![(90, 99)]));
        assert_eq!(p("bytes=-1000", 100), Ranges::Parts(vec![(0, 99)]));
        assert_eq!(p("bytes=50-1000", 100), Ranges::Parts(vec![(50, 99)]));
        assert_eq!(p("Bytes = 1-1", 100), Ranges::Parts(vec![(1, 1)]));
        assert_eq!(
            p("bytes=99999999999999999999999-", 100),
            Ranges::Unsatisfiable
        );
    }

    #[test]
    fn several_ranges_keep_their_order_and_drop_the_unsatisfiable() {
        assert_eq!(
            p("bytes=10-19, 0-4,500-600", 100),
            Ranges::Parts(vec![(10, 19), (0, 4)])
        );
        assert_eq!(
            p("bytes=0-1,,2-3", 100),
            Ranges::Parts(vec![(0, 1), (2, 3)])
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(p("bytes=100-", 100), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=-0", 100), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=-5", 0), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=200-300,400-", 100), Ranges::Unsatisfiable);
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "items=0-1",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=1",
            "bytes=--1",
            "bytes=0-1,x",
            "bytes=+1-2",
            "bytes=0 - 1",
        ] {
            assert_eq!(p(h, 100), Ranges::Whole, "{h:?}");
        }
        assert_eq!(parse_range(b"bytes=\xff-1", 100), Ranges::Whole);
    }

    #[test]
    fn greedy_headers_are_ignored() {
        let many: Vec<String> = (0..33).map(|i| format!("{i}-{i}")).collect();
        assert_eq!(p(&format!("bytes={}", many.join(",")), 100), Ranges::Whole);
        assert_eq!(p("bytes=0-,0-", 100), Ranges::Whole);
        assert_eq!(p("bytes=0-99,0-0", 100), Ranges::Whole);
    }
}
