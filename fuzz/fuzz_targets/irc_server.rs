//! Fuzzes the IRC server's core: three clients send any bytes, in any chunks, as time goes
//! by; nothing panics, and every line the server sends is one well-formed IRC message of at
//! most 512 bytes with its CR LF, so no client's text can smuggle a line to another.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion_words::irc::{Message, MAX_LINE};
use torsion_words::service::{ChatCore, Output, ServerConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let mut chat = ChatCore::new(ServerConfig {
        max_channels_per_user: 4,
        max_channels: 8,
        flood_queue: 16,
        ..ServerConfig::default()
    });
    for (id, nick) in [(0u64, "a"), (1, "b"), (2, "c")] {
        chat.connect(id, "127.0.0.1", 0.0);
        let hello = format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nJOIN #x\r\n");
        chat.data_received(id, hello.as_bytes(), 0.0);
    }
    let cut = (split as usize).min(rest.len());
    let mut out = chat.take_output();
    for (i, chunk) in [&rest[..cut], &rest[cut..]].into_iter().enumerate() {
        // Each chunk's lines, dealt out to the clients in turn.
        for (j, line) in chunk.split_inclusive(|&b| b == b'\n').enumerate() {
            let now = (i * 1000 + j) as f64 * 0.1;
            chat.data_received((j % 3) as u64, line, now);
            chat.tick(now);
            out.extend(chat.take_output());
        }
    }
    for o in out {
        if let Output::Line(_, line) = o {
            assert!(line.len() + 2 <= MAX_LINE, "{} bytes", line.len());
            assert!(!line.contains(['\r', '\n', '\0']), "{line:?}");
            Message::parse(&line).expect("a well-formed message");
        }
    }
});
