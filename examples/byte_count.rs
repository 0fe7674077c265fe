//! Seed 000: a multiprotocol application — a TCP protocol counting the bytes it receives and
//! a web page showing the count, sharing one plain object.
//!
//! ```text
//! cargo run --release --example byte_count -- --tcp-port 1033 --web-port 1080
//! ```
use std::cell::Cell;
use std::rc::Rc;

use torsion::web::{Render, Request, Resource, Site};
use torsion::{factory, reactor, Failure, Protocol, Transport};
use torsion_examples::{init_logging, Args};

/// A plain object: counts bytes.
#[derive(Default)]
struct Counter {
    count: Cell<u64>,
}

impl Counter {
    fn add(&self, number: u64) {
        self.count.set(self.count.get() + number);
    }
}

/// Counts the bytes it receives in the shared counter.
struct ByteCount {
    counter: Rc<Counter>,
}

impl Protocol for ByteCount {
    fn data_received(&mut self, _transport: &Transport, data: &[u8]) {
        self.counter.add(data.len() as u64);
    }
}

/// Shows the shared counter.
struct CountPage {
    counter: Rc<Counter>,
}

impl Resource for CountPage {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render_get(&self, _request: &Request) -> Render {
        format!("Received {} bytes", self.counter.count.get()).into()
    }
}

fn main() -> Result<(), Failure> {
    init_logging();
    let args = Args::from_env();
    let (tcp_port, web_port): (u16, u16) =
        (args.get("--tcp-port", 1033), args.get("--web-port", 1080));

    let counter = Rc::new(Counter::default());
    let shared = counter.clone();
    let tcp = reactor().listen_tcp(
        tcp_port,
        factory(move || ByteCount {
            counter: shared.clone(),
        }),
    )?;
    let web = reactor().listen_tcp(web_port, Site::new(CountPage { counter }))?;
    println!(
        "byte_count listening on {} (bytes) and {} (web)",
        tcp.get_host(),
        web.get_host()
    );
    reactor().run()
}
