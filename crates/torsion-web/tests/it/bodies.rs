//! Request bodies: a stalled body is closed after the body time-out (408), a large one is
//! spooled to a temporary file (removed once the request is done), and a `Content-Length`
//! over the limit is answered 413 before any of the body is sent.

use std::cell::RefCell;
use std::io::Read;
use std::path::PathBuf;
use std::rc::Rc;

use crate::support::{exchange, listen, status_line};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::testing::Clock;
use torsion::Failure;
use torsion_web::site::SiteConfig;
use torsion_web::{Render, Request, Resource, Site};

/// What a POST saw of its body.
#[derive(Default)]
struct Seen {
    len: u64,
    path: Option<PathBuf>,
    on_disk: bool,
    streamed: Vec<u8>,
    content_matches: bool,
}

/// Records what it saw of each POST body.
struct Upload(Rc<RefCell<Seen>>);

impl Resource for Upload {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["POST"]
    }
    fn render_post(&self, r: &Request) -> Render {
        let mut seen = self.0.borrow_mut();
        seen.len = r.body_len();
        seen.path = r.body_path();
        seen.on_disk = seen.path.as_ref().is_some_and(|p| p.is_file());
        let mut body = r.body().expect("the body opens");
        seen.on_disk &= body.is_file();
        seen.streamed.clear();
        body.read_to_end(&mut seen.streamed)
            .expect("the body reads");
        seen.content_matches = *r.content() == seen.streamed[..];
        format!("got {}", seen.len).into()
    }
}

#[torsion::test]
async fn a_stalled_body_is_closed_with_408_after_the_body_time_out() -> Result<(), Failure> {
    let clock = Clock::new();
    let config = SiteConfig {
        body_timeout: Some(1.0),
        ..SiteConfig::default()
    };
    let site = Site::with_config(Rc::new(Upload(Rc::default())), config);
    site.set_clock(clock.clone());
    let (port, addr) = listen(site);

    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
        .await?;
    // The body timer (1 s) replaces the idle one (60 s) once the server has read the bytes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !clock.pending_call_times().iter().any(|&t| t <= 1.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the body timer was never armed"
        );
        tokio::task::yield_now().await;
    }
    // A trickle restarts it: the time-out is between reads.
    clock.advance(0.9);
    s.write_all(b"def").await?;
    while !clock
        .pending_call_times()
        .iter()
        .any(|&t| t > 1.0 && t <= 1.9 + 1e-9)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the body timer did not restart"
        );
        tokio::task::yield_now().await;
    }
    clock.advance(0.9);
    // 1.8 s in, 0.9 s after the last read: the timer has not fired yet.
    assert!(
        clock.pending_call_times().iter().any(|&t| t > 1.8),
        "the body timer fired before its time"
    );
    clock.advance(0.2);
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn a_5_mb_upload_is_spooled_to_a_file_removed_after_the_request() -> Result<(), Failure> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let (port, addr) = listen(Site::with_config(
        Rc::new(Upload(seen.clone())),
        SiteConfig::default(),
    ));
    let body: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let out = exchange(addr, &request).await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK", "{out}");
    assert!(out.ends_with("got 5000000"), "{out}");
    let seen = std::mem::take(&mut *seen.borrow_mut());
    assert_eq!(seen.len, 5_000_000);
    assert!(seen.on_disk, "the body was not in a file");
    assert!(
        seen.streamed == body,
        "the handler did not see the whole body"
    );
    assert!(seen.content_matches);
    let path = seen.path.clone().unwrap();
    assert!(path.starts_with(std::env::temp_dir()), "{}", path.display());
    // The request is dropped once its response is out and the connection closed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the spool file was left behind"
        );
        tokio::task::yield_now().await;
    }
    drop(seen);
    port.stop_listening().await
}

#[torsion::test]
async fn a_small_body_stays_in_memory() -> Result<(), Failure> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let (port, addr) = listen(Site::new(Upload(seen.clone())));
    let out = exchange(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(out.ends_with("got 5"), "{out}");
    let seen = std::mem::take(&mut *seen.borrow_mut());
    assert!(seen.path.is_none() && !seen.on_disk);
    assert_eq!(seen.streamed, b"hello");
    drop(seen);
    port.stop_listening().await
}

#[torsion::test]
async fn a_length_over_the_default_limit_gets_413_before_the_body() -> Result<(), Failure> {
    assert_eq!(SiteConfig::default().max_body, 10 * 1024 * 1024);
    let (port, addr) = listen(Site::new(Upload(Rc::default())));
    // Only the head is sent, with Expect: 100-continue; the answer is 413 (no 100), and the
    // connection is closed without waiting for the 10 MiB.
    let out = exchange(
        addr,
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            10 * 1024 * 1024 + 1
        ),
    )
    .await;
    assert!(status_line(&out).starts_with("HTTP/1.1 413 "), "{out}");
    assert!(!out.contains("100 Continue"), "{out}");
    port.stop_listening().await
}

/// Reads one response whose body is an HTML error page (it ends with `</html>\n`).
async fn read_error_page(s: &mut TcpStream) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(b"</html>\n") {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[torsion::test]
async fn a_static_file_refuses_a_post_before_its_body_arrives() -> Result<(), Failure> {
    let dir = std::env::temp_dir().join(format!("torsion-bodies-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("f.txt"), "static")?;
    let (port, addr) = listen(Site::new(torsion_web::static_file::File::new(&dir)));

    // 10 bytes of a 5 MB body: the 405 comes without the rest.
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"POST /f.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n0123456789")
        .await?;
    let out = read_error_page(&mut s).await?;
    assert!(out.starts_with("HTTP/1.1 405 "), "{out}");
    assert!(
        out.contains("Allow: GET, HEAD") || out.to_ascii_lowercase().contains("allow: get, head"),
        "{out}"
    );
    // The rest of the body is read and dropped; the connection goes on.
    s.write_all(&vec![b'x'; 5_000_000 - 10]).await?;
    s.write_all(b"GET /f.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.starts_with("HTTP/1.1 200 OK") && rest.ends_with("static"),
        "{rest}"
    );

    // With Expect: 100-continue, no 100: the 405, and the connection closes.
    let out = exchange(
        addr,
        b"PUT /f.txt HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n",
    )
    .await;
    assert!(status_line(&out).starts_with("HTTP/1.1 405 "), "{out}");
    assert!(!out.contains("100 Continue"), "{out}");
    std::fs::remove_dir_all(&dir)?;
    port.stop_listening().await
}

#[torsion::test]
async fn after_a_body_answered_early_the_idle_time_out_runs() -> Result<(), Failure> {
    let dir = std::env::temp_dir().join(format!("torsion-bodies-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("f.txt"), "static")?;
    let clock = Clock::new();
    let site = Site::new(torsion_web::static_file::File::new(&dir));
    site.set_clock(clock.clone());
    let (port, addr) = listen(site);
    let mut s = TcpStream::connect(addr).await?;
    // One write: the head and its whole (dropped) body are read together.
    s.write_all(b"POST /f.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
        .await?;
    let out = read_error_page(&mut s).await?;
    assert!(out.starts_with("HTTP/1.1 405 "), "{out}");
    clock.advance(61.0);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    std::fs::remove_dir_all(&dir)?;
    port.stop_listening().await
}
