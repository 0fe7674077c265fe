//! The ConnectionPool against a real PostgreSQL server, started by the tests themselves
//! (see `support/pg.rs`: installed from Debian if missing, a throwaway cluster per test
//! process, stopped when the process exits). Without a server, each test says so loudly and
//! passes vacuously.

use crate::support;
use support::conformance::{self, db_error, table};
use support::pg::postgres_url;
use torsion::Failure;
use torsion_db::{ConnectionPool, DbError};

#[torsion::test(timeout = 180)]
async fn types_round_trip() -> Result<(), Failure> {
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    conformance::types_round_trip(&url).await
}

#[torsion::test(timeout = 180)]
async fn errors_are_clear() -> Result<(), Failure> {
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    conformance::errors_are_clear(&url).await
}

#[torsion::test(timeout = 180)]
async fn interactions_commit_and_roll_back() -> Result<(), Failure> {
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    conformance::interactions_commit_and_roll_back(&url).await
}

#[torsion::test(timeout = 180)]
async fn concurrent_calls_and_close() -> Result<(), Failure> {
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    conformance::concurrent_calls_and_close(&url).await
}

#[torsion::test(timeout = 180)]
async fn queue_is_bounded() -> Result<(), Failure> {
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    conformance::queue_is_bounded(&url).await
}

#[torsion::test(timeout = 180)]
async fn reconnects_after_the_server_drops_the_connection() -> Result<(), Failure> {
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    let pool = ConnectionPool::new(&url, 1, 1)?;
    let pid: i32 = pool.run_query("SELECT pg_backend_pid()", ()).await?[0].get(0)?;
    assert_eq!(pool.connections_opened(), 1);
    // Another connection kills this pool's backend, as a server restart or a network
    // failure would.
    let admin = ConnectionPool::new(&url, 1, 1)?;
    let killed: bool = admin
        .run_query("SELECT pg_terminate_backend($1)", (pid,))
        .await?[0]
        .get(0)?;
    assert!(killed);
    admin.close().await?;
    // The call that meets the dead connection fails clearly (it is not retried: it may
    // have run)...
    let err = pool.run_query("SELECT 1", ()).await.unwrap_err();
    assert!(
        matches!(db_error(&err), DbError::ConnectionLost { .. }),
        "expected ConnectionLost, got {err}"
    );
    assert_eq!(pool.connections_lost(), 1);
    // ... and the next one runs on a new connection.
    let new_pid: i32 = pool.run_query("SELECT pg_backend_pid()", ()).await?[0].get(0)?;
    assert_ne!(new_pid, pid);
    assert_eq!(pool.connections_opened(), 2);
    pool.close().await?;
    Ok(())
}

#[torsion::test(timeout = 180)]
async fn unreachable_server_is_a_connect_error() -> Result<(), Failure> {
    // Needs no server: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let pool = ConnectionPool::new(
        &format!("postgres://nobody@127.0.0.1:{port}/x?connect_timeout=5"),
        1,
        1,
    )?;
    let err = pool.run_query("SELECT 1", ()).await.unwrap_err();
    assert!(
        matches!(
            db_error(&err),
            DbError::Connect {
                backend: "postgres",
                ..
            }
        ),
        "{err}"
    );
    pool.close().await?;
    Ok(())
}

#[torsion::test(timeout = 180)]
async fn postgres_types() -> Result<(), Failure> {
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    let pool = ConnectionPool::new(&url, 1, 1)?;
    let t = table("pgtypes");
    pool.run_operation(
        format!("CREATE TABLE {t} (a SMALLINT, b REAL, c VARCHAR(10), d NUMERIC)"),
        (),
    )
    .await?;
    // Integers and floats fit the column's own type; values out of its range are refused.
    pool.run_operation(
        format!("INSERT INTO {t} (a, b, c) VALUES ($1, $2, $3)"),
        (7, 1.5, "x"),
    )
    .await?;
    let err = pool
        .run_operation(format!("INSERT INTO {t} (a) VALUES ($1)"), (100_000,))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("parameter"), "{err}");
    let rows = pool
        .run_query(format!("SELECT a, b, c FROM {t}"), ())
        .await?;
    assert_eq!(rows[0].get::<i16>("a")?, 7);
    assert_eq!(rows[0].get::<f32>("b")?, 1.5);
    assert_eq!(rows[0].get::<String>("c")?, "x");
    // A type this crate does not convert: a clear error naming the type; a cast fixes it.
    let err = pool
        .run_query("SELECT 1.5::numeric AS n", ())
        .await
        .unwrap_err();
    match db_error(&err) {
        DbError::UnsupportedType { column, type_name } => {
            assert_eq!((column.as_str(), type_name.as_str()), ("n", "numeric"))
        }
        other => panic!("expected UnsupportedType, got {other}"),
    }
    let rows = pool.run_query("SELECT 1.5::numeric::text AS n", ()).await?;
    assert_eq!(rows[0].get::<String>("n")?, "1.5");
    pool.run_operation(format!("DROP TABLE {t}"), ()).await?;
    pool.close().await?;
    Ok(())
}

#[torsion::test(timeout = 180)]
async fn statements_survive_schema_changes() -> Result<(), Failure> {
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    // Prepared statements are cached per connection; a table rebuilt with other columns
    // makes the cached plan fail once, and the next call prepares it again.
    let pool = ConnectionPool::new(&url, 1, 1)?;
    let t = table("schema");
    let select = format!("SELECT * FROM {t}");
    pool.run_operation(format!("CREATE TABLE {t} (a INTEGER)"), ())
        .await?;
    pool.run_operation(format!("INSERT INTO {t} VALUES (1)"), ())
        .await?;
    assert_eq!(pool.run_query(select.clone(), ()).await?[0].len(), 1);
    pool.run_operation(format!("DROP TABLE {t}"), ()).await?;
    pool.run_operation(format!("CREATE TABLE {t} (a INTEGER, b TEXT)"), ())
        .await?;
    pool.run_operation(format!("INSERT INTO {t} VALUES (1, 'x')"), ())
        .await?;
    let rows = match pool.run_query(select.clone(), ()).await {
        Ok(rows) => rows,
        Err(_) => pool.run_query(select.clone(), ()).await?,
    };
    assert_eq!(rows[0].get::<String>("b")?, "x");
    pool.run_operation(format!("DROP TABLE {t}"), ()).await?;
    pool.close().await?;
    Ok(())
}
