//! `torsiond news`, run for real: Python's nntplib logs in against a password file, posts,
//! and reads the article back; the article is a file in the group's folder. Misuse.

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
