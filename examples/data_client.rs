//! The simple data client of Twisted's introduction, take 3 with a DeferredList: connects to
//! every server given, collects what each sends until it hangs up, and prints a summary per
//! server, in the order given. Exits with status 1 if any server failed.
//!
//! ```text
//! cargo run --release --example data_client -- localhost:8000 localhost:8001
//! ```
//!
//! From the seed 001.
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use clap::Parser;
use torsion::defer::{DeferredList, Trigger};
use torsion::error::ConnectionDone;
use torsion::tcp::Connector;
use torsion::transport::Address;
use torsion::{
    reactor, ClientFactory, ConnectionEnd, Deferred, Factory, Failure, Protocol, Transport,
};
use torsion_examples::init_logging;

/// Fetches what each server sends and prints a summary (Twisted's data client with a
/// DeferredList).
#[derive(Parser)]
struct Cli {
    /// The servers, as HOST:PORT.
    #[arg(required = true, value_name = "HOST:PORT", value_parser = parse_server)]
    servers: Vec<(String, u16)>,
}

/// Collects data until the connection is closed, then fires its Deferred with it.
struct SimpleData {
    data: Vec<u8>,
    deferred: Option<Trigger<Vec<u8>>>,
}

impl Protocol for SimpleData {
    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        self.data.extend_from_slice(data);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        let Some(d) = self.deferred.take() else {
            return;
        };
        if reason.check::<ConnectionDone>() {
            d.callback(std::mem::take(&mut self.data));
        } else {
            d.errback(reason); // a transport error is not a success
        }
    }
}

/// The factory gets a Deferred: it hands it to its protocol, or fails it if connecting fails.
struct SimpleDataClientFactory {
    deferred: RefCell<Option<Trigger<Vec<u8>>>>,
}

impl Factory for SimpleDataClientFactory {
    type Protocol = SimpleData;

    fn build_protocol(&self, _addr: &Address) -> Option<SimpleData> {
        Some(SimpleData {
            data: Vec::new(),
            deferred: self.deferred.take(),
        })
    }
}

impl ClientFactory for SimpleDataClientFactory {
    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        if let Some(d) = self.deferred.take() {
            d.errback(reason);
        }
    }
}

/// Everything `host:port` sends before it hangs up.
fn get_data(host: &str, port: u16) -> Deferred<Vec<u8>> {
    let d = Deferred::new();
    let factory = SimpleDataClientFactory {
        deferred: RefCell::new(Some(d.trigger())),
    };
    reactor().connect_tcp(host, port, factory);
    d
}

/// "N bytes: " and the first line of `data`, at most 60 characters of it.
fn summary(data: &[u8]) -> String {
    let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first.strip_suffix(b"\r").unwrap_or(first));
    let first: String = first.chars().take(60).collect();
    format!("{} bytes: {first}", data.len())
}

/// Splits `HOST:PORT`.
fn parse_server(server: &str) -> Result<(String, u16), String> {
    let (host, port) = server
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .ok_or("expected HOST:PORT, such as localhost:8000")?;
    let port = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port (0 to 65535)"))?;
    Ok((host.to_owned(), port))
}

/// Stops the reactor, unless it is already stopping (after Ctrl-C, say).
fn stop_reactor<T>(_: Result<T, Failure>) -> Result<(), Failure> {
    let _ = reactor().stop();
    Ok(())
}

fn main() -> Result<(), Failure> {
    let servers = Cli::parse().servers;
    init_logging();
    let exit_code = Rc::new(Cell::new(0));

    let downloads = servers
        .iter()
        .map(|(host, port)| get_data(host, *port).add_callback(|data| summary(&data)))
        .collect();
    let code = exit_code.clone();
    DeferredList::builder(downloads)
        .consume_errors(true)
        .build()
        .add_callback(move |results| {
            for ((host, port), result) in servers.iter().zip(results) {
                let server = format!("{host}:{port}");
                match result {
                    Ok(summary) => println!("{server}: {summary}"),
                    Err(failure) => {
                        println!("{server}: failed: {failure}");
                        code.set(1);
                    }
                }
            }
        })
        .add_both(stop_reactor);
    reactor().run()?;
    std::process::exit(exit_code.get())
}
