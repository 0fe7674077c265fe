//! An SSH client that runs one command, as `ssh USER@HOST COMMAND` does (Twisted's conch
//! client examples, `sshsimpleclient.py`): the host key is checked against an OpenSSH
//! known_hosts file, the login is by key (`--identity`, else `~/.ssh/id_ed25519` or
//! `~/.ssh/id_ecdsa` when present) or by a password read from standard input, and the
//! command's output is printed: its standard output on standard output, its standard error
//! on standard error. The program exits with the command's status, or 255 when it could not
//! connect or log in (as `ssh` does).
//!
//! ```text
//! cargo run --release --example ssh_server -- --port 2222 --authorized-keys ~/.ssh/id_ed25519.pub
//! cargo run --release --example ssh_client -- --port 2222 --accept-new me@localhost echo hi
//! ```
//!
//! An unknown host is refused unless `--accept-new` is given (then its key is added to the
//! known_hosts file, as `ssh -o StrictHostKeyChecking=accept-new` does); a host whose key
//! changed is always refused, naming the known_hosts line.
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use torsion::conch::client::{connect_ssh, ClientConfig};
use torsion::conch::known_hosts::UnknownHostPolicy;
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// Runs a command on an SSH server and prints its output (Twisted's conch client example).
#[derive(Parser)]
struct Cli {
    /// The server's port.
    #[arg(long, short = 'p', default_value_t = 22)]
    port: u16,
    /// A private key file to log in with (OpenSSH format; Ed25519 or ECDSA).
    #[arg(long, short = 'i')]
    identity: Option<PathBuf>,
    /// Read a password from the first line of standard input and log in with it.
    #[arg(long)]
    password_stdin: bool,
    /// The known_hosts file (default: ~/.ssh/known_hosts).
    #[arg(long)]
    known_hosts: Option<PathBuf>,
    /// Trust a host that is not in the known_hosts file and add it there.
    #[arg(long)]
    accept_new: bool,
    /// Seconds to wait for the connection, and again for the login.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Who and where: USER@HOST (or HOST, as the current user).
    destination: String,
    /// The command to run, with its arguments (joined by spaces, as ssh does).
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn config(cli: &Cli, user: &str) -> Result<ClientConfig, Failure> {
    let mut config = ClientConfig::new(user);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if let Some(path) = &cli.known_hosts {
        config = config.known_hosts(path);
    }
    if cli.accept_new {
        config = config.unknown_host(UnknownHostPolicy::AcceptNew);
    }
    let timeout = std::time::Duration::from_secs_f64(cli.timeout.max(0.0));
    config.connect_timeout = timeout;
    config.auth_timeout = timeout;
    match &cli.identity {
        Some(path) => config = config.key_file(path),
        None => {
            for name in ["id_ed25519", "id_ecdsa"] {
                if let Some(path) = home.as_ref().map(|h| h.join(".ssh").join(name)) {
                    if path.is_file() {
                        config = config.key_file(path);
                    }
                }
            }
        }
    }
    if cli.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        config = config.password(line.trim_end_matches(['\r', '\n']));
    }
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let (user, host) = match cli.destination.split_once('@') {
        Some((user, host)) => (user.to_owned(), host.to_owned()),
        None => (
            std::env::var("USER").unwrap_or_else(|_| "root".into()),
            cli.destination.clone(),
        ),
    };
    let config = match config(&cli, &user) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {}", e.error_message());
            return ExitCode::from(255);
        }
    };
    let command = cli.command.join(" ");
    let r = reactor();
    let status = std::rc::Rc::new(std::cell::Cell::new(255u8));
    let set = status.clone();
    let port = cli.port;
    r.spawn(async move {
        let conn = connect_ssh(&reactor(), &host, port, config).await?;
        let out = conn.execute(&command).await?;
        conn.close().await?;
        std::io::stdout().write_all(&out.stdout)?;
        std::io::stdout().flush()?;
        std::io::stderr().write_all(&out.stderr)?;
        // A command killed by a signal has no status: 255, as ssh reports it.
        Ok::<_, Failure>(out.exit_status.map_or(255, |s| s.min(255) as u8))
    })
    .add_both(move |result| {
        match result.and_then(|r| r) {
            Ok(code) => set.set(code),
            Err(e) => eprintln!("Error: {}", e.error_message()),
        }
        reactor().stop()
    });
    if let Err(e) = r.run() {
        eprintln!("Error: {}", e.error_message());
        return ExitCode::from(255);
    }
    ExitCode::from(status.get())
}
