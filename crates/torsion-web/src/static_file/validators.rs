//! Validators and conditional requests (RFC 9110 sections 8.8 and 13): the file's strong
//! `ETag` and `Last-Modified`, and what `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since` and `If-Range` make of them.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::proto::{parse_http_date, Headers};

/// A file's validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Validators {
    /// The strong entity tag, quotes included: `"<hex size>-<hex mtime nanos>"`.
    pub(super) etag: String,
    /// The modification time, to the second (what `Last-Modified` can say), if known.
    pub(super) last_modified: Option<SystemTime>,
}

impl Validators {
    /// The validators of a file of `size` bytes last changed at `mtime`.
    pub(super) fn new(size: u64, mtime: Option<SystemTime>) -> Validators {
        let since = mtime.and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        let nanos = since.map_or(0, |d| d.as_nanos());
        // Sized once: `format!` would grow its string two or three times.
        let mut etag = String::with_capacity(2 + 16 + 1 + 32);
        let _ = write!(etag, "\"{size:x}-{nanos:x}\"");
        Validators {
            etag,
            last_modified: since.map(|d| UNIX_EPOCH + Duration::from_secs(d.as_secs())),
        }
    }
}

/// What the preconditions of a GET or HEAD say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Precondition {
    /// Answer normally.
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates the preconditions of a GET or HEAD in RFC 9110's order (section 13.2.2).
/// `If-Modified-Since` counts only without `If-None-Match`; a date that cannot be read, or
/// one in the future, is ignored.
pub(super) fn evaluate(headers: &Headers, v: &Validators) -> Precondition {
    if let Some(list) = joined(headers, "if-match") {
        let ok = match parse_tags(&list) {
            Some(Tags::Any) => true,
            Some(Tags::List(tags)) => tags.iter().any(|t| strong_match(t, &v.etag)),
            None => false,
        };
        if !ok {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(modified)) =
        (date(headers, "if-unmodified-since"), v.last_modified)
    {
        if modified > since {
            return Precondition::Failed;
        }
    }
    if let Some(list) = joined(headers, "if-none-match") {
        let matched = match parse_tags(&list) {
            Some(Tags::Any) => true,
            Some(Tags::List(tags)) => tags.iter().any(|t| weak_match(t, &v.etag)),
            None => false,
        };
        if matched {
            return Precondition::NotModified;
        }
    } else if let (Some(since), Some(modified)) =
        (date(headers, "if-modified-since"), v.last_modified)
    {
        if modified <= since && since <= SystemTime::now() {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// True when an `If-Range` value lets the Range apply: a strong match of the entity tag, or
/// exactly the `Last-Modified` date.
pub(super) fn if_range_holds(value: &[u8], v: &Validators) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') {
        return value == v.etag;
    }
    if value.starts_with("W/") {
        return false;
    }
    matches!((parse_http_date(value), v.last_modified), (Some(d), Some(m)) if d == m)
}

/// Every field called `name`, joined with commas (a list may be split over several fields).
fn joined(headers: &Headers, name: &str) -> Option<String> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let value = String::from_utf8_lossy(value);
        match &mut out {
            None => out = Some(value.into_owned()),
            Some(o) => {
                o.push(',');
                o.push_str(&value);
            }
        }
    }
    out
}

fn date(headers: &Headers, name: &str) -> Option<SystemTime> {
    headers.get_str(name).and_then(parse_http_date)
}

/// An entity tag as sent: weak or not, and its opaque part with the quotes.
#[derive(Debug, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    opaque: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
enum Tags<'a> {
    Any,
    List(Vec<Tag<'a>>),
}

/// Reads `*` or a comma-separated list of entity tags; `None` if malformed.
fn parse_tags(value: &str) -> Option<Tags<'_>> {
    let trimmed = value.trim_matches([' ', '\t', ',']);
    if trimmed == "*" {
        return Some(Tags::Any);
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, after) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let body = after.strip_prefix('"')?;
        let end = body.find('"')?;
        let opaque = &after[..end + 2];
        tags.push(Tag { weak, opaque });
        rest = &after[end + 2..];
        let next = rest.trim_start_matches([' ', '\t']);
        if !(next.is_empty() || next.starts_with(',')) {
            return None;
        }
    }
    (!tags.is_empty()).then_some(Tags::List(tags))
}

/// Strong comparison: both strong and the same (`ours` is always strong).
fn strong_match(tag: &Tag<'_>, ours: &str) -> bool {
    !tag.weak && tag.opaque == ours
}

/// Weak comparison: the same opaque tag, weak or not.
fn weak_match(tag: &Tag<'_>, ours: &str) -> bool {
    tag.opaque == ours
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http_date;

    fn validators() -> Validators {
        Validators::new(
            0x1234,
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789)),
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (k, v) in pairs {
            h.add(k, *v);
        }
        h
    }

    #[test]
    fn the_etag_holds_size_and_nanoseconds_in_hex() {
        let v = validators();
        assert_eq!(
            v.etag,
            format!("\"1234-{:x}\"", 1_700_000_000_123_456_789u128)
        );
        assert_eq!(
            v.last_modified,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(Validators::new(0, None).etag, "\"0-0\"");
    }

    #[test]
    fn tag_lists() {
        assert_eq!(parse_tags("*"), Some(Tags::Any));
        assert_eq!(
            parse_tags(r#""a", W/"b",,"c,d""#),
            Some(Tags::List(vec![
                Tag {
                    weak: false,
                    opaque: "\"a\""
                },
                Tag {
                    weak: true,
                    opaque: "\"b\""
                },
                Tag {
                    weak: false,
                    opaque: "\"c,d\""
                },
            ]))
        );
        assert_eq!(parse_tags("a"), None);
        assert_eq!(parse_tags(r#""a"b"#), None);
        assert_eq!(parse_tags(r#""a"#), None);
        assert_eq!(parse_tags(""), None);
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let v = validators();
        let weak = format!("W/{}", v.etag);
        for value in [
            v.etag.as_str(),
            weak.as_str(),
            "*",
            &format!("\"x\", {}", v.etag),
        ] {
            let h = headers(&[("If-None-Match", value)]);
            assert_eq!(evaluate(&h, &v), Precondition::NotModified, "{value}");
        }
        let h = headers(&[("If-None-Match", "\"x\""), ("If-None-Match", &v.etag)]);
        assert_eq!(evaluate(&h, &v), Precondition::NotModified);
        let h = headers(&[("If-None-Match", "\"other\"")]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
    }

    #[test]
    fn if_modified_since_counts_only_without_if_none_match() {
        let v = validators();
        let lm = http_date(v.last_modified.unwrap());
        let h = headers(&[("If-Modified-Since", &lm)]);
        assert_eq!(evaluate(&h, &v), Precondition::NotModified);
        let before = http_date(v.last_modified.unwrap() - Duration::from_secs(1));
        let h = headers(&[("If-Modified-Since", &before)]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        let h = headers(&[("If-Modified-Since", &lm), ("If-None-Match", "\"other\"")]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        let h = headers(&[("If-Modified-Since", "yesterday")]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        let future = http_date(SystemTime::now() + Duration::from_secs(86_400));
        let h = headers(&[("If-Modified-Since", &future)]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        let v = validators();
        let h = headers(&[("If-Match", &v.etag)]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        let h = headers(&[("If-Match", &format!("W/{}", v.etag))]);
        assert_eq!(evaluate(&h, &v), Precondition::Failed);
        let h = headers(&[("If-Match", "*")]);
        assert_eq!(evaluate(&h, &v), Precondition::Proceed);
        let before = http_date(v.last_modified.unwrap() - Duration::from_secs(1));
        let h = headers(&[("If-Unmodified-Since", &before)]);
        assert_eq!(evaluate(&h, &v), Precondition::Failed);
    }

    #[test]
    fn if_range() {
        let v = validators();
        assert!(if_range_holds(v.etag.as_bytes(), &v));
        assert!(!if_range_holds(format!("W/{}", v.etag).as_bytes(), &v));
        assert!(!if_range_holds(b"\"other\"", &v));
        let lm = http_date(v.last_modified.unwrap());
        assert!(if_range_holds(lm.as_bytes(), &v));
        let before = http_date(v.last_modified.unwrap() - Duration::from_secs(1));
        assert!(!if_range_holds(before.as_bytes(), &v));
        assert!(!if_range_holds(b"nonsense", &v));
    }
}
