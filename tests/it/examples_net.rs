//! Runs the networked seed programs in `examples/` (reverse, data and chat servers and
//! clients) with `cargo run --example`, and talks to them over TCP.

use crate::support;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{ChildStdout, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use support::{Running, TempFile};

/// How long an example may take, building included.
const DEADLINE: Duration = Duration::from_secs(300);

/// How long a test client waits for a server's answer.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `cargo run --quiet --example NAME -- ARGS` with stdout and stderr as given.
fn spawn(name: &str, args: &[&str], stderr: Stdio) -> Running {
    let child = support::example(name)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("cannot start cargo run");
    Running(child)
}

/// Reads all of `source` on a thread; the receiver gets the text at end of file.
fn read_all_later(mut source: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = String::new();
        let _ = source.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    rx
}

/// What an example that ran to the end did.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs an example to the end; fails if it outlives [`DEADLINE`].
fn run(name: &str, args: &[&str]) -> Finished {
    let mut child = spawn(name, args, Stdio::piped());
    let stdout = read_all_later(child.0.stdout.take().expect("piped stdout"));
    let stderr = read_all_later(child.0.stderr.take().expect("piped stderr"));
    let stdout = stdout
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{name} {args:?} did not finish in {DEADLINE:?}"));
    let stderr = stderr.recv_timeout(READ_TIMEOUT).unwrap_or_default();
    let status = child.0.wait().expect("wait for the example");
    Finished {
        status,
        stdout,
        stderr,
    }
}

/// Starts a server example with `--port 0` and returns it with the port it printed after
/// `"{what} listening on tcp:"`.
pub(crate) fn start_server(name: &str, what: &str, extra_args: &[&str]) -> (Running, u16) {
    let mut args = vec!["--port", "0"];
    args.extend_from_slice(extra_args);
    let mut child = spawn(name, &args, Stdio::inherit());
    let stdout: ChildStdout = child.0.stdout.take().expect("piped stdout");
    let rx = support::lines(stdout);
    let line = rx
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{name} did not say where it listens"));
    let port = line
        .strip_prefix(&format!("{what} listening on tcp:"))
        .and_then(|address| address.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from {name}: {line:?}"));
    (child, port)
}

/// A port nothing listens on (a moment ago, at least).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

/// A line-reading client of a server on this machine.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// This end's address, as the server sees it.
    fn address(&self) -> String {
        self.writer.local_addr().unwrap().to_string()
    }

    fn send_line(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    /// The next line, without its `\r\n`; `None` at end of file.
    fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
            Err(e) => panic!("reading a line: {e}"),
        }
    }
}

#[test]
fn reverse_server_reverses_ten_lines_then_hangs_up() {
    let (server, port) = start_server("reverse_server", "reverse server", &[]);
    let mut client = Client::connect(port);
    for i in 1..=10 {
        client.send_line(&format!("line {i}: stressed"));
        let expected: String = format!("line {i}: stressed").chars().rev().collect();
        assert_eq!(client.read_line().as_deref(), Some(&*expected));
    }
    assert_eq!(client.read_line(), None, "still connected after ten lines");
    drop(server);
}

#[test]
fn reverse_client_prints_the_reversed_message() {
    let (server, port) = start_server("reverse_server", "reverse server", &[]);
    let port = port.to_string();
    let out = run(
        "reverse_client",
        &[
            "--host",
            "localhost",
            "--port",
            &port,
            "--message",
            "Hello, world",
        ],
    );
    assert!(
        out.status.success(),
        "{}; stderr:\n{}",
        out.status,
        out.stderr
    );
    assert_eq!(out.stdout, "dlrow ,olleH\n");
    drop(server);
}

#[test]
fn reverse_client_reports_a_refused_connection() {
    let port = free_port().to_string();
    let out = run("reverse_client", &["--host", "127.0.0.1", "--port", &port]);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{}", out.stdout);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .contains(&format!("error: could not reach 127.0.0.1:{port}: ")),
        "stderr:\n{}",
        out.stderr
    );
}

/// The test file: a first line longer than the 60 characters data_client shows, then more.
fn test_data() -> Vec<u8> {
    let mut data = b"The quick brown fox jumps over the lazy dog; ".repeat(2);
    data.extend_from_slice(b"\r\n");
    data.extend(std::iter::repeat_n(b'z', 100_000));
    data
}

/// The first 60 characters of the test file's first line.
const FIRST_LINE_SHOWN: &str = "The quick brown fox jumps over the lazy dog; The quick brown";

#[test]
fn data_client_counts_what_the_data_server_sends() {
    let data = test_data();
    let file = TempFile::new("examples-net", ".txt", &data);
    let (server, port) = start_server("data_server", "data server", &["--file", file.path()]);
    let server_address = format!("127.0.0.1:{port}");
    let out = run("data_client", &[&server_address, &server_address]);
    assert!(
        out.status.success(),
        "{}; stderr:\n{}",
        out.status,
        out.stderr
    );
    let line = format!("{server_address}: {} bytes: {FIRST_LINE_SHOWN}", data.len());
    assert_eq!(out.stdout, format!("{line}\n{line}\n"));
    drop(server);
}

#[test]
fn data_client_reports_each_server_in_order() {
    let data = test_data();
    let file = TempFile::new("examples-net", ".txt", &data);
    let (server, port) = start_server("data_server", "data server", &["--file", file.path()]);
    let good = format!("127.0.0.1:{port}");
    let refused = format!("127.0.0.1:{}", free_port());
    let out = run("data_client", &[&good, &refused]);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{}", out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "stdout:\n{}", out.stdout);
    assert_eq!(
        lines[0],
        format!("{good}: {} bytes: {FIRST_LINE_SHOWN}", data.len())
    );
    assert!(
        lines[1].starts_with(&format!("{refused}: failed: ")) && lines[1].contains("refused"),
        "stdout:\n{}",
        out.stdout
    );
    drop(server);
}

#[test]
fn chat_server_broadcasts_to_the_others_only() {
    let (server, port) = start_server("chat_server", "chat server", &[]);
    let mut bob = Client::connect(port);
    let mut carol = Client::connect(port);
    // Once Bob hears Carol, both are surely in the room.
    carol.send_line("hi, it's Carol");
    assert_eq!(
        bob.read_line(),
        Some(format!("{} says: hi, it's Carol", carol.address()))
    );

    let mut alice = Client::connect(port);
    alice.send_line("Hello, chat!");
    let heard = Some(format!("{} says: Hello, chat!", alice.address()));
    assert_eq!(bob.read_line(), heard);
    assert_eq!(
        carol.read_line(),
        heard,
        "Carol heard herself or missed Alice"
    );

    // Bob answers after Alice's line was broadcast: if Alice had been sent her own line, it
    // would come before Bob's.
    bob.send_line("hi Alice");
    assert_eq!(
        alice.read_line(),
        Some(format!("{} says: hi Alice", bob.address())),
        "Alice should hear Bob, not herself"
    );
    drop(server);
}
