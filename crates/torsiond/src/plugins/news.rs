//! `torsiond news`: an NNTP server over a folder of newsgroups (twistd's `news` plugin).

use std::path::PathBuf;
use std::rc::Rc;

use clap::{Arg, ArgAction, ArgMatches, Command};
use torsion::application::Service;
use torsion_cred::{FilePasswordDb, Portal, UsernamePassword};
use torsion_news::{Limits, NewsRealm, NntpFactory, Posting, Store};

use super::Plugin;
use crate::listen::{endpoints_of, listen_arg, multi_listen, parse_endpoint};

/// Where `torsiond news` listens by default: 1119, as 119 needs privileges.
const DEFAULT_NNTP: &str = "tcp:1119";

/// `torsiond news`: serves the newsgroups under a folder over NNTP (twistd's `news`, whose
/// `--datadir` is `--root` and `--groupname` is `--group`).
///
/// Options: `--root DIR` (one folder per group, one file per article; made if missing),
/// `--listen ENDPOINT` (repeatable, default `tcp:1119`), `--group NAME[=DESCRIPTION]`
/// (repeatable; made if missing), `--passwordfile FILE` (`user:hash` lines: AUTHINFO is
/// offered and posting requires a login), `--read-only`, `--newnews` (answer NEWNEWS; off
/// by default), `--hostname NAME`, `--timeout SECONDS` (default 600, 0 waits for ever),
/// `--max-article-size BYTES` (default 1 MiB).
///
/// Each worker (`--workers`) keeps its own index of the folder: articles another worker
/// takes are on disk at once (numbers never collide) but listed by this one only after a
/// restart, so run news with one worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewsPlugin;

fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

impl Plugin for NewsPlugin {
    fn name(&self) -> &'static str {
        "news"
    }

    fn description(&self) -> &'static str {
        "Serve the newsgroups of a folder over NNTP"
    }

    fn command(&self) -> Command {
        Command::new("news")
            .arg(
                Arg::new("root")
                    .long("root")
                    .value_name("DIR")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("The folder of newsgroups: one folder per group, one file per article (made if missing)"),
            )
            .arg(listen_arg(DEFAULT_NNTP))
            .arg(
                Arg::new("group")
                    .long("group")
                    .value_name("NAME[=DESCRIPTION]")
                    .action(ArgAction::Append)
                    .help("A newsgroup to carry, made if missing (repeatable)"),
            )
            .arg(
                Arg::new("passwordfile")
                    .long("passwordfile")
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("A file of user:hash lines (Argon2 or bcrypt; `torsiond mail --hash-password` makes one): AUTHINFO is offered and posting requires a login"),
            )
            .arg(
                Arg::new("read-only")
                    .long("read-only")
                    .action(ArgAction::SetTrue)
                    .help("Refuse every POST"),
            )
            .arg(
                Arg::new("newnews")
                    .long("newnews")
                    .action(ArgAction::SetTrue)
                    .help("Answer NEWNEWS (off by default: it lists every new article)"),
            )
            .arg(
                Arg::new("hostname")
                    .long("hostname")
                    .value_name("NAME")
                    .help("This server's name, in its greeting, Path: and Message-IDs (default: the machine's name)"),
            )
            .arg(
                Arg::new("timeout")
                    .long("timeout")
                    .value_name("SECONDS")
                    .value_parser(clap::value_parser!(u64))
                    .help("Drop a client that sends nothing this long, with 400 (default 600; 0: wait for ever)"),
            )
            .arg(
                Arg::new("max-article-size")
                    .long("max-article-size")
                    .value_name("BYTES")
                    .value_parser(clap::value_parser!(usize))
                    .help("The largest article POST takes (default 1048576)"),
            )
    }

    fn make_service(&self, matches: &ArgMatches) -> Result<Rc<dyn Service>, String> {
        let root = matches
            .get_one::<PathBuf>("root")
            .ok_or("no --root DIR given: there is nowhere to keep the newsgroups")?;
        let store = Store::open(root)
            .map_err(|e| format!("--root {}: cannot use it: {e}", root.display()))?;
        for spec in matches.get_many::<String>("group").into_iter().flatten() {
            let (name, description) = spec.split_once('=').unwrap_or((spec, ""));
            store
                .create_group(name, description, unix_now())
                .map_err(|e| format!("--group {name}: {e}"))?;
        }
        tracing::info!(target: "torsiond", "news: {} group(s) under {}", store.groups().len(), root.display());
        let hostname = matches
            .get_one::<String>("hostname")
            .cloned()
            .unwrap_or_else(machine_name);
        let mut limits = Limits::default();
        if let Some(&size) = matches.get_one::<usize>("max-article-size") {
            limits.max_article_size = size;
        }
        let timeout = match matches.get_one::<u64>("timeout") {
            None => Some(torsion_news::server::DEFAULT_TIMEOUT),
            Some(0) => None,
            Some(&s) => Some(std::time::Duration::from_secs(s)),
        };
        let mut factory = NntpFactory::new(&hostname, store)
            .limits(limits)
            .timeout(timeout)
            .newnews(matches.get_flag("newnews"));
        if let Some(path) = matches.get_one::<PathBuf>("passwordfile") {
            let db = FilePasswordDb::open(path)
                .map_err(|e| format!("cannot read --passwordfile {}: {e}", path.display()))?;
            let portal = Portal::new(NewsRealm);
            portal.register_checker::<UsernamePassword, _>(db);
            factory = factory.portal(portal);
        }
        if matches.get_flag("read-only") {
            factory = factory.posting(Posting::Closed);
        }
        let mut endpoints = endpoints_of(matches, "listen");
        if endpoints.is_empty() {
            endpoints.push(parse_endpoint(DEFAULT_NNTP).expect("a valid default"));
        }
        Ok(multi_listen(endpoints, factory))
    }
}
