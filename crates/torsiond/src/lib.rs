//! `torsiond`, Torsion's application runner (Twisted's `twistd`): it picks a plugin by name,
//! lets the plugin build a [`Service`](torsion::application::Service) tree from its command-line options, runs the tree on
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
//! | `-V`, `--version` | print the version and exit |
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
//! | `-u`, `--uid USER` | once every worker bound its ports, switch the whole process to this user (name or uid; as twistd: start as root to bind ports below 1024) |
//! | `-g`, `--gid GROUP` | the group to switch to (default: the `--uid` user's group) |
//! | `--chroot DIR` | once the ports are bound, before `--uid`: `chroot(2)` to DIR; paths the plugin opens while serving (`web --path`) are then inside DIR |
//! | `--syslog` | log to the local syslog daemon (`/dev/log`) instead of standard output (not with `--logfile`) |
//! | `--prefix NAME` | with `--syslog`, the tag of the lines: `NAME[PID]: ...` (default `torsiond`) |
//! | `--facility NAME` | with `--syslog`: `user` (default), `daemon`, `local0` ... `local7` |
//! | `--manhole ENDPOINT` | a console into the running program (Rhai): over SSH with `--manhole-keys`, else telnet on a loopback interface only |
//! | `--manhole-keys FILE` | serve the manhole over SSH, on any interface, to the keys of this OpenSSH `authorized_keys` file |
//! | `--manhole-host-key FILE` | the SSH manhole's host key (made there if missing; default `$XDG_STATE_HOME/torsiond/manhole_host_ed25519_key`) |
//!
//! Text log lines are coloured only when standard output is a terminal; a log sent to a file
//! or a pipe holds no ANSI escape codes (see [`logging`]).
//!
//! Start-up order: the options are read, the umask set, logging started, the pidfile
//! written; each worker builds its services and binds its ports; then, once, for the whole
//! process: `--chroot`, the groups, `--gid`, `--uid` (glibc's `setuid`, which every thread
//! takes), and a check that `setuid(0)` now fails; only then do the workers accept
//! connections. A failure at any step is one line on standard error and status 1.
//!
//! Stopping: SIGTERM or SIGINT stops gracefully. Every listening port closes at once (new
//! connections are refused), each connection is asked to finish ([`Protocol::drain`](torsion::Protocol::drain): an
//! idle HTTP keep-alive connection closes at once, one in the middle of a response closes
//! after it), and what is still open after `--shutdown-timeout` is cut. A second signal
//! stops at once.
//!
//! Exit status: 0 after a clean stop, 2 for a usage error (an unknown option, a bad endpoint
//! string), 1 for a failure at run time (a missing folder, a port in use, a live pidfile).
//! Errors are one line on standard error, prefixed with `torsiond:`: the cause, and the fix
//! where it is known (a usage error ends with `(see torsiond PLUGIN --help)` when it is in
//! the plugin's options).
//!
//! `torsiond web` serves every non-hidden file under `--path` on the interfaces its endpoints
//! name (`tcp:8080` is every interface; `tcp:8080:interface=127.0.0.1` only loopback).
//! Entries whose name starts with `.` (`.git`, `.env`) are answered 404 unless
//! `--show-hidden`; see [`WebPlugin`].
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

// The runner's and the built-in plugins' log events name their target (`torsiond`,
// `torsiond::portforward`) rather than take the module path of the file they are in: the
// target is part of every log line, and it stays what it was before lib.rs was split.
mod cli;
mod exit;
mod gate;
mod listen;
mod manhole;
mod plugins;
mod privileges;
mod runner;
mod settings;

pub use cli::command;
pub use exit::fail;
pub use listen::{endpoint, listen_service, parse_endpoint, ListenService};
pub use manhole::{count_request, Counted, CountingFactory};
pub use plugins::{
    builtin_plugins, portforward, DnsPlugin, Echo, EchoPlugin, FtpPlugin, IrcPlugin, MailPlugin,
    NewsPlugin, Plugin, WebPlugin,
};
pub use runner::run;
pub use settings::current_worker;
