//! TLS echo throughput (scenario 13): a Torsion echo server over TLS or plain TCP, and a
//! client that pushes a fixed amount of data through it and checks every byte that comes back.
//!
//! ```text
//! tls_echo server --port P --cert CERT.pem --key KEY.pem [--plain]
//!     the Echo protocol on 127.0.0.1:P, over TLS with that certificate (or plain TCP)
//! tls_echo load --port P --cert CERT.pem [--plain] [--mb 256] [--conns 1] [--window 262144]
//!     connects (trusting CERT.pem, as `localhost`), keeps WINDOW bytes in flight on each
//!     connection, and stops once MB MiB have come back in all; prints one line of figures:
//!     bytes=… secs=… mb_per_s=… (MB: 10^6 bytes); fails after --timeout S (default 300)
//! ```
//!
//! Both sides are Torsion (connect_tls, listen_tls_on), one reactor each. The client sends a
//! counting pattern and compares what comes back against it, so a server that drops, repeats
//! or reorders bytes fails the run: the exit status is then 1, so `bench/run --quick` notices.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use torsion::tls::{load_certificates, ClientContext, ServerContext};
use torsion::{factory, reactor, ConnectionEnd, Protocol, Transport};

/// The size of each write the client makes.
const CHUNK: usize = 16 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let port: u16 = torsion_bench::arg_in(&args, "--port", 0);
    let cert: String = torsion_bench::arg_in(&args, "--cert", String::new());
    let plain = torsion_bench::flag_in(&args, "--plain");
    if port == 0 || (cert.is_empty() && !plain) {
        eprintln!("usage: tls_echo server|load --port P --cert CERT.pem [options] (see the source's docs)");
        std::process::exit(2);
    }
    let ok = match mode {
        "server" => server(
            port,
            &cert,
            &torsion_bench::arg_in(&args, "--key", cert.clone()),
            plain,
        ),
        "load" => load(
            port,
            &cert,
            plain,
            torsion_bench::arg_in(&args, "--mb", 256u64) << 20,
            torsion_bench::arg_in(&args, "--conns", 1usize),
            torsion_bench::arg_in(&args, "--window", 256 * 1024u64),
            torsion_bench::arg_in(&args, "--timeout", 300.0),
        ),
        other => {
            eprintln!("unknown mode {other:?}: use server or load");
            std::process::exit(2)
        }
    };
    std::process::exit(if ok { 0 } else { 1 });
}

/// Parrots back its input.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data);
    }
}

fn server(port: u16, cert: &str, key: &str, plain: bool) -> bool {
    let r = reactor();
    let listening = if plain {
        r.listen_tcp_on(port, factory(|| Echo), "127.0.0.1")
    } else {
        match ServerContext::from_pem_files(cert, key) {
            Ok(context) => r.listen_tls_on(port, factory(|| Echo), context, "127.0.0.1"),
            Err(e) => {
                eprintln!("tls_echo server: {e}");
                return false;
            }
        }
    };
    if let Err(e) = listening {
        eprintln!("tls_echo server: cannot listen on {port}: {e}");
        return false;
    }
    match r.run() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("tls_echo server: {e}");
            false
        }
    }
}

/// The stream the client sends repeats every `PERIOD` bytes (a prime, so that it does not
/// line up with record or buffer sizes).
const PERIOD: usize = 251;

/// `CHUNK + PERIOD` bytes of the stream, from offset 0: the bytes from any offset `o` on
/// are `PATTERN[o % PERIOD..]`, so sending and checking are slice copies and comparisons.
fn pattern() -> Vec<u8> {
    (0..CHUNK + PERIOD).map(|i| (i % PERIOD) as u8).collect()
}

/// The stream's bytes from `offset` on, at most `CHUNK` of them.
fn stream_at(pattern: &[u8], offset: u64, len: usize) -> &[u8] {
    let start = (offset % PERIOD as u64) as usize;
    &pattern[start..start + len.min(CHUNK)]
}

/// What every connection of one load run shares.
struct Shared {
    /// Bytes each connection sends and expects back.
    per_conn: u64,
    window: u64,
    /// Bytes echoed back so far, over all connections.
    received: Cell<u64>,
    /// Connections that got everything back.
    finished: Cell<usize>,
    conns: usize,
    error: RefCell<Option<String>>,
}

impl Shared {
    fn fail(&self, why: String) {
        if self.error.borrow().is_none() {
            *self.error.borrow_mut() = Some(why);
        }
        let _ = reactor().stop();
    }
}

/// One connection of the client: keeps `window` bytes in flight until `per_conn` are back.
struct Pusher {
    shared: Rc<Shared>,
    sent: u64,
    back: u64,
    pattern: Rc<Vec<u8>>,
}

impl Pusher {
    /// Sends up to the window (or the end of this connection's share).
    fn top_up(&mut self, transport: &Transport) {
        let limit = self.shared.per_conn.min(self.back + self.shared.window);
        while self.sent < limit {
            let n = (limit - self.sent).min(CHUNK as u64) as usize;
            transport.write(stream_at(&self.pattern, self.sent, n));
            self.sent += n as u64;
        }
    }
}

impl Protocol for Pusher {
    fn connection_made(&mut self, transport: &Transport) {
        self.top_up(transport);
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        let mut checked = 0;
        while checked < data.len() {
            let piece = &data[checked..data.len().min(checked + CHUNK)];
            let at = self.back + checked as u64;
            if piece != stream_at(&self.pattern, at, piece.len()) {
                self.shared
                    .fail(format!("wrong bytes echoed after offset {at}"));
                transport.abort_connection();
                return;
            }
            checked += piece.len();
        }
        self.back += data.len() as u64;
        self.shared
            .received
            .set(self.shared.received.get() + data.len() as u64);
        if self.back > self.shared.per_conn {
            self.shared.fail("more bytes echoed than sent".into());
            transport.abort_connection();
        } else if self.back == self.shared.per_conn {
            transport.lose_connection();
        } else {
            self.top_up(transport);
        }
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        if self.back == self.shared.per_conn {
            self.shared.finished.set(self.shared.finished.get() + 1);
            if self.shared.finished.get() == self.shared.conns {
                let _ = reactor().stop();
            }
        } else {
            self.shared.fail(format!(
                "connection ended after {} of {} bytes: {reason:?}",
                self.back, self.shared.per_conn
            ));
        }
    }
}

fn load(
    port: u16,
    cert: &str,
    plain: bool,
    total: u64,
    conns: usize,
    window: u64,
    timeout: f64,
) -> bool {
    let conns = conns.max(1);
    let shared = Rc::new(Shared {
        per_conn: total / conns as u64,
        window: window.max(1),
        received: Cell::new(0),
        finished: Cell::new(0),
        conns,
        error: RefCell::new(None),
    });
    let context = if plain {
        None
    } else {
        let built = load_certificates(cert).and_then(|c| ClientContext::builder().trust(c).build());
        match built {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("tls_echo load: {e}");
                return false;
            }
        }
    };
    let r = reactor();
    let start = Instant::now();
    let pattern = Rc::new(pattern());
    for _ in 0..conns {
        let (s, p) = (shared.clone(), pattern.clone());
        let make = factory(move || Pusher {
            shared: s.clone(),
            sent: 0,
            back: 0,
            pattern: p.clone(),
        });
        match &context {
            Some(c) => drop(r.connect_tls("localhost", port, make, c.clone())),
            None => drop(r.connect_tcp("127.0.0.1", port, make)),
        }
    }
    // A server that never answers (or a refused connection) must not hang the suite.
    let s = shared.clone();
    r.call_later(timeout, move || {
        s.fail(format!("not done within {timeout} s"))
    });
    let ran = r.run();
    let secs = start.elapsed().as_secs_f64();
    let bytes = shared.received.get();
    println!(
        "bytes={bytes} secs={secs:.3} mb_per_s={:.1}",
        bytes as f64 / secs / 1e6
    );
    if let Err(e) = ran {
        eprintln!("tls_echo load: {e}");
        return false;
    }
    if let Some(e) = shared.error.borrow().as_ref() {
        eprintln!("tls_echo load: {e}");
        return false;
    }
    if shared.finished.get() != conns {
        eprintln!(
            "tls_echo load: {} of {conns} connections finished",
            shared.finished.get()
        );
        return false;
    }
    true
}
