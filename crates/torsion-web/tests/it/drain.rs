//! A graceful stop of the HTTP server (`ListeningPort::drain`): an idle keep-alive
//! connection closes at once, a connection in the middle of a response finishes it (its
//! body complete, `Connection: close` where the head was not out yet) and then closes, and
//! the drain fires once both are gone, long before its deadline.

use std::cell::RefCell;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::{reactor, Failure};
use torsion_web::resources::{Data, Directory};
use torsion_web::site::SiteConfig;
use torsion_web::{Render, Request, Resource, Site};

/// Starts a chunked response and leaves it for the test to finish.
#[derive(Default)]
struct Slow {
    waiting: RefCell<Vec<Request>>,
}

impl Resource for Slow {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        r.write(b"first ");
        self.waiting.borrow_mut().push(r.clone());
        Render::NotDoneYet
    }
}

/// Reads one response head (up to the blank line).
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

#[torsion::test(timeout = 10)]
async fn idle_connections_close_at_once_and_busy_ones_after_their_response() -> Result<(), Failure>
{
    let slow = Rc::new(Slow::default());
    let root = Directory::new();
    root.put_child(b"fast", Rc::new(Data::new("fast", "text/plain")));
    root.put_child(b"slow", slow.clone());
    let port = reactor().listen_tcp_on(0, Site::new(root), "127.0.0.1")?;
    let addr = port.get_host().socket_addr().unwrap();

    // An idle keep-alive connection: one answered request, then nothing.
    let mut idle = TcpStream::connect(addr).await?;
    idle.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let head = read_head(&mut idle).await;
    assert!(
        head.contains("keep-alive") || !head.contains("close"),
        "{head}"
    );
    let mut body = [0u8; 4];
    idle.read_exact(&mut body).await?;

    // A busy connection: its response has started and is not finished.
    let mut busy = TcpStream::connect(addr).await?;
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let head = read_head(&mut busy).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    while slow.waiting.borrow().is_empty() {
        tokio::task::yield_now().await;
    }

    let started = reactor().seconds();
    let drained = port.drain(30.0);

    // The idle one is closed at once.
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).await?;
    assert!(rest.is_empty(), "{rest:?}");
    assert!(!drained.called(), "the busy connection is still there");

    // The busy one gets the rest of its response, complete, then the close.
    for r in slow.waiting.borrow_mut().drain(..) {
        r.write(b"second");
        r.finish();
    }
    let mut rest = Vec::new();
    busy.read_to_end(&mut rest).await?;
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.ends_with("6\r\nsecond\r\n0\r\n\r\n"), "{rest:?}");

    drained.await?;
    assert!(reactor().seconds() - started < 5.0);
    assert_eq!(port.connection_count(), 0);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_request_whose_head_is_not_out_yet_is_answered_with_connection_close(
) -> Result<(), Failure> {
    /// Answers later, without writing anything first.
    #[derive(Default)]
    struct Later {
        waiting: RefCell<Vec<Request>>,
    }
    impl Resource for Later {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, r: &Request) -> Render {
            self.waiting.borrow_mut().push(r.clone());
            Render::NotDoneYet
        }
    }
    let later = Rc::new(Later::default());
    let port = reactor().listen_tcp_on(
        0,
        Site::with_config(later.clone(), SiteConfig::default()),
        "127.0.0.1",
    )?;
    let addr = port.get_host().socket_addr().unwrap();
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    while later.waiting.borrow().is_empty() {
        tokio::task::yield_now().await;
    }
    let drained = port.drain(30.0);
    // The channel hears the drain on its connection's own task: let that task run.
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    for r in later.waiting.borrow_mut().drain(..) {
        r.set_header("Content-Length", "4");
        r.write(b"done");
        r.finish();
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\ndone"), "{out}");
    drained.await?;
    Ok(())
}
