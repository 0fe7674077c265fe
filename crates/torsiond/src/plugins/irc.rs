//! `torsiond irc`: an IRC server, the chat service of twisted.words (twistd's `words`).

use std::path::PathBuf;
use std::rc::Rc;

use clap::{Arg, ArgMatches, Command};
use torsion::application::Service;
use torsion_cred::{FilePasswordDb, Portal, UsernamePassword};
use torsion_words::service::{ChatRealm, IrcServerFactory, ServerConfig};

use super::Plugin;
use crate::listen::{endpoints_of, listen_arg, parse_endpoint};

/// The IRC port twistd words listens on by default.
const DEFAULT_LISTEN: &str = "tcp:6667";

/// `torsiond irc`: an IRC server with users, channels, topics and modes (twistd's `words`
/// with its IRC port).
///
/// Options: `--listen ENDPOINT` (repeatable, `tls:` too; default `tcp:6667`), `--motd FILE`
/// (the message of the day; without it clients are told 422), `--name NAME` (the server's
/// name, the prefix of its replies; default `torsion.irc`), `--passwordfile FILE`
/// (`user:hash` lines as `torsiond mail --hash-password` prints; then every user logs in
/// with `PASS`, the nickname as user name; without it anyone may register),
/// `--max-channels-per-user N` (default 50) and `--max-channels N` (default 10,000).
#[derive(Debug, Clone, Copy, Default)]
pub struct IrcPlugin;

impl Plugin for IrcPlugin {
    fn name(&self) -> &'static str {
        "irc"
    }

    fn description(&self) -> &'static str {
        "An IRC chat server: users, channels, topics and modes"
    }

    fn command(&self) -> Command {
        Command::new("irc")
            .arg(listen_arg(DEFAULT_LISTEN))
            .arg(
                Arg::new("motd")
                    .long("motd")
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("The message of the day, shown to each user after registration"),
            )
            .arg(
                Arg::new("name")
                    .long("name")
                    .value_name("NAME")
                    .help("The server's name, the prefix of its replies (default torsion.irc)"),
            )
            .arg(
                Arg::new("passwordfile")
                    .long("passwordfile")
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("A file of user:hash lines (torsiond mail --hash-password); users then log in with PASS, their nickname as user name"),
            )
            .arg(
                Arg::new("max-channels-per-user")
                    .long("max-channels-per-user")
                    .value_name("N")
                    .value_parser(clap::value_parser!(usize))
                    .help("The most channels one user may be in (default 50)"),
            )
            .arg(
                Arg::new("max-channels")
                    .long("max-channels")
                    .value_name("N")
                    .value_parser(clap::value_parser!(usize))
                    .help("The most channels on the server (default 10000)"),
            )
    }

    fn make_service(&self, matches: &ArgMatches) -> Result<Rc<dyn Service>, String> {
        let mut config = ServerConfig::default();
        if let Some(name) = matches.get_one::<String>("name") {
            if name.is_empty() || name.contains([' ', ':', '!', '@']) {
                return Err(format!(
                    "--name {name:?}: a server name has no spaces, ':', '!' or '@'"
                ));
            }
            config.name = name.clone();
        }
        if let Some(path) = matches.get_one::<PathBuf>("motd") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --motd {}: {e}", path.display()))?;
            config.motd = Some(text.lines().map(str::to_owned).collect());
        }
        if let Some(&n) = matches.get_one::<usize>("max-channels-per-user") {
            config.max_channels_per_user = n;
        }
        if let Some(&n) = matches.get_one::<usize>("max-channels") {
            config.max_channels = n;
        }
        let mut factory = IrcServerFactory::new(config);
        if let Some(path) = matches.get_one::<PathBuf>("passwordfile") {
            let db = FilePasswordDb::open(path)
                .map_err(|e| format!("cannot read --passwordfile {}: {e}", path.display()))?;
            let portal = Portal::new(ChatRealm);
            portal.register_checker::<UsernamePassword, _>(db);
            factory = factory.portal(portal);
        }
        let mut endpoints = endpoints_of(matches, "listen");
        if endpoints.is_empty() {
            endpoints.push(parse_endpoint(DEFAULT_LISTEN).expect("a valid default"));
        }
        Ok(crate::listen::multi_listen(endpoints, factory))
    }
}
