//! The load generator of the benchmark, on one thread (pin it with `taskset`).
//!
//! ```text
//! loadgen echo --port P [--conns 50] [--size 64] [--duration 10] [--messages K]
//!     N connections ping-pong M-byte messages for D seconds (one message in flight per
//!     connection), or until each has made K round trips (a fixed amount of work, for
//!     instruction counts under callgrind); prints one line of figures:
//!     msgs=… secs=… msgs_per_s=… p50_us=… p99_us=…
//! loadgen idle --port P [--conns 10000] [--http] [--size 64]
//!     opens N connections, makes one exchange on each (an echo of M bytes, or with --http one
//!     GET), prints `ready N`, then holds them open until killed.
//! ```
//!
//! Any failed connection or wrong echo is an error: the figures line is still printed, and the
//! exit status is 1, so a broken server fails `bench/run --quick`.
#![forbid(unsafe_code)]

use std::io::Write;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How many connections `idle` opens at once (below the listen backlog of every peer).
const CONNECT_BATCH: usize = 200;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let port: u16 = torsion_bench::arg_in(&args, "--port", 0);
    if port == 0 {
        eprintln!("usage: loadgen echo|idle --port P [options] (see the source's docs)");
        std::process::exit(2);
    }
    let rt = torsion_bench::current_thread_runtime().unwrap_or_else(|e| {
        eprintln!("cannot start the runtime: {e}");
        std::process::exit(1)
    });
    let ok = match mode {
        "echo" => rt.block_on(echo(
            port,
            torsion_bench::arg_in(&args, "--conns", 50),
            torsion_bench::arg_in(&args, "--size", 64),
            Duration::from_secs_f64(torsion_bench::arg_in(&args, "--duration", 10.0)),
            torsion_bench::arg_in(&args, "--messages", u64::MAX),
        )),
        "idle" => rt.block_on(idle(
            port,
            torsion_bench::arg_in(&args, "--conns", 10_000),
            torsion_bench::arg_in(&args, "--size", 64),
            torsion_bench::flag_in(&args, "--http"),
        )),
        other => {
            eprintln!("unknown mode {other:?}: use echo or idle");
            std::process::exit(2)
        }
    };
    std::process::exit(if ok { 0 } else { 1 });
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s in nanoseconds, three significant digits.
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// One connection's ping-pong until `deadline`: its message count and latencies.
async fn ping_pong(
    port: u16,
    size: usize,
    deadline: Instant,
    messages: u64,
) -> Result<(u64, Histogram<u64>), String> {
    let mut sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    let msg: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut back = vec![0u8; size];
    let mut hist = new_histogram();
    let mut count = 0u64;
    loop {
        let start = Instant::now();
        if start >= deadline || count >= messages {
            return Ok((count, hist));
        }
        sock.write_all(&msg)
            .await
            .map_err(|e| format!("write: {e}"))?;
        sock.read_exact(&mut back)
            .await
            .map_err(|e| format!("read: {e}"))?;
        hist.saturating_record(start.elapsed().as_nanos() as u64);
        if back != msg {
            return Err("the echo differs from the message sent".into());
        }
        count += 1;
    }
}

async fn echo(port: u16, conns: usize, size: usize, duration: Duration, messages: u64) -> bool {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(ping_pong(port, size.max(1), deadline, messages)))
        .collect();
    let mut total = 0u64;
    let mut hist = new_histogram();
    let mut errors = 0usize;
    for t in tasks {
        match t.await {
            Ok(Ok((n, h))) => {
                total += n;
                hist.add(&h).expect("same histogram bounds");
            }
            Ok(Err(e)) => {
                errors += 1;
                eprintln!("connection failed: {e}");
            }
            Err(e) => {
                errors += 1;
                eprintln!("connection task failed: {e}");
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "msgs={total} secs={secs:.3} msgs_per_s={:.1} p50_us={:.1} p99_us={:.1} errors={errors}",
        total as f64 / secs,
        hist.value_at_quantile(0.50) as f64 / 1e3,
        hist.value_at_quantile(0.99) as f64 / 1e3,
    );
    errors == 0 && total > 0
}

/// Connects and makes one exchange, so the server has accepted the connection and served it
/// once before it goes idle.
async fn open_one(port: u16, size: usize, http: bool) -> Result<TcpStream, String> {
    let mut sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if http {
        sock.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock
                .read(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 || got.len() > 64 * 1024 {
                return Err("no complete response head".into());
            }
            got.extend_from_slice(&buf[..n]);
        }
        if !got.starts_with(b"HTTP/1.1 200") {
            return Err(format!(
                "unexpected response: {:?}",
                String::from_utf8_lossy(&got[..got.len().min(40)])
            ));
        }
    } else {
        let msg = vec![b'x'; size];
        let mut back = vec![0u8; size];
        sock.write_all(&msg)
            .await
            .map_err(|e| format!("write: {e}"))?;
        sock.read_exact(&mut back)
            .await
            .map_err(|e| format!("read: {e}"))?;
    }
    Ok(sock)
}

async fn idle(port: u16, conns: usize, size: usize, http: bool) -> bool {
    let mut open = Vec::with_capacity(conns);
    let mut errors = 0usize;
    while open.len() + errors < conns {
        let batch = CONNECT_BATCH.min(conns - open.len() - errors);
        let tasks: Vec<_> = (0..batch)
            .map(|_| tokio::spawn(open_one(port, size.max(1), http)))
            .collect();
        for t in tasks {
            match t.await {
                Ok(Ok(sock)) => open.push(sock),
                Ok(Err(e)) => {
                    errors += 1;
                    if errors <= 5 {
                        eprintln!("idle connection failed: {e}");
                    }
                }
                Err(e) => {
                    errors += 1;
                    eprintln!("idle connection task failed: {e}");
                }
            }
        }
    }
    println!("ready {} errors={errors}", open.len());
    let _ = std::io::stdout().flush();
    if errors > 0 {
        return false;
    }
    // Hold every connection until killed.
    std::future::pending::<()>().await;
    true
}
