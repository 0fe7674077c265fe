//! Systemd socket activation, run for real: `torsiond echo --listen systemd:...` started by
//! `systemd-socket-activate` (two TCP sockets), and by a python3 launcher that passes a Unix
//! socket as descriptor 3 the way systemd does; plus the refusals (no such index, not our
//! LISTEN_PID).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, free_port, Running, TempDir, TIMEOUT};

fn echo_over<S: Read + Write>(mut s: S, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap();
    got
}

/// Connects, retrying while the launcher is not yet listening.
fn connect_tcp(port: u16) -> TcpStream {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                return s;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot connect to {port}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn have_socket_activate() -> bool {
    let runs = || {
        Command::new("systemd-socket-activate")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if runs() {
        return true;
    }
    eprintln!("systemd-socket-activate is missing: installing systemd with apt-get");
    support::apt_get_install(&["systemd"]);
    if runs() {
        return true;
    }
    torsion::testing::skip(
        torsion::testing::Missing::Peer,
        "systemd-socket-activate is not available (the python3 launcher test still covers \
         socket activation)",
    );
    false
}

#[test]
fn systemd_socket_activate_passes_two_tcp_sockets() {
    if !have_socket_activate() {
        return;
    }
    let (a, b) = (free_port(), free_port());
    let mut c = Command::new("systemd-socket-activate");
    c.args([
        "-l",
        &format!("127.0.0.1:{a}"),
        "-l",
        &format!("127.0.0.1:{b}"),
    ])
    .arg(env!("CARGO_BIN_EXE_torsiond"))
    .args([
        "echo",
        "--listen",
        "systemd:domain=INET:index=0",
        "--listen",
        "systemd:domain=INET:index=1",
    ]);
    let mut server = Running::spawn(c);
    // systemd-socket-activate starts torsiond on the first connection.
    let first = connect_tcp(a);
    server.wait_for(&format!("listening on tcp:127.0.0.1:{a}"));
    server.wait_for(&format!("listening on tcp:127.0.0.1:{b}"));
    assert_eq!(echo_over(first, b"activated"), b"activated");
    assert_eq!(
        echo_over(connect_tcp(b), b"second socket"),
        b"second socket"
    );
    assert!(server.terminate().success());
}

const LAUNCHER: &str = r#"
import os, socket, sys
path, argv = sys.argv[1], sys.argv[2:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
if s.fileno() == 3:
    os.set_inheritable(3, True)
else:
    os.dup2(s.fileno(), 3, inheritable=True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDNAMES"] = "echo"
os.execv(argv[0], argv)
"#;

#[test]
fn a_unix_socket_passed_as_fd_3_is_served() {
    if Command::new("python3").arg("--version").output().is_err() {
        return torsion::testing::skip(torsion::testing::Missing::Peer, "python3 is not installed");
    }
    let tmp = TempDir::new("sd");
    let path = tmp.path().join("echo.sock");
    let mut c = Command::new("python3");
    c.args(["-c", LAUNCHER])
        .arg(&path)
        .arg(env!("CARGO_BIN_EXE_torsiond"))
        .args(["echo", "--listen", "systemd:domain=UNIX:index=0"]);
    let mut server = Running::spawn(c);
    server.wait_for(&format!("listening on unix:{}", path.display()));
    let s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(
        echo_over(s, b"over an inherited socket"),
        b"over an inherited socket"
    );
    assert!(server.terminate().success());
    // The socket file belongs to whoever made it: torsiond leaves it.
    assert!(path.exists());
}

/// Runs torsiond to its end under the python launcher (LISTEN_PID as given).
fn refused(listen: &str, pid_ok: bool) -> (ExitStatus, String) {
    let tmp = TempDir::new("sd-refused");
    let path = tmp.path().join("echo.sock");
    let launcher = if pid_ok {
        LAUNCHER.to_owned()
    } else {
        LAUNCHER.replace("str(os.getpid())", "\"1\"")
    };
    let out = Command::new("python3")
        .args(["-c", &launcher])
        .arg(&path)
        .arg(env!("CARGO_BIN_EXE_torsiond"))
        .args(["echo", "--listen", listen])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_or_foreign_sockets_are_refused_with_a_message() {
    if Command::new("python3").arg("--version").output().is_err() {
        return torsion::testing::skip(torsion::testing::Missing::Peer, "python3 is not installed");
    }
    let (status, err) = refused("systemd:domain=UNIX:index=1", true);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("no index 1"), "{err}");

    let (status, err) = refused("systemd:domain=UNIX:index=0", false);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("LISTEN_PID"), "{err}");

    // A Unix socket where a TCP one is asked for.
    let (status, err) = refused("systemd:domain=INET:index=0", true);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("not a listening TCP socket"), "{err}");
}
