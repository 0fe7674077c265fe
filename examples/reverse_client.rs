//! The RemoteReverser client of Twisted's Deferred introduction: `reverse(message)` returns
//! a Deferred that fires with the first line the reverse server sends back; the program
//! prints it and stops. Exits with status 1 if the server cannot be reached or hangs up
//! without answering.
//!
//! ```text
//! cargo run --release --example reverse_client -- --host localhost --port 9999 --message Hello
//! ```
//!
//! From the seed 002.
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use clap::Parser;
use torsion::defer::Trigger;
use torsion::error::{ConnectionDone, ConnectionLost};
use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::tcp::Connector;
use torsion::transport::Address;
use torsion::{reactor, ClientFactory, ConnectionEnd, Deferred, Factory, Failure};
use torsion_examples::init_logging;

/// Sends a line to a reverse server and prints the answer (Twisted's RemoteReverser client).
#[derive(Parser)]
struct Cli {
    /// The reverse server's host name or address.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// The reverse server's TCP port.
    #[arg(long, default_value_t = 9999)]
    port: u16,
    /// The line to reverse.
    #[arg(long, default_value = "Hello")]
    message: String,
}

/// Sends one line when connected, and fires its Deferred with the first line it gets back.
struct ReverseClient {
    /// Fired once, then `None`: the seed's `d, self._deferred = self._deferred, None` dance.
    deferred: Option<Trigger<Vec<u8>>>,
    string: Vec<u8>,
}

impl LineReceiver for ReverseClient {
    fn connection_made(&mut self, transport: &mut LineTransport<'_>) {
        transport.send_line(&self.string);
    }

    fn line_received(&mut self, _transport: &mut LineTransport<'_>, line: &[u8]) {
        if let Some(d) = self.deferred.take() {
            d.callback(line.to_vec());
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        // Hung up before answering: the caller hears why.
        if let Some(d) = self.deferred.take() {
            d.errback(reason);
        }
    }
}

/// Makes the one connection of a `reverse` call. Holds the Deferred's trigger until it
/// hands it to the protocol, or fires it itself if connecting fails.
struct ReverseClientFactory {
    deferred: RefCell<Option<Trigger<Vec<u8>>>>,
    string: Vec<u8>,
}

impl Factory for ReverseClientFactory {
    type Protocol = Lines<ReverseClient>;

    fn build_protocol(&self, _addr: &Address) -> Option<Self::Protocol> {
        Some(Lines::new(ReverseClient {
            deferred: self.deferred.take(),
            string: self.string.clone(),
        }))
    }
}

impl ClientFactory for ReverseClientFactory {
    fn client_connection_failed(&self, _connector: &Connector, reason: Failure) {
        if let Some(d) = self.deferred.take() {
            d.errback(reason);
        }
    }
}

/// An API for reversing strings on a remote reverse server.
struct RemoteReverser {
    host: String,
    port: u16,
}

impl RemoteReverser {
    /// Sends `some_string` to the host to be reversed.
    fn reverse(&self, some_string: &[u8]) -> Deferred<Vec<u8>> {
        let d = Deferred::new();
        let factory = ReverseClientFactory {
            deferred: RefCell::new(Some(d.trigger())),
            string: some_string.to_vec(),
        };
        reactor().connect_tcp(&self.host, self.port, factory);
        d
    }
}

/// Stops the reactor, unless it is already stopping (after Ctrl-C, say).
fn stop_reactor<T>(_: Result<T, Failure>) -> Result<(), Failure> {
    let _ = reactor().stop();
    Ok(())
}

fn main() -> Result<(), Failure> {
    let Cli {
        host,
        port,
        message,
    } = Cli::parse();
    init_logging();
    let exit_code = Rc::new(Cell::new(0));

    let reverser = RemoteReverser { host, port };
    let server = format!("{}:{}", reverser.host, reverser.port);
    let code = exit_code.clone();
    reverser
        .reverse(message.as_bytes())
        .add_callbacks(
            |line| println!("{}", String::from_utf8_lossy(&line)),
            move |failure| {
                if failure.check::<ConnectionDone>() || failure.check::<ConnectionLost>() {
                    eprintln!("error: {server} hung up without answering: {failure}");
                } else {
                    eprintln!("error: could not reach {server}: {failure}");
                }
                code.set(1);
                Ok(())
            },
        )
        .add_both(stop_reactor);
    reactor().run()?;
    std::process::exit(exit_code.get())
}
