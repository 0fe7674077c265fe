//! paramiko (PyPI, in a venv made on first use) as a second SSH client, nobody here wrote,
//! against Torsion's server: password and key logins, exec with output and exit status,
//! standard input with EOF, a refused password, and a known_hosts line written by Torsion's
//! `known_hosts_line` that paramiko trusts (with `RejectPolicy`, so an unknown key fails).

use std::path::Path;
use std::process::Command;

use torsion_conch::known_hosts::known_hosts_line;
use torsion_conch::ssh::HostKey;

use crate::support::{self, describe, have_ssh, keygen, text, TempDir};

const SCRIPT: &str = r#"
import sys, paramiko
port, known, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def connect(**kw):
    c = paramiko.SSHClient()
    c.load_host_keys(known)
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    c.connect("127.0.0.1", port=port, allow_agent=False, look_for_keys=False,
              timeout=20, banner_timeout=20, auth_timeout=20, **kw)
    return c

def run(c, cmd, data=None):
    stdin, stdout, stderr = c.exec_command(cmd, timeout=20)
    if data is not None:
        stdin.write(data)
        stdin.channel.shutdown_write()
    out = stdout.read().decode()
    return out, stdout.channel.recv_exit_status()

c = connect(username="alice", password="secret")
print("password", run(c, "whoami"))
print("status", run(c, "exit 5"))
print("unknown", run(c, "nosuch"))
c.close()

c = connect(username="bob", pkey=paramiko.Ed25519Key.from_private_key_file(key))
print("key", run(c, "whoami"))
print("lines", run(c, "lines", "abc\r\nhello\r\n"))
c.close()

try:
    connect(username="alice", password="wrong")
    print("wrong password accepted")
except paramiko.AuthenticationException:
    print("refused")
print("done")
"#;

#[test]
fn paramiko_logs_in_with_a_password_and_a_key_and_runs_commands() {
    if !have_ssh() {
        return;
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("paramiko-venv");
    let Some(python) = torsion::testing::python_venv(&venv, "paramiko", &["paramiko>=3"]) else {
        return;
    };
    let dir = TempDir::new("paramiko");
    let key_line = keygen(&dir.join("id"));
    std::fs::write(dir.join("authorized_keys"), key_line).unwrap();
    let host_key = HostKey::generate();
    let host_line = host_key.public_openssh();
    let known = dir.join("known_hosts");
    let (authorized, key, known2) = (dir.join("authorized_keys"), dir.join("id"), known.clone());
    let out = support::with_server(
        move || support::server(&authorized, host_key, support::quick()),
        move |port| {
            let public = russh::keys::PublicKey::from_openssh(&host_line).unwrap();
            std::fs::write(&known2, known_hosts_line("127.0.0.1", port, &public) + "\n").unwrap();
            Command::new(python)
                .arg("-c")
                .arg(SCRIPT)
                .arg(port.to_string())
                .arg(&known2)
                .arg(&key)
                .output()
                .unwrap()
        },
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    let want = "password ('alice\\n', 0)\n\
                status ('', 5)\n\
                unknown ('nosuch: command not found\\n', 127)\n\
                key ('bob\\n', 0)\n\
                lines ('cba\\r\\nolleh\\r\\n', 0)\n\
                refused\n\
                done\n";
    assert_eq!(stdout, want, "{}", describe(&out));
}
