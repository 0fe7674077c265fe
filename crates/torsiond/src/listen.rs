//! Helpers for plugins: endpoint strings as options, and listening services that share
//! their ports between the workers and report a failure to listen.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

use clap::{Arg, ArgAction, ArgMatches};
use torsion::application::{MultiService, Service, StreamServerEndpointService};
use torsion::defer::{succeed, Deferred};
use torsion::endpoints::{EndpointError, ServerDescription, ServerEndpoint};
use torsion::error::CannotListenError;
use torsion::protocol::Factory;
use torsion::reactor;
use torsion::Failure;

use crate::exit::fail;
use crate::logging::QUIET_LISTEN;
use crate::manhole::{CountingFactory, PortStats};
use crate::settings::SETTINGS;

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
    inner: Rc<StreamServerEndpointService<CountingFactory<F>>>,
    /// The port's connection counts, for the manhole.
    stats: Rc<PortStats>,
    /// Whether the outcome of the last listen is still to be logged or reported.
    report_pending: Cell<bool>,
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
                    target: "torsiond",
                    "{endpoint}: with port 0 and --workers {}, each worker listens on a port of its own; name a port to share it",
                    settings.workers
                );
            }
            let options = endpoint.listen_options().reuse_port(true);
            endpoint.with_listen_options(options)
        } else {
            endpoint
        };
        let factory = CountingFactory::new(factory, endpoint.to_string());
        let stats = factory.stats();
        let inner = StreamServerEndpointService::new(endpoint, factory);
        inner.set_drain_timeout(Some(settings.shutdown_timeout));
        ListenService {
            inner: Rc::new(inner),
            stats,
            report_pending: Cell::new(false),
        }
    }

    /// The wrapped service (its factory counts connections for the manhole).
    pub fn inner(&self) -> &StreamServerEndpointService<CountingFactory<F>> {
        &self.inner
    }

    /// Starts the wrapped service: it listens.
    fn bind(&self) {
        QUIET_LISTEN.with(|q| q.set(true));
        self.inner.start_service();
        QUIET_LISTEN.with(|q| q.set(false));
        self.report_pending.set(true);
    }

    /// Logs where the service listens, or reports the failure to listen with [`fail`]
    /// (once per listen).
    fn report(&self) {
        if !self.report_pending.replace(false) {
            return;
        }
        let inner = Rc::clone(&self.inner);
        let stats = Rc::clone(&self.stats);
        drop(self.inner.when_listening().add_both(move |outcome| {
            match outcome {
                Ok(address) => {
                    stats.set_address(address.to_string());
                    tracing::info!(target: "torsiond", "listening on {address}");
                }
                Err(failure) => {
                    let hint = inner.take_listen_failure().as_ref().and_then(listen_fix);
                    fail(format_args!(
                        "{}{}",
                        failure.error_message(),
                        hint.unwrap_or_default()
                    ));
                }
            }
            Ok::<(), torsion::Failure>(())
        }));
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

    /// Listens now, as Twisted's `StreamServerEndpointService.privilegedStartService` does:
    /// the runner calls this before it drops root (`--uid`), so ports below 1024 can be
    /// bound; connections are accepted once the reactor runs. A failure to listen is
    /// reported at once, so that the runner stops before it drops root or serves.
    fn privileged_start_service(&self) {
        self.inner.privileged_start_service();
        self.bind();
        if self.inner.listen_failed() {
            self.report();
        }
    }

    /// Listens, unless [`privileged_start_service`](Service::privileged_start_service)
    /// did already, and logs `listening on ADDRESS`: the line comes once the reactor runs
    /// (with the runner, once SIGTERM stops it gracefully), so it tells that the server
    /// is ready.
    fn start_service(&self) {
        if !self.inner.running() {
            self.bind();
        }
        self.report();
    }

    fn stop_service(&self) -> Deferred<()> {
        if self.inner.running() {
            self.inner.stop_service()
        } else {
            succeed(())
        }
    }
}

/// The fix for a failure to listen that the core's message does not give already (it names
/// one for a port in use and for a privileged port).
fn listen_fix(failure: &Failure) -> Option<&'static str> {
    let cannot = failure.downcast_ref::<CannotListenError>()?;
    match cannot.io_error().kind() {
        std::io::ErrorKind::AddrNotAvailable => Some(
            " (no interface of this machine has that address: give interface= one of its \
             addresses, 127.0.0.1 for this machine only, or leave it out for every interface)",
        ),
        _ => None,
    }
}

/// A [`ListenService`] for `endpoint` and `factory`, as a service to add to a tree.
pub fn listen_service<F: Factory>(endpoint: ServerEndpoint, factory: F) -> Rc<dyn Service> {
    Rc::new(ListenService::new(endpoint, factory))
}

/// Endpoint descriptions gathered from an option given as [`parse_endpoint`] values.
pub(crate) fn endpoints_of(matches: &ArgMatches, id: &str) -> Vec<ServerDescription> {
    matches
        .get_many::<ServerDescription>(id)
        .map(|v| v.cloned().collect())
        .unwrap_or_default()
}

/// What an endpoint string is, for the help of options that take one: examples of each
/// kind the grammar knows (`torsion::endpoints`), and where the rest is documented.
pub(crate) const ENDPOINT_HELP: &str = "An endpoint string is KIND:ARGS, e.g. tcp:8080 (every interface), \
tcp:8080:interface=127.0.0.1 (loopback only), tcp6:8080:interface=\\:\\:1, unix:/run/web.sock:mode=660, \
tls:8443:privateKey=key.pem:certKey=cert.pem (ssl: is the same), systemd:domain=INET:index=0, \
haproxy:tcp:8080; every kind and option: the torsion::endpoints API docs (cargo doc -p torsion --open)";

/// A `--listen ENDPOINT` option (repeatable), parsed with [`parse_endpoint`].
pub(crate) fn listen_arg(default: &'static str) -> Arg {
    Arg::new("listen")
        .long("listen")
        .value_name("ENDPOINT")
        .action(ArgAction::Append)
        .value_parser(parse_endpoint)
        .help(format!(
            "Where to listen (repeatable; default {default}). {ENDPOINT_HELP}"
        ))
}

/// A tree of one listening service per endpoint.
pub(crate) fn multi_listen<F: Factory + Clone>(
    endpoints: Vec<ServerDescription>,
    factory: F,
) -> Rc<dyn Service> {
    multi_listen_alpn(endpoints, factory, &[])
}

/// [`multi_listen`], with `tls:` endpoints offering `alpn` (in order of preference).
pub(crate) fn multi_listen_alpn<F: Factory + Clone>(
    endpoints: Vec<ServerDescription>,
    factory: F,
    alpn: &[&str],
) -> Rc<dyn Service> {
    let root = Rc::new(MultiService::new());
    let r = reactor();
    for description in endpoints {
        let endpoint = ServerEndpoint::new(&r, description).with_alpn_protocols(alpn);
        root.add_service(listen_service(endpoint, factory.clone()))
            .expect("the services have no names");
    }
    root
}

#[cfg(test)]
mod tests {
    use super::{parse_endpoint, ENDPOINT_HELP};

    /// Every example the help gives is one the grammar takes.
    #[test]
    fn the_help_examples_parse() {
        for example in [
            "tcp:8080",
            "tcp:8080:interface=127.0.0.1",
            r"tcp6:8080:interface=\:\:1",
            "unix:/run/web.sock:mode=660",
            "tls:8443:privateKey=key.pem:certKey=cert.pem",
            "ssl:8443:privateKey=key.pem:certKey=cert.pem",
            "systemd:domain=INET:index=0",
            "haproxy:tcp:8080",
        ] {
            if !example.starts_with("ssl:") {
                assert!(ENDPOINT_HELP.contains(example), "{example}");
            }
            assert!(parse_endpoint(example).is_ok(), "{example}");
        }
    }
}
