//! Looks a name up in the DNS and prints the answers as `dig +short` does, with Torsion's
//! DNS client (Twisted's `twisted.names.client`, as in the names howto's `testdns.py`).
//!
//! ```text
//! cargo run --example dns_lookup -- example.com
//! cargo run --example dns_lookup -- example.com --type MX
//! cargo run --example dns_lookup -- example.com --type AAAA --server 9.9.9.9:53
//! ```
//!
//! Without `--server` the lookup goes as Twisted's `createResolver` does: `/etc/hosts`, then
//! the servers of `/etc/resolv.conf`. A name with no such record exits with status 1 and the
//! reason on standard error.
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;

use clap::Parser;
use torsion::names::client::{create_resolver, ClientResolver};
use torsion::names::{Answer, RData, RecordType, Resolver};
use torsion::reactor;
use torsion_examples::init_logging;

/// Look a name up in the DNS with Twisted's names client (torsion::names); print the answers as `dig +short`.
#[derive(Parser)]
struct Cli {
    /// The name to look up.
    name: String,
    /// The record type: A, AAAA, MX, TXT, SRV, NS, CNAME, PTR, SOA, ANY, or a number.
    #[arg(long = "type", default_value = "A")]
    record_type: String,
    /// The server to ask (ADDRESS:PORT); by default /etc/hosts, then /etc/resolv.conf's.
    #[arg(long)]
    server: Option<SocketAddr>,
}

/// A record's data as `dig +short` prints it.
fn short(data: &RData) -> String {
    match data {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| {
                let text = String::from_utf8_lossy(s);
                format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

fn record_type(text: &str) -> Option<RecordType> {
    match text.parse::<u16>() {
        Ok(number) => Some(RecordType::from(number)),
        Err(_) => text.to_ascii_uppercase().parse().ok(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let Some(record_type) = record_type(&cli.record_type) else {
        eprintln!("unknown record type {:?}", cli.record_type);
        return ExitCode::from(2);
    };
    let r = reactor();
    let resolver: Rc<dyn Resolver> = match cli.server {
        Some(server) => Rc::new(ClientResolver::new(&r, vec![server])),
        None => Rc::new(create_resolver(&r, None, None, None)),
    };
    let status = Rc::new(std::cell::Cell::new(ExitCode::SUCCESS));
    let done = status.clone();
    let name = cli.name.clone();
    // Asked once the reactor runs, so an answer that comes at once (from /etc/hosts) can stop it.
    r.call_when_running(move || {
        resolver.lookup_record(&name.clone(), record_type).add_both(
            move |outcome: Result<Answer, torsion::Failure>| {
                match outcome {
                    Ok(answer) => {
                        for record in &answer.answers {
                            println!("{}", short(&record.data));
                        }
                    }
                    Err(failure) => {
                        eprintln!("{name}: {}", failure.error_message());
                        done.set(ExitCode::from(1));
                    }
                }
                reactor().stop()
            },
        );
    });
    if let Err(failure) = r.run() {
        eprintln!("{}", failure.report());
        return ExitCode::from(1);
    }
    status.get()
}
