//! `torsiond news`, run for real: Python's nntplib logs in against a password file, posts,
//! and reads the article back; the article is a file in the group's folder. Misuse. And slrn,
//! a full-screen newsreader, driven under tmux: it reads an article and posts one.

use std::io::Write;
use std::process::{Command, Stdio};

use torsion::testing::{skip, Missing};

use crate::support::{run, stderr_of, Running, TempDir, TIMEOUT};

fn hash_of(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_torsiond"))
        .args(["mail", "--hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const CLIENT: &str = r#"
import nntplib, sys
port = int(sys.argv[1])
s = nntplib.NNTP("127.0.0.1", port, timeout=20)
try:
    s.post(b"From: a@example.org\nNewsgroups: local.general\nSubject: x\n\nx\n")
    raise SystemExit("posted without logging in")
except nntplib.NNTPError as e:
    assert str(e).startswith("480"), e
s.login("alice", "correct horse", usenetrc=False)
s.post(b"From: Alice <a@example.org>\nNewsgroups: local.general\nSubject: hello\nMessage-ID: <p1@example.org>\n\n.dot\n")
resp, count, first, last, name = s.group("local.general")
resp, info = s.body("<p1@example.org>")
print(count, name, info.lines)
resp, descs = s.descriptions("*")
print(sorted(descs.items()))
s.quit()
"#;

#[test]
fn nntplib_logs_in_posts_and_reads_through_torsiond_news() {
    if Command::new("python3")
        .args(["-W", "ignore", "-c", "import nntplib"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        return skip(
            Missing::Peer,
            "python3 with nntplib (3.12 or older) is not installed",
        );
    }
    let dir = TempDir::new("news");
    let root = dir.path().join("spool");
    let passwords = dir.path().join("passwords");
    std::fs::write(&passwords, format!("alice:{}\n", hash_of("correct horse"))).unwrap();
    let mut server = Running::start(&[
        "news",
        "--root",
        root.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--group",
        "local.general=General talk",
        "--group",
        "local.test",
        "--passwordfile",
        passwords.to_str().unwrap(),
        "--hostname",
        "news.example.org",
    ]);
    let port = server.port();
    let out = Command::new("python3")
        .args(["-W", "ignore", "-c", CLIENT, &port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nntplib: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        // nntplib leaves out groups without a description.
        "1 local.general [b'.dot']\n[('local.general', 'General talk')]\n"
    );
    let stored = std::fs::read_to_string(root.join("local.general/1")).unwrap();
    assert!(
        stored.starts_with("Path: news.example.org!not-for-mail\r\nFrom: Alice"),
        "{stored}"
    );
    assert!(stored.ends_with("\r\n\r\n.dot\r\n"), "{stored}");
    assert!(server.terminate().success());
}

#[test]
fn misuse_is_refused_with_a_message() {
    let out = run(&["news", "--listen", "tcp:0"], TIMEOUT);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("no --root DIR"),
        "{}",
        stderr_of(&out)
    );
    let dir = TempDir::new("news-misuse");
    let root = dir.path().display().to_string();
    let out = run(
        &[
            "news",
            "--root",
            &root,
            "--group",
            "../escape",
            "--listen",
            "tcp:0",
        ],
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("--group ../escape"),
        "{}",
        stderr_of(&out)
    );
}

/// A plain NNTP connection, for what the test does around the newsreader.
struct Nntp {
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
}

impl Nntp {
    fn connect(port: u16) -> Nntp {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut c = Nntp {
            reader: std::io::BufReader::new(s.try_clone().unwrap()),
            writer: s,
        };
        assert!(c.line().starts_with("200 "));
        c
    }

    fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// Sends `command`; its status line.
    fn ask(&mut self, command: &str) -> String {
        write!(self.writer, "{command}\r\n").unwrap();
        self.line()
    }

    /// The lines of a multi-line answer, up to the lone dot.
    fn block(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            if line == "." {
                return lines;
            }
            lines.push(line);
        }
    }
}

/// A newsreader nobody here wrote: slrn (Debian's), driven under tmux, lists the group,
/// reads an article posted over a plain connection, and posts one that is read back.
#[test]
fn slrn_under_tmux_reads_and_posts() {
    if !crate::support::have_all(&["slrn", "tmux"]) {
        return;
    }
    let dir = TempDir::new("slrn");
    let root = dir.path().join("root");
    let server = Running::start(&[
        "news",
        "--root",
        root.to_str().unwrap(),
        "--group",
        "local.test=Testing",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--hostname",
        "news.example",
    ]);
    let port = server.port();
    let mut nntp = Nntp::connect(port);
    assert!(nntp.ask("POST").starts_with("340 "));
    let article = "From: alice@example.org\r\nNewsgroups: local.test\r\n\
                   Subject: first post\r\n\r\nHello from a plain connection\r\n.";
    assert!(nntp.ask(article).starts_with("240 "), "not posted");

    // slrn's settings: who posts, and an "editor" that writes the body.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let editor = home.join("edit.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'Hello from slrn\\n' >> \"$1\"\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        home.join(".slrnrc"),
        format!(
            "set hostname \"example.org\"\nset username \"carol\"\nset realname \"Carol\"\n\
             set editor_command \"{} %s\"\n",
            editor.display()
        ),
    )
    .unwrap();
    let reader = crate::support::Terminal::start(
        dir.path(),
        &format!(
            "HOME={home} slrn --nntp -h 127.0.0.1 -p {port} -f {home}/newsrc --create -C-",
            home = home.display()
        ),
    );
    reader.screen_with("local.test");
    reader.key("Space"); // into the group
    reader.screen_with("first post");
    reader.key("Space"); // the article
    let screen = reader.screen_with("Hello from a plain connection");
    assert!(screen.contains("Subject: first post"), "{screen}");
    reader.key("q"); // back to the groups
    reader.screen_with("News Groups");
    reader.key("P");
    reader.screen_with("want to post?");
    reader.key("y");
    // The group under the cursor is offered: taken as it is.
    reader.screen_with("Newsgroup: local.test");
    reader.key("Enter");
    reader.screen_with("Subject:");
    reader.type_line("posted with slrn");
    reader.screen_with("Post the message?");
    reader.key("y");
    reader.screen_with("Posting...done.");

    let group = nntp.ask("GROUP local.test");
    assert!(group.starts_with("211 2 1 2 local.test"), "{group}");
    assert!(nntp.ask("ARTICLE 2").starts_with("220 2 "));
    let posted = nntp.block();
    assert!(
        posted.contains(&"Subject: posted with slrn".to_owned())
            && posted
                .iter()
                .any(|l| l.starts_with("From: Carol <carol@example.org>"))
            && posted.last().map(String::as_str) == Some("Hello from slrn"),
        "{posted:#?}"
    );
    let file = std::fs::read_to_string(root.join("local.test").join("2")).unwrap();
    assert!(file.contains("Hello from slrn"), "{file}");
}
