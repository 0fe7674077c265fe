//! Seed 001's database access: "Most database calls are blocking — adbapi runs blocking DB
//! calls in separate threads". A `ConnectionPool` runs the queries in worker threads; the
//! results come back to the reactor as Deferreds.
//!
//! ```text
//! cargo run --release --example db_demo                                    # SQLite in memory
//! cargo run --release --example db_demo -- --db postgres://postgres@localhost/postgres
//! ```
use torsion::db::{ConnectionPool, Row};
use torsion::{reactor, Failure};
use torsion_examples::{init_logging, Args};

/// Twisted's `getAge(user)`: a query whose rows arrive later.
fn get_age(pool: &ConnectionPool, user: &str) -> torsion::Deferred<Vec<Row>> {
    pool.run_query("SELECT age FROM users WHERE name = $1", (user,))
}

fn print_result(rows: Vec<Row>) -> Result<(), Failure> {
    match rows.first() {
        Some(row) => println!("joe is {} years old", row.get::<i64>("age")?),
        None => println!("no such user"),
    }
    Ok(())
}

fn main() -> Result<(), Failure> {
    init_logging();
    let db = Args::from_env()
        .text("--db")
        .unwrap_or("sqlite::memory:")
        .to_owned();
    let pool = ConnectionPool::new(&db, 1, 3)?;
    // A transaction: the table and its rows appear together, or not at all.
    pool.run_interaction(|txn| {
        txn.execute_batch(
            "DROP TABLE IF EXISTS users; CREATE TABLE users (name TEXT, age INTEGER)",
        )?;
        txn.execute_many(
            "INSERT INTO users VALUES ($1, $2)",
            [("joe", 42), ("ann", 37)],
        )
    })
    .add_callback(|inserted| println!("inserted {inserted} users"))
    .add_callback_deferred({
        let pool = pool.clone();
        move |()| get_age(&pool, "joe")
    })
    .add_callback_result(print_result)
    .add_errback(|failure| {
        println!("database error: {failure}");
        Ok(())
    })
    .add_callback_deferred(move |()| pool.close())
    .add_both(|_| reactor().stop());
    reactor().run()
}
