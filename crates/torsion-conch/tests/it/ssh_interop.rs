//! OpenSSH's `ssh` (Debian's openssh-client) against the Torsion SSH server.

use std::process::{Command, Stdio};

use crate::support::{
    describe, have_ssh, keygen, quick, server, ssh, ssh_key, text, with_server, Scratch,
};
use torsion_conch::ssh::HostKey;

/// A scratch folder with a host key file, a client key pair, and an authorized_keys file
/// holding the client's public key.
fn setup(name: &str) -> Scratch {
    let dir = Scratch::new(name);
    let public = keygen(&dir.file("id"));
    std::fs::write(dir.file("authorized_keys"), public).unwrap();
    dir
}

#[test]
fn key_login_runs_a_command_and_returns_its_status() {
    if !have_ssh() {
        return;
    }
    let dir = setup("exec");
    let (d, auth) = (dir.path().to_owned(), dir.file("authorized_keys"));
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
    let (d, auth) = (dir.path().to_owned(), dir.file("authorized_keys"));
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
    keygen(&dir.file("other"));
    let (d, auth) = (dir.path().to_owned(), dir.file("authorized_keys"));
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
    let (d, auth) = (dir.path().to_owned(), dir.file("authorized_keys"));
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
    let (d, auth) = (dir.path().to_owned(), dir.file("authorized_keys"));
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
    let (d, auth) = (dir.path().to_owned(), dir.file("authorized_keys"));
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
    let dir = Scratch::new("hostkey");
    let path = dir.file("ssh_host_ed25519_key");
    let made = HostKey::load_or_generate(&path).unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let loaded = HostKey::load_or_generate(&path).unwrap();
    assert_eq!(made.fingerprint(), loaded.fingerprint());
    assert!(made.fingerprint().starts_with("SHA256:"));
    assert!(HostKey::load(dir.file("absent")).is_err());
    std::fs::write(dir.file("garbage"), "not a key").unwrap();
    let err = HostKey::load(dir.file("garbage")).unwrap_err();
    assert!(err.to_string().contains("garbage"), "{err}");
}

#[test]
fn openssh_reads_a_made_host_key_and_its_fingerprint_matches() {
    if !have_ssh() {
        return;
    }
    let dir = Scratch::new("fingerprint");
    let path = dir.file("host");
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
    let dir = Scratch::new("restricted");
    let public = keygen(&dir.file("id"));
    std::fs::write(
        dir.file("authorized_keys"),
        format!("command=\"echo forced\",no-pty {public}"),
    )
    .unwrap();
    let (d, auth) = (dir.path().to_owned(), dir.file("authorized_keys"));
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
