//! "Welcome user number N", from Twisted's introduction: a web resource with state.
//!
//! ```text
//! cargo run --release --example web_counter -- --port 1080
//! curl localhost:1080/
//! ```
//!
//! From the seed 000.
use std::net::IpAddr;

use clap::Parser;
use std::cell::Cell;

use torsion::web::{Render, Request, Resource, Site};
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// "Welcome user number N": a web resource with state (Twisted Web).
#[derive(Parser)]
struct Cli {
    /// The HTTP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 1080)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
}

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
    let cli = Cli::parse();
    init_logging();
    let listening = reactor().listen_tcp_on(
        cli.port,
        Site::new(Counter::default()),
        &cli.interface.to_string(),
    )?;
    println!("web_counter listening on {}", listening.get_host());
    reactor().run()
}
