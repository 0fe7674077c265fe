//! Seed 000: "Welcome user number N" — a resource with state.
//!
//! ```text
//! cargo run --release --example web_counter -- --port 1080
//! ```
use std::cell::Cell;

use torsion::web::{Render, Request, Resource, Site};
use torsion::{reactor, Failure};
use torsion_examples::{init_logging, Args};

/// Counts its visitors. All URLs under it render with it (`is_leaf`).
#[derive(Default)]
struct Counter {
    users: Cell<u64>,
}

impl Resource for Counter {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render_get(&self, _request: &Request) -> Render {
        self.users.set(self.users.get() + 1);
        format!("Welcome user number {}", self.users.get()).into()
    }
}

fn main() -> Result<(), Failure> {
    init_logging();
    let port: u16 = Args::from_env().get("--port", 1080);
    let listening = reactor().listen_tcp(port, Site::new(Counter::default()))?;
    println!("web_counter listening on {}", listening.get_host());
    reactor().run()
}
