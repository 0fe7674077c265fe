//! Telnet: the negotiator against Python's `telnetlib` (a client nobody here wrote), and
//! properties of the parser (never panics, bounded answers, escaping round trips).

use std::process::{Command, Stdio};

use proptest::prelude::*;
use torsion::{factory, Protocol, Transport};
use torsion_conch::telnet::{escape, Event, Telnet, TelnetTransport, TerminalEvents};

use crate::support::{reactor, run_until_exit, telnetlib_missing};

/// Answers each line with `got: LINE`, reports the window size, and closes on `bye`.
#[derive(Default)]
struct LineApp {
    buf: Vec<u8>,
}

impl Protocol for LineApp {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let line = line.strip_suffix(b"\r\n").unwrap_or(&line);
            if line == b"bye" {
                t.lose_connection();
                return;
            }
            t.write_sequence(&[b"got: ", line, b"\r\n"]);
        }
    }
}

impl TerminalEvents for LineApp {
    fn terminal_size(&mut self, t: &Transport, cols: u16, rows: u16) {
        t.write(format!("size {cols}x{rows}\r\n").as_bytes());
    }
}

const CLIENT: &str = r#"
import sys, warnings
warnings.simplefilter("ignore")
import telnetlib
from telnetlib import IAC, DO, DONT, WILL, WONT, SB, SE, NAWS
seen = []
def cb(sock, cmd, opt):
    if cmd == SE or cmd == SB:
        return
    seen.append((cmd[0], opt[0]))
    if cmd == DO and opt == NAWS:
        sock.sendall(IAC + WILL + NAWS + IAC + SB + NAWS + bytes([0, 100, 0, 40]) + IAC + SE)
    elif cmd in (DO, DONT):
        sock.sendall(IAC + WONT + opt)
    else:
        sock.sendall(IAC + DONT + opt)
t = telnetlib.Telnet("127.0.0.1", int(sys.argv[1]), timeout=20)
t.set_option_negotiation_callback(cb)
print(t.read_until(b"size 100x40\r\n", 20))
t.write(b"hello \xff world\r\n")
print(t.read_until(b"world\r\n", 20))
t.write(b"bye\r\n")
print(t.read_all())
print(sorted(seen))
print("dupes", len(seen) - len(set(seen)))
"#;

#[test]
fn python_telnetlib_negotiates_and_round_trips_iac() {
    let r = reactor();
    let port = r
        .listen_tcp_on(
            0,
            factory(|| TelnetTransport::new(LineApp::default(), true)),
            "127.0.0.1",
        )
        .unwrap();
    let port = port.get_host().port().unwrap();
    let child = match Command::new("python3")
        .args(["-c", CLIENT, &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            torsion::testing::skip(torsion::testing::Missing::Peer, format!("python3: {e}"));
            return;
        }
    };
    let out = run_until_exit(&r, child);
    if telnetlib_missing(&out) {
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], r"b'size 100x40\r\n'", "{stdout}");
    // telnetlib doubled the 0xff on the way in; the app saw one, wrote one, and the
    // transport doubled it again for telnetlib to undo.
    assert_eq!(lines[1], r"b'got: hello \xff world\r\n'", "{stdout}");
    assert_eq!(lines[2], "b''", "{stdout}");
    // The server asked DO NAWS, WILL ECHO, WILL SGA, DO SGA, once each, and did not answer
    // the client's refusals with more negotiation.
    assert_eq!(
        lines[3], "[(251, 1), (251, 3), (253, 3), (253, 31)]",
        "{stdout}"
    );
    assert_eq!(lines[4], "dupes 0", "{stdout}");
}

fn data_of(events: &[Event]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Data(d) => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

proptest! {
    #[test]
    fn parser_never_panics_and_answers_stay_bounded(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)
    ) {
        let mut t = Telnet::new();
        let (mut sent, mut fed) = (0, 0);
        for chunk in &chunks {
            let mut out = Vec::new();
            let events = t.feed(chunk, &mut out);
            fed += chunk.len();
            sent += out.len();
            // At most one three-byte answer per command, which takes three bytes itself.
            prop_assert!(sent <= fed);
            prop_assert!(data_of(&events).len() <= chunk.len());
        }
    }

    #[test]
    fn escaping_round_trips_whatever_the_split(
        data in proptest::collection::vec(any::<u8>(), 0..500),
        split in any::<prop::sample::Index>(),
    ) {
        let wire = escape(&data);
        let at = split.index(wire.len() + 1);
        let mut t = Telnet::new();
        let mut out = Vec::new();
        let mut got = data_of(&t.feed(&wire[..at], &mut out));
        got.extend(data_of(&t.feed(&wire[at..], &mut out)));
        prop_assert!(out.is_empty());
        prop_assert_eq!(got, data);
    }
}
