//! The floor of an SMTP server delivering into a Maildir on this kernel and disk: the least
//! any server can spend per message under scenario 9's load (`smtp_send --conns 20 --size
//! 10240`). One thread, one epoll loop (mio); each command gets its fixed reply without being
//! parsed, the body is found by its `CRLF.CRLF` end and written as it came (no dot-unstuffing,
//! no `Received:` header, no CRLF to LF), and each message makes the file system calls
//! `torsiond mail` makes: `openat` in `tmp/`, `write`, `fdatasync`, `close`, `renameat` into
//! `new/`, and one `fsync` of `new/` per `--group` messages (16 by default: the group size
//! `torsiond mail` reaches under this load, bench/findings.md).
//! With flushes, the file work runs on `--threads` worker threads (10 by default, as the
//! reactor's pool) so that the flushes overlap as the real server's do (one at a time, each
//! waits for the disk, and the file system batches overlapping ones); each answer `250` goes
//! out when its message is in `new/`. Without flushes (`--sync 0`, as `twistd mail` delivers)
//! the loop writes each message itself. What this measures is the CPU a message costs
//! (bench/findings.md, "SMTP: the kernel's floor").
//!
//! ```text
//! smtp_floor --port 8025 --dir /tmp/floor-maildir [--group 16] # durable, as torsiond mail
//! smtp_floor --port 8025 --dir /tmp/floor-maildir --sync 0   # no flushes, as twistd mail
//! ```
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{fdatasync, fsync};

const LISTENER: Token = Token(usize::MAX);
const DELIVERED: Token = Token(usize::MAX - 1);

/// A message for a worker: the connection's slot, its serial number, the body.
type Job = (usize, u64, Vec<u8>);

/// One client connection.
struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet handled.
    inbuf: Vec<u8>,
    /// In the body of a message (after `354`).
    in_data: bool,
    /// The body so far.
    message: Vec<u8>,
}

fn main() -> io::Result<()> {
    let port: u16 = torsion_bench::arg("--port", 8025);
    let dir: String = torsion_bench::arg("--dir", "/tmp/smtp-floor".to_owned());
    let sync: u8 = torsion_bench::arg("--sync", 1);
    let group: u64 = torsion_bench::arg("--group", 16).max(1);
    let threads: usize = torsion_bench::arg("--threads", 10);
    let dir = PathBuf::from(dir);
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let open_dir =
        |sub: &str| -> io::Result<OwnedFd> { Ok(OwnedFd::from(File::open(dir.join(sub))?)) };
    let (tmp, new) = (Arc::new(open_dir("tmp")?), Arc::new(open_dir("new")?));
    let mut poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), DELIVERED)?);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel::<usize>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let stored = Arc::new(AtomicU64::new(0));
    if sync != 0 {
        for _ in 0..threads.max(1) {
            let (jobs, done, waker) = (job_rx.clone(), done_tx.clone(), waker.clone());
            let (tmp, new, stored) = (tmp.clone(), new.clone(), stored.clone());
            std::thread::spawn(move || loop {
                let job = jobs.lock().expect("the job queue").recv();
                let Ok((slot, serial, body)) = job else {
                    return;
                };
                deliver(&tmp, &new, &body, serial, true).expect("delivery");
                if (stored.fetch_add(1, Ordering::Relaxed) + 1) % group == 0 {
                    fsync(&*new).expect("flushing new/");
                }
                if done.send(slot).is_err() || waker.wake().is_err() {
                    return;
                }
            });
        }
    }
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut events = Events::with_capacity(256);
    let mut serial = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for ev in &events {
            if ev.token() == DELIVERED {
                for slot in done_rx.try_iter() {
                    if let Some(Some(c)) = conns.get_mut(slot) {
                        let _ = c.stream.write_all(b"250 2.0.0 queued\r\n");
                    }
                }
                continue;
            }
            if ev.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    stream.set_nodelay(true)?;
                    let slot = conns.iter().position(Option::is_none).unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    poll.registry()
                        .register(&mut stream, Token(slot), Interest::READABLE)?;
                    stream.write_all(b"220 floor ESMTP\r\n")?;
                    conns[slot] = Some(Conn {
                        stream,
                        inbuf: Vec::new(),
                        in_data: false,
                        message: Vec::new(),
                    });
                }
                continue;
            }
            let slot = ev.token().0;
            let Some(conn) = conns[slot].as_mut() else {
                continue;
            };
            let mut closed = false;
            loop {
                match conn.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => conn.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            let mut replies = Vec::new();
            let mut start = 0;
            while start < conn.inbuf.len() {
                let rest = &conn.inbuf[start..];
                if conn.in_data {
                    // The end of the body: CRLF . CRLF (the body starts on a fresh line);
                    // only the new bytes are searched, with the four before them.
                    let from = conn.message.len().saturating_sub(4);
                    conn.message.extend_from_slice(rest);
                    start = conn.inbuf.len();
                    if let Some(end) = find(&conn.message[from..], b"\r\n.\r\n") {
                        let body_len = from + end + 2;
                        // What came after the end marker goes back to the commands.
                        let after = conn.message.len() - (body_len + 3);
                        start -= after;
                        serial += 1;
                        if sync != 0 {
                            let body = conn.message[..body_len].to_vec();
                            job_tx
                                .send((slot, serial, body))
                                .map_err(|_| io::Error::other("the workers are gone"))?;
                        } else {
                            deliver(&tmp, &new, &conn.message[..body_len], serial, false)?;
                            replies.extend_from_slice(b"250 2.0.0 queued\r\n");
                        }
                        conn.message.clear();
                        conn.in_data = false;
                    }
                    continue;
                }
                let Some(eol) = find(rest, b"\r\n") else {
                    break;
                };
                let reply: &[u8] = match rest.get(..4) {
                    Some(b"EHLO") | Some(b"HELO") => b"250 floor\r\n",
                    Some(b"MAIL") | Some(b"RCPT") => b"250 2.1.0 ok\r\n",
                    Some(b"DATA") => {
                        conn.in_data = true;
                        b"354 go ahead\r\n"
                    }
                    Some(b"QUIT") => {
                        closed = true;
                        b"221 bye\r\n"
                    }
                    _ => b"500 what\r\n",
                };
                replies.extend_from_slice(reply);
                start += eol + 2;
            }
            conn.inbuf.drain(..start);
            if !replies.is_empty() && conn.stream.write_all(&replies).is_err() {
                closed = true;
            }
            if closed {
                if let Some(mut c) = conns[slot].take() {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
            }
        }
    }
}

/// Writes one message into `tmp/`, flushes it if `flush`, and moves it into `new/`.
fn deliver(tmp: &OwnedFd, new: &OwnedFd, body: &[u8], serial: u64, flush: bool) -> io::Result<()> {
    let name = format!("{serial}.floor");
    let fd = openat(
        tmp,
        name.as_str(),
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_EXCL | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    let mut file = File::from(fd);
    file.write_all(body)?;
    if flush {
        fdatasync(&file)?;
    }
    drop(file);
    renameat(tmp, name.as_str(), new, name.as_str())?;
    Ok(())
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}
