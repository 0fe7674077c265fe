//! Seed 001: the simple data server. Sends each client the bytes of a file, then hangs up.
//!
//! ```text
//! cargo run --release --example data_server -- --port 8000 --file README.md
//! ```
use std::rc::Rc;

use torsion::{factory, reactor, Failure, Protocol, Transport};
use torsion_examples::{init_logging, Args};

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
    init_logging();
    let args = Args::from_env();
    let port: u16 = args.get("--port", 8000);
    let Some(path) = args.text("--file") else {
        eprintln!("usage: data_server [--port P] --file F");
        std::process::exit(2)
    };
    let data: Rc<[u8]> = match std::fs::read(path) {
        Ok(data) => data.into(),
        Err(e) => {
            eprintln!("error: cannot read {path}: {e}");
            std::process::exit(1)
        }
    };

    let listening = reactor().listen_tcp(port, factory(move || SendData { data: data.clone() }))?;
    println!("data server listening on {}", listening.get_host());
    reactor().run()
}
