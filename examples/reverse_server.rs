//! The ReverseLineProtocol server of Twisted's Deferred introduction: sends back every line
//! it receives, reversed, and hangs up after ten lines. Try it with `nc -C localhost 9999`
//! (lines end with CRLF: plain `nc` sends only LF, and the server waits for the CR).
//!
//! ```text
//! cargo run --release --example reverse_server -- --port 9999
//! ```
//!
//! From the seed 002.
use std::net::IpAddr;

use clap::Parser;
use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::{factory, reactor, Failure};
use torsion_examples::init_logging;

/// Sends back every line reversed (Twisted's ReverseLineProtocol server).
#[derive(Parser)]
struct Cli {
    /// The TCP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 9999)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
}

/// Line-based protocol that echoes any lines it receives in reverse. Disconnects the client
/// when ten lines have been received.
#[derive(Default)]
struct ReverseLine {
    lines_received: usize,
}

impl LineReceiver for ReverseLine {
    fn line_received(&mut self, transport: &mut LineTransport<'_>, line: &[u8]) {
        let reversed: Vec<u8> = line.iter().rev().copied().collect();
        transport.send_line(&reversed);
        self.lines_received += 1;
        if self.lines_received >= 10 {
            transport.lose_connection();
        }
    }
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let listening = reactor().listen_tcp_on(
        cli.port,
        factory(|| Lines::new(ReverseLine::default())),
        &cli.interface.to_string(),
    )?;
    println!("reverse server listening on {}", listening.get_host());
    reactor().run()
}
