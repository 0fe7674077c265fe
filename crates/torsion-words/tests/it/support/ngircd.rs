//! A throwaway ngIRCd (an IRC server nobody here wrote) for interop tests: installed with
//! apt-get when missing, started on a free loopback port with its own configuration in a
//! temporary folder, and stopped when dropped. A server that cannot be had fails the test
//! loudly: interop tests are not skipped.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running ngIRCd.
pub(crate) struct Ngircd {
    child: Child,
    dir: PathBuf,
    /// The loopback port it listens on.
    pub(crate) port: u16,
}

/// The channel the server makes at start (persistent, so joining it needs no operator).
pub(crate) const CHANNEL: &str = "#torsion";

/// The topic the server gives that channel.
pub(crate) const TOPIC: &str = "interop with ngircd";

fn ngircd_runs() -> bool {
    Command::new("ngircd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Makes sure `ngircd` is installed, with apt-get if it is not (once per test process: the
/// tests of a binary run in parallel, and two apt-gets at once fight over dpkg's lock).
fn ensure_installed() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(install);
}

fn install() {
    if ngircd_runs() {
        return;
    }
    eprintln!("ngircd is missing: installing it with apt-get");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", "ngircd"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    assert!(
        ngircd_runs(),
        "ngircd (the IRC server these interop tests talk to) is missing and apt-get could not \
         install it"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .unwrap()
        .port()
}

impl Ngircd {
    /// Starts a server on a free loopback port and waits until it accepts connections.
    pub(crate) fn start() -> Ngircd {
        ensure_installed();
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        // The port is found free, released, then given to the server: another process may
        // take it in between, so a server that does not come up is tried again elsewhere.
        for _attempt in 0..3 {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!(
                "torsion-ngircd-{}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let conf = dir.join("ngircd.conf");
            std::fs::write(
                &conf,
                format!(
                    "[Global]\n\
                     Name = irc.torsion.test\n\
                     Info = Torsion interop tests\n\
                     AdminInfo1 = Torsion\n\
                     AdminInfo2 = tests\n\
                     AdminEMail = tests@torsion.invalid\n\
                     Listen = 127.0.0.1\n\
                     Ports = {port}\n\
                     [Limits]\n\
                     MaxConnectionsIP = 0\n\
                     MaxNickLength = 30\n\
                     MaxPenaltyTime = 0\n\
                     [Options]\n\
                     PAM = no\n\
                     Ident = no\n\
                     DNS = no\n\
                     [Channel]\n\
                     Name = {CHANNEL}\n\
                     Topic = {TOPIC}\n"
                ),
            )
            .unwrap();
            let child = Command::new("ngircd")
                .args(["--nodaemon", "--config"])
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start ngircd");
            let mut server = Ngircd { child, dir, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = server.child.try_wait() {
                    break; // exited: most likely the port was taken
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(server);
        }
        panic!("ngircd did not start listening (three ports tried)");
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
