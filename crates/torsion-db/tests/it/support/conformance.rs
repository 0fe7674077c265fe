//! What every backend must do, written once and run against SQLite and PostgreSQL.

use std::sync::atomic::{AtomicU64, Ordering};

use torsion::defer::gather_results;
use torsion::Failure;
use torsion_db::{ConnectionPool, DbError, Row, Transaction, Value};

/// A table name unique to this process and call (PostgreSQL tests share one database).
pub fn table(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The column type for bytes in this backend's dialect.
fn blob(pool: &ConnectionPool) -> &'static str {
    if pool.backend().name() == "postgres" {
        "BYTEA"
    } else {
        "BLOB"
    }
}

/// The DbError a failure carries; panics with the failure otherwise.
pub fn db_error(failure: &Failure) -> &DbError {
    failure
        .downcast_ref::<DbError>()
        .unwrap_or_else(|| panic!("expected a DbError, got {failure}"))
}

pub async fn types_round_trip(url: &str) -> Result<(), Failure> {
    let pool = ConnectionPool::new(url, 1, 2)?;
    let t = table("types");
    pool.run_operation(
        format!(
            "CREATE TABLE {t} (id INTEGER, big BIGINT, name TEXT, ratio DOUBLE PRECISION, \
             ok BOOLEAN, data {})",
            blob(&pool)
        ),
        (),
    )
    .await?;
    let inserted = pool
        .run_execute(
            format!("INSERT INTO {t} VALUES ($1, $2, $3, $4, $5, $6), ($7, NULL, NULL, NULL, NULL, NULL)"),
            vec![
                Value::from(1),
                Value::from(i64::MAX),
                Value::from("<b>héllo</b> 'quoted'"),
                Value::from(0.25),
                Value::from(true),
                Value::from(vec![0u8, 255, 10]),
                Value::from(2),
            ],
        )
        .await?;
    assert_eq!(inserted, 2);
    let rows: Vec<Row> = pool
        .run_query(
            format!("SELECT id, big, name, ratio, ok, data FROM {t} ORDER BY id"),
            (),
        )
        .await?;
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(r.columns(), ["id", "big", "name", "ratio", "ok", "data"]);
    assert_eq!(r.get::<i32>(0)?, 1);
    assert_eq!(r.get::<i64>("big")?, i64::MAX);
    assert_eq!(r.get::<String>("name")?, "<b>héllo</b> 'quoted'");
    assert_eq!(r.get::<f64>("ratio")?, 0.25);
    assert!(r.get::<bool>("ok")?);
    assert_eq!(r.get::<Vec<u8>>("data")?, [0, 255, 10]);
    // NULLs: None as an Option, a clear error otherwise.
    let n = &rows[1];
    assert_eq!(n.get::<Option<String>>("name")?, None);
    assert_eq!(n.get::<Option<i64>>(1)?, None);
    assert!(matches!(n.get::<String>("name"), Err(DbError::Type { .. })));
    // Type mismatches, out-of-range integers, missing columns.
    match r.get::<i64>("name") {
        Err(DbError::Type { column, found, .. }) => {
            assert!(column.contains("name"), "{column}");
            assert_eq!(found, "text");
        }
        other => panic!("expected a type error, got {other:?}"),
    }
    assert!(matches!(r.get::<i32>("big"), Err(DbError::Type { .. })));
    assert!(matches!(
        r.get::<i64>("nope"),
        Err(DbError::NoSuchColumn(_))
    ));
    assert!(matches!(
        r.get::<i64>(6),
        Err(DbError::IndexOutOfRange {
            index: 6,
            columns: 6
        })
    ));
    // Whole rows into tuples.
    let (id, big, name): (i64, Option<i64>, Option<String>) = pool
        .run_query(format!("SELECT id, big, name FROM {t} WHERE id = $1"), (2,))
        .await?[0]
        .decode()?;
    assert_eq!((id, big, name), (2, None, None));
    assert!(matches!(
        r.decode::<(i64, i64)>(),
        Err(DbError::Type { .. })
    ));
    // Parameters bind by number, and may repeat.
    let rows = pool
        .run_query(
            format!("SELECT id FROM {t} WHERE id = $1 OR id = $1 + $2 ORDER BY id"),
            (1, 1),
        )
        .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect::<Result<_, _>>()?;
    assert_eq!(ids, [1, 2]);
    pool.run_operation(format!("DROP TABLE {t}"), ()).await?;
    pool.close().await?;
    Ok(())
}

pub async fn errors_are_clear(url: &str) -> Result<(), Failure> {
    let pool = ConnectionPool::new(url, 1, 1)?;
    let t = table("errors");
    // A syntax error.
    let err = pool.run_query("SELEKT 1", ()).await.unwrap_err();
    match db_error(&err) {
        DbError::Sql { message, code } => {
            assert!(
                message.contains("syntax") || message.contains("SELEKT"),
                "{message}"
            );
            assert!(code.is_some(), "no code for {message:?}");
        }
        other => panic!("expected an SQL error, got {other:?}"),
    }
    // A constraint, with the database's code.
    pool.run_operation(format!("CREATE TABLE {t} (k INTEGER PRIMARY KEY)"), ())
        .await?;
    pool.run_operation(format!("INSERT INTO {t} VALUES ($1)"), (1,))
        .await?;
    let err = pool
        .run_operation(format!("INSERT INTO {t} VALUES ($1)"), (1,))
        .await
        .unwrap_err();
    let DbError::Sql { code, .. } = db_error(&err) else {
        panic!("expected an SQL error, got {err}")
    };
    let code = code.clone().unwrap_or_default();
    assert!(
        code == "23505" || code == "ConstraintViolation",
        "unexpected code {code}"
    );
    // Parameter count mismatches.
    let err = pool
        .run_query(format!("SELECT k FROM {t} WHERE k = $1"), ())
        .await
        .unwrap_err();
    assert!(
        matches!(db_error(&err), DbError::Parameters { .. }),
        "{err}"
    );
    let err = pool
        .run_query(format!("SELECT k FROM {t} WHERE k = $1"), (1, 2))
        .await
        .unwrap_err();
    assert!(
        matches!(db_error(&err), DbError::Parameters { .. }),
        "{err}"
    );
    // The connection survives all that.
    let rows = pool.run_query(format!("SELECT k FROM {t}"), ()).await?;
    assert_eq!(rows.len(), 1);
    pool.run_operation(format!("DROP TABLE {t}"), ()).await?;
    // A closed pool says so.
    pool.close().await?;
    assert!(pool.is_closed());
    let err = pool.run_query("SELECT 1", ()).await.unwrap_err();
    assert_eq!(db_error(&err), &DbError::PoolClosed);
    assert_eq!(err.to_string(), "the connection pool is closed");
    Ok(())
}

fn count(txn: &mut Transaction<'_>, t: &str) -> Result<i64, DbError> {
    txn.query(&format!("SELECT count(*) FROM {t}"), ())?[0].get(0)
}

pub async fn interactions_commit_and_roll_back(url: &str) -> Result<(), Failure> {
    let pool = ConnectionPool::new(url, 1, 2)?;
    let t = table("txn");
    pool.run_operation(format!("CREATE TABLE {t} (n INTEGER)"), ())
        .await?;
    // Ok commits, and returns the closure's value.
    let t2 = t.clone();
    let seen = pool
        .run_interaction(move |txn| {
            txn.execute_many(&format!("INSERT INTO {t2} VALUES ($1)"), [(1,), (2,), (3,)])?;
            count(txn, &t2)
        })
        .await?;
    assert_eq!(seen, 3);
    // Err rolls back; the error comes back as it was.
    let t2 = t.clone();
    let err = pool
        .run_interaction(move |txn| {
            txn.execute(&format!("INSERT INTO {t2} VALUES (4)"), ())?;
            assert_eq!(count(txn, &t2)?, 4);
            Err::<(), torsion::BoxError>(std::io::Error::other("changed my mind").into())
        })
        .await
        .unwrap_err();
    assert!(err.check::<std::io::Error>(), "{err}");
    // An SQL error inside rolls back and stays a DbError.
    let t2 = t.clone();
    let err = pool
        .run_interaction(move |txn| {
            txn.execute(&format!("INSERT INTO {t2} VALUES (5)"), ())?;
            txn.execute("INSERT INTO no_such_table VALUES (1)", ())
        })
        .await
        .unwrap_err();
    assert!(matches!(db_error(&err), DbError::Sql { .. }), "{err}");
    // A panic rolls back too, and arrives as a panic failure.
    let t2 = t.clone();
    let err = pool
        .run_interaction(move |txn| -> Result<(), DbError> {
            txn.execute(&format!("INSERT INTO {t2} VALUES (6)"), ())?;
            panic!("interaction blew up");
        })
        .await
        .unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert!(err.to_string().contains("interaction blew up"), "{err}");
    // Only the committed rows are there, and the workers still work.
    let rows = pool
        .run_query(format!("SELECT n FROM {t} ORDER BY n"), ())
        .await?;
    let ns: Vec<i64> = rows.iter().map(|r| r.get(0)).collect::<Result<_, _>>()?;
    assert_eq!(ns, [1, 2, 3]);
    pool.run_operation(format!("DROP TABLE {t}"), ()).await?;
    pool.close().await?;
    Ok(())
}

pub async fn concurrent_calls_and_close(url: &str) -> Result<(), Failure> {
    let pool = ConnectionPool::new(url, 0, 4)?;
    let t = table("many");
    pool.run_operation(format!("CREATE TABLE {t} (n INTEGER)"), ())
        .await?;
    let calls: Vec<_> = (0..200)
        .map(|n| pool.run_operation(format!("INSERT INTO {t} VALUES ($1)"), (n,)))
        .collect();
    assert!(pool.in_flight() > 0);
    gather_results(calls).await?;
    assert_eq!(pool.in_flight(), 0);
    assert!(
        (1..=4).contains(&pool.connections_opened()),
        "{} connections opened for max=4",
        pool.connections_opened()
    );
    // close() waits for the calls in flight: all of them succeed.
    let pending: Vec<_> = (0..20)
        .map(|_| pool.run_query(format!("SELECT sum(n) FROM {t}"), ()))
        .collect();
    let closed = pool.close();
    // New calls are refused at once.
    let refused = pool.run_query("SELECT 1", ()).await.unwrap_err();
    assert_eq!(db_error(&refused), &DbError::PoolClosed);
    for rows in gather_results(pending).await? {
        assert_eq!(rows[0].get::<i64>(0)?, (0..200).sum::<i64>());
    }
    closed.await?;
    // Closing again is fine.
    pool.close().await?;
    // Clean up with a new pool.
    let pool = ConnectionPool::new(url, 1, 1)?;
    pool.run_operation(format!("DROP TABLE {t}"), ()).await?;
    pool.close().await?;
    Ok(())
}

pub async fn queue_is_bounded(url: &str) -> Result<(), Failure> {
    let pool = ConnectionPool::new(url, 1, 1)?;
    pool.set_queue_limit(5);
    // The only worker is held busy until every call below has been submitted.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let busy = pool.run_interaction(move |_txn| {
        started.send(()).map_err(|e| e.to_string())?;
        held.recv().map_err(|e| e.to_string())
    });
    // Once the worker has taken that call, the queue is empty (the wait is short: the
    // worker only has to connect).
    running
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the worker never started");
    let calls: Vec<_> = (0..50).map(|_| pool.run_query("SELECT 1", ())).collect();
    release.send(()).unwrap();
    busy.await?;
    let mut full = 0;
    let mut ok = 0;
    for call in calls {
        match call.await {
            Ok(_) => ok += 1,
            Err(f) if matches!(db_error(&f), DbError::QueueFull { limit: 5 }) => full += 1,
            Err(f) => return Err(f),
        }
    }
    assert_eq!((ok, full), (5, 45));
    pool.close().await?;
    Ok(())
}
