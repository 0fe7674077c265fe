//! Runs the `irc_bot` example (seed 003, Twisted's LogBot) with `cargo run --example`
//! against a real IRC server (ngIRCd) and against Torsion's own (`torsion::words::service`),
//! and talks to it as a human would over a plain socket: addressing it in the channel,
//! whispering to it, acting; then reads its log.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::support;
use support::ngircd::{Ngircd, CHANNEL};
use support::Running;

/// How long the bot may take to sign on, building included.
const BUILD_DEADLINE: Duration = Duration::from_secs(300);
/// How long anything else may take: an answer, a log line.
const DEADLINE: Duration = Duration::from_secs(30);
/// How often a blocked read wakes up to look at its deadline.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// A log file path in the temporary folder, removed when dropped.
struct TempLog(PathBuf);

impl TempLog {
    fn new() -> TempLog {
        TempLog(support::temp_path("irc-bot", ".log"))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }

    /// The log so far (empty before the bot writes it).
    fn contents(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }

    /// Waits until the log has a line ending with `text` (after its `[HH:MM:SS] ` stamp),
    /// and returns the whole log.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let log = self.contents();
            if log.lines().any(|line| stamped(line, text)) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no log line {text:?} within {DEADLINE:?}; the log:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TempLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether `line` is `[HH:MM:SS] text`.
fn stamped(line: &str, text: &str) -> bool {
    let b = line.as_bytes();
    line.len() == 11 + text.len()
        && b[0] == b'['
        && b[3] == b':'
        && b[6] == b':'
        && b[9..11] == *b"] "
        && [1, 2, 4, 5, 7, 8].iter().all(|&i| b[i].is_ascii_digit())
        && line.ends_with(text)
}

/// Starts the bot on the server's port, logging to `log`; returns it once it has signed on,
/// with the nickname it signed on with.
fn start_bot(port: u16, nick: &str, log: &TempLog) -> (Running, String) {
    let port = port.to_string();
    let mut child = support::example("irc_bot")
        .args(["--host", "127.0.0.1", "--port", &port, "--nick", nick])
        .args(["--channel", CHANNEL, "--log", log.path()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start cargo run");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let rx = support::lines(stdout);
    let deadline = Instant::now() + BUILD_DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!("the bot did not sign on within {BUILD_DEADLINE:?}; its output: {seen:#?}")
        });
        if let Some(me) = line.strip_prefix("signed on as ") {
            return (running, me.to_owned());
        }
        seen.push(line);
    }
}

/// A human on IRC, on a plain socket.
struct User {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// A line read in part when a read timed out.
    partial: Vec<u8>,
    /// Every line received, for failure messages.
    seen: Vec<String>,
}

impl User {
    /// Connects to the server and registers as `nick`.
    fn register(port: u16, nick: &str) -> User {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut user = User {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            partial: Vec::new(),
            seen: Vec::new(),
        };
        user.send(&format!("NICK {nick}"));
        user.send(&format!("USER {nick} 0 * :{nick} the human"));
        user.wait_for("the welcome (001)", |l| l.split(' ').nth(1) == Some("001"));
        user
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending {line:?}: {e}"));
    }

    /// The next line (without its line ending), or `None` if none came before `deadline`.
    /// PINGs are answered here.
    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        while Instant::now() < deadline {
            match self.reader.read_until(b'\n', &mut self.partial) {
                Ok(0) => panic!("the server hung up; received: {:#?}", self.seen),
                Ok(_) if self.partial.ends_with(b"\n") => {
                    let bytes = std::mem::take(&mut self.partial);
                    let line = String::from_utf8_lossy(&bytes);
                    let line = line.trim_end_matches(['\r', '\n']).to_owned();
                    if let Some(token) = line.strip_prefix("PING ") {
                        self.send(&format!("PONG {token}"));
                    }
                    self.seen.push(line.clone());
                    return Some(line);
                }
                Ok(_) => {} // the end of the stream without a line ending: Ok(0) comes next
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("reading from the server: {e}"),
            }
        }
        None
    }

    /// Reads lines until one matches `wanted`, and returns it; fails, saying what came,
    /// if none does within [`DEADLINE`].
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        let first = self.seen.len();
        while let Some(line) = self.next_line(deadline) {
            if wanted(&line) {
                return line;
            }
        }
        panic!(
            "{what} did not come within {DEADLINE:?}; received meanwhile: {:#?}",
            &self.seen[first..]
        );
    }
}

/// Torsion's IRC server on a loopback port, on a thread of its own; stopped when dropped.
struct TorsionIrcd {
    port: u16,
    stop: torsion::reactor::ReactorHandle,
    thread: Option<thread::JoinHandle<()>>,
}

impl TorsionIrcd {
    fn start() -> TorsionIrcd {
        use torsion::words::service::{IrcServerFactory, ServerConfig};
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let r = torsion::reactor();
            let server = IrcServerFactory::new(ServerConfig::default());
            let port = r.listen_tcp_on(0, server, "127.0.0.1").unwrap();
            tx.send((port.get_host().port().unwrap(), r.handle()))
                .unwrap();
            r.run().unwrap();
        });
        let (port, stop) = rx.recv().expect("the server started");
        TorsionIrcd {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TorsionIrcd {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn log_bot_answers_scolds_and_logs() {
    let server = Ngircd::start();
    log_bot_session(server.port, move || drop(server));
}

#[test]
fn log_bot_answers_scolds_and_logs_on_torsions_own_server() {
    let server = TorsionIrcd::start();
    log_bot_session(server.port, move || drop(server));
}

/// The bot's session on the server at `port`; `stop_server` ends the server.
fn log_bot_session(port: u16, stop_server: impl FnOnce()) {
    let log = TempLog::new();
    let (bot, me) = start_bot(port, "torsionbot", &log);
    assert_eq!(me, "torsionbot");
    // Once it is in the channel, what is said there reaches it.
    log.wait_for(&format!("[I have joined {CHANNEL}]"));

    let mut alice = User::register(port, "alice");
    alice.send(&format!("JOIN {CHANNEL}"));
    alice.wait_for("the end of the channel's names (366)", |l| {
        l.split(' ').nth(1) == Some("366")
    });

    // (1) Addressed in the channel, it answers there.
    alice.send(&format!("PRIVMSG {CHANNEL} :torsionbot: hello"));
    let answer = alice.wait_for("the bot's answer in the channel", |l| {
        l.ends_with(&format!(" PRIVMSG {CHANNEL} :alice: I am a log bot"))
    });
    assert!(answer.starts_with(":torsionbot!"), "answered by {answer:?}");

    // (2) Whispered to, it scolds the whisperer in private.
    alice.send("PRIVMSG torsionbot :psst");
    let scolding = alice.wait_for("the bot's private answer", |l| {
        l.ends_with(" PRIVMSG alice :It isn't nice to whisper!  Play nice with the group.")
    });
    assert!(
        scolding.starts_with(":torsionbot!"),
        "answered by {scolding:?}"
    );

    // (3) An action is logged (and not answered).
    alice.send(&format!("PRIVMSG {CHANNEL} :\u{1}ACTION waves\u{1}"));
    log.wait_for("* alice waves");

    // (4) The log, in order.
    let log_text = log.contents();
    let expected = [
        "[connected]".to_owned(),
        format!("[I have joined {CHANNEL}]"),
        "<alice> torsionbot: hello".to_owned(),
        "<torsionbot> alice: I am a log bot".to_owned(),
        "<alice> psst".to_owned(),
        "* alice waves".to_owned(),
    ];
    let mut lines = log_text.lines();
    for text in &expected {
        assert!(
            lines.any(|line| stamped(line, text)),
            "the log lacks {text:?} (or has it out of order):\n{log_text}"
        );
    }

    // A rename is logged.
    alice.send("NICK alicia");
    log.wait_for("alice is now known as alicia");

    // When the server goes, the bot logs it (then tries to reconnect, in vain).
    stop_server();
    log.wait_for("[disconnected]");
    drop(bot);
}

#[test]
fn log_bot_takes_another_nick_when_its_own_is_taken() {
    let server = Ngircd::start();
    let first_log = TempLog::new();
    let (_first, first) = start_bot(server.port, "logbot", &first_log);
    assert_eq!(first, "logbot");
    let second_log = TempLog::new();
    let (_second, second) = start_bot(server.port, "logbot", &second_log);
    assert_eq!(second, "logbot_");
    second_log.wait_for(&format!("[I have joined {CHANNEL}]"));
}
