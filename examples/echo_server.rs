//! The Echo protocol, Twisted's `echoserv.py`: every byte a client sends comes back to it.
//! Listens on port 1033; try it with `nc localhost 1033`.
//!
//! ```text
//! cargo run --release --example echo_server -- --port 1033
//! ```
//!
//! From the seeds 000 and 004.
use std::net::IpAddr;
use std::rc::Rc;

use clap::Parser;
use torsion::{factory, reactor, Failure, Protocol, Transport};
use torsion_examples::init_logging;

/// The Echo protocol over TCP (Twisted's echoserv.py).
#[derive(Parser)]
struct Cli {
    /// The TCP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 1033)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
}

/// Parrots back its input.
struct Echo;

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        // Flow control: the transport is the producer of what it echoes, so it stops reading
        // while its write buffer is over the high watermark (a client that sends without
        // reading) and reads again once that drains. Without this, memory grows without bound.
        let _ = transport.register_producer(Rc::new(transport.clone()), true);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
    }
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let listening =
        reactor().listen_tcp_on(cli.port, factory(|| Echo), &cli.interface.to_string())?;
    println!("echo server listening on {}", listening.get_host());
    reactor().run()
}
