//! WebSocket, server and client on the same reactor: the handshake (101, 426, 400, the
//! subprotocol chosen), messages both ways, pings answered, close codes, limits (1009), an
//! unmasked client frame (1002), text that is not UTF-8 (1007), and bytes that come in the
//! same read as the upgrade request.

use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::defer::DeferredQueue;
use torsion::tcp::ListeningPort;
use torsion::Failure;
use torsion_web::proto::websocket::{encode_frame, Decoder, Message, Opcode, Role};
use torsion_web::resource::{Children, Resource};
use torsion_web::websocket::{
    connect_websocket, connect_websocket_with, CloseReason, ConnectOptions, HandshakeFailed,
    WebSocketProtocol, WebSocketResource, WebSocketTransport, WsLimits,
};
use torsion_web::Site;

use crate::support::listen;

/// What a peer heard, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    Open(Option<String>),
    Text(String),
    Binary(Vec<u8>),
    Pong(Vec<u8>),
    Closed(CloseReason),
}

/// Echoes every message back and reports what it heard.
pub(crate) struct Recorder {
    pub(crate) events: DeferredQueue<Event>,
    pub(crate) echo: bool,
}

impl WebSocketProtocol for Recorder {
    fn connection_made(&mut self, t: &WebSocketTransport) {
        let _ = self
            .events
            .put(Event::Open(t.subprotocol().map(str::to_owned)));
    }
    fn text_message_received(&mut self, t: &WebSocketTransport, text: String) {
        if self.echo {
            if text == "close-me" {
                t.close(4001, "asked to");
                return;
            }
            t.send_text(&text);
        }
        let _ = self.events.put(Event::Text(text));
    }
    fn binary_message_received(&mut self, t: &WebSocketTransport, data: Vec<u8>) {
        if self.echo {
            t.send_binary(&data);
        }
        let _ = self.events.put(Event::Binary(data));
    }
    fn pong_received(&mut self, _t: &WebSocketTransport, payload: Vec<u8>) {
        let _ = self.events.put(Event::Pong(payload));
    }
    fn connection_lost(&mut self, reason: CloseReason) {
        let _ = self.events.put(Event::Closed(reason));
    }
}

#[derive(Default)]
struct Root(Children);
impl Resource for Root {
    fn children(&self) -> Option<&Children> {
        Some(&self.0)
    }
}

/// An echo WebSocket at /ws (subprotocols "chat" then "superchat", messages up to 1000
/// bytes); the server's events come through the queue it returns.
pub(crate) fn echo_server(limits: WsLimits) -> (ListeningPort, u16, DeferredQueue<Event>) {
    echo_server_with(limits, None)
}

/// [`echo_server`], agreeing to permessage-deflate on `deflate`'s terms when given.
pub(crate) fn echo_server_with(
    limits: WsLimits,
    deflate: Option<torsion_web::websocket::DeflateOptions>,
) -> (ListeningPort, u16, DeferredQueue<Event>) {
    let events = DeferredQueue::new();
    let server_events = events.clone();
    let root = Root::default();
    let ws = WebSocketResource::new(move |_r| {
        Some(Recorder {
            events: server_events.clone(),
            echo: true,
        })
    })
    .with_subprotocols(&["chat", "superchat"])
    .with_limits(limits);
    let ws = match deflate {
        Some(o) => ws.with_deflate(o),
        None => ws,
    };
    root.put_child(b"ws", Rc::new(ws));
    let (port, addr) = listen(Site::new(root));
    (port, addr.port(), events)
}

fn small() -> WsLimits {
    WsLimits {
        max_frame: 1000,
        max_message: 1000,
    }
}

pub(crate) async fn next(q: &DeferredQueue<Event>) -> Result<Event, Failure> {
    q.get().map_err(Failure::new)?.await
}

#[torsion::test]
async fn messages_go_both_ways_and_close_cleanly() -> Result<(), Failure> {
    let (port, n, server) = echo_server(small());
    let client = DeferredQueue::new();
    let options = ConnectOptions {
        subprotocols: vec!["superchat".into(), "chat".into()],
        ..ConnectOptions::default()
    };
    let rec = Recorder {
        events: client.clone(),
        echo: false,
    };
    let t = connect_websocket_with(&format!("ws://127.0.0.1:{n}/ws"), rec, options).await?;
    // The server's preference wins among what the client offered.
    assert_eq!(t.subprotocol(), Some("chat"));
    assert_eq!(next(&client).await?, Event::Open(Some("chat".into())));
    assert_eq!(next(&server).await?, Event::Open(Some("chat".into())));

    t.send_text("héllo");
    assert_eq!(next(&client).await?, Event::Text("héllo".into()));
    assert_eq!(next(&server).await?, Event::Text("héllo".into()));
    t.send_binary(&[0, 1, 2, 255]);
    assert_eq!(next(&client).await?, Event::Binary(vec![0, 1, 2, 255]));
    t.ping(b"are you there");
    assert_eq!(next(&client).await?, Event::Pong(b"are you there".to_vec()));
    let _ = next(&server).await?; // the binary message

    t.close(1000, "bye");
    let Event::Closed(c) = next(&client).await? else {
        panic!()
    };
    assert_eq!((c.code, c.sent, c.clean), (1000, Some(1000), true));
    let Event::Closed(s) = next(&server).await? else {
        panic!()
    };
    assert_eq!(
        (s.code, s.reason.as_str(), s.sent, s.clean),
        (1000, "bye", Some(1000), true)
    );
    port.stop_listening().await
}

#[torsion::test]
async fn the_server_closes_with_its_code_and_over_limit_messages_get_1009() -> Result<(), Failure> {
    let (port, n, server) = echo_server(small());
    let client = DeferredQueue::new();
    let url = format!("ws://127.0.0.1:{n}/ws/anything/below");
    let rec = Recorder {
        events: client.clone(),
        echo: false,
    };
    let t = connect_websocket(&url, rec).await?;
    // No subprotocol offered: none chosen.
    assert_eq!(next(&client).await?, Event::Open(None));
    t.send_text("close-me");
    let Event::Closed(c) = next(&client).await? else {
        panic!()
    };
    assert_eq!(
        (c.code, c.reason.as_str(), c.clean),
        (4001, "asked to", true)
    );

    let rec = Recorder {
        events: client.clone(),
        echo: false,
    };
    let t = connect_websocket(&url, rec).await?;
    assert_eq!(next(&client).await?, Event::Open(None));
    t.send_binary(&vec![7u8; 1001]);
    let Event::Closed(c) = next(&client).await? else {
        panic!()
    };
    assert_eq!(c.code, 1009, "{c:?}");
    // The server heard neither oversized message.
    let mut heard = Vec::new();
    loop {
        match next(&server).await? {
            Event::Closed(r) if r.sent == Some(1009) => break,
            e => heard.push(e),
        }
    }
    assert!(
        !heard.iter().any(|e| matches!(e, Event::Binary(_))),
        "{heard:?}"
    );
    port.stop_listening().await
}

/// A raw exchange: the upgrade request (with `extra` bytes in the same write), then what the
/// server sends until it closes.
pub(crate) async fn raw(n: u16, head: &str, extra: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", n)).await.unwrap();
    let mut out = head.as_bytes().to_vec();
    out.extend_from_slice(extra);
    s.write_all(&out).await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    got
}

pub(crate) const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The frames after the 101's head.
pub(crate) fn frames_after_head(got: &[u8]) -> (String, Vec<Message>) {
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let mut d = Decoder::new(Role::Client, WsLimits::default());
    d.feed(&got[end..]);
    let mut out = Vec::new();
    while let Ok(Some(m)) = d.next_message() {
        out.push(m);
    }
    (head, out)
}

#[torsion::test]
async fn handshake_answers_and_protocol_errors_close_with_their_codes() -> Result<(), Failure> {
    let (port, n, _server) = echo_server(small());
    // The RFC's own example key, and a text frame and a ping in the same read as the request.
    let mut frames = Vec::new();
    encode_frame(
        &mut frames,
        true,
        Opcode::Text,
        b"early",
        Some([1, 2, 3, 4]),
    );
    encode_frame(&mut frames, true, Opcode::Ping, b"p", Some([1, 2, 3, 4]));
    encode_frame(&mut frames, true, Opcode::Text, b"unmasked", None);
    let got = raw(n, UPGRADE, &frames).await;
    let (head, msgs) = frames_after_head(&got);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    assert!(
        !head.contains("Content-Length") && !head.contains("Sec-WebSocket-Protocol"),
        "{head}"
    );
    assert_eq!(msgs[0], Message::Text("early".into()));
    assert_eq!(msgs[1], Message::Pong(b"p".to_vec()));
    // The unmasked frame: close 1002, and the server closes the connection.
    assert!(
        matches!(&msgs[2], Message::Close(Some(1002), _)),
        "{msgs:?}"
    );

    // Text that is not UTF-8: 1007.
    let mut bad = Vec::new();
    encode_frame(
        &mut bad,
        true,
        Opcode::Text,
        &[0xC3, 0x28],
        Some([9, 9, 9, 9]),
    );
    let (_, msgs) = frames_after_head(&raw(n, UPGRADE, &bad).await);
    assert!(
        matches!(&msgs[..], [Message::Close(Some(1007), _)]),
        "{msgs:?}"
    );

    // Version 8: 426 with the version spoken; a plain GET: 426; a bad key: 400.
    let v8 = UPGRADE
        .replace("Version: 13", "Version: 8")
        .replace("Connection: Upgrade", "Connection: Upgrade, close");
    let got = String::from_utf8_lossy(&raw(n, &v8, b"").await).into_owned();
    assert!(got.starts_with("HTTP/1.1 426 "), "{got}");
    assert!(got.contains("Sec-WebSocket-Version: 13\r\n"), "{got}");
    let plain = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let got = String::from_utf8_lossy(&raw(n, plain, b"").await).into_owned();
    assert!(got.starts_with("HTTP/1.1 426 "), "{got}");
    let badkey = UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
    let badkey = badkey.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    let got = String::from_utf8_lossy(&raw(n, &badkey, b"").await).into_owned();
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    port.stop_listening().await
}

#[torsion::test]
async fn a_client_refused_by_a_plain_resource_fails_with_handshake_failed() -> Result<(), Failure> {
    let (port, n, _server) = echo_server(small());
    let rec = Recorder {
        events: DeferredQueue::new(),
        echo: false,
    };
    let err = connect_websocket(&format!("ws://127.0.0.1:{n}/nothing"), rec)
        .await
        .unwrap_err();
    assert!(err.check::<HandshakeFailed>(), "{err:?}");
    assert!(err.to_string().contains("404"), "{err}");
    port.stop_listening().await
}

/// A site with the echo WebSocket at its root, on a test clock, and one connection to it over
/// a string transport, upgraded.
fn upgraded_on_a_clock() -> (
    torsion::testing::Clock,
    torsion_web::channel::HttpChannel,
    torsion::testing::StringTransport,
    DeferredQueue<Event>,
) {
    use torsion::{Factory, Protocol};
    let events = DeferredQueue::new();
    let ev = events.clone();
    let site = Site::new(WebSocketResource::new(move |_| {
        Some(Recorder {
            events: ev.clone(),
            echo: true,
        })
    }));
    let clock = torsion::testing::Clock::new();
    site.set_clock(clock.clone());
    let mut channel = site
        .build_protocol(&torsion::transport::Address::Tcp(
            ([127, 0, 0, 1], 1).into(),
        ))
        .unwrap();
    let st = torsion::testing::StringTransport::new();
    let t = st.transport();
    channel.connection_made(&t);
    channel.data_received(&t, UPGRADE.replace("GET /ws", "GET /").as_bytes());
    let (head, _) = frames_after_head(&st.take());
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    (clock, channel, st, events)
}

#[test]
fn a_close_the_peer_never_answers_ends_the_connection_after_ten_seconds() {
    use torsion::Protocol;
    let (clock, mut channel, st, _events) = upgraded_on_a_clock();
    let mut frame = Vec::new();
    encode_frame(
        &mut frame,
        true,
        Opcode::Text,
        b"close-me",
        Some([3, 3, 3, 3]),
    );
    channel.data_received(&st.transport(), &frame);
    let (_, msgs) = frames_after_head(&[b"\r\n\r\n".as_slice(), &st.take()].concat());
    assert_eq!(msgs, vec![Message::Close(Some(4001), "asked to".into())]);
    // No HTTP idle time-out applies to an upgraded connection, and the peer has ten seconds.
    clock.advance(9.9);
    assert!(!st.disconnecting());
    clock.advance(0.2);
    assert!(st.disconnecting());
}

#[test]
fn a_draining_server_closes_websockets_with_going_away() {
    use torsion::Protocol;
    let (_clock, mut channel, st, _events) = upgraded_on_a_clock();
    channel.drain(&st.transport());
    let (_, msgs) = frames_after_head(&[b"\r\n\r\n".as_slice(), &st.take()].concat());
    assert!(
        matches!(&msgs[..], [Message::Close(Some(1001), _)]),
        "{msgs:?}"
    );
}

#[test]
fn a_streaming_producer_is_paused_while_the_write_buffer_is_full() {
    use std::cell::Cell;
    use torsion::producer::Producer;
    use torsion::{Factory, Protocol};

    /// Counts its pauses and resumes.
    #[derive(Default)]
    struct Counted {
        paused: Cell<u32>,
        resumed: Cell<u32>,
    }
    impl Producer for Counted {
        fn pause_producing(&self) {
            self.paused.set(self.paused.get() + 1);
        }
        fn resume_producing(&self) {
            self.resumed.set(self.resumed.get() + 1);
        }
        fn stop_producing(&self) {}
    }
    /// Streams through its producer from the start.
    struct Streamer(Rc<Counted>);
    impl WebSocketProtocol for Streamer {
        fn connection_made(&mut self, t: &WebSocketTransport) {
            t.register_producer(self.0.clone(), true).unwrap();
            t.send_binary(&[0; 100]);
        }
        fn text_message_received(&mut self, _t: &WebSocketTransport, _text: String) {}
    }
    let counted = Rc::new(Counted::default());
    let c = counted.clone();
    let site = Site::new(WebSocketResource::new(move |_| Some(Streamer(c.clone()))));
    let mut channel = site
        .build_protocol(&torsion::transport::Address::Tcp(
            ([127, 0, 0, 1], 1).into(),
        ))
        .unwrap();
    let st = torsion::testing::StringTransport::new();
    let t = st.transport();
    channel.connection_made(&t);
    channel.data_received(&t, UPGRADE.replace("GET /ws", "GET /").as_bytes());
    assert!(st.streaming());
    let (hw, _) = t.write_buffer_limits();
    st.set_buffered_size(hw + 1);
    assert_eq!(counted.paused.get(), 1);
    st.set_buffered_size(0);
    assert_eq!(counted.resumed.get(), 1);
    let (_, msgs) = frames_after_head(&st.take());
    assert_eq!(msgs, vec![Message::Binary(vec![0; 100])]);
}

#[test]
fn a_connection_the_resource_refuses_is_answered_403() {
    use torsion::{Factory, Protocol};
    let site = Site::new(WebSocketResource::new(|_| None::<Recorder>));
    let mut channel = site
        .build_protocol(&torsion::transport::Address::Tcp(
            ([127, 0, 0, 1], 1).into(),
        ))
        .unwrap();
    let st = torsion::testing::StringTransport::new();
    let t = st.transport();
    channel.connection_made(&t);
    channel.data_received(&t, UPGRADE.replace("GET /ws", "GET /").as_bytes());
    let out = String::from_utf8_lossy(&st.take()).into_owned();
    assert!(out.starts_with("HTTP/1.1 403 "), "{out}");
}

#[torsion::test]
async fn wss_goes_through_tls_checked_against_the_given_roots() -> Result<(), Failure> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use torsion::tls::{Identity, ServerContext};
    use torsion_web::client::BrowserLikePolicyForHttps;

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let server = ServerContext::builder()
        .certificate(Identity::from_pem(
            leaf.pem().as_bytes(),
            leaf_key.serialize_pem().as_bytes(),
        )?)
        .build()?;

    let events = DeferredQueue::new();
    let ev = events.clone();
    let root = Root::default();
    root.put_child(
        b"ws",
        Rc::new(WebSocketResource::new(move |_| {
            Some(Recorder {
                events: ev.clone(),
                echo: true,
            })
        })),
    );
    let port = torsion::reactor().listen_tls_on(0, Site::new(root), server, "127.0.0.1")?;
    let n = port.get_host().port().unwrap();
    let url = format!("wss://localhost:{n}/ws");

    let client = DeferredQueue::new();
    let options = ConnectOptions {
        tls: Rc::new(BrowserLikePolicyForHttps::trusting_pem(ca_pem.as_bytes())?),
        ..ConnectOptions::default()
    };
    let rec = Recorder {
        events: client.clone(),
        echo: false,
    };
    let t = connect_websocket_with(&url, rec, options).await?;
    assert_eq!(next(&client).await?, Event::Open(None));
    t.send_text("over tls");
    assert_eq!(next(&client).await?, Event::Text("over tls".into()));

    // The platform's roots do not know the test's CA: the connection fails before any
    // handshake.
    let rec = Recorder {
        events: DeferredQueue::new(),
        echo: false,
    };
    assert!(connect_websocket(&url, rec).await.is_err());
    t.close(1000, "");
    port.stop_listening().await
}
