//! The PostgreSQL backend (the synchronous `postgres` client, without TLS).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Arc;

use bytes::BytesMut;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, NoTls, Statement};

use crate::backend::Connection;
use crate::row::Row;
use crate::value::{parameter_count_error, Value};
use crate::DbError;

/// How many prepared statements each connection keeps (the cache is emptied when full).
const STATEMENT_CACHE: usize = 64;

pub(crate) struct Pg {
    client: Client,
    /// The server said the session is over (a FATAL error, a connection exception), which
    /// the client may not have noticed yet.
    broken: bool,
    statements: HashMap<String, (Statement, Arc<[String]>)>,
}

pub(crate) fn connect(config: &postgres::Config) -> Result<Pg, DbError> {
    let client = config.connect(NoTls).map_err(|e| DbError::Connect {
        backend: "postgres",
        message: connect_message(config, &e),
    })?;
    Ok(Pg {
        client,
        broken: false,
        statements: HashMap::new(),
    })
}

/// Why connecting failed, in one line: the client's message ("error connecting to server")
/// says neither where nor why; its causes ("Connection refused") and the server's addresses
/// do.
fn connect_message(config: &postgres::Config, e: &postgres::Error) -> String {
    let mut message = e.to_string();
    let ports = config.get_ports();
    let addresses: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                postgres::config::Host::Tcp(name) if name.contains(':') => {
                    format!("[{name}]:{port}")
                }
                postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                postgres::config::Host::Unix(dir) => {
                    format!("{}/.s.PGSQL.{port}", dir.display())
                }
            }
        })
        .collect();
    if !addresses.is_empty() {
        message.push_str(" at ");
        message.push_str(&addresses.join(", "));
    }
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !message.contains(&more) {
            message.push_str(": ");
            message.push_str(&more);
        }
        cause = c.source();
    }
    message
}

fn sql_error(e: postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(db) => DbError::Sql {
            message: db.message().to_owned(),
            code: Some(db.code().code().to_owned()),
        },
        None => DbError::Sql {
            message: e.to_string(),
            code: None,
        },
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Bool(b), _) => b.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::OID) => u32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT4) => (*i as f32).to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), _) => i.to_sql(ty, out),
            (Value::Float(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Float(f), _) => f.to_sql(ty, out),
            (Value::Text(s), _) => s.as_str().to_sql(ty, out),
            (Value::Bytes(b), _) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        // Checked per value in `to_sql`, where the value's kind is known.
        true
    }

    to_sql_checked!();
}

/// Reads column `i` of `row` by its type.
fn column_value(row: &postgres::Row, i: usize, columns: &[String]) -> Result<Value, DbError> {
    let ty = row.columns()[i].type_();
    let get_err = |e: postgres::Error| DbError::Type {
        column: columns[i].clone(),
        expected: "a value",
        found: format!("{ty}: {e}"),
    };
    macro_rules! get {
        ($t:ty, $wrap:expr) => {
            row.try_get::<_, Option<$t>>(i)
                .map_err(get_err)?
                .map_or(Value::Null, $wrap)
        };
    }
    Ok(match *ty {
        Type::BOOL => get!(bool, Value::Bool),
        Type::INT2 => get!(i16, |v| Value::Int(v.into())),
        Type::INT4 => get!(i32, |v| Value::Int(v.into())),
        Type::INT8 => get!(i64, Value::Int),
        Type::OID => get!(u32, |v| Value::Int(v.into())),
        Type::FLOAT4 => get!(f32, |v| Value::Float(v.into())),
        Type::FLOAT8 => get!(f64, Value::Float),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            get!(String, Value::Text)
        }
        Type::BYTEA => get!(Vec<u8>, Value::Bytes),
        Type::VOID => Value::Null,
        _ => {
            return Err(DbError::UnsupportedType {
                column: columns[i].clone(),
                type_name: ty.name().to_owned(),
            })
        }
    })
}

impl Pg {
    /// The prepared statement for `sql` (cached per connection) and its column names.
    fn prepare(&mut self, sql: &str) -> Result<(Statement, Arc<[String]>), DbError> {
        if let Some((stmt, cols)) = self.statements.get(sql) {
            return Ok((stmt.clone(), cols.clone()));
        }
        let stmt = match self.client.prepare(sql) {
            Ok(stmt) => stmt,
            Err(e) => return Err(self.error(e)),
        };
        let cols: Arc<[String]> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements
            .insert(sql.to_owned(), (stmt.clone(), cols.clone()));
        Ok((stmt, cols))
    }

    /// After a statement failed: forgets its prepared form, which may be what failed (a
    /// table changed under it: "cached plan must not change result type"), so the next call
    /// prepares it afresh.
    fn failed(&mut self, sql: &str, e: postgres::Error) -> DbError {
        self.statements.remove(sql);
        self.error(e)
    }

    /// Converts an error, noting when it ended the session: severity FATAL or PANIC (the
    /// server closes the connection after those, e.g. `57P01` on `pg_terminate_backend`),
    /// SQLSTATE class 08 (connection exception), or the socket failed.
    fn error(&mut self, e: postgres::Error) -> DbError {
        let io = e
            .source()
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some());
        if e.is_closed() || io {
            self.broken = true;
        }
        if let Some(db) = e.as_db_error() {
            if matches!(db.severity(), "FATAL" | "PANIC") || db.code().code().starts_with("08") {
                self.broken = true;
            }
        }
        sql_error(e)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.client.batch_execute(sql).map_err(|e| self.error(e))
    }

    fn bound<'a>(
        stmt: &Statement,
        params: &'a [Value],
    ) -> Result<Vec<&'a (dyn ToSql + Sync)>, DbError> {
        if stmt.params().len() != params.len() {
            return Err(parameter_count_error(stmt.params().len(), params.len()));
        }
        Ok(params.iter().map(|v| v as &(dyn ToSql + Sync)).collect())
    }
}

impl Connection for Pg {
    fn begin(&mut self) -> Result<(), DbError> {
        self.batch("BEGIN")
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.batch("COMMIT")
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        self.batch("ROLLBACK")
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let (stmt, columns) = self.prepare(sql)?;
        let bound = Pg::bound(&stmt, params)?;
        let rows = match self.client.query(&stmt, &bound) {
            Ok(rows) => rows,
            Err(e) => return Err(self.failed(sql, e)),
        };
        rows.iter()
            .map(|row| {
                let values = (0..columns.len())
                    .map(|i| column_value(row, i, &columns))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Row::new(columns.clone(), values))
            })
            .collect()
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let (stmt, _) = self.prepare(sql)?;
        let bound = Pg::bound(&stmt, params)?;
        self.client
            .execute(&stmt, &bound)
            .map_err(|e| self.failed(sql, e))
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.batch(sql)
    }

    fn is_broken(&self) -> bool {
        self.broken || self.client.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused connection says where and why, not only "error connecting to server".
    #[test]
    fn a_refused_connection_names_the_address_and_the_cause() {
        // A port that was free a moment ago: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut config = postgres::Config::new();
        config.host("127.0.0.1").port(port).user("nobody");
        let Err(err) = connect(&config) else {
            panic!("connected to a port nobody listens on");
        };
        let text = err.to_string();
        assert!(
            text.starts_with(
                "cannot connect to postgres: error connecting to server at 127.0.0.1:"
            ),
            "{text}"
        );
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.to_lowercase().contains("connection refused"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }
}
