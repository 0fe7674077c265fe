//! Hostile clients, over real sockets: paths leaving the root (`..`, absolute paths, a
//! symbolic link pointing out, a folder swapped for one while it is used), FTP bounce
//! (PORT/EPRT to another address), stalled data connections and idle control
//! connections, and 1 GiB transfers with bounded memory.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::{RenameFlags, CWD};
use torsion::testing::{Clock, StringTransport};
use torsion::transport::Address;
use torsion::{Factory, Protocol, Reactor, Transport};
use torsion_cred::{hash_password, FilePasswordDb, Portal};
use torsion_ftp::command::{parse_epsv_reply, parse_pasv_reply};
use torsion_ftp::{Ftp, FtpFactory, FtpRealm, Root};

use crate::interop::{factory, populate};
use crate::support::{serve, with_server, TempDir, MEMORY};

/// A blocking FTP control connection, for tests.
pub(crate) struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    pub(crate) fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut raw = Raw {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        };
        let greeting = raw.reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        raw
    }

    /// The next reply (all its lines), or "EOF".
    pub(crate) fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    all.push_str("EOF");
                    return all;
                }
                Ok(_) => {}
            }
            all.push_str(&line);
            let b = line.as_bytes();
            if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ' {
                return all;
            }
        }
    }

    pub(crate) fn cmd(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    pub(crate) fn login(&mut self, user: &str, password: &str) {
        assert!(self.cmd(&format!("USER {user}")).starts_with("331"));
        let r = self.cmd(&format!("PASS {password}"));
        assert!(r.starts_with("230"), "{r}");
    }

    /// EPSV, and a connection to the port it gave.
    pub(crate) fn passive(&mut self) -> TcpStream {
        let r = self.cmd("EPSV");
        let port = parse_epsv_reply(&r).unwrap_or_else(|| panic!("{r}"));
        TcpStream::connect(("127.0.0.1", port)).unwrap()
    }
}

fn code(r: &str) -> &str {
    &r[..3.min(r.len())]
}

#[test]
fn traversal_and_symlinks_stay_inside_the_root() {
    let dir = TempDir::new("traversal");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    populate(&root);
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"top secret").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), root.join("secret-link")).unwrap();
    std::os::unix::fs::symlink(outside.join("new-file"), root.join("dangling")).unwrap();
    // Relative: openat2's RESOLVE_BENEATH refuses every absolute link (see fs.rs).
    std::os::unix::fs::symlink("hello.txt", root.join("inside-link")).unwrap();
    let f = factory(&root, &dir.path().join("passwords"));
    let replies = with_server(f, |port| {
        let mut c = Raw::connect(port);
        c.login("alice", "wonderland");
        let mut out = Vec::new();
        for line in [
            "CWD ..",
            "CWD ../outside",
            "CWD /../..",
            "SIZE ../passwords",
            "SIZE /../passwords",
            "SIZE ../../../../../../etc/passwd",
            "CWD out",
            "SIZE out/secret",
            "SIZE secret-link",
            "MDTM sub dir/../../passwords",
            "MKD out/made",
            "MLST out",
        ] {
            out.push((line, c.cmd(line)));
        }
        // Reading through a link to outside, and writing through a dangling one.
        let mut retr = c.passive();
        out.push(("RETR secret-link", c.cmd("RETR secret-link")));
        let mut buf = Vec::new();
        retr.read_to_end(&mut buf).ok();
        out.push(("(read)", String::from_utf8_lossy(&buf).into_owned()));
        drop(c.passive());
        out.push(("STOR dangling", c.cmd("STOR dangling")));
        // A link is a name inside the root: renaming it moves the link, not its target.
        out.push(("RNFR secret-link", c.cmd("RNFR secret-link")));
        out.push(("RNTO moved-link", c.cmd("RNTO moved-link")));
        // A link that stays inside is served.
        out.push(("SIZE inside-link", c.cmd("SIZE inside-link")));
        out.push(("PWD", c.cmd("PWD")));
        out
    });
    let n = replies.len();
    for (line, reply) in &replies[..n - 4] {
        if *line == "(read)" {
            assert!(!reply.contains("secret"), "{line}: {reply}");
        } else {
            assert_eq!(code(reply), "550", "{line}: {reply}");
        }
    }
    assert!(replies[n - 4].1.starts_with("350"), "{replies:?}");
    assert!(replies[n - 3].1.starts_with("250"), "{replies:?}");
    assert!(replies[n - 2].1.starts_with("213 12"), "{replies:?}");
    assert!(replies[n - 1].1.starts_with("257 \"/\""), "{replies:?}");
    assert!(root
        .join("moved-link")
        .symlink_metadata()
        .unwrap()
        .is_symlink());
    assert_eq!(
        std::fs::read(outside.join("secret")).unwrap(),
        b"top secret"
    );
    assert!(!outside.join("made").exists());
    assert!(!outside.join("new-file").exists());
}

/// Swaps `root/swap` (a folder) and `root/link` (a relative link to `../outside`) with
/// `renameat2(RENAME_EXCHANGE)` until told to stop; returns how many swaps it made.
fn swapper(root: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let (a, b) = (root.join("swap"), root.join("link"));
        let mut swaps = 0;
        while !stop.load(Ordering::Relaxed) {
            rustix::fs::renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).unwrap();
            swaps += 1;
        }
        swaps
    })
}

#[test]
fn a_folder_swapped_for_a_link_out_never_leads_outside() {
    const ROUNDS: usize = 150;
    let dir = TempDir::new("swap");
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(root.join("swap")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(root.join("swap/data"), b"inside").unwrap();
    std::fs::write(outside.join("data"), b"OUTSIDE").unwrap();
    std::os::unix::fs::symlink("../outside", root.join("link")).unwrap();
    let f = factory(&root, &dir.path().join("passwords"));
    let swapped = root.clone();
    let (reads, stored, refused, swaps) = with_server(f, move |port| {
        let mut c = Raw::connect(port);
        c.login("alice", "wonderland");
        assert!(c.cmd("TYPE I").starts_with("200"));
        let stop = Arc::new(AtomicBool::new(false));
        let swapping = swapper(swapped, stop.clone());
        let (mut reads, mut stored, mut refused) = (Vec::new(), 0, BTreeMap::new());
        // ROUNDS, and more (to a bound) until both sides of the race were met: a busy
        // machine can leave the swapper unscheduled in one state for a while.
        for i in 0..ROUNDS * 20 {
            let met = (!reads.is_empty() || stored > 0) && !refused.is_empty();
            if i >= ROUNDS && met {
                break;
            }
            let mut data = c.passive();
            let r = c.cmd("RETR swap/data");
            if r.starts_with("150") {
                let mut got = Vec::new();
                data.read_to_end(&mut got).unwrap();
                let done = c.reply();
                assert!(done.starts_with("226"), "{done}");
                reads.push(got);
            } else {
                assert_eq!(code(&r), "550", "{r}");
                *refused.entry(r.trim_end().to_owned()).or_insert(0) += 1;
            }
            let mut data = c.passive();
            let r = c.cmd(&format!("STOR swap/up-{i}"));
            if r.starts_with("150") {
                data.write_all(b"upload").unwrap();
                drop(data);
                let done = c.reply();
                assert!(done.starts_with("226"), "{done}");
                stored += 1;
            } else {
                assert_eq!(code(&r), "550", "{r}");
                *refused.entry(r.trim_end().to_owned()).or_insert(0) += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        (reads, stored, refused, swapping.join().unwrap())
    });
    eprintln!(
        "{swaps} swaps; {} reads, {stored} uploads, refused: {refused:?}",
        reads.len()
    );
    // Nothing outside was read, written or created.
    for got in &reads {
        assert_eq!(got, b"inside");
    }
    let names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["data"]);
    assert_eq!(std::fs::read(outside.join("data")).unwrap(), b"OUTSIDE");
    // Every upload landed in the real folder, whichever name it had then.
    let real = if root.join("swap").symlink_metadata().unwrap().is_dir() {
        root.join("swap")
    } else {
        root.join("link")
    };
    let uploads = std::fs::read_dir(&real).unwrap().count() - 1;
    assert_eq!(uploads, stored);
    // Both sides of the race were seen: the folder served, the link refused. (Served is
    // the rarer: a lookup through `..` while renames go on can fail with EAGAIN too.)
    assert!(!reads.is_empty() || stored > 0, "never served: {refused:?}");
    assert!(
        !refused.is_empty(),
        "the link was never met ({swaps} swaps)"
    );
}

#[test]
fn a_user_folder_that_links_out_is_no_login() {
    let dir = TempDir::new("per-user");
    let base = dir.path().join("base");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(base.join("alice")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(base.join("alice/mine"), b"alice's").unwrap();
    std::fs::write(outside.join("secret"), b"top secret").unwrap();
    std::os::unix::fs::symlink("../outside", base.join("bob")).unwrap();
    let passwords = dir.path().join("passwords");
    std::fs::write(
        &passwords,
        format!(
            "alice:{}\nbob:{}\n",
            hash_password("wonderland"),
            hash_password("builder")
        ),
    )
    .unwrap();
    let portal = Portal::new(FtpRealm::per_user(Root::new(&base).unwrap()));
    portal.register_checker(FilePasswordDb::open(&passwords).unwrap());
    let f = FtpFactory::new()
        .portal(portal)
        .login_failure_delay(Duration::from_millis(1));
    let (alice, bob) = with_server(f, |port| {
        let mut a = Raw::connect(port);
        a.login("alice", "wonderland");
        let mut b = Raw::connect(port);
        assert!(b.cmd("USER bob").starts_with("331"));
        (a.cmd("SIZE mine"), b.cmd("PASS builder"))
    });
    assert!(alice.starts_with("213 7"), "{alice}");
    assert!(bob.starts_with("530"), "{bob}");
}

#[test]
fn port_and_eprt_never_bounce() {
    let dir = TempDir::new("bounce");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    populate(&root);
    // Off by default.
    let off = factory(&root, &dir.path().join("passwords"));
    let r = with_server(off, |port| {
        let mut c = Raw::connect(port);
        c.login("alice", "wonderland");
        c.cmd("PORT 127,0,0,1,200,10")
    });
    assert!(r.starts_with("502"), "{r}");
    // On: only to the client's own address, and never to a privileged port.
    let on = factory(&root, &dir.path().join("passwords")).active(true);
    let replies = with_server(on, |port| {
        let mut c = Raw::connect(port);
        c.login("alice", "wonderland");
        let mine = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = mine.local_addr().unwrap().port();
        let mut out = vec![
            c.cmd(&format!("PORT 10,0,0,1,{},{}", p >> 8, p & 0xff)),
            c.cmd(&format!("EPRT |1|127.0.0.2|{p}|")),
            c.cmd(&format!("EPRT |2|::1|{p}|")),
            c.cmd("PORT 127,0,0,1,0,25"),
            c.cmd(&format!("PORT 127,0,0,1,{},{}", p >> 8, p & 0xff)),
            c.cmd("RETR hello.txt"),
        ];
        let (mut data, from) = mine.accept().unwrap();
        let mut buf = Vec::new();
        data.read_to_end(&mut buf).unwrap();
        out.push(String::from_utf8(buf).unwrap());
        out.push(c.reply());
        out.push(from.ip().to_string());
        out
    });
    for r in &replies[..4] {
        assert!(r.starts_with("504"), "{replies:?}");
    }
    assert!(replies[4].starts_with("200"), "{replies:?}");
    assert!(replies[5].starts_with("150"), "{replies:?}");
    assert_eq!(replies[6], "Hello, FTP!\n");
    assert!(replies[7].starts_with("226"), "{replies:?}");
}

/// Advances `clock` by `step` seconds every 10 ms of real time once `go` is set: the
/// timeouts of a server on real sockets, driven from the reactor's side.
fn tick(r: Reactor, clock: Clock, step: f64, go: Arc<AtomicBool>) {
    let again = r.clone();
    drop(r.call_later(0.01, move || {
        if go.load(Ordering::Relaxed) {
            clock.advance(step);
        }
        tick(again, clock, step, go);
    }));
}

#[test]
fn a_stalled_data_connection_gets_426_on_the_clock() {
    let dir = TempDir::new("stall");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    populate(&root);
    std::fs::File::create(root.join("big"))
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let clock = Clock::new();
    let f = factory(&root, &dir.path().join("passwords"))
        .clock(clock.clone())
        .data_timeout(Duration::from_secs(60));
    let go = Arc::new(AtomicBool::new(false));
    // with_server's share of the memory test's lock: this serves a large file too.
    let _shared = MEMORY.read().unwrap_or_else(|e| e.into_inner());
    let r = Reactor::new();
    let port = r.listen_tcp_on(0, f, "127.0.0.1").unwrap();
    let number = port.get_host().port().unwrap();
    tick(r.clone(), clock.clone(), 5.0, go.clone());
    let started = go.clone();
    let (stalled, took, after) = torsion::testing::run_with_peer(&r, 300.0, move || {
        let mut c = Raw::connect(number);
        c.login("alice", "wonderland");
        // Connect, and never read 256 MiB: the server's sends stop when the buffers fill.
        let data = c.passive();
        let start = c.cmd("RETR big");
        assert!(start.starts_with("150"), "{start}");
        started.store(true, Ordering::Relaxed);
        let t = Instant::now();
        let stalled = c.reply();
        let took = t.elapsed();
        drop(data);
        (stalled, took, c.cmd("NOOP"))
    });
    drop(port);
    assert!(stalled.starts_with("426"), "{stalled}");
    assert!(after.starts_with("200"), "{after}");
    // A minute of the clock's time without progress, not of the real time.
    assert!(clock.seconds() >= 60.0, "{}", clock.seconds());
    assert!(took < Duration::from_secs(30), "{took:?}");
}

/// An FTP control connection on a [`StringTransport`], its timeouts on a test [`Clock`].
struct OnClock {
    ftp: Ftp,
    st: StringTransport,
    t: Transport,
}

impl OnClock {
    fn new(f: FtpFactory) -> OnClock {
        let peer = Address::Tcp("127.0.0.1:40000".parse().unwrap());
        let host = Address::Tcp("127.0.0.1:21".parse().unwrap());
        let mut ftp = f.build_protocol(&peer).unwrap();
        let st = StringTransport::with_addresses(peer, host);
        let t = st.transport();
        ftp.connection_made(&t);
        let mut c = OnClock { ftp, st, t };
        assert!(c.written().starts_with("220"));
        c
    }

    /// Sends one command line; returns what the server wrote since the last call.
    fn cmd(&mut self, line: &str) -> String {
        self.ftp
            .data_received(&self.t, format!("{line}\r\n").as_bytes());
        self.written()
    }

    fn written(&mut self) -> String {
        String::from_utf8(self.st.take()).unwrap()
    }
}

/// A factory serving `root` anonymously, its timeouts on `clock`.
fn on_clock(root: &std::path::Path, clock: &Clock) -> FtpFactory {
    FtpFactory::new()
        .anonymous(Root::new(root).unwrap())
        .clock(clock.clone())
}

#[test]
fn an_idle_control_connection_gets_421_on_the_clock() {
    let dir = TempDir::new("idle-clock");
    populate(dir.path());
    let clock = Clock::new();
    let f = on_clock(dir.path(), &clock).timeout(Some(Duration::from_secs(600)));
    let mut c = OnClock::new(f);
    clock.advance(599.0);
    assert!(c.cmd("NOOP").starts_with("200"));
    // Activity restarted the period: 599 s after it, still open.
    clock.advance(599.0);
    assert_eq!(c.written(), "");
    assert!(!c.st.disconnecting());
    clock.advance(1.0);
    assert!(c.written().starts_with("421"));
    assert!(c.st.disconnecting());
}

#[test]
fn a_data_connection_never_opened_gets_425_on_the_clock() {
    let dir = TempDir::new("never-clock");
    populate(dir.path());
    let clock = Clock::new();
    // The control connection's timeout is shorter than the data connection's: it must
    // neither cut the transfer's wait nor stop counting after it.
    let f = on_clock(dir.path(), &clock)
        .data_timeout(Duration::from_secs(60))
        .timeout(Some(Duration::from_secs(20)));
    let mut c = OnClock::new(f);
    assert!(c.cmd("USER anonymous").starts_with("331"));
    assert!(c.cmd("PASS x@y").starts_with("230"));
    let r = c.cmd("PASV");
    let port = parse_pasv_reply(&r).unwrap_or_else(|| panic!("{r}")).port();
    assert!(c.cmd("RETR hello.txt").starts_with("150"));
    clock.advance(59.9);
    assert_eq!(c.written(), "");
    assert!(!c.st.disconnecting());
    clock.advance(0.1);
    assert!(c.written().starts_with("425"));
    assert!(!c.st.disconnecting());
    // The passive port was closed with it.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    // The transfer's end starts the control connection's idle period again.
    clock.advance(19.9);
    assert_eq!(c.written(), "");
    clock.advance(0.1);
    assert!(c.written().starts_with("421"));
    assert!(c.st.disconnecting());
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_gibibyte_each_way_in_bounded_memory() {
    const GIB: u64 = 1 << 30;
    let _alone = MEMORY.write().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("gib");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // A sparse 1 GiB file to download.
    std::fs::File::create(root.join("huge"))
        .unwrap()
        .set_len(GIB)
        .unwrap();
    let f = factory(&root, &dir.path().join("passwords"));
    let before = rss_kib();
    let (down, up, peak) = serve(f, move |port| {
        let mut c = Raw::connect(port);
        c.login("alice", "wonderland");
        assert!(c.cmd("TYPE I").starts_with("200"));
        let mut peak = 0;
        let mut data = c.passive();
        assert!(c.cmd("RETR huge").starts_with("150"));
        let mut buf = vec![0u8; 256 << 10];
        let mut got = 0u64;
        loop {
            let n = data.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got += n as u64;
            if got % (64 << 20) < n as u64 {
                peak = peak.max(rss_kib());
            }
        }
        let done = c.reply();
        assert!(done.starts_with("226"), "{done}");
        let mut data = c.passive();
        assert!(c.cmd("STOR up").starts_with("150"));
        let chunk = vec![0x5au8; 256 << 10];
        let mut sent = 0u64;
        while sent < GIB {
            data.write_all(&chunk).unwrap();
            sent += chunk.len() as u64;
            if sent % (64 << 20) == 0 {
                peak = peak.max(rss_kib());
            }
        }
        drop(data);
        let done = c.reply();
        assert!(done.starts_with("226"), "{done}");
        (got, sent, peak)
    });
    assert_eq!(down, GIB);
    assert_eq!(up, GIB);
    assert_eq!(std::fs::metadata(root.join("up")).unwrap().len(), GIB);
    let grew = peak.saturating_sub(before);
    eprintln!("RSS before {before} KiB, peak during the transfers {peak} KiB (+{grew} KiB)");
    assert!(grew < 64 << 10, "RSS grew by {grew} KiB moving 2 GiB");
}

#[test]
fn type_a_sends_bytes_unchanged() {
    let dir = TempDir::new("type-a");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("unix.txt"), b"one\ntwo\r\nthree\n").unwrap();
    let f = factory(&root, &dir.path().join("passwords"));
    let (typed, got, size) = with_server(f, |port| {
        let mut c = Raw::connect(port);
        c.login("alice", "wonderland");
        let typed = c.cmd("TYPE A");
        let mut data = c.passive();
        assert!(c.cmd("RETR unix.txt").starts_with("150"));
        let mut got = Vec::new();
        data.read_to_end(&mut got).unwrap();
        assert!(c.reply().starts_with("226"));
        (typed, got, c.cmd("SIZE unix.txt"))
    });
    assert!(typed.starts_with("200"), "{typed}");
    // Twisted would send "one\r\ntwo\r\r\nthree\r\n" (LF made CRLF).
    assert_eq!(got, b"one\ntwo\r\nthree\n");
    assert!(size.starts_with("213 15"), "{size}");
}
