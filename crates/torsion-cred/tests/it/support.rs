//! What the tests share: verifiers that count or hold verifications, polling the reactor.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use torsion::reactor;
use torsion::task::defer_later;
use torsion_cred::{StoredHash, Verifier};

/// A verifier that records each call (the cost verified at, the thread) and then verifies.
#[derive(Default)]
pub(crate) struct Counting {
    pub(crate) calls: Mutex<Vec<(String, ThreadId)>>,
}

impl Counting {
    /// The calls so far, taken out.
    pub(crate) fn take(&self) -> Vec<(String, ThreadId)> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

impl Verifier for Counting {
    fn verify(&self, password: &[u8], hash: &StoredHash) -> bool {
        self.calls
            .lock()
            .unwrap()
            .push((hash.cost(), thread::current().id()));
        hash.verify(password)
    }
}

/// A verifier that holds every verification until the gate opens, then says no; counts how
/// many entered and how many were inside at once, at most.
#[derive(Default)]
pub(crate) struct Gate {
    pub(crate) entered: AtomicUsize,
    inside: AtomicUsize,
    pub(crate) most_inside: AtomicUsize,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub(crate) fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    pub(crate) fn entered(&self) -> usize {
        self.entered.load(Ordering::SeqCst)
    }
}

impl Verifier for Gate {
    fn verify(&self, _password: &[u8], _hash: &StoredHash) -> bool {
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_inside.fetch_max(now, Ordering::SeqCst);
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        self.inside.fetch_sub(1, Ordering::SeqCst);
        false
    }
}

/// Lets the reactor run until `cond` holds, checking every 5 ms, for at most 20 s.
pub(crate) async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        defer_later(&reactor(), 0.005, || ()).await.unwrap();
    }
}

pub(crate) use torsion::testing::TempDir;

/// A shared verifier as the checkers take it.
pub(crate) fn shared<V: Verifier>(v: &Arc<V>) -> Arc<dyn Verifier> {
    v.clone()
}
