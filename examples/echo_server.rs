//! Seed 000/004: the Echo protocol, listening on port 1033.
//!
//! ```text
//! cargo run --release --example echo_server -- --port 1033
//! ```
use torsion::{factory, reactor, Failure, Protocol, Transport};
use torsion_examples::{init_logging, Args};

/// Parrots back its input.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
    }
}

fn main() -> Result<(), Failure> {
    init_logging();
    let port: u16 = Args::from_env().get("--port", 1033);
    let listening = reactor().listen_tcp(port, factory(|| Echo))?;
    println!("echo server listening on {}", listening.get_host());
    reactor().run()
}
