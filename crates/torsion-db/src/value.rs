//! [`Value`]: a database value that crosses threads, the conversions from Rust values
//! (parameters, [`Params`]) and into Rust values ([`FromValue`]).

use crate::DbError;

/// One value of a row or a parameter, in the types SQLite and PostgreSQL share.
///
/// Parameters convert from Rust values with `From` (`5`, `"alice"`, `None::<i64>`); columns
/// convert into Rust values with [`FromValue`] (see [`Row::get`](crate::Row::get)).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// SQL `NULL`.
    #[default]
    Null,
    /// A boolean (SQLite stores it as an integer 0 or 1).
    Bool(bool),
    /// An integer (PostgreSQL `smallint`, `integer`, `bigint`, `oid`).
    Int(i64),
    /// A floating-point number (PostgreSQL `real`, `double precision`).
    Float(f64),
    /// Text (PostgreSQL `text`, `varchar`, `char`, `name`).
    Text(String),
    /// Bytes (SQLite `BLOB`, PostgreSQL `bytea`).
    Bytes(Vec<u8>),
}

impl Value {
    /// The name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
        }
    }

    /// True for `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(f64::from(v))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// The parameters of a statement: `()` for none, a tuple of values (`("alice", 7)`), an
/// array (`[1, 2, 3]`) or a `Vec<Value>`. They are converted on the calling thread and sent
/// to the pool's worker.
///
/// Placeholders are written `$1`, `$2`, ... (or `?1`, `?2`) in both backends; SQLite also
/// takes plain `?` (in order).
pub trait Params {
    /// The values, in placeholder order.
    fn into_values(self) -> Vec<Value>;
}

impl Params for () {
    fn into_values(self) -> Vec<Value> {
        Vec::new()
    }
}

impl Params for Vec<Value> {
    fn into_values(self) -> Vec<Value> {
        self
    }
}

impl Params for &[Value] {
    fn into_values(self) -> Vec<Value> {
        self.to_vec()
    }
}

impl<T: Into<Value>, const N: usize> Params for [T; N] {
    fn into_values(self) -> Vec<Value> {
        self.into_iter().map(Into::into).collect()
    }
}

macro_rules! tuple_params {
    ($($name:ident),+) => {
        impl<$($name: Into<Value>),+> Params for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_values(self) -> Vec<Value> {
                let ($($name,)+) = self;
                vec![$($name.into()),+]
            }
        }
    };
}
tuple_params!(A);
tuple_params!(A, B);
tuple_params!(A, B, C);
tuple_params!(A, B, C, D);
tuple_params!(A, B, C, D, E);
tuple_params!(A, B, C, D, E, F);
tuple_params!(A, B, C, D, E, F, G);
tuple_params!(A, B, C, D, E, F, G, H);

/// A Rust type a column converts into (see [`Row::get`](crate::Row::get)). Integers are
/// range-checked, `bool` also accepts SQLite's 0 and 1, `f64` accepts integers, and
/// `Option<T>` turns `NULL` into `None` (any other type refuses `NULL`).
pub trait FromValue: Sized {
    /// Converts `value`; on a mismatch, returns what `value` was, for the error message.
    fn from_value(value: &Value) -> Result<Self, String>;
}

/// The mismatch message for `value`.
fn found(value: &Value) -> String {
    match value {
        Value::Int(i) => format!("integer {i}"),
        other => other.kind().to_owned(),
    }
}

macro_rules! to_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<$t, String> {
                match value {
                    Value::Int(i) => <$t>::try_from(*i).map_err(|_| found(value)),
                    other => Err(found(other)),
                }
            }
        }
    )*};
}
to_int!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<bool, String> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => Err(found(other)),
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<f64, String> {
        match value {
            Value::Float(f) => Ok(*f),
            // Integers above 2^53 lose precision, as they do in SQL's own casts.
            Value::Int(i) => Ok(*i as f64),
            other => Err(found(other)),
        }
    }
}

impl FromValue for f32 {
    fn from_value(value: &Value) -> Result<f32, String> {
        f64::from_value(value).map(|f| f as f32)
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<String, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => Err(found(other)),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Vec<u8>, String> {
        match value {
            Value::Bytes(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(found(other)),
        }
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Value, String> {
        Ok(value.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Option<T>, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Binds nothing; keeps [`DbError`] in this module's vocabulary for the backends.
pub(crate) fn parameter_count_error(wanted: usize, given: usize) -> DbError {
    DbError::Parameters {
        message: format!("the statement takes {wanted} parameters, {given} given"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_convert() {
        assert_eq!(
            ("a", 1, None::<i64>, 2.5, true).into_values(),
            vec![
                Value::Text("a".into()),
                Value::Int(1),
                Value::Null,
                Value::Float(2.5),
                Value::Bool(true)
            ]
        );
        assert!(().into_values().is_empty());
        assert_eq!([1u8, 2].into_values(), vec![Value::Int(1), Value::Int(2)]);
    }

    #[test]
    fn values_convert_with_range_checks() {
        assert_eq!(i64::from_value(&Value::Int(5)), Ok(5));
        assert_eq!(u8::from_value(&Value::Int(300)), Err("integer 300".into()));
        assert_eq!(u32::from_value(&Value::Int(-1)), Err("integer -1".into()));
        assert_eq!(bool::from_value(&Value::Int(1)), Ok(true));
        assert!(bool::from_value(&Value::Int(2)).is_err());
        assert_eq!(f64::from_value(&Value::Int(2)), Ok(2.0));
        assert_eq!(String::from_value(&Value::Null), Err("null".into()));
        assert_eq!(Option::<String>::from_value(&Value::Null), Ok(None));
        assert_eq!(
            Option::<i64>::from_value(&Value::Text("x".into())),
            Err("text".into())
        );
    }
}
