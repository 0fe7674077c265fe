//! Seed 002: the reactor's first events. Prints "Hello, ", then "World!" once the reactor is
//! running, and stops the reactor a second later (times `--scale`).
//!
//! ```text
//! cargo run --release --example hello_reactor -- --scale 1.0
//! ```
use torsion::{reactor, Failure};
use torsion_examples::{init_logging, Args};

/// Finishes the greeting; the reactor calls it once it is running.
fn print_world() {
    println!("World!");
}

fn main() -> Result<(), Failure> {
    init_logging();
    let scale: f64 = Args::from_env().get("--scale", 1.0);

    reactor().call_later(1.0 * scale, || reactor().stop().unwrap());

    print!("Hello, ");
    reactor().call_when_running(print_world);

    reactor().run()
}
