//! Writing to or finishing a response that can take nothing more. Twisted raises
//! `RuntimeError` for a write after `finish` and for a `finish` after the client left, and
//! warns on a second `finish`; Torsion drops the call and logs a warning naming the request
//! (`try_write` and `try_finish` return the error instead), and, as Twisted, drops a write
//! after the client left without a word. docs/design.md ("Writing to a finished request
//! logs instead of raising") says why.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::support::{exchange, listen};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::defer::DeferredQueue;
use torsion::Failure;
use torsion_web::request::ResponseClosed;
use torsion_web::site::SiteConfig;
use torsion_web::{Render, Request, Resource, Site};

/// This thread's log output, captured.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn start(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Finishes, then writes and finishes again; records what the `try_` forms said.
#[derive(Default)]
struct FinishesTwice {
    said: RefCell<Vec<Result<(), ResponseClosed>>>,
}

impl Resource for FinishesTwice {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        r.write(b"body");
        r.finish();
        r.write(b" late");
        r.finish();
        let mut said = self.said.borrow_mut();
        said.push(r.try_write(b" later"));
        said.push(r.try_finish());
        Render::NotDoneYet
    }
}

#[torsion::test]
async fn write_and_finish_after_finish_are_dropped_with_a_warning() -> Result<(), Failure> {
    let log = Log::default();
    let _guard = log.start();
    let resource = Rc::new(FinishesTwice::default());
    let (port, addr) = listen(Site::with_config(resource.clone(), SiteConfig::default()));
    let out = exchange(
        addr,
        b"GET /twice HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    port.stop_listening().await?;
    // Chunked: the body went out before the end was known.
    assert!(out.ends_with("\r\n\r\n4\r\nbody\r\n0\r\n\r\n"), "{out}");
    assert_eq!(
        *resource.said.borrow(),
        vec![Err(ResponseClosed::Finished), Err(ResponseClosed::Finished)]
    );
    let text = log.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 2, "{text}");
    assert!(
        warnings[0].contains("GET /twice from tcp:127.0.0.1:")
            && warnings[0].contains("write called after finish"),
        "{text}"
    );
    assert!(warnings[1].contains("finish called twice"), "{text}");
    Ok(())
}

/// Keeps the request, and reports when its client leaves.
#[derive(Default)]
struct Held {
    request: RefCell<Option<Request>>,
    gone: Rc<DeferredQueue<()>>,
}

impl Resource for Held {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Render {
        r.write(b"first");
        let gone = self.gone.clone();
        r.notify_finish().add_errback(move |_| {
            gone.put(()).unwrap();
            Ok(())
        });
        *self.request.borrow_mut() = Some(r.clone());
        Render::NotDoneYet
    }
}

#[torsion::test]
async fn after_the_client_left_a_write_is_silent_and_finish_warns() -> Result<(), Failure> {
    let log = Log::default();
    let _guard = log.start();
    let held = Rc::new(Held::default());
    let (port, addr) = listen(Site::with_config(held.clone(), SiteConfig::default()));
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await?; // the head has started arriving
    drop(s);
    held.gone.get().unwrap().await?;
    let r = held.request.borrow_mut().take().expect("the request");
    assert!(r.lost());
    // As in Twisted: a write to a client that left is dropped quietly.
    r.write(b"nobody reads this");
    assert!(!log.text().contains("WARN"), "{}", log.text());
    assert_eq!(r.try_write(b"nor this"), Err(ResponseClosed::Lost));
    // Twisted raises here; Torsion warns, and the request counts as finished.
    r.finish();
    assert!(r.finished());
    assert_eq!(r.try_finish(), Err(ResponseClosed::Finished));
    port.stop_listening().await?;
    let text = log.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains("GET /poll") && warnings[0].contains("after the client went away"),
        "{text}"
    );
    Ok(())
}
