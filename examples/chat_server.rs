//! A line-based chat server: every line a client sends goes to every other client, as
//! "<address> says: <line>". Try it with several `telnet localhost 8123`.
//!
//! ```text
//! cargo run --release --example chat_server -- --port 8123
//! ```
use std::cell::RefCell;
use std::rc::Rc;

use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::{factory, reactor, ConnectionEnd, Failure, Transport};
use torsion_examples::{init_logging, Args};

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
            if !other.same(transport.transport()) {
                other.write_sequence(&[says.as_bytes(), line, transport.delimiter()]);
            }
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        if let Some(me) = self.me.take() {
            self.clients.borrow_mut().retain(|t| !t.same(&me));
        }
    }
}

fn main() -> Result<(), Failure> {
    init_logging();
    let port: u16 = Args::from_env().get("--port", 8123);
    let clients = Clients::default();
    let chat = factory(move || {
        Lines::new(Chat {
            clients: clients.clone(),
            me: None,
            name: String::new(),
        })
    });
    let listening = reactor().listen_tcp(port, chat)?;
    println!("chat server listening on {}", listening.get_host());
    reactor().run()
}
