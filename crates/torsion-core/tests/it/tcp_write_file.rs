//! `Transport::write_file`: a part of an open file queued on a TCP connection goes out by
//! `sendfile(2)` (counted by `transport::file_bytes_sent`, which each test reads before and
//! after on its own reactor's thread), whole and in order with the bytes written around it,
//! at every size; a slow reader is served without the file's bytes in memory (the write limit
//! does not count them) while flow control sees them; a file that shrinks under the send
//! closes the connection instead of hanging; TLS refuses it and the caller's fallback sends
//! the same bytes.

use std::cell::{Cell, RefCell};
use std::fs;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::support::next;
use torsion::defer::DeferredQueue;
use torsion::error::ConnectionDone;
use torsion::producer::Producer;
use torsion::threads::defer_to_thread;
use torsion::transport::{file_bytes_sent, FileSegment, WritePolicy};
use torsion::{factory, reactor, ConnectionEnd, Failure, Protocol, Transport};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// `len` bytes that no shifted copy of themselves matches.
fn content(len: u64) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// A file in the temporary folder, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, data: &[u8]) -> TempFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "torsion-write-file-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::write(&path, data).unwrap();
        TempFile(path)
    }

    fn open(&self) -> Rc<fs::File> {
        Rc::new(fs::File::open(&self.0).unwrap())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// What the server writes: bytes, or `len` bytes of the file from `offset`.
#[derive(Clone)]
enum Step {
    Bytes(Vec<u8>),
    File(u64, u64),
}

/// The bytes `steps` put on the wire.
fn expected(steps: &[Step], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in steps {
        match s {
            Step::Bytes(b) => out.extend_from_slice(b),
            Step::File(o, n) => out.extend_from_slice(&data[*o as usize..(*o + *n) as usize]),
        }
    }
    out
}

/// How a server connection ended.
#[derive(Default)]
struct Ended {
    reason: RefCell<Option<Failure>>,
    done: DeferredQueue<()>,
}

impl Ended {
    fn lost(&self, reason: ConnectionEnd) {
        *self.reason.borrow_mut() = Some(reason.into());
        self.done.put(()).unwrap();
    }

    fn reason(&self) -> Failure {
        self.reason
            .borrow_mut()
            .take()
            .expect("connection_lost ran")
    }
}

fn play(t: &Transport, file: &Rc<fs::File>, steps: &[Step]) {
    for s in steps {
        match s {
            Step::Bytes(b) => t.write(b),
            Step::File(o, n) => t
                .write_file(FileSegment::new(file.clone(), *o, *n))
                .expect("a TCP transport sends files"),
        }
    }
}

/// Writes `now` in `connection_made`, `later` from outside the connection's callbacks (a
/// timer), then closes.
struct Player {
    file: Rc<fs::File>,
    now: Rc<Vec<Step>>,
    later: Rc<Vec<Step>>,
    ended: Rc<Ended>,
}

impl Protocol for Player {
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_made(&mut self, t: &Transport) {
        play(t, &self.file, &self.now);
        if self.later.is_empty() {
            t.lose_connection();
            return;
        }
        let (t, file, later) = (t.clone(), self.file.clone(), self.later.clone());
        reactor().call_later(0.0, move || {
            play(&t, &file, &later);
            t.lose_connection();
        });
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.ended.lost(reason);
    }
}

/// Connects, reads to the end (a reset ends the reading too) and returns what came.
fn read_all(addr: SocketAddr) -> io::Result<Vec<u8>> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(out),
        Err(e) => Err(e),
    }
}

/// Serves one connection that plays `now` then `later`; what the client read and how the
/// server's side ended.
async fn serve(
    file: &TempFile,
    now: Vec<Step>,
    later: Vec<Step>,
) -> Result<(Vec<u8>, Failure), Failure> {
    let ended: Rc<Ended> = Rc::default();
    let (e, f) = (ended.clone(), file.open());
    let (now, later) = (Rc::new(now), Rc::new(later));
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Player {
            file: f.clone(),
            now: now.clone(),
            later: later.clone(),
            ended: e.clone(),
        }),
        "127.0.0.1",
    )?;
    let addr = port.get_host().socket_addr().unwrap();
    let got = defer_to_thread(move || read_all(addr)).await??;
    next(&ended.done).await;
    port.stop_listening().await?;
    Ok((got, ended.reason()))
}

#[torsion::test(timeout = 60)]
async fn segments_of_every_size_arrive_whole_by_sendfile() -> Result<(), Failure> {
    let data = content(16 * MIB + 1);
    let file = TempFile::new("sizes", &data);
    let cases = [
        (0, 0),
        (0, 1),
        (0, 64 * KIB),
        (0, MIB + 1),
        (0, 16 * MIB),
        (1, 16 * MIB),
        // A range in the middle.
        (5 * MIB + 3, 3 * MIB + 7),
    ];
    for (offset, len) in cases {
        let steps = vec![
            Step::Bytes(b"head\r\n".to_vec()),
            Step::File(offset, len),
            Step::Bytes(b"\r\ntail".to_vec()),
        ];
        let before = file_bytes_sent();
        let (got, reason) = serve(&file, steps.clone(), Vec::new()).await?;
        let want = expected(&steps, &data);
        assert_eq!(got.len(), want.len(), "{len} bytes from {offset}");
        assert!(got == want, "{len} bytes from {offset}: the bytes differ");
        assert!(reason.check::<ConnectionDone>(), "{reason}");
        assert_eq!(
            file_bytes_sent() - before,
            len,
            "{len} bytes from {offset}: all of it by sendfile"
        );
    }
    Ok(())
}

#[torsion::test(timeout = 60)]
async fn writes_before_between_and_after_segments_keep_their_order() -> Result<(), Failure> {
    let data = content(4 * MIB);
    let file = TempFile::new("order", &data);
    // In a callback: small writes (gathered), a large one (sent at once), segments back to
    // back; then from a timer, outside any callback, while the segments may still be going.
    let now = vec![
        Step::Bytes(b"a".to_vec()),
        Step::File(0, 10),
        Step::Bytes(b"b".to_vec()),
        Step::File(MIB, 2 * MIB),
        Step::File(7, 3),
        Step::Bytes(content(100 * KIB)),
        Step::File(3 * MIB, MIB),
        Step::Bytes(b"c".to_vec()),
    ];
    let later = vec![
        Step::Bytes(b"d".to_vec()),
        Step::File(100, 200 * KIB),
        Step::Bytes(content(64 * KIB)),
        Step::File(0, MIB),
        Step::Bytes(b"e".to_vec()),
    ];
    let before = file_bytes_sent();
    let (got, reason) = serve(&file, now.clone(), later.clone()).await?;
    let mut want = expected(&now, &data);
    want.extend_from_slice(&expected(&later, &data));
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the bytes came out of order");
    assert!(reason.check::<ConnectionDone>(), "{reason}");
    let segments = 10 + 2 * MIB + 3 + MIB + 200 * KIB + MIB;
    assert_eq!(file_bytes_sent() - before, segments);
    Ok(())
}

/// Queues a head, 16 MiB of the file and a tail when first asked, under a write limit far
/// below the file's size, and notes what `buffered_size` says at each call.
struct Pull {
    t: Transport,
    file: Rc<fs::File>,
    calls: RefCell<Vec<usize>>,
    queued: Cell<usize>,
}

impl Producer for Pull {
    fn resume_producing(&self) {
        self.calls.borrow_mut().push(self.t.buffered_size());
        if self.calls.borrow().len() == 1 {
            self.t.write(b"head");
            let segment = FileSegment::new(self.file.clone(), 0, 16 * MIB);
            self.t.write_file(segment).unwrap();
            // Held in memory with the 4 bytes above: under the limit, though the unsent
            // bytes, counting the segment's, are far over it.
            self.t.write(&[b't'; 32 * 1024]);
            self.queued.set(self.t.buffered_size());
        } else {
            self.t.unregister_producer();
            self.t.lose_connection();
        }
    }

    fn stop_producing(&self) {}
}

struct PullServer {
    file: Rc<fs::File>,
    producer: Rc<RefCell<Option<Rc<Pull>>>>,
    ended: Rc<Ended>,
}

impl Protocol for PullServer {
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_made(&mut self, t: &Transport) {
        t.set_write_limit(64 * 1024, WritePolicy::Disconnect);
        let p = Rc::new(Pull {
            t: t.clone(),
            file: self.file.clone(),
            calls: RefCell::default(),
            queued: Cell::new(0),
        });
        t.register_producer(p.clone(), false).unwrap();
        *self.producer.borrow_mut() = Some(p);
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.ended.lost(reason);
    }
}

/// Reads with a small receive buffer, 16 KiB at a time, pausing 1 ms every 512 KiB.
fn read_slowly(addr: SocketAddr) -> io::Result<Vec<u8>> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_recv_buffer_size(32 * 1024)?;
    sock.connect(&addr.into())?;
    let mut sock: std::net::TcpStream = sock.into();
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (mut out, mut buf, mut since) = (Vec::new(), vec![0; 16 * 1024], 0);
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        since += n;
        if since >= 512 * 1024 {
            since = 0;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[torsion::test(timeout = 60)]
async fn a_slow_reader_gets_the_file_without_it_held_in_memory() -> Result<(), Failure> {
    let data = content(16 * MIB);
    let file = TempFile::new("slow", &data);
    let ended: Rc<Ended> = Rc::default();
    let producer: Rc<RefCell<Option<Rc<Pull>>>> = Rc::default();
    let (e, p, f) = (ended.clone(), producer.clone(), file.open());
    let port = reactor().listen_tcp_on(
        0,
        factory(move || PullServer {
            file: f.clone(),
            producer: p.clone(),
            ended: e.clone(),
        }),
        "127.0.0.1",
    )?;
    let addr = port.get_host().socket_addr().unwrap();
    let before = file_bytes_sent();
    let got = defer_to_thread(move || read_slowly(addr)).await??;
    next(&ended.done).await;
    port.stop_listening().await?;
    let reason = ended.reason();
    assert!(
        reason.check::<ConnectionDone>(),
        "the write limit (64 KiB) must not count the segment: {reason}"
    );
    let mut want = b"head".to_vec();
    want.extend_from_slice(&data);
    want.extend_from_slice(&[b't'; 32 * 1024]);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the bytes differ");
    assert_eq!(file_bytes_sent() - before, 16 * MIB);
    let pull = producer.borrow_mut().take().unwrap();
    let queued = pull.queued.get() as u64;
    assert!(
        queued > 8 * MIB && queued <= 16 * MIB + 32 * KIB + 4,
        "buffered_size counts the segment's unsent bytes: {queued}"
    );
    // Asked once to start, then once more only when everything, the segment too, was sent.
    assert_eq!(*pull.calls.borrow(), vec![0, 0]);
    Ok(())
}

/// Counts the pauses and resumes a streaming producer gets; closes the connection at the
/// first resume.
#[derive(Default)]
struct Counted {
    t: RefCell<Option<Transport>>,
    pauses: Cell<u32>,
    resumes: Cell<u32>,
    done: DeferredQueue<()>,
}

impl Producer for Counted {
    fn pause_producing(&self) {
        self.pauses.set(self.pauses.get() + 1);
    }

    fn resume_producing(&self) {
        self.resumes.set(self.resumes.get() + 1);
        let t = self.t.borrow_mut().take();
        if let Some(t) = t {
            t.unregister_producer();
            t.lose_connection();
            self.done.put(()).unwrap();
        }
    }

    fn stop_producing(&self) {}
}

struct Streaming {
    file: Rc<fs::File>,
    producer: Rc<Counted>,
}

impl Protocol for Streaming {
    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_made(&mut self, t: &Transport) {
        *self.producer.t.borrow_mut() = Some(t.clone());
        t.register_producer(self.producer.clone(), true).unwrap();
        t.write_file(FileSegment::new(self.file.clone(), 0, 4 * MIB))
            .unwrap();
    }
}

#[torsion::test(timeout = 60)]
async fn a_segment_over_the_high_watermark_pauses_a_streaming_producer() -> Result<(), Failure> {
    let data = content(4 * MIB);
    let file = TempFile::new("streaming", &data);
    let counted: Rc<Counted> = Rc::default();
    let (c, f) = (counted.clone(), file.open());
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Streaming {
            file: f.clone(),
            producer: c.clone(),
        }),
        "127.0.0.1",
    )?;
    let addr = port.get_host().socket_addr().unwrap();
    let got = defer_to_thread(move || read_slowly(addr)).await??;
    assert!(got == data);
    next(&counted.done).await;
    port.stop_listening().await?;
    assert_eq!((counted.pauses.get(), counted.resumes.get()), (1, 1));
    Ok(())
}

#[torsion::test(timeout = 60)]
async fn a_file_that_shrinks_under_the_send_closes_the_connection() -> Result<(), Failure> {
    let data = content(32 * MIB);
    let file = TempFile::new("shrink", &data);
    let path = file.0.clone();
    let steps = vec![
        Step::Bytes(b"head".to_vec()),
        Step::File(0, 32 * MIB),
        Step::Bytes(b"tail".to_vec()),
    ];
    let ended: Rc<Ended> = Rc::default();
    let (e, f) = (ended.clone(), file.open());
    let steps = Rc::new(steps);
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Player {
            file: f.clone(),
            now: steps.clone(),
            later: Rc::default(),
            ended: e.clone(),
        }),
        "127.0.0.1",
    )?;
    let addr = port.get_host().socket_addr().unwrap();
    // The client reads a little with a small window, cuts the file to 8 MiB, then reads on.
    let got = defer_to_thread(move || -> io::Result<Vec<u8>> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        sock.set_recv_buffer_size(32 * 1024)?;
        sock.connect(&addr.into())?;
        let mut sock: std::net::TcpStream = sock.into();
        sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut first = vec![0; 64 * 1024];
        sock.read_exact(&mut first)?;
        fs::OpenOptions::new()
            .write(true)
            .open(&path)?
            .set_len(8 * MIB)?;
        let mut rest = Vec::new();
        match sock.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => return Err(e),
        }
        first.extend_from_slice(&rest);
        Ok(first)
    })
    .await??;
    next(&ended.done).await;
    port.stop_listening().await?;
    let reason = ended.reason();
    assert!(
        !reason.check::<ConnectionDone>(),
        "not a clean end: {reason}"
    );
    assert!(reason.to_string().contains("shrank"), "{reason}");
    // What came is the head and a prefix of the file as it was, nothing after.
    assert!(
        got.len() < 4 + 32 * MIB as usize,
        "{} bytes came",
        got.len()
    );
    assert!(got.starts_with(b"head"));
    assert!(got[4..] == data[..got.len() - 4], "garbage was sent");
    Ok(())
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use crate::support::tls::Ca;

    /// Tries `write_file`; on `Unsupported` reads the file and writes it instead.
    struct Fallback {
        file: Rc<fs::File>,
        refused: Rc<Cell<bool>>,
    }

    impl Protocol for Fallback {
        fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

        fn connection_made(&mut self, t: &Transport) {
            t.write(b"head");
            match t.write_file(FileSegment::new(self.file.clone(), 0, 2 * MIB)) {
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    self.refused.set(true);
                    let mut buf = Vec::new();
                    (&*self.file).read_to_end(&mut buf).unwrap();
                    t.write(&buf[..2 * MIB as usize]);
                }
                other => other.unwrap(),
            }
            t.write(b"tail");
            t.lose_connection();
        }
    }

    /// Collects what the server sends.
    struct Collect {
        got: Rc<RefCell<Vec<u8>>>,
        ended: Rc<Ended>,
    }

    impl Protocol for Collect {
        fn data_received(&mut self, _t: &Transport, data: &[u8]) {
            self.got.borrow_mut().extend_from_slice(data);
        }

        fn connection_lost(&mut self, reason: ConnectionEnd) {
            self.ended.lost(reason);
        }
    }

    #[torsion::test(timeout = 60)]
    async fn tls_refuses_segments_and_the_fallback_sends_the_same_bytes() -> Result<(), Failure> {
        let data = content(3 * MIB);
        let file = TempFile::new("tls", &data);
        let ca = Ca::new("Torsion write_file CA");
        let refused = Rc::new(Cell::new(false));
        let (r, f) = (refused.clone(), file.open());
        let port = reactor().listen_tls_on(
            0,
            factory(move || Fallback {
                file: f.clone(),
                refused: r.clone(),
            }),
            ca.server(&["localhost"]),
            "127.0.0.1",
        )?;
        let got: Rc<RefCell<Vec<u8>>> = Rc::default();
        let ended: Rc<Ended> = Rc::default();
        let (g, e) = (got.clone(), ended.clone());
        let before = file_bytes_sent();
        reactor().connect_tls(
            "localhost",
            port.get_host().port().unwrap(),
            factory(move || Collect {
                got: g.clone(),
                ended: e.clone(),
            }),
            ca.client(),
        );
        next(&ended.done).await;
        port.stop_listening().await?;
        assert!(refused.get(), "TLS must refuse a file segment");
        let mut want = b"head".to_vec();
        want.extend_from_slice(&data[..2 * MIB as usize]);
        want.extend_from_slice(b"tail");
        assert!(*got.borrow() == want, "the bytes differ");
        assert_eq!(file_bytes_sent(), before, "nothing went by sendfile");
        Ok(())
    }
}
