//! An SSH server with a tiny shell, in the style of Twisted's conch example
//! (`sshsimpleserver.py`): log in with a key listed in an `authorized_keys` file, then type
//! `help`, `echo ...`, `whoami` or `quit`. `ssh -p P host 'echo hi'` runs one command and
//! exits with its status (127 for an unknown command).
//!
//! ```text
//! cargo run --release --example ssh_server -- --port 2222 --authorized-keys ~/.ssh/id_ed25519.pub
//! ssh -p 2222 -o UserKnownHostsFile=/dev/null localhost
//! ```
//!
//! `--sftp-root DIR` serves a folder over SFTP too (nothing outside it), and
//! `--permit-open HOST:PORT` lets clients forward there (`ssh -L`).
//!
//! Without `--host-key`, the host key is made at first start in `ssh_host_ed25519_key`
//! (in the current folder) and reused afterwards.
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use torsion::conch::keys::{AuthorizedKeysChecker, SshPublicKey};
use torsion::conch::ssh::{
    ExitStatus, ForwardPolicy, HostKey, SessionKind, SessionRequest, SshRealm, SshServer,
};
use torsion::cred::Portal;
use torsion::error::CannotListenError;
use torsion::{reactor, ConnectionEnd, Failure, Protocol, Transport};
use torsion_examples::init_logging;

/// An SSH server with a small shell, as Twisted's conch example server (sshsimpleserver.py).
#[derive(Parser)]
struct Cli {
    /// The TCP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 2222)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
    /// The OpenSSH authorized_keys file whose keys may log in (as any user name).
    #[arg(long)]
    authorized_keys: PathBuf,
    /// The host key (OpenSSH private key file); made there at first start if missing.
    #[arg(long, default_value = "ssh_host_ed25519_key")]
    host_key: PathBuf,
    /// Serves this folder over SFTP (`sftp -P PORT localhost`), read and write; off unless
    /// given.
    #[arg(long)]
    sftp_root: Option<PathBuf>,
    /// Lets clients forward (`ssh -L`, `ssh -W`) to HOST:PORT (`*` for any host or port);
    /// repeatable. Forwarding is refused unless given.
    #[arg(long, value_name = "HOST:PORT")]
    permit_open: Vec<String>,
}

/// The shell: one line at a time, with a prompt; on a terminal, it echoes what is typed.
struct Shell {
    user: String,
    exec: Option<Vec<u8>>,
    exit: ExitStatus,
    tty: bool,
    line: Vec<u8>,
}

const PROMPT: &[u8] = b"$ ";

impl Shell {
    /// Runs one command line; false when the session should end.
    fn run(&mut self, t: &Transport, line: &str) -> bool {
        let nl: &[u8] = if self.tty { b"\r\n" } else { b"\n" };
        let (cmd, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        match cmd {
            "" => {}
            "help" => {
                t.write(b"commands: echo TEXT, whoami, help, quit");
                t.write(nl);
            }
            "echo" => {
                t.write(rest.as_bytes());
                t.write(nl);
            }
            "whoami" => {
                t.write(self.user.as_bytes());
                t.write(nl);
            }
            "quit" | "exit" => {
                t.write(b"bye");
                t.write(nl);
                return false;
            }
            other => {
                t.write(format!("{other}: command not found").as_bytes());
                t.write(nl);
                self.exit.set(127);
                return true;
            }
        }
        self.exit.set(0);
        true
    }
}

impl Protocol for Shell {
    fn connection_made(&mut self, t: &Transport) {
        if let Some(cmd) = self.exec.take() {
            let cmd = String::from_utf8_lossy(&cmd).into_owned();
            self.run(t, &cmd);
            t.lose_connection();
        } else {
            t.write(b"Welcome to the Torsion SSH shell; type help.");
            t.write(if self.tty { b"\r\n" } else { b"\n" });
            t.write(PROMPT);
        }
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        for &b in data {
            match b {
                b'\r' | b'\n' => {
                    if self.tty {
                        t.write(b"\r\n");
                    }
                    let line =
                        String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
                    if !self.run(t, &line) {
                        t.lose_connection();
                        return;
                    }
                    t.write(PROMPT);
                }
                // Backspace and DEL, as a terminal sends them.
                0x08 | 0x7f => {
                    let erased = self.line.pop().is_some();
                    if erased && self.tty {
                        t.write(b"\x08 \x08");
                    }
                }
                // Ctrl-C and Ctrl-D end the session.
                0x03 | 0x04 => {
                    t.lose_connection();
                    return;
                }
                _ if self.line.len() < 4096 => {
                    self.line.push(b);
                    if self.tty {
                        t.write(&[b]);
                    }
                }
                _ => {}
            }
        }
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {}
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    if !cli.authorized_keys.is_file() {
        return Err(Failure::new(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "no authorized_keys file at {}",
                cli.authorized_keys.display()
            ),
        )));
    }
    // Bound before the host key is read or made: a busy port leaves no key file behind.
    let address = SocketAddr::new(cli.interface, cli.port);
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| CannotListenError::new(address.to_string(), e))?;
    let portal = Portal::new(SshRealm);
    portal.register_checker::<SshPublicKey, _>(AuthorizedKeysChecker::file(
        &cli.authorized_keys,
        &[],
    ));
    let host_key = HostKey::load_or_generate(&cli.host_key)?;
    let server = SshServer::new(portal, vec![host_key], |req: &SessionRequest| {
        Some(Box::new(Shell {
            user: req.user.clone(),
            exec: match &req.kind {
                SessionKind::Exec(cmd) => Some(cmd.clone()),
                SessionKind::Shell => None,
            },
            exit: req.exit.clone(),
            tty: req.pty().is_some(),
            line: Vec::new(),
        }) as Box<dyn Protocol>)
    });
    let server = match &cli.sftp_root {
        Some(dir) => server.sftp_root(dir)?,
        None => server,
    };
    let server = if cli.permit_open.is_empty() {
        server
    } else {
        let policy = ForwardPolicy::parse(&cli.permit_open)
            .map_err(|e| Failure::new(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        server.allow_direct_tcpip(policy)
    };
    let port = server.listen_on(listener)?;
    println!("ssh server listening on {}", port.local_addr());
    reactor().run()
}
