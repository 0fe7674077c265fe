//! Twisted's `deferToThread`: `defer_to_thread` runs a blocking computation — summing the
//! primes below N — in a worker thread while a LoopingCall prints a tick every 0.1 s,
//! showing that the reactor stays responsive. Prints the result and stops.
//!
//! ```text
//! cargo run --release --example threads_demo -- --n 2000000
//! ```
//!
//! From the seed 001's threads.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use clap::Parser;
use torsion::task::LoopingCall;
use torsion::threads::defer_to_thread;
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// A blocking computation in a thread while the reactor ticks (Twisted's deferToThread).
#[derive(Parser)]
struct Cli {
    /// Sums the primes below this number.
    #[arg(long, default_value_t = 2_000_000)]
    n: u64,
}

/// The sum of the primes below `n`, by trial division: deliberately slow, blocking work.
fn sum_primes_below(n: u64) -> u64 {
    (2..n)
        .filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0))
        .sum()
}

fn main() -> Result<(), Failure> {
    let n = Cli::parse().n;
    init_logging();
    let start = Instant::now();

    let ticker = LoopingCall::with_count(move |_| {
        println!("tick ({:.1}s)", start.elapsed().as_secs_f64());
    });
    ticker.start(0.1, true);

    println!("summing the primes below {n} in a thread...");
    // What the thread ended with; a failure (a panic in the worker) becomes main's error, so
    // the program exits 1 with it rather than 0.
    let outcome = Rc::new(RefCell::new(Ok(())));
    let keep = outcome.clone();
    defer_to_thread(move || sum_primes_below(n)).add_both(move |sum| {
        ticker.stop();
        match sum {
            Ok(sum) => println!(
                "result: the primes below {n} sum to {sum} ({:.2}s)",
                start.elapsed().as_secs_f64()
            ),
            Err(failure) => *keep.borrow_mut() = Err(failure),
        }
        reactor().stop()
    });
    reactor().run()?;
    outcome.replace(Ok(()))
}
