//! The SQLite backend (rusqlite, SQLite compiled in).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Statement;

use crate::backend::Connection;
use crate::row::Row;
use crate::value::{parameter_count_error, Value};
use crate::DbError;

/// How long a connection waits for another connection's write lock before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 64;

pub(crate) struct Sqlite {
    conn: rusqlite::Connection,
}

/// Opens a file (`Some`) or a private in-memory database (`None`).
pub(crate) fn connect(path: Option<&Path>) -> Result<Sqlite, DbError> {
    let connect_error = |e: rusqlite::Error| DbError::Connect {
        backend: "sqlite",
        message: match path {
            Some(p) => format!("{}: {e}", p.display()),
            None => e.to_string(),
        },
    };
    let conn = match path {
        Some(p) => rusqlite::Connection::open(p),
        None => rusqlite::Connection::open_in_memory(),
    }
    .map_err(connect_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(connect_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if path.is_some() {
        // WAL: readers do not block the writer nor the writer readers, across connections.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(connect_error)?;
        conn.execute_batch("PRAGMA synchronous=NORMAL")
            .map_err(connect_error)?;
    }
    conn.execute_batch("PRAGMA foreign_keys=ON")
        .map_err(connect_error)?;
    Ok(Sqlite { conn })
}

fn sql_error(e: rusqlite::Error) -> DbError {
    match e {
        rusqlite::Error::SqliteFailure(err, message) => DbError::Sql {
            message: message.unwrap_or_else(|| err.to_string()),
            code: Some(format!("{:?}", err.code)),
        },
        // `bundled` brings `modern_sqlite`, which reports syntax errors with their place.
        rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        } => DbError::Sql {
            message: format!("{msg} (at byte {offset})"),
            code: Some(format!("{:?}", error.code)),
        },
        other => DbError::Sql {
            code: other.sqlite_error_code().map(|c| format!("{c:?}")),
            message: other.to_string(),
        },
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Integer(i64::from(*b)),
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Float(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

/// Binds `params` to `stmt`: `?` in order, `?N` and `$N` by number. Named placeholders
/// (`:name`, `@name`, `$name`) are refused: the other backend has none.
fn bind(stmt: &mut Statement<'_>, params: &[Value]) -> Result<(), DbError> {
    let count = stmt.parameter_count();
    let mut highest = 0;
    for i in 1..=count {
        let n = match stmt.parameter_name(i) {
            None => i,
            Some(name) => name[1..]
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1 && (name.starts_with('?') || name.starts_with('$')))
                .ok_or_else(|| DbError::Parameters {
                    message: format!("named placeholder {name} is not supported; use $1, $2, ..."),
                })?,
        };
        highest = highest.max(n);
        let value = params
            .get(n - 1)
            .ok_or_else(|| parameter_count_error(n.max(count), params.len()))?;
        stmt.raw_bind_parameter(i, value).map_err(sql_error)?;
    }
    if highest != params.len() {
        return Err(parameter_count_error(highest, params.len()));
    }
    Ok(())
}

fn to_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        // SQLite does not check that text is UTF-8; keep the bytes if it is not.
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => Value::Bytes(t.to_vec()),
        },
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

impl Connection for Sqlite {
    fn begin(&mut self) -> Result<(), DbError> {
        // IMMEDIATE takes the write lock at once: a transaction that reads then writes can
        // not fail half-way with SQLITE_BUSY (the busy timeout applies to BEGIN instead).
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sql_error)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.conn.execute_batch("COMMIT").map_err(sql_error)
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        if self.conn.is_autocommit() {
            return Ok(()); // SQLite already rolled back (some errors do that)
        }
        self.conn.execute_batch("ROLLBACK").map_err(sql_error)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(sql_error)?;
        bind(&mut stmt, params)?;
        let columns: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let width = columns.len();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sql_error)? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(to_value(row.get_ref(i).map_err(sql_error)?));
            }
            out.push(Row::new(columns.clone(), values));
        }
        Ok(out)
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(sql_error)?;
        bind(&mut stmt, params)?;
        if stmt.column_count() > 0 {
            // A statement that returns rows (a SELECT, a PRAGMA): run it, drop the rows.
            let mut rows = stmt.raw_query();
            while rows.next().map_err(sql_error)?.is_some() {}
            return Ok(0);
        }
        stmt.raw_execute().map(|n| n as u64).map_err(sql_error)
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(sql).map_err(sql_error)
    }

    fn is_broken(&self) -> bool {
        false
    }
}
