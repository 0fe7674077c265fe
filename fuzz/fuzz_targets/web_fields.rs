//! Fuzzes the field parsers torsion-web runs on what a client sends: query strings and
//! `application/x-www-form-urlencoded` bodies (`Request::args`), percent-decoding of paths,
//! and HTTP dates (`If-Modified-Since`, `If-Range`, a client's `Last-Modified`). Any bytes never
//! panic, decoding never grows its input, and a date that parses formats back to a date that
//! parses to the same instant. The one exception, as in Twisted: a leap second at the very end
//! of 9999 (`Fri, 31 Dec 9999 23:59:60 GMT`) lands in the year 10000, which no HTTP date can
//! write (`http_date` then writes a five-digit year).
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use torsion_web::proto::{http_date, parse_http_date, parse_query, percent_decode};

/// The last instant an IMF-fixdate can write: 9999-12-31 23:59:59 UTC.
fn last_http_date() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(253_402_300_799)
}

fuzz_target!(|data: &[u8]| {
    let decoded = percent_decode(data);
    assert!(decoded.len() <= data.len());
    let mut pair_bytes = 0;
    for (name, value) in parse_query(data) {
        assert!(!name.contains(&b'+') || data.contains(&b'%'));
        pair_bytes += name.len() + value.len();
    }
    assert!(pair_bytes <= data.len());
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(t) = parse_http_date(text).filter(|t| *t <= last_http_date()) {
            let again = http_date(t);
            assert_eq!(again.len(), 29, "{again}");
            assert_eq!(parse_http_date(&again), Some(t), "{text:?} -> {again}");
        }
    }
});
