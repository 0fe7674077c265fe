//! The AMP howto examples: `amp_client` against `amp_server`, and each against its Twisted
//! counterpart (Twisted's AMP howto programs, `crates/torsion-amp/tests/interop/howto.py`),
//! unchanged names on both sides.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::examples_net::start_server;
use crate::support;

const HOWTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/torsion-amp/tests/interop/howto.py"
);

/// The python with Twisted the AMP crate's interop tests use (same target directory), or
/// None, loudly, when it cannot be had.
fn twisted_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("twisted-venv");
    torsion::testing::python_venv(&venv, "twisted", &["twisted>=22"])
}

fn run_client(port: u16) -> (bool, String, String) {
    let out = support::example("amp_client")
        .args(["--port", &port.to_string()])
        .output()
        .expect("run amp_client");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const CLIENT_OUTPUT: &str = "Sum(13, 81): total = 94\n\
Divide(1234, 0): error ZERO_DIVISION: division by zero\n\
Divided by zero: returning INF\n\
Done with math: [(True, 94), (True, inf)]\n";

#[test]
fn amp_client_calls_amp_server() {
    let (server, port) = start_server("amp_server", "amp server", &[]);
    let (ok, stdout, stderr) = run_client(port);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, CLIENT_OUTPUT);
    drop(server);
}

#[test]
fn twisted_howto_client_calls_amp_server() {
    let Some(py) = twisted_python() else { return };
    let (server, port) = start_server("amp_server", "amp server", &[]);
    let mut child = Command::new(py)
        .args([HOWTO, "client", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = support::lines(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        lines.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        lines,
        [
            "Divided by zero: returning INF",
            "Done with math: [(True, 94), (True, inf)]"
        ]
    );
    drop(server);
}

#[test]
fn amp_client_calls_twisted_howto_server() {
    let Some(py) = twisted_python() else { return };
    let mut child = Command::new(py)
        .args([HOWTO, "server"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = support::lines(child.stdout.take().unwrap());
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("Twisted server started");
    let port: u16 = line.strip_prefix("listening ").unwrap().parse().unwrap();
    let (ok, stdout, stderr) = run_client(port);
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "{stderr}");
    assert_eq!(stdout, CLIENT_OUTPUT);
}
