//! A line-based chat server, Twisted's `chatserver.py`: every line a client sends goes to
//! every other client, as "<address> says: <line>". Try it with several
//! `nc -C localhost 8123` (lines end with CRLF: plain `nc` sends only LF, and the server
//! waits for the CR) or `telnet localhost 8123`.
//!
//! ```text
//! cargo run --release --example chat_server -- --port 8123
//! ```
use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;

use clap::Parser;
use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::tcp::ListenOptions;
use torsion::transport::WriteLimit;
use torsion::{factory, reactor, ConnectionEnd, Failure, Transport};
use torsion_examples::init_logging;

/// A line-based chat server (Twisted's chatserver.py).
#[derive(Parser)]
struct Cli {
    /// The TCP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8123)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
}

/// The most a chatter may leave unread: past this many bytes waiting to be sent to it, a
/// client is dropped rather than buffered for without limit (one that never reads would
/// otherwise make the server grow until it runs out of memory). The listener gives every
/// connection this write limit; the framework aborts the connection and logs a warning
/// naming the peer when a write would pass it.
const MAX_UNREAD: usize = 1024 * 1024;

/// Everyone connected: the factory's shared state. We keep transports, not protocols.
type Clients = Rc<RefCell<Vec<Transport>>>;

/// One chatter.
struct Chat {
    clients: Clients,
    /// This connection's transport, to find it in `clients` when it goes.
    me: Option<Transport>,
    /// How the others see this chatter: the peer's address.
    name: String,
}

impl LineReceiver for Chat {
    fn connection_made(&mut self, transport: &mut LineTransport<'_>) {
        let peer = transport.get_peer();
        self.name = peer
            .socket_addr()
            .map_or(peer.to_string(), |a| a.to_string());
        self.me = Some(transport.transport().clone());
        self.clients
            .borrow_mut()
            .push(transport.transport().clone());
    }

    fn line_received(&mut self, transport: &mut LineTransport<'_>, line: &[u8]) {
        let says = format!("{} says: ", self.name);
        for other in self.clients.borrow().iter() {
            if other.same(transport.transport()) {
                continue;
            }
            // Past MAX_UNREAD the write limit drops this chatter instead of buffering.
            other.write_sequence(&[says.as_bytes(), line, transport.delimiter()]);
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        if let Some(me) = self.me.take() {
            self.clients.borrow_mut().retain(|t| !t.same(&me));
        }
    }
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let clients = Clients::default();
    let chat = factory(move || {
        Lines::new(Chat {
            clients: clients.clone(),
            me: None,
            name: String::new(),
        })
    });
    let options = ListenOptions::default().write_limit(Some(WriteLimit::disconnect(MAX_UNREAD)));
    let listening =
        reactor().listen_tcp_with(cli.port, chat, &cli.interface.to_string(), options)?;
    println!("chat server listening on {}", listening.get_host());
    reactor().run()
}
