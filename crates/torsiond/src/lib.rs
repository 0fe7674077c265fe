//! `torsiond`, Torsion's application runner (Twisted's `twistd`): it picks a plugin by name,
//! lets the plugin build a [`Service`] tree from its command-line options, runs the tree on
//! the reactor and stops it on SIGINT or SIGTERM.
//!
//! ```text
//! torsiond [-n|--nodaemon] [--log-level LEVEL] <PLUGIN> [plugin options]
//! torsiond web --path ./public --listen tcp:8080 --listen tcp:8443:interface=127.0.0.1
//! torsiond echo --listen tcp:1033
//! ```
//!
//! Exit status: 0 after a clean stop, 2 for a usage error (an unknown option, a bad endpoint
//! string), 1 for a failure at run time (a missing folder, a port in use). Errors are one line
//! on standard error, prefixed with `torsiond:`.
//!
//! # A runner with plugins of your own
//!
//! The runner is this library's [`run`]; the binary only calls it with [`builtin_plugins`].
//! A crate of your own can implement [`Plugin`] and make its own runner binary:
//!
//! ```no_run
//! use std::rc::Rc;
//! use torsion::application::Service;
//! use torsiond::{builtin_plugins, listen_service, Plugin};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn name(&self) -> &'static str { "hello" }
//!     fn description(&self) -> &'static str { "Says hello over TCP" }
//!     fn command(&self) -> clap::Command { clap::Command::new("hello") }
//!     fn make_service(&self, _: &clap::ArgMatches) -> Result<Rc<dyn Service>, String> {
//!         let endpoint = torsiond::endpoint("tcp:1034").map_err(|e| e.to_string())?;
//!         Ok(listen_service(endpoint, torsion::factory(|| HelloProtocol)))
//!     }
//! }
//!
//! struct HelloProtocol;
//! impl torsion::Protocol for HelloProtocol {
//!     fn connection_made(&mut self, t: &torsion::Transport) {
//!         t.write(b"hello\r\n");
//!         t.lose_connection();
//!     }
//!     fn data_received(&mut self, _: &torsion::Transport, _: &[u8]) {}
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let mut plugins = builtin_plugins();
//!     plugins.push(Box::new(Hello));
//!     torsiond::run(plugins, std::env::args_os())
//! }
//! ```

pub mod portforward;

use std::cell::Cell;
use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use clap::{Arg, ArgAction, ArgMatches, Command};
use torsion::application::{start_application, MultiService, Service, StreamServerEndpointService};
use torsion::defer::{succeed, Deferred};
use torsion::endpoints::{EndpointError, ServerDescription, ServerEndpoint};
use torsion::protocol::Factory;
use torsion::{factory, reactor, Protocol, Transport};
use torsion_web::static_file::File;
use torsion_web::Site;

/// A kind of application `torsiond` can run (Twisted's `IServiceMaker`): a name for the
/// command line, its options, and how to build the service tree from them.
pub trait Plugin {
    /// The name given on the command line (`torsiond NAME ...`).
    fn name(&self) -> &'static str;

    /// A one-line description, listed by `torsiond --help`.
    fn description(&self) -> &'static str;

    /// The plugin's options. The runner sets the command's name and about text from
    /// [`name`](Self::name) and [`description`](Self::description).
    fn command(&self) -> clap::Command;

    /// Builds the service tree from the parsed options (Twisted's `makeService`). Called before
    /// the reactor runs; the runner starts the tree when it does.
    ///
    /// # Errors
    /// A one-line message for the user: the runner prints it and exits with status 1.
    fn make_service(&self, matches: &clap::ArgMatches) -> Result<Rc<dyn Service>, String>;
}

/// The plugins built into `torsiond`: [`WebPlugin`] and [`EchoPlugin`].
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    vec![
        Box::new(WebPlugin),
        Box::new(EchoPlugin),
        Box::new(portforward::PortForwardPlugin),
    ]
}

// ---------------------------------------------------------------------------------------
// Exit status

thread_local! {
    static EXIT_CODE: Cell<u8> = const { Cell::new(0) };
    /// Set while a [`ListenService`] starts listening: the framework's multi-line report of a
    /// failure to listen is then left out below debug level, as [`fail`] prints it in one line.
    static QUIET_LISTEN: Cell<bool> = const { Cell::new(false) };
}

/// Reports a failure at run time: prints `torsiond: MESSAGE` on standard error, makes the
/// runner exit with status 1, and stops the reactor (if it runs).
pub fn fail(message: impl fmt::Display) {
    say(format_args!("torsiond: {message}"));
    EXIT_CODE.with(|c| c.set(1));
    let r = reactor();
    if r.running() {
        let _ = r.stop();
    }
}

// ---------------------------------------------------------------------------------------
// Helpers for plugins

/// Parses an endpoint string (`tcp:8080:interface=127.0.0.1`) for this thread's reactor.
///
/// # Errors
/// The [`EndpointError`] naming the part that is wrong.
pub fn endpoint(s: &str) -> Result<ServerEndpoint, EndpointError> {
    torsion::endpoints::server_from_string(&reactor(), s)
}

/// A `clap` value parser for endpoint strings, so a bad one is a usage error that names the
/// wrong part.
///
/// # Errors
/// The [`EndpointError`] from parsing.
pub fn parse_endpoint(s: &str) -> Result<ServerDescription, EndpointError> {
    s.parse()
}

/// A [`StreamServerEndpointService`] that logs `listening on ADDRESS` once it listens, and
/// reports a failure to listen with [`fail`] (so the runner exits with status 1).
pub struct ListenService<F: Factory> {
    inner: StreamServerEndpointService<F>,
}

impl<F: Factory> ListenService<F> {
    /// A stopped service that will listen on `endpoint` with `factory`.
    pub fn new(endpoint: ServerEndpoint, factory: F) -> ListenService<F> {
        ListenService {
            inner: StreamServerEndpointService::new(endpoint, factory),
        }
    }

    /// The wrapped service.
    pub fn inner(&self) -> &StreamServerEndpointService<F> {
        &self.inner
    }
}

impl<F: Factory> fmt::Debug for ListenService<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ListenService").field(&self.inner).finish()
    }
}

impl<F: Factory> Service for ListenService<F> {
    fn name(&self) -> Option<String> {
        self.inner.name()
    }

    fn running(&self) -> bool {
        self.inner.running()
    }

    fn privileged_start_service(&self) {
        self.inner.privileged_start_service();
    }

    fn start_service(&self) {
        QUIET_LISTEN.with(|q| q.set(true));
        self.inner.start_service();
        QUIET_LISTEN.with(|q| q.set(false));
        drop(self.inner.when_listening().add_both(|outcome| {
            match outcome {
                Ok(address) => tracing::info!("listening on {address}"),
                Err(failure) => fail(failure.error_message()),
            }
            Ok::<(), torsion::Failure>(())
        }));
    }

    fn stop_service(&self) -> Deferred<()> {
        if self.inner.running() {
            self.inner.stop_service()
        } else {
            succeed(())
        }
    }
}

/// A [`ListenService`] for `endpoint` and `factory`, as a service to add to a tree.
pub fn listen_service<F: Factory>(endpoint: ServerEndpoint, factory: F) -> Rc<dyn Service> {
    Rc::new(ListenService::new(endpoint, factory))
}

/// Endpoint descriptions gathered from an option given as [`parse_endpoint`] values.
fn endpoints_of(matches: &ArgMatches, id: &str) -> Vec<ServerDescription> {
    matches
        .get_many::<ServerDescription>(id)
        .map(|v| v.cloned().collect())
        .unwrap_or_default()
}

/// A `--listen ENDPOINT` option (repeatable), parsed with [`parse_endpoint`].
fn listen_arg(default: &'static str) -> Arg {
    Arg::new("listen")
        .long("listen")
        .value_name("ENDPOINT")
        .action(ArgAction::Append)
        .value_parser(parse_endpoint)
        .help(format!(
            "Where to listen, as an endpoint string (repeatable; default {default})"
        ))
}

/// A tree of one listening service per endpoint.
fn multi_listen<F: Factory + Clone>(
    endpoints: Vec<ServerDescription>,
    factory: F,
) -> Rc<dyn Service> {
    let root = Rc::new(MultiService::new());
    let r = reactor();
    for description in endpoints {
        let endpoint = ServerEndpoint::new(&r, description);
        root.add_service(listen_service(endpoint, factory.clone()))
            .expect("the services have no names");
    }
    root
}

// ---------------------------------------------------------------------------------------
// web

/// `torsiond web`: serves a folder over HTTP (Twisted's `twistd web --path`), with
/// [`File`] behind a [`Site`] on each endpoint.
///
/// Options: `--path DIR` (default `.`), `--listen ENDPOINT` (repeatable, default
/// `tcp:8080`), `--port N` (Twisted's alias for `--listen tcp:N`, repeatable), and
/// `--no-listing` (answer 403 for folders without an index page).
#[derive(Debug, Clone, Copy, Default)]
pub struct WebPlugin;

impl Plugin for WebPlugin {
    fn name(&self) -> &'static str {
        "web"
    }

    fn description(&self) -> &'static str {
        "Serve the files of a folder over HTTP"
    }

    fn command(&self) -> Command {
        Command::new("web")
            .arg(
                Arg::new("path")
                    .long("path")
                    .value_name("DIR")
                    .value_parser(clap::value_parser!(PathBuf))
                    .default_value(".")
                    .help("The folder (or file) to serve"),
            )
            .arg(listen_arg("tcp:8080"))
            .arg(
                Arg::new("port")
                    .long("port")
                    .value_name("N")
                    .action(ArgAction::Append)
                    .value_parser(clap::value_parser!(u16))
                    .help("Listen on TCP port N (the same as --listen tcp:N)"),
            )
            .arg(
                Arg::new("no-listing")
                    .long("no-listing")
                    .action(ArgAction::SetTrue)
                    .help("Answer 403 for folders without an index page instead of listing them"),
            )
    }

    fn make_service(&self, matches: &ArgMatches) -> Result<Rc<dyn Service>, String> {
        let path = matches
            .get_one::<PathBuf>("path")
            .cloned()
            .unwrap_or_else(|| PathBuf::from("."));
        if !path.exists() {
            return Err(format!("no such file or folder: {}", path.display()));
        }
        let mut endpoints = endpoints_of(matches, "listen");
        if let Some(ports) = matches.get_many::<u16>("port") {
            for port in ports {
                endpoints.push(parse_endpoint(&format!("tcp:{port}")).map_err(|e| e.to_string())?);
            }
        }
        if endpoints.is_empty() {
            endpoints.push(parse_endpoint("tcp:8080").expect("a valid default"));
        }
        let listing = !matches.get_flag("no-listing");
        let site = Site::new(File::new(&path).directory_listing(listing));
        tracing::info!("serving {}", path.display());
        Ok(multi_listen(endpoints, site))
    }
}

// ---------------------------------------------------------------------------------------
// echo

/// `torsiond echo`: the Echo protocol (RFC 862), sending back whatever it receives.
///
/// Options: `--listen ENDPOINT` (repeatable, default `tcp:1033`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoPlugin;

/// Sends back what it receives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
    }
}

impl Plugin for EchoPlugin {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn description(&self) -> &'static str {
        "Echo back whatever clients send (RFC 862)"
    }

    fn command(&self) -> Command {
        Command::new("echo").arg(listen_arg("tcp:1033"))
    }

    fn make_service(&self, matches: &ArgMatches) -> Result<Rc<dyn Service>, String> {
        let mut endpoints = endpoints_of(matches, "listen");
        if endpoints.is_empty() {
            endpoints.push(parse_endpoint("tcp:1033").expect("a valid default"));
        }
        Ok(multi_listen(endpoints, Rc::new(factory(|| Echo))))
    }
}

// ---------------------------------------------------------------------------------------
// The runner

/// The top-level command: the runner's options and one subcommand per plugin.
pub fn command(plugins: &[Box<dyn Plugin>]) -> Command {
    Command::new("torsiond")
        .about("Runs a Torsion application until SIGINT or SIGTERM (Twisted's twistd)")
        .subcommand_required(true)
        .subcommand_value_name("PLUGIN")
        .subcommand_help_heading("Plugins")
        .disable_help_subcommand(true)
        .arg(
            Arg::new("nodaemon")
                .short('n')
                .long("nodaemon")
                .action(ArgAction::SetTrue)
                .help("Run in the foreground (accepted for twistd compatibility: torsiond always does)"),
        )
        .arg(
            Arg::new("log-level")
                .long("log-level")
                .value_name("LEVEL")
                .value_parser(["trace", "debug", "info", "warn", "error"])
                .default_value("info")
                .help("The least severe log events shown on standard error"),
        )
        .subcommands(
            plugins
                .iter()
                .map(|p| p.command().name(p.name()).about(p.description())),
        )
}

/// Runs `torsiond` with `plugins` and the command line `args` (program name first): parses
/// the options, builds the chosen plugin's service tree, runs it on this thread's reactor
/// until SIGINT or SIGTERM, and returns the exit status.
pub fn run<I, T>(plugins: Vec<Box<dyn Plugin>>, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = match command(&plugins).try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => return usage_error(&e),
    };
    let level = match matches.get_one::<String>("log-level").map(String::as_str) {
        Some("trace") => tracing::Level::TRACE,
        Some("debug") => tracing::Level::DEBUG,
        Some("warn") => tracing::Level::WARN,
        Some("error") => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    init_logging(level);

    let Some((name, sub)) = matches.subcommand() else {
        say(format_args!(
            "torsiond: no plugin given (see torsiond --help)"
        ));
        return ExitCode::from(2);
    };
    let plugin = plugins
        .iter()
        .find(|p| p.name() == name)
        .expect("clap only accepts known plugins");
    let root = match plugin.make_service(sub) {
        Ok(root) => root,
        Err(message) => {
            say(format_args!("torsiond: {name}: {message}"));
            return ExitCode::from(1);
        }
    };
    let r = reactor();
    start_application(&r, root);
    if let Err(failure) = r.run() {
        say(format_args!("torsiond: {}", failure.error_message()));
        return ExitCode::from(1);
    }
    tracing::info!("stopped");
    ExitCode::from(EXIT_CODE.with(Cell::get))
}

/// Logs to standard error at `level` and above.
fn init_logging(level: tracing::Level) {
    use tracing_subscriber::layer::SubscriberExt;
    let verbose = level >= tracing::Level::DEBUG;
    let quiet = tracing_subscriber::filter::filter_fn(move |m| {
        verbose
            || !(m.target() == "torsion"
                && *m.level() == tracing::Level::ERROR
                && QUIET_LISTEN.with(Cell::get))
    });
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level)
        .with_target(false)
        // A failed write to stderr (closed by whoever started us) must not be reported by
        // printing to stderr, which would panic.
        .log_internal_errors(false)
        .finish()
        .with(quiet);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Prints a clap error: help and version in full on standard output (status 0), anything
/// else as one line on standard error (status 2).
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("usage error");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            say(format_args!("torsiond: {first} (see torsiond --help)"));
            ExitCode::from(2)
        }
    }
}

/// Writes one line to standard error, ignoring a closed stderr (`eprintln!` would panic).
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
