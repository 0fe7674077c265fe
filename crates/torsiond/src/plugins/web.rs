//! `torsiond web`: serves a folder over HTTP.

use std::path::PathBuf;
use std::rc::Rc;

use clap::{Arg, ArgAction, ArgMatches, Command};
use torsion::application::Service;
use torsion_web::encoding::EncodingResourceWrapper;
use torsion_web::resource::Resource;
use torsion_web::site::SiteConfig;
use torsion_web::static_file::File;
use torsion_web::Site;

use super::Plugin;
use crate::listen::{endpoints_of, listen_arg, multi_listen_alpn, parse_endpoint};

/// `torsiond web`: serves a folder over HTTP (Twisted's `twistd web --path`), with
/// [`File`] behind a [`Site`] on each endpoint.
///
/// Options: `--path DIR` (default `.`), `--listen ENDPOINT` (repeatable, default
/// `tcp:8080`), `--port N` (Twisted's alias for `--listen tcp:N`, repeatable),
/// `--no-listing` (answer 403 for folders without an index page), `--show-hidden` (serve
/// and list entries whose name starts with `.`, such as `.git` and `.env`, which are
/// otherwise answered 404; see [`File::show_hidden`]), `--no-access-log`
/// (by default each request is logged, in the combined log format, with the target
/// `torsion_web::access`), `--no-open-file-cache` (by default served files stay open for
/// up to 10 s, at most 256 per worker, and are reused while their inode is unchanged; see
/// [`File::open_file_cache`]), and `--body-timeout SECONDS` and `--header-timeout SECONDS`
/// (the [`SiteConfig`] time-outs, 60 and 30 by default; 0 waits for ever), and
/// `--encoding` (compress responses with br or gzip as the client accepts, through
/// [`EncodingResourceWrapper`]; precompressed `name.br`/`name.gz` siblings are served
/// whether or not it is given, see [`File::precompressed`]).
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
                Arg::new("show-hidden")
                    .long("show-hidden")
                    .action(ArgAction::SetTrue)
                    .help("Serve and list hidden entries (names starting with '.', such as .git and .env); by default they are answered 404"),
            )
            .arg(
                Arg::new("no-access-log")
                    .long("no-access-log")
                    .action(ArgAction::SetTrue)
                    .help("Do not log a line per request"),
            )
            .arg(
                Arg::new("body-timeout")
                    .long("body-timeout")
                    .value_name("SECONDS")
                    .value_parser(clap::value_parser!(f64))
                    .help("Close a connection whose request body stalls this long between two reads, answering 408 (default 60; 0: wait for ever)"),
            )
            .arg(
                Arg::new("header-timeout")
                    .long("header-timeout")
                    .value_name("SECONDS")
                    .value_parser(clap::value_parser!(f64))
                    .help("Close a connection that takes longer than this to send a request head once it started, answering 408 (default 30; 0: wait for ever)"),
            )
            .arg(
                Arg::new("encoding")
                    .long("encoding")
                    .action(ArgAction::SetTrue)
                    .help("Compress responses (br or gzip, as the client accepts) except already-compressed types and bodies under 1 KiB"),
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
            return Err(format!(
                "no such file or folder: {} (give --path a folder that exists)",
                path.display()
            ));
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
        let show_hidden = matches.get_flag("show-hidden");
        let mut config = SiteConfig::default();
        let seconds = |name: &str| -> Result<Option<Option<f64>>, String> {
            match matches.get_one::<f64>(name) {
                None => Ok(None),
                Some(&s) if s.is_finite() && s > 0.0 => Ok(Some(Some(s))),
                Some(0.0) => Ok(Some(None)),
                Some(s) => Err(format!(
                    "--{name} takes a number of seconds, 0 or more, not {s}"
                )),
            }
        };
        if let Some(t) = seconds("body-timeout")? {
            config.body_timeout = t;
        }
        if let Some(t) = seconds("header-timeout")? {
            config.header_timeout = t;
        }
        let mut root: Rc<dyn Resource> = Rc::new(
            File::new(&path)
                .directory_listing(listing)
                .show_hidden(show_hidden)
                .open_file_cache(cache),
        );
        if matches.get_flag("encoding") {
            root = Rc::new(EncodingResourceWrapper::new(root));
        }
        let site = Site::with_config(root, config);
        // Every finished request is counted for the manhole's `requests`; it is logged unless
        // --no-access-log, and only then is its log line formatted.
        site.on_request_finished(crate::manhole::count_request);
        if !matches.get_flag("no-access-log") {
            site.set_access_log(|line| tracing::info!(target: "torsion_web::access", "{line}"));
        }
        tracing::info!(target: "torsiond", "serving {}", path.display());
        // `tls:` endpoints offer HTTP/2 and HTTP/1.1 by ALPN (the site speaks whichever the
        // client picks); plain ones take prior-knowledge h2c and HTTP/1.1 alike.
        Ok(multi_listen_alpn(endpoints, site, &["h2", "http/1.1"]))
    }
}
