//! Shared helpers: scratch folders, keys made with `ssh-keygen`, a test session protocol,
//! running a peer against an SSH server while the reactor runs; and for the telnet and
//! manhole tests, a reactor without signal handlers and running an outside peer process.

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::{Protocol, Reactor, Transport};
use torsion_conch::keys::{AuthorizedKeysChecker, SshPublicKey};
use torsion_conch::ssh::{
    ExitStatus, HostKey, SessionKind, SessionRequest, SshOptions, SshRealm, SshServer,
};
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal, UsernamePassword};

pub(crate) use torsion::testing::TempDir;

/// Whether OpenSSH's client is here; skips (fails on CI) when not.
pub(crate) fn have_ssh() -> bool {
    let ok = Command::new("ssh").arg("-V").output().is_ok()
        && Command::new("ssh-keygen").arg("-?").output().is_ok();
    if !ok {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            "OpenSSH's ssh and ssh-keygen (Debian's openssh-client) are needed",
        );
    }
    ok
}

/// Makes an Ed25519 key pair at `path` (and `path.pub`) with `ssh-keygen`; returns the
/// public key's line.
pub(crate) fn keygen(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@torsion", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// The test session: `echo WORDS`, `exit N`, `env NAME`, `pty`, `whoami`, and `lines` (a
/// LineReceiver reversing each line until the client's EOF); a shell reads commands by line.
pub(crate) fn session(req: &SessionRequest) -> Option<Box<dyn Protocol>> {
    match &req.kind {
        SessionKind::Exec(cmd) if cmd == b"lines" => Some(Box::new(Lines::new(Reverse))),
        SessionKind::Exec(cmd) => Some(Box::new(Command1 {
            req: req.clone(),
            cmd: Some(String::from_utf8_lossy(cmd).into_owned()),
        })),
        SessionKind::Shell => Some(Box::new(Command1 {
            req: req.clone(),
            cmd: None,
        })),
    }
}

/// Reverses every line (Twisted's ReverseLineProtocol), over an SSH channel.
struct Reverse;

impl LineReceiver for Reverse {
    fn line_received(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
        let r: Vec<u8> = line.iter().rev().copied().collect();
        t.send_line(&r);
    }
}

struct Command1 {
    req: SessionRequest,
    cmd: Option<String>,
}

fn run(req: &SessionRequest, exit: &ExitStatus, t: &Transport, cmd: &str) -> bool {
    let (word, rest) = cmd.trim().split_once(' ').unwrap_or((cmd.trim(), ""));
    match word {
        "echo" => t.write(format!("{rest}\n").as_bytes()),
        "whoami" => t.write(format!("{}\n", req.user).as_bytes()),
        "env" => {
            let v = req
                .env
                .iter()
                .find(|(k, _)| k == rest)
                .map(|(_, v)| v.as_str());
            t.write(format!("{}\n", v.unwrap_or("-")).as_bytes());
        }
        "pty" => match req.pty() {
            Some(p) => t.write(format!("{} {}x{}\n", p.term, p.cols, p.rows).as_bytes()),
            None => t.write(b"no pty\n"),
        },
        "exit" => {
            exit.set(rest.parse().unwrap_or(1));
            return false;
        }
        "quit" => return false,
        _ => {
            t.write(format!("{word}: command not found\n").as_bytes());
            exit.set(127);
            return true;
        }
    }
    exit.set(0);
    true
}

impl Protocol for Command1 {
    fn connection_made(&mut self, t: &Transport) {
        if let Some(cmd) = self.cmd.take() {
            run(&self.req, &self.req.exit, t, &cmd);
            t.lose_connection();
        } else {
            t.write(b"$ ");
        }
    }

    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        for line in String::from_utf8_lossy(data).split(['\r', '\n']) {
            if line.is_empty() {
                continue;
            }
            if !run(&self.req, &self.req.exit, t, line) {
                t.lose_connection();
                return;
            }
            t.write(b"$ ");
        }
    }
}

/// A server with key logins for any user whose key is in `authorized`, and password logins
/// for alice/secret.
pub(crate) fn server(authorized: &Path, host_key: HostKey, options: SshOptions) -> SshServer {
    let portal = Portal::new(SshRealm);
    portal.register_checker::<SshPublicKey, _>(AuthorizedKeysChecker::file(authorized, &[]));
    let users = InMemoryUsernamePasswordDatabaseDontUse::new();
    users.add_user("alice", "secret");
    portal.register_checker::<UsernamePassword, _>(users);
    SshServer::with_options(portal, vec![host_key], session, options)
}

/// Options for tests: rejections take 200 ms, not a second.
pub(crate) fn quick() -> SshOptions {
    SshOptions {
        rejection_time: std::time::Duration::from_millis(200),
        ..SshOptions::default()
    }
}

/// Serves `server` on 127.0.0.1, runs `peer(port)` in a thread while the reactor runs, and
/// returns what it returned.
pub(crate) fn with_server<T: Send + 'static>(
    make: impl FnOnce() -> SshServer,
    peer: impl FnOnce(u16) -> T + Send + 'static,
) -> T {
    let r = Reactor::new();
    r.set_install_signal_handlers(false);
    let server = make();
    let port = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let number = port.local_addr().port();
    let out = torsion::testing::run_with_peer(&r, 120.0, move || peer(number));
    drop(port);
    out
}

/// `ssh` with options that keep it away from ~/.ssh and never prompting.
pub(crate) fn ssh(dir: &Path, port: u16) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null", "-p", &port.to_string()])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "LogLevel=ERROR",
        ]);
    c
}

/// `ssh` logging in with `key` only, no password.
pub(crate) fn ssh_key(dir: &Path, port: u16, key: &Path) -> Command {
    let mut c = ssh(dir, port);
    c.args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o"])
        .arg("PasswordAuthentication=no")
        .arg("-i")
        .arg(key);
    c
}

pub(crate) fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

pub(crate) fn describe(out: &Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// A reactor for a test that runs it: its own, without signal handlers (tests run in
/// parallel threads).
pub(crate) fn reactor() -> torsion::Reactor {
    let r = torsion::Reactor::new();
    r.set_install_signal_handlers(false);
    r
}

/// Runs `r` until `child` exits (polled every 20 ms) or 60 s pass; returns its output.
pub(crate) fn run_until_exit(r: &torsion::Reactor, child: Child) -> Output {
    use std::cell::RefCell;
    use std::rc::Rc;
    fn poll(r: torsion::Reactor, child: Rc<RefCell<Option<Child>>>) {
        let done = match child.borrow_mut().as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        };
        if done {
            drop(r.stop());
        } else {
            let again = r.clone();
            r.call_later(0.02, move || poll(again, child));
        }
    }
    let child = Rc::new(RefCell::new(Some(child)));
    let guard = r.clone();
    r.call_later(Duration::from_secs(60), move || drop(guard.stop()));
    poll(r.clone(), child.clone());
    r.run().unwrap();
    let mut c = child.borrow_mut().take().unwrap();
    let _ = c.kill();
    c.wait_with_output().unwrap()
}

/// True (after reporting the skip) when the Python peer could not import `telnetlib`: it
/// left the standard library in Python 3.13, and these tests use it as a telnet client
/// nobody here wrote.
pub(crate) fn telnetlib_missing(out: &Output) -> bool {
    let missing = String::from_utf8_lossy(&out.stderr).contains("No module named 'telnetlib'");
    if missing {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            "python3 has no telnetlib (removed in Python 3.13)",
        );
    }
    missing
}
