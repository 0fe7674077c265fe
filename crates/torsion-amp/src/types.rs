//! Argument types: how a Rust value is written as an AMP value, as Twisted's `amp.Argument`
//! subclasses write theirs, and [`Record`], a set of named values (a command's arguments,
//! its response, an [`AmpList`] element).
//!
//! | Twisted | Rust |
//! |---|---|
//! | `Integer` | `i64` (and `i32`, `u32`, `u64`, `i128`, `u128`, `usize`) |
//! | `String` | `Vec<u8>` |
//! | `Unicode` | `String` |
//! | `Boolean` | `bool` |
//! | `Float` | `f64` (`nan`, `inf`, `-inf` as Python writes them) |
//! | `Decimal` | [`Decimal`] |
//! | `DateTime` | [`DateTime`] |
//! | `ListOf(T)` | `Vec<T>` |
//! | `AmpList([...])` | [`AmpList<R>`] of a [`record!`](crate::record) type |
//! | `optional=True` | `Option<T>` |
//! | a custom `Argument` | your type implementing [`Argument`] |
//!
//! ```
//! use torsion_amp::types::{Argument, Decimal};
//!
//! assert_eq!(1.5f64.to_wire().unwrap(), b"1.5");
//! assert_eq!(1e16f64.to_wire().unwrap(), b"1e+16"); // Python's repr
//! assert_eq!(f64::NAN.to_wire().unwrap(), b"nan");
//! assert_eq!(Decimal::from_wire(b"1.50").unwrap().to_string(), "1.50");
//! assert_eq!(Vec::<i64>::from_wire(b"\x00\x011\x00\x0223").unwrap(), vec![1, 23]);
//! ```

use std::fmt;
use std::str::FromStr;

use crate::error::AmpError;
use crate::wire::{parse_boxes, AmpBox};

/// A type that travels as one AMP value (Twisted's `IArgumentType`; implement it for an
/// argument type of your own).
///
/// [`to_wire`](Self::to_wire) and [`from_wire`](Self::from_wire) are Twisted's `toString`
/// and `fromString`; [`to_box`](Self::to_box) and [`from_box`](Self::from_box) (`toBox` and
/// `fromBox`) put the value in a box under its name, and are overridden by types that may be
/// absent ([`Option`]), and by types that can put their bytes in the box without making a
/// `Vec` first (integers, strings).
pub trait Argument: Sized {
    /// The value's bytes.
    fn to_wire(&self) -> Result<Vec<u8>, AmpError>;

    /// The value read from its bytes.
    fn from_wire(bytes: &[u8]) -> Result<Self, AmpError>;

    /// Puts the value in `b` under `name`.
    fn to_box(&self, name: &str, b: &mut AmpBox) -> Result<(), AmpError> {
        let v = self.to_wire().map_err(|e| e.with_key(name.as_bytes()))?;
        b.insert(name, v);
        Ok(())
    }

    /// Reads the value under `name` in `b`; missing is an error.
    fn from_box(name: &str, b: &AmpBox) -> Result<Self, AmpError> {
        match b.get(name) {
            Some(v) => Self::from_wire(v).map_err(|e| e.with_key(name.as_bytes())),
            None => Err(AmpError::Missing { key: name.into() }),
        }
    }
}

fn ascii(bytes: &[u8]) -> Result<&str, AmpError> {
    std::str::from_utf8(bytes).map_err(|e| AmpError::bad_value("", e))
}

/// Python's `int()` of bytes: surrounding whitespace, a sign, `_` between digits.
fn py_int<T: FromStr + TryFrom<i64>>(bytes: &[u8]) -> Result<T, AmpError>
where
    <T as FromStr>::Err: fmt::Display,
{
    // What Python's `str(int)` writes, 18 digits at most (no overflow), read at once.
    if let Some(Ok(n)) = plain_decimal(bytes).map(T::try_from) {
        return Ok(n);
    }
    let s = ascii(bytes)?.trim_matches(|c: char| c.is_ascii_whitespace());
    let cleaned;
    let s = if s.contains('_') {
        if s.starts_with('_') || s.ends_with('_') || s.contains("__") {
            return Err(AmpError::bad_value("", format!("not an integer: {s:?}")));
        }
        cleaned = s.replace('_', "");
        cleaned.as_str()
    } else {
        s
    };
    s.parse::<T>()
        .map_err(|e| AmpError::bad_value("", format!("{e}: {s:?}")))
}

/// `n` in decimal, negative if asked, at the end of `buf` (20 digits and a sign at most).
fn decimal(mut n: u64, negative: bool, buf: &mut [u8; 21]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// An optional `-` and 1 to 18 ASCII digits, as a number; `None` for anything else.
fn plain_decimal(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(if negative { -n } else { n })
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Argument for $t {
            fn to_wire(&self) -> Result<Vec<u8>, AmpError> {
                Ok(self.to_string().into_bytes())
            }
            fn from_wire(bytes: &[u8]) -> Result<Self, AmpError> {
                py_int(bytes)
            }
        }
    )*};
}
integer!(i128, u128);

// The integers that fit in 64 bits are written without a String in between: the commonest
// argument, in every call.
macro_rules! integer64 {
    ($($t:ty),*) => {$(
        impl Argument for $t {
            fn to_wire(&self) -> Result<Vec<u8>, AmpError> {
                Ok(self.digits(&mut [0; 21]).to_vec())
            }
            fn from_wire(bytes: &[u8]) -> Result<Self, AmpError> {
                py_int(bytes)
            }
            fn to_box(&self, name: &str, b: &mut AmpBox) -> Result<(), AmpError> {
                b.insert(name, self.digits(&mut [0; 21]));
                Ok(())
            }
        }

        impl Digits for $t {
            fn digits<'a>(&self, buf: &'a mut [u8; 21]) -> &'a [u8] {
                // Lossless: every one of these types fits in an i128.
                let n = *self as i128;
                decimal(n.unsigned_abs() as u64, n < 0, buf)
            }
        }
    )*};
}
integer64!(i32, i64, u32, u64, usize);

/// An integer of at most 64 bits in decimal.
trait Digits {
    fn digits<'a>(&self, buf: &'a mut [u8; 21]) -> &'a [u8];
}

/// Twisted's `String`: bytes as they are.
impl Argument for Vec<u8> {
    fn to_wire(&self) -> Result<Vec<u8>, AmpError> {
        Ok(self.clone())
    }
    fn from_wire(bytes: &[u8]) -> Result<Self, AmpError> {
        Ok(bytes.to_vec())
    }
    fn to_box(&self, name: &str, b: &mut AmpBox) -> Result<(), AmpError> {
        b.insert(name, self);
        Ok(())
    }
}

/// Twisted's `Unicode`: UTF-8.
impl Argument for String {
    fn to_wire(&self) -> Result<Vec<u8>, AmpError> {
        Ok(self.as_bytes().to_vec())
    }
    fn from_wire(bytes: &[u8]) -> Result<Self, AmpError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| AmpError::bad_value("", e))
    }
    fn to_box(&self, name: &str, b: &mut AmpBox) -> Result<(), AmpError> {
        b.insert(name, self);
        Ok(())
    }
}

/// Twisted's `Boolean`: `True` or `False`, exactly.
impl Argument for bool {
    fn to_wire(&self) -> Result<Vec<u8>, AmpError> {
        Ok(if *self {
            b"True".to_vec()
        } else {
            b"False".to_vec()
        })
    }
    fn from_wire(bytes: &[u8]) -> Result<Self, AmpError> {
        match bytes {
            b"True" => Ok(true),
            b"False" => Ok(false),
            _ => Err(AmpError::bad_value(
                "",
                format!("bad boolean value: {:?}", String::from_utf8_lossy(bytes)),
            )),
        }
    }
}

/// A float as Python's `repr` writes it: the shortest digits that read back to the same
/// value, positional when the decimal point falls within 16 digits of the first one,
/// otherwise with an exponent of at least two digits (`1e+16`, `1e-05`); `nan`, `inf`,
/// `-inf`.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = format!("{:e}", x.abs()); // shortest round-trip digits: "1.2345e17"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len() as i32;
    let decpt = exp + 1;
    let mut out = String::with_capacity(digits.len() + 8);
    if x < 0.0 {
        out.push('-');
    }
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-decpt) as usize));
            out.push_str(&digits);
        } else if decpt >= n {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (decpt - n) as usize));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exp.abs()));
    }
    out
}

/// Twisted's `Float`: Python's `repr` ([`python_float_repr`]); reads what Python's
/// `float()` reads, but for `_` between digits.
impl Argument for f64 {
    fn to_wire(&self) -> Result<Vec<u8>, AmpError> {
        Ok(python_float_repr(*self).into_bytes())
    }
    fn from_wire(bytes: &[u8]) -> Result<Self, AmpError> {
        let s = ascii(bytes)?.trim_matches(|c: char| c.is_ascii_whitespace());
        s.parse::<f64>()
            .map_err(|e| AmpError::bad_value("", format!("{e}: {s:?}")))
    }
}

/// Twisted's `ListOf`: each element's bytes after a 16-bit big-endian length.
impl<T: Argument> Argument for Vec<T> {
    fn to_wire(&self) -> Result<Vec<u8>, AmpError> {
        let mut out = Vec::new();
        for item in self {
            let bytes = item.to_wire()?;
            let len = u16::try_from(bytes.len()).map_err(|_| {
                AmpError::bad_value("", format!("list element of {} bytes", bytes.len()))
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }
    fn from_wire(mut bytes: &[u8]) -> Result<Self, AmpError> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            if bytes.len() < 2 {
                return Err(AmpError::Truncated);
            }
            let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
            let item = bytes.get(2..2 + len).ok_or(AmpError::Truncated)?;
            out.push(T::from_wire(item)?);
            bytes = &bytes[2 + len..];
        }
        Ok(out)
    }
}

/// An argument Twisted declares `optional=True`: `None` is left out of the box, and a
/// missing key reads as `None`.
impl<T: Argument> Argument for Option<T> {
    fn to_wire(&self) -> Result<Vec<u8>, AmpError> {
        match self {
            Some(v) => v.to_wire(),
            None => Err(AmpError::bad_value("", "None has no AMP value")),
        }
    }
    fn from_wire(bytes: &[u8]) -> Result<Self, AmpError> {
        T::from_wire(bytes).map(Some)
    }
    fn to_box(&self, name: &str, b: &mut AmpBox) -> Result<(), AmpError> {
        match self {
            Some(v) => v.to_box(name, b),
            None => Ok(()),
        }
    }
    fn from_box(name: &str, b: &AmpBox) -> Result<Self, AmpError> {
        match b.get(name) {
            Some(_) => T::from_box(name, b).map(Some),
            None => Ok(None),
        }
    }
}

/// Named values that travel as one box: a command's arguments or response, an element of an
/// [`AmpList`]. Declare one with [`record!`](crate::record).
pub trait Record: Sized {
    /// Puts every field in `b`.
    fn to_box(&self, b: &mut AmpBox) -> Result<(), AmpError>;
    /// Reads every field from `b`; keys it does not know are ignored, as in Twisted.
    fn from_box(b: &AmpBox) -> Result<Self, AmpError>;
}

/// Twisted's `AmpList`: a list of records, each written as a nested box.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AmpList<R>(pub Vec<R>);

impl<R: Record> Argument for AmpList<R> {
    fn to_wire(&self) -> Result<Vec<u8>, AmpError> {
        let mut out = Vec::new();
        for r in &self.0 {
            let mut b = AmpBox::new();
            r.to_box(&mut b)?;
            b.write_to(&mut out)?;
        }
        Ok(out)
    }
    fn from_wire(bytes: &[u8]) -> Result<Self, AmpError> {
        parse_boxes(bytes)?
            .iter()
            .map(R::from_box)
            .collect::<Result<Vec<_>, _>>()
            .map(AmpList)
    }
}

/// A decimal number as Python's `decimal.Decimal` keeps it (Twisted's `Decimal` argument):
/// digits and an exponent, so `1.50` stays `1.50` and `1E+2` stays `1E+2`; infinities and
/// (signalling) NaNs with their payloads. No arithmetic: it reads what Python writes and
/// writes what Python reads, in Python's `str(Decimal)` form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal {
    negative: bool,
    kind: DecimalKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DecimalKind {
    /// Coefficient digits (no leading zeros; "0" for zero) times ten to `exp`.
    Finite {
        digits: String,
        exp: i64,
    },
    Infinity,
    /// Payload digits (no leading zeros; empty for none).
    NaN {
        signaling: bool,
        payload: String,
    },
}

/// A string that is not a decimal number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalParseError(String);

impl fmt::Display for DecimalParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid decimal: {:?}", self.0)
    }
}

impl std::error::Error for DecimalParseError {}

/// Python's decimal limits on 64-bit machines (`MAX_EMAX`, `MIN_ETINY`): the adjusted
/// exponent (of the first digit) at most 999,999,999,999,999,999, the exponent (of the last)
/// at least -1,999,999,999,999,999,997. Python refuses other numbers (`InvalidOperation`),
/// and so does Torsion, so that a Decimal one side can read the other can too.
fn within_python_limits(digits: &str, exp: i64) -> bool {
    let adjusted = i128::from(exp) + digits.len() as i128 - 1;
    adjusted <= 999_999_999_999_999_999 && exp >= -1_999_999_999_999_999_997
}

fn strip_zeros(digits: &str) -> String {
    let t = digits.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

impl Decimal {
    /// `digits × 10^exp`, negative if asked; `digits` must be ASCII digits, and the number
    /// within Python's exponent limits (adjusted exponent ≤ 999,999,999,999,999,999,
    /// `exp` ≥ -1,999,999,999,999,999,997).
    pub fn new(negative: bool, digits: &str, exp: i64) -> Result<Decimal, DecimalParseError> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DecimalParseError(digits.into()));
        }
        let digits = strip_zeros(digits);
        if !within_python_limits(&digits, exp) {
            return Err(DecimalParseError(format!("{digits}E{exp}")));
        }
        Ok(Decimal {
            negative,
            kind: DecimalKind::Finite { digits, exp },
        })
    }

    /// True for a negative number (or negative zero, infinity or NaN).
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// True for a number (not an infinity or a NaN).
    pub fn is_finite(&self) -> bool {
        matches!(self.kind, DecimalKind::Finite { .. })
    }

    /// The coefficient's digits and the exponent of a finite number.
    pub fn parts(&self) -> Option<(&str, i64)> {
        match &self.kind {
            DecimalKind::Finite { digits, exp } => Some((digits, *exp)),
            _ => None,
        }
    }
}

impl From<i64> for Decimal {
    fn from(n: i64) -> Decimal {
        Decimal {
            negative: n < 0,
            kind: DecimalKind::Finite {
                digits: n.unsigned_abs().to_string(),
                exp: 0,
            },
        }
    }
}

impl FromStr for Decimal {
    type Err = DecimalParseError;

    /// Reads what Python's `Decimal(str)` reads: surrounding whitespace, `_` between digits,
    /// `Inf`/`Infinity`/`NaN`/`sNaN` in any case.
    fn from_str(input: &str) -> Result<Decimal, DecimalParseError> {
        let bad = || DecimalParseError(input.into());
        let s = input.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\u{0}');
        let s = if s.contains('_') {
            if s.starts_with('_') || s.ends_with('_') || s.contains("__") {
                return Err(bad());
            }
            s.replace('_', "")
        } else {
            s.to_string()
        };
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, &s[..]),
        };
        let lower = body.to_ascii_lowercase();
        if lower == "inf" || lower == "infinity" {
            return Ok(Decimal {
                negative,
                kind: DecimalKind::Infinity,
            });
        }
        for (prefix, signaling) in [("snan", true), ("nan", false)] {
            if let Some(payload) = lower.strip_prefix(prefix) {
                if !payload.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let payload = payload.trim_start_matches('0').to_string();
                return Ok(Decimal {
                    negative,
                    kind: DecimalKind::NaN { signaling, payload },
                });
            }
        }
        let (mantissa, exp) = match lower.find('e') {
            Some(i) => {
                let e = &lower[i + 1..];
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                (&lower[..i], e.parse::<i64>().map_err(|_| bad())?)
            }
            None => (&lower[..], 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let exp = exp.checked_sub(frac.len() as i64).ok_or_else(bad)?;
        let digits = strip_zeros(&format!("{int}{frac}"));
        if !within_python_limits(&digits, exp) {
            return Err(bad());
        }
        Ok(Decimal {
            negative,
            kind: DecimalKind::Finite { digits, exp },
        })
    }
}

impl fmt::Display for Decimal {
    /// Python's `str(Decimal)` (the specification's to-scientific-string).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        let (digits, exp) = match &self.kind {
            DecimalKind::Infinity => return f.write_str("Infinity"),
            DecimalKind::NaN { signaling, payload } => {
                let s = if *signaling { "sNaN" } else { "NaN" };
                return write!(f, "{s}{payload}");
            }
            DecimalKind::Finite { digits, exp } => (digits.as_str(), *exp),
        };
        // In i128: an exponent near i64's ends (which the parser accepts) plus the digit
        // count would overflow i64.
        let (n, exp) = (digits.len() as i128, i128::from(exp));
        let leftdigits = exp + n;
        let dotplace = if exp <= 0 && leftdigits > -6 {
            leftdigits
        } else {
            1
        };
        if dotplace <= 0 {
            write!(f, "0.{}{digits}", "0".repeat((-dotplace) as usize))?;
        } else if dotplace >= n {
            write!(f, "{digits}{}", "0".repeat((dotplace - n) as usize))?;
        } else {
            let (a, b) = digits.split_at(dotplace as usize);
            write!(f, "{a}.{b}")?;
        }
        if leftdigits != dotplace {
            write!(f, "E{:+}", leftdigits - dotplace)?;
        }
        Ok(())
    }
}

impl Argument for Decimal {
    fn to_wire(&self) -> Result<Vec<u8>, AmpError> {
        Ok(self.to_string().into_bytes())
    }
    fn from_wire(bytes: &[u8]) -> Result<Self, AmpError> {
        ascii(bytes)?
            .parse()
            .map_err(|e| AmpError::bad_value("", e))
    }
}

/// A date and time with a fixed offset from UTC (Twisted's `DateTime` argument), written
/// `YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM`, always 32 characters. As in Twisted, an offset of
/// zero is written `-00:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// 1 to 9,999.
    pub year: u16,
    /// 1 to 12.
    pub month: u8,
    /// 1 to the month's length.
    pub day: u8,
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
    /// 0 to 59.
    pub second: u8,
    /// 0 to 999,999.
    pub microsecond: u32,
    /// Minutes east of UTC, less than a day either way.
    pub offset_minutes: i16,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

impl DateTime {
    /// Checks the fields as Python's `datetime` does.
    pub fn validate(&self) -> Result<(), AmpError> {
        let ok = (1..=9999).contains(&self.year)
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
            && self.microsecond < 1_000_000
            && self.offset_minutes.abs() < 24 * 60;
        if ok {
            Ok(())
        } else {
            Err(AmpError::bad_value(
                "",
                format!("invalid date and time {self:?}"),
            ))
        }
    }
}

impl Argument for DateTime {
    fn to_wire(&self) -> Result<Vec<u8>, AmpError> {
        self.validate()?;
        let sign = if self.offset_minutes > 0 { '+' } else { '-' };
        let off = self.offset_minutes.unsigned_abs();
        Ok(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{sign}{:02}:{:02}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.microsecond,
            off / 60,
            off % 60
        )
        .into_bytes())
    }
    fn from_wire(bytes: &[u8]) -> Result<Self, AmpError> {
        let bad = || {
            AmpError::bad_value(
                "",
                format!("invalid date format {:?}", String::from_utf8_lossy(bytes)),
            )
        };
        if bytes.len() != 32 {
            return Err(bad());
        }
        let num = |from: usize, to: usize| -> Result<u32, AmpError> {
            let part = &bytes[from..to];
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            Ok(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        };
        let sign = match bytes[26] {
            b'+' => 1,
            b'-' => -1,
            _ => return Err(bad()),
        };
        let (tz_h, tz_m) = (num(27, 29)?, num(30, 32)?);
        if tz_m >= 60 {
            return Err(bad());
        }
        let dt = DateTime {
            year: num(0, 4)? as u16,
            month: num(5, 7)? as u8,
            day: num(8, 10)? as u8,
            hour: num(11, 13)? as u8,
            minute: num(14, 16)? as u8,
            second: num(17, 19)? as u8,
            microsecond: num(20, 26)?,
            offset_minutes: sign * (tz_h * 60 + tz_m) as i16,
        };
        dt.validate()?;
        Ok(dt)
    }
}
