//! The SMTP client (`send_mail`, Twisted's `sendmail`) against Torsion's own SMTP server
//! (STARTTLS required, AUTH PLAIN, PIPELINING, per-recipient results, HELO-only and
//! refusing servers, time-outs), against aiosmtpd from PyPI (STARTTLS and AUTH LOGIN), and
//! MX lookups through a torsion-names resolver: preference order, the next host after one
//! that cannot be reached, the domain's own address without MX, a null MX.

use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, MX};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use torsion::defer::{fail, succeed, Deferred};
use torsion::Failure;
use torsion_cred::{InMemoryUsernamePasswordDatabaseDontUse, Portal};
use torsion_mail::smtp_client::{
    send_mail, send_mail_to_domain, SendOptions, SmtpClientError, TlsPolicy,
};
use torsion_mail::{SmtpFactory, SmtpRealm};
use torsion_names::error::DomainError;
use torsion_names::{Answer, Query};

use crate::pop3_client::run;
use crate::support::{self_signed, Memory, TempDir};

const MESSAGE: &[u8] = b"From: bob@example.net\nSubject: client\n\nHello\n.dot line\n..two\n";

/// What the server stores for MESSAGE (CRLF, unstuffed).
const STORED: &[u8] =
    b"From: bob@example.net\r\nSubject: client\r\n\r\nHello\r\n.dot line\r\n..two\r\n";

fn client_error(f: &Failure) -> SmtpClientError {
    f.downcast_ref::<SmtpClientError>()
        .cloned()
        .unwrap_or_else(|| panic!("{f}"))
}

#[test]
fn send_mail_with_required_starttls_and_auth_plain_gets_per_recipient_results() {
    let memory = Memory::default();
    let (tls, pem) = self_signed();
    let dir = TempDir::new("smtp-client-tls");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let checker = InMemoryUsernamePasswordDatabaseDontUse::new();
    checker.add_user("alice", "wonderland");
    let portal = Portal::new(SmtpRealm);
    portal.register_checker(checker);
    let factory = SmtpFactory::new("mx.example.org", memory.clone())
        .tls(tls)
        .portal(portal);
    let sent = run(factory, move |port| async move {
        let context =
            torsion::tls::ClientContext::trusting_pem_file(&ca)?.with_server_name("localhost")?;
        let options = SendOptions {
            tls: TlsPolicy::Required(context),
            auth: Some(("alice".into(), "wonderland".into())),
            ..SendOptions::new("client.example")
        };
        send_mail(
            "127.0.0.1",
            port,
            "bob@example.net",
            &[
                "alice@example.org",
                "nobody@example.org",
                "carol@example.org",
            ],
            MESSAGE.to_vec(),
            options,
        )
        .await
    })
    .unwrap();
    assert_eq!(
        sent.accepted,
        vec!["alice@example.org", "carol@example.org"]
    );
    assert_eq!(sent.refused.len(), 1);
    assert_eq!(sent.refused[0].0, "nobody@example.org");
    assert_eq!(sent.refused[0].1, 550);
    assert_eq!(sent.reply.0, 250);
    let seen = memory.0.borrow();
    assert_eq!(seen.messages.len(), 2);
    assert_eq!(seen.messages[0].1, STORED);
}

#[test]
fn required_tls_without_starttls_sends_nothing_and_a_wrong_password_is_refused() {
    let memory = Memory::default();
    let factory = SmtpFactory::new("mx.example.org", memory.clone());
    let errors = run(factory, move |port| async move {
        let ctx = torsion::tls::ClientContext::new()?;
        let options = SendOptions {
            tls: TlsPolicy::Required(ctx),
            ..SendOptions::new("c")
        };
        let no_tls = send_mail(
            "127.0.0.1",
            port,
            "b@example.net",
            &["alice@example.org"],
            MESSAGE.to_vec(),
            options,
        )
        .await
        .unwrap_err();
        let options = SendOptions {
            auth: Some(("alice".into(), "x".into())),
            ..SendOptions::new("c")
        };
        let no_auth = send_mail(
            "127.0.0.1",
            port,
            "b@example.net",
            &["alice@example.org"],
            MESSAGE.to_vec(),
            options,
        )
        .await
        .unwrap_err();
        let all_refused = send_mail(
            "127.0.0.1",
            port,
            "b@example.net",
            &["nobody@example.org", "x@elsewhere.example"],
            MESSAGE.to_vec(),
            SendOptions::new("c"),
        )
        .await
        .unwrap_err();
        let spammer = send_mail(
            "127.0.0.1",
            port,
            "spammer@example.net",
            &["alice@example.org"],
            MESSAGE.to_vec(),
            SendOptions::new("c"),
        )
        .await
        .unwrap_err();
        Ok((
            client_error(&no_tls),
            client_error(&no_auth),
            client_error(&all_refused),
            client_error(&spammer),
        ))
    })
    .unwrap();
    assert!(
        matches!(errors.0, SmtpClientError::TlsUnavailable(_)),
        "{:?}",
        errors.0
    );
    assert_eq!(errors.1, SmtpClientError::AuthUnavailable);
    let SmtpClientError::AllRecipientsRefused(r) = &errors.2 else {
        panic!("{:?}", errors.2)
    };
    assert_eq!(r.iter().map(|x| x.1).collect::<Vec<_>>(), vec![550, 550]);
    assert!(
        matches!(&errors.3, SmtpClientError::Refused(c, 550, _) if c == "MAIL"),
        "{:?}",
        errors.3
    );
    assert!(memory.0.borrow().messages.is_empty());
}

/// A hand-written server without EHLO or PIPELINING, that then goes silent.
struct OldServer;

struct OldProtocol(Vec<u8>);

impl torsion::Protocol for OldProtocol {
    fn connection_made(&mut self, t: &torsion::Transport) {
        t.write(b"220 old.example SMTP\r\n");
    }
    fn data_received(&mut self, t: &torsion::Transport, data: &[u8]) {
        self.0.extend_from_slice(data);
        while let Some(i) = self.0.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.0.drain(..=i).collect();
            let reply: &[u8] = match &line[..4.min(line.len())] {
                b"EHLO" => b"502 what?\r\n",
                b"HELO" => b"250 old.example\r\n",
                b"MAIL" | b"RCPT" => b"250 ok\r\n",
                b"DATA" => b"354 go\r\n",
                // Silence after the message: the client times out.
                _ => b"",
            };
            t.write(reply);
        }
    }
}

impl torsion::Factory for OldServer {
    type Protocol = OldProtocol;
    fn build_protocol(&self, _: &torsion::transport::Address) -> Option<OldProtocol> {
        Some(OldProtocol(Vec::new()))
    }
}

#[test]
fn helo_is_used_when_ehlo_is_refused_and_a_silent_server_times_out() {
    let err = run(OldServer, |port| async move {
        let options = SendOptions {
            timeout: 0.5,
            ..SendOptions::new("c")
        };
        Ok(send_mail(
            "127.0.0.1",
            port,
            "b@x.example",
            &["a@y.example"],
            MESSAGE.to_vec(),
            options,
        )
        .await
        .unwrap_err())
    })
    .unwrap();
    assert_eq!(client_error(&err), SmtpClientError::TimedOut);
}

fn mx(name: &str, pref: u16, exchange: &str) -> Record {
    Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        60,
        RData::MX(MX::new(pref, Name::from_ascii(exchange).unwrap())),
    )
}

fn a(name: &Name, ip: Ipv4Addr) -> Record {
    Record::from_rdata(name.clone(), 60, RData::A(A(ip)))
}

/// example.org: MX 20 good, MX 10 dead (127.0.0.2, where nothing listens); nomx.example:
/// no MX, an address; nullmx.example: a null MX.
fn resolver(q: &Query) -> Deferred<Answer> {
    let name = q.name.to_ascii();
    let name = name.trim_end_matches('.');
    let answers = match (q.record_type, name) {
        (RecordType::MX, "example.org") => vec![
            mx("example.org.", 20, "good.example.org."),
            mx("example.org.", 10, "dead.example.org."),
        ],
        (RecordType::MX, "nullmx.example") => vec![mx("nullmx.example.", 0, ".")],
        (RecordType::A, "good.example.org" | "nomx.example") => {
            vec![a(&q.name, Ipv4Addr::LOCALHOST)]
        }
        (RecordType::A, "dead.example.org") => vec![a(&q.name, Ipv4Addr::new(127, 0, 0, 2))],
        _ => return fail(DomainError(q.clone())),
    };
    succeed(Answer {
        answers,
        ..Answer::default()
    })
}

#[test]
fn mx_hosts_are_tried_in_preference_order_with_the_address_as_fallback() {
    let memory = Memory::default();
    let factory = SmtpFactory::new("mx.example.org", memory.clone());
    let out = run(factory, |port| async move {
        let r: Rc<dyn torsion_names::Resolver> = Rc::new(resolver);
        let opts = || SendOptions {
            timeout: 5.0,
            ..SendOptions::new("c")
        };
        let via_mx = send_mail_to_domain(
            r.clone(),
            "example.org",
            port,
            "b@x.example",
            &["alice@example.org"],
            MESSAGE.to_vec(),
            opts(),
        )
        .await?;
        let no_mx = send_mail_to_domain(
            r.clone(),
            "nomx.example",
            port,
            "b@x.example",
            &["carol@example.org"],
            MESSAGE.to_vec(),
            opts(),
        )
        .await?;
        let null = send_mail_to_domain(
            r.clone(),
            "nullmx.example",
            port,
            "b@x.example",
            &["d@example.org"],
            MESSAGE.to_vec(),
            opts(),
        )
        .await
        .unwrap_err();
        let none = send_mail_to_domain(
            r,
            "nowhere.example",
            port,
            "b@x.example",
            &["d@example.org"],
            MESSAGE.to_vec(),
            opts(),
        )
        .await
        .unwrap_err();
        Ok((via_mx, no_mx, client_error(&null), client_error(&none)))
    })
    .unwrap();
    assert_eq!(
        out.0.server,
        format!(
            "good.example.org:{}",
            out.0.server.rsplit(':').next().unwrap()
        )
    );
    assert_eq!(out.1.server.split(':').next(), Some("nomx.example"));
    assert!(
        matches!(out.2, SmtpClientError::NoMailExchanger(_)),
        "{:?}",
        out.2
    );
    let SmtpClientError::NoMailExchanger(tried) = &out.3 else {
        panic!("{:?}", out.3)
    };
    assert_eq!(tried[0].0, "nowhere.example");
    assert_eq!(memory.0.borrow().messages.len(), 2);
    let _ = Duration::ZERO;
}

/// aiosmtpd (PyPI) with STARTTLS required and AUTH LOGIN only: prints its port, then the
/// messages it received (hex) once its standard input closes.
const AIOSMTPD: &str = r#"
import socket, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
cert, key = sys.argv[1], sys.argv[2]
got = []
class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        got.append((session.authenticated, envelope.mail_from, envelope.rcpt_tos, envelope.original_content))
        return "250 Message accepted for delivery"
def check(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alice" and auth_data.password == b"wonderland"
    return AuthResult(success=ok)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
c = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
               authenticator=check, auth_required=True, auth_require_tls=True,
               auth_exclude_mechanism=["PLAIN"])
c.start()
print("PORT", port, flush=True)
sys.stdin.read()
c.stop()
for auth, frm, tos, content in got:
    print(auth, frm, ",".join(tos), content.hex(), flush=True)
"#;

#[test]
fn send_mail_through_aiosmtpd_with_starttls_and_auth_login() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("aiosmtpd-venv");
    let Some(python) = torsion::testing::python_venv(&venv, "aiosmtpd", &["aiosmtpd>=1.4"]) else {
        return;
    };
    let dir = TempDir::new("aiosmtpd");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let mut child = Command::new(python)
        .args([
            "-c",
            AIOSMTPD,
            cert_pem.to_str().unwrap(),
            key_pem.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .expect("aiosmtpd's port")
        .parse()
        .unwrap();
    let ca = cert_pem.clone();
    let sent = run(OldServer, move |_| async move {
        let context =
            torsion::tls::ClientContext::trusting_pem_file(&ca)?.with_server_name("localhost")?;
        let options = SendOptions {
            tls: TlsPolicy::Required(context),
            auth: Some(("alice".into(), "wonderland".into())),
            timeout: 20.0,
            ..SendOptions::new("client.example")
        };
        send_mail(
            "127.0.0.1",
            port,
            "bob@example.net",
            &["alice@example.org", "nobody@example.org"],
            MESSAGE.to_vec(),
            options,
        )
        .await
    });
    drop(child.stdin.take());
    let mut received = String::new();
    std::io::Read::read_to_string(&mut out, &mut received).unwrap();
    let _ = child.wait();
    let sent = sent.unwrap();
    assert_eq!(sent.accepted, vec!["alice@example.org"]);
    assert_eq!(sent.refused[0].1, 550);
    let fields: Vec<&str> = received.trim().split(' ').collect();
    assert_eq!(
        &fields[..3],
        ["True", "bob@example.net", "alice@example.org"],
        "{received}"
    );
    let content: Vec<u8> = (0..fields[3].len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&fields[3][i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(content, STORED);
}

/// A 20 MB message of 78-byte CRLF lines, one in a hundred starting with a dot.
fn big_message() -> Vec<u8> {
    let mut m = b"From: bob@example.net\r\nSubject: big\r\n\r\n".to_vec();
    let mut i = 0u64;
    while m.len() < 20_000_000 {
        let lead = if i % 100 == 0 { "." } else { "l" };
        m.extend_from_slice(format!("{lead}ine {i:010} {}\r\n", "x".repeat(60)).as_bytes());
        i += 1;
    }
    m
}

/// A reader that records how far ahead of the server it was read: the most bytes read but
/// not yet received by the server's delivery.
struct Watched {
    data: std::io::Cursor<Vec<u8>>,
    read: u64,
    server: Rc<std::cell::RefCell<crate::support::Seen>>,
    ahead: Rc<std::cell::Cell<u64>>,
}

impl std::io::Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::io::Read::read(&mut self.data, buf)?;
        self.read += n as u64;
        let received = self.server.borrow().open_bytes as u64;
        self.ahead
            .set(self.ahead.get().max(self.read.saturating_sub(received)));
        Ok(n)
    }
}

/// `send_mail` streams a 20 MB message over STARTTLS to Torsion's own server, from a file
/// and from a reader: both arrive whole (dot-stuffed on the way, unstuffed by the server),
/// and the reader is never read far ahead of what the server has taken (a client holding
/// the message whole would be 20 MB ahead before the first byte arrives).
#[test]
fn send_mail_streams_a_20_mb_message_from_a_file_and_from_a_reader() {
    use torsion_mail::smtp_client::MessageBody;
    use torsion_mail::Limits;
    let memory = Memory::default();
    let (tls, pem) = self_signed();
    let dir = TempDir::new("smtp-client-stream");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let message = big_message();
    let file = dir.path().join("big.eml");
    std::fs::write(&file, &message).unwrap();
    let factory = SmtpFactory::new("mx.example.org", memory.clone())
        .tls(tls)
        .limits(Limits {
            max_message_size: 32 << 20,
            ..Limits::default()
        });
    let ahead = Rc::new(std::cell::Cell::new(0));
    let watched = Watched {
        data: std::io::Cursor::new(message.clone()),
        read: 0,
        server: memory.0.clone(),
        ahead: ahead.clone(),
    };
    let sent = run(factory, move |port| async move {
        let context =
            torsion::tls::ClientContext::trusting_pem_file(&ca)?.with_server_name("localhost")?;
        let options = SendOptions {
            tls: TlsPolicy::Required(context),
            timeout: 30.0,
            ..SendOptions::new("client.example")
        };
        let from_file = send_mail(
            "127.0.0.1",
            port,
            "bob@example.net",
            &["alice@example.org"],
            MessageBody::File(file),
            options.clone(),
        )
        .await?;
        let from_reader = send_mail(
            "127.0.0.1",
            port,
            "bob@example.net",
            &["carol@example.org"],
            MessageBody::reader(watched),
            options,
        )
        .await?;
        Ok((from_file, from_reader))
    })
    .unwrap();
    assert_eq!(sent.0.reply.0, 250);
    assert_eq!(sent.1.reply.0, 250);
    let seen = memory.0.borrow();
    assert_eq!(seen.messages.len(), 2);
    assert_eq!(seen.messages[0].0.to_string(), "alice@example.org");
    assert!(seen.messages[0].1 == message, "the file's copy differs");
    assert!(seen.messages[1].1 == message, "the reader's copy differs");
    assert!(
        ahead.get() < 16 << 20,
        "read {} bytes ahead of the server",
        ahead.get()
    );
}

/// A reader that fails mid-message: the send fails with `Message`, the connection is closed
/// mid-DATA and the server keeps nothing.
#[test]
fn a_reader_failing_mid_message_fails_the_send_and_nothing_is_delivered() {
    use torsion_mail::smtp_client::MessageBody;
    struct Broken(usize);
    impl std::io::Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            self.0 -= 1;
            let line = b"Subject: x\r\n";
            let n = line.len().min(buf.len());
            buf[..n].copy_from_slice(&line[..n]);
            Ok(n)
        }
    }
    let memory = Memory::default();
    let factory = SmtpFactory::new("mx.example.org", memory.clone());
    let error = run(factory, move |port| async move {
        let options = SendOptions {
            timeout: 30.0,
            ..SendOptions::new("client.example")
        };
        Ok(send_mail(
            "127.0.0.1",
            port,
            "bob@example.net",
            &["alice@example.org"],
            MessageBody::reader(Broken(3)),
            options,
        )
        .await
        .unwrap_err())
    })
    .unwrap();
    match client_error(&error) {
        SmtpClientError::Message(why) => assert!(why.contains("disk on fire"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The message's end never came: nothing delivered.
    assert!(memory.0.borrow().messages.is_empty());
}

/// aiosmtpd (PyPI), plain: writes what it received to a file, prints its port first.
const AIOSMTPD_PLAIN: &str = r#"
import socket, sys
from aiosmtpd.controller import Controller
out = sys.argv[1]
class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "wb") as f:
            f.write(envelope.original_content)
        return "250 Message accepted for delivery"
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
c = Controller(Handler(), hostname="127.0.0.1", port=port, data_size_limit=64 << 20)
c.start()
print("PORT", port, flush=True)
sys.stdin.read()
c.stop()
"#;

/// A 20 MB message streamed from a file to aiosmtpd arrives byte for byte.
#[test]
fn send_mail_streams_a_20_mb_file_to_aiosmtpd() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use torsion_mail::smtp_client::MessageBody;
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("aiosmtpd-venv");
    let Some(python) = torsion::testing::python_venv(&venv, "aiosmtpd", &["aiosmtpd>=1.4"]) else {
        return;
    };
    let dir = TempDir::new("aiosmtpd-big");
    let message = big_message();
    let file = dir.path().join("big.eml");
    std::fs::write(&file, &message).unwrap();
    let received = dir.path().join("received");
    let mut child = Command::new(python)
        .args(["-c", AIOSMTPD_PLAIN, received.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .expect("aiosmtpd's port")
        .parse()
        .unwrap();
    let sent = run(OldServer, move |_| async move {
        let options = SendOptions {
            timeout: 60.0,
            ..SendOptions::new("client.example")
        };
        send_mail(
            "127.0.0.1",
            port,
            "bob@example.net",
            &["alice@example.org"],
            MessageBody::File(file),
            options,
        )
        .await
    });
    drop(child.stdin.take());
    let _ = child.wait();
    assert_eq!(sent.unwrap().reply.0, 250);
    let got = std::fs::read(&received).unwrap();
    assert_eq!(got.len(), message.len());
    assert!(got == message, "aiosmtpd's copy differs");
}
