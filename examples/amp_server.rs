//! The AMP server of Twisted's AMP howto (`ampserver.py`): answers `Sum` and `Divide`, and a
//! division by zero with the error code `ZERO_DIVISION`. Twisted's `ampclient.py` works
//! against it unchanged.
//!
//! ```text
//! cargo run --release --example amp_server -- --port 1234
//! ```
use std::net::IpAddr;

use clap::Parser;
use torsion::amp::{Amp, Locator, RemoteError};
use torsion::{factory, reactor, Failure};
use torsion_examples::amp_math::{Divide, DivideResult, Sum, SumResult};
use torsion_examples::init_logging;

/// Serves Twisted's AMP howto commands, Sum and Divide.
#[derive(Parser)]
struct Cli {
    /// The TCP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 1234)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
}

/// The howto's `Math` responders.
fn math() -> Locator {
    Locator::new()
        .responder(|c: Sum, _| {
            let total = c.a.checked_add(c.b);
            println!("Did a sum: {} + {} = {total:?}", c.a, c.b);
            total
                .map(|total| SumResult { total })
                .ok_or_else(|| RemoteError::new("OVERFLOW", "integer overflow"))
        })
        .responder(|c: Divide, _| {
            if c.denominator == 0 {
                // Python's ZeroDivisionError, declared as ZERO_DIVISION.
                return Err(RemoteError::new("ZERO_DIVISION", "division by zero"));
            }
            let result = c.numerator as f64 / c.denominator as f64;
            println!("Divided: {} / {} = {result}", c.numerator, c.denominator);
            Ok(DivideResult { result })
        })
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let listening = reactor().listen_tcp_on(
        cli.port,
        factory(|| Amp::new(math())),
        &cli.interface.to_string(),
    )?;
    println!("amp server listening on {}", listening.get_host());
    reactor().run()
}
