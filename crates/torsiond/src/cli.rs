//! The command line: the runner's options, one subcommand per plugin, and how a usage
//! error is reported.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command};

use crate::exit::say;
use crate::logging;
use crate::plugins::Plugin;

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
            Arg::new("umask")
                .long("umask")
                .value_name("OCTAL")
                .value_parser(parse_umask)
                .help("The file mode creation mask, set before anything is created (e.g. 022)"),
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
/// else as one line on standard error (status 2).
pub(crate) fn usage_error(e: &clap::Error) -> ExitCode {
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
            let first = text.lines().next().unwrap_or("usage error");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            say(format_args!("torsiond: {first} (see torsiond --help)"));
            ExitCode::from(2)
        }
    }
}
