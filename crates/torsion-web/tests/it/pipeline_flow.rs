//! Flow control of pipelined requests: a client that pipelines requests and never reads the
//! responses makes the server stop parsing (and reading) once its write buffer is full,
//! instead of holding every response in memory; requests held back are answered, in order,
//! once the client reads, even if no more bytes arrive.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::support::{exchange, listen, status_line};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::{reactor, Failure};
use torsion_web::resources::Directory;
use torsion_web::site::SiteConfig;
use torsion_web::{Render, Request, Resource, Site};

/// The size of every response body of [`Big`].
const BODY: usize = 64 * 1024;

/// Answers `/big/<n>` with 64 KiB that start with `<n>\n`, and counts its renders.
struct Big {
    renders: Rc<Cell<usize>>,
}

impl Resource for Big {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        self.renders.set(self.renders.get() + 1);
        let mut body = r.postpath().concat();
        body.push(b'\n');
        body.resize(BODY, b'x');
        body.into()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads `n` responses of [`Big`] from `s`, checking each is whole and answers `/big/<i>`
/// in order.
async fn read_responses(s: &mut tokio::net::tcp::OwnedReadHalf, n: usize) -> Result<(), Failure> {
    let mut buf: Vec<u8> = Vec::with_capacity(4 * BODY);
    let mut start = 0;
    let mut chunk = vec![0u8; 256 * 1024];
    for i in 0..n {
        let head_end = loop {
            if let Some(p) = find(&buf[start..], b"\r\n\r\n") {
                break start + p + 4;
            }
            let got = s.read(&mut chunk).await?;
            assert!(got > 0, "the server closed after {i} responses");
            buf.extend_from_slice(&chunk[..got]);
        };
        let head = String::from_utf8_lossy(&buf[start..head_end]).to_ascii_lowercase();
        assert_eq!(
            status_line(&head),
            "http/1.1 200 ok",
            "response {i}: {head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {BODY}\r\n")),
            "response {i}: {head}"
        );
        while buf.len() < head_end + BODY {
            let got = s.read(&mut chunk).await?;
            assert!(got > 0, "the server closed inside response {i}");
            buf.extend_from_slice(&chunk[..got]);
        }
        let body = &buf[head_end..head_end + BODY];
        let tag = format!("{i}\n");
        assert!(
            body.starts_with(tag.as_bytes()),
            "response {i} out of order: {:?}",
            String::from_utf8_lossy(&body[..16])
        );
        assert!(
            body[tag.len()..].iter().all(|&b| b == b'x'),
            "response {i} damaged"
        );
        start = head_end + BODY;
        if start > 1024 * 1024 {
            buf.drain(..start);
            start = 0;
        }
    }
    assert_eq!(buf.len(), start, "nothing after the last response");
    Ok(())
}

#[torsion::test]
async fn a_client_that_pipelines_and_never_reads_is_not_read_past_the_write_buffer(
) -> Result<(), Failure> {
    const N: usize = 5000;
    let renders = Rc::new(Cell::new(0));
    let root = Directory::new();
    root.put_child(
        b"big",
        Rc::new(Big {
            renders: renders.clone(),
        }),
    );
    let (port, addr) = listen(Site::new(root));

    // Each request is padded to about 15 KB, so that the N of them (75 MB) are far more than
    // the kernel's socket buffers can hold: the client can only send them all if the server
    // reads them.
    let pad = "p".repeat(15_000);
    let requests: Vec<u8> = (0..N)
        .flat_map(|i| {
            format!("GET /big/{i} HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n").into_bytes()
        })
        .collect();
    let c1 = TcpStream::connect(addr).await?;
    let (mut rd, mut wr) = c1.into_split();
    let mut written = 0;
    let mut served_others = 0;
    let mut unchanged = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    // Send what the connection takes, until neither it nor the renders move for three rounds
    // in which another client was served (so the server's loop ran meanwhile).
    while unchanged < 3 {
        let before = (written, renders.get() - served_others);
        loop {
            match wr.try_write(&requests[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
            assert!(
                written < requests.len(),
                "the server read all {N} requests while none of their responses was read"
            );
        }
        // A well-behaved client is served meanwhile.
        let out = exchange(
            addr,
            b"GET /big/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        served_others += 1;
        assert_eq!(status_line(&out), "HTTP/1.1 200 OK");
        assert!(
            out.contains("\r\n\r\n7\nxxx"),
            "{}",
            &out[..200.min(out.len())]
        );
        if (written, renders.get() - served_others) == before {
            unchanged += 1;
        } else {
            unchanged = 0;
        }
        assert!(
            Instant::now() < deadline,
            "the server went on reading: {written} bytes taken"
        );
    }
    // What the server rendered for the client that does not read is what the kernel's socket
    // buffers and the write buffer's high watermark hold (a few MB), not all N responses
    // (330 MB): the rest of the requests wait unparsed, and unread.
    let rendered = renders.get() - served_others;
    assert!(
        rendered < N / 5,
        "{rendered} of {N} responses rendered for a client that reads none"
    );
    assert!(written < requests.len() / 2, "{written} bytes taken");

    // Now the client reads: every response comes, whole and in order, as the rest of the
    // requests are sent.
    let rest = &requests[written..];
    let mut send = std::pin::pin!(wr.write_all(rest));
    let mut read = std::pin::pin!(read_responses(&mut rd, N));
    let (mut sent, mut got) = (None, None);
    std::future::poll_fn(|cx| {
        if sent.is_none() {
            if let Poll::Ready(r) = send.as_mut().poll(cx) {
                sent = Some(r);
            }
        }
        if got.is_none() {
            if let Poll::Ready(r) = read.as_mut().poll(cx) {
                got = Some(r);
            }
        }
        if sent.is_some() && got.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    sent.expect("sent")?;
    got.expect("read")?;
    assert_eq!(renders.get() - served_others, N);
    port.stop_listening().await
}

/// Answers after a turn of the reactor.
struct Deferred;

impl Resource for Deferred {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        let path = String::from_utf8_lossy(r.path()).into_owned();
        Render::future(async move {
            torsion::task::defer_later(&reactor(), 0.0, || ()).await?;
            Ok::<_, Failure>(path.into_bytes())
        })
    }
}

#[torsion::test]
async fn requests_held_back_by_the_pipeline_limit_are_answered_with_no_more_bytes_coming(
) -> Result<(), Failure> {
    // Twelve requests in one write, on a site that renders at most two at once: the ten held
    // back are parsed as the responses go out, though nothing more arrives to wake the reader.
    let config = SiteConfig {
        max_pipeline: 2,
        ..SiteConfig::default()
    };
    let (port, addr) = listen(Site::with_config(Rc::new(Deferred), config));
    let mut wire = String::new();
    for i in 0..12 {
        wire.push_str(&format!("GET /r{i} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(wire.as_bytes()).await?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&out).ends_with("/r11") {
        let n = s.read(&mut chunk).await?;
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&chunk[..n]);
    }
    let out = String::from_utf8_lossy(&out);
    let mut at = 0;
    for i in 0..12 {
        let body = format!("\r\n\r\n/r{i}");
        let p = out[at..]
            .find(&body)
            .unwrap_or_else(|| panic!("/r{i} in order: {out}"));
        at += p + body.len();
    }
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 12, "{out}");
    port.stop_listening().await
}
