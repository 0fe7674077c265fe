//! Wire compatibility with Python Twisted itself (installed from PyPI into a throwaway venv on
//! first use): lines, netstrings and int32-prefixed strings, both ways — a Twisted server with
//! a Torsion client, and a Torsion server with a Twisted client.
//!
//! Skipped, loudly, only where `python3` is missing; a failed install is a failed test.

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::peer::twisted_python;
use torsion::protocols::basic::{
    Framing, Int32, LineReceiver, LineTransport, Lines, Netstring, StringReceiver, StringSender,
    Strings,
};
use torsion::{factory, reactor, Reactor};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/twisted_peer.py");

fn frames(mode: &str) -> Vec<Vec<u8>> {
    let mut v = vec![
        b"hello".to_vec(),
        Vec::new(),
        "with spaces and \u{fc}nicode".as_bytes().to_vec(),
        vec![b'x'; 5000],
    ];
    if mode != "lines" {
        v.push((0..=255u8).collect());
        v.push(vec![0u8; 50_000]);
    }
    v
}

fn answer(prefix: &[u8], frame: &[u8]) -> Vec<u8> {
    let mut a = prefix.to_vec();
    a.extend(frame.iter().rev());
    a
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

type Answers = Rc<RefCell<Vec<Vec<u8>>>>;

/// A Torsion client that sends frames and collects one answer per frame.
struct Client {
    frames: Vec<Vec<u8>>,
    answers: Answers,
}

impl Client {
    fn got(&self, frame: &[u8]) {
        self.answers.borrow_mut().push(frame.to_vec());
        if self.answers.borrow().len() == self.frames.len() {
            reactor().stop().unwrap();
        }
    }
}

impl LineReceiver for Client {
    fn max_length(&self) -> usize {
        1_000_000
    }
    fn connection_made(&mut self, t: &mut LineTransport<'_>) {
        for f in &self.frames {
            t.send_line(f);
        }
    }
    fn line_received(&mut self, _: &mut LineTransport<'_>, line: &[u8]) {
        self.got(line);
    }
}

/// The same client for a length-prefixed framing.
struct StringClient<F>(Client, std::marker::PhantomData<F>);

impl<F: Framing> StringReceiver for StringClient<F> {
    type Framing = F;
    fn max_length(&self) -> usize {
        1_000_000
    }
    fn connection_made(&mut self, t: &StringSender<'_, F>) {
        for f in &self.0.frames {
            t.send_string(f).unwrap();
        }
    }
    fn string_received(&mut self, _: &StringSender<'_, F>, data: &[u8]) {
        self.0.got(data);
    }
}

/// A Twisted server answers a Torsion client.
fn twisted_server_torsion_client(mode: &str) {
    let Some(py) = twisted_python() else { return };
    let mut child = Command::new(py)
        .args([PEER, mode, "server"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("Twisted server started");
    let port: u16 = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();

    let r = Reactor::new();
    r.set_install_signal_handlers(false);
    let answers: Answers = Rc::default();
    let sent = frames(mode);
    let (a, f) = (answers.clone(), sent.clone());
    let make = move || Client {
        frames: f.clone(),
        answers: a.clone(),
    };
    match mode {
        "lines" => drop(r.connect_tcp("127.0.0.1", port, factory(move || Lines::new(make())))),
        "netstrings" => drop(r.connect_tcp(
            "127.0.0.1",
            port,
            factory(move || Strings::new(StringClient::<Netstring>(make(), Default::default()))),
        )),
        _ => drop(r.connect_tcp(
            "127.0.0.1",
            port,
            factory(move || Strings::new(StringClient::<Int32>(make(), Default::default()))),
        )),
    }
    let guard = r.clone();
    r.call_later(30.0, move || drop(guard.stop()));
    r.run().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let expected: Vec<Vec<u8>> = sent.iter().map(|f| answer(b"T:", f)).collect();
    assert_eq!(
        *answers.borrow(),
        expected,
        "answers from the Twisted {mode} server"
    );
}

/// The Torsion server: answers every frame with "R:" + the frame reversed.
struct Reverser;

impl LineReceiver for Reverser {
    fn max_length(&self) -> usize {
        1_000_000
    }
    fn line_received(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
        t.send_line(&answer(b"R:", line));
    }
}

struct StringReverser<F>(std::marker::PhantomData<F>);

impl<F: Framing> StringReceiver for StringReverser<F> {
    type Framing = F;
    fn max_length(&self) -> usize {
        1_000_000
    }
    fn string_received(&mut self, t: &StringSender<'_, F>, data: &[u8]) {
        t.send_string(&answer(b"R:", data)).unwrap();
    }
}

/// A Twisted client talks to a Torsion server running on its own thread.
fn torsion_server_twisted_client(mode: &str) {
    let Some(py) = twisted_python() else { return };
    let (tx, rx) = mpsc::channel();
    let mode_owned = mode.to_owned();
    let server = std::thread::spawn(move || {
        let r = Reactor::new();
        r.set_install_signal_handlers(false);
        let port = match mode_owned.as_str() {
            "lines" => r.listen_tcp_on(0, factory(|| Lines::new(Reverser)), "127.0.0.1"),
            "netstrings" => r.listen_tcp_on(
                0,
                factory(|| Strings::new(StringReverser::<Netstring>(Default::default()))),
                "127.0.0.1",
            ),
            _ => r.listen_tcp_on(
                0,
                factory(|| Strings::new(StringReverser::<Int32>(Default::default()))),
                "127.0.0.1",
            ),
        }
        .unwrap();
        tx.send((port.get_host().port().unwrap(), r.handle()))
            .unwrap();
        r.run().unwrap();
    });
    let (port, handle) = rx.recv().unwrap();
    let sent = frames(mode);
    let out = Command::new(py)
        .args([PEER, mode, "client", &port.to_string()])
        .args(sent.iter().map(|f| hex(f)))
        .output()
        .unwrap();
    handle.stop();
    server.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Vec<Vec<u8>> = stdout.lines().map(unhex).collect();
    let expected: Vec<Vec<u8>> = sent.iter().map(|f| answer(b"R:", f)).collect();
    assert_eq!(
        got,
        expected,
        "the Twisted {mode} client's answers; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lines_from_torsion_to_a_twisted_server() {
    twisted_server_torsion_client("lines");
}

#[test]
fn netstrings_from_torsion_to_a_twisted_server() {
    twisted_server_torsion_client("netstrings");
}

#[test]
fn int32_strings_from_torsion_to_a_twisted_server() {
    twisted_server_torsion_client("int32");
}

#[test]
fn lines_from_a_twisted_client_to_torsion() {
    torsion_server_twisted_client("lines");
}

#[test]
fn netstrings_from_a_twisted_client_to_torsion() {
    torsion_server_twisted_client("netstrings");
}

#[test]
fn int32_strings_from_a_twisted_client_to_torsion() {
    torsion_server_twisted_client("int32");
}
