//! The first reactor program of Twisted's Deferred introduction: prints "Hello, ", then
//! "World!" once the reactor is running (`callWhenRunning`), and stops the reactor a second
//! later (`callLater`; times `--scale`).
//!
//! ```text
//! cargo run --release --example hello_reactor -- --scale 1.0
//! ```
//!
//! From the seed 002.
use clap::Parser;
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// Hello, World! from the reactor (Twisted's callWhenRunning and callLater).
#[derive(Parser)]
struct Cli {
    /// Multiplies the one-second wait before stopping.
    #[arg(long, default_value_t = 1.0, value_parser = torsion_examples::scale, allow_negative_numbers = true)]
    scale: f64,
}

/// Finishes the greeting; the reactor calls it once it is running.
fn print_world() {
    println!("World!");
}

fn main() -> Result<(), Failure> {
    let scale = Cli::parse().scale;
    init_logging();

    reactor().call_later(1.0 * scale, || reactor().stop().unwrap());

    print!("Hello, ");
    reactor().call_when_running(print_world);

    reactor().run()
}
