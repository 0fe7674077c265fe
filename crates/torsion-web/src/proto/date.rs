//! HTTP dates (RFC 9110 section 5.6.7), converted with Howard Hinnant's civil-calendar
//! algorithms instead of a date library.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const SECS_PER_DAY: i64 = 86_400;

/// Formats a time as an IMF-fixdate, the form HTTP senders must use:
/// `Sun, 06 Nov 1994 08:49:37 GMT`. Fractions of a second are dropped.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use torsion_web::proto::http_date;
///
/// let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn http_date(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Before 1970: round down to the whole second.
        Err(e) => {
            let d = e.duration();
            let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -s - i64::from(d.subsec_nanos() > 0)
        }
    };
    let days = secs.div_euclid(SECS_PER_DAY);
    let rem = secs.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let weekday = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    if !(0..=9999).contains(&year) {
        return format!(
            "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
            DAYS[weekday],
            day,
            MONTHS[month as usize - 1],
            year,
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        );
    }
    // The common case, without the formatting machinery: servers stamp every response.
    let mut out = [0u8; 29];
    out[..3].copy_from_slice(DAYS[weekday].as_bytes());
    out[3..5].copy_from_slice(b", ");
    put_digits(&mut out[5..7], day);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[month as usize - 1].as_bytes());
    out[11] = b' ';
    put_digits(&mut out[12..16], year);
    out[16] = b' ';
    put_digits(&mut out[17..19], rem / 3600);
    out[19] = b':';
    put_digits(&mut out[20..22], rem / 60 % 60);
    out[22] = b':';
    put_digits(&mut out[23..25], rem % 60);
    out[25..].copy_from_slice(b" GMT");
    // All ASCII, so never the empty fallback.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// Writes `n` in decimal into all of `dst`, zero-padded (`n` must fit).
fn put_digits(dst: &mut [u8], mut n: i64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Parses an HTTP date in any of the three forms recipients must accept: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and C's asctime form (`Sun Nov  6 08:49:37 1994`).
///
/// Returns `None` for anything else, including impossible dates such as 31 April. The weekday
/// must be a valid name but is not checked against the date. A two-digit RFC 850 year is read
/// as the most recent matching year not more than 50 years ahead of now (RFC 9110).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use torsion_web::proto::parse_http_date;
///
/// let t = Some(UNIX_EPOCH + Duration::from_secs(784_111_777));
/// assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), t);
/// assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), t);
/// assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), t);
/// assert_eq!(parse_http_date("yesterday"), None);
/// ```
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let this_year = civil_from_days(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| (d.as_secs() / SECS_PER_DAY as u64) as i64),
    )
    .0;
    parse_http_date_in(s, this_year)
}

/// [`parse_http_date`] with the current year given, for two-digit years.
fn parse_http_date_in(s: &str, this_year: i64) -> Option<SystemTime> {
    let b = s.trim_matches(|c| c == ' ' || c == '\t').as_bytes();
    let (year, month, day, time) = if b.get(3) == Some(&b',') {
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
        if b.len() != 29 || &b[4..5] != b" " || b[7] != b' ' || b[11] != b' ' || b[16] != b' ' {
            return None;
        }
        short_day(&b[..3])?;
        if &b[25..] != b" GMT" {
            return None;
        }
        (
            digits(&b[12..16])?,
            month(&b[8..11])?,
            digits(&b[5..7])?,
            &b[17..25],
        )
    } else if let Some(comma) = b.iter().position(|&c| c == b',') {
        // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
        if !LONG_DAYS.iter().any(|d| d.as_bytes() == &b[..comma]) {
            return None;
        }
        let r = &b[comma + 1..];
        if r.len() != 23 || r[0] != b' ' || r[3] != b'-' || r[7] != b'-' || r[10] != b' ' {
            return None;
        }
        if &r[19..] != b" GMT" {
            return None;
        }
        let yy = digits(&r[8..10])?;
        (
            two_digit_year(yy, this_year),
            month(&r[4..7])?,
            digits(&r[1..3])?,
            &r[11..19],
        )
    } else {
        // asctime: "Sun Nov  6 08:49:37 1994"
        if b.len() != 24 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[19] != b' ' {
            return None;
        }
        short_day(&b[..3])?;
        let day = match b[8] {
            b' ' => digits(&b[9..10])?,
            _ => digits(&b[8..10])?,
        };
        (digits(&b[20..24])?, month(&b[4..7])?, day, &b[11..19])
    };
    if time[2] != b':' || time[5] != b':' {
        return None;
    }
    let (h, m, sec) = (
        digits(&time[..2])?,
        digits(&time[3..5])?,
        digits(&time[6..8])?,
    );
    // A leap second (60) is accepted and lands on the next minute.
    if day < 1 || day > days_in_month(year, month) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * SECS_PER_DAY + h * 3600 + m * 60 + sec;
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

/// RFC 9110: a two-digit year more than 50 years in the future means the most recent past
/// year with those digits.
fn two_digit_year(yy: i64, this_year: i64) -> i64 {
    let century = this_year - this_year.rem_euclid(100);
    let year = century + yy;
    if year + 100 <= this_year + 50 {
        year + 100
    } else if year > this_year + 50 {
        year - 100
    } else {
        year
    }
}

/// All ASCII digits, as a number.
fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

fn short_day(b: &[u8]) -> Option<usize> {
    DAYS.iter().position(|d| d.as_bytes() == b)
}

/// 1 for January to 12 for December.
fn month(b: &[u8]) -> Option<i64> {
    MONTHS
        .iter()
        .position(|m| m.as_bytes() == b)
        .map(|i| i as i64 + 1)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12, day 1..=31).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12; // March is 0
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian `(year, month, day)` of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> SystemTime {
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    }

    #[test]
    fn known_values() {
        for (secs, text) in [
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_234_567_890, "Fri, 13 Feb 2009 23:31:30 GMT"),
            (2_147_483_647, "Tue, 19 Jan 2038 03:14:07 GMT"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
            (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (-1, "Wed, 31 Dec 1969 23:59:59 GMT"),
            (-2_208_988_800, "Mon, 01 Jan 1900 00:00:00 GMT"),
        ] {
            assert_eq!(http_date(at(secs)), text, "{secs}");
            assert_eq!(parse_http_date(text), Some(at(secs)), "{text}");
        }
    }

    #[test]
    fn years_past_9999_are_formatted_but_not_parsed() {
        let text = http_date(at(253_402_300_800));
        assert_eq!(text, "Sat, 01 Jan 10000 00:00:00 GMT");
        assert_eq!(parse_http_date(&text), None);
        assert_eq!(
            http_date(at(-62_135_596_800)),
            "Mon, 01 Jan 0001 00:00:00 GMT"
        );
    }

    #[test]
    fn fractions_round_down() {
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_millis(784_111_777_999)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            http_date(UNIX_EPOCH - Duration::from_millis(500)),
            "Wed, 31 Dec 1969 23:59:59 GMT"
        );
    }

    #[test]
    fn round_trip_across_centuries() {
        let mut secs = -2_208_988_800i64; // 1900
        while secs < 253_402_300_799 {
            let t = at(secs);
            assert_eq!(parse_http_date(&http_date(t)), Some(t), "{secs}");
            secs += 7_777_777 + secs.rem_euclid(86_399);
        }
    }

    #[test]
    fn civil_round_trip_every_day() {
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn obsolete_forms() {
        let t = Some(at(784_111_777));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), t);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), t);
        assert_eq!(parse_http_date("Sun Nov 06 08:49:37 1994"), t);
        assert_eq!(parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT "), t);
        assert_eq!(
            parse_http_date("Thu Feb 29 12:00:00 2024"),
            Some(at(1_709_208_000))
        );
    }

    #[test]
    fn two_digit_years() {
        let t = |s: &str, year| parse_http_date_in(s, year).map(http_date);
        let s = "Sunday, 06-Nov-94 08:49:37 GMT";
        assert_eq!(t(s, 2026).as_deref(), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
        let s = "Monday, 06-Nov-28 08:49:37 GMT";
        assert_eq!(t(s, 2026).as_deref(), Some("Mon, 06 Nov 2028 08:49:37 GMT"));
        assert_eq!(two_digit_year(76, 2026), 2076);
        assert_eq!(two_digit_year(77, 2026), 1977);
        assert_eq!(two_digit_year(0, 2026), 2000);
        assert_eq!(two_digit_year(99, 2060), 2099);
        assert_eq!(two_digit_year(10, 2099), 2110);
    }

    #[test]
    fn leap_second_is_accepted() {
        assert_eq!(
            parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT"),
            parse_http_date("Sun, 01 Jan 2017 00:00:00 GMT")
        );
    }

    #[test]
    fn a_leap_second_at_the_end_of_9999_lands_in_a_year_no_http_date_writes() {
        // Found by the web_fields fuzz target: the one parsed date that does not format back
        // to a date that parses (Twisted's stringToDatetime gives the same instant).
        let t = parse_http_date("Fri, 31 Dec 9999 23:59:60 GMT");
        assert_eq!(t, Some(at(253_402_300_800)));
        let text = http_date(t.unwrap());
        assert_eq!(text, "Sat, 01 Jan 10000 00:00:00 GMT");
        assert_eq!(parse_http_date(&text), None);
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT ",
            "Sun, 06 Nov 1994 08:49:37 GMTX",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 31 Apr 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun, 06 Nov 1994 08-49-37 GMT",
            "Sun, 06 Nov +994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT\0",
            "Sun, 06 Nov 1994 08:49:37 GMT, extra",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sundae, 06-Nov-94 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 94",
            "Sun Nov   6 08:49:37 1994",
            "Sun Nov 6 08:49:37 1994",
            "Sun Nov  6 08:49:37 1994 GMT",
            "1994-11-06T08:49:37Z",
            "Sun, 06 Nov 1994 08:49:37 GMT".get(..28).unwrap(),
            "Søn, 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }
}
