//! A cheap DNS load generator over UDP, to see a server's speed where dnsperf's own cost (about
//! 2.2 µs of its core per query on the benchmark machines) would be the limit: one thread, one
//! connected socket, a fixed number of queries in flight, sent with `sendmmsg` and read with
//! `recvmmsg` in batches of up to 32, a new query for each answer. The queries are dnsperf's
//! three of bench/run's scenario 8 in turn (`www.bench.test A`, `bench.test MX`,
//! `nope.bench.test A`, no EDNS).
//!
//! ```text
//! dns_load --port P [--inflight 100] [--duration 5]
//!     prints: answered=… secs=… qps=… noerror=… nxdomain=… other=… lost=…
//! ```
//!
//! When nothing comes back for 200 ms, every query in flight counts as lost and as many new
//! ones are sent. The exit status is 1 when nothing was answered or an answer was anything but
//! NOERROR or NXDOMAIN.
#![forbid(unsafe_code)]

use std::io::{IoSlice, IoSliceMut};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrIn};

/// Datagrams per system call.
const BATCH: usize = 32;
/// Room for one answer.
const SLOT: usize = 512;

/// A query for `name` (dotted, without the final dot) of `qtype`, id 0, RD set.
fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).expect("a short label"));
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// Sends `count` queries (in batches of [`BATCH`]), the next of `queries` each time, with
/// ids counting up from `*id`. Returns how many went.
fn send(
    fd: i32,
    tx: &mut MultiHeaders<SockaddrIn>,
    queries: &mut [Vec<u8>],
    next: &mut usize,
    id: &mut u16,
    count: usize,
) -> usize {
    let mut sent = 0;
    let none: [Option<SockaddrIn>; BATCH] = [None; BATCH];
    while sent < count {
        let n = (count - sent).min(BATCH);
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(n);
        for _ in 0..n {
            let mut q = queries[*next].clone();
            *next = (*next + 1) % queries.len();
            q[..2].copy_from_slice(&id.to_be_bytes());
            *id = id.wrapping_add(1);
            out.push(q);
        }
        let slices: Vec<[IoSlice<'_>; 1]> = out.iter().map(|q| [IoSlice::new(q)]).collect();
        match sendmmsg(fd, tx, slices.iter(), &none[..n], [], MsgFlags::empty()) {
            Ok(results) => {
                let went = results.count();
                sent += went;
                if went < n {
                    break;
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    sent
}

fn main() {
    let port: u16 = torsion_bench::arg("--port", 5353);
    let inflight: usize = torsion_bench::arg("--inflight", 100);
    let duration: f64 = torsion_bench::arg("--duration", 5.0);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    sock.connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a read timeout");
    let fd = sock.as_raw_fd();
    let mut queries = vec![
        query("www.bench.test", 1),
        query("bench.test", 15),
        query("nope.bench.test", 1),
    ];
    let mut tx = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut rx = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut bufs = vec![[0u8; SLOT]; BATCH];
    let (mut next, mut id) = (0usize, 0u16);
    let (mut answered, mut noerror, mut nxdomain, mut other, mut lost) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(duration);
    let mut in_flight = send(fd, &mut tx, &mut queries, &mut next, &mut id, inflight);
    while Instant::now() < end {
        let got: Vec<usize> = {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            match recvmmsg(fd, &mut rx, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                Ok(results) => results.map(|m| m.bytes).collect(),
                Err(Errno::EAGAIN) => {
                    lost += in_flight as u64;
                    in_flight = 0;
                    Vec::new()
                }
                Err(Errno::EINTR | Errno::ECONNREFUSED) => Vec::new(),
                Err(e) => {
                    eprintln!("dns_load: {e}");
                    std::process::exit(1);
                }
            }
        };
        for (i, len) in got.iter().enumerate() {
            let answer = &bufs[i][..(*len).min(SLOT)];
            if answer.len() < 12 || answer[2] & 0x80 == 0 {
                other += 1;
                continue;
            }
            match answer[3] & 0x0F {
                0 => noerror += 1,
                3 => nxdomain += 1,
                _ => other += 1,
            }
        }
        answered += got.len() as u64;
        in_flight = in_flight.saturating_sub(got.len());
        in_flight += send(
            fd,
            &mut tx,
            &mut queries,
            &mut next,
            &mut id,
            inflight - in_flight,
        );
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "answered={answered} secs={secs:.3} qps={:.0} noerror={noerror} nxdomain={nxdomain} other={other} lost={lost}",
        answered as f64 / secs
    );
    if answered == 0 || other > 0 {
        std::process::exit(1);
    }
}
