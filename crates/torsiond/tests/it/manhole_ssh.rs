//! `torsiond --manhole ENDPOINT --manhole-keys FILE`: the console over SSH, driven by
//! OpenSSH's `ssh` against a running `torsiond web`: `connections()` and `requests` by
//! `ssh host 'command'`, the log level changed with its effect on the log, a runaway script
//! interrupted while `curl` still gets answers, a graceful `stop()`, the host key made once
//! and kept in the state folder, `--manhole-host-key`, an interactive shell with Tab
//! completion under `ssh -tt`, and a key not in the file refused.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{run, stderr_of, torsiond, Running, TempDir, TIMEOUT};

/// Whether OpenSSH's `ssh`, `ssh-keygen` and curl are here; skips (fails on CI) when not.
fn have_peers() -> bool {
    let ok = |c: &str, a: &str| Command::new(c).arg(a).output().is_ok();
    if !(ok("ssh", "-V") && ok("ssh-keygen", "-?") && ok("curl", "--version")) {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            "OpenSSH's ssh and ssh-keygen (openssh-client) and curl are needed",
        );
        return false;
    }
    true
}

/// Makes an Ed25519 key pair at `path`; returns the public key's line.
fn keygen(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "manhole-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// A folder with a served file `a.txt`, a client key `id` listed in `authorized_keys`, a
/// key `other` that is not, and an empty `state` folder.
fn setup(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let p = dir.path();
    std::fs::write(p.join("a.txt"), "a").unwrap();
    let public = keygen(&p.join("id"));
    keygen(&p.join("other"));
    std::fs::write(p.join("authorized_keys"), public).unwrap();
    std::fs::create_dir(p.join("state")).unwrap();
    dir
}

/// `torsiond --manhole MANHOLE --manhole-keys authorized_keys EXTRA web` serving `dir`,
/// with `dir/state` as its state folder.
fn start(dir: &Path, manhole: &str, extra: &[&str]) -> Running {
    let mut c = Command::new(env!("CARGO_BIN_EXE_torsiond"));
    c.env("XDG_STATE_HOME", dir.join("state"))
        .args(["--manhole", manhole, "--manhole-keys"])
        .arg(dir.join("authorized_keys"))
        .args(extra)
        .args(["web", "--listen", "tcp:0:interface=127.0.0.1", "--path"])
        .arg(dir);
    Running::spawn(c)
}

/// The port and host key fingerprint of the `manhole: SSH console on ...` line.
fn console(server: &Running) -> (u16, String) {
    let line = server.wait_for("manhole: SSH console on tcp:");
    let after = line.split("SSH console on tcp:").nth(1).unwrap();
    let port = after
        .split(' ')
        .next()
        .and_then(|a| a.rsplit(':').next())
        .unwrap()
        .parse()
        .unwrap();
    let fingerprint = line.rsplit("host key ").next().unwrap();
    (port, fingerprint.trim_end_matches(')').to_string())
}

/// `ssh` to the console with `key`, away from ~/.ssh, never prompting.
fn ssh(port: u16, key: &Path) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null", "-p", &port.to_string(), "-i"])
        .arg(key)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=20",
        ]);
    c
}

/// Runs one console command with `ssh -p PORT -i key localhost 'COMMAND'`.
fn exec(port: u16, key: &Path, command: &str) -> Output {
    ssh(port, key)
        .args(["localhost", command])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn describe(o: &Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        o.status.code(),
        out(o),
        stderr_of(o)
    )
}

/// `curl`'s status code for `path`.
fn curl(port: u16, path: &str) -> String {
    let o = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-m", "20", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    out(&o)
}

#[test]
fn ssh_manhole_shows_connections_changes_log_level_interrupts_and_stops() {
    if !have_peers() {
        return;
    }
    let dir = setup("ssh-manhole");
    let id = dir.path().join("id");
    // Every interface: the keys guard the console.
    let mut server = start(dir.path(), "tcp:0", &[]);
    let generated = server.wait_for("no SSH host key at");
    let key_file = dir.path().join("state/torsiond/manhole_host_ed25519_key");
    assert!(
        generated.contains(key_file.to_str().unwrap()),
        "{generated}"
    );
    let (port, fingerprint) = console(&server);
    assert!(
        generated.contains(&fingerprint),
        "{generated} / {fingerprint}"
    );
    let web = server.port();

    // An HTTP connection held open shows in connections(); the finished request counts.
    let mut held = TcpStream::connect(("127.0.0.1", web)).unwrap();
    held.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    held.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert!(held.read(&mut [0u8; 512]).unwrap() > 0);
    let open = exec(port, &id, "connections()");
    assert_eq!(
        out(&open),
        format!("#{{\"tcp:127.0.0.1:{web}\": 1}}\n"),
        "{}",
        describe(&open)
    );
    assert_eq!(open.status.code(), Some(0));
    assert_eq!(out(&exec(port, &id, "requests")), "1\n");
    drop(held);

    // The log level changes at run time: under warn the access log is silent.
    let set = exec(port, &id, "log_level = \"warn\"");
    assert_eq!((out(&set).as_str(), set.status.code()), ("", Some(0)));
    assert_eq!(curl(web, "/under-warn"), "404");
    let refused = exec(port, &id, "log_level = \"loud\"");
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(out(&refused).contains("no log level \"loud\""));
    assert_eq!(
        exec(port, &id, "log_level = \"info\"").status.code(),
        Some(0)
    );
    assert_eq!(curl(web, "/under-info"), "404");
    let lines = server.lines_until("/under-info");
    assert!(
        !lines.iter().any(|l| l.contains("/under-warn")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("log level set to info")),
        "{lines:#?}"
    );

    // A runaway script is interrupted after its time limit (2 s); a request made while it
    // runs is answered, and so is one made after.
    let meanwhile = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        curl(web, "/a.txt")
    });
    let began = Instant::now();
    let runaway = exec(port, &id, "loop {}");
    let took = began.elapsed();
    assert_eq!(runaway.status.code(), Some(1), "{}", describe(&runaway));
    assert!(
        out(&runaway).starts_with("interrupted"),
        "{}",
        describe(&runaway)
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert_eq!(meanwhile.join().unwrap(), "200");
    assert_eq!(curl(web, "/a.txt"), "200");

    // stop() stops the runner gracefully: status 0.
    let _ = exec(port, &id, "stop()");
    server.wait_for("stop() from the manhole");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = server.try_wait() {
            break s;
        }
        assert!(Instant::now() < deadline, "torsiond did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");

    // The host key was kept (owner-only) and is used again on the next start.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = start(dir.path(), "tcp:0:interface=127.0.0.1", &[]);
    let lines = again.lines_until("manhole: SSH console on");
    assert!(
        !lines.iter().any(|l| l.contains("no SSH host key")),
        "{lines:#?}"
    );
    assert_eq!(console_line_fingerprint(lines.last().unwrap()), fingerprint);
}

fn console_line_fingerprint(line: &str) -> String {
    line.rsplit("host key ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string()
}

/// `ssh`'s standard output, gathered by a thread, waited on with a deadline.
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Screen {
    fn watch(mut from: impl Read + Send + 'static) -> Screen {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Screen(seen)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until the output from byte `from` on contains `needle`; returns the length of
    /// the output then.
    fn wait_for(&self, from: usize, needle: &str) -> usize {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let all = self.text();
            if all.get(from..).is_some_and(|s| s.contains(needle)) {
                return all.len();
            }
            assert!(Instant::now() < deadline, "no {needle:?} in {all:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn ssh_manhole_host_key_option_shell_completion_and_wrong_key() {
    if !have_peers() {
        return;
    }
    let dir = setup("ssh-manhole-shell");
    let host_key = dir.path().join("host_key");
    keygen(&host_key);
    let server = start(
        dir.path(),
        "tcp:0:interface=127.0.0.1",
        &["--manhole-host-key", host_key.to_str().unwrap()],
    );
    let (port, _) = console(&server);
    let web = server.port();

    // The host key given is the one served: ssh checks it against a known_hosts file
    // holding only its public half.
    let known = dir.path().join("known_hosts");
    let public = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
    std::fs::write(&known, format!("[127.0.0.1]:{port} {public}")).unwrap();
    let checked = ssh(port, &dir.path().join("id"))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "127.0.0.1", "plugin"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out(&checked), "\"web\"\n", "{}", describe(&checked));

    // A key not in the file is refused; keys are the only method offered.
    let refused = exec(port, &dir.path().join("other"), "connections()");
    assert_eq!(refused.status.code(), Some(255), "{}", describe(&refused));
    assert!(
        stderr_of(&refused).contains("Permission denied (publickey)"),
        "{}",
        describe(&refused)
    );
    assert_eq!(out(&refused), "");

    // A shell with a pty: the console echoes, completes an exposed name with Tab, answers,
    // and ends on Ctrl-D with status 0.
    let mut child = ssh(port, &dir.path().join("id"))
        .args(["-tt", "localhost"])
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let screen = Screen::watch(child.stdout.take().unwrap());
    let mut input = child.stdin.take().unwrap();
    let mut at = screen.wait_for(0, ">>> ");
    input.write_all(b"conn\t").unwrap();
    at = screen.wait_for(at, "connections");
    input.write_all(b"()\r").unwrap();
    at = screen.wait_for(at, &format!("#{{\"tcp:127.0.0.1:{web}\": 0}}\r\n>>> "));
    input.write_all(b"\x04").unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "ssh did not end: {}",
            screen.text()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "{:?}", &screen.text()[at..]);
    let _ = web;
}

#[test]
fn ssh_manhole_mistakes_are_errors_at_once() {
    let dir = TempDir::new("ssh-manhole-mistakes");
    let missing: PathBuf = dir.path().join("no_such_keys");
    let o = run(
        &[
            "--manhole",
            "tcp:0",
            "--manhole-keys",
            missing.to_str().unwrap(),
            "echo",
            "--listen",
            "tcp:0:interface=127.0.0.1",
        ],
        TIMEOUT,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("--manhole-keys"),
        "{}",
        stderr_of(&o)
    );
    std::fs::write(dir.path().join("keys"), "").unwrap();
    let keys = dir.path().join("keys");
    let o = run(
        &[
            "--manhole",
            "unix:/tmp/x.sock",
            "--manhole-keys",
            keys.to_str().unwrap(),
            "echo",
            "--listen",
            "tcp:0:interface=127.0.0.1",
        ],
        TIMEOUT,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("SSH manhole takes a tcp:"),
        "{}",
        stderr_of(&o)
    );
    // A host key option without keys is a usage error.
    let o = torsiond()
        .args([
            "--manhole",
            "tcp:0:interface=127.0.0.1",
            "--manhole-host-key",
            "k",
        ])
        .args(["echo", "--listen", "tcp:0:interface=127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("--manhole-keys"),
        "{}",
        stderr_of(&o)
    );
}
