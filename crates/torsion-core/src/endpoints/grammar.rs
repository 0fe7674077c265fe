//! The grammar of endpoint strings (Twisted's `_tokenize` and `_parse`): what can be wrong
//! with one, splitting it into arguments, binding them to a kind's parameters, and writing
//! a description back.

use std::fmt;
use std::str::FromStr;

/// What is wrong with an endpoint string; its [`Display`](fmt::Display) names the part.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// The string is empty.
    Empty,
    /// A bare port number such as `8080`; write `tcp:8080`.
    BarePort(String),
    /// The kind (the part before the first colon) is not one Torsion knows.
    UnknownType {
        /// The kind as written.
        kind: String,
        /// `"server"` or `"client"`.
        side: &'static str,
    },
    /// A required argument is missing.
    MissingArgument {
        /// The endpoint kind.
        kind: &'static str,
        /// The missing argument's name.
        name: &'static str,
    },
    /// An argument that must be a number is not one (or is out of range).
    BadNumber {
        /// The argument's name.
        name: &'static str,
        /// The value as written.
        value: String,
    },
    /// An argument has a value outside its allowed set.
    BadValue {
        /// The argument's name.
        name: &'static str,
        /// The value as written.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// A keyword the endpoint kind does not take.
    UnknownKeyword {
        /// The endpoint kind.
        kind: &'static str,
        /// The keyword as written.
        keyword: String,
        /// The keywords the kind takes.
        expected: &'static [&'static str],
    },
    /// More positional arguments than the kind has parameters.
    TooManyArguments {
        /// The endpoint kind.
        kind: &'static str,
        /// The first extra argument.
        extra: String,
    },
    /// The same parameter was given twice (positionally and by keyword, or two keywords).
    DuplicateArgument {
        /// The endpoint kind.
        kind: &'static str,
        /// The parameter's name.
        name: &'static str,
    },
    /// The string ends with a lone backslash.
    UnterminatedEscape {
        /// The byte offset of the backslash.
        position: usize,
    },
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Empty => write!(f, "empty endpoint description"),
            EndpointError::BarePort(p) => write!(
                f,
                "bare port number '{p}' is not an endpoint description; write 'tcp:{p}'"
            ),
            EndpointError::UnknownType { kind, side } => {
                write!(f, "unknown {side} endpoint type '{kind}'")
            }
            EndpointError::MissingArgument { kind, name } => {
                write!(f, "missing {name} for a {kind} endpoint")
            }
            EndpointError::BadNumber { name, value } => {
                write!(f, "bad number in '{name}={value}'")
            }
            EndpointError::BadValue {
                name,
                value,
                expected,
            } => write!(f, "bad value in '{name}={value}' (expected {expected})"),
            EndpointError::UnknownKeyword {
                kind,
                keyword,
                expected,
            } => write!(
                f,
                "unknown keyword '{keyword}' for a {kind} endpoint (expected {})",
                expected.join(", ")
            ),
            EndpointError::TooManyArguments { kind, extra } => {
                write!(
                    f,
                    "too many arguments for a {kind} endpoint, from '{extra}'"
                )
            }
            EndpointError::DuplicateArgument { kind, name } => {
                write!(f, "{name} given more than once for a {kind} endpoint")
            }
            EndpointError::UnterminatedEscape { position } => {
                write!(
                    f,
                    "unterminated escape: backslash at the end (offset {position})"
                )
            }
        }
    }
}

impl std::error::Error for EndpointError {}

/// Keyword arguments in the order written: `(keyword, value)` pairs.
pub type KeywordArgs = Vec<(String, String)>;

/// The positional and keyword arguments of an endpoint string, kind first (Twisted's
/// `_parse`): `"tcp:80:interface=\:\:1"` gives `(["tcp", "80"], [("interface", "::1")])`.
/// After a `=`, only a `:` ends the value, so `a=b=c` is `a` = `b=c`.
///
/// # Errors
/// [`EndpointError::UnterminatedEscape`] for a trailing lone backslash.
pub fn parse_args(s: &str) -> Result<(Vec<String>, KeywordArgs), EndpointError> {
    let mut args = Vec::new();
    let mut kw = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut equals_allowed = true;
    let mut chars = s.char_indices();
    let mut add = |parts: &mut Vec<String>| {
        let mut p = std::mem::take(parts).into_iter();
        match (p.next(), p.next()) {
            (Some(a), None) => args.push(a),
            (Some(k), Some(v)) => kw.push((k, v)),
            _ => {}
        }
    };
    while let Some((i, c)) = chars.next() {
        match c {
            ':' => {
                parts.push(std::mem::take(&mut current));
                add(&mut parts);
                equals_allowed = true;
            }
            '=' if equals_allowed => {
                parts.push(std::mem::take(&mut current));
                equals_allowed = false;
            }
            '\\' => match chars.next() {
                Some((_, n)) => current.push(n),
                None => return Err(EndpointError::UnterminatedEscape { position: i }),
            },
            c => current.push(c),
        }
    }
    parts.push(current);
    add(&mut parts);
    Ok((args, kw))
}

/// Escapes `\`, `:` and `=` so a value reads back as itself.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ':' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Parameters Twisted does not have: only given by keyword.
const KEYWORD_ONLY: &[&str] = &["handshakeTimeout", "sendTimeout"];

/// Arguments bound to a kind's parameters, by Python's call rules.
pub(super) struct Bound {
    kind: &'static str,
    values: Vec<(&'static str, String)>,
}

impl Bound {
    pub(super) fn bind(
        kind: &'static str,
        params: &'static [&'static str],
        args: Vec<String>,
        kw: Vec<(String, String)>,
    ) -> Result<Bound, EndpointError> {
        // Torsion's own parameters come last and are keyword-only, so Twisted's positional
        // forms read (and fail) as they do in Twisted.
        let positional = params
            .iter()
            .take_while(|p| !KEYWORD_ONLY.contains(p))
            .count();
        if args.len() > positional {
            return Err(EndpointError::TooManyArguments {
                kind,
                extra: args[positional].clone(),
            });
        }
        let mut values: Vec<(&'static str, String)> = params.iter().copied().zip(args).collect();
        for (k, v) in kw {
            let Some(name) = params.iter().copied().find(|p| *p == k) else {
                return Err(EndpointError::UnknownKeyword {
                    kind,
                    keyword: k,
                    expected: params,
                });
            };
            if values.iter().any(|(n, _)| *n == name) {
                return Err(EndpointError::DuplicateArgument { kind, name });
            }
            values.push((name, v));
        }
        Ok(Bound { kind, values })
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn required(&self, name: &'static str) -> Result<&str, EndpointError> {
        self.get(name).ok_or(EndpointError::MissingArgument {
            kind: self.kind,
            name,
        })
    }

    pub(super) fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    fn number<N: FromStr>(&self, name: &'static str, value: &str) -> Result<N, EndpointError> {
        value.trim().parse().map_err(|_| EndpointError::BadNumber {
            name,
            value: value.to_owned(),
        })
    }

    pub(super) fn required_number<N: FromStr>(
        &self,
        name: &'static str,
    ) -> Result<N, EndpointError> {
        let v = self.required(name)?;
        self.number(name, v)
    }

    pub(super) fn number_or<N: FromStr>(
        &self,
        name: &'static str,
        default: N,
    ) -> Result<N, EndpointError> {
        match self.get(name) {
            Some(v) => self.number(name, v),
            None => Ok(default),
        }
    }

    pub(super) fn seconds_or(
        &self,
        name: &'static str,
        default: f64,
    ) -> Result<f64, EndpointError> {
        let t: f64 = self.number_or(name, default)?;
        if t.is_finite() && t >= 0.0 {
            Ok(t)
        } else {
            Err(EndpointError::BadNumber {
                name,
                value: self.get(name).unwrap_or_default().to_owned(),
            })
        }
    }

    /// Twisted's `bool(int(value))`.
    pub(super) fn flag_or(&self, name: &'static str, default: bool) -> Result<bool, EndpointError> {
        Ok(self.number_or::<i64>(name, i64::from(default))? != 0)
    }
}

/// The rest of `s` after `kind:` (the kind matched case-insensitively), for kinds that wrap
/// a whole other endpoint string.
pub(super) fn strip_kind<'a>(s: &'a str, kind: &str) -> Option<&'a str> {
    let head = s.get(..=kind.len())?;
    (head[..kind.len()].eq_ignore_ascii_case(kind) && head.ends_with(':'))
        .then(|| &s[kind.len() + 1..])
}

pub(super) fn split_kind(
    s: &str,
    side: &'static str,
) -> Result<(String, Vec<String>, KeywordArgs), EndpointError> {
    if s.is_empty() {
        return Err(EndpointError::Empty);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EndpointError::BarePort(s.to_owned()));
    }
    let (mut args, kw) = parse_args(s)?;
    if args.is_empty() {
        // "port=80": the first part was a keyword, so there is no kind.
        return Err(EndpointError::UnknownType {
            kind: s.split(':').next().unwrap_or_default().to_owned(),
            side,
        });
    }
    let kind = args.remove(0);
    Ok((kind.to_ascii_lowercase(), args, kw))
}

/// Writes `kind:first:key=value...`, leaving defaults out.
pub(super) struct Writer<'a, 'b> {
    pub(super) f: &'a mut fmt::Formatter<'b>,
}

impl Writer<'_, '_> {
    pub(super) fn pos(&mut self, v: impl fmt::Display) -> fmt::Result {
        write!(self.f, ":{}", escape(&v.to_string()))
    }
    pub(super) fn kw(&mut self, k: &str, v: impl fmt::Display) -> fmt::Result {
        write!(self.f, ":{k}={}", escape(&v.to_string()))
    }
    pub(super) fn opt(&mut self, k: &str, v: &Option<String>) -> fmt::Result {
        match v {
            Some(v) => self.kw(k, v),
            None => Ok(()),
        }
    }
}
