//! The command line: the runner's options, one subcommand per plugin, and how a usage
//! error is reported.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command};

use crate::exit::say;
use crate::logging;
use crate::plugins::Plugin;
use crate::privileges;

/// Parses `--umask`: an octal mask up to `777`.
fn parse_umask(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s.trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("'{s}' is not an octal file mode mask (000 to 777)")),
    }
}

/// Parses `--shutdown-timeout`: seconds, 0 or more.
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(format!("'{s}' is not a number of seconds")),
    }
}

/// The top-level command: the runner's options and one subcommand per plugin.
pub fn command(plugins: &[Box<dyn Plugin>]) -> Command {
    Command::new("torsiond")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Runs a Torsion application until SIGINT or SIGTERM (Twisted's twistd)")
        .subcommand_required(true)
        .subcommand_value_name("PLUGIN")
        .subcommand_help_heading("Plugins")
        .disable_help_subcommand(true)
        .arg(
            Arg::new("nodaemon")
                .short('n')
                .long("nodaemon")
                .action(ArgAction::SetTrue)
                .help("Run in the foreground (accepted for twistd compatibility: torsiond always does)"),
        )
        .arg(
            Arg::new("log-level")
                .long("log-level")
                .value_name("LEVEL")
                .value_parser(["trace", "debug", "info", "warn", "error"])
                .default_value("info")
                .help("The least severe log events written"),
        )
        .arg(
            Arg::new("log-format")
                .long("log-format")
                .value_name("FORMAT")
                .value_parser(["text", "json"])
                .default_value("text")
                .help("Log lines as text, or as JSON objects (timestamp, level, target, message, fields)"),
        )
        .arg(
            Arg::new("logfile")
                .short('l')
                .long("logfile")
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Log to this file instead of standard output ('-' for standard output)"),
        )
        .arg(
            Arg::new("log-rotate-size")
                .long("log-rotate-size")
                .value_name("SIZE")
                .value_parser(logging::parse_size)
                .default_value("10M")
                .help("Rotate the log file when it would grow past SIZE bytes (K, M, G suffixes; 0: never)"),
        )
        .arg(
            Arg::new("log-rotate-daily")
                .long("log-rotate-daily")
                .action(ArgAction::SetTrue)
                .help("Also rotate the log file when the day (UTC) changes"),
        )
        .arg(
            Arg::new("log-rotate-keep")
                .long("log-rotate-keep")
                .value_name("N")
                .value_parser(clap::value_parser!(u16))
                .default_value("10")
                .help("How many rotated log files to keep (PATH.1 is the newest)"),
        )
        .arg(
            Arg::new("pidfile")
                .long("pidfile")
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Write the process ID to this file (removed at exit); refuse to start if it names a running process"),
        )
        .arg(
            Arg::new("workers")
                .long("workers")
                .value_name("N")
                .value_parser(clap::value_parser!(u16).range(1..=1024))
                .default_value("1")
                .help("Threads, each with its own reactor and copy of the services, sharing the TCP ports (SO_REUSEPORT)"),
        )
        .arg(
            Arg::new("manhole")
                .long("manhole")
                .value_name("ENDPOINT")
                .value_parser(crate::listen::parse_endpoint)
                .help("Serve a console into the running program (Rhai; help() lists what it exposes: ports(), connections(), requests, log_level, stop()) on ENDPOINT: over SSH with --manhole-keys (any interface), otherwise over telnet, which must be on a loopback interface, e.g. tcp:8023:interface=127.0.0.1"),
        )
        .arg(
            Arg::new("manhole-keys")
                .long("manhole-keys")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .requires("manhole")
                .help("Serve the --manhole console over SSH to the keys in this OpenSSH authorized_keys file (read at every login; any user name)"),
        )
        .arg(
            Arg::new("manhole-host-key")
                .long("manhole-host-key")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .requires("manhole-keys")
                .help("The SSH manhole's host key (an OpenSSH private key file; made there if missing); default: manhole_host_ed25519_key in $XDG_STATE_HOME/torsiond (~/.local/state/torsiond)"),
        )
        .arg(
            Arg::new("umask")
                .long("umask")
                .value_name("OCTAL")
                .value_parser(parse_umask)
                .help("The file mode creation mask, set before anything is created (e.g. 022)"),
        )
        .arg(
            Arg::new("uid")
                .short('u')
                .long("uid")
                .value_name("USER")
                .value_parser(privileges::parse_user)
                .help("Switch to this user (name or uid) once every port is bound, before serving: start as root to bind ports below 1024 (--gid defaults to the user's group)"),
        )
        .arg(
            Arg::new("gid")
                .short('g')
                .long("gid")
                .value_name("GROUP")
                .value_parser(privileges::parse_group)
                .help("Switch to this group (name or gid) once every port is bound, before serving"),
        )
        .arg(
            Arg::new("chroot")
                .long("chroot")
                .value_name("DIR")
                .value_parser(clap::value_parser!(PathBuf))
                .help("chroot to DIR once every port is bound (before --uid): paths the plugin opens later, such as web --path, are then inside DIR"),
        )
        .arg(
            Arg::new("syslog")
                .long("syslog")
                .action(ArgAction::SetTrue)
                .conflicts_with("logfile")
                .help("Log to the local syslog daemon (/dev/log) instead of standard output"),
        )
        .arg(
            Arg::new("prefix")
                .long("prefix")
                .value_name("NAME")
                .default_value("torsiond")
                .value_parser(logging::parse_prefix)
                .help("With --syslog, the name log lines are tagged with (NAME[PID]: ...)"),
        )
        .arg(
            Arg::new("facility")
                .long("facility")
                .value_name("FACILITY")
                .value_parser(logging::FACILITIES)
                .default_value("user")
                .help("With --syslog, the syslog facility: user, daemon, or local0 to local7"),
        )
        .arg(
            Arg::new("shutdown-timeout")
                .long("shutdown-timeout")
                .value_name("SECONDS")
                .value_parser(parse_seconds)
                .default_value("10")
                .help("On SIGTERM/SIGINT, how long to let open connections finish before closing them"),
        )
        .subcommands(
            plugins
                .iter()
                .map(|p| p.command().name(p.name()).about(p.description())),
        )
}

/// Prints a clap error: help and version in full on standard output (status 0), anything
/// else as one line on standard error (status 2) that points at the help of the command the
/// error is in (`torsiond web --help` for a bad `torsiond web` option). `cmd` and `args` are
/// the command and the command line that were parsed.
pub(crate) fn usage_error(e: &clap::Error, cmd: &Command, args: &[OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let text = e.to_string();
            let mut lines = text.lines();
            let first = lines.next().unwrap_or("usage error");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // A first line ending in a colon is followed by what it is about (the missing
            // arguments): kept on the one line, up to the blank line before the usage.
            let first = if first.ends_with(':') {
                let what: Vec<&str> = lines
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect();
                format!("{first} {}", what.join(", "))
            } else {
                first.to_string()
            };
            // The error is the plugin's when the runner's options before its name parse.
            let in_plugin = plugin_named(cmd, args).filter(|(at, _)| {
                cmd.clone()
                    .subcommand_required(false)
                    .try_get_matches_from(&args[..*at])
                    .is_ok()
            });
            let help = match in_plugin {
                Some((_, plugin)) => format!("{} {plugin} --help", cmd.get_name()),
                None => format!("{} --help", cmd.get_name()),
            };
            say(format_args!("torsiond: {first} (see {help})"));
            ExitCode::from(2)
        }
    }
}

/// The plugin (subcommand of `cmd`) that `args` (program name first) name, if any, and
/// where: the first argument that is not a runner option or an option's value, when it is a
/// plugin's name.
fn plugin_named(cmd: &Command, args: &[OsString]) -> Option<(usize, String)> {
    let takes_value = |arg: Option<&Arg>| arg.is_some_and(|a| a.get_action().takes_values());
    let mut args = args.iter().map(|a| a.to_string_lossy()).enumerate().skip(1);
    while let Some((at, arg)) = args.next() {
        if arg == "--" {
            return None;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let named = cmd.get_arguments().find(|a| a.get_long() == Some(long));
            if !long.contains('=') && takes_value(named) {
                args.next();
            }
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            // `-l PATH`, `-lPATH`, `-nl PATH`: a short option that takes a value takes the
            // rest of the word, or the next one.
            for (i, c) in shorts.char_indices() {
                let named = cmd.get_arguments().find(|a| a.get_short() == Some(c));
                if takes_value(named) {
                    if i + c.len_utf8() == shorts.len() {
                        args.next();
                    }
                    break;
                }
            }
        } else {
            return cmd
                .find_subcommand(arg.as_ref())
                .map(|p| (at, p.get_name().to_owned()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::{command, plugin_named};
    use crate::builtin_plugins;

    fn plugin_in(args: &[&str]) -> Option<String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        plugin_named(&command(&builtin_plugins()), &args).map(|(at, name)| {
            assert_eq!(args[at], *name);
            name
        })
    }

    #[test]
    fn the_plugin_is_the_first_word_that_is_no_option_or_value() {
        assert_eq!(
            plugin_in(&["torsiond", "web", "--bad"]).as_deref(),
            Some("web")
        );
        assert_eq!(
            plugin_in(&["torsiond", "-n", "--workers", "2", "echo"]).as_deref(),
            Some("echo")
        );
        // Option values that happen to be plugin names are values.
        assert_eq!(
            plugin_in(&["torsiond", "--pidfile", "web", "echo"]).as_deref(),
            Some("echo")
        );
        assert_eq!(
            plugin_in(&["torsiond", "-l", "web", "portforward"]).as_deref(),
            Some("portforward")
        );
        assert_eq!(
            plugin_in(&["torsiond", "-nl", "web", "echo"]).as_deref(),
            Some("echo")
        );
        assert_eq!(
            plugin_in(&["torsiond", "-lweb", "echo"]).as_deref(),
            Some("echo")
        );
        assert_eq!(
            plugin_in(&["torsiond", "--logfile=web", "echo"]).as_deref(),
            Some("echo")
        );
        assert_eq!(plugin_in(&["torsiond", "nosuchplugin", "web"]), None);
        assert_eq!(plugin_in(&["torsiond", "--workers"]), None);
        assert_eq!(plugin_in(&["torsiond"]), None);
    }
}
