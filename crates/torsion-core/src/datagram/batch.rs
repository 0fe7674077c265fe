//! UDP datagrams in batches on Linux: up to [`BATCH`] read with one `recvmmsg`, and the
//! replies written while they are delivered sent with one `sendmmsg` when the batch is done.
//!
//! A busy server (DNS, say) spends most of its time in system calls, one `recvfrom` and one
//! `sendto` per query; batching makes that two system calls per batch. The buffers are
//! allocated once (per thread for reads, per port for writes, on first use) and reused: no
//! allocation per datagram.
//!
//! `recvmmsg` comes from nix (rustix has none); `sendmmsg` from rustix, whose call returns
//! how many messages went, without reading anything back from the headers.

use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};

use super::DEFAULT_MAX_PACKET_SIZE;

/// The most datagrams one system call reads or sends.
pub(crate) const BATCH: usize = 32;

/// A `sendmmsg` of up to this many datagrams builds only this many headers, and after a
/// `recvmmsg` that read fewer, the next offers only this many slots (see [`RecvBatch::recv`]).
const SMALL_BATCH: usize = 8;

/// The thread's receive buffer: [`BATCH`] datagrams of the default largest size (and the one
/// byte more that shows a longer one). Ports allowing longer datagrams read fewer at a time.
const RECV_BYTES: usize = BATCH * (DEFAULT_MAX_PACKET_SIZE + 1);

/// The largest datagram a write queues; a longer one is sent at once (after the queue), so
/// that a datagram too long for the socket (`EMSGSIZE`) is still an error of the `write`.
pub(crate) const MAX_QUEUED: usize = 9216;

/// The bytes a port's send queue holds before it is sent.
const QUEUE_BYTES: usize = 64 * 1024;

/// One datagram read: its length and sender.
#[derive(Clone, Copy)]
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) from: Option<SocketAddr>,
}

/// The thread's receive state: the buffer and `recvmmsg`'s headers.
pub(crate) struct RecvBatch {
    buf: Vec<u8>,
    /// One set of headers per address family. The kernel writes each header's address length
    /// back and nix does not reset it: headers that read an IPv4 sender (16 bytes) would cut
    /// an IPv6 one (28). A UDP socket's senders are all of its own family.
    v4: Option<MultiHeaders<SockaddrStorage>>,
    v6: Option<MultiHeaders<SockaddrStorage>>,
    got: [Received; BATCH],
    /// How many the last read got.
    last: usize,
}

thread_local! {
    static RECV: RefCell<RecvBatch> = const {
        RefCell::new(RecvBatch {
            buf: Vec::new(),
            v4: None,
            v6: None,
            got: [Received { len: 0, from: None }; BATCH],
            last: 0,
        })
    };
}

/// How many datagrams of up to `slot` bytes one read takes.
pub(crate) fn slots(slot: usize) -> usize {
    (RECV_BYTES / slot.max(1)).clamp(1, BATCH)
}

/// Runs `f` with the thread's receive state (never re-entered: a port's task reads, then
/// delivers, and no callback reads another port).
pub(crate) fn with_recv<R>(f: impl FnOnce(&mut RecvBatch) -> R) -> R {
    RECV.with_borrow_mut(f)
}

impl RecvBatch {
    /// Reads up to `count` datagrams of up to `slot` bytes each, without blocking
    /// (`WouldBlock` when none waits). Returns how many were read.
    ///
    /// After a read that got fewer than [`SMALL_BATCH`], this one offers only that many
    /// slots: each slot offered costs its header and iovec to build whether a datagram comes
    /// or not (a full 32 about 2,400 instructions, more than a DNS answer's own work when
    /// five come at a time, as under dnsperf). A read that fills them is followed by one
    /// offering all 32, so a rising load costs at most one system call more.
    pub(crate) fn recv(
        &mut self,
        fd: BorrowedFd<'_>,
        v6: bool,
        slot: usize,
        count: usize,
    ) -> io::Result<usize> {
        if self.buf.len() < RECV_BYTES {
            self.buf.resize(RECV_BYTES, 0);
        }
        let count = count.min(slots(slot));
        let headers = if v6 { &mut self.v6 } else { &mut self.v4 };
        let headers = headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
        let read = if self.last < SMALL_BATCH || count <= SMALL_BATCH {
            recv_into::<SMALL_BATCH>(fd, headers, &mut self.buf, slot, count, &mut self.got)
        } else {
            recv_into::<BATCH>(fd, headers, &mut self.buf, slot, count, &mut self.got)
        };
        // A read that found nothing leaves `last` alone: the next wake-up brings what the
        // last read said about the load.
        if let Ok(n) = read {
            self.last = n;
        }
        read
    }

    /// The `i`th datagram of the last read, and its sender.
    pub(crate) fn datagram(&self, i: usize, slot: usize) -> (&[u8], Option<SocketAddr>) {
        let Received { len, from } = self.got[i];
        let start = i * slot;
        (&self.buf[start..start + len.min(slot)], from)
    }
}

/// `recvmmsg` of up to `count` (at most `N`) datagrams into `buf`, cut in slots of `slot`
/// bytes; records each datagram in `got`.
fn recv_into<const N: usize>(
    fd: BorrowedFd<'_>,
    headers: &mut MultiHeaders<SockaddrStorage>,
    buf: &mut [u8],
    slot: usize,
    count: usize,
    got: &mut [Received; BATCH],
) -> io::Result<usize> {
    let count = count.min(N);
    let mut chunks = buf.chunks_mut(slot);
    let mut iovs: [[IoSliceMut<'_>; 1]; N] =
        std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
    let results = recvmmsg(
        fd.as_raw_fd(),
        headers,
        iovs.iter_mut().take(count),
        MsgFlags::MSG_DONTWAIT,
        None,
    )?;
    let mut n = 0;
    for (slot, msg) in got.iter_mut().zip(results) {
        *slot = Received {
            len: msg.bytes,
            from: msg.address.as_ref().and_then(socket_addr),
        };
        n += 1;
    }
    Ok(n)
}

/// The sender's address as the standard library's.
fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

/// A port's datagrams written during a read batch, waiting for one `sendmmsg`.
#[derive(Default)]
pub(crate) struct SendQueue {
    bytes: Vec<u8>,
    /// Where each datagram ends in `bytes`.
    ends: Vec<usize>,
    /// Each datagram's destination (`None`: the connected peer).
    to: Vec<Option<SocketAddrAny>>,
}

/// What became of a queued datagram that did not go.
pub(crate) enum Unsent {
    /// The send buffer was full (`EAGAIN`): dropped, as an unbatched write drops it.
    Full,
    /// The connected peer refused (`ECONNREFUSED`).
    Refused,
    /// Another error.
    Failed(io::Error),
}

impl SendQueue {
    /// True when nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// True when a datagram of `len` bytes fits without sending first.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.ends.len() < BATCH && self.bytes.len() + len <= QUEUE_BYTES
    }

    /// Queues one datagram (the caller checked [`fits`](Self::fits)).
    pub(crate) fn push(&mut self, data: &[u8], to: Option<SocketAddr>) {
        self.bytes.extend_from_slice(data);
        self.ends.push(self.bytes.len());
        self.to.push(to.map(SocketAddrAny::from));
    }

    /// Sends everything queued with `sendmmsg`, calling `unsent` (with its length and
    /// destination) for each datagram that did not go, and empties the queue.
    pub(crate) fn flush(
        &mut self,
        fd: BorrowedFd<'_>,
        mut unsent: impl FnMut(Unsent, usize, Option<&SocketAddrAny>),
    ) {
        let n = self.ends.len();
        let mut i = 0;
        while i < n {
            let count = (n - i).min(BATCH);
            // The headers are built on the stack for as many as go, rounded up: building all
            // of BATCH's for a few datagrams cost more than the datagrams' own user-space work.
            let sent = if count <= SMALL_BATCH {
                self.send_from::<SMALL_BATCH>(fd, i, count)
            } else {
                self.send_from::<BATCH>(fd, i, count)
            };
            match sent {
                Ok(0) => {
                    // Not seen from Linux; counted as a failure so the loop always advances.
                    unsent(
                        Unsent::Failed(io::ErrorKind::WriteZero.into()),
                        self.len(i),
                        self.to[i].as_ref(),
                    );
                    i += 1;
                }
                Ok(sent) => i += sent,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The error is the first datagram's; the ones after it are tried again.
                    let why = match e.kind() {
                        io::ErrorKind::WouldBlock => Unsent::Full,
                        io::ErrorKind::ConnectionRefused => Unsent::Refused,
                        _ => Unsent::Failed(e),
                    };
                    unsent(why, self.len(i), self.to[i].as_ref());
                    i += 1;
                }
            }
        }
        self.bytes.clear();
        self.ends.clear();
        self.to.clear();
    }

    fn span(&self, i: usize) -> (usize, usize) {
        (if i == 0 { 0 } else { self.ends[i - 1] }, self.ends[i])
    }

    fn len(&self, i: usize) -> usize {
        let (start, end) = self.span(i);
        end - start
    }

    /// One `sendmmsg` of the `count` (at most `N`) datagrams from the `first`.
    fn send_from<const N: usize>(
        &self,
        fd: BorrowedFd<'_>,
        first: usize,
        count: usize,
    ) -> io::Result<usize> {
        let count = count.min(N);
        let iovs: [[IoSlice<'_>; 1]; N] = std::array::from_fn(|k| {
            if k < count {
                let (start, end) = self.span(first + k);
                [IoSlice::new(&self.bytes[start..end])]
            } else {
                [IoSlice::new(&[])]
            }
        });
        let mut controls: [SendAncillaryBuffer<'_, '_, '_>; N] =
            std::array::from_fn(|_| SendAncillaryBuffer::default());
        let mut k = 0;
        let mut messages: [MMsgHdr<'_>; N] = controls.each_mut().map(|control| {
            let iov = &iovs[k][..];
            let message = match self.to.get(first + k).and_then(Option::as_ref) {
                Some(to) if k < count => MMsgHdr::new_with_addr(to, iov, control),
                _ => MMsgHdr::new(iov, control),
            };
            k += 1;
            message
        });
        Ok(sendmmsg(fd, &mut messages[..count], SendFlags::DONTWAIT)?)
    }
}

/// Describes a destination for a log line.
pub(crate) fn describe(to: Option<&SocketAddrAny>) -> String {
    match to.map(|to| SocketAddr::try_from(to.clone())) {
        Some(Ok(addr)) => addr.to_string(),
        Some(Err(_)) => "an address".to_owned(),
        None => "the connected peer".to_owned(),
    }
}
