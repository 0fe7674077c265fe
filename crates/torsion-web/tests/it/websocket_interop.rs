//! WebSocket interop with Python's `websockets` (PyPI, in a venv made on first use): as a
//! client of the Torsion server (text, binary, a 1 MiB message, ping, close codes both ways,
//! an over-limit message closed with 1009) and as the server the Torsion client talks to.
//! Skipped loudly when python3 is missing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use torsion::defer::DeferredQueue;
use torsion::{reactor, Failure};
use torsion_web::websocket::{connect_websocket_with, ConnectOptions, WsLimits};

use crate::websocket::{echo_server, Event, Recorder};

/// A python with `websockets` (made once per process), or `None`, loudly, without python3.
fn websockets_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("websockets-venv");
    torsion::testing::python_venv(&venv, "websockets.sync.client", &["websockets>=13"])
}

/// Waits for `child` without blocking the reactor; its stdout and whether it succeeded.
async fn finish(mut child: Child, out: mpsc::Receiver<String>) -> (Vec<String>, bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let ok = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break false;
        }
        let _ = torsion::task::defer_later(&reactor(), 0.02, || ()).await;
    };
    let _ = child.wait();
    (out.try_iter().collect(), ok)
}

/// Starts `py -c script`; its stdout lines come on the channel.
fn spawn(py: &Path, script: &str, args: &[String]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(py)
        .arg("-u")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

const CLIENT: &str = r#"
import sys
from websockets.sync.client import connect
from websockets.exceptions import ConnectionClosed

url = sys.argv[1]
with connect(url, subprotocols=["chat"], max_size=None) as ws:
    assert ws.subprotocol == "chat", ws.subprotocol
    ws.send("héllo")
    assert ws.recv(timeout=10) == "héllo"
    ws.send(bytes(range(256)))
    assert ws.recv(timeout=10) == bytes(range(256))
    big = "x" * (1 << 20)
    ws.send(big)
    assert ws.recv(timeout=30) == big
    assert ws.ping(b"hi").wait(10)
    print("echoes ok")
    # Over the server's limit: it closes with 1009.
    ws.send(b"y" * (3 << 20))
    try:
        ws.recv(timeout=30)
        raise SystemExit("no close after an over-limit message")
    except ConnectionClosed as e:
        print("limit", e.rcvd.code)

with connect(url) as ws:
    ws.send("close-me")
    try:
        ws.recv(timeout=10)
        raise SystemExit("the server did not close")
    except ConnectionClosed as e:
        print("server closed", e.rcvd.code, e.rcvd.reason)

with connect(url) as ws:
    ws.close(3001, "client leaves")
    print("client closed", ws.close_code)
"#;

#[torsion::test]
async fn python_websockets_client_against_the_torsion_server() -> Result<(), Failure> {
    let Some(py) = websockets_python() else {
        return Ok(());
    };
    let limits = WsLimits {
        max_frame: 2 << 20,
        max_message: 2 << 20,
    };
    let (port, n, server) = echo_server(limits);
    let (child, out) = spawn(&py, CLIENT, &[format!("ws://127.0.0.1:{n}/ws")]);
    let (lines, ok) = finish(child, out).await;
    assert!(ok, "the Python client failed: {lines:?}");
    assert_eq!(
        lines,
        vec![
            "echoes ok",
            "limit 1009",
            "server closed 4001 asked to",
            "client closed 3001"
        ]
    );
    let mut closes = Vec::new();
    while closes.len() < 3 {
        if let Event::Closed(c) = next(&server).await? {
            closes.push((c.code, c.sent));
        }
    }
    // (the peer's code, this end's): the over-limit connection is failed at once (RFC 6455
    // 7.1.7), without waiting for the client's answer; the others close cleanly.
    assert_eq!(
        closes,
        vec![(1006, Some(1009)), (4001, Some(4001)), (3001, Some(3001))],
        "how each connection ended"
    );
    port.stop_listening().await
}

const SERVER: &str = r#"
from websockets.sync.server import serve

def handler(ws):
    for m in ws:
        if m == "close-me":
            ws.close(4002, "py says bye")
            return
        ws.send(m)

with serve(handler, "127.0.0.1", 0, subprotocols=["chat"], max_size=None) as server:
    print("port", server.socket.getsockname()[1], flush=True)
    server.serve_forever()
"#;

async fn next(q: &DeferredQueue<Event>) -> Result<Event, Failure> {
    q.get().map_err(Failure::new)?.await
}

#[torsion::test]
async fn the_torsion_client_against_a_python_websockets_server() -> Result<(), Failure> {
    let Some(py) = websockets_python() else {
        return Ok(());
    };
    let (mut child, out) = spawn(&py, SERVER, &[]);
    let line = out
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_default();
    let port: u16 = line.strip_prefix("port ").unwrap_or("0").parse().unwrap();
    assert_ne!(port, 0, "the Python server's first line: {line:?}");
    let url = format!("ws://127.0.0.1:{port}/");
    let options = || ConnectOptions {
        subprotocols: vec!["chat".into()],
        limits: WsLimits {
            max_frame: 2 << 20,
            max_message: 2 << 20,
        },
        ..ConnectOptions::default()
    };
    let events = DeferredQueue::new();
    let rec = || Recorder {
        events: events.clone(),
        echo: false,
    };
    let t = connect_websocket_with(&url, rec(), options()).await?;
    assert_eq!(next(&events).await?, Event::Open(Some("chat".into())));
    t.send_text("héllo");
    assert_eq!(next(&events).await?, Event::Text("héllo".into()));
    let big = vec![0xA5u8; 1 << 20];
    t.send_binary(&big);
    assert_eq!(next(&events).await?, Event::Binary(big));
    t.ping(b"p");
    assert_eq!(next(&events).await?, Event::Pong(b"p".to_vec()));
    t.send_text("close-me");
    let Event::Closed(c) = next(&events).await? else {
        panic!()
    };
    assert_eq!(
        (c.code, c.reason.as_str(), c.clean),
        (4002, "py says bye", true)
    );

    let t = connect_websocket_with(&url, rec(), options()).await?;
    assert_eq!(next(&events).await?, Event::Open(Some("chat".into())));
    t.close(1000, "done");
    let Event::Closed(c) = next(&events).await? else {
        panic!()
    };
    assert_eq!((c.code, c.sent, c.clean), (1000, Some(1000), true));
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

const DEFLATE_CLIENT: &str = r#"
import sys
from websockets.sync.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

url, strict_url = sys.argv[1], sys.argv[2]
line = "the same line again, héllo, with numbers 1234567890; " * 40

def talk(ws, n):
    for i in range(n):
        ws.send(line)
        assert ws.recv(timeout=10) == line, "text %d" % i
    blob = bytes(range(256)) * 400
    ws.send(blob)
    assert ws.recv(timeout=10) == blob
    ws.send("hi")
    assert ws.recv(timeout=10) == "hi"

# The default offer (permessage-deflate; client_max_window_bits): agreed, context kept.
with connect(url, max_size=None) as ws:
    print("default:", ws.response.headers.get("Sec-WebSocket-Extensions"))
    print("extensions:", [e.name for e in ws.protocol.extensions])
    talk(ws, 5)

# Asking for no context takeover on both sides, and a 10-bit server window.
ask = ClientPerMessageDeflateFactory(
    server_no_context_takeover=True, client_no_context_takeover=True, server_max_window_bits=10
)
with connect(url, extensions=[ask], max_size=None) as ws:
    print("asked:", ws.response.headers.get("Sec-WebSocket-Extensions"))
    talk(ws, 3)

# A server that asks the client to keep no context.
with connect(strict_url, max_size=None) as ws:
    print("strict:", ws.response.headers.get("Sec-WebSocket-Extensions"))
    talk(ws, 3)

# No extension offered: none agreed, messages plain.
with connect(url, compression=None, max_size=None) as ws:
    print("none:", ws.response.headers.get("Sec-WebSocket-Extensions"))
    talk(ws, 2)
print("done")
"#;

#[torsion::test]
async fn python_websockets_client_with_and_without_deflate_against_the_torsion_server(
) -> Result<(), Failure> {
    use torsion_web::websocket::DeflateOptions;
    let Some(py) = websockets_python() else {
        return Ok(());
    };
    let limits = WsLimits {
        max_frame: 1 << 20,
        max_message: 1 << 20,
    };
    let (port, n, _server) =
        crate::websocket::echo_server_with(limits, Some(DeflateOptions::default()));
    let strict = DeflateOptions {
        no_context_takeover: true,
        peer_no_context_takeover: true,
        max_window_bits: 12,
        ..DeflateOptions::default()
    };
    let (port2, n2, _server2) = crate::websocket::echo_server_with(limits, Some(strict));
    let (child, out) = spawn(
        &py,
        DEFLATE_CLIENT,
        &[
            format!("ws://127.0.0.1:{n}/ws"),
            format!("ws://127.0.0.1:{n2}/ws"),
        ],
    );
    let (lines, ok) = finish(child, out).await;
    assert!(ok, "the Python client failed: {lines:?}");
    assert_eq!(
        lines,
        vec![
            "default: permessage-deflate",
            "extensions: ['permessage-deflate']",
            "asked: permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
            "strict: permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
            "none: None",
            "done",
        ]
    );
    port2.stop_listening().await?;
    port.stop_listening().await
}

const DEFLATE_SERVER: &str = r#"
import threading
from websockets.sync.server import serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

def handler(ws):
    for m in ws:
        if m == "ext?":
            ws.send(str(ws.response.headers.get("Sec-WebSocket-Extensions")))
        else:
            ws.send(m)

servers = [
    serve(handler, "127.0.0.1", 0, max_size=None),  # the default: 12-bit windows both ways
    serve(handler, "127.0.0.1", 0, max_size=None, compression=None),
    serve(handler, "127.0.0.1", 0, max_size=None, compression=None, extensions=[
        ServerPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True)
    ]),
]
print("ports", *[s.socket.getsockname()[1] for s in servers], flush=True)
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
"#;

#[torsion::test]
async fn the_torsion_client_with_and_without_deflate_against_python_websockets_servers(
) -> Result<(), Failure> {
    use torsion_web::websocket::DeflateOptions;
    let Some(py) = websockets_python() else {
        return Ok(());
    };
    let (mut child, out) = spawn(&py, DEFLATE_SERVER, &[]);
    let line = out
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_default();
    let ports: Vec<u16> = line
        .strip_prefix("ports ")
        .unwrap_or("")
        .split(' ')
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(ports.len(), 3, "the Python server's first line: {line:?}");
    let events = DeferredQueue::new();
    let text = "the same line again, héllo, with numbers 1234567890; ".repeat(40);
    let blob: Vec<u8> = (0..100_000u32).map(|i| (i % 256) as u8).collect();
    // (port, what the server answers to the offer, the window the client compresses with)
    let cases = [
        (
            ports[0],
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
            Some(12),
        ),
        (ports[1], "None", None),
        (
            ports[2],
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            Some(15),
        ),
    ];
    for (port, answer, window) in cases {
        let options = ConnectOptions {
            deflate: Some(DeflateOptions::default()),
            limits: WsLimits {
                max_frame: 1 << 20,
                max_message: 1 << 20,
            },
            ..ConnectOptions::default()
        };
        let rec = Recorder {
            events: events.clone(),
            echo: false,
        };
        let url = format!("ws://127.0.0.1:{port}/");
        let t = connect_websocket_with(&url, rec, options).await?;
        assert_eq!(next(&events).await?, Event::Open(None));
        assert_eq!(t.deflate().map(|a| a.own_window_bits), window, "{answer}");
        t.send_text("ext?");
        assert_eq!(next(&events).await?, Event::Text(answer.into()));
        // Several times the same message: with context takeover each refers to the last.
        for _ in 0..4 {
            t.send_text(&text);
            assert_eq!(next(&events).await?, Event::Text(text.clone()));
        }
        t.send_binary(&blob);
        assert_eq!(next(&events).await?, Event::Binary(blob.clone()));
        t.close(1000, "");
        let Event::Closed(c) = next(&events).await? else {
            panic!()
        };
        assert!(c.clean, "{c:?}");
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}
