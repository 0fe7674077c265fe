//! The AMP client of Twisted's AMP howto (`ampclient.py`): calls `Sum` of 13 and 81, then
//! `Divide` 1234 by 0, traps the `ZERO_DIVISION` error as the howto does, and prints each
//! result and the error. Works against `examples/amp_server.rs` and Twisted's `ampserver.py`.
//!
//! ```text
//! cargo run --release --example amp_client -- --port 1234
//! ```
use std::process::ExitCode;

use clap::Parser;
use torsion::amp::{Amp, Locator, RemoteError};
use torsion::defer::ensure_deferred;
use torsion::endpoints::client_from_string;
use torsion::task::react;
use torsion::{factory, Failure};
use torsion_examples::amp_math::{Divide, Sum};
use torsion_examples::init_logging;

/// Calls Sum and Divide on an AMP server (Twisted's AMP howto client).
#[derive(Parser)]
struct Cli {
    /// The AMP server's host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The AMP server's TCP port.
    #[arg(long, default_value_t = 1234)]
    port: u16,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    react(move |r| {
        let r = r.clone();
        ensure_deferred(async move {
            let endpoint = client_from_string(&r, &format!("tcp:{}:{}", cli.host, cli.port))?;
            let conn = endpoint
                .connect_deferred(factory(|| Amp::new(Locator::new())))
                .await?;
            let amp = conn.protocol().borrow().sender();
            // Both calls are in flight at once, as the howto's two Deferreds are.
            let sum = amp.call_remote(Sum { a: 13, b: 81 });
            let divide = amp.call_remote(Divide {
                numerator: 1234,
                denominator: 0,
            });
            let total = sum.await?.total;
            println!("Sum(13, 81): total = {total}");
            let result = match divide.await {
                Ok(answer) => answer.result,
                Err(failure) => {
                    let error = RemoteError::trap(failure, "ZERO_DIVISION")?;
                    println!(
                        "Divide(1234, 0): error {}: {}",
                        error.code, error.description
                    );
                    println!("Divided by zero: returning INF");
                    f64::INFINITY
                }
            };
            println!("Done with math: [(True, {total}), (True, {result})]");
            conn.transport().lose_connection();
            Ok::<(), Failure>(())
        })
    })
}
