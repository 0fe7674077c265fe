//! A plugin from outside `torsiond`: a crate of your own implements [`torsiond::Plugin`] and
//! makes its own runner binary with the built-in plugins plus its own. Every runner option
//! (`--workers`, `--logfile`, `--pidfile`, graceful stop...) works for it unchanged.
//!
//! ```text
//! cargo run -p torsiond --example greeter_plugin -- greeter --listen tcp:1079 --greeting Hi
//! printf 'Ada\r\n' | nc -q1 127.0.0.1 1079        # Hi, Ada! (greeting 1 of this worker)
//! cargo run -p torsiond --example greeter_plugin -- --workers 2 greeter
//! ```
//!
//! See docs/plugins.md for the walk-through.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;

use clap::{Arg, ArgAction, ArgMatches, Command};
use torsion::application::{MultiService, Service};
use torsion::endpoints::{ServerDescription, ServerEndpoint};
use torsion::protocols::basic::{LineOnly, LineOnlyReceiver, LineSender};
use torsion::{factory, reactor};
use torsiond::{builtin_plugins, listen_service, parse_endpoint, Plugin};

/// `greeter`: answers each line `NAME` with `GREETING, NAME!`.
struct GreeterPlugin;

impl Plugin for GreeterPlugin {
    fn name(&self) -> &'static str {
        "greeter"
    }

    fn description(&self) -> &'static str {
        "Greet every line a client sends (an example plugin)"
    }

    fn command(&self) -> Command {
        Command::new("greeter")
            .arg(
                Arg::new("listen")
                    .long("listen")
                    .value_name("ENDPOINT")
                    .action(ArgAction::Append)
                    .value_parser(parse_endpoint)
                    .help("Where to listen (repeatable; default tcp:1079)"),
            )
            .arg(
                Arg::new("greeting")
                    .long("greeting")
                    .value_name("WORD")
                    .default_value("Hello")
                    .help("The word to greet with"),
            )
    }

    /// Called once per worker thread: the state below (an `Rc<Cell>`) is that worker's own.
    fn make_service(&self, matches: &ArgMatches) -> Result<Rc<dyn Service>, String> {
        let greeting: Rc<str> = matches
            .get_one::<String>("greeting")
            .map_or("Hello", String::as_str)
            .into();
        if greeting.contains(['\r', '\n']) {
            return Err("the greeting must be one line".into());
        }
        let count = Rc::new(Cell::new(0u64));
        let mut endpoints: Vec<ServerDescription> = matches
            .get_many::<ServerDescription>("listen")
            .map(|v| v.cloned().collect())
            .unwrap_or_default();
        if endpoints.is_empty() {
            endpoints.push(parse_endpoint("tcp:1079").map_err(|e| e.to_string())?);
        }
        let root = Rc::new(MultiService::new());
        for description in endpoints {
            let (greeting, count) = (greeting.clone(), count.clone());
            let endpoint = ServerEndpoint::new(&reactor(), description);
            let make = factory(move || {
                LineOnly::new(Greeter {
                    greeting: greeting.clone(),
                    count: count.clone(),
                })
            });
            root.add_service(listen_service(endpoint, make))
                .map_err(|e| e.to_string())?;
        }
        Ok(root)
    }
}

/// One connection: a greeting per line.
struct Greeter {
    greeting: Rc<str>,
    count: Rc<Cell<u64>>,
}

impl LineOnlyReceiver for Greeter {
    fn line_received(&mut self, transport: &LineSender<'_>, line: &[u8]) {
        let name = String::from_utf8_lossy(line);
        self.count.set(self.count.get() + 1);
        let answer = format!(
            "{}, {}! (greeting {} of this worker)",
            self.greeting,
            name.trim(),
            self.count.get()
        );
        transport.send_line(answer.as_bytes());
    }

    /// A graceful stop (SIGTERM): each line is answered as it arrives, so between two calls
    /// nothing is in progress. Close at once (what was written is still sent first) instead of
    /// holding the stop until the runner's `--shutdown-timeout`.
    fn drain(&mut self, transport: &LineSender<'_>) {
        transport.lose_connection();
    }
}

fn main() -> ExitCode {
    let mut plugins = builtin_plugins();
    plugins.push(Box::new(GreeterPlugin));
    torsiond::run(plugins, std::env::args_os())
}
