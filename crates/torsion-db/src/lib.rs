//! # torsion-db: blocking databases without blocking the reactor (Twisted's `adbapi`)
//!
//! Most database drivers block: a query waits for the server. The reactor is one thread and
//! must never wait, so — as Twisted's `twisted.enterprise.adbapi` does — a [`ConnectionPool`]
//! runs database calls in a dedicated pool of worker threads — a worker owns one connection
//! for the length of a call, never shared with another thread — and hands results back to the reactor thread as [`Deferred`](torsion::Deferred)s:
//!
//! ```text
//!  reactor thread                         worker threads (min..max), a connection each
//!  pool.run_query(sql, params) ──queue──▶ [worker 1: conn] ─ blocks on the database
//!     -> Deferred<Vec<Row>>     (bounded) [worker 2: conn]
//!        fired on the reactor ◀── call_from_thread ── result or Failure(DbError)
//! ```
//!
//! - [`ConnectionPool::run_query`] returns rows, [`run_operation`](ConnectionPool::run_operation)
//!   runs a statement for its effect, [`run_interaction`](ConnectionPool::run_interaction)
//!   runs a closure in a transaction (commit on `Ok`, rollback on `Err` or panic), and
//!   [`close`](ConnectionPool::close) waits for calls in flight and closes the connections.
//! - [`Row`]s are read by index or column name into Rust types ([`Row::get`]), or whole
//!   into tuples ([`Row::decode`]); parameters
//!   are tuples of Rust values ([`Params`]), written `$1`, `$2`, ... in SQL for every backend.
//! - Errors are [`DbError`]s: SQL errors (with the database's code), type mismatches,
//!   parameter mismatches, a lost connection (the worker reconnects for the next call), a
//!   closed pool, a full queue.
//! - Backends ([`Backend`]), named by the connection string: SQLite, compiled in
//!   (`sqlite:scores.db`, or `sqlite::memory:` — one connection only, since each in-memory
//!   connection is its own database), and PostgreSQL (`postgres://user@localhost/db`).
//!
//! Seed 001's database access:
//!
//! ```
//! use torsion::{reactor, Reactor};
//! use torsion_db::ConnectionPool;
//!
//! let r = Reactor::new();
//! r.call_when_running(|| {
//!     let pool = ConnectionPool::new("sqlite::memory:", 1, 1).unwrap();
//!     pool.run_operation("CREATE TABLE users (name TEXT, age INTEGER)", ());
//!     pool.run_operation("INSERT INTO users VALUES ($1, $2)", ("alice", 32));
//!     // Returns at once; the rows arrive later, on the reactor thread.
//!     pool.run_query("SELECT name, age FROM users WHERE age > $1", (30,))
//!         .add_callback(|rows| {
//!             for row in rows {
//!                 // By column name, or the whole row as a tuple: `row.decode()`.
//!                 let (name, age): (String, i64) =
//!                     (row.get("name").unwrap(), row.get("age").unwrap());
//!                 println!("{name} is {age}");
//!             }
//!         })
//!         .add_callback_deferred(move |()| pool.close())
//!         .add_both(|closed| {
//!             closed.unwrap();
//!             reactor().stop()
//!         })
//! });
//! r.run().unwrap();
//! ```
//!
//! ## From async code
//!
//! A [`Deferred`](torsion::Deferred) is a `Future`, so async code on the reactor (inside
//! `torsion::defer::ensure_deferred` or `Reactor::spawn`) simply awaits the pool:
//!
//! ```
//! use torsion::{defer::ensure_deferred, reactor, Failure, Reactor};
//! use torsion_db::ConnectionPool;
//!
//! let r = Reactor::new();
//! r.call_when_running(|| {
//!     ensure_deferred(async {
//!         let pool = ConnectionPool::new("sqlite::memory:", 1, 1)?;
//!         pool.run_operation("CREATE TABLE t (x TEXT)", ()).await?;
//!         pool.run_operation("INSERT INTO t VALUES ($1)", ("hi",)).await?;
//!         let rows = pool.run_query("SELECT x FROM t", ()).await?;
//!         assert_eq!(rows[0].get::<String>(0)?, "hi");
//!         pool.close().await?;
//!         Ok::<_, Failure>(())
//!     })
//!     .add_both(|r| { r.unwrap(); reactor().stop() })
//! });
//! r.run().unwrap();
//! ```
//!
//! ## Or an async driver directly on the reactor
//!
//! The reactor runs on tokio (a current-thread `LocalRuntime`), so an async driver such as
//! `tokio-postgres` or `sqlx` (with its tokio runtime feature) runs *on the reactor thread*,
//! without worker threads. With `tokio-postgres`, the connection object is a future that
//! drives the socket; spawn it on the reactor and use the client from async code:
//!
//! ```text
//! use torsion::{defer::ensure_deferred, reactor};
//!
//! ensure_deferred(async {
//!     let (client, connection) =
//!         tokio_postgres::connect("host=localhost user=game", tokio_postgres::NoTls).await?;
//!     reactor().spawn(async move {
//!         if let Err(e) = connection.await { tracing::error!("postgres: {e}") }
//!     });
//!     let rows = client.query("SELECT name, best FROM scores LIMIT $1", &[&10i64]).await?;
//!     // ... rows are tokio_postgres::Row, read with row.get("name")
//!     Ok::<_, torsion::Failure>(())
//! });
//! ```
//!
//! `sqlx` is used the same way: `PgPool::connect(url).await` inside `ensure_deferred`, then
//! `sqlx::query("...").bind(x).fetch_all(&pool).await`. (sqlx's SQLite driver runs its
//! blocking calls in its own worker thread, much as this crate does.)
//!
//! **When to prefer which.** Take the async driver for PostgreSQL-heavy servers with many
//! concurrent queries: no thread per connection, pipelining, and cancellation by dropping
//! the future. Take this [`ConnectionPool`] for SQLite (whose library blocks by nature — an
//! async SQLite driver is a thread pool too), for code written in Deferred style (callbacks
//! from protocols and resources, as in Twisted), for transactions written as plain
//! sequential code ([`run_interaction`](ConnectionPool::run_interaction)), and to switch
//! between SQLite and PostgreSQL with a connection string. Under load, the pool's limits
//! are explicit: at most `max` connections, a bounded queue, and [`DbError::QueueFull`]
//! beyond it, rather than an unbounded pile of waiting futures.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod connect;
mod error;
mod pg;
mod pool;
mod row;
mod sqlite;
mod value;

pub use backend::Backend;
pub use error::DbError;
pub use pool::{ConnectionPool, Transaction};
pub use row::{ColumnIndex, FromRow, Row};
pub use value::{FromValue, Params, Value};
