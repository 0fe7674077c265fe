//! Port forwarding over real sockets: to a Torsion echo server, to python's http.server
//! fetched with curl, large transfers both ways, flow control against a slow reader, and a
//! destination that refuses.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::Capture;
use torsion::protocols::portforward::ProxyFactory;
use torsion::tcp::ListeningPort;
use torsion::threads::defer_to_thread;
use torsion::{factory, reactor, Failure, Protocol, Transport};

const TIMEOUT: Duration = Duration::from_secs(30);

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

fn listen<F: torsion::Factory>(f: F) -> ListeningPort {
    reactor().listen_tcp_on(0, f, "127.0.0.1").unwrap()
}

fn forwarder_to(dest: u16) -> ListeningPort {
    listen(ProxyFactory::new("127.0.0.1", dest).with_timeout(10.0))
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// The byte at offset `i` of a test stream (a pattern that catches reordering and loss).
fn pattern(i: usize, seed: u8) -> u8 {
    (i.wrapping_mul(31) % 251) as u8 ^ seed
}

#[torsion::test]
async fn forwards_to_an_echo_server() -> Result<(), Failure> {
    let echo = listen(factory(|| Echo));
    let fwd = forwarder_to(echo.get_host().port().unwrap());
    let p = fwd.get_host().port().unwrap();
    let got = defer_to_thread(move || {
        let mut s = connect(p);
        s.write_all(b"through the forwarder").unwrap();
        let mut buf = [0u8; 21];
        s.read_exact(&mut buf).unwrap();
        buf
    })
    .await?;
    assert_eq!(&got, b"through the forwarder");
    fwd.stop_listening().await?;
    echo.stop_listening().await?;
    Ok(())
}

/// Sends `total` pattern bytes on connection and counts (and checks) what it receives.
struct Sink {
    received: Rc<Cell<usize>>,
    bad: Rc<Cell<bool>>,
    total: usize,
}

impl Protocol for Sink {
    fn connection_made(&mut self, t: &Transport) {
        let data: Vec<u8> = (0..self.total).map(|i| pattern(i, 0x5a)).collect();
        t.write(&data);
    }
    fn data_received(&mut self, _: &Transport, data: &[u8]) {
        let at = self.received.get();
        if data
            .iter()
            .enumerate()
            .any(|(k, b)| *b != pattern(at + k, 0xa5))
        {
            self.bad.set(true);
        }
        self.received.set(at + data.len());
    }
}

#[torsion::test]
async fn large_transfers_both_ways_at_once() -> Result<(), Failure> {
    const TOTAL: usize = 8 * 1024 * 1024;
    let received = Rc::new(Cell::new(0));
    let bad = Rc::new(Cell::new(false));
    let (r, b) = (received.clone(), bad.clone());
    let dest = listen(factory(move || Sink {
        received: r.clone(),
        bad: b.clone(),
        total: TOTAL,
    }));
    let fwd = forwarder_to(dest.get_host().port().unwrap());
    let p = fwd.get_host().port().unwrap();
    let client_got = defer_to_thread(move || {
        let s = connect(p);
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let data: Vec<u8> = (0..TOTAL).map(|i| pattern(i, 0xa5)).collect();
            for chunk in data.chunks(100_000) {
                w.write_all(chunk).unwrap();
            }
        });
        let mut got = Vec::with_capacity(TOTAL);
        let mut reader = s.take(TOTAL as u64);
        reader.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        got
    })
    .await?;
    assert_eq!(client_got.len(), TOTAL);
    assert!(client_got
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(i, 0x5a)));
    // The destination has all of the client's bytes, in order.
    let deadline = Instant::now() + TIMEOUT;
    while received.get() < TOTAL {
        assert!(
            Instant::now() < deadline,
            "only {} bytes arrived",
            received.get()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(received.get(), TOTAL);
    assert!(!bad.get(), "the bytes arrived changed or out of order");
    fwd.stop_listening().await?;
    dest.stop_listening().await?;
    Ok(())
}

/// Writes pattern bytes as fast as its own transport drains, counting them.
struct Flood {
    written: Rc<Cell<usize>>,
    total: usize,
}

fn flood_more(t: Transport, written: Rc<Cell<usize>>, total: usize) {
    while written.get() < total && t.buffered_size() < 256 * 1024 && t.is_connected() {
        let at = written.get();
        let n = (total - at).min(64 * 1024);
        let chunk: Vec<u8> = (at..at + n).map(|i| pattern(i, 0x33)).collect();
        t.write(&chunk);
        written.set(at + n);
    }
    if written.get() < total && t.is_connected() {
        let _ = reactor().call_later(0.001, move || flood_more(t, written, total));
    }
}

impl Protocol for Flood {
    fn connection_made(&mut self, t: &Transport) {
        flood_more(t.clone(), self.written.clone(), self.total);
    }
    fn data_received(&mut self, _: &Transport, _: &[u8]) {}
}

#[torsion::test]
async fn a_slow_reader_pauses_the_destination() -> Result<(), Failure> {
    const TOTAL: usize = 64 * 1024 * 1024;
    let written = Rc::new(Cell::new(0));
    let w = written.clone();
    let dest = listen(factory(move || Flood {
        written: w.clone(),
        total: TOTAL,
    }));
    let fwd = forwarder_to(dest.get_host().port().unwrap());
    let p = fwd.get_host().port().unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let client = defer_to_thread(move || {
        let mut s = connect(p);
        go_rx.recv().unwrap(); // read nothing until told
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        let mut ok = true;
        while total < TOTAL {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed after {total} bytes");
            ok &= buf[..n]
                .iter()
                .enumerate()
                .all(|(k, b)| *b == pattern(total + k, 0x33));
            total += n;
        }
        (total, ok)
    });
    // Wait until the destination cannot write any more: its count stops moving.
    let deadline = Instant::now() + TIMEOUT;
    let mut last = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = written.get();
        if now != last.0 {
            last = (now, Instant::now());
        } else if now > 0 && last.1.elapsed() > Duration::from_millis(500) {
            break;
        }
        assert!(Instant::now() < deadline, "the destination never stalled");
    }
    // Kernel buffers hold some megabytes; the forwarder holds at most about HIGH_WATER.
    // Without flow control the forwarder would have read all 64 MiB.
    let stalled_at = written.get();
    eprintln!("the destination stalled after writing {stalled_at} bytes");
    assert!(
        stalled_at < 24 * 1024 * 1024,
        "{stalled_at} bytes left the destination while nobody read"
    );
    go_tx.send(()).unwrap();
    let (total, ok) = client.await?;
    assert_eq!(total, TOTAL);
    assert!(ok, "the bytes arrived changed or out of order");
    // The client has closed: the forwarder closes both of its connections, and the
    // destination its own; wait for that before the test ends (a busy machine takes a while).
    while fwd.connection_count() + dest.connection_count() > 0 {
        assert!(Instant::now() < deadline, "the connections never closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fwd.stop_listening().await?;
    dest.stop_listening().await?;
    Ok(())
}

#[test]
fn a_refused_destination_closes_the_client_with_a_log_line() {
    let capture = Capture::default();
    capture.during(|| {
        torsion::testing::run_test("refused", 30.0, || async {
            // A port nobody listens on.
            let nobody = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let fwd = forwarder_to(nobody);
            let p = fwd.get_host().port().unwrap();
            let got = defer_to_thread(move || {
                let mut s = connect(p);
                let _ = s.write_all(b"hello?");
                let mut out = Vec::new();
                let r = s.read_to_end(&mut out);
                (r.is_ok() || r.is_err(), out)
            })
            .await?;
            assert_eq!(got, (true, Vec::new()), "the client got data or no close");
            fwd.stop_listening().await?;
            Ok::<(), Failure>(())
        });
    });
    let out = capture.text();
    assert!(out.contains("port forward: cannot connect"), "{out}");
    assert!(out.contains("connection closed"), "{out}");
}

/// python3's http.server serving a folder, killed when the test ends.
struct HttpServer(Child, std::path::PathBuf);

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[torsion::test(timeout = 60)]
async fn curl_through_the_forwarder_to_python_http_server() -> Result<(), Failure> {
    if Command::new("python3").arg("--version").output().is_err()
        || Command::new("curl").arg("--version").output().is_err()
    {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            "python3 or curl is not installed",
        );
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("torsion-pf-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let body: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    std::fs::write(dir.join("big.txt"), &body)?;
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(http_port.to_string())
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _server = HttpServer(child, dir);
    let fwd = forwarder_to(http_port);
    let p = fwd.get_host().port().unwrap();
    let out = defer_to_thread(move || {
        // Wait for python to listen, then fetch through the forwarder.
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Command::new("curl")
            .args(["-sS", "--max-time", "20"])
            .arg(format!("http://127.0.0.1:{p}/big.txt"))
            .output()
            .unwrap()
    })
    .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), body);
    fwd.stop_listening().await?;
    Ok(())
}

#[test]
fn shutting_down_while_the_destination_connects_stops_the_attempt() {
    let capture = Capture::default();
    let (_full, dest) = full_listener();
    let client_done = capture.during(|| {
        let r = torsion::Reactor::new();
        r.set_install_signal_handlers(false);
        // The destination's accept queue is full: connecting to it hangs.
        let fwd = r
            .listen_tcp_on(0, ProxyFactory::new("127.0.0.1", dest), "127.0.0.1")
            .unwrap();
        let p = fwd.get_host().port().unwrap();
        let (tx, rx) = mpsc::channel();
        let client = std::thread::spawn(move || {
            let mut s = connect(p);
            tx.send(()).unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).map(|_| out)
        });
        // Stop once the forwarder has the connection and is connecting onwards.
        r.call_later(0.0, move || {
            let _ = rx.recv_timeout(TIMEOUT);
            let _ = reactor().call_later(0.2, || reactor().stop());
        });
        r.run().unwrap();
        client.join().unwrap()
    });
    // The client's connection was closed by the shutdown, with nothing sent.
    assert!(client_done.map(|o| o.is_empty()).unwrap_or(true));
    let out = capture.text();
    assert!(!out.contains("panicked"), "{out}");
}

/// A listener that never accepts, its queue filled until one more connection attempt hangs;
/// returned with the connections that fill it, and its port.
fn full_listener() -> ((socket2::Socket, Vec<TcpStream>), u16) {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    l.listen(0).unwrap();
    let port = l.local_addr().unwrap().as_socket().unwrap().port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut filling = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => filling.push(s),
            Err(_) => return ((l, filling), port), // the queue is full
        }
    }
    panic!("the accept queue never filled");
}
