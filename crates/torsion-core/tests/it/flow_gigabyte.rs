//! A server that writes faster than its client reads pauses instead of growing: a streaming
//! producer sends 1 GiB over real TCP to a client with a small receive buffer that reads in
//! small pieces with short pauses, and the server's write buffer never holds more than the
//! high watermark plus one chunk. Every byte is checked on arrival.
//!
//! Size: 1 GiB, or `TORSION_FLOW_BYTES` bytes if set (about 3 s in a debug build). Run with
//! `-- --nocapture` to see the figures measured.

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion::producer::Producer;
use torsion::{factory, reactor, Failure, Protocol, Transport};

const CHUNK: usize = 64 * 1024;
const HIGH: usize = 256 * 1024;
const LOW: usize = 64 * 1024;

fn total_bytes() -> u64 {
    let default = 1 << 30;
    let n = std::env::var("TORSION_FLOW_BYTES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(default);
    // Whole chunks only.
    n.div_ceil(CHUNK as u64).max(1) * CHUNK as u64
}

/// A fixed pseudo-random block; chunk `k` is this block with `k` in its first 8 bytes.
fn block() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn chunk_into(buf: &mut [u8], template: &[u8], k: u64) {
    buf.copy_from_slice(template);
    buf[..8].copy_from_slice(&k.to_le_bytes());
}

/// What the server measured.
#[derive(Default)]
struct Stats {
    max_buffered: Cell<usize>,
    pauses: Cell<u32>,
    resumes: Cell<u32>,
    stopped: Cell<bool>,
    done: Cell<bool>,
}

/// The streaming producer: one chunk per reactor turn while not paused.
struct Source {
    t: Transport,
    template: Vec<u8>,
    buf: RefCell<Vec<u8>>,
    next: Cell<u64>,
    chunks: u64,
    paused: Cell<bool>,
    scheduled: Cell<bool>,
    stats: Rc<Stats>,
    me: RefCell<std::rc::Weak<Source>>,
}

impl Source {
    fn schedule(&self) {
        if self.scheduled.replace(true) {
            return;
        }
        let me = self.me.borrow().clone();
        reactor().call_later(0.0, move || {
            if let Some(s) = me.upgrade() {
                s.scheduled.set(false);
                s.step();
            }
        });
    }

    fn step(&self) {
        if self.paused.get() || self.stats.stopped.get() || self.stats.done.get() {
            return;
        }
        let k = self.next.get();
        if k == self.chunks {
            self.stats.done.set(true);
            self.t.unregister_producer();
            self.t.lose_connection();
            return;
        }
        {
            let mut buf = self.buf.borrow_mut();
            chunk_into(&mut buf, &self.template, k);
            self.t.write(&buf);
        }
        self.next.set(k + 1);
        let buffered = self.t.buffered_size();
        if buffered > self.stats.max_buffered.get() {
            self.stats.max_buffered.set(buffered);
        }
        self.schedule();
    }
}

impl Producer for Source {
    fn pause_producing(&self) {
        self.paused.set(true);
        self.stats.pauses.set(self.stats.pauses.get() + 1);
    }

    fn resume_producing(&self) {
        self.paused.set(false);
        self.stats.resumes.set(self.stats.resumes.get() + 1);
        self.schedule();
    }

    fn stop_producing(&self) {
        self.stats.stopped.set(true);
    }
}

struct Server {
    chunks: u64,
    stats: Rc<Stats>,
}

impl Protocol for Server {
    fn connection_made(&mut self, t: &Transport) {
        t.set_write_buffer_limits(HIGH, LOW);
        let source = Rc::new(Source {
            t: t.clone(),
            template: block(),
            buf: RefCell::new(vec![0; CHUNK]),
            next: Cell::new(0),
            chunks: self.chunks,
            paused: Cell::new(false),
            scheduled: Cell::new(false),
            stats: self.stats.clone(),
            me: RefCell::new(std::rc::Weak::new()),
        });
        *source.me.borrow_mut() = Rc::downgrade(&source);
        t.register_producer(source.clone(), true)
            .expect("a fresh connection takes a producer");
        source.schedule();
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}
}

/// What the client thread saw.
struct Received {
    bytes: u64,
    intact: bool,
    first_bad: Option<u64>,
    millis: u128,
}

/// Reads everything with a small receive buffer, 16 KiB at a time, pausing 1 ms after
/// every MiB; checks each byte against the pattern.
fn slow_reader(addr: SocketAddr) -> std::io::Result<Received> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_recv_buffer_size(32 * 1024)?;
    sock.connect(&addr.into())?;
    let mut sock: std::net::TcpStream = sock.into();
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    let template = block();
    let mut expected = vec![0; CHUNK];
    let mut expected_k = u64::MAX;
    let mut buf = vec![0; 16 * 1024];
    let (mut pos, mut since_pause) = (0u64, 0usize);
    let mut first_bad = None;
    let start = Instant::now();
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let mut data = &buf[..n];
        while !data.is_empty() {
            let k = pos / CHUNK as u64;
            let off = (pos % CHUNK as u64) as usize;
            if k != expected_k {
                chunk_into(&mut expected, &template, k);
                expected_k = k;
            }
            let m = data.len().min(CHUNK - off);
            if first_bad.is_none() && data[..m] != expected[off..off + m] {
                first_bad = Some(pos);
            }
            data = &data[m..];
            pos += m as u64;
        }
        since_pause += n;
        if since_pause >= 1 << 20 {
            since_pause = 0;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(Received {
        bytes: pos,
        intact: first_bad.is_none(),
        first_bad,
        millis: start.elapsed().as_millis(),
    })
}

/// Peak resident memory of this process, from /proc (Linux), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[torsion::test(timeout = 120)]
async fn a_slow_reader_pauses_the_writer_instead_of_growing_its_buffer() -> Result<(), Failure> {
    let total = total_bytes();
    let stats = Rc::new(Stats::default());
    let s = stats.clone();
    let chunks = total / CHUNK as u64;
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Server {
            chunks,
            stats: s.clone(),
        }),
        "127.0.0.1",
    )?;
    let addr = port.get_host().socket_addr().expect("a TCP port");
    let received = torsion::threads::defer_to_thread(move || slow_reader(addr)).await??;
    port.stop_listening().await?;
    let rss = peak_rss_kib();
    eprintln!(
        "flow_gigabyte: {} MiB in {} ms ({:.0} MiB/s); server write buffer max {} bytes \
         (high {HIGH}, low {LOW}, chunk {CHUNK}); {} pauses, {} resumes; peak RSS {:?} KiB",
        received.bytes >> 20,
        received.millis,
        (received.bytes >> 20) as f64 / (received.millis.max(1) as f64 / 1000.0),
        stats.max_buffered.get(),
        stats.pauses.get(),
        stats.resumes.get(),
        rss,
    );
    assert_eq!(received.bytes, total, "every byte arrives");
    assert!(
        received.intact,
        "the bytes arrived altered (first bad byte at {:?})",
        received.first_bad
    );
    assert!(stats.done.get() && !stats.stopped.get());
    assert!(
        stats.max_buffered.get() <= HIGH + CHUNK,
        "the server buffered {} bytes, over the high watermark plus a chunk",
        stats.max_buffered.get()
    );
    assert!(
        stats.pauses.get() > 0,
        "the reader never made the writer pause"
    );
    assert!(stats.resumes.get() >= stats.pauses.get() - 1);
    Ok(())
}
