//! Seed 004: "Twisted Web Hello World" — a leaf resource rendering one page.
//!
//! ```text
//! cargo run --release --example hello_web -- --port 8880
//! ```
use torsion::web::{Render, Request, Resource, Site};
use torsion::{reactor, Failure};
use torsion_examples::{init_logging, Args};

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
    init_logging();
    let port: u16 = Args::from_env().get("--port", 8880);
    let listening = reactor().listen_tcp(port, Site::new(HelloPage))?;
    println!("hello_web listening on {}", listening.get_host());
    reactor().run()
}
