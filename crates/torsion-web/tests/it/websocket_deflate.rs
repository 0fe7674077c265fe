//! permessage-deflate (RFC 7692) between Torsion's client and server and against raw frames
//! (RSV1 on the wire, a decompression bomb, RSV1 where it is not allowed), and the client's
//! handshake timeouts on a test clock (the opening handshake, the closing one).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::mpsc;

use torsion::defer::DeferredQueue;
use torsion::reactor::ReactorTime;
use torsion::{reactor, Failure};
use torsion_web::proto::websocket::deflate::{client_accept, client_offer};
use torsion_web::proto::websocket::{
    accept_key, encode_close, encode_compressed_frame, encode_frame, Decoder, Message, Opcode, Role,
};
use torsion_web::websocket::{
    connect_websocket_with, ConnectOptions, DeflateOptions, HandshakeFailed, HandshakeTimeout,
    WsLimits,
};

use crate::websocket::{echo_server_with, frames_after_head, next, raw, Event, Recorder, UPGRADE};

fn limits(n: usize) -> WsLimits {
    WsLimits {
        max_frame: n,
        max_message: n,
    }
}

fn deflating() -> ConnectOptions {
    ConnectOptions {
        deflate: Some(DeflateOptions::default()),
        ..ConnectOptions::default()
    }
}

#[torsion::test]
async fn client_and_server_agree_on_deflate_and_messages_round_trip() -> Result<(), Failure> {
    let server_options = DeflateOptions {
        max_window_bits: 11,
        ..DeflateOptions::default()
    };
    let (port, n, server) = echo_server_with(limits(1 << 20), Some(server_options));
    let client = DeferredQueue::new();
    let rec = Recorder {
        events: client.clone(),
        echo: false,
    };
    let t = connect_websocket_with(&format!("ws://127.0.0.1:{n}/ws"), rec, deflating()).await?;
    let agreed = t.deflate().expect("deflate agreed");
    assert_eq!((agreed.own_window_bits, agreed.peer_window_bits), (15, 11));
    assert_eq!(next(&client).await?, Event::Open(None));
    assert_eq!(next(&server).await?, Event::Open(None));
    let text = "the same line again and again, héllo; ".repeat(200);
    for _ in 0..3 {
        t.send_text(&text);
        assert_eq!(next(&client).await?, Event::Text(text.clone()));
        assert_eq!(next(&server).await?, Event::Text(text.clone()));
    }
    let binary: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    t.send_binary(&binary);
    assert_eq!(next(&client).await?, Event::Binary(binary.clone()));
    t.send_text("short");
    assert_eq!(next(&client).await?, Event::Text("short".into()));
    t.close(1000, "");
    loop {
        if let Event::Closed(c) = next(&client).await? {
            assert!(c.clean, "{c:?}");
            break;
        }
    }
    // Without the extension on the server, the client's offer is ignored.
    let (port2, n2, _s) = echo_server_with(limits(1 << 20), None);
    let rec = Recorder {
        events: DeferredQueue::new(),
        echo: false,
    };
    let t = connect_websocket_with(&format!("ws://127.0.0.1:{n2}/ws"), rec, deflating()).await?;
    assert_eq!(t.deflate(), None);
    t.abort();
    port2.stop_listening().await?;
    port.stop_listening().await
}

/// The upgrade request offering permessage-deflate (the client's default offer).
fn upgrade_offering_deflate() -> String {
    UPGRADE.replace(
        "\r\n\r\n",
        &format!(
            "\r\nSec-WebSocket-Extensions: {}\r\n\r\n",
            client_offer(&DeflateOptions::default())
        ),
    )
}

/// A client's compressor and inflater for a server that answered `head`.
fn client_side(head: &str) -> torsion_web::proto::websocket::deflate::Agreed {
    let answer = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
        .expect("the 101 names the extension");
    client_accept(&DeflateOptions::default(), &[answer])
        .unwrap()
        .unwrap()
}

#[torsion::test]
async fn compressed_frames_carry_rsv1_and_a_bomb_is_closed_with_1009() -> Result<(), Failure> {
    let (port, n, _server) = echo_server_with(limits(1000), Some(DeflateOptions::default()));
    let agreed = torsion_web::proto::websocket::deflate::server_accept(
        &DeflateOptions::default(),
        &[&client_offer(&DeflateOptions::default())],
    )
    .unwrap()
    .1;
    // Twice the same message of numbers (deflate cannot do much with it alone): compressed
    // going and coming back, the second far smaller, as it refers to the first.
    let msg = (0..180u32)
        .map(|i| (i * 7919 % 10007).to_string())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(msg.len() < 1000);
    let mut c = agreed.compressor();
    let mut wire = Vec::new();
    for _ in 0..2 {
        let z = c.compress(msg.as_bytes()).unwrap();
        encode_compressed_frame(&mut wire, Opcode::Text, &z, Some([1, 2, 3, 4]));
    }
    encode_close(&mut wire, 1000, "", Some([1, 2, 3, 4]));
    let got = raw(n, &upgrade_offering_deflate(), &wire).await;
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        "{head}"
    );
    let frames = &got[end..];
    // (header length, payload length) of the frame at `at`.
    let frame = |at: usize| match frames[at + 1] & 0x7F {
        126 => (
            4,
            usize::from(u16::from_be_bytes([frames[at + 2], frames[at + 3]])),
        ),
        n => (2, usize::from(n)),
    };
    assert_eq!(frames[0], 0xC1, "a final text frame with RSV1");
    let (h1, first_len) = frame(0);
    assert!(
        first_len < msg.len(),
        "{} bytes compressed to {first_len}",
        msg.len()
    );
    assert_eq!(frames[h1 + first_len], 0xC1);
    let (_, second_len) = frame(h1 + first_len);
    assert!(
        second_len < first_len / 4,
        "the second message uses the first as context: {second_len} vs {first_len}"
    );
    let mut d = Decoder::new(Role::Client, WsLimits::default());
    d.set_inflater(Some(client_side(&head).inflater()));
    d.feed(frames);
    assert_eq!(d.next_message(), Ok(Some(Message::Text(msg.clone()))));
    assert_eq!(d.next_message(), Ok(Some(Message::Text(msg))));
    assert_eq!(
        d.next_message(),
        Ok(Some(Message::Close(Some(1000), String::new())))
    );

    // 512 KiB of zeros in a frame of about 500 bytes: refused as it inflates past 1000 bytes.
    let z = agreed.compressor().compress(&vec![0u8; 512 << 10]).unwrap();
    assert!(z.len() < 1000, "{}", z.len());
    let mut bomb = Vec::new();
    encode_compressed_frame(&mut bomb, Opcode::Binary, &z, Some([5, 6, 7, 8]));
    let (_, msgs) = frames_after_head(&raw(n, &upgrade_offering_deflate(), &bomb).await);
    assert!(
        matches!(&msgs[..], [Message::Close(Some(1009), _)]),
        "{msgs:?}"
    );

    // RSV1 on a ping, or on a continuation: 1002.
    for (fin, opcode) in [(true, Opcode::Ping), (false, Opcode::Continuation)] {
        let mut bad = Vec::new();
        if opcode == Opcode::Continuation {
            encode_frame(&mut bad, false, Opcode::Text, b"a", Some([0; 4]));
        }
        let mut frame = Vec::new();
        encode_frame(&mut frame, fin, opcode, b"x", Some([0; 4]));
        frame[0] |= 0x40;
        bad.extend_from_slice(&frame);
        let (_, msgs) = frames_after_head(&raw(n, &upgrade_offering_deflate(), &bad).await);
        assert!(
            matches!(&msgs[..], [Message::Close(Some(1002), _)]),
            "{opcode:?}: {msgs:?}"
        );
    }
    port.stop_listening().await
}

/// A one-connection server in a thread: it reads the upgrade request and answers it with a
/// 101 carrying `extra` headers (or not at all when `answer` is false), then reads until the
/// client closes. It says "request" when the request is in and "eof" when the client is gone.
fn fake_server(answer: bool, extra: &'static str) -> (u16, mpsc::Receiver<&'static str>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(k) => req.extend_from_slice(&buf[..k]),
            }
        }
        let text = String::from_utf8_lossy(&req).into_owned();
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap_or("")
            .to_owned();
        let _ = tx.send("request");
        if answer {
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
                accept_key(&key)
            );
            let _ = s.write_all(head.as_bytes());
        }
        while let Ok(k) = s.read(&mut buf) {
            if k == 0 {
                break;
            }
        }
        let _ = tx.send("eof");
    });
    (port, rx)
}

/// Waits (on the real reactor) for the fake server to say `what`.
async fn heard(rx: &mpsc::Receiver<&'static str>, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match rx.try_recv() {
            Ok(w) if w == what => return,
            Ok(_) => {}
            Err(_) => assert!(std::time::Instant::now() < deadline, "never heard {what}"),
        }
        let _ = torsion::task::defer_later(&reactor(), 0.01, || ()).await;
    }
}

#[torsion::test]
async fn a_server_that_never_answers_the_upgrade_times_out_on_the_clock() -> Result<(), Failure> {
    let (port, rx) = fake_server(false, "");
    let clock = torsion::testing::Clock::new();
    let options = ConnectOptions {
        timeout: 5.0,
        clock: Some(Rc::new(clock.clone()) as Rc<dyn ReactorTime>),
        ..ConnectOptions::default()
    };
    let rec = Recorder {
        events: DeferredQueue::new(),
        echo: false,
    };
    let d = connect_websocket_with(&format!("ws://127.0.0.1:{port}/"), rec, options);
    heard(&rx, "request").await;
    clock.advance(4.9);
    assert!(!d.called(), "fired before its time");
    clock.advance(0.2);
    assert!(d.called());
    let err = d.await.unwrap_err();
    let timeout = err
        .downcast_ref::<HandshakeTimeout>()
        .expect("a HandshakeTimeout");
    assert_eq!(
        timeout,
        &HandshakeTimeout {
            seconds: 5.0,
            connected: true
        }
    );
    assert_eq!(
        timeout.to_string(),
        "WebSocket handshake timed out after 5 s: the server did not answer the upgrade"
    );
    // The connection was closed.
    heard(&rx, "eof").await;
    Ok(())
}

#[torsion::test]
async fn a_close_the_server_never_answers_times_out_on_the_clock() -> Result<(), Failure> {
    let (port, rx) = fake_server(true, "");
    let clock = torsion::testing::Clock::new();
    let options = ConnectOptions {
        clock: Some(Rc::new(clock.clone()) as Rc<dyn ReactorTime>),
        ..ConnectOptions::default()
    };
    let events = DeferredQueue::new();
    let rec = Recorder {
        events: events.clone(),
        echo: false,
    };
    let t = connect_websocket_with(&format!("ws://127.0.0.1:{port}/"), rec, options).await?;
    assert_eq!(next(&events).await?, Event::Open(None));
    // The opening handshake's timer is gone: the clock passing 30 s ends nothing.
    clock.advance(60.0);
    t.close(1000, "bye");
    clock.advance(9.9);
    let first = events.get().map_err(Failure::new)?;
    assert!(!first.called(), "closed before the close timeout");
    clock.advance(0.2);
    let Event::Closed(c) = first.await? else {
        panic!("expected the close")
    };
    assert_eq!(
        (c.code, c.sent, c.clean, c.timed_out),
        (1006, Some(1000), false, true)
    );
    heard(&rx, "eof").await;
    Ok(())
}

#[torsion::test]
async fn an_extension_the_client_did_not_offer_fails_the_handshake() -> Result<(), Failure> {
    let (port, _rx) = fake_server(true, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    let rec = Recorder {
        events: DeferredQueue::new(),
        echo: false,
    };
    let err = connect_websocket_with(
        &format!("ws://127.0.0.1:{port}/"),
        rec,
        ConnectOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.check::<HandshakeFailed>(), "{err:?}");
    assert!(err.to_string().contains("none was offered"), "{err}");
    // Asked for an 8-bit window, which zlib cannot keep to: refused too.
    let (port, _rx) = fake_server(
        true,
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=8\r\n",
    );
    let rec = Recorder {
        events: DeferredQueue::new(),
        echo: false,
    };
    let err = connect_websocket_with(&format!("ws://127.0.0.1:{port}/"), rec, deflating())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("8-bit window"), "{err}");
    Ok(())
}
