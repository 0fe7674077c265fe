//! Runs the `threads_demo` seed program and checks that the reactor kept ticking while the
//! worker thread computed.

use crate::support;
use std::io::Read;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long the example may take, building included.
const DEADLINE: Duration = Duration::from_secs(300);

#[test]
fn threads_demo_ticks_while_the_thread_computes() {
    let mut child = support::example("threads_demo")
        .args(["--n", "400000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start cargo run");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let out = match rx.recv_timeout(DEADLINE) {
        Ok(out) => out,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("threads_demo did not finish in {DEADLINE:?}");
        }
    };
    let status = child.wait().expect("wait for the example");
    assert!(
        status.success(),
        "threads_demo exited with {status}:\n{out}"
    );

    let lines: Vec<&str> = out.lines().collect();
    let result = lines
        .iter()
        .position(|l| l.starts_with("result:"))
        .unwrap_or_else(|| panic!("no result line:\n{out}"));
    assert!(
        lines[result].contains("the primes below 400000 sum to 6458901531"),
        "{out}"
    );
    let ticks_before = lines[..result]
        .iter()
        .filter(|l| l.starts_with("tick"))
        .count();
    // Ticks come every 0.1 s from the start (the first at once): a responsive reactor
    // prints about 1 + T / 0.1 of them while the thread computes for T seconds. Half of that
    // leaves room for a loaded machine; a reactor blocked by the computation prints one.
    // (How long the computation takes depends on the machine, so the count is scaled by it.)
    let took: f64 = lines[result]
        .rsplit('(')
        .next()
        .and_then(|t| t.strip_suffix("s)"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no duration in the result line:\n{out}"));
    let expected = 1 + (took / 0.1 / 2.0) as usize;
    assert!(
        ticks_before >= expected,
        "only {ticks_before} tick(s) in {took} s before the result (expected {expected}):\n{out}"
    );
    assert!(
        !lines[result + 1..].iter().any(|l| l.starts_with("tick")),
        "ticks after the result:\n{out}"
    );
}
