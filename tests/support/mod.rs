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

/// The lines of `out` (a child's standard output), read on a thread of their own so a test
/// can wait for them with a deadline (`recv_timeout`). The channel closes at end of file.
pub(crate) fn lines(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
