//! The ws_chat example, run as a binary: its page at `/`, and each text message sent on
//! `/ws` reaching every other client and not its sender.

use crate::support;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use support::Running;
use torsion::web::proto::websocket::{encode_frame, Decoder, Message, Opcode, Role, WsLimits};

/// Starts ws_chat on a free port; returns it and the port.
fn start() -> (Running, u16) {
    let mut child = support::example("ws_chat")
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("cargo run starts");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let line = support::lines(stdout)
        .recv_timeout(Duration::from_secs(300))
        .expect("the example started");
    let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    (running, port)
}

/// A WebSocket client on a plain socket.
struct Client {
    s: TcpStream,
    d: Decoder,
}

impl Client {
    fn connect(port: u16) -> Client {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 101 "), "{status}");
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        // Nothing is sent before the handshake is answered, so nothing is left in the reader.
        assert!(r.buffer().is_empty());
        Client {
            s,
            d: Decoder::new(Role::Client, WsLimits::default()),
        }
    }

    fn send(&mut self, text: &str) {
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            true,
            Opcode::Text,
            text.as_bytes(),
            Some([7, 1, 3, 9]),
        );
        self.s.write_all(&out).unwrap();
    }

    /// The next message, or `None` when nothing comes within `wait`.
    fn recv(&mut self, wait: Duration) -> Option<Message> {
        self.s.set_read_timeout(Some(wait)).unwrap();
        loop {
            if let Some(m) = self.d.next_message().unwrap() {
                return Some(m);
            }
            let mut buf = [0u8; 4096];
            match self.s.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.d.feed(&buf[..n]),
            }
        }
    }
}

#[test]
fn ws_chat_serves_its_page_and_broadcasts_to_the_others() {
    let (_server, port) = start();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("new WebSocket("), "{page}");

    let mut alice = Client::connect(port);
    let mut bob = Client::connect(port);
    let mut carol = Client::connect(port);
    alice.send("hello from alice");
    let long = Duration::from_secs(10);
    assert_eq!(
        bob.recv(long),
        Some(Message::Text("hello from alice".into()))
    );
    assert_eq!(
        carol.recv(long),
        Some(Message::Text("hello from alice".into()))
    );
    bob.send("hi alice");
    assert_eq!(alice.recv(long), Some(Message::Text("hi alice".into())));
    assert_eq!(carol.recv(long), Some(Message::Text("hi alice".into())));
    // Nobody hears their own lines: alice's next message is carol's, not her own.
    carol.send("carol here");
    assert_eq!(alice.recv(long), Some(Message::Text("carol here".into())));
    assert_eq!(carol.recv(Duration::from_millis(200)), None);
    // A client that leaves is no longer written to; the others go on.
    drop(bob);
    alice.send("still there?");
    assert_eq!(carol.recv(long), Some(Message::Text("still there?".into())));
}
