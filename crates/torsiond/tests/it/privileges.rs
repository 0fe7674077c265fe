//! `--uid`, `--gid` and `--chroot` (twistd's `-u`, `-g`, `--chroot`), run for real: started
//! as root, torsiond binds a port below 1024, then every thread of the process becomes
//! `nobody` (real, effective, saved and file-system IDs, read from `/proc`), and it still
//! serves; chrooted, it serves the files of the new root. Without root, the tests that
//! need it are skipped (they run as root on CI); a non-root torsiond is made with `setpriv`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use nix::unistd::{Group, User};
use torsion::testing::{skip, Missing};

use crate::support::{self, stderr_of, Running, TempDir, TIMEOUT};

/// Whether the tests run as root (effective uid 0).
fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The `nobody` user's uid and the `nogroup` group's gid, if this host has both.
fn nobody() -> Option<(u32, u32)> {
    let user = User::from_name("nobody").ok()??;
    let group = Group::from_name("nogroup").ok()??;
    Some((user.uid.as_raw(), group.gid.as_raw()))
}

/// A port below 1024 free on the loopback a moment ago (the tests run as root to bind it).
fn free_privileged_port() -> u16 {
    (700..1000)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port between 700 and 999")
}

/// The body of `GET path` from the loopback port.
fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{reply}"
    );
    body.to_owned()
}

/// The port at the end of a `listening on tcp:ADDRESS:PORT` line.
fn port_in(line: &str) -> u16 {
    line.rsplit(':').next().unwrap().trim().parse().unwrap()
}

/// A folder readable by anyone, holding `hello.txt`.
fn site(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    std::fs::write(dir.path().join("hello.txt"), "hello from the site\n").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        dir.path().join("hello.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    dir
}

/// The values of the `Uid:`, `Gid:` and `Groups:` lines of a `/proc/.../status` file.
fn ids(status: &Path) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let text = std::fs::read_to_string(status).unwrap();
    let line = |key: &str| -> Vec<u32> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    };
    (line("Uid:"), line("Gid:"), line("Groups:"))
}

#[test]
fn uid_and_gid_apply_to_every_thread_after_binding_a_privileged_port() {
    if !root() {
        return skip(Missing::HostFeature, "--uid needs the tests to run as root");
    }
    let Some((uid, gid)) = nobody() else {
        return skip(
            Missing::HostFeature,
            "this host has no nobody user or nogroup group",
        );
    };
    let dir = site("uid");
    let port = free_privileged_port();
    let listen = format!("tcp:{port}:interface=127.0.0.1");
    let server = Running::start(&[
        "--uid",
        "nobody",
        "--gid",
        "nogroup",
        "--workers",
        "3",
        "web",
        "--path",
        dir.path().to_str().unwrap(),
        "--listen",
        &listen,
    ]);
    // The change comes after binding and before any worker runs its reactor, so once a
    // worker says it listens, every thread has changed.
    let lines = server.lines_until("listening on");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("switched to nobody (uid {uid}), gid {gid}"))),
        "{lines:#?}"
    );
    let pid = server.pid();
    let want_uid = vec![uid; 4]; // real, effective, saved, file system
    let want_gid = vec![gid; 4];
    let (uids, gids, groups) = ids(&Path::new("/proc").join(pid.to_string()).join("status"));
    assert_eq!(uids, want_uid);
    assert_eq!(gids, want_gid);
    assert_eq!(groups, vec![gid], "root's supplementary groups are gone");
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| t.unwrap().path())
        .collect();
    assert!(tasks.len() >= 3, "one thread per worker: {tasks:?}");
    for task in &tasks {
        let (uids, gids, groups) = ids(&task.join("status"));
        assert_eq!(uids, want_uid, "{}", task.display());
        assert_eq!(gids, want_gid, "{}", task.display());
        assert_eq!(groups, vec![gid], "{}", task.display());
    }
    // The port below 1024 still serves, as nobody.
    for _ in 0..6 {
        assert_eq!(get(port, "/hello.txt"), "hello from the site\n");
    }
    let mut server = server;
    assert!(server.terminate().success());
}

#[test]
fn a_port_that_cannot_be_bound_stops_torsiond_before_it_drops_root() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("tcp:{port}:interface=127.0.0.1");
    // The uid torsiond runs as already: allowed without root, and it would log the switch.
    let me = nix::unistd::getuid().to_string();
    let out = support::run(&["--uid", &me, "echo", "--listen", &listen], TIMEOUT);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("in use"), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("switched to"), "{stdout}");
    assert!(!stdout.contains("is already uid"), "{stdout}");
}

#[test]
fn the_uid_torsiond_already_has_is_a_warning_and_it_serves() {
    let me = nix::unistd::getuid().to_string();
    let server = Running::start(&[
        "--uid",
        &me,
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let lines = server.lines_until("listening on");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains(&format!("the process is already uid {me}"))),
        "{lines:#?}"
    );
    let port = port_in(lines.last().unwrap());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"ping").unwrap();
    let mut echoed = [0; 4];
    s.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping");
    drop(s); // an open echo connection would hold the graceful stop for its 10 s
    let mut server = server;
    assert!(server.terminate().success());
}

#[test]
fn another_uid_without_root_is_refused_before_listening() {
    let Some((uid, gid)) = nobody() else {
        return skip(
            Missing::HostFeature,
            "this host has no nobody user or nogroup group",
        );
    };
    // As root, become nobody first (setpriv, util-linux); otherwise the tests already are
    // someone other than root.
    let mut c = if root() {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            env!("CARGO_BIN_EXE_torsiond"),
        ]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_torsiond"))
    };
    c.args([
        "--uid",
        "root",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let out = match c.stdin(std::process::Stdio::null()).output() {
        Ok(out) => out,
        Err(e) => return skip(Missing::HostFeature, format!("setpriv: {e}")),
    };
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("torsiond: cannot switch to root (uid 0): only root can"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
}

#[test]
fn an_unknown_user_is_a_usage_error() {
    let out = support::run(&["--uid", "no-such-user-anywhere", "echo"], TIMEOUT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("no user named 'no-such-user-anywhere'"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn chroot_serves_the_files_of_the_new_root() {
    if !root() {
        return skip(
            Missing::HostFeature,
            "--chroot needs the tests to run as root",
        );
    }
    if nobody().is_none() {
        return skip(
            Missing::HostFeature,
            "this host has no nobody user or nogroup group",
        );
    }
    let dir = site("chroot");
    // A Unix socket outside the new root: listeners are bound before the chroot (twistd
    // chroots first; see docs/design.md).
    let outside = TempDir::new("chroot-outside");
    let sock = outside.path().join("web.sock");
    let unix = format!("unix:{}", sock.display());
    // `--path /` is the new root: it exists on the host too, so the web plugin takes it
    // before the chroot, and resolves it in the chroot once it serves.
    let server = Running::start(&[
        "--chroot",
        dir.path().to_str().unwrap(),
        "--uid",
        "nobody",
        "web",
        "--path",
        "/",
        "--listen",
        &unix,
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let lines = server.lines_until("listening on tcp:");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("chrooted to {}", dir.path().display()))),
        "{lines:#?}"
    );
    let port = port_in(lines.last().unwrap());
    assert_eq!(get(port, "/hello.txt"), "hello from the site\n");
    // The host's files are out of reach: the listing is of the new root.
    let listing = get(port, "/");
    assert!(listing.contains("hello.txt"), "{listing}");
    assert!(!listing.contains("proc"), "{listing}");
    let mut over_unix = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    over_unix.set_read_timeout(Some(TIMEOUT)).unwrap();
    over_unix
        .write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    over_unix.read_to_string(&mut reply).unwrap();
    assert!(reply.ends_with("\r\n\r\nhello from the site\n"), "{reply}");
    let root_link = std::fs::read_link(format!("/proc/{}/root", server.pid())).unwrap();
    assert_eq!(root_link, dir.path());
    let mut server = server;
    assert!(server.terminate().success());
}
