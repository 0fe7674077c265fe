//! The ssh_server example against OpenSSH's `ssh`: a key from the authorized_keys file logs
//! in, commands run with their exit status, and the shell answers on a terminal; the
//! ssh_client example against it, checking its host key.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::support;

/// The example, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have_ssh() -> bool {
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

fn ssh(dir: &Path, port: u16) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null", "-p", &port.to_string(), "-i"])
        .arg(dir.join("id"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
        ]);
    c
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ssh_server_runs_commands_and_a_shell_for_an_authorized_key() {
    if !have_ssh() {
        return;
    }
    let dir = support::temp_path("ssh-example", "d");
    std::fs::create_dir_all(&dir).unwrap();
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(dir.join("id"))
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let host_key = dir.join("host_key");
    let mut child = support::example("ssh_server")
        .args(["--port", "0", "--authorized-keys"])
        .arg(dir.join("id.pub"))
        .arg("--host-key")
        .arg(&host_key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = support::lines(child.stdout.take().unwrap());
    let stderr = support::lines(child.stderr.take().unwrap());
    let server = Running(child);
    let line = stdout
        .recv_timeout(Duration::from_secs(300))
        .expect("ssh_server says where it listens");
    let port: u16 = line
        .strip_prefix("ssh server listening on 127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    let mut log = Vec::new();
    while let Ok(l) = stderr.recv_timeout(Duration::from_secs(10)) {
        let found = l.contains("generated a new Ed25519 host key");
        log.push(l);
        if found {
            break;
        }
    }
    assert!(
        log.iter()
            .any(|l| l.contains("generated a new Ed25519 host key")),
        "the new host key is logged: {log:?}"
    );
    assert!(host_key.exists());

    let echo = ssh(&dir, port)
        .args(["me@127.0.0.1", "echo hello"])
        .output()
        .unwrap();
    assert_eq!(text(&echo), "hello\n", "{echo:?}");
    assert_eq!(echo.status.code(), Some(0));
    let who = ssh(&dir, port)
        .args(["me@127.0.0.1", "whoami"])
        .output()
        .unwrap();
    assert_eq!(text(&who), "me\n");
    let bad = ssh(&dir, port)
        .args(["me@127.0.0.1", "rm -rf /"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(127), "{bad:?}");
    assert_eq!(text(&bad), "rm: command not found\n");

    let mut shell = ssh(&dir, port)
        .args(["-tt", "me@127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = shell.stdin.take().unwrap();
    stdin.write_all(b"help\recho typed\rquit\r").unwrap();
    let out = shell.wait_with_output().unwrap();
    drop(stdin);
    let screen = text(&out);
    assert!(screen.contains("Welcome"), "{screen:?}");
    assert!(
        screen.contains("commands: echo TEXT, whoami, help, quit\r\n"),
        "{screen:?}"
    );
    assert!(screen.contains("typed\r\n"), "{screen:?}");
    assert!(screen.contains("bye"), "{screen:?}");
    assert_eq!(out.status.code(), Some(0), "{screen:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the ssh_server example letting in `dir/id`; the running server and its port.
fn start_ssh_server(dir: &Path) -> (Running, u16) {
    let mut child = support::example("ssh_server")
        .args(["--port", "0", "--authorized-keys"])
        .arg(dir.join("id.pub"))
        .arg("--host-key")
        .arg(dir.join("host_key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = support::lines(child.stdout.take().unwrap());
    let server = Running(child);
    let line = stdout
        .recv_timeout(Duration::from_secs(300))
        .expect("ssh_server says where it listens");
    let port: u16 = line
        .strip_prefix("ssh server listening on 127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    (server, port)
}

#[test]
fn ssh_client_runs_commands_on_the_ssh_server_checking_its_host_key() {
    if !have_ssh() {
        return;
    }
    let dir = support::temp_path("ssh-client-example", "d");
    std::fs::create_dir_all(&dir).unwrap();
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(dir.join("id"))
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let (server, port) = start_ssh_server(&dir);
    let known = dir.join("known_hosts");
    let client = |extra: &[&str], command: &[&str]| {
        support::example("ssh_client")
            .args(["--port", &port.to_string(), "--identity"])
            .arg(dir.join("id"))
            .arg("--known-hosts")
            .arg(&known)
            .args(extra)
            .arg("me@127.0.0.1")
            .args(command)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    // An unknown host is refused, and nothing is written.
    let refused = client(&[], &["echo", "hi"]);
    assert_eq!(refused.status.code(), Some(255), "{refused:?}");
    assert!(stderr(&refused).contains("is not known"), "{refused:?}");
    assert!(text(&refused).is_empty());
    assert!(!known.exists());

    // --accept-new trusts it and writes it down; later runs need no flag.
    let hi = client(&["--accept-new"], &["echo", "hi", "there"]);
    assert_eq!(text(&hi), "hi there\n", "{hi:?}");
    assert_eq!(hi.status.code(), Some(0));
    let written = std::fs::read_to_string(&known).unwrap();
    assert!(
        written.starts_with(&format!("[127.0.0.1]:{port} ssh-ed25519 ")),
        "{written}"
    );
    let who = client(&[], &["whoami"]);
    assert_eq!(text(&who), "me\n", "{who:?}");
    let unknown = client(&[], &["rm", "-rf", "/"]);
    assert_eq!(unknown.status.code(), Some(127), "{unknown:?}");
    assert_eq!(text(&unknown), "rm: command not found\n");

    // Another key listed for the host: refused, naming the line, even with --accept-new.
    let other = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(dir.join("other"))
        .output()
        .unwrap();
    assert!(other.status.success());
    let other_pub = std::fs::read_to_string(dir.join("other.pub")).unwrap();
    let other_key: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{port} {}\n", other_key.join(" ")),
    )
    .unwrap();
    let changed = client(&["--accept-new"], &["echo", "hi"]);
    assert_eq!(changed.status.code(), Some(255), "{changed:?}");
    assert!(
        stderr(&changed).contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{changed:?}"
    );
    assert!(
        stderr(&changed).contains(&format!("{}:1", known.display())),
        "{changed:?}"
    );
    assert!(text(&changed).is_empty());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
