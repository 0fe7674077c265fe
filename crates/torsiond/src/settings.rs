//! What the runner tells the services built on a worker thread: the worker's number, how
//! many workers there are, and how long a graceful stop waits.

use std::cell::Cell;

/// What the runner tells the services built on a worker thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// This thread's worker number, when there are several.
    pub(crate) worker: Option<usize>,
    /// How many workers share the ports.
    pub(crate) workers: usize,
    /// Seconds a graceful stop waits for connections.
    pub(crate) shutdown_timeout: f64,
}

pub(crate) const DEFAULT_SHUTDOWN_TIMEOUT: f64 = 10.0;

thread_local! {
    pub(crate) static SETTINGS: Cell<Settings> = const {
        Cell::new(Settings { worker: None, workers: 1, shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT })
    };
}

/// This thread's worker number when `torsiond` runs several workers (`--workers`); `None`
/// with one worker, or outside the runner.
pub fn current_worker() -> Option<usize> {
    SETTINGS.with(Cell::get).worker
}
