//! `torsiond dns`: a DNS server (twistd's `dns` plugin).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;

use clap::{Arg, ArgAction, ArgMatches, Command};
use torsion::application::{Service, TimerService};
use torsion::datagram::DatagramTransport;
use torsion::defer::{Deferred, DeferredList};
use torsion::endpoints::{ServerDescription, ServerEndpoint};
use torsion::reactor;
use torsion::transport::Address;
use torsion::udp::UdpOptions;
use torsion_names::authority::FileAuthority;
use torsion_names::error::DomainError;
use torsion_names::server::{
    DnsDatagramProtocol, DnsServer, DnsServerFactory, ServerConfig, DEFAULT_UDP_CEILING,
};
use torsion_names::{Answer, Query, Resolver};

use super::Plugin;
use crate::exit::fail;
use crate::listen::{endpoints_of, listen_arg, parse_endpoint, ListenService};
use crate::settings::SETTINGS;

/// `torsiond dns`: serves DNS zones (twistd's `dns`), over UDP and TCP on the same port.
///
/// Options: `--bindzone FILE` (a BIND master file; repeatable), `--listen ENDPOINT`
/// (repeatable, default `tcp:53`: a `tcp:`/`tcp6:` endpoint serves TCP and UDP on the same
/// port and interface, other kinds TCP only), `-p/--port N` (the same as `--listen tcp:N`,
/// twistd's option), `--interface IP` (for `--port`), `--udp-ceiling BYTES` (the largest UDP
/// answer, whatever EDNS asks; default 1232), `--tcp-idle-timeout SECONDS` (default 10),
/// `--stats-interval SECONDS` (how often the counters are logged, default 60; they are also
/// logged at shutdown).
///
/// The answers come from a chain of resolvers assembled in twistd's order: the zones, then
/// a cache (`--cache`), then `--hosts`/`--hosts-file`, then upstream servers
/// (`--recursive` with resolv.conf's, or `--forward ADDR`). The last four need the DNS
/// client (torsion-names' `cache`, `hosts` and `client` modules): until they are there, the
/// options are refused with a message saying so.
#[derive(Debug, Clone, Copy, Default)]
pub struct DnsPlugin;

/// A chain of resolvers (Twisted's `ResolverChain`): each in turn, moving on when one does
/// not know the name ([`DomainError`]); any other outcome is final.
struct Chain(Vec<Rc<dyn Resolver>>);

impl Resolver for Chain {
    fn query(&self, query: &Query) -> Deferred<Answer> {
        ask_from(Rc::new(self.0.clone()), 0, query.clone())
    }
}

fn ask_from(resolvers: Rc<Vec<Rc<dyn Resolver>>>, at: usize, query: Query) -> Deferred<Answer> {
    let Some(resolver) = resolvers.get(at) else {
        return torsion::defer::fail(DomainError(query));
    };
    resolver.query(&query).add_errback_deferred(move |failure| {
        if failure.check::<DomainError>() {
            ask_from(resolvers, at + 1, query)
        } else {
            torsion::defer::fail(failure)
        }
    })
}

/// What one `--listen` endpoint became once started.
enum Listening {
    /// UDP and TCP on one port.
    Both(DatagramTransport, Rc<dyn Service>),
    /// TCP (or a Unix socket, TLS, ...) only.
    Stream(Rc<dyn Service>),
}

/// The service: UDP ports, TCP listening services, and the counters' log line.
struct DnsService {
    server: Rc<DnsServer>,
    endpoints: Vec<ServerDescription>,
    running: Cell<bool>,
    started: RefCell<Vec<Listening>>,
    stats: TimerService,
}

impl fmt::Debug for DnsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsService")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// The address a UDP port for a TCP endpoint binds: the same interface and port.
fn udp_address(description: &ServerDescription) -> Option<Result<SocketAddr, String>> {
    let (port, interface, default) = match description {
        ServerDescription::Tcp {
            port, interface, ..
        } => (*port, interface.clone(), IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ServerDescription::Tcp6 {
            port, interface, ..
        } => (
            *port,
            Some(interface.clone()),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ),
        _ => return None,
    };
    let ip = match interface {
        None => Ok(default),
        Some(text) => text
            .parse::<IpAddr>()
            .map_err(|_| format!("{description}: interface {text} is not an IP address")),
    };
    Some(ip.map(|ip| SocketAddr::new(ip, port)))
}

/// `description` with its port replaced (a TCP endpoint on the port its UDP twin got).
fn with_port(description: &ServerDescription, new: u16) -> ServerDescription {
    let mut d = description.clone();
    match &mut d {
        ServerDescription::Tcp { port, .. } | ServerDescription::Tcp6 { port, .. } => *port = new,
        _ => {}
    }
    d
}

impl DnsService {
    fn listen(&self, description: &ServerDescription) -> Result<Listening, String> {
        let factory = DnsServerFactory::new(Rc::clone(&self.server));
        let r = reactor();
        let Some(udp_at) = udp_address(description) else {
            let endpoint = ServerEndpoint::new(&r, description.clone());
            return Ok(Listening::Stream(Rc::new(ListenService::new(
                endpoint, factory,
            ))));
        };
        let udp_at = udp_at?;
        let settings = SETTINGS.with(Cell::get);
        let options = UdpOptions {
            interface: udp_at.ip(),
            listen_multiple: settings.workers > 1,
            ..UdpOptions::default()
        };
        let udp = r
            .listen_udp_with(
                udp_at.port(),
                DnsDatagramProtocol::new(Rc::clone(&self.server)),
                options,
            )
            .map_err(|f| f.error_message())?;
        let Address::Udp(bound) = udp.get_host() else {
            return Err(format!("udp:{udp_at}: not a UDP address"));
        };
        tracing::info!(target: "torsiond", "listening on udp:{bound}");
        let endpoint = ServerEndpoint::new(&r, with_port(description, bound.port()));
        let tcp: Rc<dyn Service> = Rc::new(ListenService::new(endpoint, factory));
        Ok(Listening::Both(udp, tcp))
    }
}

impl Service for DnsService {
    fn running(&self) -> bool {
        self.running.get()
    }

    /// Opens the ports now (before `--uid` drops root, so port 53 can be bound).
    fn privileged_start_service(&self) {
        if !self.started.borrow().is_empty() {
            return;
        }
        for description in &self.endpoints {
            match self.listen(description) {
                Ok(listening) => {
                    match &listening {
                        Listening::Both(_, tcp) | Listening::Stream(tcp) => {
                            tcp.privileged_start_service();
                        }
                    }
                    self.started.borrow_mut().push(listening);
                }
                Err(message) => {
                    fail(message);
                    return;
                }
            }
        }
    }

    fn start_service(&self) {
        self.privileged_start_service();
        for listening in self.started.borrow().iter() {
            match listening {
                Listening::Both(_, tcp) | Listening::Stream(tcp) => tcp.start_service(),
            }
        }
        self.stats.start_service();
        self.running.set(true);
    }

    fn stop_service(&self) -> Deferred<()> {
        self.running.set(false);
        let mut waits = vec![self.stats.stop_service()];
        for listening in self.started.borrow_mut().drain(..) {
            match listening {
                Listening::Both(udp, tcp) => {
                    waits.push(udp.stop_listening());
                    waits.push(tcp.stop_service());
                }
                Listening::Stream(tcp) => waits.push(tcp.stop_service()),
            }
        }
        let server = Rc::clone(&self.server);
        DeferredList::new(waits).add_callback(move |_| server.log_counters())
    }
}

/// Options that need the DNS client, which this build does not have yet.
const CLIENT_OPTIONS: [&str; 5] = ["cache", "recursive", "forward", "hosts", "hosts-file"];

impl Plugin for DnsPlugin {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn description(&self) -> &'static str {
        "A DNS server: zones from BIND master files, over UDP and TCP"
    }

    fn command(&self) -> Command {
        let seconds = |name: &'static str, help: &'static str| {
            Arg::new(name)
                .long(name)
                .value_name("SECONDS")
                .value_parser(clap::value_parser!(f64))
                .help(help)
        };
        Command::new("dns")
            .arg(
                Arg::new("bindzone")
                    .long("bindzone")
                    .short('b')
                    .value_name("FILE")
                    .action(ArgAction::Append)
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("Serve the zone in this BIND master file (repeatable)"),
            )
            .arg(listen_arg("tcp:53"))
            .arg(
                Arg::new("port")
                    .long("port")
                    .short('p')
                    .value_name("N")
                    .action(ArgAction::Append)
                    .value_parser(clap::value_parser!(u16))
                    .help("Serve UDP and TCP port N (the same as --listen tcp:N; twistd's -p)"),
            )
            .arg(
                Arg::new("interface")
                    .long("interface")
                    .value_name("IP")
                    .help("The interface --port listens on (default: every IPv4 interface)"),
            )
            .arg(
                Arg::new("udp-ceiling")
                    .long("udp-ceiling")
                    .value_name("BYTES")
                    .value_parser(clap::value_parser!(u16).range(512..))
                    .help("The largest UDP answer, whatever size EDNS asks for (default 1232)"),
            )
            .arg(seconds(
                "tcp-idle-timeout",
                "Close a TCP connection idle this long (default 10; 0: never)",
            ))
            .arg(seconds(
                "stats-interval",
                "Log the counters (queries, answers per code, dropped, truncated) this often (default 60)",
            ))
            .arg(
                Arg::new("cache")
                    .long("cache")
                    .short('c')
                    .action(ArgAction::SetTrue)
                    .help("Cache answers from upstream (needs the DNS client)"),
            )
            .arg(
                Arg::new("recursive")
                    .long("recursive")
                    .short('r')
                    .action(ArgAction::SetTrue)
                    .help("Answer other names by asking resolv.conf's servers (needs the DNS client)"),
            )
            .arg(
                Arg::new("forward")
                    .long("forward")
                    .value_name("ADDR")
                    .action(ArgAction::Append)
                    .help("Answer other names by asking this server, IP[:PORT] (needs the DNS client)"),
            )
            .arg(
                Arg::new("hosts")
                    .long("hosts")
                    .action(ArgAction::SetTrue)
                    .help("Answer from /etc/hosts (needs the DNS client)"),
            )
            .arg(
                Arg::new("hosts-file")
                    .long("hosts-file")
                    .value_name("FILE")
                    .help("Answer from this hosts file (needs the DNS client)"),
            )
    }

    fn make_service(&self, matches: &ArgMatches) -> Result<Rc<dyn Service>, String> {
        let given =
            |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        if let Some(option) = CLIENT_OPTIONS.iter().find(|o| given(o)) {
            return Err(format!(
                "--{option} needs the DNS client (torsion-names' cache, hosts and client modules), which this build does not have yet; serve zones with --bindzone"
            ));
        }
        // The chain, in twistd's order: authorities, then cache, hosts and upstream servers
        // (to come with the client).
        let mut resolvers: Vec<Rc<dyn Resolver>> = Vec::new();
        let mut zones = Vec::new();
        for path in matches
            .get_many::<PathBuf>("bindzone")
            .into_iter()
            .flatten()
        {
            let zone = Rc::new(FileAuthority::load(path).map_err(|e| e.to_string())?);
            tracing::info!(
                target: "torsiond",
                "serving the zone {} from {} ({} records)",
                zone.origin(),
                path.display(),
                zone.records().count()
            );
            zones.push(Rc::clone(&zone));
            resolvers.push(zone);
        }
        if resolvers.is_empty() {
            return Err("nothing to serve: give --bindzone FILE (a BIND master file)".into());
        }
        let mut endpoints = endpoints_of(matches, "listen");
        let interface = matches.get_one::<String>("interface");
        for port in matches.get_many::<u16>("port").into_iter().flatten() {
            let text = match interface {
                Some(ip) => format!("tcp:{port}:interface={}", ip.replace(':', "\\:")),
                None => format!("tcp:{port}"),
            };
            endpoints.push(parse_endpoint(&text).map_err(|e| e.to_string())?);
        }
        if endpoints.is_empty() {
            endpoints.push(parse_endpoint("tcp:53").expect("a valid default"));
        }
        let mut config = ServerConfig {
            udp_ceiling: matches
                .get_one::<u16>("udp-ceiling")
                .copied()
                .unwrap_or(DEFAULT_UDP_CEILING),
            ..ServerConfig::default()
        };
        if let Some(&t) = matches.get_one::<f64>("tcp-idle-timeout") {
            if !(t >= 0.0 && t.is_finite()) {
                return Err(format!(
                    "--tcp-idle-timeout takes seconds, 0 or more, not {t}"
                ));
            }
            config.tcp_idle_timeout = (t > 0.0).then_some(t);
        }
        let interval = matches
            .get_one::<f64>("stats-interval")
            .copied()
            .unwrap_or(60.0);
        if !(interval > 0.0 && interval.is_finite()) {
            return Err(format!(
                "--stats-interval takes seconds, more than 0, not {interval}"
            ));
        }
        let chain: Rc<dyn Resolver> = Rc::new(Chain(resolvers));
        let server = Rc::new(DnsServer::new(chain, config).with_zones(zones));
        let logged = Rc::clone(&server);
        let last = Cell::new(0u64);
        // Every interval, when there were queries since the last line.
        let stats = TimerService::new(interval, move || {
            let queries = logged.counters().queries;
            if queries != last.replace(queries) {
                logged.log_counters();
            }
        });
        Ok(Rc::new(DnsService {
            server,
            endpoints,
            running: Cell::new(false),
            started: RefCell::new(Vec::new()),
            stats,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion::defer::succeed;

    #[test]
    fn a_chain_moves_on_past_domain_errors_only() {
        let none = |q: &Query| torsion::defer::fail::<Answer>(DomainError(q.clone()));
        let some = |_: &Query| succeed(Answer::default());
        let chain = Chain(vec![Rc::new(none), Rc::new(some)]);
        assert!(chain.lookup_address("a.example").result().unwrap().is_ok());
        let only_none = Chain(vec![Rc::new(none)]);
        let failure = only_none
            .lookup_address("a.example")
            .result()
            .unwrap()
            .unwrap_err();
        assert!(failure.check::<DomainError>());
    }
}
