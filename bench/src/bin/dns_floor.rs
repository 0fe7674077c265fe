//! The floor of a UDP DNS server on this kernel: the least any server can spend per query.
//! One thread, one UDP socket; `recvmmsg` reads up to 32 queries at a time and `sendmmsg`
//! sends their answers, each a fixed answer record after the query's own header and question
//! (QR and AA set, one A record for 192.0.2.80 pointing back at the question's name), so the
//! only work in user space is a copy of the query and two bytes patched. Nothing is decoded,
//! nothing looked up: the CPU it uses per query under dnsperf's load is the kernel's share,
//! which `torsiond dns` cannot go under (bench/findings.md, "DNS: the kernel's floor").
//!
//! ```text
//! dns_floor --port 5353            # blocking recvmmsg (MSG_WAITFORONE)
//! dns_floor --port 5353 --poll 1   # non-blocking reads, poll(2) when none waits (a reactor's)
//! ```
#![forbid(unsafe_code)]

use std::io::{IoSlice, IoSliceMut};
use std::net::UdpSocket;
use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrIn};

/// Queries read (and answers sent) per system call.
const BATCH: usize = 32;
/// Room for one query; longer ones are cut and answered the same.
const SLOT: usize = 512;
/// The answer record: a pointer to the question's name, type A, class IN, TTL 300, and
/// 192.0.2.80.
const RECORD: [u8; 16] = [
    0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2C, 0x00, 0x04, 192, 0, 2, 80,
];

/// The answer to `query` in `out`: its header with QR and AA set and one answer, its
/// question (without any additional record), and [`RECORD`]. False for a datagram too short
/// to be a query.
fn answer(query: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    if query.len() < 17 {
        return false;
    }
    // The question: the name's labels, then type and class.
    let mut at = 12;
    while at < query.len() && query[at] != 0 {
        at += 1 + usize::from(query[at]);
    }
    let end = (at + 5).min(query.len());
    out.extend_from_slice(&query[..end]);
    out[2] = 0x84 | (query[2] & 0x01);
    out[3] = 0;
    out[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
    out.extend_from_slice(&RECORD);
    true
}

fn main() -> std::io::Result<()> {
    let port: u16 = torsion_bench::arg("--port", 5353);
    let polled: u8 = torsion_bench::arg("--poll", 0);
    let sock = UdpSocket::bind(("127.0.0.1", port))?;
    // Never accepted from: only there so that bench/run's readiness probe (a TCP connect,
    // as for every server) sees this one up.
    let _probe = std::net::TcpListener::bind(("127.0.0.1", sock.local_addr()?.port()))?;
    println!("dns_floor listening on {}", sock.local_addr()?);
    sock.set_nonblocking(polled != 0)?;
    let fd = sock.as_raw_fd();
    let mut bufs = vec![[0u8; SLOT]; BATCH];
    let mut answers: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(SLOT)).collect();
    let mut to: Vec<Option<SockaddrIn>> = vec![None; BATCH];
    let mut lens = [0usize; BATCH];
    let mut rx = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut tx = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let flags = if polled != 0 {
        MsgFlags::MSG_DONTWAIT
    } else {
        MsgFlags::MSG_WAITFORONE
    };
    loop {
        let mut got = 0;
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            match recvmmsg(fd, &mut rx, iovs.iter_mut(), flags, None) {
                Ok(results) => {
                    for (i, msg) in results.enumerate() {
                        to[i] = msg.address;
                        lens[i] = msg.bytes.min(SLOT);
                        got += 1;
                    }
                }
                Err(Errno::EAGAIN) => {
                    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
                    poll(&mut fds, PollTimeout::NONE)?;
                    continue;
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let mut n = 0;
        for i in 0..got {
            if answer(&bufs[i][..lens[i]], &mut answers[n]) {
                to[n] = to[i];
                n += 1;
            }
        }
        if n == 0 {
            continue;
        }
        let slices: Vec<[IoSlice<'_>; 1]> = answers[..n]
            .iter()
            .map(|a| [IoSlice::new(&a[..])])
            .collect();
        // A full send buffer drops the batch's rest, as a server's write would.
        let _ = sendmmsg(
            fd,
            &mut tx,
            slices.iter(),
            &to[..n],
            [],
            MsgFlags::MSG_DONTWAIT,
        );
    }
}
