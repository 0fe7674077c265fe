//! `torsiond`, Torsion's application runner (Twisted's `twistd`): it picks a plugin by name,
//! lets the plugin build a [`Service`] tree from its command-line options, runs the tree on
//! the reactor and stops it on SIGINT or SIGTERM.
//!
//! ```text
//! torsiond [RUNNER OPTIONS] <PLUGIN> [plugin options]
//! torsiond --workers 4 --pidfile /run/web.pid --logfile /var/log/web.log web --port 8080
//! torsiond web --path ./public --listen tcp:8080 --listen tcp:8443:interface=127.0.0.1
//! torsiond echo --listen tcp:1033
//! ```
//!
//! Runner options (before the plugin's name):
//!
//! | option | meaning |
//! |---|---|
//! | `-n`, `--nodaemon` | run in the foreground (accepted for `twistd` compatibility: always so) |
//! | `--log-level LEVEL` | `trace`, `debug`, `info` (default), `warn` or `error` |
//! | `--log-format text\|json` | text lines (default) or JSON lines |
//! | `-l`, `--logfile PATH` | log to a file instead of standard output (`-`: standard output) |
//! | `--log-rotate-size SIZE` | rotate the log file past SIZE bytes (`K`/`M`/`G` suffixes; default 10M; 0: never) |
//! | `--log-rotate-daily` | also rotate the log file when the day (UTC) changes |
//! | `--log-rotate-keep N` | rotated files kept: `PATH.1` (newest) to `PATH.N` (default 10) |
//! | `--pidfile PATH` | write the process ID there; refuse to start if it names a live process |
//! | `--workers N` | N threads, each with its own reactor and its own copy of the services, sharing TCP ports with `SO_REUSEPORT` (default 1) |
//! | `--umask OCTAL` | the file-creation mask, set before anything is created (e.g. `022`) |
//! | `--shutdown-timeout SECONDS` | how long a graceful stop waits for connections (default 10) |
//!
//! Stopping: SIGTERM or SIGINT stops gracefully. Every listening port closes at once (new
//! connections are refused), each connection is asked to finish ([`Protocol::drain`]: an
//! idle HTTP keep-alive connection closes at once, one in the middle of a response closes
//! after it), and what is still open after `--shutdown-timeout` is cut. A second signal
//! stops at once.
//!
//! Exit status: 0 after a clean stop, 2 for a usage error (an unknown option, a bad endpoint
//! string), 1 for a failure at run time (a missing folder, a port in use, a live pidfile).
//! Errors are one line on standard error, prefixed with `torsiond:`.
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

pub mod logging;
pub mod pidfile;
pub mod portforward;

use std::cell::Cell;
use std::ffi::OsString;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use clap::{Arg, ArgAction, ArgMatches, Command};
use torsion::application::{start_application, MultiService, Service, StreamServerEndpointService};
use torsion::defer::{succeed, Deferred};
use torsion::endpoints::{EndpointError, ServerDescription, ServerEndpoint};
use torsion::protocol::Factory;
use torsion::reactor::ReactorHandle;
use torsion::{factory, reactor, Protocol, Reactor, Transport};
use torsion_web::static_file::File;
use torsion_web::Site;

/// A kind of application `torsiond` can run (Twisted's `IServiceMaker`): a name for the
/// command line, its options, and how to build the service tree from them.
///
/// Plugins are shared by the worker threads (`--workers`), hence `Send + Sync`; the
/// services they build stay on their thread and need not be.
pub trait Plugin: Send + Sync {
    /// The name given on the command line (`torsiond NAME ...`).
    fn name(&self) -> &'static str;

    /// A one-line description, listed by `torsiond --help`.
    fn description(&self) -> &'static str;

    /// The plugin's options. The runner sets the command's name and about text from
    /// [`name`](Self::name) and [`description`](Self::description).
    fn command(&self) -> clap::Command;

    /// Builds the service tree from the parsed options (Twisted's `makeService`). Called once
    /// per worker thread, on that thread, before its reactor runs; the runner starts the tree
    /// when it does. Listening services made with [`listen_service`] share their TCP ports
    /// between the workers and stop gracefully.
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

/// The process's exit status, set by [`fail`].
static EXIT_CODE: AtomicU8 = AtomicU8::new(0);

/// The messages [`fail`] printed (each once, however many workers report it).
static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Every worker's reactor, so that a failure in one stops them all.
static WORKERS: Mutex<Vec<ReactorHandle>> = Mutex::new(Vec::new());

/// What the runner tells the services built on a worker thread.
#[derive(Debug, Clone, Copy)]
struct Settings {
    /// This thread's worker number, when there are several.
    worker: Option<usize>,
    /// How many workers share the ports.
    workers: usize,
    /// Seconds a graceful stop waits for connections.
    shutdown_timeout: f64,
}

const DEFAULT_SHUTDOWN_TIMEOUT: f64 = 10.0;

thread_local! {
    static SETTINGS: Cell<Settings> = const {
        Cell::new(Settings { worker: None, workers: 1, shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT })
    };
    /// Set while a [`ListenService`] starts listening: the framework's multi-line report of a
    /// failure to listen is then left out below debug level, as [`fail`] prints it in one line.
    static QUIET_LISTEN: Cell<bool> = const { Cell::new(false) };
}

/// This thread's worker number when `torsiond` runs several workers (`--workers`); `None`
/// with one worker, or outside the runner.
pub fn current_worker() -> Option<usize> {
    SETTINGS.with(Cell::get).worker
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reports a failure at run time: prints `torsiond: MESSAGE` on standard error (once, however
/// many workers report the same), makes the runner exit with status 1, and stops every
/// worker's reactor.
pub fn fail(message: impl fmt::Display) {
    let message = message.to_string();
    let first = {
        let mut seen = lock(&FAILURES);
        let first = !seen.contains(&message);
        if first {
            seen.push(message.clone());
        }
        first
    };
    if first {
        say(format_args!("torsiond: {message}"));
    }
    EXIT_CODE.store(1, Ordering::SeqCst);
    let r = reactor();
    if r.running() {
        let _ = r.stop();
    }
    for handle in lock(&WORKERS).iter() {
        handle.stop();
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
    /// A stopped service that will listen on `endpoint` with `factory`. Stopping it is
    /// graceful (see [`StreamServerEndpointService::set_drain_timeout`]) within the runner's
    /// `--shutdown-timeout`; with several workers, TCP ports are opened with `SO_REUSEPORT`
    /// so that every worker listens on the same port.
    pub fn new(endpoint: ServerEndpoint, factory: F) -> ListenService<F> {
        let settings = SETTINGS.with(Cell::get);
        let endpoint = if settings.workers > 1 {
            let any_port = matches!(
                endpoint.description(),
                ServerDescription::Tcp { port: 0, .. } | ServerDescription::Tcp6 { port: 0, .. }
            );
            if any_port && settings.worker == Some(0) {
                tracing::warn!(
                    "{endpoint}: with port 0 and --workers {}, each worker listens on a port of its own; name a port to share it",
                    settings.workers
                );
            }
            let options = endpoint.listen_options().reuse_port(true);
            endpoint.with_listen_options(options)
        } else {
            endpoint
        };
        let inner = StreamServerEndpointService::new(endpoint, factory);
        inner.set_drain_timeout(Some(settings.shutdown_timeout));
        ListenService { inner }
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
/// `tcp:8080`), `--port N` (Twisted's alias for `--listen tcp:N`, repeatable),
/// `--no-listing` (answer 403 for folders without an index page), `--no-access-log`
/// (by default each request is logged, in the combined log format, with the target
/// `torsion_web::access`), and `--no-open-file-cache` (by default served files stay open for
/// up to 10 s, at most 256 per worker, and are reused while their inode is unchanged; see
/// [`File::open_file_cache`]).
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
            .arg(
                Arg::new("no-access-log")
                    .long("no-access-log")
                    .action(ArgAction::SetTrue)
                    .help("Do not log a line per request"),
            )
            .arg(
                Arg::new("no-open-file-cache")
                    .long("no-open-file-cache")
                    .action(ArgAction::SetTrue)
                    .help("Open and close each file per request instead of keeping it open up to 10 s"),
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
        let cache = !matches.get_flag("no-open-file-cache");
        let site = Site::new(
            File::new(&path)
                .directory_listing(listing)
                .open_file_cache(cache),
        );
        if !matches.get_flag("no-access-log") {
            site.set_access_log(|line| tracing::info!(target: "torsion_web::access", "{line}"));
        }
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

/// Parses `--umask`: an octal mask up to `777`.
fn parse_umask(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s.trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("'{s}' is not an octal file mode mask (000 to 777)")),
    }
}

/// Parses `--shutdown-timeout`: seconds, 0 or more.
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(format!("'{s}' is not a number of seconds")),
    }
}

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
                .help("The least severe log events written"),
        )
        .arg(
            Arg::new("log-format")
                .long("log-format")
                .value_name("FORMAT")
                .value_parser(["text", "json"])
                .default_value("text")
                .help("Log lines as text, or as JSON objects (timestamp, level, target, message, fields)"),
        )
        .arg(
            Arg::new("logfile")
                .short('l')
                .long("logfile")
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Log to this file instead of standard output ('-' for standard output)"),
        )
        .arg(
            Arg::new("log-rotate-size")
                .long("log-rotate-size")
                .value_name("SIZE")
                .value_parser(logging::parse_size)
                .default_value("10M")
                .help("Rotate the log file when it would grow past SIZE bytes (K, M, G suffixes; 0: never)"),
        )
        .arg(
            Arg::new("log-rotate-daily")
                .long("log-rotate-daily")
                .action(ArgAction::SetTrue)
                .help("Also rotate the log file when the day (UTC) changes"),
        )
        .arg(
            Arg::new("log-rotate-keep")
                .long("log-rotate-keep")
                .value_name("N")
                .value_parser(clap::value_parser!(u16))
                .default_value("10")
                .help("How many rotated log files to keep (PATH.1 is the newest)"),
        )
        .arg(
            Arg::new("pidfile")
                .long("pidfile")
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Write the process ID to this file (removed at exit); refuse to start if it names a running process"),
        )
        .arg(
            Arg::new("workers")
                .long("workers")
                .value_name("N")
                .value_parser(clap::value_parser!(u16).range(1..=1024))
                .default_value("1")
                .help("Threads, each with its own reactor and copy of the services, sharing the TCP ports (SO_REUSEPORT)"),
        )
        .arg(
            Arg::new("umask")
                .long("umask")
                .value_name("OCTAL")
                .value_parser(parse_umask)
                .help("The file mode creation mask, set before anything is created (e.g. 022)"),
        )
        .arg(
            Arg::new("shutdown-timeout")
                .long("shutdown-timeout")
                .value_name("SECONDS")
                .value_parser(parse_seconds)
                .default_value("10")
                .help("On SIGTERM/SIGINT, how long to let open connections finish before closing them"),
        )
        .subcommands(
            plugins
                .iter()
                .map(|p| p.command().name(p.name()).about(p.description())),
        )
}

/// Brings the worker threads together after they built their services: none runs unless
/// every one built its tree.
struct Gate {
    state: Mutex<GateState>,
    turn: std::sync::Condvar,
}

struct GateState {
    arrived: usize,
    expected: usize,
    errors: Vec<(usize, String)>,
}

impl Gate {
    fn new(expected: usize) -> Gate {
        Gate {
            state: Mutex::new(GateState {
                arrived: 0,
                expected,
                errors: Vec::new(),
            }),
            turn: std::sync::Condvar::new(),
        }
    }

    /// Worker `index` could not build its services.
    fn error(&self, index: usize, message: String) {
        lock(&self.state).errors.push((index, message));
    }

    /// Only `count` workers exist (a thread could not be started).
    fn shrink(&self, count: usize, message: String) {
        let mut state = lock(&self.state);
        state.expected = count;
        state.errors.push((count, message));
        self.turn.notify_all();
    }

    /// Waits for every worker; true when all built their services.
    fn wait(&self) -> bool {
        let mut state = lock(&self.state);
        state.arrived += 1;
        self.turn.notify_all();
        while state.arrived < state.expected {
            state = self
                .turn
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        state.errors.is_empty()
    }

    /// The first worker's error, if any failed.
    fn first_error(&self) -> Option<String> {
        let state = lock(&self.state);
        state
            .errors
            .iter()
            .min_by_key(|(i, _)| *i)
            .map(|(_, m)| m.clone())
    }
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// One worker: its own reactor and its own copy of the plugin's services.
fn worker(
    index: usize,
    settings: Settings,
    plugin: &dyn Plugin,
    matches: &ArgMatches,
    gate: &Gate,
) {
    SETTINGS.with(|s| {
        s.set(Settings {
            worker: (settings.workers > 1).then_some(index),
            ..settings
        })
    });
    let r = Reactor::new();
    let built = catch_unwind(AssertUnwindSafe(|| plugin.make_service(matches)))
        .unwrap_or_else(|p| Err(format!("the plugin panicked: {}", panic_text(p.as_ref()))));
    let root = match built {
        Ok(root) => {
            lock(&WORKERS).push(r.handle());
            Some(root)
        }
        Err(message) => {
            gate.error(index, format!("{}: {message}", plugin.name()));
            None
        }
    };
    if !gate.wait() {
        return;
    }
    let Some(root) = root else { return };
    start_application(&r, root);
    if settings.workers > 1 {
        r.call_when_running(|| tracing::debug!("worker running"));
    }
    if let Err(failure) = r.run() {
        fail(failure.error_message());
    }
    // The application stopped here (a signal, or a service called `reactor().stop()`):
    // the other workers stop too (a reactor already stopping ignores this).
    for handle in lock(&WORKERS).iter() {
        handle.stop();
    }
}

/// Runs `torsiond` with `plugins` and the command line `args` (program name first): parses
/// the options, sets the umask, starts logging, writes the pidfile, builds the chosen
/// plugin's service tree on each worker thread, runs them until SIGINT or SIGTERM, and
/// returns the exit status.
pub fn run<I, T>(plugins: Vec<Box<dyn Plugin>>, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = match command(&plugins).try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => return usage_error(&e),
    };
    if let Some(&mask) = matches.get_one::<u32>("umask") {
        // umask(2) cannot fail; rustix makes the call without `unsafe` in this crate.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
    }
    if let Err(message) = init_logging(&matches) {
        say(format_args!("torsiond: {message}"));
        return ExitCode::from(1);
    }
    let Some((name, sub)) = matches.subcommand() else {
        say(format_args!(
            "torsiond: no plugin given (see torsiond --help)"
        ));
        return ExitCode::from(2);
    };
    let Some(plugin) = plugins.iter().find(|p| p.name() == name) else {
        say(format_args!("torsiond: no plugin named {name}"));
        return ExitCode::from(2);
    };
    let pidfile = match matches.get_one::<PathBuf>("pidfile") {
        None => None,
        Some(path) => match pidfile::PidFile::create(path) {
            Ok(p) => Some(p),
            Err(message) => {
                say(format_args!("torsiond: {message}"));
                return ExitCode::from(1);
            }
        },
    };
    let settings = Settings {
        worker: None,
        workers: usize::from(*matches.get_one::<u16>("workers").unwrap_or(&1)),
        shutdown_timeout: *matches
            .get_one::<f64>("shutdown-timeout")
            .unwrap_or(&DEFAULT_SHUTDOWN_TIMEOUT),
    };
    let gate = Gate::new(settings.workers);
    let plugin: &dyn Plugin = plugin.as_ref();
    std::thread::scope(|scope| {
        for index in 1..settings.workers {
            let (gate, plugin) = (&gate, plugin);
            let spawned = std::thread::Builder::new()
                .name(format!("torsiond-worker-{index}"))
                .spawn_scoped(scope, move || worker(index, settings, plugin, sub, gate));
            if let Err(e) = spawned {
                gate.shrink(index, format!("cannot start worker thread {index}: {e}"));
                break;
            }
        }
        worker(0, settings, plugin, sub, &gate);
    });
    if let Some(message) = gate.first_error() {
        say(format_args!("torsiond: {message}"));
        return ExitCode::from(1);
    }
    tracing::info!("stopped");
    drop(pidfile);
    ExitCode::from(EXIT_CODE.load(Ordering::SeqCst))
}

/// Sends log events to standard output or a rotating file, as text or JSON lines.
fn init_logging(matches: &ArgMatches) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer as _;
    let level = logging::level_of(
        matches
            .get_one::<String>("log-level")
            .map_or("info", String::as_str),
    );
    let format = match matches.get_one::<String>("log-format").map(String::as_str) {
        Some("json") => logging::LogFormat::Json,
        _ => logging::LogFormat::Text,
    };
    let sink = match matches.get_one::<PathBuf>("logfile") {
        Some(path) if path.as_os_str() != "-" => {
            let size = *matches.get_one::<u64>("log-rotate-size").unwrap_or(&0);
            let daily = matches.get_flag("log-rotate-daily");
            let keep = usize::from(*matches.get_one::<u16>("log-rotate-keep").unwrap_or(&10));
            let file = logging::RotatingFile::open(path, size, daily, keep)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            logging::LogSink::File(file)
        }
        _ => logging::LogSink::Stdout,
    };
    let verbose = level >= tracing::Level::DEBUG;
    let filter = tracing_subscriber::filter::filter_fn(move |m| {
        *m.level() <= level
            && (verbose
                || !(m.target() == "torsion"
                    && *m.level() == tracing::Level::ERROR
                    && QUIET_LISTEN.with(Cell::get)))
    })
    .with_max_level_hint(level);
    let subscriber = tracing_subscriber::registry()
        .with(logging::LogLayer::new(format, sink).with_filter(filter));
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
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
