//! Scenario 4, in-process: Deferreds and timers on Torsion's reactor, the same three
//! measurements as `bench/twisted_micro.py`.
//!
//! ```text
//! micro [--seconds 2] [--only chains|timers|awaits] [--rounds N]
//! ```
//!
//! `--rounds N` makes each measurement run exactly N rounds (1,000 chains, 1,000,000 timers or
//! 100,000 awaits a round) instead of for a time: a fixed amount of work, so that
//! `valgrind --tool=callgrind` instruction counts of two values of N give the cost of one
//! operation, whatever the load on the machine.
//!
//! Prints one `name value` line per measurement:
//! - `chains_per_s`: a Deferred with 10 callbacks created and fired;
//! - `timers_per_s`: `call_later` scheduled then cancelled, in rounds of 1,000,000
//!   (schedule all, then cancel all), counted as scheduled-and-cancelled pairs per second;
//! - `awaits_per_s`: awaits of fired Deferreds inside an async function run with
//!   `ensure_deferred`, in rounds of 100,000.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion::defer::{ensure_deferred, succeed};
use torsion::{reactor, Deferred, Failure};

/// Runs `round` (which does `per_round` operations) until `budget` has passed, or exactly
/// `rounds` times when that is set; operations per second.
fn rate(budget: Duration, rounds: Option<u64>, per_round: u64, mut round: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut ops = 0u64;
    let mut done = 0u64;
    while match rounds {
        Some(n) => done < n,
        None => done == 0 || start.elapsed() < budget,
    } {
        round();
        ops += per_round;
        done += 1;
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

fn chain() -> u64 {
    let d: Deferred<u64> = Deferred::new();
    let fire = d.trigger();
    let d = d
        .add_callback(|x| x + 1)
        .add_callback(|x| x + 1)
        .add_callback(|x| x + 1)
        .add_callback(|x| x + 1)
        .add_callback(|x| x + 1)
        .add_callback(|x| x + 1)
        .add_callback(|x| x + 1)
        .add_callback(|x| x + 1)
        .add_callback(|x| x + 1)
        .add_callback(|x| x + 1);
    fire.callback(black_box(0));
    match d.result() {
        Some(Ok(v)) => v,
        other => panic!("the chain did not complete: {other:?}"),
    }
}

fn main() -> Result<(), Failure> {
    let budget = Duration::from_secs_f64(torsion_bench::arg("--seconds", 2.0));
    let rounds = Some(torsion_bench::arg("--rounds", 0u64)).filter(|&n| n > 0);
    let only: String = torsion_bench::arg("--only", String::new());
    let wanted = move |name: &str| only.is_empty() || only == name;
    let r = reactor();
    let failed = Rc::new(Cell::new(false));
    let f = failed.clone();
    r.call_when_running(move || {
        if wanted("chains") {
            let chains = rate(budget, rounds, 1000, || {
                for _ in 0..1000 {
                    assert_eq!(chain(), 10);
                }
            });
            println!("chains_per_s {chains:.0}");
        }

        if wanted("timers") {
            let mut calls = Vec::with_capacity(1_000_000);
            // One handle for the round, as Twisted's module-level `reactor`.
            let r = reactor();
            let timers = rate(budget, rounds, 1_000_000, || {
                for _ in 0..1_000_000 {
                    calls.push(r.call_later(3600.0, || ()));
                }
                for c in calls.drain(..) {
                    if c.cancel().is_err() {
                        f.set(true);
                    }
                }
            });
            println!("timers_per_s {timers:.0}");
        }
        if wanted("awaits") {
            let awaits = rate(budget, rounds, 100_000, || {
                let d = ensure_deferred(async {
                    let mut sum = 0u64;
                    for i in 0..100_000u64 {
                        sum += succeed(black_box(i)).await?;
                    }
                    Ok::<_, Failure>(sum)
                });
                match d.result() {
                    Some(Ok(sum)) => assert_eq!(sum, 100_000 * 99_999 / 2),
                    _ => f.set(true),
                }
            });
            println!("awaits_per_s {awaits:.0}");
        }
        reactor().stop()
    });
    r.run()?;
    if failed.get() {
        return Err(Failure::from_boxed(
            "a micro benchmark did not complete".into(),
        ));
    }
    Ok(())
}
