//! `torsiond portforward`: relay connections to another address (Twisted's
//! `twisted.protocols.portforward`, as a runner plugin).
//!
//! ```text
//! torsiond portforward --listen tcp:8080 --dest backend.internal:80
//! torsiond portforward --listen haproxy:tcp:8080 --listen unix:/run/app.sock --dest 127.0.0.1:9000
//! ```

use std::rc::Rc;

use clap::{Arg, ArgMatches, Command};
use torsion::application::Service;
use torsion::protocols::portforward::ProxyFactory;

use super::Plugin;
use crate::listen::{endpoints_of, listen_arg, multi_listen, ENDPOINT_HELP};

/// `torsiond portforward`: every connection to a `--listen` endpoint is forwarded to
/// `--dest HOST:PORT` with a [`ProxyFactory`]; bytes flow both ways unchanged, and when
/// either side closes, so does the other.
///
/// Options: `--listen ENDPOINT` (repeatable, required), `--dest HOST:PORT` (required; an
/// IPv6 address in brackets, `[::1]:80`), `--timeout SECONDS` (to connect to the
/// destination, default 30).
#[derive(Debug, Clone, Copy, Default)]
pub struct PortForwardPlugin;

/// Splits `HOST:PORT` (`[v6]:PORT` for an IPv6 address).
fn parse_dest(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("bad port in '{s}' (expected HOST:PORT)"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("no host in '{s}' (expected HOST:PORT)"));
    }
    Ok((host.to_owned(), port))
}

impl Plugin for PortForwardPlugin {
    fn name(&self) -> &'static str {
        "portforward"
    }

    fn description(&self) -> &'static str {
        "Forward connections to another host and port"
    }

    fn command(&self) -> Command {
        Command::new("portforward")
            .arg(listen_arg("").required(true).help(format!(
                "Where to listen (repeatable; at least one). {ENDPOINT_HELP}"
            )))
            .arg(
                Arg::new("dest")
                    .long("dest")
                    .value_name("HOST:PORT")
                    .required(true)
                    .value_parser(parse_dest)
                    .help("Where to forward connections to"),
            )
            .arg(
                Arg::new("timeout")
                    .long("timeout")
                    .value_name("SECONDS")
                    .value_parser(clap::value_parser!(f64))
                    .default_value("30")
                    .help("How long to try connecting to the destination"),
            )
    }

    fn make_service(&self, matches: &ArgMatches) -> Result<Rc<dyn Service>, String> {
        let (host, port) = matches
            .get_one::<(String, u16)>("dest")
            .cloned()
            .ok_or("--dest HOST:PORT is required")?;
        let timeout = matches.get_one::<f64>("timeout").copied().unwrap_or(30.0);
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(format!(
                "--timeout must be a positive number, not {timeout}"
            ));
        }
        let endpoints = endpoints_of(matches, "listen");
        tracing::info!(target: "torsiond::portforward", "forwarding to {host}:{port}");
        Ok(multi_listen(
            endpoints,
            Rc::new(ProxyFactory::new(host, port).with_timeout(timeout)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_dest;

    #[test]
    fn destinations() {
        assert_eq!(parse_dest("example.com:80"), Ok(("example.com".into(), 80)));
        assert_eq!(parse_dest("[::1]:8080"), Ok(("::1".into(), 8080)));
        assert!(parse_dest("example.com").is_err());
        assert!(parse_dest(":80").is_err());
        assert!(parse_dest("h:99999").is_err());
    }
}
