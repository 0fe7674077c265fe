//! `torsiond irc`, run for real: a user registers and gets the server's name and MOTD, two
//! users talk in a channel; with `--passwordfile` only its users get in; misuse; and a
//! `tls:` listener that Python's `irc` users reach over TLS with the certificate checked; and
//! irssi, a terminal client, driven under tmux in a conversation with a plain connection.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{run, stderr_of, Running, TempDir, Terminal, TIMEOUT};

struct User {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl User {
    fn connect(port: u16) -> User {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        User {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    /// The lines up to and including the next one containing `want`.
    fn until(&mut self, want: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "the connection ended before {want:?}: {seen:#?}");
            let done = line.contains(want);
            seen.push(line.trim_end().to_owned());
            if done {
                return seen;
            }
        }
    }
}

#[test]
fn users_register_see_the_motd_and_talk_in_a_channel() {
    let dir = TempDir::new("irc-motd");
    let motd = dir.path().join("motd.txt");
    std::fs::write(&motd, "Welcome to the test network.\nBe nice.\n").unwrap();
    let server = Running::start(&[
        "irc",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--motd",
        motd.to_str().unwrap(),
        "--name",
        "irc.example",
    ]);
    let port = server.port();
    let mut alice = User::connect(port);
    alice.send("NICK alice");
    alice.send("USER alice 0 * :Alice");
    let lines = alice.until(" 376 ");
    assert!(
        lines[0].starts_with(":irc.example 001 alice :Welcome"),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&":irc.example 372 alice :- Be nice.".to_owned()),
        "{lines:#?}"
    );
    alice.send("JOIN #test");
    alice.until(" 366 ");
    let mut bob = User::connect(port);
    bob.send("NICK bob");
    bob.send("USER bob 0 * :Bob");
    bob.until(" 376 ");
    bob.send("JOIN #test");
    bob.until(" 366 ");
    bob.send("PRIVMSG #test :hi alice");
    let heard = alice.until("PRIVMSG");
    assert_eq!(
        heard.last().unwrap(),
        ":bob!~bob@127.0.0.1 PRIVMSG #test :hi alice"
    );
}

#[test]
fn with_a_password_file_only_its_users_get_in() {
    let dir = TempDir::new("irc-passwords");
    let file = dir.path().join("passwords");
    std::fs::write(
        &file,
        format!("alice:{}\n", torsion_cred::hash_password("wonderland")),
    )
    .unwrap();
    let server = Running::start(&[
        "irc",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--passwordfile",
        file.to_str().unwrap(),
    ]);
    let port = server.port();
    let mut alice = User::connect(port);
    alice.send("PASS wonderland");
    alice.send("NICK alice");
    alice.send("USER alice 0 * :Alice");
    alice.until(" 001 ");
    let mut eve = User::connect(port);
    eve.send("PASS guess");
    eve.send("NICK eve");
    eve.send("USER eve 0 * :Eve");
    let lines = eve.until(" 464 ");
    assert_eq!(
        lines.last().unwrap(),
        ":torsion.irc 464 eve :Password incorrect"
    );
    eve.until("ERROR");
}

#[test]
fn misuse_is_refused_with_a_message() {
    let out = run(
        &["irc", "--listen", "tcp:0", "--motd", "/nonexistent/motd"],
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("cannot read --motd"),
        "{}",
        stderr_of(&out)
    );
    let out = run(&["irc", "--listen", "tcp:0", "--name", "a b"], TIMEOUT);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("--name"), "{}", stderr_of(&out));
}

#[test]
fn python_irc_users_talk_over_a_tls_listener() {
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("irc-tls-venv");
    let Some(python) = torsion::testing::python_venv(&venv, "irc.client", &["irc>=20"]) else {
        return;
    };
    let dir = TempDir::new("irc-tls");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let tls = format!(
        "tls:0:interface=127.0.0.1:privateKey={}:certKey={}",
        key.display(),
        cert.display()
    );
    let server = Running::start(&["irc", "--listen", &tls]);
    let port = server.port();
    // The same three users (register, talk, voice, kick, ban, invite) as over plain TCP,
    // each over TLS with the certificate checked.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../torsion-words/tests/it/support/irc_users.py"
    );
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .arg(&cert)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.ends_with("done\n"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plain bytes on the TLS port get no IRC answer.
    let mut plain = User::connect(port);
    plain.send("NICK mallory");
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut plain.reader, &mut buf).unwrap_or(0);
    assert!(
        !String::from_utf8_lossy(&buf[..n]).contains("mallory"),
        "plain IRC answered on the TLS port"
    );
}

/// A terminal client nobody here wrote: irssi (Debian's), driven under tmux, connects to
/// `torsiond irc`, joins a channel and talks with a user on a plain connection, both ways.
#[test]
fn irssi_under_tmux_talks_with_another_user() {
    if !crate::support::have_all(&["irssi", "tmux"]) {
        return;
    }
    let dir = TempDir::new("irssi");
    let server = Running::start(&[
        "irc",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--name",
        "irc.example",
    ]);
    let port = server.port();
    let mut bob = User::connect(port);
    bob.send("NICK bob");
    bob.send("USER bob 0 * :Bob");
    bob.until(" 422 "); // no MOTD file
    bob.send("JOIN #test");
    bob.until(" 366 ");

    let carol = Terminal::start(
        dir.path(),
        &format!("irssi --home={} --noconnect -n carol", dir.path().display()),
    );
    carol.screen_with("Irssi v");
    carol.type_line(&format!("/connect 127.0.0.1 {port}"));
    carol.screen_with("Welcome to the Torsion IRC Network carol");
    carol.type_line("/join #test");
    carol.screen_with("[#test]");
    let joined = bob.until("JOIN");
    assert!(
        joined.last().unwrap().starts_with(":carol!")
            && joined.last().unwrap().ends_with(" JOIN #test"),
        "{joined:#?}"
    );
    carol.type_line("hello from irssi");
    let heard = bob.until("PRIVMSG");
    let line = heard.last().unwrap();
    assert!(
        line.starts_with(":carol!") && line.ends_with(" PRIVMSG #test :hello from irssi"),
        "{heard:#?}"
    );
    bob.send("PRIVMSG #test :hi carol, bob here");
    let screen = carol.screen_with("hi carol, bob here");
    assert!(
        screen
            .lines()
            .any(|l| l.contains("bob> hi carol, bob here")),
        "{screen}"
    );
    carol.type_line("/quit leaving");
    let quit = bob.until("QUIT");
    assert!(
        quit.last().unwrap().starts_with(":carol!")
            && quit.last().unwrap().ends_with(" QUIT :Quit: leaving"),
        "{quit:#?}"
    );
}
