//! `StandardIO` over this process's real stdin and stdout. The test runs its own binary again
//! as a child (`TORSION_STDIO_CHILD` says which protocol to run) with stdin and stdout given
//! as pipes, regular files or `/dev/null`, and checks what comes out and how it exits.
//!
//! Built with `harness = false`: the child's stdout must carry nothing but the protocol's
//! output, so there is no test harness printing to it.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use torsion::stdio::StandardIO;
use torsion::ConnectionEnd;
use torsion::{reactor, Protocol, Reactor, Transport};

const CHILD_ENV: &str = "TORSION_STDIO_CHILD";
const DEADLINE: Duration = Duration::from_secs(30);

/// Echoes stdin to stdout; stops the reactor when the connection ends.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        if !reason.check::<torsion::error::ConnectionDone>() {
            eprintln!("echo child: connection lost: {reason}");
            std::process::exit(3);
        }
        let _ = reactor().stop();
    }
}

/// Writes a goodbye and closes stdout at once, then waits for end of input with stdout
/// already closed.
struct CloseEarly;

impl Protocol for CloseEarly {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"bye\n");
        t.lose_connection();
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
    fn connection_lost(&mut self, _: ConnectionEnd) {
        let _ = reactor().stop();
    }
}

/// Panics on the first data; the panic must end only this connection, cleanly.
struct Fragile;

impl Protocol for Fragile {
    fn data_received(&mut self, _: &Transport, _: &[u8]) {
        panic!("fragile protocol broke");
    }
    fn connection_lost(&mut self, reason: ConnectionEnd) {
        if matches!(reason, ConnectionEnd::Panicked(_)) {
            eprintln!("stdio child: panic contained: {reason}");
            let _ = reactor().stop();
        } else {
            eprintln!("stdio child: expected a panic, got {reason}");
            std::process::exit(4);
        }
    }
}

fn child(mode: &str) -> ! {
    let r = Reactor::new();
    let result = match mode {
        "echo" => StandardIO::new(Echo).map(drop),
        "close" => StandardIO::new(CloseEarly).map(drop),
        "panic" => StandardIO::new(Fragile).map(drop),
        other => {
            eprintln!("unknown child mode {other}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result.and_then(|()| r.run()) {
        eprintln!("stdio child failed: {e}");
        std::process::exit(1);
    }
    if mode == "close" {
        // stdout now points at /dev/null: this line must not reach the parent.
        println!("after close");
        // Wait for the parent to end our input (blocking is fine: the reactor is done).
        let mut rest = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut rest);
    }
    std::process::exit(0)
}

/// Kills and reaps the child whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(mode: &str, stdin: Stdio, stdout: Stdio) -> Running {
    let exe = std::env::current_exe().expect("current exe");
    let child = Command::new(exe)
        .env(CHILD_ENV, mode)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    Running(child)
}

/// Waits for the child to exit, up to the deadline.
fn wait_exit(child: &mut Running) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the child did not exit in {DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Reads the child's stdout to its end on a thread.
fn read_all_later(mut out: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("torsion-stdio-{name}-{}", std::process::id()))
}

/// Pipes both ways: several megabytes echo back whole, and end of input ends the child
/// cleanly.
fn echo_over_pipes() {
    let mut child = spawn_child("echo", Stdio::piped(), Stdio::piped());
    let out = read_all_later(child.0.stdout.take().unwrap());
    let mut stdin = child.0.stdin.take().unwrap();
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    let sent = data.clone();
    let writer = thread::spawn(move || {
        stdin.write_all(b"hello\n").unwrap();
        for chunk in sent.chunks(70_000) {
            stdin.write_all(chunk).unwrap();
        }
        // Dropping stdin is the end of input.
    });
    let got = out.recv_timeout(DEADLINE).expect("the echo ended");
    writer.join().unwrap();
    let status = wait_exit(&mut child);
    assert!(status.success(), "echo child: {status}");
    assert_eq!(got.len(), 6 + data.len());
    assert_eq!(&got[..6], b"hello\n");
    assert!(got[6..] == data[..], "the echo differs from the input");
}

/// A regular file as stdin and another as stdout: neither can be watched by epoll, so they
/// are read and written directly.
fn echo_between_files() {
    let input = temp_path("in");
    let output = temp_path("out");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 97) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let mut child = spawn_child(
        "echo",
        std::fs::File::open(&input).unwrap().into(),
        std::fs::File::create(&output).unwrap().into(),
    );
    let status = wait_exit(&mut child);
    assert!(status.success(), "file echo child: {status}");
    let got = std::fs::read(&output).unwrap();
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    assert!(got == data, "the file echo differs ({} bytes)", got.len());
}

/// /dev/null as stdin: end of input at once, a clean exit, nothing written.
fn dev_null_input() {
    let mut child = spawn_child("echo", Stdio::null(), Stdio::piped());
    let out = read_all_later(child.0.stdout.take().unwrap());
    let status = wait_exit(&mut child);
    assert!(status.success(), "null child: {status}");
    assert!(out.recv_timeout(DEADLINE).unwrap().is_empty());
}

/// `lose_connection` closes stdout for real: the parent reads end of file while the child
/// still runs, and later prints from the child do not arrive.
fn lose_connection_closes_stdout() {
    let mut child = spawn_child("close", Stdio::piped(), Stdio::piped());
    let out = read_all_later(child.0.stdout.take().unwrap());
    let got = out
        .recv_timeout(DEADLINE)
        .expect("end of file on the child's stdout");
    assert_eq!(got, b"bye\n");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the child must still run: it waits for end of input"
    );
    drop(child.0.stdin.take());
    let status = wait_exit(&mut child);
    assert!(status.success(), "close child: {status}");
}

/// A panic in `data_received` is caught: stdout is closed, `connection_lost` gets the panic,
/// and the program goes on to exit normally.
fn panic_is_contained() {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Running(
        Command::new(exe)
            .env(CHILD_ENV, "panic")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the child"),
    );
    let out = read_all_later(child.0.stdout.take().unwrap());
    let err = read_all_later(child.0.stderr.take().unwrap());
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(b"boom").unwrap();
    let got = out.recv_timeout(DEADLINE).expect("end of file on stdout");
    drop(stdin);
    let status = wait_exit(&mut child);
    let err = String::from_utf8_lossy(&err.recv_timeout(DEADLINE).unwrap()).into_owned();
    assert!(status.success(), "panic child: {status}\n{err}");
    assert!(got.is_empty());
    assert!(
        err.contains("panic contained: connection closed: panic: fragile protocol broke"),
        "{err}"
    );
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        child(&mode);
    }
    let tests: [(&str, fn()); 5] = [
        ("echo_over_pipes", echo_over_pipes),
        ("echo_between_files", echo_between_files),
        ("dev_null_input", dev_null_input),
        (
            "lose_connection_closes_stdout",
            lose_connection_closes_stdout,
        ),
        ("panic_is_contained", panic_is_contained),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut ran = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        test();
        println!("ok");
        ran += 1;
    }
    println!("stdio: {ran} passed");
}
