//! OpenSSH's `ssh` (Debian's openssh-client) against the Torsion SSH server.

use std::cell::{Cell, RefCell};
use std::process::{Command, Stdio};
use std::rc::Rc;

use crate::support::{
    describe, have_ssh, keygen, quick, server, ssh, ssh_key, text, with_server, TempDir,
};
use torsion::{Protocol, Transport};
use torsion_conch::keys::{AuthorizedKeysChecker, SshPublicKey};
use torsion_conch::ssh::{HostKey, SessionKind, SessionRequest, SshOptions, SshRealm, SshServer};
use torsion_cred::Portal;

/// A scratch folder with a host key file, a client key pair, and an authorized_keys file
/// holding the client's public key.
fn setup(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let public = keygen(&dir.join("id"));
    std::fs::write(dir.join("authorized_keys"), public).unwrap();
    dir
}

#[test]
fn key_login_runs_a_command_and_returns_its_status() {
    if !have_ssh() {
        return;
    }
    let dir = setup("exec");
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let outs = with_server(
        move || server(&auth, HostKey::generate(), quick()),
        move |port| {
            let key = d.join("id");
            let run = |cmd: &str| {
                ssh_key(&d, port, &key)
                    .arg("bob@127.0.0.1")
                    .arg(cmd)
                    .output()
            };
            (
                run("echo hello over ssh").unwrap(),
                run("whoami").unwrap(),
                run("exit 3").unwrap(),
                run("frobnicate").unwrap(),
            )
        },
    );
    let (echo, who, exit3, unknown) = outs;
    assert_eq!(
        text(&echo.stdout),
        "hello over ssh\n",
        "{}",
        describe(&echo)
    );
    assert_eq!(echo.status.code(), Some(0), "{}", describe(&echo));
    assert_eq!(text(&who.stdout), "bob\n", "{}", describe(&who));
    assert_eq!(exit3.status.code(), Some(3), "{}", describe(&exit3));
    assert_eq!(unknown.status.code(), Some(127), "{}", describe(&unknown));
    assert_eq!(text(&unknown.stdout), "frobnicate: command not found\n");
}

#[test]
fn a_line_receiver_serves_an_exec_channel_until_eof() {
    if !have_ssh() {
        return;
    }
    let dir = setup("lines");
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let out = with_server(
        move || server(&auth, HostKey::generate(), quick()),
        move |port| {
            let mut child = ssh_key(&d, port, &d.join("id"))
                .arg("alice@127.0.0.1")
                .arg("lines")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"hello\r\nworld\r\n").unwrap();
            drop(stdin);
            child.wait_with_output().unwrap()
        },
    );
    assert_eq!(
        text(&out.stdout),
        "olleh\r\ndlrow\r\n",
        "{}",
        describe(&out)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "no status set is 0: {}",
        describe(&out)
    );
}

#[test]
fn a_wrong_key_is_refused() {
    if !have_ssh() {
        return;
    }
    let dir = setup("wrongkey");
    keygen(&dir.join("other"));
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let out = with_server(
        move || server(&auth, HostKey::generate(), quick()),
        move |port| {
            ssh_key(&d, port, &d.join("other"))
                .arg("alice@127.0.0.1")
                .arg("echo in")
                .output()
                .unwrap()
        },
    );
    assert_eq!(out.status.code(), Some(255), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        describe(&out)
    );
    assert_eq!(text(&out.stdout), "");
}

fn have_sshpass() -> bool {
    let ok = Command::new("sshpass").arg("-V").output().is_ok();
    if !ok {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            "sshpass (Debian's sshpass) types the password into ssh",
        );
    }
    ok
}

#[test]
fn password_login_goes_through_the_portal() {
    if !have_ssh() || !have_sshpass() {
        return;
    }
    let dir = setup("password");
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let (good, bad) = with_server(
        move || server(&auth, HostKey::generate(), quick()),
        move |port| {
            let run = |pw: &str| {
                let mut c = Command::new("sshpass");
                c.args(["-p", pw]);
                let s = ssh(&d, port);
                c.arg(s.get_program()).args(s.get_args());
                c.args([
                    "-o",
                    "PreferredAuthentications=password",
                    "-o",
                    "PubkeyAuthentication=no",
                    "-o",
                    "NumberOfPasswordPrompts=1",
                    "alice@127.0.0.1",
                    "whoami",
                ])
                .output()
                .unwrap()
            };
            (run("secret"), run("wrong"))
        },
    );
    assert_eq!(text(&good.stdout), "alice\n", "{}", describe(&good));
    assert_eq!(good.status.code(), Some(0), "{}", describe(&good));
    assert_ne!(bad.status.code(), Some(0), "{}", describe(&bad));
    assert_eq!(text(&bad.stdout), "");
}

#[test]
fn a_shell_with_a_pty_gets_the_terminal_and_the_environment() {
    if !have_ssh() {
        return;
    }
    let dir = setup("pty");
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let out = with_server(
        move || server(&auth, HostKey::generate(), quick()),
        move |port| {
            let mut child = ssh_key(&d, port, &d.join("id"))
                .args(["-tt", "-o", "SendEnv=LANG", "alice@127.0.0.1"])
                .env("TERM", "vt100")
                .env("LANG", "C.UTF-8")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"pty\nenv LANG\nexit 4\n").unwrap();
            let out = child.wait_with_output().unwrap();
            drop(stdin);
            out
        },
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("vt100 "), "{}", describe(&out));
    assert!(stdout.contains("C.UTF-8"), "{}", describe(&out));
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
}

#[test]
fn port_forwarding_is_refused_by_default() {
    if !have_ssh() {
        return;
    }
    let dir = setup("forward");
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let out = with_server(
        move || server(&auth, HostKey::generate(), quick()),
        move |port| {
            ssh_key(&d, port, &d.join("id"))
                .args(["-W", &format!("127.0.0.1:{port}"), "alice@127.0.0.1"])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        },
    );
    assert_eq!(out.status.code(), Some(255), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("forwarding failed"),
        "the refusal names itself: {}",
        describe(&out)
    );
}

#[test]
fn the_host_key_is_made_once_and_then_reused() {
    let dir = TempDir::new("hostkey");
    let path = dir.join("ssh_host_ed25519_key");
    let made = HostKey::load_or_generate(&path).unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let loaded = HostKey::load_or_generate(&path).unwrap();
    assert_eq!(made.fingerprint(), loaded.fingerprint());
    assert!(made.fingerprint().starts_with("SHA256:"));
    assert!(HostKey::load(dir.join("absent")).is_err());
    std::fs::write(dir.join("garbage"), "not a key").unwrap();
    let err = HostKey::load(dir.join("garbage")).unwrap_err();
    assert!(err.to_string().contains("garbage"), "{err}");
}

#[test]
fn openssh_reads_a_made_host_key_and_its_fingerprint_matches() {
    if !have_ssh() {
        return;
    }
    let dir = TempDir::new("fingerprint");
    let path = dir.join("host");
    let key = HostKey::load_or_generate(&path).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains(&key.fingerprint()),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_key_restricted_by_options_is_refused_not_given_a_full_session() {
    if !have_ssh() {
        return;
    }
    let dir = TempDir::new("restricted");
    let public = keygen(&dir.join("id"));
    std::fs::write(
        dir.join("authorized_keys"),
        format!("command=\"echo forced\",no-pty {public}"),
    )
    .unwrap();
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let out = with_server(
        move || server(&auth, HostKey::generate(), quick()),
        move |port| {
            ssh_key(&d, port, &d.join("id"))
                .arg("alice@127.0.0.1")
                .arg("echo in")
                .output()
                .unwrap()
        },
    );
    assert_eq!(out.status.code(), Some(255), "{}", describe(&out));
    assert_eq!(text(&out.stdout), "");
}

/// A server whose exec channels run `hold` ([`Hold`]) and `flood` ([`Flood`]), with a
/// small per-channel hold limit.
fn flow_server(authorized: &std::path::Path) -> SshServer {
    let portal = Portal::new(SshRealm);
    portal.register_checker::<SshPublicKey, _>(AuthorizedKeysChecker::file(authorized, &[]));
    let options = SshOptions {
        max_held_per_channel: HELD_LIMIT,
        ..quick()
    };
    SshServer::with_options(
        portal,
        vec![HostKey::generate()],
        |req: &SessionRequest| match &req.kind {
            SessionKind::Exec(c) if c == b"hold" => {
                Some(Box::new(Hold::default()) as Box<dyn Protocol>)
            }
            SessionKind::Exec(c) if c == b"flood" => {
                Some(Box::new(Flood(Rc::new(FloodState::default()))) as Box<dyn Protocol>)
            }
            _ => None,
        },
        options,
    )
}

const HELD_LIMIT: usize = 64 * 1024;

/// FNV-1a, to compare what arrived with what was sent.
fn fnv(hash: u64, data: &[u8]) -> u64 {
    data.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Pauses its channel as soon as it opens and resumes a second later; counts what arrives,
/// and how much came in the burst right at the resume (what the server held for it).
#[derive(Default)]
struct Hold {
    total: Rc<Cell<usize>>,
    hash: Rc<Cell<u64>>,
    burst: Rc<Cell<usize>>,
    in_burst: Rc<Cell<bool>>,
}

impl Protocol for Hold {
    fn connection_made(&mut self, t: &Transport) {
        self.hash.set(FNV_START);
        t.pause_producing();
        let (t, in_burst) = (t.clone(), self.in_burst.clone());
        torsion::reactor().call_later(1.0, move || {
            in_burst.set(true);
            t.resume_producing();
            // Runs after the held data was handed over (calls at one time run in order).
            torsion::reactor().call_later(0.0, move || in_burst.set(false));
        });
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.total.set(self.total.get() + data.len());
        self.hash.set(fnv(self.hash.get(), data));
        if self.in_burst.get() {
            self.burst.set(self.burst.get() + data.len());
        }
    }

    fn read_connection_lost(&mut self, t: &Transport) {
        t.write(
            format!(
                "{} {} {}\n",
                self.total.get(),
                self.hash.get(),
                self.burst.get()
            )
            .as_bytes(),
        );
        t.lose_connection();
    }
}

#[test]
fn a_paused_channel_holds_a_bounded_amount_and_gets_everything_after_resume() {
    if !have_ssh() {
        return;
    }
    let dir = setup("hold");
    let data: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    std::fs::write(dir.join("input"), &data).unwrap();
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let out = with_server(
        move || flow_server(&auth),
        move |port| {
            ssh_key(&d, port, &d.join("id"))
                .args(["bob@127.0.0.1", "hold"])
                .stdin(std::fs::File::open(d.join("input")).unwrap())
                .output()
                .unwrap()
        },
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = text(&out.stdout);
    let fields: Vec<u64> = stdout
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(fields.len(), 3, "{}", describe(&out));
    assert_eq!(fields[0], data.len() as u64, "everything arrived");
    assert_eq!(fields[1], fnv(FNV_START, &data), "in order, intact");
    let burst = fields[2] as usize;
    // The hold filled to its limit (the client kept sending), and no further: past it the
    // connection stopped reading. One SSH packet (32 KiB at most) may cross the line.
    assert!(burst >= HELD_LIMIT, "held {burst}");
    assert!(burst <= HELD_LIMIT + 32 * 1024, "held {burst}");
}

/// Writes 16 MiB as a streaming producer registered on its channel, pausing when told;
/// then a line with how often it was paused, the most it saw buffered, and the high
/// watermark.
struct Flood(Rc<FloodState>);

#[derive(Default)]
struct FloodState {
    t: RefCell<Option<Transport>>,
    written: Cell<usize>,
    paused: Cell<bool>,
    pauses: Cell<usize>,
    max_buffered: Cell<usize>,
}

const FLOOD: usize = 16 * 1024 * 1024;

impl FloodState {
    fn pump(&self) {
        let Some(t) = self.t.borrow().clone() else {
            return;
        };
        let chunk = [b'x'; 32 * 1024];
        while !self.paused.get() && self.written.get() < FLOOD {
            t.write(&chunk);
            self.written.set(self.written.get() + chunk.len());
            self.max_buffered
                .set(self.max_buffered.get().max(t.buffered_size()));
        }
        if self.written.get() >= FLOOD {
            self.written.set(usize::MAX);
            t.unregister_producer();
            t.write(
                format!(
                    "\n{} {} {}\n",
                    self.pauses.get(),
                    self.max_buffered.get(),
                    t.write_buffer_limits().0
                )
                .as_bytes(),
            );
            t.lose_connection();
            self.t.borrow_mut().take();
        }
    }
}

impl torsion::producer::Producer for FloodState {
    fn pause_producing(&self) {
        self.paused.set(true);
        self.pauses.set(self.pauses.get() + 1);
    }

    fn resume_producing(&self) {
        self.paused.set(false);
        self.pump();
    }

    fn stop_producing(&self) {
        self.written.set(usize::MAX);
        self.t.borrow_mut().take();
    }
}

impl Protocol for Flood {
    fn connection_made(&mut self, t: &Transport) {
        *self.0.t.borrow_mut() = Some(t.clone());
        t.register_producer(self.0.clone(), true).unwrap();
        self.0.pump();
    }

    fn data_received(&mut self, _t: &Transport, _data: &[u8]) {}

    // The client's stdin is empty: its EOF does not end the flood.
    fn read_connection_lost(&mut self, _t: &Transport) {}
}

#[test]
fn a_slow_ssh_reader_pauses_a_producer_writing_to_its_channel() {
    if !have_ssh() {
        return;
    }
    let dir = setup("flood");
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let out = with_server(
        move || flow_server(&auth),
        move |port| {
            let child = ssh_key(&d, port, &d.join("id"))
                .args(["bob@127.0.0.1", "flood"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // A slow reader: nothing is read for a second, then everything.
            std::thread::sleep(std::time::Duration::from_secs(1));
            child.wait_with_output().unwrap()
        },
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(out.stdout.len() > FLOOD, "{} bytes", out.stdout.len());
    assert!(out.stdout[..FLOOD].iter().all(|b| *b == b'x'));
    let tail = text(&out.stdout[FLOOD..]);
    let fields: Vec<usize> = tail
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(fields.len(), 3, "{tail:?}");
    let (pauses, max_buffered, high) = (fields[0], fields[1], fields[2]);
    assert!(pauses >= 1, "the producer was never paused");
    // Paused as soon as a write took the count over the high watermark.
    assert!(max_buffered <= high + 32 * 1024, "{max_buffered} buffered");
}

/// Sends back what it gets (a Torsion TCP echo server to forward to).
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &Transport, data: &[u8]) {
        t.write(data);
    }
}

/// The test server with direct-tcpip allowed to `allowed`, and a Torsion echo server on
/// `echo` (a bound socket) on the same reactor.
fn forwarding_server(
    authorized: &std::path::Path,
    echo: std::net::TcpListener,
    allowed: &str,
) -> SshServer {
    torsion::reactor()
        .adopt_stream_port(echo, torsion::protocol::factory(|| Echo))
        .unwrap();
    server(authorized, HostKey::generate(), quick())
        .allow_direct_tcpip(torsion_conch::ssh::ForwardPolicy::parse(&[allowed]).unwrap())
}

#[test]
fn ssh_dash_l_forwards_to_an_allowed_destination_and_no_other() {
    if !have_ssh() {
        return;
    }
    let dir = setup("forward-on");
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let allowed = format!("127.0.0.1:{echo_port}");
    let (answer, refused) = with_server(
        move || forwarding_server(&auth, echo, &allowed),
        move |port| {
            use std::io::{Read, Write};
            // A free local port for -L (bound and released: ssh binds it next).
            let local = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let lport = local.local_addr().unwrap().port();
            drop(local);
            let mut child = ssh_key(&d, port, &d.join("id"))
                .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
                .arg(format!("{lport}:127.0.0.1:{echo_port}"))
                .arg("bob@127.0.0.1")
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            // ssh listens once logged in: poll for it with a deadline.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let mut conn = loop {
                match std::net::TcpStream::connect(("127.0.0.1", lport)) {
                    Ok(c) => break c,
                    Err(e) if std::time::Instant::now() > deadline => panic!("ssh -L: {e}"),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
                }
            };
            let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 256) as u8).collect();
            let mut writer = conn.try_clone().unwrap();
            let sent = payload.clone();
            let w = std::thread::spawn(move || {
                writer.write_all(&sent).unwrap();
                writer.shutdown(std::net::Shutdown::Write).unwrap();
            });
            let mut answer = Vec::new();
            conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            let _ = conn.read_to_end(&mut answer);
            w.join().unwrap();
            let _ = child.kill();
            let _ = child.wait();
            // A destination not on the list: refused.
            let refused = ssh_key(&d, port, &d.join("id"))
                .args(["-W", &format!("127.0.0.1:{port}"), "bob@127.0.0.1"])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            (answer == payload, refused)
        },
    );
    assert!(
        answer,
        "the echo came back whole through the forwarded channel"
    );
    assert_eq!(refused.status.code(), Some(255), "{}", describe(&refused));
    assert!(
        text(&refused.stderr).contains("forwarding failed")
            || text(&refused.stderr).contains("prohibited"),
        "{}",
        describe(&refused)
    );
}

#[test]
fn a_permitted_destination_that_refuses_fails_the_channel_with_connect_failed() {
    if !have_ssh() {
        return;
    }
    let dir = setup("forward-refused");
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // A port nothing listens on (bound, then released).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let (first, second) = with_server(
        move || forwarding_server(&auth, echo, "127.0.0.1:*"),
        move |port| {
            let run = || {
                ssh_key(&d, port, &d.join("id"))
                    .args([
                        "-v",
                        "-W",
                        &format!("127.0.0.1:{closed_port}"),
                        "bob@127.0.0.1",
                    ])
                    .stdin(Stdio::null())
                    .output()
                    .unwrap()
            };
            (run(), run())
        },
    );
    for out in [first, second] {
        assert_eq!(out.status.code(), Some(255), "{}", describe(&out));
        assert!(
            text(&out.stderr).contains("connect failed"),
            "{}",
            describe(&out)
        );
    }
}
