//! Twisted's `adbapi`: "Most database calls are blocking — adbapi runs blocking DB calls in
//! separate threads". A `ConnectionPool` runs the queries in worker threads; the results
//! come back to the reactor as Deferreds. A database error ends the program with status 1.
//!
//! ```text
//! cargo run --release --example db_demo                                    # SQLite in memory
//! cargo run --release --example db_demo -- --db postgres://postgres@localhost/postgres
//! ```
//!
//! From the seed 001's database access.
use std::cell::RefCell;
use std::rc::Rc;

use clap::Parser;
use torsion::db::{ConnectionPool, Row};
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// Blocking database calls in worker threads (Twisted's adbapi ConnectionPool).
#[derive(Parser)]
struct Cli {
    /// The database: sqlite::memory:, sqlite:FILE, or postgres://USER@HOST/DB.
    #[arg(long, default_value = "sqlite::memory:")]
    db: String,
}

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
    let db = Cli::parse().db;
    init_logging();
    let pool = ConnectionPool::new(&db, 1, 3)?;
    let failed: Rc<RefCell<Option<Failure>>> = Rc::default();
    let failure = failed.clone();
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
    .add_errback(move |f| {
        *failure.borrow_mut() = Some(f);
        Ok(())
    })
    .add_callback_deferred(move |()| pool.close())
    .add_both(|_| reactor().stop());
    reactor().run()?;
    match failed.take() {
        Some(f) => Err(f),
        None => Ok(()),
    }
}
