//! Interop with SMTP clients nobody here wrote: Python's smtplib (in the clear, and
//! STARTTLS with AUTH PLAIN and LOGIN against a cred password file), and swaks
//! (pipelining, a message past SIZE). Each message is then read back from the Maildir.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use torsion::testing::{skip, Missing};
use torsion_cred::{hash_password, FilePasswordDb, Portal};
use torsion_mail::server_core::Limits;
use torsion_mail::{MaildirDomain, SmtpFactory, SmtpRealm};

use crate::support::{files_in, self_signed, with_server, TempDir};

fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The message smtplib sends; Python turns its LFs into CRLF on the wire.
const MESSAGE: &str = "From: bob@example.net\nTo: alice@example.org\nSubject: interop\n\n\
    Hello Alice,\n.a line starting with a dot\n..and two\n\nbytes: \u{e9}t\u{e9}\n";

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
port, mode, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
msg = sys.stdin.buffer.read().replace(b"\n", b"\r\n")  # bytes are sent as they are
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30) as s:
    if mode != "plain":
        s.ehlo()
        assert "auth" not in s.esmtp_features, "AUTH offered in the clear"
        s.starttls(context=ssl.create_default_context(cafile=cafile))
        s.ehlo()
        assert s.has_extn("auth"), s.esmtp_features
        mech, how = ("LOGIN", s.auth_login) if mode == "login" else ("PLAIN", s.auth_plain)
        s.user, s.password = "alice", "wrong password"
        try:
            s.auth(mech, how, initial_response_ok=(mode == "plain-auth"))
            raise SystemExit("a wrong password logged in")
        except smtplib.SMTPAuthenticationError as e:
            assert e.smtp_code == 535, e
        s.user, s.password = "alice", "wonderland"
        code, _ = s.auth(mech, how, initial_response_ok=(mode == "plain-auth"))
        assert code == 235, code
    refused = s.sendmail("bob@example.net", ["alice@example.org", "nobody@example.org"], msg,
                         mail_options=["BODY=8BITMIME"])
    assert list(refused) == ["nobody@example.org"], refused
    print("sent")
"#;

fn server(dir: &Path) -> SmtpFactory {
    let domain = MaildirDomain::new("example.org", dir).unwrap();
    domain.add_user("alice").unwrap();
    SmtpFactory::new("mx.example.org", domain)
}

fn smtplib(factory: SmtpFactory, mode: &'static str, cafile: String) -> String {
    with_server(factory, move |port| {
        let mut child = Command::new("python3")
            .args(["-c", SMTPLIB, &port.to_string(), mode, &cafile])
            .stdin(std::process::Stdio::piped())
            .output_with_stdin(MESSAGE.as_bytes());
        child.remove(0)
    })
}

/// `Command::output`, writing `input` to standard input first.
trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &[u8]) -> Vec<String>;
}

impl OutputWithStdin for Command {
    fn output_with_stdin(&mut self, input: &[u8]) -> Vec<String> {
        use std::io::Write;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        vec![
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        ]
    }
}

/// The one stored message, without its Received header, which must be the first.
fn stored_without_received(dir: &Path) -> String {
    let files = files_in(&dir.join("alice/new"));
    assert_eq!(files.len(), 1);
    let text = String::from_utf8(files[0].clone()).unwrap();
    assert!(
        text.starts_with("Received: from client.example ("),
        "{text}"
    );
    let end = text.find(" +0000\n").expect("the Received header's date") + 7;
    text[end..].to_owned()
}

#[test]
fn smtplib_sends_in_the_clear_and_the_message_is_in_new_byte_for_byte() {
    if !have("python3", "--version") {
        return skip(Missing::Peer, "python3 is not installed");
    }
    let dir = TempDir::new("smtplib-plain");
    let out = smtplib(server(dir.path()), "plain", String::new());
    assert_eq!(out.trim(), "sent", "{out}");
    assert_eq!(stored_without_received(dir.path()), MESSAGE);
    assert!(files_in(&dir.path().join("alice/tmp")).is_empty());
}

fn auth_over_starttls(mode: &'static str) {
    if !have("python3", "--version") {
        return skip(Missing::Peer, "python3 is not installed");
    }
    let dir = TempDir::new("smtplib-tls");
    let passwords = dir.path().join("passwords");
    std::fs::write(
        &passwords,
        format!("alice:{}\n", hash_password("wonderland")),
    )
    .unwrap();
    let maildirs = dir.path().join("mail");
    let (tls, pem) = self_signed();
    let cafile = dir.path().join("ca.pem");
    std::fs::write(&cafile, pem).unwrap();
    let portal = Portal::new(SmtpRealm);
    portal.register_checker(FilePasswordDb::open(&passwords).unwrap());
    let factory = server(&maildirs)
        .tls(tls)
        .portal(portal)
        .auth_failure_delay(Duration::from_millis(50));
    let out = smtplib(factory, mode, cafile.to_str().unwrap().to_owned());
    assert_eq!(out.trim(), "sent", "{out}");
    let files = files_in(&maildirs.join("alice/new"));
    let text = String::from_utf8(files[0].clone()).unwrap();
    assert!(
        text.contains("with ESMTPSA"),
        "TLS and AUTH in the trace: {text}"
    );
    assert_eq!(stored_without_received(&maildirs), MESSAGE);
}

#[test]
fn smtplib_starttls_then_auth_plain_against_a_password_file() {
    auth_over_starttls("plain-auth");
}

#[test]
fn smtplib_starttls_then_auth_login_against_a_password_file() {
    // smtplib's login() would pick PLAIN; the script asks for LOGIN by name, without an
    // initial response, so the server asks for the user name and then the password.
    auth_over_starttls("login");
}

/// swaks: every command pipelined, then a message past SIZE, each with the expected reply.
#[test]
fn swaks_pipelines_and_is_refused_past_size() {
    if !have("swaks", "--version") {
        return skip(
            Missing::Peer,
            "swaks is not installed (scripts/test installs it)",
        );
    }
    let dir = TempDir::new("swaks");
    let factory = server(dir.path()).limits(Limits {
        max_message_size: 50_000,
        ..Limits::default()
    });
    let big = "x".repeat(998);
    let body = format!("Subject: big\n\n{}", [big.as_str(); 100].join("\n"));
    let (small, large) = with_server(factory, move |port| {
        let run = |body: &str| {
            let out = Command::new("swaks")
                .args([
                    "--server",
                    &format!("127.0.0.1:{port}"),
                    "--pipeline",
                    "--from",
                    "bob@example.net",
                    "--to",
                    "alice@example.org",
                    "--helo",
                    "client.example",
                    "--data",
                    body,
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr)
        };
        (run("Subject: small\n\nhello"), run(&body))
    });
    assert!(small.contains("<-  250 2.0.0 Message accepted"), "{small}");
    assert!(small.contains("PIPELINING"), "{small}");
    // Sent together, answered together in order.
    assert!(
        small.contains(" -> MAIL FROM:<bob@example.net>\n -> RCPT TO:<alice@example.org>\n -> DATA\n<-  250 2.1.0 Sender OK\n<-  250 2.1.5 Recipient OK\n<-  354"),
        "{small}"
    );
    assert!(large.contains("552 5.3.4 Message size exceeds"), "{large}");
    let files = files_in(&dir.path().join("alice/new"));
    assert_eq!(files.len(), 1, "only the small message is stored");
    let stored = String::from_utf8_lossy(&files[0]);
    assert!(
        stored.ends_with("Subject: small\n\nhello\n"),
        "{stored:?}\n{small}"
    );
}
