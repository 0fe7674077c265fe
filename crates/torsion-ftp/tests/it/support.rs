//! Shared helpers: scratch folders, a test PKI, and running a peer program against a
//! server while the reactor runs.

use std::process::Command;
use std::sync::RwLock;

use torsion::{Factory, Reactor};

pub(crate) use torsion::testing::TempDir;

/// A self-signed certificate for `localhost` and 127.0.0.1: the server's context and the
/// PEM a client trusts.
pub(crate) fn self_signed() -> (torsion::tls::ServerContext, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let pem = cert.cert.pem();
    let id = torsion::tls::Identity::from_pem(
        pem.as_bytes(),
        cert.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    (torsion::tls::ServerContext::new(id).unwrap(), pem)
}

/// Held shared by every test running a server in this process, and exclusively by the one
/// measuring the process's memory, so no other test's allocations show in its figures.
pub(crate) static MEMORY: RwLock<()> = RwLock::new(());

/// Listens on 127.0.0.1 with `factory`, runs `peer(port)` in a thread while the reactor
/// runs, and returns what it returned.
pub(crate) fn with_server<F: Factory, T: Send + 'static>(
    factory: F,
    peer: impl FnOnce(u16) -> T + Send + 'static,
) -> T {
    let _shared = MEMORY.read().unwrap_or_else(|e| e.into_inner());
    serve(factory, peer)
}

/// [`with_server`] without taking [`MEMORY`].
pub(crate) fn serve<F: Factory, T: Send + 'static>(
    factory: F,
    peer: impl FnOnce(u16) -> T + Send + 'static,
) -> T {
    let r = Reactor::new();
    let port = r.listen_tcp_on(0, factory, "127.0.0.1").unwrap();
    let number = port.get_host().port().unwrap();
    let out = torsion::testing::run_with_peer(&r, 300.0, move || peer(number));
    drop(port);
    out
}

/// Whether `program arg` runs.
pub(crate) fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `python3 -c script args...`; returns (success, stdout + stderr).
pub(crate) fn python(script: &str, args: &[String]) -> (bool, String) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
