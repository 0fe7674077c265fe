//! What the torsion tests share: a reactor for the tests that drive one by hand, the next
//! item of a queue, log capture, temporary socket paths; and, in submodules, the datagram
//! recorder (`datagram`), the python peers (`peer`) and the TLS certificates and recorders
//! (`tls`).

#![allow(dead_code)]

pub(crate) mod datagram;
pub(crate) mod peer;
pub(crate) mod tls;

use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use torsion::defer::DeferredQueue;
use torsion::transport::Address;
use torsion::Reactor;

/// A fresh reactor that leaves the process's signal handlers alone, for the tests that run
/// one by hand (`#[torsion::test]` makes its own).
pub(crate) fn new_reactor() -> Reactor {
    let r = Reactor::new();
    r.set_install_signal_handlers(false);
    r
}

/// Stops `r` after 10 s; the flag says whether that happened (the test then failed to stop
/// the reactor itself).
pub(crate) fn safety_timeout(r: &Reactor) -> Rc<Cell<bool>> {
    let timed_out = Rc::new(Cell::new(false));
    let flag = timed_out.clone();
    let stopper = r.clone();
    r.call_later(10.0, move || {
        flag.set(true);
        let _ = stopper.stop();
    });
    timed_out
}

/// The next item protocol code put on `q`, once there is one.
pub(crate) async fn next<T: 'static>(q: &DeferredQueue<T>) -> T {
    q.get()
        .expect("no other reader waits")
        .await
        .expect("a queued item")
}

/// Log output captured from a `tracing` subscriber scoped to the test's thread.
#[derive(Clone, Default)]
pub(crate) struct Capture(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// A subscriber writing here, at `tracing_subscriber`'s default level (INFO and up) or
    /// at `level` and up.
    fn subscriber(&self, level: Option<tracing::Level>) -> impl tracing::Subscriber {
        let writer = self.clone();
        let builder = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false);
        match level {
            Some(level) => builder.with_max_level(level).finish(),
            None => builder.finish(),
        }
    }

    /// Captures this thread's log output until the returned guard is dropped.
    pub(crate) fn start(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(self.subscriber(None))
    }

    /// The same, debug level and up.
    pub(crate) fn start_debug(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(self.subscriber(Some(tracing::Level::DEBUG)))
    }

    /// Runs `f` with this thread's log output going here.
    pub(crate) fn during<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::subscriber::with_default(self.subscriber(None), f)
    }

    /// The output captured so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `f` with log output captured, and returns the output.
pub(crate) fn captured_log(f: impl FnOnce()) -> String {
    let capture = Capture::default();
    capture.during(f);
    capture.text()
}

/// A fresh Unix socket path for one test, `torsion-NAME-PID.sock` in the temporary folder
/// (the tests of a file give their names one prefix, so that files never share a path);
/// the file is removed when this is dropped.
pub(crate) struct TempPath(pub(crate) PathBuf);

impl TempPath {
    pub(crate) fn new(name: &str) -> TempPath {
        let p = std::env::temp_dir().join(format!("torsion-{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }

    /// The path as an endpoint description wants it (colons escaped).
    pub(crate) fn esc(&self) -> String {
        self.0.display().to_string().replace(':', "\\:")
    }

    pub(crate) fn address(&self) -> Address {
        Address::Unix(Some(self.0.clone()))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}
