//! [`Backend`]: which database, from a connection string; and the connection trait the
//! pool's workers drive, which each driver implements. Opening a connection, which picks the
//! driver, is the `connect` module's job, above both.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::row::Row;
use crate::value::Value;
use crate::DbError;

/// Which database a pool connects to, parsed from a connection string that names it:
///
/// - `sqlite:scores.db`, `sqlite:///var/lib/game/scores.db`: an SQLite file (created if
///   missing), opened in WAL mode with a 5 s busy timeout, so readers and a writer on
///   different connections do not block each other;
/// - `sqlite::memory:`: a private in-memory SQLite database. Every SQLite connection to
///   `:memory:` gets its *own* empty database, so a pool on it keeps exactly one connection
///   (min = max = 1) for its whole life: every call sees the same database, and calls run
///   one at a time;
/// - `postgres://user:password@host:port/dbname?options` (or `postgresql://`, or
///   `postgres:host=... user=...` in key=value form): a PostgreSQL server, without TLS.
///
/// ```
/// use torsion_db::Backend;
///
/// assert_eq!(Backend::parse("sqlite:scores.db").unwrap().name(), "sqlite");
/// assert!(Backend::parse("sqlite::memory:").unwrap().is_memory());
/// assert_eq!(Backend::parse("postgres://game@localhost/scores").unwrap().name(), "postgres");
/// assert!(Backend::parse("mysql://x").is_err());
/// ```
#[derive(Clone)]
pub struct Backend {
    kind: Kind,
}

/// The database a [`Backend`] names.
#[derive(Clone)]
pub(crate) enum Kind {
    SqliteMemory,
    SqliteFile(PathBuf),
    Postgres(Box<postgres::Config>),
}

impl Backend {
    /// Parses a connection string (see the type's docs).
    pub fn parse(s: &str) -> Result<Backend, DbError> {
        let invalid = |reason: String| DbError::InvalidConnectionString { reason };
        if let Some(rest) = s.strip_prefix("sqlite:") {
            if rest == ":memory:" || rest == "//:memory:" {
                return Ok(Backend::sqlite_memory());
            }
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(invalid("sqlite: needs a file path or :memory:".into()));
            }
            return Ok(Backend::sqlite_file(path));
        }
        let is_pg_url = s.starts_with("postgres://") || s.starts_with("postgresql://");
        let pg = if is_pg_url {
            Some(s)
        } else {
            s.strip_prefix("postgres:")
                .or_else(|| s.strip_prefix("postgresql:"))
        };
        if let Some(conf) = pg {
            let config = postgres::Config::from_str(conf)
                .map_err(|e| invalid(format!("{}: {e}", redact(s))))?;
            return Ok(Backend {
                kind: Kind::Postgres(Box::new(config)),
            });
        }
        Err(invalid(format!(
            "{:?} names no known backend (use sqlite:PATH, sqlite::memory: or postgres://...)",
            redact(s)
        )))
    }

    /// A private in-memory SQLite database (see the type's docs for why the pool keeps one
    /// connection to it).
    pub fn sqlite_memory() -> Backend {
        Backend {
            kind: Kind::SqliteMemory,
        }
    }

    /// An SQLite database file, created if missing.
    pub fn sqlite_file(path: impl Into<PathBuf>) -> Backend {
        Backend {
            kind: Kind::SqliteFile(path.into()),
        }
    }

    /// The backend's name: `"sqlite"` or `"postgres"`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::SqliteMemory | Kind::SqliteFile(_) => "sqlite",
            Kind::Postgres(_) => "postgres",
        }
    }

    /// True for `sqlite::memory:`.
    pub fn is_memory(&self) -> bool {
        matches!(self.kind, Kind::SqliteMemory)
    }

    /// The database this backend names.
    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }
}

/// Hides a password in a connection string for messages (`user:***@host`).
fn redact(s: &str) -> String {
    if let Some((scheme, rest)) = s.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    if s.contains("password") {
        return "(a connection string with a password)".to_owned();
    }
    s.to_owned()
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::SqliteMemory => f.write_str("sqlite::memory:"),
            Kind::SqliteFile(p) => write!(f, "sqlite:{}", p.display()),
            Kind::Postgres(c) => {
                let hosts: Vec<String> = c
                    .get_hosts()
                    .iter()
                    .map(|h| match h {
                        postgres::config::Host::Tcp(h) => h.clone(),
                        postgres::config::Host::Unix(p) => p.display().to_string(),
                    })
                    .collect();
                write!(
                    f,
                    "postgres://{}@{}/{}",
                    c.get_user().unwrap_or(""),
                    hosts.join(","),
                    c.get_dbname().unwrap_or("")
                )
            }
        }
    }
}

impl FromStr for Backend {
    type Err = DbError;

    fn from_str(s: &str) -> Result<Backend, DbError> {
        Backend::parse(s)
    }
}

/// One open connection, owned by one worker thread.
pub(crate) trait Connection: Send {
    /// Starts a transaction.
    fn begin(&mut self) -> Result<(), DbError>;
    /// Commits the transaction.
    fn commit(&mut self) -> Result<(), DbError>;
    /// Rolls the transaction back.
    fn rollback(&mut self) -> Result<(), DbError>;
    /// Runs a statement and returns its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;
    /// Runs a statement and returns how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    /// Runs several statements separated by `;`, without parameters.
    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError>;
    /// True once the connection is known to be dead.
    fn is_broken(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connection_strings() {
        assert!(Backend::parse("sqlite::memory:").unwrap().is_memory());
        assert_eq!(
            Backend::parse("sqlite:///tmp/x.db").unwrap().to_string(),
            "sqlite:/tmp/x.db"
        );
        assert_eq!(
            Backend::parse("sqlite:x.db").unwrap().to_string(),
            "sqlite:x.db"
        );
        assert!(Backend::parse("sqlite:").is_err());
        let pg = Backend::parse("postgresql://bob:secret@db.example:5433/game").unwrap();
        assert_eq!(pg.to_string(), "postgres://bob@db.example/game");
        assert!(Backend::parse("postgres:host=/tmp user=x dbname=y").is_ok());
        let err = Backend::parse("postgres://bob:secret@db/x?bogus=1").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(Backend::parse("oracle:x").is_err());
    }
}
