//! An experiment, not a contender: the TCP echo of scenario 1 (`tokio_echo`, Torsion's
//! `echo_server`) served three ways on one thread, to measure what an io_uring driver would save
//! Torsion per message before anyone builds one (bench/findings.md, "io_uring: what it would
//! save").
//!
//! ```text
//! uring_echo --port 1033 --mode epoll       epoll (mio), one read and one write(2) per message,
//!                                            as Torsion's poller does
//! uring_echo --port 1033 --mode poll        io_uring: a multishot poll per socket for readiness,
//!                                            then recv and send as submissions, all of a loop
//!                                            turn's in one io_uring_enter
//! uring_echo --port 1033 --mode multishot   io_uring: one multishot recv per socket into
//!                                            provided buffers, sends and buffer returns batched
//!                                            per loop turn
//!            [--stats]                       a line of counters on stderr every second
//! ```
//!
//! The ring is set up with `SINGLE_ISSUER | DEFER_TASKRUN` (task work runs only inside
//! io_uring_enter, the cheapest setup for one thread); `URING_SETUP=plain` or `URING_SETUP=coop`
//! (`COOP_TASKRUN | TASKRUN_FLAG`) in the environment compare the others.
//!
//! Every byte read is echoed in order, partial sends are resumed, a close or an error ends the
//! connection once nothing the kernel holds refers to its buffer. With `--stats` the counters are
//! cumulative: `syscalls` is every system call the loop itself makes (epoll_wait, read, write
//! and accept, or io_uring_enter and accept), `msgs` every read that returned data, and in the
//! io_uring modes `cqes` the completions reaped and `empty` the io_uring_enter calls that
//! returned none.
#![deny(unsafe_code)]

use std::time::{Duration, Instant};

fn main() {
    let port: u16 = torsion_bench::arg("--port", 1033);
    let mode: String = torsion_bench::arg("--mode", "epoll".to_string());
    let stats = Stats::new(torsion_bench::flag("--stats"));
    let result = match mode.as_str() {
        "epoll" => epoll::run(port, stats),
        "poll" => uring::run(port, uring::Mode::Poll, stats),
        "multishot" => uring::run(port, uring::Mode::Multishot, stats),
        other => {
            eprintln!("unknown --mode {other:?}: epoll, poll or multishot");
            std::process::exit(2)
        }
    };
    if let Err(e) = result {
        eprintln!("uring_echo: {e}");
        std::process::exit(1)
    }
}

/// The loop's own counts, printed (cumulative) once a second when asked for.
struct Stats {
    on: bool,
    syscalls: u64,
    waits: u64,
    msgs: u64,
    bytes: u64,
    turns: u64,
    /// Completions reaped, and loop turns that reaped none (io_uring modes).
    cqes: u64,
    empty: u64,
    eintr: u64,
    next: Instant,
}

impl Stats {
    fn new(on: bool) -> Stats {
        Stats {
            on,
            syscalls: 0,
            waits: 0,
            msgs: 0,
            bytes: 0,
            turns: 0,
            cqes: 0,
            empty: 0,
            eintr: 0,
            next: Instant::now(),
        }
    }

    /// Called once per loop turn; looks at the clock every 256 turns.
    fn turn(&mut self) {
        self.turns += 1;
        if self.on && self.turns % 256 == 0 && Instant::now() >= self.next {
            self.next = Instant::now() + Duration::from_secs(1);
            eprintln!(
                "stats syscalls={} waits={} msgs={} bytes={} turns={} cqes={} empty={} eintr={}",
                self.syscalls,
                self.waits,
                self.msgs,
                self.bytes,
                self.turns,
                self.cqes,
                self.empty,
                self.eintr
            );
        }
    }
}

/// The baseline: what Torsion's poller does per message, without the framework around it.
mod epoll {
    use super::Stats;
    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};
    use std::io::{self, Read, Write};

    const LISTENER: Token = Token(usize::MAX);

    struct Conn {
        sock: TcpStream,
        /// What the socket did not take yet; nothing more is read until it has gone.
        pending: Vec<u8>,
        /// Edge-triggered: whether the last readiness may still have bytes behind it.
        readable: bool,
    }

    pub(super) fn run(port: u16, mut st: Stats) -> io::Result<()> {
        let mut poll = Poll::new()?;
        let mut events = Events::with_capacity(1024);
        let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
        println!("uring_echo (epoll) listening on {}", listener.local_addr()?);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut conns: Vec<Option<Conn>> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        // One buffer for the thread, as Torsion's engine reads into.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            st.syscalls += 1;
            st.waits += 1;
            match poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    loop {
                        st.syscalls += 1;
                        match listener.accept() {
                            Ok((mut sock, _)) => {
                                let _ = sock.set_nodelay(true);
                                let i = free.pop().unwrap_or_else(|| {
                                    conns.push(None);
                                    conns.len() - 1
                                });
                                poll.registry().register(
                                    &mut sock,
                                    Token(i),
                                    Interest::READABLE | Interest::WRITABLE,
                                )?;
                                conns[i] = Some(Conn {
                                    sock,
                                    pending: Vec::new(),
                                    readable: true,
                                });
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => {
                                eprintln!("accept failed: {e}");
                                break;
                            }
                        }
                    }
                    continue;
                }
                let i = ev.token().0;
                let Some(conn) = conns.get_mut(i).and_then(Option::as_mut) else {
                    continue;
                };
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    conn.readable = true;
                }
                if !serve(conn, &mut buf, &mut st) {
                    let mut c = conns[i].take().expect("the connection served above");
                    let _ = poll.registry().deregister(&mut c.sock);
                    free.push(i);
                }
            }
            st.turn();
        }
    }

    /// Flushes what is pending, then reads and echoes while the socket may have bytes; false
    /// once the connection is over.
    fn serve(conn: &mut Conn, buf: &mut [u8], st: &mut Stats) -> bool {
        if !conn.pending.is_empty() {
            st.syscalls += 1;
            match conn.sock.write(&conn.pending) {
                Ok(n) => drop(conn.pending.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
            if !conn.pending.is_empty() {
                return true;
            }
        }
        while conn.readable {
            st.syscalls += 1;
            let n = match conn.sock.read(buf) {
                Ok(0) => return false,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.readable = false;
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            };
            st.msgs += 1;
            st.bytes += n as u64;
            // A short read emptied the socket: no read to hear EAGAIN (Torsion's rule).
            if n < buf.len() {
                conn.readable = false;
            }
            st.syscalls += 1;
            match conn.sock.write(&buf[..n]) {
                Ok(w) if w == n => {}
                Ok(w) => {
                    conn.pending.extend_from_slice(&buf[w..n]);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.pending.extend_from_slice(&buf[..n]);
                    return true;
                }
                Err(_) => return false,
            }
        }
        true
    }
}

/// The two io_uring loops. Pushing a submission is an `unsafe fn`: the kernel will read or write
/// the memory and descriptors it names after the call returns. Every push below names either a
/// connection's own boxed buffer, whose `Conn` is kept (and the box never moved out or resized)
/// until `inflight` says no submission of that connection is left in the kernel, or the provided
/// buffer pool, one allocation made before the ring and dropped after it; and the descriptors
/// belong to `TcpStream`s kept the same way. That is the whole of the soundness argument, and
/// why `Conn::inflight` is counted on every push and on every final completion.
#[allow(unsafe_code)]
mod uring {
    use super::Stats;
    use io_uring::{cqueue, opcode, squeue, types, IoUring, SubmissionQueue, Submitter};
    use std::collections::VecDeque;
    use std::io::{self, ErrorKind};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Mode {
        Poll,
        Multishot,
    }

    const POLLIN: u32 = 0x0001;
    const ENOBUFS: i32 = 105;
    const EAGAIN: i32 = 11;

    const K_LISTEN: u64 = 0;
    const K_POLL: u64 = 1;
    const K_RECV: u64 = 2;
    const K_SEND: u64 = 3;
    // Cancels and buffer returns: submitted with SKIP_SUCCESS, only failures complete.
    const K_CANCEL: u64 = 4;
    const K_PROVIDE: u64 = 5;

    const LISTENER: usize = (1 << 40) - 1;

    /// Provided buffers (multishot mode): this many of this size, group 0.
    const NBUFS: u16 = 1024;
    const BUF: usize = 4096;
    /// A connection's own buffer (poll mode): the size of Torsion's thread buffer.
    const CONN_BUF: usize = 64 * 1024;

    fn ud(i: usize, kind: u64) -> u64 {
        ((i as u64) << 8) | kind
    }

    struct Conn {
        sock: TcpStream,
        /// Submissions of this connection the kernel still holds (multishot ones count once,
        /// until their last completion).
        inflight: u32,
        closing: bool,
        /// Poll mode: the buffer recv fills and send empties, and how far it is sent.
        buf: Box<[u8]>,
        len: usize,
        sent: usize,
        poll_armed: bool,
        recv_busy: bool,
        send_busy: bool,
        want_read: bool,
        /// Multishot mode: received buffers (id, sent so far, length) in order; the front one is
        /// being sent when `send_busy`.
        queue: VecDeque<(u16, usize, usize)>,
        recv_armed: bool,
    }

    /// The ring and what the loop needs beside it; `sq` pushes go through [`Loop::push`].
    struct Loop {
        mode: Mode,
        conns: Vec<Option<Conn>>,
        free: Vec<usize>,
        /// Connections whose multishot recv stopped for want of buffers.
        starved: Vec<usize>,
        pool_addr: *mut u8,
        st: Stats,
    }

    pub(super) fn run(port: u16, mode: Mode, st: Stats) -> io::Result<()> {
        // Declared before the ring, so dropped after it: the kernel may hold pointers into it.
        let mut pool = vec![0u8; usize::from(NBUFS) * BUF].into_boxed_slice();
        let mut builder = IoUring::builder();
        builder.setup_cqsize(16384);
        match std::env::var("URING_SETUP").as_deref() {
            Ok("plain") => {}
            Ok("coop") => drop(builder.setup_coop_taskrun().setup_taskrun_flag()),
            _ => drop(builder.setup_single_issuer().setup_defer_taskrun()),
        }
        let mut ring: IoUring = builder.build(4096)?;
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        println!(
            "uring_echo ({}) listening on {}",
            if mode == Mode::Poll {
                "poll"
            } else {
                "multishot"
            },
            listener.local_addr()?
        );
        let mut lp = Loop {
            mode,
            conns: Vec::new(),
            free: Vec::new(),
            starved: Vec::new(),
            pool_addr: pool.as_mut_ptr(),
            st,
        };
        let (submitter, mut sq, mut cq) = ring.split();
        let listen = opcode::PollAdd::new(types::Fd(listener.as_raw_fd()), POLLIN)
            .multi(true)
            .build()
            .user_data(ud(LISTENER, K_LISTEN));
        lp.push(&submitter, &mut sq, listen)?;
        if mode == Mode::Multishot {
            let provide = opcode::ProvideBuffers::new(lp.pool_addr, BUF as i32, NBUFS, 0, 0)
                .build()
                .user_data(ud(0, K_PROVIDE));
            lp.push(&submitter, &mut sq, provide)?;
        }
        loop {
            sq.sync();
            lp.st.syscalls += 1;
            lp.st.waits += 1;
            match submitter.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted) => lp.st.eintr += 1,
                Err(e) if e.raw_os_error() == Some(16) => {} // EBUSY: the CQ is full, drain it
                Err(e) => return Err(e),
            }
            cq.sync();
            let cqes: Vec<cqueue::Entry> = (&mut cq).collect();
            lp.st.cqes += cqes.len() as u64;
            lp.st.empty += u64::from(cqes.is_empty());
            for cqe in cqes {
                lp.complete(&submitter, &mut sq, &listener, cqe)?;
            }
            lp.st.turn();
        }
    }

    impl Loop {
        /// Queues one submission; when the queue is full, hands the queued ones to the kernel
        /// first (an extra io_uring_enter, counted).
        fn push(
            &mut self,
            sub: &Submitter<'_>,
            sq: &mut SubmissionQueue<'_>,
            e: squeue::Entry,
        ) -> io::Result<()> {
            loop {
                // SAFETY: see the module's docs: every entry built in this module names a
                // connection's buffer or the pool, both kept until the kernel is done with them.
                if unsafe { sq.push(&e) }.is_ok() {
                    return Ok(());
                }
                sq.sync();
                self.st.syscalls += 1;
                sub.submit()?;
                sq.sync();
            }
        }

        fn conn(&mut self, i: usize) -> &mut Conn {
            self.conns[i]
                .as_mut()
                .expect("a completion for a live connection")
        }

        fn complete(
            &mut self,
            sub: &Submitter<'_>,
            sq: &mut SubmissionQueue<'_>,
            listener: &TcpListener,
            cqe: cqueue::Entry,
        ) -> io::Result<()> {
            let (i, kind, res, flags) = (
                (cqe.user_data() >> 8) as usize,
                cqe.user_data() & 0xff,
                cqe.result(),
                cqe.flags(),
            );
            match kind {
                K_LISTEN => {
                    self.accept(sub, sq, listener)?;
                    if !cqueue::more(flags) {
                        let again = opcode::PollAdd::new(types::Fd(listener.as_raw_fd()), POLLIN)
                            .multi(true)
                            .build()
                            .user_data(ud(LISTENER, K_LISTEN));
                        self.push(sub, sq, again)?;
                    }
                    return Ok(());
                }
                // A failed cancel is expected (the operation had just ended).
                K_CANCEL => return Ok(()),
                K_PROVIDE => {
                    if res < 0 {
                        eprintln!(
                            "provide buffers failed: {}",
                            io::Error::from_raw_os_error(-res)
                        );
                    }
                    return Ok(());
                }
                _ => {}
            }
            match (self.mode, kind) {
                (Mode::Poll, K_POLL) => {
                    let c = self.conn(i);
                    if !cqueue::more(flags) {
                        c.poll_armed = false;
                        c.inflight -= 1;
                    }
                    if res < 0 && res != -125 {
                        c.closing = true;
                    } else if res > 0 {
                        c.want_read = true;
                    }
                }
                (Mode::Poll, K_RECV) => {
                    let c = self.conn(i);
                    c.inflight -= 1;
                    c.recv_busy = false;
                    if res == 0 || (res < 0 && res != -EAGAIN) {
                        c.closing = true;
                    } else if res > 0 {
                        let n = res as usize;
                        (c.len, c.sent) = (n, 0);
                        if n == c.buf.len() {
                            c.want_read = true;
                        }
                        self.st.msgs += 1;
                        self.st.bytes += n as u64;
                    }
                }
                (Mode::Poll, K_SEND) => {
                    let c = self.conn(i);
                    c.inflight -= 1;
                    c.send_busy = false;
                    if res < 0 {
                        c.closing = true;
                    } else {
                        c.sent += res as usize;
                    }
                }
                (Mode::Multishot, K_RECV) => {
                    if res > 0 {
                        let bid = cqueue::buffer_select(flags).expect("a provided buffer");
                        self.conn(i).queue.push_back((bid, 0, res as usize));
                        self.st.msgs += 1;
                        self.st.bytes += res as u64;
                    }
                    if !cqueue::more(flags) {
                        // Its last completion: the end of the stream, an error, no buffer left,
                        // or the kernel stopping the multishot as it may (re-armed in advance).
                        let c = self.conn(i);
                        c.recv_armed = false;
                        c.inflight -= 1;
                        if res == -ENOBUFS {
                            self.starved.push(i);
                        } else if res <= 0 {
                            c.closing = true;
                        }
                    }
                }
                (Mode::Multishot, K_SEND) => {
                    let c = self.conn(i);
                    c.inflight -= 1;
                    c.send_busy = false;
                    if res < 0 {
                        c.closing = true;
                    } else {
                        let front = c.queue.front_mut().expect("the buffer being sent");
                        front.1 += res as usize;
                        if front.1 == front.2 {
                            let (bid, _, _) = c.queue.pop_front().expect("the front");
                            self.give_back(sub, sq, bid)?;
                        }
                    }
                }
                _ => unreachable!("no such completion is submitted"),
            }
            self.advance(sub, sq, i)
        }

        /// Returns a provided buffer to the kernel, and restarts the receives that had run out.
        fn give_back(
            &mut self,
            sub: &Submitter<'_>,
            sq: &mut SubmissionQueue<'_>,
            bid: u16,
        ) -> io::Result<()> {
            // The buffer's address inside the pool (pointer arithmetic only, no access here).
            let addr = self.pool_addr.wrapping_add(usize::from(bid) * BUF);
            let e = opcode::ProvideBuffers::new(addr, BUF as i32, 1, 0, bid)
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(ud(0, K_PROVIDE));
            self.push(sub, sq, e)?;
            for j in std::mem::take(&mut self.starved) {
                self.advance(sub, sq, j)?;
            }
            Ok(())
        }

        /// Submits what a connection needs next, or frees it once it is over and the kernel
        /// holds nothing of it.
        fn advance(
            &mut self,
            sub: &Submitter<'_>,
            sq: &mut SubmissionQueue<'_>,
            i: usize,
        ) -> io::Result<()> {
            let mode = self.mode;
            let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
                return Ok(());
            };
            let fd = types::Fd(c.sock.as_raw_fd());
            let mut next: Vec<squeue::Entry> = Vec::new();
            if c.closing {
                // Cancelled once (the flag is cleared here; the multishot's last completion
                // still comes, and only it decrements `inflight`).
                let armed = if mode == Mode::Poll {
                    &mut c.poll_armed
                } else {
                    &mut c.recv_armed
                };
                if *armed {
                    *armed = false;
                    let target = ud(i, if mode == Mode::Poll { K_POLL } else { K_RECV });
                    next.push(
                        opcode::AsyncCancel::new(target)
                            .build()
                            .flags(squeue::Flags::SKIP_SUCCESS)
                            .user_data(ud(i, K_CANCEL)),
                    );
                }
            } else if mode == Mode::Poll {
                if !c.poll_armed {
                    // The kernel ended the multishot poll (it may): armed again.
                    next.push(
                        opcode::PollAdd::new(fd, POLLIN)
                            .multi(true)
                            .build()
                            .user_data(ud(i, K_POLL)),
                    );
                    c.poll_armed = true;
                    c.inflight += 1;
                }
                if c.sent < c.len && !c.send_busy {
                    let p = c.buf[c.sent..c.len].as_ptr();
                    next.push(
                        opcode::Send::new(fd, p, (c.len - c.sent) as u32)
                            .build()
                            .user_data(ud(i, K_SEND)),
                    );
                    c.send_busy = true;
                    c.inflight += 1;
                } else if c.sent >= c.len && c.want_read && !c.recv_busy && !c.send_busy {
                    c.want_read = false;
                    let p = c.buf.as_mut_ptr();
                    next.push(
                        opcode::Recv::new(fd, p, c.buf.len() as u32)
                            .build()
                            .user_data(ud(i, K_RECV)),
                    );
                    c.recv_busy = true;
                    c.inflight += 1;
                }
            } else {
                if !c.send_busy {
                    if let Some(&(bid, off, len)) = c.queue.front() {
                        let p = self.pool_addr.wrapping_add(usize::from(bid) * BUF + off);
                        next.push(
                            opcode::Send::new(fd, p, (len - off) as u32)
                                .build()
                                .user_data(ud(i, K_SEND)),
                        );
                        c.send_busy = true;
                        c.inflight += 1;
                    }
                }
                if !c.recv_armed && !self.starved.contains(&i) {
                    next.push(
                        opcode::RecvMulti::new(fd, 0)
                            .build()
                            .user_data(ud(i, K_RECV)),
                    );
                    c.recv_armed = true;
                    c.inflight += 1;
                }
            }
            let done = c.closing && c.inflight == 0;
            for e in next {
                self.push(sub, sq, e)?;
            }
            if done {
                let c = self.conns[i].take().expect("the connection above");
                for (bid, _, _) in c.queue {
                    self.give_back(sub, sq, bid)?;
                }
                self.starved.retain(|&j| j != i);
                self.free.push(i);
            }
            Ok(())
        }

        fn accept(
            &mut self,
            sub: &Submitter<'_>,
            sq: &mut SubmissionQueue<'_>,
            listener: &TcpListener,
        ) -> io::Result<()> {
            loop {
                self.st.syscalls += 1;
                match listener.accept() {
                    Ok((sock, _)) => {
                        let _ = sock.set_nodelay(true);
                        let i = self.free.pop().unwrap_or_else(|| {
                            self.conns.push(None);
                            self.conns.len() - 1
                        });
                        let poll = self.mode == Mode::Poll;
                        let fd = types::Fd(sock.as_raw_fd());
                        self.conns[i] = Some(Conn {
                            sock,
                            inflight: u32::from(poll),
                            closing: false,
                            buf: vec![0u8; if poll { CONN_BUF } else { 0 }].into_boxed_slice(),
                            len: 0,
                            sent: 0,
                            poll_armed: poll,
                            recv_busy: false,
                            send_busy: false,
                            // Bytes may have come with the handshake, before the poll is armed.
                            want_read: poll,
                            queue: VecDeque::new(),
                            recv_armed: false,
                        });
                        if poll {
                            let e = opcode::PollAdd::new(fd, POLLIN)
                                .multi(true)
                                .build()
                                .user_data(ud(i, K_POLL));
                            self.push(sub, sq, e)?;
                        }
                        self.advance(sub, sq, i)?;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => {
                        eprintln!("accept failed: {e}");
                        return Ok(());
                    }
                }
            }
        }
    }
}
