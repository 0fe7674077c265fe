//! What the tests share: a reactor without signal handlers, and running an outside peer
//! process while the reactor runs.

use std::process::{Child, Output};
use std::time::Duration;

/// A reactor for a test that runs it: its own, without signal handlers (tests run in
/// parallel threads).
pub(crate) fn reactor() -> torsion::Reactor {
    let r = torsion::Reactor::new();
    r.set_install_signal_handlers(false);
    r
}

/// Runs `r` until `child` exits (polled every 20 ms) or 60 s pass; returns its output.
pub(crate) fn run_until_exit(r: &torsion::Reactor, child: Child) -> Output {
    use std::cell::RefCell;
    use std::rc::Rc;
    fn poll(r: torsion::Reactor, child: Rc<RefCell<Option<Child>>>) {
        let done = match child.borrow_mut().as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        };
        if done {
            drop(r.stop());
        } else {
            let again = r.clone();
            r.call_later(0.02, move || poll(again, child));
        }
    }
    let child = Rc::new(RefCell::new(Some(child)));
    let guard = r.clone();
    r.call_later(Duration::from_secs(60), move || drop(guard.stop()));
    poll(r.clone(), child.clone());
    r.run().unwrap();
    let mut c = child.borrow_mut().take().unwrap();
    let _ = c.kill();
    c.wait_with_output().unwrap()
}

/// True (after reporting the skip) when the Python peer could not import `telnetlib`: it
/// left the standard library in Python 3.13, and these tests use it as a telnet client
/// nobody here wrote.
pub(crate) fn telnetlib_missing(out: &Output) -> bool {
    let missing = String::from_utf8_lossy(&out.stderr).contains("No module named 'telnetlib'");
    if missing {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            "python3 has no telnetlib (removed in Python 3.13)",
        );
    }
    missing
}
