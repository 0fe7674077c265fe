//! The IRC server on real sockets: Torsion's own IrcClient, Python's `irc` package from
//! PyPI with three users at once, a password file through cred's Portal, and the hostile
//! ones: a client that never reads while a channel floods, and bytes that are not IRC.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion::defer::DeferredQueue;
use torsion::{factory, reactor, ConnectionEnd, Failure};
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal, UsernamePassword};
use torsion_words::irc::{nick_of, Irc, IrcClient, IrcConfig, IrcHandler, IrcSender};
use torsion_words::service::{ChatRealm, IrcServerFactory, ServerConfig};

fn config() -> ServerConfig {
    ServerConfig {
        name: "irc.test".into(),
        ..ServerConfig::default()
    }
}

/// Runs `server` on a loopback port of this thread's reactor while `work` (on its own
/// thread) talks to it with blocking sockets or a child process; stops when `work` ends.
fn serve_while<T: Send + 'static>(
    server: IrcServerFactory,
    work: impl FnOnce(u16) -> T + Send + 'static,
) -> T {
    let r = reactor();
    let port = r.listen_tcp_on(0, server, "127.0.0.1").unwrap();
    let p = port.get_host().port().unwrap();
    torsion::testing::run_with_peer(&r, 120.0, move || work(p))
}

/// A blocking line-based IRC user for the hostile tests.
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Raw {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    /// Reads lines until one contains `want`; returns it.
    fn until(&mut self, want: &str) -> String {
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "the connection ended before {want:?}");
            if line.contains(want) {
                return line;
            }
        }
    }

    fn register(port: u16, nick: &str) -> Raw {
        let mut raw = Raw::connect(port);
        raw.send(&format!("NICK {nick}"));
        raw.send(&format!("USER {nick} 0 * :{nick}"));
        raw.until(" 001 ");
        raw
    }
}

#[test]
fn a_client_that_never_reads_is_dropped_once_its_sendq_is_full() {
    let server = IrcServerFactory::new(ServerConfig {
        flood_rate: 0.0,
        ..config()
    })
    .max_sendq(64 * 1024);
    let watch = server.clone();
    let (quit, received) = serve_while(server, |port| {
        let mut sleeper = Raw::register(port, "sleeper");
        sleeper.send("JOIN #flood");
        sleeper.until(" 366 ");
        let mut flooder = Raw::register(port, "flooder");
        flooder.send("JOIN #flood");
        flooder.until(" 366 ");
        // 40,000 lines of 400 bytes: 16 MB, far past the kernel's buffers and the SendQ.
        let text = "x".repeat(400);
        let mut batch = String::new();
        for i in 0..40_000 {
            batch.push_str(&format!("PRIVMSG #flood :{i} {text}\r\n"));
            if i % 100 == 99 {
                flooder.writer.write_all(batch.as_bytes()).unwrap();
                batch.clear();
            }
        }
        flooder.send("PING :done");
        let quit = flooder.until("QUIT");
        flooder.until("PONG");
        // What the sleeper can still read is bounded: its socket's buffers, then the end.
        let mut received = 0usize;
        let mut buf = [0u8; 65536];
        loop {
            match sleeper.reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
        (quit, received)
    });
    assert_eq!(quit, ":sleeper!~sleeper@127.0.0.1 QUIT :SendQ exceeded\r\n");
    assert!(
        received < 16_000_000 / 2,
        "{received} bytes reached the sleeper"
    );
    assert_eq!(
        watch.members("#flood"),
        None,
        "both gone once the test ends"
    );
}

#[test]
fn bytes_that_are_not_irc_get_numerics_or_nothing() {
    let lines = serve_while(IrcServerFactory::new(config()), |port| {
        let mut raw = Raw::register(port, "fuzzy");
        raw.writer
            .write_all(b"\xff\xfe\r\n:\r\n@@@ \r\nFOO\r\n\0\0\0\r\n")
            .unwrap();
        raw.writer.write_all(&[b'A'; 2000]).unwrap();
        raw.send("");
        raw.send("PING :alive");
        let unknown = raw.until(" 421 ");
        let too_long = raw.until(" 417 ");
        let pong = raw.until("PONG");
        raw.send("QUIT :bye");
        let error = raw.until("ERROR");
        vec![unknown, too_long, pong, error]
    });
    assert_eq!(
        lines,
        [
            ":irc.test 421 fuzzy FOO :Unknown command\r\n",
            ":irc.test 417 fuzzy :Input line was too long\r\n",
            ":irc.test PONG irc.test :alive\r\n",
            "ERROR :Closing Link: 127.0.0.1 (Quit: bye)\r\n",
        ]
    );
}

#[test]
fn a_password_file_lets_in_only_its_users() {
    let users = InMemoryUsernamePasswordDatabaseDontUse::new();
    users.add_user("alice", "secret");
    let portal = Portal::new(ChatRealm);
    portal.register_checker::<UsernamePassword, _>(users);
    let server = IrcServerFactory::new(config()).portal(portal);
    let (welcome, refused) = serve_while(server, |port| {
        let mut good = Raw::connect(port);
        good.send("PASS secret");
        good.send("NICK alice");
        good.send("USER alice 0 * :Alice");
        let welcome = good.until(" 001 ");
        let mut bad = Raw::connect(port);
        bad.send("PASS guess");
        bad.send("NICK alice2");
        bad.send("USER a 0 * :A");
        let refused = bad.until(" 464 ");
        bad.until("ERROR");
        (welcome, refused)
    });
    assert!(
        welcome.starts_with(":irc.test 001 alice :Welcome"),
        "{welcome}"
    );
    assert_eq!(refused, ":irc.test 464 alice2 :Password incorrect\r\n");
}

#[test]
fn python_irc_users_talk_through_the_server() {
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("irc-venv");
    let Some(python) = torsion::testing::python_venv(&venv, "irc.client", &["irc>=20"]) else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/support/irc_users.py");
    let out = serve_while(IrcServerFactory::new(config()), move |port| {
        std::process::Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.ends_with("done\n"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What one Torsion client saw.
#[derive(Clone, Default)]
struct Seen {
    events: DeferredQueue<String>,
    sender: Rc<RefCell<Option<IrcSender>>>,
}

impl Seen {
    fn push(&self, event: String) {
        let _ = self.events.put(event);
    }

    async fn until(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "no {want:?}");
            let event = self
                .events
                .get()
                .expect("one reader")
                .await
                .expect("an event");
            if event == want {
                return;
            }
        }
    }

    fn sender(&self) -> IrcSender {
        self.sender.borrow().clone().expect("signed on")
    }
}

struct Peer {
    seen: Seen,
}

impl IrcHandler for Peer {
    fn signed_on(&mut self, irc: &mut Irc<'_>) {
        *self.seen.sender.borrow_mut() = Some(irc.sender());
        self.seen.push(format!("signed_on {}", irc.nickname()));
    }
    fn joined(&mut self, _irc: &mut Irc<'_>, channel: &str) {
        self.seen.push(format!("joined {channel}"));
    }
    fn user_joined(&mut self, _irc: &mut Irc<'_>, nick: &str, channel: &str) {
        self.seen.push(format!("user_joined {nick} {channel}"));
    }
    fn topic_updated(&mut self, _irc: &mut Irc<'_>, nick: &str, channel: &str, topic: &str) {
        self.seen.push(format!("topic {nick} {channel} {topic}"));
    }
    fn privmsg(&mut self, _irc: &mut Irc<'_>, user: &str, channel: &str, message: &str) {
        self.seen
            .push(format!("privmsg {} {channel} {message}", nick_of(user)));
    }
    fn action(&mut self, _irc: &mut Irc<'_>, user: &str, channel: &str, data: &str) {
        self.seen
            .push(format!("action {} {channel} {data}", nick_of(user)));
    }
    fn user_renamed(&mut self, _irc: &mut Irc<'_>, old: &str, new: &str) {
        self.seen.push(format!("user_renamed {old} {new}"));
    }
    fn user_quit(&mut self, _irc: &mut Irc<'_>, nick: &str, message: &str) {
        self.seen.push(format!("user_quit {nick} {message}"));
    }
    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.seen.push("lost".to_owned());
    }
}

fn connect(port: u16, nick: &str) -> Seen {
    let seen = Seen::default();
    let s = seen.clone();
    let config = IrcConfig::new(nick);
    reactor().connect_tcp(
        "127.0.0.1",
        port,
        factory(move || IrcClient::new(config.clone(), Peer { seen: s.clone() })),
    );
    seen
}

#[torsion::test(timeout = 60)]
async fn torsion_irc_clients_talk_through_the_server() -> Result<(), Failure> {
    let server = IrcServerFactory::new(config());
    let listening = reactor().listen_tcp_on(0, server.clone(), "127.0.0.1")?;
    let port = listening.get_host().port().unwrap();
    let alice = connect(port, "alice");
    alice.until("signed_on alice").await;
    // A taken nickname: the client's collision handling takes another.
    let bob = connect(port, "alice");
    bob.until("signed_on alice_").await;
    alice.sender().join("#torsion");
    alice.until("joined #torsion").await;
    alice.sender().topic("#torsion", Some("rust rewrite"));
    alice.until("topic alice #torsion rust rewrite").await;
    bob.sender().join("#torsion");
    bob.until("joined #torsion").await;
    bob.until("topic irc.test #torsion rust rewrite").await;
    alice.until("user_joined alice_ #torsion").await;
    bob.sender().say("#torsion", "hello alice");
    alice.until("privmsg alice_ #torsion hello alice").await;
    alice.sender().describe("#torsion", "waves");
    bob.until("action alice #torsion waves").await;
    bob.sender().set_nick("bob");
    alice.until("user_renamed alice_ bob").await;
    assert_eq!(
        server.members("#torsion").map(|mut m| {
            m.sort();
            m
        }),
        Some(vec!["alice".to_owned(), "bob".to_owned()])
    );
    bob.sender().quit("later");
    alice.until("user_quit bob Quit: later").await;
    alice.sender().quit("done");
    alice.until("lost").await;
    assert_eq!(server.client_count(), 0);
    listening.stop_listening().await?;
    Ok(())
}

#[test]
fn the_factory_pings_and_drops_silent_clients_on_its_clock() {
    use torsion::testing::{Clock, StringTransport};
    use torsion::transport::Address;
    use torsion::{Factory, Protocol};

    let clock = Clock::new();
    let server = IrcServerFactory::new(config());
    server.set_clock(clock.clone());
    let st = StringTransport::new();
    let t = st.transport();
    let mut p = server
        .build_protocol(&Address::Named("test".into()))
        .unwrap();
    p.connection_made(&t);
    p.data_received(&t, b"NICK quiet\r\nUSER q 0 * :Q\r\n");
    assert!(String::from_utf8(st.take())
        .unwrap()
        .starts_with(":irc.test 001 quiet "));
    clock.advance(119.5);
    assert!(st.take().is_empty());
    clock.advance(1.0);
    assert_eq!(st.take(), b"PING :irc.test\r\n");
    // An answer resets the silence; then nothing more, and the timeout ends it.
    p.data_received(&t, b"PONG :irc.test\r\n");
    clock.advance(119.0);
    assert!(st.take().is_empty() && !st.disconnecting());
    clock.advance(1.0);
    assert_eq!(st.take(), b"PING :irc.test\r\n");
    clock.advance(60.0);
    assert_eq!(
        st.take(),
        b"ERROR :Closing Link: localhost (Ping timeout: 180 seconds)\r\n"
    );
    assert!(st.disconnecting());
    p.connection_lost(ConnectionEnd::Done);
    assert_eq!(server.client_count(), 0);
}
