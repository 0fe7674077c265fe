//! Seed 002: `run_later`, a Deferred made from a timed event. Prints "Hello" at 2 s,
//! "Beautiful" at 3 s and "World" 3 s after "Hello", then stops. With `--blocking`, the
//! "World" callback sleeps for its 3 s instead, blocking the reactor: Hello, World, Beautiful.
//! `--scale S` multiplies every time.
//!
//! ```text
//! cargo run --release --example run_later -- --scale 1.0 [--blocking]
//! ```
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use torsion::defer::{gather_results, Deferred};
use torsion::{reactor, Failure};
use torsion_examples::{init_logging, Args};

/// When the program started, for the time stamps.
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Calls `function` in `seconds` seconds; the Deferred fires with what it returns.
fn run_later<T: 'static>(seconds: f64, function: impl FnOnce() -> T + 'static) -> Deferred<T> {
    let d = Deferred::new();
    let fire = d.trigger();
    reactor().call_later(seconds, move || fire.callback(function()));
    d
}

/// Prints `message` with the time since the start.
fn print_stuff(message: &str) {
    println!("[{:.2}s] {message}", START.elapsed().as_secs_f64());
}

/// Blocks the whole reactor for `seconds`, then prints `message`.
fn sleep_then_print(seconds: f64, message: &str) {
    std::thread::sleep(Duration::from_secs_f64(seconds));
    print_stuff(message);
}

fn main() -> Result<(), Failure> {
    init_logging();
    LazyLock::force(&START);
    let args = Args::from_env();
    let scale: f64 = args.get("--scale", 1.0);

    let d = run_later(2.0 * scale, || print_stuff("Hello"));
    let d = if args.flag("--blocking") {
        d.add_callback(move |_ignored| sleep_then_print(3.0 * scale, "World"))
    } else {
        d.add_callback_deferred(move |_ignored| run_later(3.0 * scale, || print_stuff("World")))
    };
    let beautiful = run_later(3.0 * scale, || print_stuff("Beautiful"));

    gather_results(vec![d, beautiful]).add_both(|_| reactor().stop());
    reactor().run()
}
