//! Runs the process seed programs: `process_demo` (a command's output, then a conversation
//! with `cat`) and `stdio_echo` (a line protocol over the program's own stdin and stdout,
//! fed through a pipe).

use crate::support;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use support::Running;

/// How long an example may take, building included.
const DEADLINE: Duration = Duration::from_secs(300);

/// Starts `cargo run --quiet --example NAME -- ARGS` with stdin and stdout piped.
fn start(name: &str, args: &[&str]) -> Running {
    let child = support::example(name)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start cargo run");
    Running(child)
}

/// Reads all of `source` on a thread; the receiver gets the bytes at end of file.
fn read_all_later(mut source: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = source.read_to_end(&mut out);
        let _ = tx.send(out);
    });
    rx
}

/// Waits for the example to exit and returns whether it succeeded.
fn wait_success(child: &mut Running, started: Instant) -> bool {
    loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            return status.success();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the example did not exit in time"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn process_demo_reads_output_and_talks_to_cat() {
    let started = Instant::now();
    let mut child = start("process_demo", &["printf", "%s-%s\\n", "a", "b"]);
    drop(child.0.stdin.take());
    let out = read_all_later(child.0.stdout.take().unwrap());
    let err = read_all_later(child.0.stderr.take().unwrap());
    let out = String::from_utf8(out.recv_timeout(DEADLINE).expect("stdout")).unwrap();
    let err = String::from_utf8_lossy(&err.recv_timeout(DEADLINE).expect("stderr")).into_owned();
    assert!(
        wait_success(&mut child, started),
        "process_demo failed:\n{out}\n{err}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "printf %s-%s\\n a b printed: a-b", "{out}");
    assert!(lines[1].starts_with("cat started (pid "), "{out}");
    assert_eq!(
        &lines[2..5],
        [
            "cat said: first line",
            "cat said: second line",
            "cat said: third line"
        ],
        "{out}"
    );
    assert!(
        lines[5].starts_with("cat exited: ") && lines[5].contains("exit code 0"),
        "{out}"
    );
    assert!(
        lines[6].starts_with("cat ended: ") && lines[6].contains("exit code 0"),
        "{out}"
    );
    assert_eq!(lines.len(), 7, "{out}");
}

#[test]
fn process_demo_reports_a_command_that_writes_to_stderr() {
    let started = Instant::now();
    let mut child = start("process_demo", &["sh", "-c", "echo oops >&2"]);
    drop(child.0.stdin.take());
    let out = read_all_later(child.0.stdout.take().unwrap());
    let err = read_all_later(child.0.stderr.take().unwrap());
    let out = String::from_utf8(out.recv_timeout(DEADLINE).expect("stdout")).unwrap();
    let err = String::from_utf8_lossy(&err.recv_timeout(DEADLINE).expect("stderr")).into_owned();
    assert!(!wait_success(&mut child, started), "{out}");
    assert_eq!(out, "");
    assert_eq!(err, "Error: got stderr: \"oops\\n\"\n");
}

#[test]
fn stdio_echo_echoes_lines_and_exits_at_end_of_input() {
    let started = Instant::now();
    let mut child = start("stdio_echo", &[]);
    let out = read_all_later(child.0.stdout.take().unwrap());
    let err = read_all_later(child.0.stderr.take().unwrap());
    let mut stdin = child.0.stdin.take().unwrap();
    let mut expected = String::new();
    for i in 0..2000 {
        let line = format!("line {i}: {}\n", "x".repeat(i % 300));
        stdin.write_all(line.as_bytes()).unwrap();
        expected.push_str(&line);
    }
    // An unterminated last line is dropped, as by Twisted's LineReceiver.
    stdin.write_all(b"no newline").unwrap();
    drop(stdin);
    let out = String::from_utf8(out.recv_timeout(DEADLINE).expect("stdout")).unwrap();
    let err = String::from_utf8_lossy(&err.recv_timeout(DEADLINE).expect("stderr")).into_owned();
    assert!(
        wait_success(&mut child, started),
        "stdio_echo failed: {err}"
    );
    assert!(
        out == expected,
        "the echo differs ({} of {} bytes)",
        out.len(),
        expected.len()
    );
    assert!(err.contains("end of input after 2000 line(s)"), "{err}");
}
