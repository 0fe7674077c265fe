//! How the runner ends: the exit status, failures reported once on standard error, and
//! stopping every worker's reactor when one fails.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use torsion::reactor;
use torsion::reactor::ReactorHandle;

/// The process's exit status, set by [`fail`].
static EXIT_CODE: AtomicU8 = AtomicU8::new(0);

/// The messages [`fail`] printed (each once, however many workers report it).
static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Every worker's reactor, so that a failure in one stops them all.
static WORKERS: Mutex<Vec<ReactorHandle>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reports a failure at run time: prints `torsiond: MESSAGE` on standard error (once, however
/// many workers report the same), makes the runner exit with status 1, and stops every
/// worker's reactor.
pub fn fail(message: impl fmt::Display) {
    let message = message.to_string();
    let first = {
        let mut seen = lock(&FAILURES);
        let first = !seen.contains(&message);
        if first {
            seen.push(message.clone());
        }
        first
    };
    if first {
        say(format_args!("torsiond: {message}"));
    }
    EXIT_CODE.store(1, Ordering::SeqCst);
    let r = reactor();
    if r.running() {
        let _ = r.stop();
    }
    stop_workers();
}

/// Adds a worker's reactor to those a failure stops.
pub(crate) fn add_worker(handle: ReactorHandle) {
    lock(&WORKERS).push(handle);
}

/// Stops every worker's reactor (a reactor already stopping ignores this).
pub(crate) fn stop_workers() {
    for handle in lock(&WORKERS).iter() {
        handle.stop();
    }
}

/// The exit status so far: 0, or 1 once [`fail`] was called.
pub(crate) fn exit_status() -> u8 {
    EXIT_CODE.load(Ordering::SeqCst)
}

/// Writes one line to standard error, ignoring a closed stderr (`eprintln!` would panic).
pub(crate) fn say(line: fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
