//! Seed 002: the ReverseLineProtocol server. Sends back every line it receives, reversed,
//! and hangs up after ten lines.
//!
//! ```text
//! cargo run --release --example reverse_server -- --port 9999
//! ```
use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::{factory, reactor, Failure};
use torsion_examples::{init_logging, Args};

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
    init_logging();
    let port: u16 = Args::from_env().get("--port", 9999);
    let listening = reactor().listen_tcp(port, factory(|| Lines::new(ReverseLine::default())))?;
    println!("reverse server listening on {}", listening.get_host());
    reactor().run()
}
