//! Measures the pool: N small queries on SQLite (in memory, a file with 1 and 4
//! connections) and, with `TORSION_PG_URL` set, PostgreSQL; all submitted at once, timed
//! until the last Deferred fires. N stays under the pool's queue limit (10,000): beyond it,
//! calls are refused with `QueueFull`, by design.
//!
//! ```text
//! cargo run --release -p torsion-db --example pool_bench -- 8000
//! ```
use std::time::Instant;

use torsion::defer::{ensure_deferred, gather_results};
use torsion::{reactor, Failure};
use torsion_db::ConnectionPool;

async fn measure(url: &str, max: usize, n: usize) -> Result<(), Failure> {
    let pool = ConnectionPool::new(url, 1, max)?;
    pool.run_operation("CREATE TABLE IF NOT EXISTS t (k INTEGER, v TEXT)", ())
        .await?;
    pool.run_operation("DELETE FROM t", ()).await?;
    pool.run_operation("INSERT INTO t VALUES (1, 'one'), (2, 'two')", ())
        .await?;
    let start = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|i| pool.run_query("SELECT v FROM t WHERE k = $1", ((i % 2 + 1) as i64,)))
        .collect();
    let rows = gather_results(calls).await?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(rows.len(), n);
    println!(
        "{url} (max {max}): {n} queries in {secs:.3} s = {:.0} queries/s, {:.1} µs each",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
    pool.close().await?;
    Ok(())
}

fn main() -> Result<(), Failure> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(8_000);
    let file = std::env::temp_dir().join(format!("torsion-pool-bench-{}.db", std::process::id()));
    let file_url = format!("sqlite:{}", file.display());
    reactor().call_when_running(move || {
        ensure_deferred(async move {
            measure("sqlite::memory:", 1, n).await?;
            measure(&file_url, 1, n).await?;
            measure(&file_url, 4, n).await?;
            if let Ok(pg) = std::env::var("TORSION_PG_URL") {
                measure(&pg, 1, n).await?;
                measure(&pg, 4, n).await?;
            }
            Ok::<_, Failure>(())
        })
        .add_both(|r| {
            if let Err(f) = r {
                eprintln!("{f}");
            }
            reactor().stop()
        })
    });
    let result = reactor().run();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = file.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    result
}
