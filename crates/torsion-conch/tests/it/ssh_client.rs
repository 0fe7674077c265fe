//! The Torsion SSH client against a throwaway OpenSSH `sshd` (its own config, host key and
//! authorized_keys in a scratch folder, on a free port) and against Torsion's own server:
//! key and password logins, commands with their output and exit status, protocols bound to
//! a command and to a shell, known_hosts refusals (changed key, unknown host) and AcceptNew,
//! time-outs on a test clock, and the output cap.

use std::cell::RefCell;
use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion::defer::Deferred;
use torsion::testing::{skip, Clock, Missing};
use torsion::{ConnectionEnd, Failure, Protocol, Reactor, Transport};
use torsion_conch::client::{
    connect_ssh, exit_status_of, ClientConfig, ClientKey, CommandOutput, Phase, PtyRequest,
    SshClientError, SshConnection,
};
use torsion_conch::keys::{AuthorizedKeysChecker, SshPublicKey};
use torsion_conch::known_hosts::{
    known_hosts_line, HostKeyAccepted, HostKeyError, KnownHosts, UnknownHostPolicy,
};
use torsion_conch::ssh::{HostKey, SshRealm, SshServer};
use torsion_cred::{AvatarId, CredentialsChecker, Portal, UsernamePassword};

use crate::support::{self, keygen, TempDir};

// ---------------------------------------------------------------------------------------
// Running async test code on a fresh reactor.

/// Runs `fut` on `r` until it ends (60 s at most); its output, or the test fails.
fn block_on<T: 'static>(r: &Reactor, fut: impl Future<Output = T> + 'static) -> T {
    let out: Rc<RefCell<Option<Result<T, Failure>>>> = Rc::new(RefCell::new(None));
    let o = out.clone();
    let stopper = r.clone();
    let spawner = r.clone();
    r.call_when_running(move || {
        drop(spawner.spawn(fut).add_both(move |res| {
            *o.borrow_mut() = Some(res);
            drop(stopper.stop());
            Ok(())
        }));
    });
    let guard = {
        let r2 = r.clone();
        r.call_later(60.0, move || drop(r2.stop()))
    };
    r.run().unwrap();
    if guard.active() {
        let _ = guard.cancel();
    }
    let taken = out.borrow_mut().take();
    taken
        .expect("the test's future did not end within 60 s")
        .unwrap()
}

/// The client error inside a failure, or the test fails.
fn client_error(f: &Failure) -> &SshClientError {
    f.downcast_ref::<SshClientError>()
        .unwrap_or_else(|| panic!("not an SshClientError: {f}"))
}

// ---------------------------------------------------------------------------------------
// A throwaway OpenSSH sshd.

struct Sshd {
    child: Child,
    port: u16,
    dir: TempDir,
    host_key_pub: String,
    user: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SSHD: &str = "/usr/sbin/sshd";

impl Sshd {
    /// Starts `sshd -D -e -f cfg` on a free port of 127.0.0.1, letting in the key made at
    /// `self.key()`. None (after reporting the skip) when sshd cannot run here.
    fn start(name: &str) -> Option<Sshd> {
        if !Path::new(SSHD).exists() || !support::have_ssh() {
            skip(
                Missing::Peer,
                "OpenSSH's sshd (Debian's openssh-server) is needed at /usr/sbin/sshd",
            );
            return None;
        }
        // sshd refuses to start without its privilege separation folder.
        if std::fs::create_dir_all("/run/sshd").is_err() {
            skip(
                Missing::HostFeature,
                "cannot make /run/sshd, which sshd needs (not root?)",
            );
            return None;
        }
        let dir = TempDir::new(name);
        let host_key = dir.join("ssh_host_ed25519_key");
        let host_key_pub = keygen(&host_key);
        let client_pub = keygen(&dir.join("id"));
        std::fs::write(dir.join("authorized_keys"), client_pub).unwrap();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let cfg = dir.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nUsePAM no\n\
                 StrictModes no\nPermitRootLogin yes\nAuthorizedKeysFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nMaxStartups 50\n",
                host_key.display(),
                dir.join("authorized_keys").display()
            ),
        )
        .unwrap();
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "sshd exited ({status}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(Instant::now() < deadline, "sshd did not listen within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned();
        Some(Sshd {
            child,
            port,
            dir,
            host_key_pub,
            user,
        })
    }

    /// The client's private key file, listed in sshd's authorized_keys.
    fn key(&self) -> PathBuf {
        self.dir.join("id")
    }

    /// A known_hosts file listing sshd's host key.
    fn known_hosts(&self) -> PathBuf {
        let path = self.dir.join("known_hosts");
        let key = russh::keys::PublicKey::from_openssh(&self.host_key_pub).unwrap();
        std::fs::write(
            &path,
            format!("{}\n", known_hosts_line("127.0.0.1", self.port, &key)),
        )
        .unwrap();
        path
    }

    /// Logging in with the key, trusting the host key.
    fn config(&self) -> ClientConfig {
        ClientConfig::new(self.user.clone())
            .key_file(self.key())
            .known_hosts(self.known_hosts())
    }

    fn connect(&self, config: ClientConfig) -> Deferred<SshConnection> {
        connect_ssh(&torsion::reactor(), "127.0.0.1", self.port, config)
    }
}

// ---------------------------------------------------------------------------------------
// A protocol that records what it gets.

#[derive(Default)]
struct Record {
    data: Vec<u8>,
    eof: bool,
    end: Option<(Option<u32>, String)>,
}

/// Writes `send` once connected, then EOF if `eof`; records everything.
struct Recorder {
    send: Vec<u8>,
    eof: bool,
    log: Rc<RefCell<Record>>,
}

impl Protocol for Recorder {
    fn connection_made(&mut self, t: &Transport) {
        t.write(&self.send);
        if self.eof {
            t.lose_write_connection();
        }
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.log.borrow_mut().data.extend_from_slice(data);
    }

    fn read_connection_lost(&mut self, _t: &Transport) {
        self.log.borrow_mut().eof = true;
    }

    fn connection_lost(&mut self, reason: ConnectionEnd) {
        self.log.borrow_mut().end = Some((exit_status_of(&reason), reason.to_string()));
    }
}

fn recorder(send: &[u8], eof: bool) -> (Rc<RefCell<Record>>, impl FnOnce() -> Recorder) {
    let log = Rc::new(RefCell::new(Record::default()));
    let l = log.clone();
    let send = send.to_vec();
    (log, move || Recorder { send, eof, log: l })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---------------------------------------------------------------------------------------
// Against OpenSSH's sshd.

#[test]
fn openssh_key_login_runs_commands_with_their_output_and_status() {
    let Some(sshd) = Sshd::start("client-exec") else {
        return;
    };
    let r = support::reactor();
    let config = sshd.config();
    let d = sshd.connect(config);
    let (conn, out, quiet) = block_on(&r, async move {
        let conn = d.await?;
        let out = conn
            .execute("echo hello; echo oops >&2; whoami; exit 3")
            .await?;
        let quiet = conn.execute("true").await?;
        conn.close().await?;
        Ok::<_, Failure>((conn, out, quiet))
    })
    .unwrap();
    assert_eq!(text(&out.stdout), format!("hello\n{}\n", sshd.user));
    assert_eq!(text(&out.stderr), "oops\n");
    assert_eq!(out.exit_status, Some(3));
    assert_eq!(
        quiet,
        CommandOutput {
            exit_status: Some(0),
            ..CommandOutput::default()
        }
    );
    assert_eq!(conn.host_key(), &HostKeyAccepted::Known { line: 1 });
    assert!(conn.host_key_fingerprint().starts_with("SHA256:"));
}

#[test]
fn openssh_command_and_shell_bound_to_protocols() {
    let Some(sshd) = Sshd::start("client-bound") else {
        return;
    };
    let r = support::reactor();
    let d = sshd.connect(sshd.config());
    let (cat_log, cat) = recorder(b"line one\nline two\n", true);
    let (sh_log, sh) = recorder(b"echo from the shell; exit 7\n", false);
    let (tty_log, tty) = recorder(
        b"tty; echo cols=$(tput cols 2>/dev/null || stty size); exit\n",
        false,
    );
    let (cat_exit, sh_exit, tty_exit) = block_on(&r, async move {
        let conn = d.await?;
        // A command bound to a protocol: cat sends back what it wrote, until its EOF.
        let cat = conn.exec("cat", cat).await?;
        let cat_exit = cat.closed().await?;
        // A shell without a terminal: commands on its standard input.
        let shell = conn.open_shell(sh, None).await?;
        let sh_exit = shell.closed().await?;
        // A shell on a terminal.
        let pty = PtyRequest {
            term: "xterm".into(),
            cols: 100,
            rows: 30,
        };
        let tty_shell = conn.open_shell(tty, Some(pty)).await?;
        let tty_exit = tty_shell.closed().await?;
        conn.close().await?;
        Ok::<_, Failure>((cat_exit, sh_exit, tty_exit))
    })
    .unwrap();
    let cat_log = cat_log.borrow();
    assert_eq!(text(&cat_log.data), "line one\nline two\n");
    assert!(cat_log.eof);
    assert_eq!(cat_log.end.as_ref().unwrap().0, Some(0));
    assert_eq!(cat_exit.status, Some(0));

    let sh_log = sh_log.borrow();
    assert_eq!(text(&sh_log.data), "from the shell\n");
    assert_eq!(sh_exit.status, Some(7));
    let (status, reason) = sh_log.end.clone().unwrap();
    assert_eq!(status, Some(7), "{reason}");
    assert!(reason.contains("status 7"), "{reason}");

    let tty_log = tty_log.borrow();
    let got = text(&tty_log.data);
    assert!(got.contains("/dev/pts/"), "{got:?}");
    assert!(got.contains("100"), "{got:?}");
    assert_eq!(tty_exit.status, Some(0));
}

#[test]
fn openssh_unknown_host_is_refused_by_default_and_accept_new_appends_it() {
    let Some(sshd) = Sshd::start("client-unknown") else {
        return;
    };
    let r = support::reactor();
    let file = sshd.dir.join("empty_known_hosts");
    let refuse = sshd.config().known_hosts(&file);
    let accept = refuse.clone().unknown_host(UnknownHostPolicy::AcceptNew);
    let again = refuse.clone();
    let port = sshd.port;
    let (refused, accepted, reused) = block_on(&r, async move {
        let reactor = torsion::reactor();
        let refused = connect_ssh(&reactor, "127.0.0.1", port, refuse).await;
        let accepted = connect_ssh(&reactor, "127.0.0.1", port, accept).await?;
        let out = accepted.execute("echo in").await?;
        accepted.close().await?;
        let reused = connect_ssh(&reactor, "127.0.0.1", port, again).await?;
        reused.close().await?;
        Ok::<_, Failure>((refused, (accepted, out), reused))
    })
    .unwrap();
    let f = refused.unwrap_err();
    match client_error(&f) {
        SshClientError::HostKey(HostKeyError::Unknown { host, .. }) => {
            assert_eq!(host, &format!("[127.0.0.1]:{port}"))
        }
        other => panic!("{other}"),
    }
    assert_eq!(accepted.0.host_key(), &HostKeyAccepted::Added);
    assert_eq!(text(&accepted.1.stdout), "in\n");
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().count(), 1, "{written}");
    assert!(written.starts_with(&format!("[127.0.0.1]:{port} ssh-ed25519 ")));
    assert!(sshd
        .host_key_pub
        .contains(written.trim_end().split(' ').nth(2).unwrap()));
    assert_eq!(reused.host_key(), &HostKeyAccepted::Known { line: 1 });
}

#[test]
fn openssh_changed_host_key_is_refused_naming_the_line() {
    let Some(sshd) = Sshd::start("client-changed") else {
        return;
    };
    let r = support::reactor();
    let file = sshd.dir.join("changed_known_hosts");
    let other = ClientKey::generate_ed25519().public_key();
    std::fs::write(
        &file,
        format!(
            "# first line\nelsewhere.test {}\n{}\n",
            other.to_openssh().unwrap(),
            known_hosts_line("127.0.0.1", sshd.port, &other)
        ),
    )
    .unwrap();
    let before = std::fs::read_to_string(&file).unwrap();
    // Even AcceptNew refuses a changed key.
    let config = sshd
        .config()
        .known_hosts(&file)
        .unknown_host(UnknownHostPolicy::AcceptNew);
    let d = sshd.connect(config);
    let got = block_on(&r, d);
    let f = got.unwrap_err();
    let e = client_error(&f);
    assert!(
        matches!(
            e,
            SshClientError::HostKey(HostKeyError::Changed { line: 3, .. })
        ),
        "{e}"
    );
    let message = e.to_string();
    assert!(
        message.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}:3", file.display())),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}

#[test]
fn openssh_refuses_a_key_it_does_not_list_and_caps_output() {
    let Some(sshd) = Sshd::start("client-refused") else {
        return;
    };
    let r = support::reactor();
    let mut stranger = sshd.config();
    stranger.auth = vec![];
    let stranger = stranger.key(ClientKey::generate_ed25519());
    let mut capped = sshd.config();
    capped.max_output = 10_000;
    let port = sshd.port;
    let (refused, too_much, after) = block_on(&r, async move {
        let reactor = torsion::reactor();
        let refused = connect_ssh(&reactor, "127.0.0.1", port, stranger).await;
        let conn = connect_ssh(&reactor, "127.0.0.1", port, capped).await?;
        let too_much = conn.execute("head -c 1000000 /dev/zero").await;
        // The connection goes on after a capped command.
        let after = conn.execute("echo still here").await?;
        conn.close().await?;
        Ok::<_, Failure>((refused, too_much, after))
    })
    .unwrap();
    let f = refused.unwrap_err();
    match client_error(&f) {
        SshClientError::AuthRefused {
            tried,
            server_methods,
            ..
        } => {
            assert_eq!(tried, &["publickey"]);
            assert!(server_methods.iter().any(|m| m == "publickey"));
        }
        other => panic!("{other}"),
    }
    let f = too_much.unwrap_err();
    assert!(matches!(
        client_error(&f),
        SshClientError::OutputTooLarge { limit: 10_000 }
    ));
    assert_eq!(text(&after.stdout), "still here\n");
}

#[test]
fn openssh_ecdsa_keys_with_and_without_a_passphrase() {
    let Some(sshd) = Sshd::start("client-ecdsa") else {
        return;
    };
    let mut authorized = std::fs::read_to_string(sshd.dir.join("authorized_keys")).unwrap();
    for (name, bits, pass) in [("p256", "256", "correct horse"), ("p384", "384", "")] {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ecdsa", "-b", bits, "-N", pass, "-f"])
            .arg(sshd.dir.join(name))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        authorized += &std::fs::read_to_string(sshd.dir.join(format!("{name}.pub"))).unwrap();
    }
    // One P-256 key in 256 has a secret OpenSSH writes in 31 bytes, which ssh-key alone
    // refuses; this one (made for this test) is such a key, so the case is always tested.
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
    authorized += &std::fs::read_to_string(keys.join("p256_short_scalar.pub")).unwrap();
    std::fs::write(sshd.dir.join("authorized_keys"), authorized).unwrap();
    let short = |file: &str| {
        let mut c = sshd.config();
        c.auth.clear();
        c.key_file_with_passphrase(keys.join(file), "correct horse")
    };
    let short_ctr = short("p256_short_scalar_aes256_ctr");
    let short_gcm = short("p256_short_scalar_aes256_gcm");
    let base = || {
        let mut c = sshd.config();
        c.auth.clear();
        c
    };
    let protected = base().key_file_with_passphrase(sshd.dir.join("p256"), "correct horse");
    let wrong_pass = base().key_file_with_passphrase(sshd.dir.join("p256"), "wrong");
    let plain = base().key_file(sshd.dir.join("p384"));
    let port = sshd.port;
    let r = support::reactor();
    let (a, b, wrong, shorts) = block_on(&r, async move {
        let reactor = torsion::reactor();
        let a = connect_ssh(&reactor, "127.0.0.1", port, protected).await?;
        let a_out = a.execute("echo p256").await?;
        a.close().await?;
        let b = connect_ssh(&reactor, "127.0.0.1", port, plain).await?;
        let b_out = b.execute("echo p384").await?;
        b.close().await?;
        let wrong = connect_ssh(&reactor, "127.0.0.1", port, wrong_pass).await;
        let mut shorts = Vec::new();
        for config in [short_ctr, short_gcm] {
            let c = connect_ssh(&reactor, "127.0.0.1", port, config).await?;
            shorts.push(c.execute("echo short").await?);
            c.close().await?;
        }
        Ok::<_, Failure>((a_out, b_out, wrong, shorts))
    })
    .unwrap();
    assert_eq!(text(&a.stdout), "p256\n");
    assert_eq!(text(&b.stdout), "p384\n");
    for out in &shorts {
        assert_eq!(text(&out.stdout), "short\n");
    }
    let f = wrong.unwrap_err();
    assert!(
        matches!(client_error(&f), SshClientError::Key { path: Some(p), .. } if p.ends_with("p256")),
        "{f}"
    );
}

// ---------------------------------------------------------------------------------------
// Against Torsion's own server.

/// Torsion's test server (support::server: alice/secret, keys from `authorized`) on a free
/// port of this reactor; its port and the known_hosts file trusting it.
fn torsion_server(dir: &TempDir, authorized: &str) -> (torsion_conch::ssh::SshPort, PathBuf) {
    std::fs::write(dir.join("authorized_keys"), authorized).unwrap();
    let host_key = HostKey::generate();
    let line = host_key.public_openssh();
    let server = support::server(&dir.join("authorized_keys"), host_key, support::quick());
    let port = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let known = dir.join("known_hosts");
    let key = russh::keys::PublicKey::from_openssh(&line).unwrap();
    std::fs::write(
        &known,
        known_hosts_line("127.0.0.1", port.local_addr().port(), &key) + "\n",
    )
    .unwrap();
    (port, known)
}

#[test]
fn torsion_server_password_and_in_memory_key_logins() {
    let dir = TempDir::new("client-torsion");
    let key = ClientKey::generate_ed25519();
    let r = support::reactor();
    let (port, known) = torsion_server(&dir, &key.public_openssh());
    let number = port.local_addr().port();
    let wrong = ClientConfig::new("alice")
        .password("nope")
        .known_hosts(&known);
    // Methods are tried in order: the wrong password, then the key.
    let both = ClientConfig::new("bob")
        .password("nope")
        .key(key)
        .known_hosts(&known);
    let password = ClientConfig::new("alice")
        .password("secret")
        .known_hosts(&known);
    let (refused, by_key, by_password) = block_on(&r, async move {
        let reactor = torsion::reactor();
        let refused = connect_ssh(&reactor, "127.0.0.1", number, wrong).await;
        let k = connect_ssh(&reactor, "127.0.0.1", number, both).await?;
        let by_key = (k.execute("whoami").await?, k.execute("exit 4").await?);
        k.close().await?;
        let p = connect_ssh(&reactor, "127.0.0.1", number, password).await?;
        let by_password = p.execute("whoami").await?;
        let nope = p.execute("nosuch").await?;
        p.close().await?;
        Ok::<_, Failure>((refused, by_key, (by_password, nope)))
    })
    .unwrap();
    let f = refused.unwrap_err();
    match client_error(&f) {
        SshClientError::AuthRefused { user, tried, .. } => {
            assert_eq!(user, "alice");
            assert_eq!(tried, &["password"]);
        }
        other => panic!("{other}"),
    }
    assert_eq!(text(&by_key.0.stdout), "bob\n");
    assert_eq!(by_key.1.exit_status, Some(4));
    assert_eq!(text(&by_password.0.stdout), "alice\n");
    assert_eq!(by_password.1.exit_status, Some(127));
    drop(port);
}

#[test]
fn torsion_server_line_protocol_bound_to_a_command() {
    let dir = TempDir::new("client-torsion-lines");
    let r = support::reactor();
    let (port, known) = torsion_server(&dir, "");
    let number = port.local_addr().port();
    let config = ClientConfig::new("alice")
        .password("secret")
        .known_hosts(&known);
    let (log, lines) = recorder(b"abc\r\nhello\r\n", true);
    let exit = block_on(&r, async move {
        let conn = connect_ssh(&torsion::reactor(), "127.0.0.1", number, config).await?;
        let channel = conn.exec("lines", lines).await?;
        let exit = channel.closed().await?;
        conn.close().await?;
        Ok::<_, Failure>(exit)
    })
    .unwrap();
    assert_eq!(text(&log.borrow().data), "cba\r\nolleh\r\n");
    assert_eq!(exit.status, Some(0));
    assert_eq!(log.borrow().end.as_ref().unwrap().0, Some(0));
    drop(port);
}

#[test]
fn a_server_that_never_speaks_times_out_on_the_clock() {
    // Accepted by the kernel's backlog, never answered.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let r = support::reactor();
    let clock = Clock::new();
    let config = ClientConfig::new("alice")
        .password("x")
        .unknown_host(UnknownHostPolicy::AcceptAny)
        .clock(Rc::new(clock.clone()));
    let got = block_on(&r, async move {
        let d = connect_ssh(&torsion::reactor(), "127.0.0.1", port, config);
        // Once the client has set its deadline, time passes.
        while clock.pending_call_times().is_empty() {
            let _ = torsion::task::defer_later(&torsion::reactor(), 0.01, || ()).await;
        }
        clock.advance(30.0);
        d.await
    });
    let f = got.unwrap_err();
    assert!(
        matches!(
            client_error(&f),
            SshClientError::Timeout {
                phase: Phase::Connect,
                ..
            }
        ),
        "{f}"
    );
    drop(silent);
}

/// Answers no password check, ever, but moves the test clock past the login time-out when
/// asked: the client gives up on its own clock.
struct NeverAnswers(Clock);

impl CredentialsChecker<UsernamePassword> for NeverAnswers {
    fn request_avatar_id(&self, _c: UsernamePassword) -> Deferred<AvatarId> {
        let clock = self.0.clone();
        torsion::reactor().call_later(0.0, move || clock.advance(30.0));
        Deferred::new()
    }
}

#[test]
fn a_login_that_never_ends_times_out_on_the_clock() {
    let r = support::reactor();
    let clock = Clock::new();
    let portal = Portal::new(SshRealm);
    portal.register_checker::<UsernamePassword, _>(NeverAnswers(clock.clone()));
    portal.register_checker::<SshPublicKey, _>(AuthorizedKeysChecker::file("/nonexistent", &[]));
    let server = SshServer::with_options(
        portal,
        vec![HostKey::generate()],
        support::session,
        support::quick(),
    );
    let port = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let number = port.local_addr().port();
    let config = ClientConfig::new("alice")
        .password("secret")
        .unknown_host(UnknownHostPolicy::AcceptAny)
        .clock(Rc::new(clock));
    let got = block_on(&r, async move {
        connect_ssh(&torsion::reactor(), "127.0.0.1", number, config).await
    });
    let f = got.unwrap_err();
    assert!(
        matches!(
            client_error(&f),
            SshClientError::Timeout {
                phase: Phase::Auth,
                ..
            }
        ),
        "{f}"
    );
    drop(port);
}

#[test]
fn a_refused_connection_is_a_connect_error() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let r = support::reactor();
    let config = ClientConfig::new("alice").password("x");
    let got = block_on(&r, async move {
        connect_ssh(&torsion::reactor(), "127.0.0.1", port, config).await
    });
    let f = got.unwrap_err();
    assert!(
        matches!(client_error(&f), SshClientError::Connect { addr, .. } if addr == &format!("127.0.0.1:{port}")),
        "{f}"
    );
}

#[test]
fn a_missing_key_file_is_named() {
    let dir = TempDir::new("client-missing-key");
    let r = support::reactor();
    // The key file is read when it is its turn, and named when missing.
    let (server_port, known) = torsion_server(&dir, "");
    let number = server_port.local_addr().port();
    let config = ClientConfig::new("alice")
        .key_file(dir.join("no_such_key"))
        .known_hosts(&known);
    let got = block_on(&r, async move {
        connect_ssh(&torsion::reactor(), "127.0.0.1", number, config).await
    });
    let f = got.unwrap_err();
    let e = client_error(&f);
    assert!(
        matches!(e, SshClientError::Key { path: Some(p), .. } if p.ends_with("no_such_key")),
        "{e}"
    );
    assert!(e.to_string().contains("no_such_key"), "{e}");
    // The known_hosts file is untouched and still parses.
    assert_eq!(KnownHosts::load(&known).unwrap().entries().len(), 1);
    drop(server_port);
}
