//! `torsiond mail`, run for real: `--hash-password`, and Python's smtplib sending through
//! STARTTLS and AUTH a message that lands in the user's Maildir; misuse.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use torsion::testing::{skip, Missing};

use crate::support::{have, run, stderr_of, Running, TempDir, TIMEOUT};

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

#[test]
fn hash_password_prints_an_argon2_hash_of_the_line_read() {
    let a = hash_of("correct horse");
    let b = hash_of("correct horse");
    assert!(a.starts_with("$argon2id$"), "{a}");
    assert_ne!(a, b, "a fresh salt each time");
    let stored = torsion_cred::StoredHash::parse(&a).unwrap();
    assert!(stored.verify(b"correct horse"));
    assert!(!stored.verify(b"correct horse\n"));
}

#[test]
fn misuse_is_refused_with_a_message() {
    let out = run(&["mail", "--smtp", "tcp:0"], TIMEOUT);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("no --domain"),
        "{}",
        stderr_of(&out)
    );
    let dir = TempDir::new("mail-misuse");
    let domain = format!("example.org={}", dir.path().display());
    let out = run(
        &[
            "mail",
            "--domain",
            &domain,
            "--user",
            "alice=plaintext",
            "--smtp",
            "tcp:0",
        ],
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("--user alice"),
        "{}",
        stderr_of(&out)
    );
}

fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| std::fs::read(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// A running `torsiond mail` for alice@example.org (password "correct horse") with a
/// throwaway certificate for STARTTLS, its folders removed when dropped.
struct Mail {
    server: Running,
    /// The certificate, which the Python clients take as their CA file.
    cert_pem: PathBuf,
    /// The domain's folder: a Maildir per user below it.
    mail: PathBuf,
    /// Each service's port, in the order they were asked for.
    ports: Vec<u16>,
    _dir: TempDir,
}

impl Mail {
    /// Serves each of `services` (`--smtp`, `--pop3`, `--imap`) on port 0 of a loopback
    /// address of its own, 127.0.0.1, .2 and .3 in the order given, which tells them apart in
    /// the "listening on" lines; `extra` arguments follow.
    fn start(name: &str, services: &[&str], extra: &[&str]) -> Mail {
        let dir = TempDir::new(name);
        let hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
        let cert = rcgen::generate_simple_self_signed(
            ["localhost"]
                .iter()
                .chain(&hosts)
                .map(|h| h.to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let cert_pem = dir.join("cert.pem");
        let key_pem = dir.join("key.pem");
        std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
        std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
        let mail = dir.join("example.org");
        let mut args = vec![
            "mail".to_owned(),
            "--domain".to_owned(),
            format!("example.org={}", mail.display()),
            "--user".to_owned(),
            format!("alice={}", hash_of("correct horse")),
            "--certificate".to_owned(),
            cert_pem.display().to_string(),
            "--key".to_owned(),
            key_pem.display().to_string(),
        ];
        for (service, host) in services.iter().zip(hosts) {
            args.push(service.to_string());
            args.push(format!("tcp:0:interface={host}"));
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let server = Running::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut ports = vec![0u16; services.len()];
        for _ in services {
            let line = server.wait_for("listening on tcp:");
            let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
            let which = hosts
                .iter()
                .position(|h| line.contains(h))
                .unwrap_or_else(|| panic!("{line}"));
            ports[which] = port;
        }
        assert!(ports.iter().all(|&p| p != 0), "{ports:?}");
        Mail {
            server,
            cert_pem,
            mail,
            ports,
            _dir: dir,
        }
    }

    /// `python3 -c SCRIPT` with the services' ports and then the CA file as its arguments;
    /// asserts that the script succeeded and that its last line is `expected`.
    fn python(&self, script: &str, expected: &str) {
        let mut args: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        args.push(self.cert_pem.display().to_string());
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(&args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.trim_end().lines().last() == Some(expected),
            "python: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

const SEND: &str = r#"
import smtplib, ssl, sys
port, cafile = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)
s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=20)
s.ehlo()
assert not s.has_extn("auth"), "AUTH offered before TLS"
s.starttls(context=ctx)
s.ehlo()
s.login("alice", "correct horse")
msg = b"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: hello\r\n\r\nHi Alice.\r\n.leading dot\r\n"
refused = s.sendmail("bob@example.net", ["alice@example.org"], msg)
assert refused == {}, refused
try:
    s.sendmail("bob@example.net", ["carol@example.com"], msg)
    raise SystemExit("relaying was accepted")
except smtplib.SMTPRecipientsRefused as e:
    assert e.recipients["carol@example.com"][0] == 550, e.recipients
s.quit()
print("sent")
"#;

#[test]
fn smtplib_sends_through_starttls_and_auth_into_the_users_maildir() {
    if !have("python3") {
        return skip(Missing::Peer, "python3 is not installed");
    }
    let mut m = Mail::start("mail", &["--smtp"], &["--hostname", "mx.example.org"]);
    m.python(SEND, "sent");
    // Delivered before the 250: in new/, nothing left in tmp/.
    let deadline = Instant::now() + TIMEOUT;
    let new = m.mail.join("alice/new");
    while files_in(&new).is_empty() && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let messages = files_in(&new);
    assert_eq!(messages.len(), 1);
    let text = String::from_utf8(messages[0].clone()).unwrap();
    assert!(text.starts_with("Received: from client.example"), "{text}");
    assert!(text.contains("by mx.example.org with ESMTPSA"), "{text}");
    assert!(
        text.ends_with("\nSubject: hello\n\nHi Alice.\n.leading dot\n"),
        "{text}"
    );
    assert!(files_in(&m.mail.join("alice/tmp")).is_empty());
    assert!(m.server.terminate().success());
}

const SEND_THEN_POP: &str = r#"
import poplib, smtplib, ssl, sys
smtp_port, pop_port, cafile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
msg = b"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: pop\r\n\r\nHi Alice.\r\n.leading dot\r\n"
with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="client.example", timeout=20) as s:
    s.sendmail("bob@example.net", ["alice@example.org"], msg)
p = poplib.POP3("127.0.0.2", pop_port, timeout=20)
assert "USER" not in p.capa(), "USER offered in the clear"
p.stls(context=ctx)
p.user("alice")
p.pass_("correct horse")
assert p.stat()[0] == 1
_, lines, _ = p.retr(1)
got = b"".join(l + b"\r\n" for l in lines)
assert got.endswith(b"\r\n" + msg), got
p.dele(1)
p.quit()
p = poplib.POP3("127.0.0.2", pop_port, timeout=20)
p.stls(context=ctx)
p.user("alice")
p.pass_("correct horse")
assert p.stat()[0] == 0, "deleted at QUIT"
p.quit()
print("fetched")
"#;

/// `--pop3` serves the Maildirs the SMTP side writes: a message sent with smtplib is fetched
/// with poplib after STLS, and deleted at QUIT.
#[test]
fn pop3_serves_what_smtp_delivered_over_stls() {
    if !have("python3") {
        return skip(Missing::Peer, "python3 is not installed");
    }
    let mut m = Mail::start("mail-pop3", &["--smtp", "--pop3"], &[]);
    m.python(SEND_THEN_POP, "fetched");
    assert!(files_in(&m.mail.join("alice/new")).is_empty());
    assert!(m.server.terminate().success());
}

const SEND_THEN_READ: &str = r#"
import imaplib, smtplib, ssl, sys
smtp_port, imap_port, cafile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
msg = b"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: imap\r\n\r\nHi Alice.\r\n.leading dot\r\n"
with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="client.example", timeout=20) as s:
    s.sendmail("bob@example.net", ["alice@example.org"], msg)
M = imaplib.IMAP4("127.0.0.2", imap_port, timeout=20)
assert "LOGINDISABLED" in M.capabilities, M.capabilities
M.starttls(ssl.create_default_context(cafile=cafile))
M.login("alice", "correct horse")
typ, data = M.select("INBOX"); assert data == [b"1"], data
typ, data = M.fetch("1", "(BODY.PEEK[TEXT])")
assert data[0][1] == b"Hi Alice.\r\n.leading dot\r\n", data
M.logout()
print("read")
"#;

/// `--imap`: what smtplib sent through the SMTP server is read back with imaplib over
/// STARTTLS from the same `torsiond mail`.
#[test]
fn imaplib_reads_over_starttls_what_smtplib_sent() {
    if !have("python3") {
        return skip(Missing::Peer, "python3 is not installed");
    }
    let mut m = Mail::start("mail-imap", &["--smtp", "--imap"], &[]);
    m.python(SEND_THEN_READ, "read");
    assert!(m.server.terminate().success());
}

/// Deletions over POP3 seen over IMAP and the reverse, through one `torsiond mail`: three
/// messages sent with smtplib; poplib deletes the second and QUITs, imaplib finds the first
/// and third; imaplib expunges the first, poplib finds the third alone. Then the two at once:
/// a POP3 session whose listing was taken before IMAP moved the messages to `cur/` and set
/// `\Seen` (renaming their files) still reads them and deletes the one it was told to, and
/// the IMAP session sees that deletion as an EXPUNGE.
const POP_AND_IMAP: &str = r#"
import imaplib, poplib, smtplib, ssl, sys
smtp_port, pop_port, imap_port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context(cafile=sys.argv[4])
def send(n):
    with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="client.example", timeout=20) as s:
        s.sendmail("bob@example.net", ["alice@example.org"], b"Subject: m%d\r\n\r\nbody %d\r\n" % (n, n))
def pop():
    p = poplib.POP3("127.0.0.2", pop_port, timeout=20)
    p.stls(context=ctx)
    p.user("alice")
    p.pass_("correct horse")
    return p
def pop_bodies(p):
    out = []
    for i in range(1, p.stat()[0] + 1):
        whole = b"".join(l + b"\r\n" for l in p.retr(i)[1])
        out.append(whole.split(b"\r\n\r\n", 1)[1])
    return out
def imap_bodies(M):
    typ, data = M.fetch("1:*", "(BODY.PEEK[TEXT])")
    assert typ == "OK", data
    return [d[1] for d in data if isinstance(d, tuple)]
def bodies(*ns):
    return [b"body %d\r\n" % n for n in ns]

for n in (1, 2, 3):
    send(n)
p = pop()
assert pop_bodies(p) == bodies(1, 2, 3)
p.dele(2)
p.quit()

M = imaplib.IMAP4("127.0.0.3", imap_port, timeout=20)
M.starttls(ctx)
M.login("alice", "correct horse")
typ, data = M.select("INBOX")
assert data == [b"2"], data
got = imap_bodies(M)
assert got == bodies(1, 3), got

M.store("1", "+FLAGS", "\\Deleted")
typ, data = M.expunge()
assert data == [b"1"], data
p = pop()
assert p.stat()[0] == 1
got = pop_bodies(p)
assert got == bodies(3), got
p.quit()

send(4)
send(5)
p = pop()
assert pop_bodies(p) == bodies(3, 4, 5)
# IMAP moves 4 and 5 from new/ to cur/, then FETCH sets \Seen: their files are renamed twice
# under the POP3 session's listing.
M.noop()
typ, data = M.fetch("2:3", "(BODY[TEXT])")
assert [d[1] for d in data if isinstance(d, tuple)] == bodies(4, 5), data
got = pop_bodies(p)
assert got == bodies(3, 4, 5), got
p.dele(2)
p.quit()
M.noop()
assert M.untagged_responses.pop("EXPUNGE", None) == [b"2"], M.untagged_responses
got = imap_bodies(M)
assert got == bodies(3, 5), got
p = pop()
got = pop_bodies(p)
assert got == bodies(3, 5), got
p.quit()
M.logout()
print("agreed")
"#;

#[test]
fn deletions_over_pop3_show_over_imap_and_the_reverse() {
    if !have("python3") {
        return skip(Missing::Peer, "python3 is not installed");
    }
    let mut m = Mail::start("mail-pop-imap", &["--smtp", "--pop3", "--imap"], &[]);
    m.python(POP_AND_IMAP, "agreed");
    assert!(m.server.terminate().success());
}
