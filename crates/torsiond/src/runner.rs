//! The runner: parses the command line, prepares the process (umask, logging, pidfile),
//! and runs the chosen plugin's services on each worker thread until they stop: every
//! worker builds its services, binds its ports, then waits until the process gave up root
//! (`--chroot`, `--uid`, `--gid`) before its reactor runs.

use std::ffi::OsString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ArgMatches;
use torsion::application::start_application;
use torsion::endpoints::ServerDescription;
use torsion::Reactor;

use crate::cli::{command, usage_error};
use crate::exit::{add_worker, exit_status, fail, say, stop_workers};
use crate::gate::Gate;
use crate::logging;
use crate::manhole::ManholePlace;
use crate::pidfile;
use crate::plugins::Plugin;
use crate::privileges::Privileges;
use crate::settings::{Settings, DEFAULT_SHUTDOWN_TIMEOUT, SETTINGS};

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
    privileges: &Privileges,
    manhole: Option<&ManholePlace>,
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
            add_worker(r.handle());
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
    // The services' privileged part: listening services bind their ports here (a failure
    // to bind is reported with `fail`). No connection is accepted before the reactor runs.
    // A panic here is reported as a failure: this worker must still reach the gate below,
    // or the others would wait for it for ever.
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| start_application(&r, root))) {
        fail(format_args!(
            "{}: a service panicked while starting: {}",
            plugin.name(),
            panic_text(p.as_ref())
        ));
    }
    // The manhole, on the first worker only (it shows that worker's ports and counts).
    if let (0, Some(place)) = (index, manhole) {
        if let Err(message) = crate::manhole::start(&r, place, plugin.name(), settings.workers) {
            fail(message);
        }
    }
    // Every worker bound its ports: the last to get here drops the privileges of the whole
    // process (unless a port failed) while the others wait.
    gate.wait_bound(|| {
        if exit_status() == 0 && !privileges.is_empty() {
            if let Err(message) = privileges.apply() {
                fail(message);
            }
        }
    });
    if exit_status() != 0 {
        return;
    }
    if let Err(message) = privileges.check_thread() {
        fail(message);
        return;
    }
    if settings.workers > 1 {
        r.call_when_running(|| tracing::debug!(target: "torsiond", "worker running"));
    }
    if let Err(failure) = r.run() {
        fail(failure.error_message());
    }
    // The application stopped here (a signal, or a service called `reactor().stop()`):
    // the other workers stop too (a reactor already stopping ignores this).
    stop_workers();
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
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cmd = command(&plugins);
    let matches = match cmd.clone().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => return usage_error(&e, &cmd, &args),
    };
    if let Some(&mask) = matches.get_one::<u32>("umask") {
        // umask(2) cannot fail; rustix makes the call without `unsafe` in this crate.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
    }
    if let Err(message) = logging::init(&matches) {
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
    let privileges = match Privileges::from_matches(&matches) {
        Ok(p) => p,
        Err(message) => {
            say(format_args!("torsiond: {message}"));
            return ExitCode::from(1);
        }
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
    // Checked before anything starts, so a refused manhole is a clear error at once.
    let manhole = match matches.get_one::<ServerDescription>("manhole") {
        None => None,
        Some(description) => match crate::manhole::place(
            description,
            matches
                .get_one::<PathBuf>("manhole-keys")
                .map(PathBuf::as_path),
            matches
                .get_one::<PathBuf>("manhole-host-key")
                .map(PathBuf::as_path),
        ) {
            Ok(place) => Some(place),
            Err(message) => {
                say(format_args!("torsiond: {message}"));
                return ExitCode::from(1);
            }
        },
    };
    let manhole = manhole.as_ref();
    let gate = Gate::new(settings.workers);
    let plugin: &dyn Plugin = plugin.as_ref();
    std::thread::scope(|scope| {
        for index in 1..settings.workers {
            let (gate, plugin, privileges) = (&gate, plugin, &privileges);
            let spawned = std::thread::Builder::new()
                .name(format!("torsiond-worker-{index}"))
                .spawn_scoped(scope, move || {
                    worker(index, settings, plugin, sub, gate, privileges, manhole);
                });
            if let Err(e) = spawned {
                gate.shrink(index, format!("cannot start worker thread {index}: {e}"));
                break;
            }
        }
        worker(0, settings, plugin, sub, &gate, &privileges, manhole);
    });
    if let Some(message) = gate.first_error() {
        say(format_args!("torsiond: {message}"));
        return ExitCode::from(1);
    }
    tracing::info!(target: "torsiond", "stopped");
    drop(pidfile);
    ExitCode::from(exit_status())
}

#[cfg(test)]
mod tests {
    use std::process::ExitCode;
    use std::rc::Rc;

    use torsion::application::Service;

    use super::run;
    use crate::plugins::Plugin;

    /// A plugin whose service panics in its privileged start on worker 1 only.
    struct Boom;

    struct BoomService;

    impl Service for BoomService {
        fn privileged_start_service(&self) {
            if crate::current_worker() == Some(1) {
                panic!("boom while binding");
            }
        }
        fn start_service(&self) {}
        fn running(&self) -> bool {
            false
        }
        fn stop_service(&self) -> torsion::defer::Deferred<()> {
            torsion::defer::succeed(())
        }
    }

    impl Plugin for Boom {
        fn name(&self) -> &'static str {
            "boom"
        }
        fn description(&self) -> &'static str {
            "panics while starting"
        }
        fn command(&self) -> clap::Command {
            clap::Command::new("boom")
        }
        fn make_service(&self, _: &clap::ArgMatches) -> Result<Rc<dyn Service>, String> {
            Ok(Rc::new(BoomService))
        }
    }

    /// The other workers wait at the gate for every worker to bind its ports; a worker whose
    /// services panic while starting still arrives there, so the runner ends (status 1)
    /// instead of waiting for ever, and no reactor runs.
    #[test]
    fn a_panic_while_binding_ends_the_runner() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let code = run(
                vec![Box::new(Boom) as Box<dyn Plugin>],
                ["torsiond", "--workers", "3", "boom"],
            );
            let _ = tx.send(code);
        });
        let code = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the runner waited for ever");
        assert_eq!(code, ExitCode::from(1));
    }
}
