//! [`ConnectionPool`]: blocking database calls in a dedicated pool of worker threads, each
//! owning its connection; results come back to the reactor thread as Deferreds.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use torsion::defer::{fail, Deferred, Trigger};
use torsion::reactor::{Event, Phase, TriggerId};
use torsion::threads::{defer_to_thread, defer_to_thread_pool, ThreadPool, ThreadPoolError};
use torsion::{reactor, BoxError, Failure};

use crate::backend::{Backend, Connection};
use crate::connect::connect;
use crate::row::Row;
use crate::value::{Params, Value};
use crate::DbError;

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// What the workers share: the backend, the idle connections, counters.
///
/// A worker takes a connection for the length of a call and owns it meanwhile; connections
/// are never shared by two threads at once. (They are not kept in thread-locals: a driver
/// may not be dropped safely in a thread-local destructor — the `postgres` client's tokio
/// runtime panics there — so connections are closed explicitly, by a normal thread.) There
/// are never more connections than workers, at most `max`.
struct Workers {
    backend: Backend,
    idle: Mutex<Vec<Box<dyn Connection>>>,
    opened: AtomicU64,
    lost: AtomicU64,
}

impl Workers {
    fn idle(&self) -> MutexGuard<'_, Vec<Box<dyn Connection>>> {
        // Connections are only pushed and popped under the lock: a poisoned lock holds a
        // consistent list.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the idle connections (once the workers are stopped, that is all of them).
    fn close_connections(&self) {
        let idle = std::mem::take(&mut *self.idle());
        drop(idle);
    }
}

/// A pool of database connections, each in its own worker thread (Twisted's
/// `adbapi.ConnectionPool`).
///
/// Calls are queued (a bounded queue: [`set_queue_limit`](Self::set_queue_limit)) and run by
/// the first free worker on its own connection; the worker blocks, the reactor does not. Each
/// call returns a [`Deferred`] fired on the reactor thread with the result, or with a
/// [`Failure`] carrying a [`DbError`] (or, for [`run_interaction`](Self::run_interaction),
/// the interaction's own error).
///
/// - Workers start as calls arrive, up to `max`, and those above `min` exit after idling
///   5 s. Connections open lazily; a worker takes one for the length of a call (so never
///   more than `max`), and idle ones stay open for the next call until `close()`.
/// - [`run_query`](Self::run_query) and [`run_operation`](Self::run_operation) run one
///   statement in autocommit mode (a single statement is atomic by itself);
///   [`run_interaction`](Self::run_interaction) runs a closure in a transaction.
/// - A connection that drops fails the call it was running with
///   [`DbError::ConnectionLost`] (the call may have run, so it is not retried), and the worker
///   reconnects for its next call (Twisted's `cp_reconnect`). A connection that cannot be
///   opened fails the call with [`DbError::Connect`]; the next call tries again.
/// - [`close`](Self::close) refuses new calls, waits for those in flight and closes every
///   connection. The reactor's shutdown does the same (a "before shutdown" trigger).
///
/// Cheap to clone (an `Rc`): keep one per program and hand clones to protocols and
/// resources. It lives on the reactor thread.
///
/// ```
/// use torsion::{reactor, Reactor};
/// use torsion_db::ConnectionPool;
///
/// let r = Reactor::new();
/// r.call_when_running(|| {
///     let pool = ConnectionPool::new("sqlite::memory:", 1, 1).unwrap();
///     pool.run_operation("CREATE TABLE t (n INTEGER)", ());
///     pool.run_operation("INSERT INTO t VALUES ($1), ($2)", (20, 22));
///     pool.run_query("SELECT sum(n) AS total FROM t", ()).add_both(|rows| {
///         let total: i64 = rows.unwrap()[0].get("total").unwrap();
///         assert_eq!(total, 42);
///         reactor().stop()
///     })
/// });
/// r.run().unwrap();
/// ```
#[derive(Clone)]
pub struct ConnectionPool {
    inner: Rc<Inner>,
}

struct Inner {
    workers: Arc<Workers>,
    threads: ThreadPool,
    /// Calls submitted whose Deferred has not fired yet.
    in_flight: Cell<usize>,
    /// `close()` was called (or the reactor is shutting down): no new calls.
    closed: Cell<bool>,
    /// The worker threads are being stopped (or have been).
    stopping: Cell<bool>,
    /// The workers have been stopped and joined.
    stopped: Cell<bool>,
    /// Deferreds of `close()` calls, fired when the workers are gone.
    close_waiters: RefCell<Vec<Trigger<()>>>,
    shutdown_trigger: Cell<Option<TriggerId>>,
}

impl ConnectionPool {
    /// A pool of `min` to `max` connections to the database named by `connection_string`
    /// (see [`Backend`]), on the current reactor. Nothing connects until the first call.
    ///
    /// For `sqlite::memory:`, the pool keeps exactly one connection whatever `min` and `max`
    /// say: each in-memory connection would be a separate, empty database.
    pub fn new(connection_string: &str, min: usize, max: usize) -> Result<ConnectionPool, DbError> {
        Ok(ConnectionPool::with_backend(
            Backend::parse(connection_string)?,
            min,
            max,
        ))
    }

    /// A pool of `min` to `max` connections to `backend`, on the current reactor.
    pub fn with_backend(backend: Backend, min: usize, max: usize) -> ConnectionPool {
        let (min, max) = if backend.is_memory() {
            if max > 1 {
                tracing::debug!(
                    "sqlite::memory: pool limited to one connection (each connection would be its own database)"
                );
            }
            (1, 1)
        } else {
            (min, max.max(min).max(1))
        };
        let id = NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed);
        let threads = ThreadPool::with_name(min, max, &format!("torsion-db-{id}"));
        let inner = Rc::new(Inner {
            workers: Arc::new(Workers {
                backend,
                idle: Mutex::new(Vec::new()),
                opened: AtomicU64::new(0),
                lost: AtomicU64::new(0),
            }),
            threads,
            in_flight: Cell::new(0),
            closed: Cell::new(false),
            stopping: Cell::new(false),
            stopped: Cell::new(false),
            close_waiters: RefCell::new(Vec::new()),
            shutdown_trigger: Cell::new(None),
        });
        let weak: Weak<Inner> = Rc::downgrade(&inner);
        let trigger =
            reactor().add_system_event_trigger(Phase::Before, Event::Shutdown, move || match weak
                .upgrade()
            {
                Some(inner) => ConnectionPool { inner }.close(),
                None => torsion::defer::succeed(()),
            });
        inner.shutdown_trigger.set(Some(trigger));
        ConnectionPool { inner }
    }

    /// The backend this pool connects to.
    pub fn backend(&self) -> &Backend {
        &self.inner.workers.backend
    }

    /// Runs `sql` with `params` and returns its rows (Twisted's `runQuery`).
    pub fn run_query(&self, sql: impl Into<String>, params: impl Params) -> Deferred<Vec<Row>> {
        let (sql, params) = (sql.into(), params.into_values());
        // A closure, not `map_err(Failure::new)`: `Failure::new` records its caller, which
        // for a function passed by name is a line of `Result::map_err` in the standard
        // library.
        self.submit(move |conn| conn.query(&sql, &params).map_err(|e| Failure::new(e)))
    }

    /// Runs `sql` with `params` for its effect (Twisted's `runOperation`).
    pub fn run_operation(&self, sql: impl Into<String>, params: impl Params) -> Deferred<()> {
        self.run_execute(sql, params).add_callback(|_| ())
    }

    /// Runs `sql` with `params` and returns how many rows it changed.
    pub fn run_execute(&self, sql: impl Into<String>, params: impl Params) -> Deferred<u64> {
        let (sql, params) = (sql.into(), params.into_values());
        self.submit(move |conn| conn.execute(&sql, &params).map_err(|e| Failure::new(e)))
    }

    /// Runs `f` in a worker thread inside a transaction (Twisted's `runInteraction`): the
    /// transaction commits when `f` returns `Ok`, and rolls back when it returns `Err` or
    /// panics. The Deferred gets `f`'s value, its error (a [`DbError`] stays a `DbError`,
    /// so `failure.downcast_ref::<DbError>()` finds it), or the panic
    /// ([`Failure::is_panic`]).
    ///
    /// `f` blocks its worker (it may run several statements, loops, ...), never the reactor;
    /// it must not wait for the reactor either.
    ///
    /// ```
    /// use torsion::{reactor, Reactor};
    /// use torsion_db::{ConnectionPool, DbError};
    ///
    /// let r = Reactor::new();
    /// r.call_when_running(|| {
    ///     let pool = ConnectionPool::new("sqlite::memory:", 1, 1).unwrap();
    ///     pool.run_operation("CREATE TABLE acct (name TEXT PRIMARY KEY, cents INTEGER)", ());
    ///     pool.run_operation("INSERT INTO acct VALUES ('a', 100), ('b', 0)", ());
    ///     // Moves money; refuses overdrafts, and then nothing is changed.
    ///     let transfer = |cents: i64| move |txn: &mut torsion_db::Transaction<'_>| {
    ///         txn.execute("UPDATE acct SET cents = cents - $1 WHERE name = 'a'", (cents,))?;
    ///         txn.execute("UPDATE acct SET cents = cents + $1 WHERE name = 'b'", (cents,))?;
    ///         let left: i64 = txn.query("SELECT cents FROM acct WHERE name = 'a'", ())?[0].get(0)?;
    ///         if left < 0 { return Err("overdraft".into()); }
    ///         Ok::<_, torsion::BoxError>(left)
    ///     };
    ///     pool.run_interaction(transfer(30)).add_callback(|left| assert_eq!(left, 70));
    ///     let p = pool.clone();
    ///     pool.run_interaction(transfer(500))
    ///         .add_errback(|failure| {
    ///             assert!(failure.to_string().contains("overdraft"));
    ///             Ok(-1)
    ///         })
    ///         .add_callback_deferred(move |_| p.run_query("SELECT cents FROM acct ORDER BY name", ()))
    ///         .add_both(|rows| {
    ///         let cents: Vec<i64> = rows?.iter().map(|r| r.get(0).unwrap()).collect();
    ///         assert_eq!(cents, [70, 30]); // the refused transfer was rolled back
    ///         reactor().stop()
    ///     })
    /// });
    /// r.run().unwrap();
    /// ```
    pub fn run_interaction<T, E, F>(&self, f: F) -> Deferred<T>
    where
        T: Send + 'static,
        E: Into<BoxError>,
        F: FnOnce(&mut Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        self.submit(move |conn| {
            conn.begin().map_err(|e| Failure::new(e))?;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                f(&mut Transaction { conn: &mut *conn })
            }));
            match outcome {
                Ok(Ok(value)) => match conn.commit() {
                    Ok(()) => Ok(value),
                    Err(e) => {
                        rollback(conn);
                        Err(Failure::new(e))
                    }
                },
                Ok(Err(e)) => {
                    rollback(conn);
                    Err(to_failure(e.into()))
                }
                Err(panic) => {
                    rollback(conn);
                    Err(Failure::from_panic(panic))
                }
            }
        })
    }

    /// Refuses new calls, waits for the calls in flight, then closes every connection and
    /// stops the worker threads (Twisted's `close`, without blocking the reactor). The
    /// Deferred fires when they are gone; closing again gives another such Deferred.
    pub fn close(&self) -> Deferred<()> {
        let d = Deferred::new();
        if self.inner.stopped.get() {
            d.callback(());
            return d;
        }
        self.inner.closed.set(true);
        self.inner.close_waiters.borrow_mut().push(d.trigger());
        if let Some(id) = self.inner.shutdown_trigger.take() {
            reactor().remove_system_event_trigger(id);
        }
        Inner::maybe_stop(&self.inner);
        d
    }

    /// True once [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Calls submitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.get()
    }

    /// How many connections the workers have opened so far (reconnections included).
    pub fn connections_opened(&self) -> u64 {
        self.inner.workers.opened.load(Ordering::Relaxed)
    }

    /// How many connections were found dropped (each is reopened by the next call).
    pub fn connections_lost(&self) -> u64 {
        self.inner.workers.lost.load(Ordering::Relaxed)
    }

    /// Sets how many calls may wait for a worker before calls fail with
    /// [`DbError::QueueFull`] (default [`torsion::threads::DEFAULT_QUEUE_LIMIT`]).
    pub fn set_queue_limit(&self, limit: usize) {
        self.inner.threads.set_queue_limit(limit);
    }

    /// Hands `job` to a worker, with that worker's connection.
    fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut dyn Connection) -> Result<T, Failure> + Send + 'static,
    ) -> Deferred<T> {
        if self.inner.closed.get() {
            return fail(DbError::PoolClosed);
        }
        let workers = self.inner.workers.clone();
        self.inner.in_flight.set(self.inner.in_flight.get() + 1);
        let inner = self.inner.clone();
        defer_to_thread_pool(&self.inner.threads, move || on_worker(&workers, job)).add_both(
            move |outcome| {
                inner.in_flight.set(inner.in_flight.get() - 1);
                Inner::maybe_stop(&inner);
                match outcome {
                    Ok(result) => result,
                    Err(failure) => Err(match failure.trap::<ThreadPoolError>() {
                        Ok(ThreadPoolError::QueueFull { limit }) => {
                            Failure::new(DbError::QueueFull { limit })
                        }
                        Ok(_) => Failure::new(DbError::PoolClosed),
                        Err(other) => other,
                    }),
                }
            },
        )
    }
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("backend", &self.inner.workers.backend)
            .field("threads", &self.inner.threads)
            .field("in_flight", &self.inner.in_flight.get())
            .field("closed", &self.inner.closed.get())
            .finish()
    }
}

impl Inner {
    /// Once closed and idle, stops the workers (joining them in the reactor's thread pool,
    /// not on the reactor) and fires the `close()` Deferreds.
    fn maybe_stop(this: &Rc<Inner>) {
        if !this.closed.get() || this.in_flight.get() > 0 || this.stopping.replace(true) {
            return;
        }
        let (threads, workers) = (this.threads.clone(), this.workers.clone());
        let inner = this.clone();
        defer_to_thread(move || {
            threads.stop();
            workers.close_connections();
        })
        .add_both(move |stopped| {
            if stopped.is_err() {
                // No thread to do it in: do it here (the workers are idle, this is quick).
                inner.threads.stop();
                inner.workers.close_connections();
            }
            inner.stopped.set(true);
            for waiter in inner.close_waiters.take() {
                waiter.callback(());
            }
            Ok::<(), Failure>(())
        });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.stopping.get() {
            // Dropped without close(): stop the workers without blocking this thread.
            let (threads, workers) = (self.threads.clone(), self.workers.clone());
            let _ = std::thread::Builder::new()
                .name("torsion-db-stop".into())
                .spawn(move || {
                    threads.stop();
                    workers.close_connections();
                });
        }
    }
}

/// Runs `job` on an idle connection, or a new one; a dropped connection is discarded (and
/// its error reported as [`DbError::ConnectionLost`]).
fn on_worker<T>(
    workers: &Workers,
    job: impl FnOnce(&mut dyn Connection) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let taken = workers.idle().pop();
    let mut conn = match taken {
        Some(conn) if !conn.is_broken() => conn,
        stale => {
            drop(stale);
            let conn = connect(&workers.backend).map_err(|e| Failure::new(e))?;
            workers.opened.fetch_add(1, Ordering::Relaxed);
            conn
        }
    };
    // A panic in `job` comes from a driver (interactions catch their own): it unwinds past
    // here, dropping the connection, whose state is unknown; the thread pool turns it into
    // the call's Failure.
    let result = job(&mut *conn);
    if conn.is_broken() {
        workers.lost.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "{}: connection lost; the next call reconnects",
            workers.backend
        );
        return result.map_err(|failure| match failure.trap::<DbError>() {
            Ok(DbError::Sql { message, .. }) | Ok(DbError::ConnectionLost { message }) => {
                Failure::new(DbError::ConnectionLost { message })
            }
            Ok(other) => Failure::new(DbError::ConnectionLost {
                message: other.to_string(),
            }),
            Err(other) => other,
        });
    }
    workers.idle().push(conn);
    result
}

/// Rolls back after a failed interaction; a rollback that fails is logged (the connection
/// is then dropped by the broken check if it is dead).
fn rollback(conn: &mut dyn Connection) {
    if conn.is_broken() {
        return;
    }
    if let Err(e) = conn.rollback() {
        tracing::error!("rollback failed: {e}");
    }
}

/// A boxed error as a Failure, unboxing a [`DbError`] so it can be downcast.
fn to_failure(error: BoxError) -> Failure {
    match error.downcast::<DbError>() {
        Ok(db) => Failure::new(*db),
        Err(other) => Failure::from_boxed(other),
    }
}

/// The connection an interaction runs on, inside its transaction (Twisted's `Transaction`,
/// a cursor). Lives on a worker thread for the length of the interaction.
pub struct Transaction<'a> {
    conn: &'a mut dyn Connection,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transaction")
    }
}

impl Transaction<'_> {
    /// Runs `sql` and returns its rows.
    pub fn query(&mut self, sql: &str, params: impl Params) -> Result<Vec<Row>, DbError> {
        self.conn.query(sql, &params.into_values())
    }

    /// Runs `sql` and returns its first row, if any.
    pub fn query_row(&mut self, sql: &str, params: impl Params) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs `sql` and returns how many rows it changed.
    pub fn execute(&mut self, sql: &str, params: impl Params) -> Result<u64, DbError> {
        self.conn.execute(sql, &params.into_values())
    }

    /// Runs `sql` once per parameter set (a prepared statement reused), returning the total
    /// of rows changed (DB-API's `executemany`).
    pub fn execute_many<P: Params>(
        &mut self,
        sql: &str,
        rows: impl IntoIterator<Item = P>,
    ) -> Result<u64, DbError> {
        let mut changed = 0;
        for params in rows {
            let values: Vec<Value> = params.into_values();
            changed += self.conn.execute(sql, &values)?;
        }
        Ok(changed)
    }

    /// Runs several statements separated by `;`, without parameters (schema scripts).
    pub fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion::Reactor;

    /// A database error's Failure says where in this crate it was made, not the line of
    /// `Result::map_err` in the standard library that a function passed by name would show.
    #[test]
    fn a_database_failure_points_into_this_crate() {
        let r = Reactor::new();
        let seen: Rc<RefCell<Vec<String>>> = Rc::default();
        let got = seen.clone();
        r.call_when_running(move || {
            let pool = ConnectionPool::new("sqlite::memory:", 1, 1).expect("a pool");
            let query = pool.run_query("SELECT * FROM no_such_table", ());
            let execute = pool.run_execute("NOT SQL", ());
            let broken = ConnectionPool::new("sqlite:/nonexistent-dir/torsion/x.db", 1, 1)
                .expect("a pool")
                .run_query("SELECT 1", ());
            torsion::defer::DeferredList::builder(vec![
                query.add_callback(|_| ()),
                execute.add_callback(|_| ()),
                broken.add_callback(|_| ()),
            ])
            .consume_errors(true)
            .build()
            .add_callback(move |results| {
                for result in results {
                    let failure = result.expect_err("every call fails");
                    got.borrow_mut().push(failure.location().file().to_owned());
                }
                let _ = reactor().stop();
            });
        });
        r.run().unwrap();
        let seen = seen.borrow();
        assert_eq!(seen.len(), 3, "{seen:?}");
        for file in seen.iter() {
            assert!(file.ends_with("pool.rs"), "{file}");
        }
    }
}
