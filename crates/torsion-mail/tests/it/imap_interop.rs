//! The IMAP server against clients nobody here wrote: Python's imaplib (in the clear with
//! logins allowed, and STARTTLS), fed by smtplib through the SMTP server on the same
//! reactor (end to end, byte for byte), including IDLE seeing a delivery; and curl's IMAP.

use std::process::Command;
use std::time::Duration;

use torsion::testing::{skip, Missing};
use torsion::Reactor;
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_mail::imap::ImapFactory;
use torsion_mail::imap_store::crlf;
use torsion_mail::{MaildirDomain, SmtpFactory, SmtpRealm};

use crate::support::{self_signed, TempDir};

fn portal() -> Portal<SmtpRealm> {
    let portal = Portal::new(SmtpRealm);
    let users = InMemoryUsernamePasswordDatabaseDontUse::new();
    users.add_user("alice", "wonderland");
    portal.register_checker(users);
    portal
}

/// Listens with an SMTP and an IMAP factory on 127.0.0.1, runs `peer(smtp, imap)` in a
/// thread while the reactor runs, and returns what it returned.
pub(crate) fn with_servers<T: Send + 'static>(
    smtp: SmtpFactory,
    imap: ImapFactory,
    peer: impl FnOnce(u16, u16) -> T + Send + 'static,
) -> T {
    let r = Reactor::new();
    let sp = r.listen_tcp_on(0, smtp, "127.0.0.1").unwrap();
    let ip = r.listen_tcp_on(0, imap, "127.0.0.1").unwrap();
    let (s, i) = (sp.get_host().port().unwrap(), ip.get_host().port().unwrap());
    let out = torsion::testing::run_with_peer(&r, 120.0, move || peer(s, i));
    drop((sp, ip));
    out
}

const SCRIPT: &str = r#"
import imaplib, smtplib, ssl, sys, socket, time
smtp_port, imap_port, mode, cafile, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
MSG = (b"From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: e2e test\r\n"
       b"Message-ID: <1@example.net>\r\n\r\nHello Alice,\r\n.a dot line\r\nbytes: \xc3\xa9\r\n")
def send(msg):
    with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="client.example", timeout=30) as s:
        s.sendmail("bob@example.net", ["alice@example.org"], msg)
send(MSG)
M = imaplib.IMAP4("127.0.0.1", imap_port, timeout=30)
if mode == "starttls":
    assert "LOGINDISABLED" in M.capabilities, M.capabilities
    try:
        M.login("alice", "wonderland"); raise SystemExit("logged in before STARTTLS")
    except imaplib.IMAP4.error as e:
        assert "PRIVACYREQUIRED" in str(e), e
    M.starttls(ssl.create_default_context(cafile=cafile))
    assert "LOGINDISABLED" not in M.capabilities, M.capabilities
try:
    M.login("alice", "wrong"); raise SystemExit("a wrong password logged in")
except imaplib.IMAP4.error as e:
    assert "AUTHENTICATIONFAILED" in str(e), e
typ, _ = M.login("alice", "wonderland"); assert typ == "OK"
typ, data = M.select("INBOX"); assert (typ, data) == ("OK", [b"1"]), (typ, data)
typ, data = M.search(None, "UNSEEN"); assert data == [b"1"], data
typ, data = M.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE FLAGS ENVELOPE)")
assert typ == "OK", data
assert data[0][1] == b"Subject: e2e test\r\n\r\n", data
rest = data[0][0] + data[1]
assert b"\\Seen" not in rest, data
size = int(rest.split(b"RFC822.SIZE ")[1].split(b" ")[0])
assert b'"e2e test" (("Bob" NIL "bob" "example.net"))' in rest, data
typ, data = M.fetch("1", "(RFC822)")
whole = data[0][1]
assert whole.endswith(MSG) and len(whole) == size, (size, whole)
open(out, "wb").write(whole)
typ, data = M.search(None, "UNSEEN"); assert data == [b""], data
typ, data = M.search(None, 'FROM "bob" SUBJECT "e2e" BODY "alice" LARGER 10'); assert data == [b"1"], data
typ, data = M.search(None, 'OR FLAGGED TO "nobody"'); assert data == [b""], data
typ, data = M.store("1", "+FLAGS", "(\\Flagged)"); assert b"\\Flagged" in data[0], data
typ, data = M.uid("SEARCH", None, "FLAGGED"); uid1 = data[0]; assert uid1 == b"1", data
typ, data = M.fetch("1", "(BODYSTRUCTURE)")
assert b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT"' in data[0], data
typ, data = M.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(time.time()), b"Subject: two\r\n\r\nsecond\r\n")
assert typ == "OK", data
typ, data = M.search(None, "ALL"); assert data == [b"1 2"], data
typ, data = M.create("Archive"); assert typ == "OK", data
typ, data = M.copy("1", "Archive"); assert typ == "OK", data
typ, data = M.status("Archive", "(MESSAGES UIDNEXT)"); assert b"MESSAGES 1" in data[0], data
typ, data = M.list(); names = b" ".join(data); assert b'"INBOX"' in names and b'"Archive"' in names, data
M.store("1", "+FLAGS", "(\\Deleted)")
typ, data = M.expunge(); assert data == [b"1"], data
typ, data = M.search(None, "ALL"); assert data == [b"1"], data
typ, data = M.uid("FETCH", "2", "(FLAGS)"); assert b"UID 2" in data[0] and b"\\Seen" in data[0], data
# IDLE (imaplib 3.11 has none): by hand on the same connection.
tag = M._new_tag().decode()
M.send(f"{tag} IDLE\r\n".encode())
assert M.readline().startswith(b"+"), "no continuation for IDLE"
send(b"Subject: while idling\r\n\r\nhi\r\n")
line = M.readline()
while b"EXISTS" not in line:
    line = M.readline()
assert line == b"* 2 EXISTS\r\n", line
M.send(b"DONE\r\n")
line = M.readline()
while not line.startswith(tag.encode()):
    line = M.readline()
assert line.startswith(f"{tag} OK".encode()), line
typ, data = M.fetch("2", "(BODY.PEEK[TEXT])"); assert data[0][1] == b"hi\r\n", data
M.logout()
print("ok")
"#;

fn python_run(mode: &'static str, tls: bool) {
    if !Command::new("python3")
        .arg("-c")
        .arg("import imaplib")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        skip(Missing::Peer, "python3 with imaplib is not installed");
        return;
    }
    let dir = TempDir::new("imap-interop");
    let domain = MaildirDomain::new("example.org", dir.path().join("mail")).unwrap();
    domain.add_user("alice").unwrap();
    let smtp = SmtpFactory::new("mx.example.org", domain);
    // A second view of the same folders for the IMAP server.
    let domain = MaildirDomain::new("example.org", dir.path().join("mail")).unwrap();
    let mut imap = ImapFactory::new("imap.example.org", domain)
        .portal(portal())
        .auth_failure_delay(Duration::from_millis(50))
        .idle_poll(Duration::from_millis(100));
    let mut cafile = dir.path().join("ca.pem");
    if tls {
        let (ctx, pem) = self_signed();
        std::fs::write(&cafile, pem).unwrap();
        imap = imap.tls(ctx);
    } else {
        imap = imap.login_without_tls(true);
        cafile = dir.path().join("none");
    }
    let out = dir.path().join("fetched");
    let (o, c) = (out.clone(), cafile.clone());
    let result = with_servers(smtp, imap, move |s, i| {
        Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .args([
                s.to_string(),
                i.to_string(),
                mode.to_owned(),
                c.display().to_string(),
                o.display().to_string(),
            ])
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        result.status.success() && stdout.trim() == "ok",
        "imaplib: {stdout}\n{stderr}"
    );
    // Byte for byte: what IMAP sent is the stored file with CRLF line endings (the
    // expunged file is gone, so compare with what was fetched before).
    let fetched = std::fs::read(&out).unwrap();
    assert!(fetched.starts_with(b"Received: from client.example"));
    let archived: Vec<_> = std::fs::read_dir(dir.path().join("mail/alice/.Archive/cur"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(archived.len(), 1);
    assert_eq!(crlf(&archived[0]), fetched);
}

#[test]
fn imaplib_in_the_clear_end_to_end() {
    python_run("plain", false);
}

#[test]
fn imaplib_starttls_end_to_end() {
    python_run("starttls", true);
}

#[test]
fn curl_lists_searches_and_fetches() {
    if !Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        skip(Missing::Peer, "curl is not installed");
        return;
    }
    let dir = TempDir::new("imap-curl");
    let domain = MaildirDomain::new("example.org", dir.path()).unwrap();
    let maildir = domain.add_user("alice").unwrap();
    torsion_mail::imap_store::Folder::append(
        maildir.path(),
        b"Subject: for curl\r\n\r\ncurl body\r\n",
        "",
        None,
    )
    .unwrap();
    let smtp = SmtpFactory::new("mx.example.org", domain);
    let domain = MaildirDomain::new("example.org", dir.path()).unwrap();
    let imap = ImapFactory::new("imap.example.org", domain)
        .portal(portal())
        .login_without_tls(true);
    let outs = with_servers(smtp, imap, move |_, i| {
        let curl = |path: &str, request: Option<&str>| {
            let mut c = Command::new("curl");
            c.args(["-s", "-S", "--max-time", "30", "-u", "alice:wonderland"]);
            if let Some(r) = request {
                c.args(["-X", r]);
            }
            let o = c
                .arg(format!("imap://127.0.0.1:{i}/{path}"))
                .output()
                .unwrap();
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        (
            curl("", None),
            curl("INBOX", Some("SEARCH SUBJECT curl")),
            curl("INBOX;UID=1", None),
        )
    });
    assert!(outs.0.contains("* LIST () \".\" \"INBOX\""), "{}", outs.0);
    assert_eq!(outs.1.trim(), "* SEARCH 1");
    assert_eq!(outs.2, "Subject: for curl\r\n\r\ncurl body\r\n");
}
