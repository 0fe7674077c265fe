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
use torsion_names::cache::CacheResolver;
use torsion_names::chain::ResolverChain;
use torsion_names::client::ClientResolver;
use torsion_names::hosts::HostsResolver;
use torsion_names::server::{
    DnsDatagramProtocol, DnsServer, DnsServerFactory, ServerConfig, DEFAULT_ANSWER_CACHE_BYTES,
    DEFAULT_UDP_CEILING,
};
use torsion_names::Resolver;

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
/// answer, whatever EDNS asks; default 1232), `--answer-cache BYTES` (how much of the zones'
/// encoded answers to keep, default 1 MiB, 0 for none; see
/// [`DnsServer::answer_kept`]), `--tcp-idle-timeout SECONDS` (default 10),
/// `--stats-interval SECONDS` (how often the counters are logged, default 60; they are also
/// logged at shutdown).
///
/// The answers come from a chain of resolvers ([`ResolverChain`]) assembled in twistd's
/// order: the zones, then a cache (`--cache`), then `--hosts`/`--hosts-file`, then upstream
/// servers (`--recursive` with resolv.conf's, or `--forward IP[:PORT]`, repeatable). With
/// `--cache`, upstream answers are kept for their TTL (twistd's `DNSServerFactory` caches
/// what its clients answer the same way).
#[derive(Debug, Clone, Copy, Default)]
pub struct DnsPlugin;

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
        // With port 0 the kernel picks the UDP port, and the TCP port of the same number may
        // be taken already (by a listener, or as the local port of an outgoing connection):
        // then pick again, so that `--listen tcp:0` never fails for a collision.
        let mut attempts = if udp_at.port() == 0 { 20 } else { 1 };
        let (udp, bound) = loop {
            attempts -= 1;
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
            if attempts == 0 || std::net::TcpListener::bind(bound).is_ok() {
                break (udp, bound);
            }
            drop(udp.stop_listening());
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
            .arg(
                Arg::new("answer-cache")
                    .long("answer-cache")
                    .value_name("BYTES")
                    .value_parser(clap::value_parser!(usize))
                    .help("Keep up to this many bytes of the zones' encoded answers, for repeated queries (default 1 MiB; 0: none)"),
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
                    .help("Cache upstream answers for their TTL"),
            )
            .arg(
                Arg::new("recursive")
                    .long("recursive")
                    .short('r')
                    .action(ArgAction::SetTrue)
                    .help("Answer other names by asking /etc/resolv.conf's servers"),
            )
            .arg(
                Arg::new("forward")
                    .long("forward")
                    .value_name("ADDR")
                    .action(ArgAction::Append)
                    .help("Answer other names by asking this server, IP[:PORT] (port 53 by default; repeatable)"),
            )
            .arg(
                Arg::new("hosts")
                    .long("hosts")
                    .action(ArgAction::SetTrue)
                    .help("Answer from /etc/hosts"),
            )
            .arg(
                Arg::new("hosts-file")
                    .long("hosts-file")
                    .value_name("FILE")
                    .help("Answer from this hosts file"),
            )
    }

    fn make_service(&self, matches: &ArgMatches) -> Result<Rc<dyn Service>, String> {
        // The chain, in twistd's order: authorities, then cache, hosts and upstream servers.
        let mut resolvers: Vec<Box<dyn Resolver>> = Vec::new();
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
            resolvers.push(Box::new(zone));
        }
        resolvers.extend(upstream_resolvers(matches)?);
        if resolvers.is_empty() {
            return Err(
                "nothing to serve: give --bindzone FILE (a BIND master file), --hosts or --hosts-file, \
                 --recursive or --forward IP[:PORT]"
                    .into(),
            );
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
            answer_cache_bytes: matches
                .get_one::<usize>("answer-cache")
                .copied()
                .unwrap_or(DEFAULT_ANSWER_CACHE_BYTES),
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
        let chain: Rc<dyn Resolver> = Rc::new(ResolverChain::new(resolvers));
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

/// `--forward`'s address: `IP` (port 53) or `IP:PORT` (`[IPv6]:PORT`).
fn forward_address(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| {
            format!("--forward takes IP or IP:PORT (a DNS server's address), not {text:?}")
        })
}

/// The resolvers after the zones, in twistd's order: a cache, the hosts file, then upstream
/// servers (whose answers fill the cache).
fn upstream_resolvers(matches: &ArgMatches) -> Result<Vec<Box<dyn Resolver>>, String> {
    let r = reactor();
    let forward = matches
        .get_many::<String>("forward")
        .into_iter()
        .flatten()
        .map(|a| forward_address(a))
        .collect::<Result<Vec<_>, _>>()?;
    let recursive = matches.get_flag("recursive");
    if recursive && !forward.is_empty() {
        return Err("give --recursive or --forward, not both: --recursive asks /etc/resolv.conf's servers, --forward the ones named".into());
    }
    let client = match (recursive, forward.is_empty()) {
        (true, _) => Some(ClientResolver::system(&r)),
        (false, false) => Some(ClientResolver::new(&r, forward)),
        (false, true) => None,
    };
    let cache = matches
        .get_flag("cache")
        .then(|| CacheResolver::new(Rc::new(r.clone())));
    let hosts = match (
        matches.get_one::<String>("hosts-file"),
        matches.get_flag("hosts"),
    ) {
        (Some(path), _) => Some(HostsResolver::new(path)),
        (None, true) => Some(HostsResolver::default()),
        (None, false) => None,
    };
    let mut resolvers: Vec<Box<dyn Resolver>> = Vec::new();
    if let Some(cache) = &cache {
        resolvers.push(Box::new(cache.clone()));
    }
    if let Some(hosts) = hosts {
        resolvers.push(Box::new(hosts));
    }
    match (client, cache) {
        (Some(client), Some(cache)) => resolvers.push(Box::new(cache.filling(client))),
        (Some(client), None) => resolvers.push(Box::new(client)),
        (None, _) => {}
    }
    Ok(resolvers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(args: &[&str]) -> ArgMatches {
        let mut argv = vec!["dns"];
        argv.extend_from_slice(args);
        DnsPlugin.command().try_get_matches_from(argv).unwrap()
    }

    #[test]
    fn upstream_options_become_resolvers_in_twistds_order() {
        let m = matches(&[
            "--cache",
            "--hosts-file",
            "/nonexistent/hosts",
            "--forward",
            "192.0.2.1",
        ]);
        // The cache, the hosts file, then the client filling the cache.
        assert_eq!(upstream_resolvers(&m).unwrap().len(), 3);
        assert_eq!(upstream_resolvers(&matches(&[])).unwrap().len(), 0);
        let m = matches(&["--recursive", "--forward", "192.0.2.1:5353"]);
        let err = upstream_resolvers(&m).err().unwrap();
        assert!(err.contains("--recursive or --forward"), "{err}");
    }

    #[test]
    fn forward_addresses_take_a_default_port_and_refuse_names() {
        assert_eq!(
            forward_address("192.0.2.1").unwrap(),
            "192.0.2.1:53".parse().unwrap()
        );
        assert_eq!(
            forward_address("[2001:db8::1]:5353").unwrap(),
            "[2001:db8::1]:5353".parse().unwrap()
        );
        assert_eq!(
            forward_address("2001:db8::1").unwrap(),
            "[2001:db8::1]:53".parse().unwrap()
        );
        assert!(forward_address("dns.example")
            .unwrap_err()
            .contains("dns.example"));
    }
}
