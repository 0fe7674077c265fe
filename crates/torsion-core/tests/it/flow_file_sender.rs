//! `FileSender` over real TCP: a multi-megabyte file to a slow reader arrives whole while
//! the server holds at most one chunk; a read error fails the transfer and closes the
//! connection; a client that leaves stops it. And over `StringTransport`, without sockets.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use torsion::producer::{ProducerError, ProducerStopped};
use torsion::protocols::basic::FileSender;
use torsion::task::LoopingCall;
use torsion::testing::{failure_result_of, success_result_of, StringTransport};
use torsion::ConnectionEnd;
use torsion::{factory, reactor, Deferred, Failure, Protocol, Transport};

const SIZE: usize = 24 << 20;

/// How a transfer ended, once it has.
type Outcome = Rc<RefCell<Option<Result<u64, Failure>>>>;

fn content(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

fn temp_file(name: &str, len: usize) -> io::Result<std::path::PathBuf> {
    let path = std::env::temp_dir().join(format!("torsion-flow-{name}-{}", std::process::id()));
    let data: Vec<u8> = (0..len).map(content).collect();
    std::fs::write(&path, data)?;
    Ok(path)
}

/// Sends what `open` gives when a client connects; reports the transfer's outcome.
struct Sender {
    open: Rc<dyn Fn() -> Box<dyn Read>>,
    outcome: Outcome,
    done: Rc<RefCell<Option<torsion::defer::Trigger<()>>>>,
    transports: Rc<RefCell<Vec<Transport>>>,
}

impl Protocol for Sender {
    fn connection_made(&mut self, t: &Transport) {
        self.transports.borrow_mut().push(t.clone());
        let (out, t2) = (self.outcome.clone(), t.clone());
        FileSender::begin_file_transfer((self.open)(), t).add_both(move |r| {
            let ok = r.is_ok();
            *out.borrow_mut() = Some(r);
            if ok {
                t2.lose_connection();
            }
            Ok::<(), Failure>(())
        });
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        if let Some(t) = self.done.borrow_mut().take() {
            t.callback(());
        }
    }
}

fn serve(
    open: impl Fn() -> Box<dyn Read> + 'static,
    transports: Rc<RefCell<Vec<Transport>>>,
) -> Result<(torsion::tcp::ListeningPort, Outcome, Deferred<()>), Failure> {
    let open: Rc<dyn Fn() -> Box<dyn Read>> = Rc::new(open);
    let outcome: Outcome = Rc::default();
    let closed = Deferred::new();
    let done = Rc::new(RefCell::new(Some(closed.trigger())));
    let (o, d) = (outcome.clone(), done.clone());
    let port = reactor().listen_tcp_on(
        0,
        factory(move || Sender {
            open: open.clone(),
            outcome: o.clone(),
            done: d.clone(),
            transports: transports.clone(),
        }),
        "127.0.0.1",
    )?;
    Ok((port, outcome, closed))
}

/// Reads everything with a small receive buffer, 8 KiB at a time, pausing 1 ms every
/// 256 KiB; returns the bytes read and where the first wrong byte was.
fn slow_reader(addr: SocketAddr, stop_after: Option<usize>) -> io::Result<(usize, Option<usize>)> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_recv_buffer_size(16 * 1024)?;
    sock.connect(&addr.into())?;
    let mut sock: std::net::TcpStream = sock.into();
    sock.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut buf = [0u8; 8 * 1024];
    let (mut pos, mut bad, mut since) = (0usize, None, 0usize);
    loop {
        let n = match sock.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        if bad.is_none() {
            if let Some(i) = (0..n).find(|&i| buf[i] != content(pos + i)) {
                bad = Some(pos + i);
            }
        }
        pos += n;
        since += n;
        if since >= 256 * 1024 {
            since = 0;
            std::thread::sleep(Duration::from_millis(1));
        }
        if stop_after.is_some_and(|s| pos >= s) {
            return Ok((pos, bad)); // drops the socket: the client leaves
        }
    }
    Ok((pos, bad))
}

#[torsion::test(timeout = 60)]
async fn a_large_file_reaches_a_slow_reader_whole_with_one_chunk_buffered() -> Result<(), Failure> {
    let path = temp_file("big", SIZE)?;
    let p = path.clone();
    let transports: Rc<RefCell<Vec<Transport>>> = Rc::default();
    let (port, outcome, closed) = serve(
        move || Box::new(std::fs::File::open(&p).unwrap()),
        transports.clone(),
    )?;
    // Sample the server's write buffer every millisecond while the transfer runs.
    let max_buffered = Rc::new(Cell::new(0usize));
    let (m, tr) = (max_buffered.clone(), transports.clone());
    let sampler = LoopingCall::new(move || {
        for t in tr.borrow().iter() {
            m.set(m.get().max(t.buffered_size()));
        }
    });
    let addr = port.get_host().socket_addr().unwrap();
    let reading = torsion::threads::defer_to_thread(move || slow_reader(addr, None));
    let sampling = sampler.start(0.001, true);
    let (read, bad) = reading.await??;
    closed.await?;
    sampler.stop();
    sampling.await?;
    port.stop_listening().await?;
    std::fs::remove_file(&path)?;
    assert_eq!(read, SIZE);
    assert_eq!(bad, None, "the bytes arrived altered");
    let sent = outcome.borrow_mut().take().expect("the transfer ended")?;
    assert_eq!(sent, SIZE as u64);
    eprintln!(
        "flow_file_sender: {} MiB sent; server write buffer max sampled {} bytes (chunk {})",
        SIZE >> 20,
        max_buffered.get(),
        FileSender::CHUNK_SIZE
    );
    assert!(max_buffered.get() <= FileSender::CHUNK_SIZE);
    Ok(())
}

/// Gives `good` bytes of the pattern, then fails.
struct Failing {
    pos: usize,
    good: usize,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.good {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.good - self.pos);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = content(self.pos + i);
        }
        self.pos += n;
        Ok(n)
    }
}

#[torsion::test(timeout = 60)]
async fn a_read_error_fails_the_transfer_and_closes_the_connection() -> Result<(), Failure> {
    const GOOD: usize = 1_000_000;
    let (port, outcome, closed) =
        serve(|| Box::new(Failing { pos: 0, good: GOOD }), Rc::default())?;
    let addr = port.get_host().socket_addr().unwrap();
    let (read, bad) = torsion::threads::defer_to_thread(move || slow_reader(addr, None)).await??;
    closed.await?;
    port.stop_listening().await?;
    assert_eq!(
        (read, bad),
        (GOOD, None),
        "what was read before the error is sent"
    );
    let f = outcome.borrow_mut().take().unwrap().unwrap_err();
    let e = f.downcast_ref::<io::Error>().expect("the I/O error");
    assert_eq!(e.to_string(), "disk on fire");
    Ok(())
}

#[torsion::test(timeout = 60)]
async fn a_client_that_leaves_stops_the_transfer() -> Result<(), Failure> {
    let path = temp_file("leave", SIZE)?;
    let p = path.clone();
    let (port, outcome, closed) = serve(
        move || Box::new(std::fs::File::open(&p).unwrap()),
        Rc::default(),
    )?;
    let addr = port.get_host().socket_addr().unwrap();
    let (read, _) =
        torsion::threads::defer_to_thread(move || slow_reader(addr, Some(1 << 20))).await??;
    closed.await?;
    port.stop_listening().await?;
    std::fs::remove_file(&path)?;
    assert!(read < SIZE);
    let f = outcome.borrow_mut().take().unwrap().unwrap_err();
    assert!(f.check::<ProducerStopped>(), "{f:?}");
    Ok(())
}

#[test]
fn over_a_string_transport_each_resume_sends_one_chunk() {
    let st = StringTransport::new();
    let data: Vec<u8> = (0..10_000).map(content).collect();
    let d = FileSender::begin_file_transfer_chunked(
        io::Cursor::new(data.clone()),
        &st.transport(),
        4096,
    );
    assert!(!st.streaming(), "a pull producer");
    let mut calls = 0;
    while let Some(p) = st.producer() {
        p.resume_producing();
        calls += 1;
        assert!(st.value().len() <= calls * 4096);
    }
    assert_eq!(calls, 4, "three chunks and the end");
    assert_eq!(st.value(), data);
    assert_eq!(success_result_of(&d), 10_000);
    assert!(!st.disconnecting());
}

#[test]
fn over_a_string_transport_a_read_error_closes_and_a_stop_fails() {
    let st = StringTransport::new();
    let d = FileSender::begin_file_transfer(Failing { pos: 0, good: 10 }, &st.transport());
    let p = st.producer().unwrap();
    p.resume_producing();
    p.resume_producing();
    assert!(st.producer().is_none() && st.disconnecting());
    assert_eq!(st.value().len(), 10);
    assert!(failure_result_of(&d).check::<io::Error>());

    let st = StringTransport::new();
    let d = FileSender::begin_file_transfer(io::repeat(b'r'), &st.transport());
    st.producer().unwrap().resume_producing();
    st.stop_producer();
    assert!(failure_result_of(&d).check::<ProducerStopped>());
    assert_eq!(st.value().len(), FileSender::CHUNK_SIZE);
}

#[test]
fn a_transport_with_a_producer_refuses_a_second_transfer() {
    let st = StringTransport::new();
    let first = FileSender::begin_file_transfer(io::repeat(0), &st.transport());
    let second = FileSender::begin_file_transfer(io::repeat(0), &st.transport());
    let f = failure_result_of(&second);
    assert_eq!(
        f.downcast_ref::<ProducerError>(),
        Some(&ProducerError::AlreadyRegistered)
    );
    st.stop_producer();
    assert!(failure_result_of(&first).check::<ProducerStopped>());
}
