//! `torsiond --manhole`: a console into the running runner over telnet on loopback. Driven
//! here by a plain TCP client that leaves the telnet negotiation unanswered (the console
//! then stays in plain-line mode): the open connections per port, the requests served, the
//! log level changed at run time with its effect on the log, a runaway script interrupted
//! while the web server still answers, and a graceful `stop()`; requests are counted with the
//! access log off too.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{run, stderr_of, Running, TempDir, TIMEOUT};

/// A telnet console client: sends a line, returns what came back before the next prompt.
struct Console(TcpStream);

impl Console {
    fn connect(port: u16) -> Console {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut c = Console(s);
        let banner = c.until_prompt();
        assert!(banner.contains("Torsion manhole"), "{banner:?}");
        c
    }

    fn until_prompt(&mut self) -> String {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b">>> ") {
            let n = self.0.read(&mut byte).unwrap();
            assert!(
                n == 1,
                "the console closed: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.push(byte[0]);
        }
        got.truncate(got.len() - 4);
        // Leave out the telnet negotiation (IAC, command, option).
        let mut text = Vec::new();
        let mut i = 0;
        while i < got.len() {
            if got[i] == 255 {
                i += 3;
            } else {
                text.push(got[i]);
                i += 1;
            }
        }
        let text = String::from_utf8(text).unwrap();
        text.trim_end_matches("\r\n").to_string()
    }

    fn ask(&mut self, line: &str) -> String {
        self.0.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.until_prompt()
    }
}

/// An HTTP/1.1 GET on a connection of its own, returning the status line.
fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_string()
}

#[test]
fn manhole_shows_connections_changes_log_level_interrupts_and_stops() {
    let dir = TempDir::new("manhole");
    let (mut server, web, mut c) = web_with_console(&dir, &[]);

    // An HTTP connection held open shows in connections(); the finished request counts.
    let mut held = TcpStream::connect(("127.0.0.1", web)).unwrap();
    held.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    held.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert!(held.read(&mut buf).unwrap() > 0);
    let open = c.ask("connections()");
    assert_eq!(open, format!("#{{\"tcp:127.0.0.1:{web}\": 1}}"));
    assert_eq!(c.ask("requests"), "1");
    drop(held);
    let deadline = Instant::now() + TIMEOUT;
    while c.ask("connections()") != format!("#{{\"tcp:127.0.0.1:{web}\": 0}}") {
        assert!(
            Instant::now() < deadline,
            "the closed connection is still counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The log level changes at run time: under warn the access log is silent.
    assert_eq!(c.ask("log_level"), "\"info\"");
    assert_eq!(c.ask("log_level = \"warn\""), "");
    assert!(get(web, "/under-warn").contains("404"));
    let refused = c.ask("log_level = \"loud\"");
    assert!(refused.contains("no log level \"loud\""), "{refused}");
    assert_eq!(c.ask("log_level = \"info\""), "");
    assert!(get(web, "/under-info").contains("404"));
    let lines = server.lines_until("/under-info");
    assert!(
        !lines.iter().any(|l| l.contains("/under-warn")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("log level set to info")),
        "{lines:#?}"
    );
    assert_eq!(c.ask("requests"), "3");

    // A runaway script is interrupted; the web server answers a request made meanwhile.
    let meanwhile = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        get(web, "/a.txt")
    });
    let interrupted = c.ask("loop {}");
    assert!(interrupted.starts_with("interrupted"), "{interrupted}");
    assert!(meanwhile.join().unwrap().contains("200"));

    // Python syntax gets a clear error (the console speaks Rhai).
    assert!(c.ask("import os").contains("Rhai, not Python"));

    // stop() stops the runner gracefully: status 0.
    c.0.write_all(b"stop()\r\n").unwrap();
    server.wait_for("stop() from the manhole");
    server.wait_for("torsiond: stopped");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = server.try_wait() {
            break s;
        }
        assert!(Instant::now() < deadline, "torsiond did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_telnet_manhole_off_loopback_is_refused() {
    for endpoint in ["tcp:0", "tcp:0:interface=0.0.0.0", "tcp6:0"] {
        let out = run(
            &[
                "--manhole",
                endpoint,
                "echo",
                "--listen",
                "tcp:0:interface=127.0.0.1",
            ],
            TIMEOUT,
        );
        assert_eq!(out.status.code(), Some(1), "{endpoint}");
        let err = stderr_of(&out);
        assert!(
            err.contains("refusing a telnet manhole") && err.contains("loopback"),
            "{endpoint}: {err}"
        );
    }
}

#[test]
fn requests_are_counted_with_the_access_log_off() {
    let dir = TempDir::new("manhole-nolog");
    let (server, web, mut c) = web_with_console(&dir, &["--no-access-log"]);
    assert!(get(web, "/a.txt").contains("200"));
    assert!(get(web, "/missing").contains("404"));
    assert_eq!(c.ask("requests"), "2");
    c.0.write_all(b"stop()\r\n").unwrap();
    server.wait_for("torsiond: stopped");
}

/// `torsiond --manhole ... web EXTRA --path DIR` (DIR holding `a.txt`), both on port 0 of
/// 127.0.0.1: the running server, its web port and a console connected to its manhole.
fn web_with_console(dir: &TempDir, extra: &[&str]) -> (Running, u16, Console) {
    std::fs::write(dir.path().join("a.txt"), "a").unwrap();
    let path = dir.path().to_str().unwrap();
    let mut args = vec!["--manhole", "tcp:0:interface=127.0.0.1", "web"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--listen", "tcp:0:interface=127.0.0.1", "--path", path]);
    let server = Running::start(&args);
    let line = server.wait_for("manhole: telnet console on tcp:127.0.0.1:");
    let console_port: u16 = line
        .split("tcp:127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let web = server.port();
    (server, web, Console::connect(console_port))
}
