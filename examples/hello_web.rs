//! Twisted Web's "Hello World": a leaf resource rendering one page for every path.
//!
//! ```text
//! cargo run --release --example hello_web -- --port 8880
//! curl localhost:8880/
//! ```
//!
//! From the seed 004.
use std::net::IpAddr;

use clap::Parser;
use torsion::web::{Render, Request, Resource, Site};
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// One page for every path (Twisted Web's Hello World).
#[derive(Parser)]
struct Cli {
    /// The HTTP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8880)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
}

/// Renders the same page for every path.
struct HelloPage;

impl Resource for HelloPage {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render_get(&self, _request: &Request) -> Render {
        "<html><body>Hello Twisted</body></html>".into()
    }
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let listening =
        reactor().listen_tcp_on(cli.port, Site::new(HelloPage), &cli.interface.to_string())?;
    println!("hello_web listening on {}", listening.get_host());
    reactor().run()
}
