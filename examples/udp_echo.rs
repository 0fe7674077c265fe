//! A UDP echo server: every datagram goes back to its sender (Twisted's `EchoUDP` from the
//! UDP howto).
//!
//! ```text
//! cargo run --release --example udp_echo -- --port 9999
//! ```
use torsion::datagram::{DatagramProtocol, DatagramTransport};
use torsion::transport::Address;
use torsion::{reactor, Failure};
use torsion_examples::{init_logging, Args};

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
    init_logging();
    let port: u16 = Args::from_env().get("--port", 9999);
    let listening = reactor().listen_udp(port, Echo)?;
    println!("udp echo listening on {}", listening.get_host());
    reactor().run()
}
