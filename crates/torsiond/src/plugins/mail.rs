//! `torsiond mail`: an SMTP server delivering into Maildirs, and a POP3 server reading them
//! (twistd's `mail` plugin).

use std::io::BufRead;
use std::path::PathBuf;
use std::rc::Rc;

use clap::{Arg, ArgAction, ArgMatches, Command};
use torsion::application::Service;
use torsion::defer::Deferred;
use torsion::tls::ServerContext;
use torsion_cred::error::UnauthorizedLogin;
use torsion_cred::{
    AvatarId, CredentialsChecker, FilePasswordDb, PasswordHashDb, Portal, UsernamePassword,
};
use torsion_mail::command::{Address, ReversePath};
use torsion_mail::delivery::{MessageDelivery, MessageFactory, Session};
use torsion_mail::imap::ImapFactory;
use torsion_mail::reply::Reply;
use torsion_mail::{MaildirDomain, MaildirRealm, Pop3Factory, SmtpFactory, SmtpRealm};

use super::Plugin;
use crate::listen::{endpoints_of, parse_endpoint, ENDPOINT_HELP};

/// twistd mail's default SMTP endpoint: 8025, a port that needs no privileges (25 does).
const DEFAULT_SMTP: &str = "tcp:8025";

/// `torsiond mail`: receives mail over ESMTP for one or more domains, into a Maildir per
/// user (twistd's `mail`, with `--maildirdbmdomain` as `--domain`).
///
/// Options: `--domain DOMAIN=DIR` (repeatable; each user's Maildir is `DIR/USER`, every
/// folder already there is a user), `--user NAME=HASH` (repeatable; a password hash as
/// `--hash-password` prints) and `--passwordfile FILE` (`user:hash` lines,
/// [`FilePasswordDb`]): the users log in with AUTH and get a Maildir in every domain.
/// `--smtp ENDPOINT` (repeatable, default `tcp:8025` as twistd's), `--hostname NAME` (in
/// the greeting and `Received:` headers; the machine's name by default), `--certificate
/// PEM` and `--key PEM` (STARTTLS), `--auth-without-tls` (offer AUTH on connections
/// without TLS too; off), `--timeout SECONDS` (an idle client is answered 421 and
/// dropped; default 600, 0 waits for ever), `--max-message-size BYTES` (SIZE; default 10
/// MiB).
///
/// `--pop3 ENDPOINT` (repeatable; none by default, as twistd's) serves the same Maildirs
/// over POP3 to the same users (a user's Maildir in the first `--domain` that has them),
/// with STLS when `--certificate` is given; USER and PASS are taken in the clear only with
/// `--auth-without-tls`. `--timeout` applies to it too.
/// `--imap ENDPOINT` (repeatable; none by default) serves the same Maildirs over IMAP4rev1:
/// a user logs in with the name and password they use for AUTH and reads their Maildir in
/// the first `--domain`, after STARTTLS unless `--auth-without-tls`; an IMAP client idle
/// for 30 minutes is logged out.
///
/// `torsiond mail --hash-password` reads a password (one line) from standard input, prints
/// its Argon2 hash for `--user` or a password file, and exits.
#[derive(Debug, Clone, Copy, Default)]
pub struct MailPlugin;

/// Several [`MaildirDomain`]s, each taking its own domain's mail; any other domain is
/// refused (this is not a relay).
struct Domains(Vec<MaildirDomain>);

impl MessageDelivery for Domains {
    fn validate_from(&self, _session: &Session, _from: &ReversePath) -> Result<(), Reply> {
        Ok(())
    }

    fn validate_to(&self, session: &Session, to: &Address) -> Result<MessageFactory, Reply> {
        match self
            .0
            .iter()
            .find(|d| d.domain().eq_ignore_ascii_case(to.domain()))
        {
            Some(domain) => domain.validate_to(session, to),
            None => Err(Reply::new(550, "5.7.1 Relaying denied")),
        }
    }
}

/// `--passwordfile` and `--user` together: the file is asked first, then the users given
/// on the command line. Both are asked on every refusal (a dummy hash for a user either does
/// not know), so an unknown user still takes as long to refuse as a wrong password.
struct Either(FilePasswordDb, PasswordHashDb);

impl CredentialsChecker<UsernamePassword> for Either {
    fn request_avatar_id(&self, credentials: UsernamePassword) -> Deferred<AvatarId> {
        let second = self.1.clone();
        self.0
            .request_avatar_id(credentials.clone())
            .add_errback_deferred(move |f| {
                if f.check::<UnauthorizedLogin>() {
                    second.request_avatar_id(credentials)
                } else {
                    torsion::defer::fail(f)
                }
            })
    }
}

fn hash_password_from_stdin() -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read a password from standard input: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("no password on standard input (give it one line)".to_owned());
    }
    println!("{}", torsion_cred::hash_password(password));
    Ok(())
}

/// The user names of a `user:hash` file (comments and blank lines skipped).
fn users_of(path: &PathBuf) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --passwordfile {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':').map(|(user, _)| user.to_owned()))
        .collect())
}

/// The STARTTLS/STLS certificate of `--certificate` and `--key`, if given.
fn factory_tls(matches: &ArgMatches) -> Result<Option<ServerContext>, String> {
    let (Some(cert), Some(key)) = (
        matches.get_one::<PathBuf>("certificate"),
        matches.get_one::<PathBuf>("key"),
    ) else {
        return Ok(None);
    };
    ServerContext::from_pem_files(cert, key)
        .map(Some)
        .map_err(|e| {
            format!(
                "--certificate {} --key {}: {e}",
                cert.display(),
                key.display()
            )
        })
}

/// Gives `portal` the password checker of `--passwordfile` and `--user` (clones: every
/// portal shares the loaded file and the verification limiter).
fn register_checker<R: 'static>(
    portal: &Portal<R>,
    file: &Option<FilePasswordDb>,
    memory: &PasswordHashDb,
    any_memory: bool,
) {
    match (file.clone(), any_memory) {
        (Some(file), true) => {
            portal.register_checker::<UsernamePassword, _>(Either(file, memory.clone()));
        }
        (Some(file), false) => portal.register_checker::<UsernamePassword, _>(file),
        (None, true) => portal.register_checker::<UsernamePassword, _>(memory.clone()),
        (None, false) => {}
    }
}

fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl Plugin for MailPlugin {
    fn name(&self) -> &'static str {
        "mail"
    }

    fn description(&self) -> &'static str {
        "Receive mail over SMTP into a Maildir per user"
    }

    fn command(&self) -> Command {
        Command::new("mail")
            .arg(
                Arg::new("domain")
                    .long("domain")
                    .value_name("DOMAIN=DIR")
                    .action(ArgAction::Append)
                    .help("Take mail for DOMAIN into DIR/USER, a Maildir per user (repeatable)"),
            )
            .arg(
                Arg::new("user")
                    .long("user")
                    .value_name("NAME=HASH")
                    .action(ArgAction::Append)
                    .help("A user who logs in with AUTH, and their password hash (from --hash-password); repeatable"),
            )
            .arg(
                Arg::new("passwordfile")
                    .long("passwordfile")
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("A file of user:hash lines (Argon2 or bcrypt), read again when it changes"),
            )
            .arg(
                Arg::new("smtp")
                    .long("smtp")
                    .value_name("ENDPOINT")
                    .action(ArgAction::Append)
                    .value_parser(parse_endpoint)
                    .help(format!("Where to listen for SMTP (repeatable; default {DEFAULT_SMTP}, as twistd's). {ENDPOINT_HELP}")),
            )
            .arg(
                Arg::new("pop3")
                    .long("pop3")
                    .value_name("ENDPOINT")
                    .action(ArgAction::Append)
                    .value_parser(parse_endpoint)
                    .help(format!("Also serve the Maildirs over POP3 here (repeatable; none by default). {ENDPOINT_HELP}")),
            )
            .arg(
                Arg::new("imap")
                    .long("imap")
                    .value_name("ENDPOINT")
                    .action(ArgAction::Append)
                    .value_parser(parse_endpoint)
                    .help(format!("Where to serve the Maildirs over IMAP4rev1 (repeatable; none by default). {ENDPOINT_HELP}")),
            )
            .arg(
                Arg::new("hostname")
                    .long("hostname")
                    .value_name("NAME")
                    .help("This server's name, in its greeting and Received: headers (default: the machine's name)"),
            )
            .arg(
                Arg::new("certificate")
                    .long("certificate")
                    .value_name("PEM")
                    .value_parser(clap::value_parser!(PathBuf))
                    .requires("key")
                    .help("The certificate chain (PEM) for STARTTLS"),
            )
            .arg(
                Arg::new("key")
                    .long("key")
                    .value_name("PEM")
                    .value_parser(clap::value_parser!(PathBuf))
                    .requires("certificate")
                    .help("The private key (PEM) for STARTTLS"),
            )
            .arg(
                Arg::new("auth-without-tls")
                    .long("auth-without-tls")
                    .action(ArgAction::SetTrue)
                    .help("Offer SMTP AUTH and POP3 USER/PASS on connections without TLS too (passwords in the clear; off by default)"),
            )
            .arg(
                Arg::new("timeout")
                    .long("timeout")
                    .value_name("SECONDS")
                    .value_parser(clap::value_parser!(u64))
                    .help("Drop a client that sends nothing this long, with 421 (default 600; 0: wait for ever)"),
            )
            .arg(
                Arg::new("max-message-size")
                    .long("max-message-size")
                    .value_name("BYTES")
                    .value_parser(clap::value_parser!(u64))
                    .help("The largest message taken (advertised as SIZE; default 10485760)"),
            )
            .arg(
                Arg::new("hash-password")
                    .long("hash-password")
                    .action(ArgAction::SetTrue)
                    .exclusive(true)
                    .help("Read a password (one line) from standard input, print its hash for --user or a password file, and exit"),
            )
    }

    fn make_service(&self, matches: &ArgMatches) -> Result<Rc<dyn Service>, String> {
        if matches.get_flag("hash-password") {
            hash_password_from_stdin()?;
            // Nothing to serve: done (before any worker starts a reactor).
            std::process::exit(0);
        }
        let Some(specs) = matches.get_many::<String>("domain") else {
            return Err(
                "no --domain DOMAIN=DIR given: there is nowhere to deliver mail".to_owned(),
            );
        };
        // Users: from --user and the password file; each gets a Maildir in every domain.
        let mut names = Vec::new();
        let memory = PasswordHashDb::new();
        let mut any_memory = false;
        for spec in matches.get_many::<String>("user").into_iter().flatten() {
            let Some((name, hash)) = spec.split_once('=') else {
                return Err(format!("--user takes NAME=HASH, not {spec:?}"));
            };
            memory
                .add_user(name, hash)
                .map_err(|e| format!("--user {name}: {e} (make a hash with --hash-password)"))?;
            names.push(name.to_owned());
            any_memory = true;
        }
        let file =
            match matches.get_one::<PathBuf>("passwordfile") {
                None => None,
                Some(path) => {
                    names.extend(users_of(path)?);
                    Some(FilePasswordDb::open(path).map_err(|e| {
                        format!("cannot read --passwordfile {}: {e}", path.display())
                    })?)
                }
            };
        let mut domains = Vec::new();
        let mut roots = Vec::new();
        for spec in specs {
            let Some((domain, dir)) = spec.split_once('=') else {
                return Err(format!("--domain takes DOMAIN=DIR, not {spec:?}"));
            };
            if domain.is_empty() || dir.is_empty() {
                return Err(format!("--domain takes DOMAIN=DIR, not {spec:?}"));
            }
            let d = MaildirDomain::new(domain, dir)
                .map_err(|e| format!("--domain {domain}: cannot use {dir}: {e}"))?;
            for name in &names {
                d.add_user(name)
                    .map_err(|e| format!("user {name} in {domain}: {e}"))?;
            }
            tracing::info!(target: "torsiond", "mail for {domain}: {} user(s) under {dir}", d.users().len());
            domains.push(d);
            roots.push((domain.to_owned(), PathBuf::from(dir)));
        }
        let hostname = matches
            .get_one::<String>("hostname")
            .cloned()
            .unwrap_or_else(machine_name);
        let mut limits = torsion_mail::Limits::default();
        if let Some(&size) = matches.get_one::<u64>("max-message-size") {
            limits.max_message_size = size;
        }
        let timeout = match matches.get_one::<u64>("timeout") {
            None => Some(torsion_mail::smtp::DEFAULT_TIMEOUT),
            Some(0) => None,
            Some(&s) => Some(std::time::Duration::from_secs(s)),
        };
        let tls = factory_tls(matches)?;
        let mut factory = SmtpFactory::new(&hostname, Domains(domains))
            .limits(limits)
            .timeout(timeout)
            .auth_without_tls(matches.get_flag("auth-without-tls"));
        if let Some(context) = tls.clone() {
            factory = factory.tls(context);
        }
        let portal = Portal::new(SmtpRealm);
        register_checker(&portal, &file, &memory, any_memory);
        if portal.handles::<UsernamePassword>() {
            factory = factory.portal(portal.clone());
        }
        let mut endpoints = endpoints_of(matches, "smtp");
        if endpoints.is_empty() {
            endpoints.push(parse_endpoint(DEFAULT_SMTP).expect("a valid default"));
        }
        let smtp = crate::listen::multi_listen(endpoints, factory);
        let pop3_endpoints = endpoints_of(matches, "pop3");
        let imap_endpoints = endpoints_of(matches, "imap");
        if pop3_endpoints.is_empty() && imap_endpoints.is_empty() {
            return Ok(smtp);
        }
        let root = Rc::new(torsion::application::MultiService::new());
        root.add_service(smtp).expect("the services have no names");
        // The POP3 and IMAP servers' own views of the same folders.
        let views = || -> Result<Vec<MaildirDomain>, String> {
            roots
                .iter()
                .map(|(domain, dir)| {
                    MaildirDomain::new(domain, dir).map_err(|e| {
                        format!("--domain {domain}: cannot use {}: {e}", dir.display())
                    })
                })
                .collect()
        };
        if !pop3_endpoints.is_empty() {
            let portal = Portal::new(MaildirRealm::new(views()?));
            register_checker(&portal, &file, &memory, any_memory);
            let mut pop3 = Pop3Factory::new(&hostname, portal)
                .timeout(timeout)
                .login_without_tls(matches.get_flag("auth-without-tls"));
            if let Some(context) = tls.clone() {
                pop3 = pop3.tls(context);
            }
            root.add_service(crate::listen::multi_listen(pop3_endpoints, pop3))
                .expect("the services have no names");
        }
        if !imap_endpoints.is_empty() {
            let views = views()?;
            let mut imap = ImapFactory::with_mailboxes(&hostname, move |user: &str| {
                let (local, domain) = match user.rsplit_once('@') {
                    Some((l, d)) => (l, views.iter().find(|v| v.domain().eq_ignore_ascii_case(d))),
                    None => (user, views.first()),
                };
                domain?.maildir(local).map(|m| m.path().to_owned())
            })
            .login_without_tls(matches.get_flag("auth-without-tls"));
            if let Some(context) = tls {
                imap = imap.tls(context);
            }
            if portal.handles::<UsernamePassword>() {
                imap = imap.portal(portal);
            }
            root.add_service(crate::listen::multi_listen(imap_endpoints, imap))
                .expect("the services have no names");
        }
        Ok(root)
    }
}
