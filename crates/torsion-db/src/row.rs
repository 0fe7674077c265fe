//! [`Row`]: one row of a query's result, read by column index or name into Rust types.

use std::sync::Arc;

use crate::value::{FromValue, Value};
use crate::DbError;

/// One row of a result. Column names are shared by all rows of a result.
///
/// ```
/// use torsion_db::{Row, Value};
///
/// let row = Row::new(
///     vec!["name".to_string(), "score".to_string()].into(),
///     vec![Value::Text("alice".into()), Value::Int(7)],
/// );
/// assert_eq!(row.get::<String>("name").unwrap(), "alice");
/// assert_eq!(row.get::<i64>(1).unwrap(), 7);
/// assert!(row.get::<i64>("name").is_err()); // a clear type error
/// assert!(row.get::<i64>("age").is_err());  // no such column
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

/// How a column is named in [`Row::get`]: by index (`0`) or by name (`"score"`).
pub trait ColumnIndex {
    /// The column's position in `row`.
    fn position(&self, row: &Row) -> Result<usize, DbError>;
}

impl ColumnIndex for usize {
    fn position(&self, row: &Row) -> Result<usize, DbError> {
        if *self < row.values.len() {
            Ok(*self)
        } else {
            Err(DbError::IndexOutOfRange {
                index: *self,
                columns: row.values.len(),
            })
        }
    }
}

impl ColumnIndex for &str {
    fn position(&self, row: &Row) -> Result<usize, DbError> {
        row.columns
            .iter()
            .position(|c| c == self)
            .ok_or_else(|| DbError::NoSuchColumn((*self).to_owned()))
    }
}

impl ColumnIndex for &String {
    fn position(&self, row: &Row) -> Result<usize, DbError> {
        self.as_str().position(row)
    }
}

impl Row {
    /// A row of `values` under `columns` (the backends make these; tests may too).
    pub fn new(columns: Arc<[String]>, values: Vec<Value>) -> Row {
        debug_assert_eq!(columns.len(), values.len());
        Row { columns, values }
    }

    /// The column `index` (a position or a name) converted to `T`; a clear [`DbError`]
    /// (`NoSuchColumn`, `IndexOutOfRange`, `Type`) when it cannot be.
    pub fn get<T: FromValue>(&self, index: impl ColumnIndex) -> Result<T, DbError> {
        let i = index.position(self)?;
        T::from_value(&self.values[i]).map_err(|found| DbError::Type {
            column: self.column_label(i),
            expected: std::any::type_name::<T>(),
            found,
        })
    }

    /// The whole row as a tuple, column by column (`(String, i64)` for two columns); the
    /// tuple must have as many elements as the row has columns.
    ///
    /// ```
    /// use torsion_db::{Row, Value};
    ///
    /// let row = Row::new(
    ///     vec!["name".to_string(), "best".to_string()].into(),
    ///     vec![Value::Text("ann".into()), Value::Int(4)],
    /// );
    /// let (name, best): (String, u32) = row.decode().unwrap();
    /// assert_eq!((name.as_str(), best), ("ann", 4));
    /// assert!(row.decode::<(String,)>().is_err()); // two columns, not one
    /// ```
    pub fn decode<T: FromRow>(&self) -> Result<T, DbError> {
        T::from_row(self)
    }

    /// The raw value of the column `index`.
    pub fn value(&self, index: impl ColumnIndex) -> Result<&Value, DbError> {
        Ok(&self.values[index.position(self)?])
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the values out.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// How many columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True for a row of no columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn column_label(&self, i: usize) -> String {
        match self.columns.get(i) {
            Some(name) if !name.is_empty() => format!("{name:?} ({i})"),
            _ => format!("{i}"),
        }
    }
}

/// A tuple a whole [`Row`] converts into ([`Row::decode`]).
pub trait FromRow: Sized {
    /// Converts `row`, column by column.
    fn from_row(row: &Row) -> Result<Self, DbError>;
}

macro_rules! tuple_from_row {
    ($n:expr; $($t:ident $i:tt),+) => {
        impl<$($t: FromValue),+> FromRow for ($($t,)+) {
            fn from_row(row: &Row) -> Result<Self, DbError> {
                if row.len() != $n {
                    return Err(DbError::Type {
                        column: "(the whole row)".to_owned(),
                        expected: std::any::type_name::<Self>(),
                        found: format!("{} columns", row.len()),
                    });
                }
                Ok(($(row.get::<$t>($i)?,)+))
            }
        }
    };
}
tuple_from_row!(1; A 0);
tuple_from_row!(2; A 0, B 1);
tuple_from_row!(3; A 0, B 1, C 2);
tuple_from_row!(4; A 0, B 1, C 2, D 3);
tuple_from_row!(5; A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(6; A 0, B 1, C 2, D 3, E 4, F 5);
tuple_from_row!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_from_row!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
