//! What the example tests share: starting an example with `cargo run`, and a guard that
//! stops it however the test ends. (Each test file uses what it needs of it.)
#![allow(dead_code)]

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

/// `cargo run --quiet --example NAME --` from the repository root, with standard input
/// closed: add the example's arguments and say what to do with its output.
pub(crate) fn example(name: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO"));
    command
        .args(["run", "--quiet", "--example", name, "--"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::null());
    command
}
