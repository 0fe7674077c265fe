//! Interop with a POP3 client nobody here wrote: Python's poplib, in the clear and after
//! `stls()`, against a cred password file; and end to end, a message sent with smtplib to
//! the SMTP server fetched whole with poplib, byte for byte, deletions applied at QUIT only.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use torsion::testing::{skip, Missing};
use torsion::{Factory, Reactor};
use torsion_cred::{hash_password, FilePasswordDb, Portal};
use torsion_mail::delivery::Message;
use torsion_mail::{MaildirDomain, MaildirRealm, Pop3Factory, SmtpFactory};

use crate::support::{self_signed, TempDir};

fn have_python() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Listens with two factories on 127.0.0.1, runs `peer(port1, port2)` in a thread while
/// the reactor runs, and returns its result.
fn with_servers<A: Factory, B: Factory, T: Send + 'static>(
    a: A,
    b: B,
    peer: impl FnOnce(u16, u16) -> T + Send + 'static,
) -> T {
    let r = Reactor::new();
    let pa = r.listen_tcp_on(0, a, "127.0.0.1").unwrap();
    let pb = r.listen_tcp_on(0, b, "127.0.0.1").unwrap();
    let (na, nb) = (pa.get_host().port().unwrap(), pb.get_host().port().unwrap());
    let out = torsion::testing::run_with_peer(&r, 120.0, move || peer(na, nb));
    drop((pa, pb));
    out
}

fn python(script: &str, args: &[String]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A domain with alice, her password in a file (argon2), and a POP3 factory for it.
fn pop3_server(dir: &Path) -> (Pop3Factory, MaildirDomain) {
    let passwords = dir.join("passwords");
    std::fs::write(
        &passwords,
        format!("alice:{}\n", hash_password("wonderland")),
    )
    .unwrap();
    let domain = MaildirDomain::new("example.org", dir.join("mail")).unwrap();
    domain.add_user("alice").unwrap();
    let realm_domain = MaildirDomain::new("example.org", dir.join("mail")).unwrap();
    let portal = Portal::new(MaildirRealm::new(vec![realm_domain]));
    portal.register_checker(FilePasswordDb::open(&passwords).unwrap());
    let factory =
        Pop3Factory::new("pop.example.org", portal).auth_failure_delay(Duration::from_millis(50));
    (factory, domain)
}

const POPLIB: &str = r#"
import poplib, ssl, sys
port, mode, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
p = poplib.POP3("127.0.0.1", port, timeout=30)
caps = p.capa()
if mode == "stls":
    assert "USER" not in caps and "STLS" in caps, caps
    p.stls(context=ssl.create_default_context(cafile=cafile))
    caps = p.capa()
    assert "STLS" not in caps, caps
assert "USER" in caps and "UIDL" in caps and "TOP" in caps, caps
p.user("alice")
try:
    p.pass_("wrong")
    raise SystemExit("a wrong password logged in")
except poplib.error_proto as e:
    assert str(e).startswith("b'-ERR [AUTH]"), e
p.user("alice")
p.pass_("wonderland")
count, size = p.stat()
sizes = [int(l.split()[1]) for l in p.list()[1]]
uids = [l.split()[1].decode() for l in p.uidl()[1]]
msgs = []
for i in range(1, count + 1):
    _, lines, octets = p.retr(i)
    msgs.append(b"".join(l + b"\n" for l in lines))
top = p.top(1, 1)[1]
p.dele(1)
print(count, size, sum(sizes), len(set(uids)))
for m in msgs:
    sys.stdout.buffer.write(m)
    print("=====")
print("TOP", len(top))
p.quit()
"#;

fn deliver(domain: &MaildirDomain, text: &[u8]) {
    let mut m = domain.maildir("alice").unwrap().deliver().unwrap();
    m.write(text).unwrap();
    Box::new(m).finish().unwrap();
    std::thread::sleep(Duration::from_millis(2));
}

fn poplib_session(mode: &'static str) {
    if !have_python() {
        return skip(Missing::Peer, "python3 is not installed");
    }
    let dir = TempDir::new(&format!("poplib-{mode}"));
    let (mut factory, domain) = pop3_server(dir.path());
    let cafile = dir.path().join("ca.pem");
    if mode == "stls" {
        let (tls, pem) = self_signed();
        std::fs::write(&cafile, pem).unwrap();
        factory = factory.tls(tls);
    } else {
        factory = factory.login_without_tls(true);
    }
    deliver(&domain, b"Subject: one\n\nHello\n.dot line\n..two\n");
    deliver(&domain, b"Subject: two\n\nsecond\n");
    let ca = cafile.to_str().unwrap().to_owned();
    let out = with_servers(factory, NoServer, move |port, _| {
        python(POPLIB, &[port.to_string(), mode.to_owned(), ca])
    });
    let expected = "2 65 65 2\nSubject: one\n\nHello\n.dot line\n..two\n=====\n\
                    Subject: two\n\nsecond\n=====\nTOP 3\n";
    assert_eq!(out, expected);
    let left = torsion_mail::Mailbox::open(&domain.maildir("alice").unwrap()).unwrap();
    assert_eq!(left.len(), 1, "DELE 1 applied at QUIT");
}

/// A factory that never gets a connection (the second listener when one is enough).
struct NoServer;

impl Factory for NoServer {
    type Protocol = torsion_mail::Pop3;
    fn build_protocol(&self, _: &torsion::transport::Address) -> Option<Self::Protocol> {
        None
    }
}

#[test]
fn poplib_logs_in_in_the_clear_lists_retrieves_and_deletes_at_quit() {
    poplib_session("plain");
}

#[test]
fn poplib_stls_then_logs_in_against_a_password_file() {
    poplib_session("stls");
}

const SEND_THEN_FETCH: &str = r#"
import poplib, smtplib, sys
smtp_port, pop_port = int(sys.argv[1]), int(sys.argv[2])
msg = sys.stdin.buffer.read()
with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="client.example", timeout=30) as s:
    s.sendmail("bob@example.net", ["alice@example.org"], msg)
p = poplib.POP3("127.0.0.1", pop_port, timeout=30)
p.user("alice"); p.pass_("wonderland")
count, _ = p.stat()
assert count == 1, count
_, lines, _ = p.retr(1)
got = b"".join(l + b"\r\n" for l in lines)
p.dele(1)
p.rset()
p.dele(1)
# A second session sees the message while the first has not quit: the lock refuses it.
q = poplib.POP3("127.0.0.1", pop_port, timeout=30)
q.user("alice")
try:
    q.pass_("wonderland")
    raise SystemExit("a second session got the locked maildrop")
except poplib.error_proto as e:
    assert "[IN-USE]" in str(e), e
q.quit()
p.quit()
q = poplib.POP3("127.0.0.1", pop_port, timeout=30)
q.user("alice"); q.pass_("wonderland")
assert q.stat()[0] == 0, "deleted at QUIT"
q.quit()
sys.stdout.buffer.write(got)
"#;

#[test]
fn a_message_sent_with_smtplib_is_fetched_with_poplib_byte_for_byte() {
    if !have_python() {
        return skip(Missing::Peer, "python3 is not installed");
    }
    let dir = TempDir::new("smtp-to-pop3");
    let (pop3, _domain) = pop3_server(dir.path());
    let pop3 = pop3.login_without_tls(true);
    let smtp = SmtpFactory::new(
        "mx.example.org",
        MaildirDomain::new("example.org", dir.path().join("mail")).unwrap(),
    );
    let message: Vec<u8> = b"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: e2e\r\n\r\n\
        Hello Alice,\r\n.a line starting with a dot\r\n..and two\r\n.\r\n\r\nbytes: \xc3\xa9t\xc3\xa9 \tend\r\n"
        .to_vec();
    let input = message.clone();
    let got = with_servers(smtp, pop3, move |smtp_port, pop_port| {
        use std::io::Write;
        let mut child = Command::new("python3")
            .args([
                "-c",
                SEND_THEN_FETCH,
                &smtp_port.to_string(),
                &pop_port.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    });
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        text.starts_with("Received: from client.example ("),
        "{text}"
    );
    let end = text.find(" +0000\r\n").expect("the Received header's date") + 8;
    assert_eq!(&got[end..], &message[..]);
}
