//! The simple data server of Twisted's introduction: sends each client the bytes of a file,
//! then hangs up. Try it with `nc localhost 8000`.
//!
//! ```text
//! cargo run --release --example data_server -- --port 8000 --file README.md
//! ```
//!
//! From the seed 001.
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;

use clap::Parser;
use torsion::{factory, reactor, Failure, Protocol, Transport};
use torsion_examples::{init_logging, startup_error};

/// Sends each client a file, then hangs up (Twisted's simple data server).
#[derive(Parser)]
struct Cli {
    /// The TCP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
    /// The file to send.
    #[arg(long)]
    file: PathBuf,
}

/// Sends its data as soon as the connection is made, then closes the connection.
struct SendData {
    data: Rc<[u8]>,
}

impl Protocol for SendData {
    fn connection_made(&mut self, transport: &Transport) {
        transport.write(&self.data);
        transport.lose_connection(); // once everything written has been sent
    }

    fn data_received(&mut self, _transport: &Transport, _data: &[u8]) {}
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let data: Rc<[u8]> = std::fs::read(&cli.file)
        .map_err(|e| startup_error(format!("cannot read --file {}: {e}", cli.file.display())))?
        .into();

    let listening = reactor().listen_tcp_on(
        cli.port,
        factory(move || SendData { data: data.clone() }),
        &cli.interface.to_string(),
    )?;
    println!("data server listening on {}", listening.get_host());
    reactor().run()
}
