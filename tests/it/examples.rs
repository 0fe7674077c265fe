//! Runs the seed programs in `examples/` with `cargo run --example` and checks what they print.

use crate::support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use support::Running;

/// How long an example may take, building included.
const DEADLINE: Duration = Duration::from_secs(300);

/// Starts `cargo run --quiet --example NAME -- ARGS` with stdout piped.
fn start(name: &str, args: &[&str]) -> Running {
    let child = support::example(name)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start cargo run");
    Running(child)
}

/// Runs an example to the end and returns its stdout; fails if it errs or outlives
/// [`DEADLINE`].
fn run(name: &str, args: &[&str]) -> String {
    let mut child = start(name, args);
    let mut stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let out = rx
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{name} {args:?} did not finish in {DEADLINE:?}"));
    let status = child.0.wait().expect("wait for the example");
    assert!(
        status.success(),
        "{name} {args:?} exited with {status}; stdout:\n{out}"
    );
    out
}

/// The messages of run_later's lines, without their time stamps.
fn messages(out: &str) -> Vec<&str> {
    out.lines()
        .map(|line| line.split_once("] ").map_or(line, |(_, message)| message))
        .collect()
}

#[test]
fn hello_reactor_says_hello_world() {
    assert_eq!(
        run("hello_reactor", &["--scale", "0.01"]),
        "Hello, World!\n"
    );
}

#[test]
fn run_later_prints_beautiful_before_world() {
    let out = run("run_later", &["--scale", "0.01"]);
    assert_eq!(messages(&out), ["Hello", "Beautiful", "World"], "{out}");
}

#[test]
fn run_later_blocking_holds_beautiful_back() {
    let out = run("run_later", &["--scale", "0.01", "--blocking"]);
    assert_eq!(messages(&out), ["Hello", "World", "Beautiful"], "{out}");
}

#[test]
fn order_food_runs_every_clause() {
    let expected = "\
0. Callbacks only (kitchen with eggs):
  eat_meal: nom nom nom, eggs benedict
  compliment_chef: Wuu chef!
  => the chain ends with a result
0. Callbacks only (kitchen without eggs):
  => the chain ends with a failure: the kitchen is out of eggs
1. Handle error then do the action anyway (kitchen with eggs):
  eat_meal: nom nom nom, eggs benedict
  compliment_chef: Wuu chef!
  => the chain ends with a result
1. Handle error then do the action anyway (kitchen without eggs):
  handle_error: the kitchen is out of eggs
  eat_meal: nom nom nom, dry toast
  compliment_chef: I sneeze in your face!
  => the chain ends with a result
2. Handle the error but do the action only if the error doesn't occur (kitchen with eggs):
  eat_meal: nom nom nom, eggs benedict
  compliment_chef: Wuu chef!
  => the chain ends with a result
2. Handle the error but do the action only if the error doesn't occur (kitchen without eggs):
  handle_error: the kitchen is out of eggs
  => the chain ends with a result
3. Handle the error for the entire operation (kitchen with eggs):
  eat_meal: nom nom nom, eggs benedict
  compliment_chef: Wuu chef!
  => the chain ends with a result
3. Handle the error for the entire operation (kitchen without eggs):
  handle_error: the kitchen is out of eggs
  => the chain ends with a result
4. Do something regardless of success or failure (kitchen with eggs):
  do_cleanup: clear the table
  => the chain ends with a result
4. Do something regardless of success or failure (kitchen without eggs):
  do_cleanup: clear the table
  => the chain ends with a failure: the kitchen is out of eggs
";
    assert_eq!(run("order_food", &[]), expected);
}

#[test]
fn echo_server_echoes() {
    let mut child = start("echo_server", &["--port", "0"]);
    let stdout = child.0.stdout.take().expect("piped stdout");
    let rx = support::lines(stdout);
    let line = rx
        .recv_timeout(DEADLINE)
        .expect("echo_server did not say where it listens");
    assert!(
        line.starts_with("echo server listening on tcp:127.0.0.1:"),
        "the default interface is this machine only: {line:?}"
    );
    let port: u16 = line
        .strip_prefix("echo server listening on tcp:")
        .and_then(|address| address.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));

    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to echo_server");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let message = b"Hello, echo!\r\n\x00\xff";
    stream.write_all(message).unwrap();
    let mut echoed = vec![0; message.len()];
    stream.read_exact(&mut echoed).expect("read the echo");
    assert_eq!(echoed, message);

    assert!(
        child.0.try_wait().unwrap().is_none(),
        "echo_server exited while serving"
    );
}
