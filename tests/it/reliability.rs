//! Hostile clients against real servers (`torsiond web`, the `chat_server` example), each
//! asserting that the server's resident memory (`VmRSS` in `/proc/PID/status`) grows by less
//! than a bound, that the server closes what it should within its configured time-out, and
//! that a well-behaved client is still served during or after the attack.
//!
//! The short form runs with the other tests (small counts, seconds each). The long form,
//! `TORSION_RELIABILITY=long` (what `scripts/reliability` sets, with release binaries), runs
//! the full sizes; every test prints a `RELIABILITY|` line of figures (clients, RSS
//! before, after and at its peak, time to close) that the script gathers into a table.

use crate::support::{self, Running, TempFile};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// The most the server's resident memory may grow under any attack.
const RSS_BOUND_KB: u64 = 32 * 1024;

/// How long starting a server may take (a build included).
const START: Duration = Duration::from_secs(600);

/// True for the long form (`TORSION_RELIABILITY=long`).
fn long() -> bool {
    std::env::var("TORSION_RELIABILITY").is_ok_and(|v| v == "long")
}

/// `short` in the normal test run, `long` in the long form.
fn size(short: usize, long_size: usize) -> usize {
    if long() {
        long_size
    } else {
        short
    }
}

/// `cargo run` of a binary of this workspace (`--release` in the long form), standard input
/// closed. Cargo replaces itself with the program, so the child's pid is the server's.
fn cargo_run(target: &[&str], args: &[&str], nofile: Option<u32>) -> Command {
    let mut command = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}"))
                .arg("--")
                .arg(env!("CARGO"));
            c
        }
        None => Command::new(env!("CARGO")),
    };
    command.args(["run", "--quiet"]);
    if long() {
        command.arg("--release");
    }
    command
        .args(target)
        .arg("--")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A server under attack: the process, its pid, the lines it prints, and the ports it said
/// it listens on.
struct Server {
    _child: Running,
    pid: u32,
    lines: mpsc::Receiver<String>,
    ports: Vec<u16>,
}

impl Server {
    /// Starts `command` and waits for `listeners` lines containing `needle`, each ending in
    /// `:PORT`.
    fn start(mut command: Command, needle: &str, listeners: usize) -> Server {
        let mut child = command.spawn().expect("start the server");
        let (tx, lines) = mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for pipe in [out, err] {
            let rx = support::lines(pipe);
            let tx = tx.clone();
            thread::spawn(move || {
                for line in rx {
                    let _ = tx.send(line);
                }
            });
        }
        let pid = child.id();
        let child = Running(child);
        let deadline = Instant::now() + START;
        let mut ports = Vec::new();
        while ports.len() < listeners {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the server did not say {needle:?}"));
            if let Some((_, rest)) = line.split_once(needle) {
                let port = rest
                    .trim()
                    .rsplit(':')
                    .next()
                    .and_then(|p| {
                        p.trim_end_matches(|c: char| !c.is_ascii_digit())
                            .parse()
                            .ok()
                    })
                    .unwrap_or_else(|| panic!("no port in {line:?}"));
                ports.push(port);
            }
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(
            !exe.ends_with("cargo") && !exe.ends_with("prlimit"),
            "pid {pid} is {exe:?}, not the server"
        );
        Server {
            _child: child,
            pid,
            lines,
            ports,
        }
    }

    /// `torsiond web ARGS` (the listeners given in ARGS), under a descriptor limit if given.
    fn web(args: &[&str], listeners: usize, nofile: Option<u32>) -> Server {
        let mut all = vec!["web", "--no-access-log"];
        all.extend_from_slice(args);
        Server::start(
            cargo_run(&["-p", "torsiond", "--bin", "torsiond"], &all, nofile),
            "listening on ",
            listeners,
        )
    }

    /// `VmRSS` in KiB.
    fn rss_kb(&self) -> u64 {
        rss_kb(self.pid)
    }

    /// Open descriptors.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Open descriptors once the count has not changed for 300 ms (a connection just made
    /// may not have been accepted yet).
    fn settled_fds(&self) -> usize {
        let mut last = self.fds();
        let mut since = Instant::now();
        let start = Instant::now();
        while since.elapsed() < Duration::from_millis(300) && start.elapsed() < START {
            thread::sleep(Duration::from_millis(20));
            let now = self.fds();
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
        last
    }

    /// What an attack is measured against: the settled descriptor count, the resident memory
    /// before it, and a sampler of its peak from now on.
    fn baseline(&self) -> (usize, u64, Peak) {
        let fds = self.settled_fds();
        let before = self.rss_kb();
        (fds, before, Peak::watch(self.pid))
    }

    /// CPU time used so far, in clock ticks (user and system).
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        // The fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Waits (at most `limit`) until at most `n` descriptors are open; how long it took.
    fn fds_down_to(&self, n: usize, limit: Duration) -> Duration {
        let start = Instant::now();
        while self.fds() > n {
            assert!(
                start.elapsed() < limit,
                "the server still has {} descriptors open after {limit:?} (expected {n})",
                self.fds()
            );
            thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }

    /// The lines printed so far.
    fn printed(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples a process's `VmRSS` every 10 ms until stopped; the peak seen.
struct Peak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
}

impl Peak {
    fn watch(pid: u32) -> Peak {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kb(pid)));
        let (s, p) = (stop.clone(), peak.clone());
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kb(pid), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(10));
            }
        });
        Peak { stop, peak }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for Peak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One attack's figures: printed as a `RELIABILITY|` line and checked against the bound.
struct Figures {
    attack: String,
    clients: usize,
    before_kb: u64,
    peak_kb: u64,
    after_kb: u64,
    close: Option<Duration>,
}

impl Figures {
    fn report(&self) {
        // The sampler may have missed a peak that the last reading shows.
        let peak_kb = self.peak_kb.max(self.after_kb);
        let mb = |kb: u64| kb as f64 / 1024.0;
        eprintln!(
            "RELIABILITY|{}|{}|{:.1}|{:.1}|{:.1}|{}",
            self.attack,
            self.clients,
            mb(self.before_kb),
            mb(self.after_kb),
            mb(peak_kb),
            self.close
                .map_or("-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
        );
        assert!(
            peak_kb.saturating_sub(self.before_kb) < RSS_BOUND_KB,
            "{}: the server grew from {} KiB to a peak of {} KiB (bound {} KiB)",
            self.attack,
            self.before_kb,
            peak_kb,
            RSS_BOUND_KB
        );
    }
}

/// A file of `len` bytes in a folder of its own, for `torsiond web --path`.
struct Folder {
    dir: std::path::PathBuf,
}

impl Folder {
    fn with_file(name: &str, len: usize) -> Folder {
        let dir = support::temp_path("reliability", "");
        std::fs::create_dir_all(&dir).unwrap();
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join(name), body).unwrap();
        Folder { dir }
    }

    fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connect to the server")
}

/// A well-behaved client: `GET path` with `Connection: close`; the status line and how many
/// body bytes came.
fn get(port: u16, path: &str) -> (String, usize) {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read the answer");
    let text = String::from_utf8_lossy(&got);
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.find("\r\n\r\n").map_or(0, |i| got.len() - i - 4);
    (status, body)
}

/// Asserts that a well-behaved client gets the whole `len`-byte file at `path`.
fn served(port: u16, path: &str, len: usize) {
    let (status, body) = get(port, path);
    assert!(status.contains(" 200 "), "a good client got {status:?}");
    assert_eq!(body, len, "a good client got a cut body");
}

/// A plain `tcp:0` listener on this machine, with the send timeout given.
fn plain(send_timeout: u32) -> String {
    format!("tcp:0:interface=127.0.0.1:sendTimeout={send_timeout}")
}

#[test]
fn a_pipelining_client_that_never_reads_holds_bounded_memory() {
    const FILE: usize = 64 * 1024;
    let requests = size(2_000, 20_000);
    let folder = Folder::with_file("f", FILE);
    let server = Server::web(&["--path", folder.path(), "--listen", &plain(2)], 1, None);
    let port = server.ports[0];
    served(port, "/f", FILE);
    let (fds, before, peak) = server.baseline();

    let mut attacker = connect(port);
    attacker
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let request = b"GET /f HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(100);
    let mut sent = 0;
    while sent < requests {
        if attacker.write_all(&request).is_err() {
            break; // the server stopped reading (as it should): the write timed out
        }
        sent += 100;
    }
    // The server is still serving others, with the attacker's answers unread.
    served(port, "/f", FILE);
    let stalled = Instant::now();
    let close = server.fds_down_to(fds, Duration::from_secs(30));
    let close = close.max(stalled.elapsed());
    served(port, "/f", FILE);
    Figures {
        attack: "pipelining non-reader (64 KB file)".to_owned(),
        clients: 1,
        before_kb: before,
        peak_kb: peak.peak(),
        after_kb: server.rss_kb(),
        close: Some(close),
    }
    .report();
    drop(attacker);
}

#[test]
fn body_tricklers_hold_bounded_memory_and_are_closed_at_the_body_timeout() {
    let clients = size(4, 20);
    let body = size(2_000_000, 10_000_000);
    let folder = Folder::with_file("f", 1000);
    let server = Server::web(
        &[
            "--path",
            folder.path(),
            "--body-timeout",
            "1",
            "--listen",
            &plain(60),
        ],
        1,
        None,
    );
    let port = server.ports[0];
    served(port, "/f", 1000);
    let (fds, before, peak) = server.baseline();
    let chunk = vec![b'b'; 64 * 1024];
    let tricklers: Vec<TcpStream> = (0..clients)
        .map(|_| {
            let mut s = connect(port);
            s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            write!(
                s,
                "POST /f HTTP/1.1\r\nHost: localhost\r\nContent-Length: {body}\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect();
    // Most of each body, the connections taking turns, then nothing more.
    let most = body * 9 / 10;
    let mut sent = 0;
    while sent < most {
        let n = chunk.len().min(most - sent);
        for mut s in &tricklers {
            s.write_all(&chunk[..n]).expect("the server reads the body");
        }
        sent += n;
    }
    served(port, "/f", 1000);
    let close = server.fds_down_to(fds, Duration::from_secs(10));
    assert!(
        close < Duration::from_secs(5),
        "the stalled bodies took {close:?} to close with a 1 s body timeout"
    );
    served(port, "/f", 1000);
    Figures {
        attack: format!("body tricklers ({} MB bodies)", body / 1_000_000),
        clients,
        before_kb: before,
        peak_kb: peak.peak(),
        after_kb: server.rss_kb(),
        close: Some(close),
    }
    .report();
    drop(tricklers);
}

#[test]
fn chatters_that_never_read_are_dropped_with_bounded_memory() {
    let silent_count = size(4, 20);
    let flood = size(24, 64) << 20;
    let server = Server::start(
        cargo_run(&["--example", "chat_server"], &["--port", "0"], None),
        "chat server listening on ",
        1,
    );
    let port = server.ports[0];
    let mut talker = connect(port);
    let (fds, before, peak) = server.baseline();
    let silent: Vec<TcpStream> = (0..silent_count).map(|_| connect(port)).collect();
    // Let the server take them all in before the flood.
    while server.fds() < fds + silent_count {
        thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let line = format!("{}\r\n", "x".repeat(1000));
    let mut flooded = 0;
    while flooded < flood {
        talker
            .write_all(line.as_bytes())
            .expect("the talker is served");
        flooded += line.len();
    }
    // Every silent chatter is dropped; the talker stays.
    let close = server
        .fds_down_to(fds, Duration::from_secs(60))
        .max(started.elapsed());
    // A newcomer hears the talker.
    let newcomer = connect(port);
    newcomer
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut heard = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    let mut reader = &newcomer;
    while !String::from_utf8_lossy(&heard).contains("says: still here") {
        assert!(
            Instant::now() < deadline,
            "the newcomer never heard the talker"
        );
        talker.write_all(b"still here\r\n").unwrap();
        match reader.read(&mut buf) {
            Ok(0) => panic!("the newcomer was dropped"),
            Ok(n) => heard.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("the newcomer cannot read: {e}"),
        }
    }
    let printed = server.printed().join("\n");
    assert!(printed.contains("write limit reached"), "{printed}");
    Figures {
        attack: format!("non-reading chat clients ({} MB flood)", flood >> 20),
        clients: silent_count,
        before_kb: before,
        peak_kb: peak.peak(),
        after_kb: server.rss_kb(),
        close: Some(close),
    }
    .report();
    drop(silent);
}

/// A self-signed certificate and its key, as PEM files.
fn certificate() -> (TempFile, TempFile) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (
        TempFile::new("reliability-cert", ".pem", cert.cert.pem().as_bytes()),
        TempFile::new(
            "reliability-key",
            ".pem",
            cert.signing_key.serialize_pem().as_bytes(),
        ),
    )
}

/// Which of `ports` answers plain HTTP, and which does not (the TLS one).
fn plain_and_tls(ports: &[u16]) -> (u16, u16) {
    let answers_http = |port: u16| {
        let mut s = connect(port);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut head = [0u8; 5];
        s.read_exact(&mut head).is_ok() && &head == b"HTTP/"
    };
    if answers_http(ports[0]) {
        (ports[0], ports[1])
    } else {
        (ports[1], ports[0])
    }
}

#[test]
fn stalled_tls_handshakes_are_closed_at_the_handshake_timeout() {
    let clients = size(20, 200);
    let folder = Folder::with_file("f", 1000);
    let (cert, key) = certificate();
    let tls = format!(
        "tls:0:interface=127.0.0.1:privateKey={}:certKey={}:handshakeTimeout=1",
        key.path(),
        cert.path()
    );
    let server = Server::web(
        &[
            "--path",
            folder.path(),
            "--listen",
            &tls,
            "--listen",
            &plain(60),
        ],
        2,
        None,
    );
    let (http, tls_port) = plain_and_tls(&server.ports);
    served(http, "/f", 1000);
    let (fds, before, peak) = server.baseline();
    let started = Instant::now();
    // Each sends the start of a TLS record (a ClientHello's header), then nothing.
    let stalled: Vec<TcpStream> = (0..clients)
        .map(|_| {
            let mut s = connect(tls_port);
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
            s
        })
        .collect();
    served(http, "/f", 1000);
    let close = server.fds_down_to(fds, Duration::from_secs(10));
    let close = close.max(started.elapsed());
    assert!(
        close < Duration::from_secs(6),
        "{clients} stalled handshakes took {close:?} to close with a 1 s handshake timeout"
    );
    // The TLS listener still completes handshakes.
    match Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("https://127.0.0.1:{tls_port}/f"))
        .output()
    {
        Ok(out) => assert_eq!(String::from_utf8_lossy(&out.stdout), "200"),
        Err(e) => torsion::testing::skip(
            torsion::testing::Missing::Peer,
            format!("curl (a TLS client after the attack): {e}"),
        ),
    }
    Figures {
        attack: "stalled TLS handshakes".to_owned(),
        clients,
        before_kb: before,
        peak_kb: peak.peak(),
        after_kb: server.rss_kb(),
        close: Some(close),
    }
    .report();
    drop(stalled);
}

#[test]
fn slowloris_clients_are_closed_at_the_header_timeout() {
    let clients = size(50, 500);
    let folder = Folder::with_file("f", 1000);
    let server = Server::web(
        &[
            "--path",
            folder.path(),
            "--header-timeout",
            "1",
            "--listen",
            &plain(60),
        ],
        1,
        None,
    );
    let port = server.ports[0];
    served(port, "/f", 1000);
    let (fds, before, peak) = server.baseline();
    let started = Instant::now();
    let mut loris: Vec<Option<TcpStream>> = (0..clients).map(|_| Some(connect(port))).collect();
    let head = b"GET /f HTTP/1.1\r\nHost: localhost\r\nX-Padding: ";
    let mut round = 0;
    // A byte per client every 50 ms, for as long as the server keeps any of them.
    while loris.iter().any(Option::is_some) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "slowloris clients still open after 30 s"
        );
        for slot in &mut loris {
            let byte = head.get(round).copied().unwrap_or(b'a');
            if let Some(s) = slot {
                if (&*s).write_all(&[byte]).is_err() {
                    *slot = None;
                }
            }
        }
        if round == 10 {
            served(port, "/f", 1000);
        }
        round += 1;
        thread::sleep(Duration::from_millis(50));
    }
    let close = server
        .fds_down_to(fds, Duration::from_secs(10))
        .max(started.elapsed());
    assert!(
        close < Duration::from_secs(8),
        "slowloris clients took {close:?} to close with a 1 s header timeout"
    );
    served(port, "/f", 1000);
    Figures {
        attack: "slowloris (a header byte at a time)".to_owned(),
        clients,
        before_kb: before,
        peak_kb: peak.peak(),
        after_kb: server.rss_kb(),
        close: Some(close),
    }
    .report();
}

#[test]
fn descriptor_exhaustion_neither_spins_nor_stops_the_server() {
    const NOFILE: u32 = 256;
    let clients = size(300, 1000);
    let folder = Folder::with_file("f", 1000);
    let server = Server::web(
        &["--path", folder.path(), "--listen", &plain(60)],
        1,
        Some(NOFILE),
    );
    let port = server.ports[0];
    served(port, "/f", 1000);
    let (fds, before, peak) = server.baseline();
    let attackers: Vec<TcpStream> = (0..clients).map(|_| connect(port)).collect();
    // The server takes what its limit allows, then pauses accepting.
    let full = Instant::now();
    while server.fds() < NOFILE as usize - 8 {
        assert!(
            full.elapsed() < Duration::from_secs(20),
            "the server never ran out of descriptors ({} open)",
            server.fds()
        );
        thread::sleep(Duration::from_millis(20));
    }
    // Out of descriptors, it must not spin: under a third of a core over a second.
    let ticks = server.cpu_ticks();
    thread::sleep(Duration::from_secs(1));
    let used = server.cpu_ticks() - ticks;
    assert!(
        used < 33,
        "the server used {used} ticks in 1 s while out of descriptors"
    );
    // The attackers leave; the server serves again.
    for s in &attackers {
        let _ = s.shutdown(Shutdown::Both);
    }
    drop(attackers);
    let close = server.fds_down_to(fds, Duration::from_secs(20));
    served(port, "/f", 1000);
    let printed = server.printed().join("\n");
    assert!(printed.contains("pausing accepts"), "{printed}");
    Figures {
        attack: "descriptor exhaustion (RLIMIT_NOFILE 256)".to_owned(),
        clients,
        before_kb: before,
        peak_kb: peak.peak(),
        after_kb: server.rss_kb(),
        close: Some(close),
    }
    .report();
}

#[test]
fn slow_readers_of_a_large_download_are_closed_at_the_send_timeout() {
    let clients = size(10, 100);
    let file = size(32, 64) << 20;
    let folder = Folder::with_file("big", file);
    let server = Server::web(&["--path", folder.path(), "--listen", &plain(1)], 1, None);
    let port = server.ports[0];
    // The first download opens what the server keeps (the file in its cache, the poller).
    served(port, "/big", file);
    let (fds, before, peak) = server.baseline();
    let started = Instant::now();
    // Each asks for the file and reads the first kilobyte, then nothing more.
    let readers: Vec<TcpStream> = (0..clients)
        .map(|_| {
            let mut s = connect(port);
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut first = [0u8; 1024];
            s.read_exact(&mut first).expect("the download starts");
            s
        })
        .collect();
    let close = server
        .fds_down_to(fds, Duration::from_secs(20))
        .max(started.elapsed());
    assert!(
        close < Duration::from_secs(10),
        "slow readers took {close:?} to close with a 1 s send timeout"
    );
    // A reader that keeps up gets all of it.
    served(port, "/big", file);
    let printed = server.printed().join("\n");
    assert!(printed.contains("send timed out"), "{printed}");
    Figures {
        attack: format!("slow readers ({} MB download)", file >> 20),
        clients,
        before_kb: before,
        peak_kb: peak.peak(),
        after_kb: server.rss_kb(),
        close: Some(close),
    }
    .report();
    drop(readers);
}
