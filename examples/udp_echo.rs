//! A UDP echo server, Twisted's `EchoUDP` from the UDP howto: every datagram goes back to
//! its sender. Try it with `nc -u localhost 9999`.
//!
//! ```text
//! cargo run --release --example udp_echo -- --port 9999
//! ```
use std::net::IpAddr;

use clap::Parser;
use torsion::datagram::{DatagramProtocol, DatagramTransport};
use torsion::transport::Address;
use torsion::udp::UdpOptions;
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// A UDP echo server (Twisted's EchoUDP).
#[derive(Parser)]
struct Cli {
    /// The UDP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 9999)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
}

/// Parrots back each datagram.
struct Echo;

impl DatagramProtocol for Echo {
    fn datagram_received(&mut self, transport: &DatagramTransport, data: &[u8], addr: &Address) {
        if let Err(e) = transport.write(data, addr) {
            eprintln!("could not answer {addr}: {e}");
        }
    }
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let options = UdpOptions {
        interface: cli.interface,
        ..UdpOptions::default()
    };
    let listening = reactor().listen_udp_with(cli.port, Echo, options)?;
    println!("udp echo listening on {}", listening.get_host());
    reactor().run()
}
