//! What the example tests share: a guard that stops a running example however the test ends.

use std::process::Child;

/// A running example (or any child process), killed and reaped when dropped, whatever
/// happened.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
