//! Streaming response bodies: `Response::stream` (a reader taking pieces, with the connection
//! paused while it is behind) and `Response::deliver_body` (Twisted's `deliverBody`: a
//! protocol gets the pieces, then `ResponseDone` or `PotentialDataLoss`). The large download
//! is a 200 MB sparse file served by torsion-web's own `File`; memory is checked by the
//! stream's counter of bytes held, not by timing.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use torsion::task::defer_later;
use torsion::{factory, reactor, Failure, Protocol, Transport};
use torsion_web::client::{
    read_body, Agent, BodyProducer, BodyProtocol, BodyTooLarge, PotentialDataLoss, ResponseDone,
    ResponseFailed, BODY_HIGH_WATER,
};
use torsion_web::resources::Data;
use torsion_web::static_file::File;
use torsion_web::{Resource, Site};

/// 200 MB.
const BIG: u64 = 200 * 1000 * 1000;

/// One read of a connection: what may still arrive after it was paused.
const ONE_READ: usize = 64 * 1024;

/// A sparse file of `len` bytes (zeros, no disk used) in a folder of its own, removed when
/// dropped.
struct Sparse(PathBuf);

impl Sparse {
    fn new(len: u64) -> Sparse {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "torsion-stream-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let f = std::fs::File::create(dir.join("big.bin")).unwrap();
        f.set_len(len).unwrap();
        Sparse(dir)
    }
}

impl Drop for Sparse {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn serve(resource: impl Resource + 'static) -> (torsion::tcp::ListeningPort, u16) {
    let port = reactor()
        .listen_tcp_on(0, Site::new(resource), "127.0.0.1")
        .unwrap();
    let n = port.get_host().port().unwrap();
    (port, n)
}

/// Lets the reactor run for `seconds`.
async fn pause(seconds: f64) -> Result<(), Failure> {
    defer_later(&reactor(), seconds, || ()).await
}

/// Waits (polling, with a deadline) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) -> Result<(), Failure> {
    for _ in 0..2000 {
        if cond() {
            return Ok(());
        }
        pause(0.005).await?;
    }
    panic!("timed out waiting until {what}");
}

#[torsion::test(timeout = 300)]
async fn a_200_mb_download_is_read_with_bounded_memory() -> Result<(), Failure> {
    let file = Sparse::new(BIG);
    let (port, n) = serve(File::new(&file.0));
    // The default body limit (100 MiB) is for read_body; a stream has none.
    let agent = Agent::new();
    let response = agent.get(&format!("http://127.0.0.1:{n}/big.bin")).await?;
    assert_eq!(response.length(), Some(BIG));
    let body = response.stream();
    // Nobody reads: the connection fills the stream up to the high watermark and stops.
    until("the stream holds a full window", || {
        body.buffered() > BODY_HIGH_WATER
    })
    .await?;
    let held = body.buffered();
    for _ in 0..20 {
        pause(0.005).await?;
        assert_eq!(
            body.buffered(),
            held,
            "the connection kept reading while paused"
        );
    }
    assert!(held <= BODY_HIGH_WATER + ONE_READ, "{held}");
    // Now read it all, a piece at a time.
    let (mut total, mut chunks) = (0u64, 0u64);
    while let Some(chunk) = body.next_chunk().await? {
        assert!(chunk.iter().all(|&b| b == 0));
        total += chunk.len() as u64;
        chunks += 1;
    }
    assert_eq!(total, BIG);
    assert!(chunks > 1000, "{chunks}");
    let peak = body.peak_buffered();
    assert!(peak <= BODY_HIGH_WATER + ONE_READ, "peak {peak} bytes held");
    assert_eq!(body.buffered(), 0);
    assert!(!body.potential_data_loss());
    // The connection is back in the pool, reading again (a paused one would hang here).
    drop(body);
    let again = agent.get(&format!("http://127.0.0.1:{n}/missing")).await?;
    assert_eq!(again.code, 404);
    drop(read_body(again).await?);
    assert_eq!(agent.pool().idle_connections(), 1);
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn read_body_keeps_its_limit_and_a_stream_has_none() -> Result<(), Failure> {
    let (port, n) = serve(Data::new("x".repeat(10_000), "text/plain"));
    let url = format!("http://127.0.0.1:{n}/");
    let agent = Agent::new().with_max_body(1000);
    let f = read_body(agent.get(&url).await?).await.unwrap_err();
    assert_eq!(f.trap::<BodyTooLarge>().unwrap().limit, 1000);
    let body = agent.get(&url).await?.stream();
    let mut got = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, "x".repeat(10_000).as_bytes());
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

/// What a [`BodyProtocol`] saw.
#[derive(Default)]
struct Seen {
    data: Vec<u8>,
    chunks: usize,
    end: Option<Failure>,
    /// Bytes that arrived while the protocol had the producer paused.
    while_paused: usize,
}

/// What a [`Collector`] does at the first piece.
#[derive(Clone, Copy, PartialEq)]
enum AtFirst {
    /// Nothing.
    Go,
    /// Pauses the producer, and resumes it a little later.
    Pause,
    /// Stops the producer.
    Stop,
}

/// Gathers a body, doing `at_first` at its first piece.
struct Collector {
    seen: Rc<RefCell<Seen>>,
    producer: Option<BodyProducer>,
    paused: Rc<Cell<bool>>,
    at_first: AtFirst,
}

impl Collector {
    fn new(seen: &Rc<RefCell<Seen>>, at_first: AtFirst) -> Collector {
        Collector {
            seen: seen.clone(),
            producer: None,
            paused: Rc::default(),
            at_first,
        }
    }
}

impl BodyProtocol for Collector {
    fn connection_made(&mut self, producer: BodyProducer) {
        self.producer = Some(producer);
    }

    fn data_received(&mut self, data: &[u8]) {
        let mut seen = self.seen.borrow_mut();
        if self.paused.get() {
            seen.while_paused += data.len();
        }
        seen.data.extend_from_slice(data);
        seen.chunks += 1;
        if seen.chunks > 1 {
            return;
        }
        let producer = self.producer.clone().unwrap();
        match self.at_first {
            AtFirst::Go => {}
            AtFirst::Stop => producer.stop_producing(),
            AtFirst::Pause => {
                producer.pause_producing();
                self.paused.set(true);
                let paused = self.paused.clone();
                reactor().call_later(0.05, move || {
                    paused.set(false);
                    producer.resume_producing();
                });
            }
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.seen.borrow_mut().end = Some(reason);
    }
}

#[torsion::test(timeout = 120)]
async fn deliver_body_gives_the_pieces_then_response_done() -> Result<(), Failure> {
    let file = Sparse::new(5_000_000);
    let (port, n) = serve(File::new(&file.0));
    let agent = Agent::new();
    let seen = Rc::new(RefCell::new(Seen::default()));
    agent
        .get(&format!("http://127.0.0.1:{n}/big.bin"))
        .await?
        .deliver_body(Collector::new(&seen, AtFirst::Pause));
    until("the body ended", || seen.borrow().end.is_some()).await?;
    {
        let s = seen.borrow();
        assert_eq!(s.data.len(), 5_000_000);
        assert!(s.chunks > 1);
        assert!(s.end.as_ref().unwrap().check::<ResponseDone>());
        // Paused: at most what the connection had already read arrives meanwhile. That is
        // what it held before `deliver_body` was called (up to its window, `BODY_HIGH_WATER`,
        // which a server sending by sendfile fills at once) and one read more.
        assert!(
            s.while_paused <= BODY_HIGH_WATER + ONE_READ,
            "{}",
            s.while_paused
        );
    }
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test]
async fn stopping_the_producer_fails_the_body() -> Result<(), Failure> {
    let file = Sparse::new(5_000_000);
    let (port, n) = serve(File::new(&file.0));
    let agent = Agent::new();
    let seen = Rc::new(RefCell::new(Seen::default()));
    agent
        .get(&format!("http://127.0.0.1:{n}/big.bin"))
        .await?
        .deliver_body(Collector::new(&seen, AtFirst::Stop));
    until("the body ended", || seen.borrow().end.is_some()).await?;
    let end = seen.borrow_mut().end.take().unwrap();
    assert!(end.check::<ResponseFailed>(), "{end}");
    assert!(seen.borrow().data.len() < 5_000_000);
    agent.close_cached_connections().await?;
    port.stop_listening().await
}

/// Answers any request with an HTTP/1.0 body that ends when the connection does.
struct UntilClose;

impl Protocol for UntilClose {
    fn data_received(&mut self, t: &Transport, _data: &[u8]) {
        t.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it");
        t.lose_connection();
    }
}

#[torsion::test]
async fn a_body_ending_with_the_connection_is_potential_data_loss() -> Result<(), Failure> {
    let port = reactor().listen_tcp_on(0, factory(|| UntilClose), "127.0.0.1")?;
    let url = format!("http://127.0.0.1:{}/", port.get_host().port().unwrap());
    let agent = Agent::new();
    let seen = Rc::new(RefCell::new(Seen::default()));
    agent
        .get(&url)
        .await?
        .deliver_body(Collector::new(&seen, AtFirst::Go));
    until("the body ended", || seen.borrow().end.is_some()).await?;
    let end = seen.borrow_mut().end.take().unwrap();
    assert!(end.check::<PotentialDataLoss>(), "{end}");
    assert_eq!(seen.borrow().data, b"all of it");
    // The stream says so too; read_body accepts such a body as it always has.
    let body = agent.get(&url).await?.stream();
    assert_eq!(body.next_chunk().await?.as_deref(), Some(&b"all of it"[..]));
    assert_eq!(body.next_chunk().await?, None);
    assert!(body.potential_data_loss());
    assert_eq!(read_body(agent.get(&url).await?).await?, b"all of it");
    port.stop_listening().await
}

#[torsion::test]
async fn a_paused_stream_does_not_hit_the_idle_time_out() -> Result<(), Failure> {
    let file = Sparse::new(2_000_000);
    let (port, n) = serve(File::new(&file.0));
    let agent = Agent::new().with_idle_timeout(Some(0.1));
    let body = agent
        .get(&format!("http://127.0.0.1:{n}/big.bin"))
        .await?
        .stream();
    until("the stream holds a full window", || {
        body.buffered() > BODY_HIGH_WATER
    })
    .await?;
    // Paused for three idle time-outs: the connection is not the server's fault.
    pause(0.3).await?;
    let mut total = 0;
    while let Some(chunk) = body.next_chunk().await? {
        total += chunk.len();
    }
    assert_eq!(total, 2_000_000);
    agent.close_cached_connections().await?;
    port.stop_listening().await
}
