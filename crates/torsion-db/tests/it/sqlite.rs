//! The ConnectionPool on SQLite files and `:memory:`: the shared backend behaviour, plus
//! what is SQLite's own (persistence, one in-memory database, bad connection strings).

use crate::support;
use support::{conformance, TempDb};
use torsion::Failure;
use torsion_db::{ConnectionPool, DbError};

#[torsion::test(timeout = 60)]
async fn types_round_trip() -> Result<(), Failure> {
    let db = TempDb::new("types");
    conformance::types_round_trip(&db.url()).await
}

#[torsion::test(timeout = 60)]
async fn errors_are_clear() -> Result<(), Failure> {
    let db = TempDb::new("errors");
    conformance::errors_are_clear(&db.url()).await
}

#[torsion::test(timeout = 60)]
async fn interactions_commit_and_roll_back() -> Result<(), Failure> {
    let db = TempDb::new("txn");
    conformance::interactions_commit_and_roll_back(&db.url()).await
}

#[torsion::test(timeout = 60)]
async fn concurrent_calls_and_close() -> Result<(), Failure> {
    let db = TempDb::new("many");
    conformance::concurrent_calls_and_close(&db.url()).await
}

#[torsion::test(timeout = 60)]
async fn queue_is_bounded() -> Result<(), Failure> {
    let db = TempDb::new("queue");
    conformance::queue_is_bounded(&db.url()).await
}

#[torsion::test(timeout = 60)]
async fn memory_database_is_one_database() -> Result<(), Failure> {
    // max=8 asked; each :memory: connection would be a separate database, so the pool
    // keeps one connection and every call sees the same tables.
    let pool = ConnectionPool::new("sqlite::memory:", 2, 8)?;
    pool.run_operation("CREATE TABLE t (n INTEGER)", ()).await?;
    let inserts: Vec<_> = (0..50)
        .map(|n| pool.run_operation("INSERT INTO t VALUES ($1)", (n,)))
        .collect();
    torsion::defer::gather_results(inserts).await?;
    let rows = pool.run_query("SELECT count(*) FROM t", ()).await?;
    assert_eq!(rows[0].get::<i64>(0)?, 50);
    assert_eq!(pool.connections_opened(), 1);
    pool.close().await?;
    Ok(())
}

#[torsion::test(timeout = 60)]
async fn file_database_persists() -> Result<(), Failure> {
    let db = TempDb::new("persist");
    let pool = ConnectionPool::new(&db.url(), 1, 3)?;
    pool.run_operation("CREATE TABLE scores (name TEXT, n INTEGER)", ())
        .await?;
    pool.run_operation("INSERT INTO scores VALUES ($1, $2)", ("ann", 4))
        .await?;
    pool.close().await?;
    let again = ConnectionPool::new(&db.url(), 1, 3)?;
    let rows = again.run_query("SELECT name, n FROM scores", ()).await?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<String>("name")?, "ann");
    again.close().await?;
    Ok(())
}

#[torsion::test(timeout = 60)]
async fn placeholders() -> Result<(), Failure> {
    let pool = ConnectionPool::new("sqlite::memory:", 1, 1)?;
    // Plain `?` in order, numbered `?N` and `$N`; named ones are refused clearly.
    let rows = pool.run_query("SELECT ? + ?, ?2 * 10, $1", (1, 2)).await?;
    assert_eq!(rows[0].get::<i64>(0)?, 3);
    assert_eq!(rows[0].get::<i64>(1)?, 20);
    assert_eq!(rows[0].get::<i64>(2)?, 1);
    let err = pool.run_query("SELECT :name", ("x",)).await.unwrap_err();
    let e = conformance::db_error(&err);
    assert!(matches!(e, DbError::Parameters { .. }), "{e}");
    assert!(e.to_string().contains(":name"), "{e}");
    pool.close().await?;
    Ok(())
}

#[torsion::test(timeout = 60)]
async fn bad_connection_strings_and_unopenable_files() -> Result<(), Failure> {
    let err = ConnectionPool::new("mysql://localhost/x", 1, 1)
        .err()
        .unwrap();
    assert!(
        matches!(err, DbError::InvalidConnectionString { .. }),
        "{err}"
    );
    // A file in a folder that does not exist: the call fails with Connect, clearly.
    let pool = ConnectionPool::new("sqlite:/nonexistent-torsion-dir/x.db", 1, 1)?;
    let err = pool.run_query("SELECT 1", ()).await.unwrap_err();
    assert!(
        matches!(
            conformance::db_error(&err),
            DbError::Connect {
                backend: "sqlite",
                ..
            }
        ),
        "{err}"
    );
    pool.close().await?;
    Ok(())
}

#[torsion::test(timeout = 60)]
async fn the_reactor_stays_responsive() -> Result<(), Failure> {
    // A slow query (a recursive CTE counting to 3 million) runs in a worker while timers on
    // the reactor keep firing.
    let pool = ConnectionPool::new("sqlite::memory:", 1, 1)?;
    let slow = pool.run_query(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) \
         SELECT count(*) FROM c",
        (),
    );
    let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let t = ticks.clone();
    let looping = torsion::task::LoopingCall::new(move || t.set(t.get() + 1));
    looping.start(0.001, true);
    let rows = slow.await?;
    looping.stop();
    assert_eq!(rows[0].get::<i64>(0)?, 3_000_000);
    assert!(
        ticks.get() > 1,
        "the reactor was blocked: {} ticks",
        ticks.get()
    );
    pool.close().await?;
    Ok(())
}
