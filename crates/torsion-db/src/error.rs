//! [`DbError`]: everything that can go wrong between a query and its rows.

use std::fmt;

/// Why a database call failed. Carried by the [`Failure`](torsion::Failure) of a pool's
/// Deferreds: `failure.downcast_ref::<DbError>()` (or `failure.trap::<DbError>()` in an
/// errback) gets it back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbError {
    /// The connection string names no known backend, or is malformed.
    InvalidConnectionString {
        /// What was wrong.
        reason: String,
    },
    /// The database could not be reached or opened (the next call tries again).
    Connect {
        /// The backend's name (`"sqlite"`, `"postgres"`).
        backend: &'static str,
        /// The driver's message.
        message: String,
    },
    /// The database rejected a statement: a syntax error, a constraint, a missing table...
    Sql {
        /// The database's message.
        message: String,
        /// The error code, when the database gives one (a PostgreSQL SQLSTATE such as
        /// `"23505"`, or SQLite's primary result code name such as `"ConstraintViolation"`).
        code: Option<String>,
    },
    /// The parameters do not fit the statement (wrong count, unsupported placeholder, a
    /// value the column type cannot hold).
    Parameters {
        /// What did not fit.
        message: String,
    },
    /// A column's value cannot be converted to the Rust type asked for.
    Type {
        /// The column, by name (or index when it has none).
        column: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// What the column holds.
        found: String,
    },
    /// A column of a type this crate does not convert (cast it in SQL, e.g. `x::text`).
    UnsupportedType {
        /// The column's name.
        column: String,
        /// The database's name for its type.
        type_name: String,
    },
    /// No column of that name in the row.
    NoSuchColumn(String),
    /// A column index past the row's end.
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// How many columns the row has.
        columns: usize,
    },
    /// The connection to the database dropped during the call. The call failed (it is not
    /// retried: it may have run); the worker reconnects for the next one (Twisted's
    /// `cp_reconnect`).
    ConnectionLost {
        /// The driver's message.
        message: String,
    },
    /// The pool has been closed (or is closing) and takes no more work.
    PoolClosed,
    /// The pool's work queue already holds its limit of waiting calls.
    QueueFull {
        /// The queue's limit.
        limit: usize,
    },
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::InvalidConnectionString { reason } => {
                write!(f, "invalid connection string: {reason}")
            }
            DbError::Connect { backend, message } => {
                write!(f, "cannot connect to {backend}: {message}")
            }
            DbError::Sql {
                message,
                code: Some(code),
            } => write!(f, "SQL error [{code}]: {message}"),
            DbError::Sql {
                message,
                code: None,
            } => write!(f, "SQL error: {message}"),
            DbError::Parameters { message } => write!(f, "bad parameters: {message}"),
            DbError::Type {
                column,
                expected,
                found,
            } => write!(f, "column {column}: cannot convert {found} to {expected}"),
            DbError::UnsupportedType { column, type_name } => write!(
                f,
                "column {column}: type {type_name} is not supported (cast it in SQL, e.g. to text)"
            ),
            DbError::NoSuchColumn(name) => write!(f, "no column named {name:?}"),
            DbError::IndexOutOfRange { index, columns } => {
                write!(f, "column index {index} out of range ({columns} columns)")
            }
            DbError::ConnectionLost { message } => {
                write!(f, "database connection lost: {message}")
            }
            DbError::PoolClosed => f.write_str("the connection pool is closed"),
            DbError::QueueFull { limit } => {
                write!(
                    f,
                    "the connection pool's queue is full ({limit} calls waiting)"
                )
            }
        }
    }
}

impl std::error::Error for DbError {}
