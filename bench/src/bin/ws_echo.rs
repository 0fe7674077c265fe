//! The WebSocket echo scenario (bench/run's scenario 11): Torsion's server and the load client
//! every contender is measured with.
//!
//! ```text
//! ws_echo server --port P
//!     a Torsion WebSocket echo (torsion_web::websocket) at every path: each text or binary
//!     message is sent back as it came; port 0 picks a free port, and the first line printed
//!     ends with the address listened on (`… listening on 127.0.0.1:PORT`)
//! ws_echo load --port P [--path /ws] [--conns 50] [--size 64] [--duration 10] [--messages K]
//!     N WebSocket connections (no extension offered) ping-pong M-byte text messages for D
//!     seconds, one in flight per connection, or until each has made K round trips; prints
//!     one line of figures, as loadgen does:
//!     msgs=… secs=… msgs_per_s=… p50_us=… p99_us=… errors=…
//! ```
//!
//! The client frames with Torsion's I/O-free codec (`torsion_web::proto::websocket`) on raw
//! tokio sockets, one thread: the same client for every server. Any failed handshake, close
//! or wrong echo is an error (exit status 1).
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion_web::proto::websocket::{
    accept_key, encode_frame, Decoder, Message, Opcode, Role, WsLimits,
};
use torsion_web::websocket::{WebSocketProtocol, WebSocketResource, WebSocketTransport};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = torsion_bench::arg_in(&args, "--port", 0);
    let mode = args.first().map(String::as_str);
    if port == 0 && mode != Some("server") {
        eprintln!("usage: ws_echo server|load --port P [options] (see the source's docs)");
        std::process::exit(2);
    }
    match mode {
        Some("server") => {
            if let Err(e) = server(port) {
                eprintln!("ws_echo server: {e}");
                std::process::exit(1);
            }
        }
        Some("load") => {
            let rt = torsion_bench::current_thread_runtime().unwrap_or_else(|e| {
                eprintln!("cannot start the runtime: {e}");
                std::process::exit(1)
            });
            let ok = rt.block_on(load(
                port,
                torsion_bench::arg_in(&args, "--path", "/ws".to_owned()),
                torsion_bench::arg_in(&args, "--conns", 50),
                torsion_bench::arg_in(&args, "--size", 64),
                Duration::from_secs_f64(torsion_bench::arg_in(&args, "--duration", 10.0)),
                torsion_bench::arg_in(&args, "--messages", u64::MAX),
            ));
            std::process::exit(if ok { 0 } else { 1 });
        }
        other => {
            eprintln!("unknown mode {other:?}: use server or load");
            std::process::exit(2)
        }
    }
}

/// Sends every message back.
struct Echo;

impl WebSocketProtocol for Echo {
    fn text_message_received(&mut self, t: &WebSocketTransport, text: String) {
        t.send_text(&text);
    }

    fn binary_message_received(&mut self, t: &WebSocketTransport, data: Vec<u8>) {
        t.send_binary(&data);
    }
}

fn server(port: u16) -> std::io::Result<()> {
    let r = torsion::reactor();
    let site = torsion_web::Site::new(WebSocketResource::new(|_request| Some(Echo)));
    let listening = r
        .listen_tcp_on(port, site, "127.0.0.1")
        .map_err(|f| std::io::Error::other(f.to_string()))?;
    println!(
        "torsion ws echo listening on 127.0.0.1:{}",
        listening.get_host().port().unwrap_or(port)
    );
    r.run().map_err(|f| std::io::Error::other(f.to_string()))
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s in nanoseconds, three significant digits.
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// The handshake's key (any 16 bytes in base64 will do; the server's answer is checked).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Opens a WebSocket connection: the upgrade, checked for a 101 with the right
/// `Sec-WebSocket-Accept`; bytes read past the head go to the decoder.
async fn handshake(port: u16, path: &str, decoder: &mut Decoder) -> Result<TcpStream, String> {
    let mut sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    let hello = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    sock.write_all(hello.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if got.len() > 16 * 1024 {
            return Err("no complete response head".into());
        }
        let n = sock
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the server closed during the handshake".into());
        }
        got.extend_from_slice(&buf[..n]);
    };
    if !got.starts_with(b"HTTP/1.1 101") {
        return Err(format!(
            "not upgraded: {:?}",
            String::from_utf8_lossy(&got[..end.min(200)])
        ));
    }
    let head = String::from_utf8_lossy(&got[..end]);
    let accept = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-accept")
            .then(|| value.trim().to_owned())
    });
    if accept.as_deref() != Some(accept_key(KEY).as_str()) {
        return Err(format!("wrong or missing Sec-WebSocket-Accept: {accept:?}"));
    }
    decoder.feed(&got[end..]);
    Ok(sock)
}

/// One connection's ping-pong until `deadline`: its message count and latencies.
async fn ping_pong(
    port: u16,
    path: String,
    size: usize,
    deadline: Instant,
    messages: u64,
) -> Result<(u64, Histogram<u64>), String> {
    let mut decoder = Decoder::new(Role::Client, WsLimits::default());
    let mut sock = handshake(port, &path, &mut decoder).await?;
    let text: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    // One frame, masked once: the server unmasks whatever key it is given.
    let mut frame = Vec::new();
    encode_frame(
        &mut frame,
        true,
        Opcode::Text,
        text.as_bytes(),
        Some([0x12, 0x34, 0x56, 0x78]),
    );
    let mut buf = vec![0u8; 64 * 1024];
    let mut hist = new_histogram();
    let mut count = 0u64;
    loop {
        let start = Instant::now();
        if start >= deadline || count >= messages {
            return Ok((count, hist));
        }
        sock.write_all(&frame)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let reply = loop {
            match decoder.next_message() {
                Ok(Some(m)) => break m,
                Ok(None) => {}
                Err(e) => return Err(format!("the server's frames: {e}")),
            }
            let n = sock
                .read(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            decoder.feed(&buf[..n]);
        };
        hist.saturating_record(start.elapsed().as_nanos() as u64);
        match reply {
            Message::Text(t) if t == text => {}
            other => return Err(format!("the echo differs: {other:?}")),
        }
        count += 1;
    }
}

async fn load(
    port: u16,
    path: String,
    conns: usize,
    size: usize,
    duration: Duration,
    messages: u64,
) -> bool {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(ping_pong(
                port,
                path.clone(),
                size.max(1),
                deadline,
                messages,
            ))
        })
        .collect();
    let mut total = 0u64;
    let mut hist = new_histogram();
    let mut errors = 0usize;
    for t in tasks {
        match t.await {
            Ok(Ok((n, h))) => {
                total += n;
                hist.add(&h).expect("same histogram bounds");
            }
            Ok(Err(e)) => {
                errors += 1;
                eprintln!("connection failed: {e}");
            }
            Err(e) => {
                errors += 1;
                eprintln!("connection task failed: {e}");
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "msgs={total} secs={secs:.3} msgs_per_s={:.1} p50_us={:.1} p99_us={:.1} errors={errors}",
        total as f64 / secs,
        hist.value_at_quantile(0.50) as f64 / 1e3,
        hist.value_at_quantile(0.99) as f64 / 1e3,
    );
    errors == 0 && total > 0
}
