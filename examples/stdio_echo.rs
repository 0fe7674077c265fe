//! Twisted's `StandardIO`: a line protocol over this process's own stdin and stdout. Every
//! line read is written back; at end of input the program says goodbye on stderr and exits.
//! As with Twisted's `LineReceiver`, an unterminated last line is dropped.
//!
//! ```text
//! printf 'one\ntwo\n' | cargo run --release --example stdio_echo
//! cargo run --release --example stdio_echo            # type lines; Ctrl-D ends
//! ```
use clap::Parser;
use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::stdio::StandardIO;
use torsion::{reactor, ConnectionEnd, Failure};
use torsion_examples::init_logging;

/// Echoes the lines of standard input to standard output (Twisted's StandardIO).
#[derive(Parser)]
struct Cli {}

/// Echoes each line, and counts them.
#[derive(Default)]
struct LineEcho {
    lines: usize,
}

impl LineReceiver for LineEcho {
    fn delimiter(&self) -> &[u8] {
        b"\n"
    }

    fn line_received(&mut self, transport: &mut LineTransport<'_>, line: &[u8]) {
        self.lines += 1;
        transport.send_line(line);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        // stdout is closed by now: report on stderr.
        eprintln!("stdio_echo: end of input after {} line(s)", self.lines);
        let _ = reactor().stop();
    }
}

fn main() -> Result<(), Failure> {
    Cli::parse();
    init_logging();
    StandardIO::new(Lines::new(LineEcho::default()))?;
    reactor().run()
}
