//! `torsiond ftp`: an FTP server over a folder (twistd's `ftp` plugin).

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use torsion::application::Service;
use torsion::tls::ServerContext;
use torsion_cred::{FilePasswordDb, Portal, UsernamePassword};
use torsion_ftp::{FtpFactory, FtpRealm, Root};

use super::Plugin;
use crate::listen::{endpoints_of, parse_endpoint, ENDPOINT_HELP};

/// twistd ftp's default port: 2121, a port that needs no privileges (21 does).
const DEFAULT_LISTEN: &str = "tcp:2121";

/// `torsiond ftp`: serves a folder over FTP (twistd's `ftp`).
///
/// Options: `--root DIR` (the folder served), `--listen ENDPOINT` (repeatable, default
/// `tcp:2121` as twistd's), `--anonymous` (anonymous users read the root), `--passwordfile
/// FILE` (`user:hash` lines, [`FilePasswordDb`]: those users log in and may write),
/// `--per-user` (each user sees `ROOT/NAME` instead of the whole root), `--read-only`
/// (users may not write either), `--passive-ports A-B` (the range passive data connections
/// listen on; any free port by default), `--active` (serve PORT/EPRT, only ever to the
/// client's own address), `--certificate PEM --key PEM` (AUTH TLS, explicit FTPS),
/// `--require-tls` (no password login before AUTH TLS), `--timeout SECONDS` (an idle
/// client is answered 421 and dropped; default 600, 0 waits for ever).
#[derive(Debug, Clone, Copy, Default)]
pub struct FtpPlugin;

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("--passive-ports takes FIRST-LAST, not {s:?}"))?;
    let a: u16 = a.trim().parse().map_err(|_| format!("bad port {a:?}"))?;
    let b: u16 = b.trim().parse().map_err(|_| format!("bad port {b:?}"))?;
    if a == 0 || b < a {
        return Err(format!("--passive-ports {s}: the range is empty"));
    }
    Ok((a, b))
}

impl Plugin for FtpPlugin {
    fn name(&self) -> &'static str {
        "ftp"
    }

    fn description(&self) -> &'static str {
        "Serve a folder over FTP (anonymous and password logins, explicit FTPS)"
    }

    fn command(&self) -> Command {
        Command::new("ftp")
            .arg(
                Arg::new("root")
                    .long("root")
                    .value_name("DIR")
                    .required(true)
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("The folder served"),
            )
            .arg(
                Arg::new("listen")
                    .long("listen")
                    .value_name("ENDPOINT")
                    .action(ArgAction::Append)
                    .value_parser(parse_endpoint)
                    .help(format!("Where to listen (repeatable; default {DEFAULT_LISTEN}, as twistd's). {ENDPOINT_HELP}")),
            )
            .arg(
                Arg::new("anonymous")
                    .long("anonymous")
                    .action(ArgAction::SetTrue)
                    .help("Let anonymous users (anonymous or ftp, any password) read the root"),
            )
            .arg(
                Arg::new("passwordfile")
                    .long("passwordfile")
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("A file of user:hash lines (Argon2 or bcrypt); those users log in and may write"),
            )
            .arg(
                Arg::new("per-user")
                    .long("per-user")
                    .action(ArgAction::SetTrue)
                    .help("Each user sees ROOT/NAME (which must exist) rather than the whole root"),
            )
            .arg(
                Arg::new("read-only")
                    .long("read-only")
                    .action(ArgAction::SetTrue)
                    .help("Users may not write either"),
            )
            .arg(
                Arg::new("passive-ports")
                    .long("passive-ports")
                    .value_name("FIRST-LAST")
                    .value_parser(parse_range)
                    .help("The ports passive data connections listen on (default: any free port)"),
            )
            .arg(
                Arg::new("active")
                    .long("active")
                    .action(ArgAction::SetTrue)
                    .help("Serve PORT and EPRT (only ever to the client's own address; off by default)"),
            )
            .arg(
                Arg::new("certificate")
                    .long("certificate")
                    .value_name("PEM")
                    .value_parser(clap::value_parser!(PathBuf))
                    .requires("key")
                    .help("The certificate chain (PEM) for AUTH TLS"),
            )
            .arg(
                Arg::new("key")
                    .long("key")
                    .value_name("PEM")
                    .value_parser(clap::value_parser!(PathBuf))
                    .requires("certificate")
                    .help("The private key (PEM) for AUTH TLS"),
            )
            .arg(
                Arg::new("require-tls")
                    .long("require-tls")
                    .action(ArgAction::SetTrue)
                    .requires("certificate")
                    .help("Refuse password logins before AUTH TLS"),
            )
            .arg(
                Arg::new("timeout")
                    .long("timeout")
                    .value_name("SECONDS")
                    .value_parser(clap::value_parser!(u64))
                    .help("Drop a client that sends nothing this long, with 421 (default 600; 0: wait for ever)"),
            )
    }

    fn make_service(&self, matches: &ArgMatches) -> Result<Rc<dyn Service>, String> {
        let dir = matches
            .get_one::<PathBuf>("root")
            .ok_or("no --root DIR given")?;
        let root = Root::new(dir)
            .map_err(|e| format!("--root {}: cannot serve it: {e}", dir.display()))?;
        let mut factory = FtpFactory::new()
            .active(matches.get_flag("active"))
            .require_tls_for_login(matches.get_flag("require-tls"));
        if matches.get_flag("anonymous") {
            factory = factory.anonymous(root.clone());
        }
        if let Some(path) = matches.get_one::<PathBuf>("passwordfile") {
            let db = FilePasswordDb::open(path)
                .map_err(|e| format!("cannot read --passwordfile {}: {e}", path.display()))?;
            let mut realm = if matches.get_flag("per-user") {
                FtpRealm::per_user(root.clone())
            } else {
                FtpRealm::shared(root.clone())
            };
            if matches.get_flag("read-only") {
                realm = realm.read_only();
            }
            let portal = Portal::new(realm);
            portal.register_checker::<UsernamePassword, _>(db);
            factory = factory.portal(portal);
        } else if !matches.get_flag("anonymous") {
            return Err("neither --anonymous nor --passwordfile: nobody could log in".to_owned());
        }
        if let Some(&(a, b)) = matches.get_one::<(u16, u16)>("passive-ports") {
            factory = factory.passive_ports(a, b);
        }
        factory = factory.timeout(match matches.get_one::<u64>("timeout") {
            None => Some(torsion_ftp::server::DEFAULT_TIMEOUT),
            Some(0) => None,
            Some(&s) => Some(Duration::from_secs(s)),
        });
        if let (Some(cert), Some(key)) = (
            matches.get_one::<PathBuf>("certificate"),
            matches.get_one::<PathBuf>("key"),
        ) {
            let context = ServerContext::from_pem_files(cert, key).map_err(|e| {
                format!(
                    "--certificate {} --key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
            factory = factory.tls(context);
        }
        tracing::info!(target: "torsiond", "ftp: serving {}", root.path().display());
        let mut endpoints = endpoints_of(matches, "listen");
        if endpoints.is_empty() {
            endpoints.push(parse_endpoint(DEFAULT_LISTEN).expect("a valid default"));
        }
        Ok(crate::listen::multi_listen(endpoints, factory))
    }
}
