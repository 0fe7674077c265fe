//! `run_later` from Twisted's Deferred introduction: a Deferred made from a timed event
//! (`reactor.callLater`). Prints "Hello" at 2 s, "Beautiful" at 3 s and "World" 3 s after
//! "Hello", then stops. With `--blocking`, the "World" callback sleeps for its 3 s instead,
//! blocking the reactor: Hello, World, Beautiful. `--scale S` multiplies every time.
//!
//! ```text
//! cargo run --release --example run_later -- --scale 1.0 [--blocking]
//! ```
//!
//! From the seed 002.
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use clap::Parser;
use torsion::defer::{gather_results, Deferred};
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// Deferreds sequencing timed calls (Twisted's callLater and Deferreds).
#[derive(Parser)]
struct Cli {
    /// Multiplies every time.
    #[arg(long, default_value_t = 1.0, value_parser = torsion_examples::scale, allow_negative_numbers = true)]
    scale: f64,
    /// Sleeps in the "World" callback instead, blocking the reactor.
    #[arg(long)]
    blocking: bool,
}

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
    let cli = Cli::parse();
    init_logging();
    LazyLock::force(&START);
    let scale = cli.scale;

    let d = run_later(2.0 * scale, || print_stuff("Hello"));
    let d = if cli.blocking {
        d.add_callback(move |_ignored| sleep_then_print(3.0 * scale, "World"))
    } else {
        d.add_callback_deferred(move |_ignored| run_later(3.0 * scale, || print_stuff("World")))
    };
    let beautiful = run_later(3.0 * scale, || print_stuff("Beautiful"));

    gather_results(vec![d, beautiful]).add_both(|_| reactor().stop());
    reactor().run()
}
