//! Fuzzes the WebSocket frame decoder: any bytes, in any two chunks, never panic and give the
//! same messages (and the same error) as in one chunk, for either role; every message read
//! writes back to a frame that reads as the same message; and a server connection (a
//! `WebSocketResource` behind a `Site`, upgraded by a real request) fed the bytes never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion::testing::{Clock, StringTransport};
use torsion::transport::Address;
use torsion::{ConnectionEnd, Factory, Protocol};
use torsion_web::proto::websocket::{
    encode_close, encode_frame, Decoder, Message, Opcode, Role, WsLimits,
};
use torsion_web::websocket::{WebSocketProtocol, WebSocketResource, WebSocketTransport};
use torsion_web::Site;

const LIMITS: WsLimits = WsLimits {
    max_frame: 4096,
    max_message: 8192,
};

fn all_messages(role: Role, chunks: &[&[u8]]) -> (Vec<Message>, Option<u16>) {
    let mut d = Decoder::new(role, LIMITS);
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c);
        loop {
            match d.next_message() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Some(e.code())),
            }
        }
    }
    (out, None)
}

fn reencode(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    match m {
        Message::Text(t) => encode_frame(&mut out, true, Opcode::Text, t.as_bytes(), None),
        Message::Binary(b) => encode_frame(&mut out, true, Opcode::Binary, b, None),
        Message::Ping(p) => encode_frame(&mut out, true, Opcode::Ping, p, None),
        Message::Pong(p) => encode_frame(&mut out, true, Opcode::Pong, p, None),
        Message::Close(Some(code), reason) => encode_close(&mut out, *code, reason, None),
        Message::Close(None, _) => encode_frame(&mut out, true, Opcode::Close, b"", None),
    }
    out
}

struct Echo;

impl WebSocketProtocol for Echo {
    fn text_message_received(&mut self, t: &WebSocketTransport, text: String) {
        t.send_text(&text);
    }
    fn binary_message_received(&mut self, t: &WebSocketTransport, data: Vec<u8>) {
        t.send_binary(&data);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    for role in [Role::Server, Role::Client] {
        let whole = all_messages(role, &[rest]);
        let split = all_messages(role, &[&rest[..at], &rest[at..]]);
        assert_eq!(whole, split);
        for m in &whole.0 {
            let (again, err) = all_messages(Role::Client, &[&reencode(m)]);
            assert_eq!((again.as_slice(), err), (std::slice::from_ref(m), None));
        }
    }

    let site = Site::new(WebSocketResource::new(|_| Some(Echo)).with_limits(LIMITS));
    // Timers on a clock of its own, dropped with the run: none pile up in the reactor.
    site.set_clock(Clock::new());
    let Some(mut channel) = site.build_protocol(&Address::Tcp(([127, 0, 0, 1], 1).into())) else {
        return;
    };
    let st = StringTransport::new();
    let t = st.transport();
    channel.connection_made(&t);
    channel.data_received(
        &t,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    channel.data_received(&t, &rest[..at]);
    channel.data_received(&t, &rest[at..]);
    channel.connection_lost(ConnectionEnd::Done);
});
