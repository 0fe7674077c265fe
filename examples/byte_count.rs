//! A multiprotocol application, as in Twisted's introduction: a TCP protocol counting the
//! bytes it receives and a web page showing the count, sharing one plain object.
//!
//! ```text
//! cargo run --release --example byte_count -- --tcp-port 1033 --web-port 1080
//! nc localhost 1033              # send bytes
//! curl localhost:1080/           # Received N bytes
//! ```
//!
//! With `--manhole 8023`, a console on 127.0.0.1:8023 (telnet) reads and changes the count:
//! `count`, `count = 0`, `reset()`.
//!
//! From the seed 000.
use std::cell::Cell;
use std::net::IpAddr;
use std::rc::Rc;

use clap::Parser;
use torsion::web::{Render, Request, Resource, Site};
use torsion::{factory, reactor, Failure, Protocol, Transport};
use torsion_conch::manhole::{ManholeFactory, Registry};
use torsion_examples::init_logging;

/// A TCP byte counter and a web page showing the count (Twisted's multiprotocol example).
#[derive(Parser)]
struct Cli {
    /// The TCP port counting bytes (0 picks a free one).
    #[arg(long, default_value_t = 1033)]
    tcp_port: u16,
    /// The HTTP port showing the count (0 picks a free one).
    #[arg(long, default_value_t = 1080)]
    web_port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
    /// Serve a console (Rhai, over telnet) on this port of 127.0.0.1 that reads and changes
    /// the count (0 picks a free one).
    #[arg(long, value_name = "PORT")]
    manhole: Option<u16>,
}

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
    let cli = Cli::parse();
    init_logging();
    let interface = cli.interface.to_string();

    let counter = Rc::new(Counter::default());
    let shared = counter.clone();
    let tcp = reactor().listen_tcp_on(
        cli.tcp_port,
        factory(move || ByteCount {
            counter: shared.clone(),
        }),
        &interface,
    )?;
    let manhole = match cli.manhole {
        None => String::new(),
        Some(port) => {
            let registry = Registry::new();
            let (get, set, reset) = (counter.clone(), counter.clone(), counter.clone());
            registry.value_rw(
                "count",
                move || get.count.get() as i64,
                move |n: i64| match u64::try_from(n) {
                    Ok(n) => {
                        set.count.set(n);
                        Ok(())
                    }
                    Err(_) => Err(format!("count cannot be negative ({n})")),
                },
            );
            registry.function("reset", move || reset.count.set(0));
            let port = ManholeFactory::listen_telnet(&reactor(), port, "127.0.0.1", registry)
                .map_err(Failure::new)?;
            format!(" and {} (manhole)", port.get_host())
        }
    };
    let web =
        reactor().listen_tcp_on(cli.web_port, Site::new(CountPage { counter }), &interface)?;
    println!(
        "byte_count listening on {} (bytes) and {} (web){manhole}",
        tcp.get_host(),
        web.get_host()
    );
    reactor().run()
}
