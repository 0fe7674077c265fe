//! The manhole over SSH, driven by OpenSSH's `ssh`: one command per `exec` (its value, its
//! exit status), an interactive shell with a pty (echo, Tab completion of an exposed name,
//! history), a shell without a pty (plain lines), and a key not in the file refused.

use std::cell::Cell;
use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use torsion_conch::manhole::{ssh_server, Registry};
use torsion_conch::ssh::HostKey;

use crate::support::{describe, have_ssh, keygen, quick, ssh_key, text, with_server, TempDir};

/// A registry with `hits` (read-write, 5) and `history_size` (a function), and a scratch
/// folder with a client key `id` listed in `authorized_keys` and a key `other` that is not.
fn setup(name: &str) -> (TempDir, Rc<Cell<i64>>, Registry) {
    let dir = TempDir::new(name);
    let public = keygen(&dir.join("id"));
    keygen(&dir.join("other"));
    std::fs::write(dir.join("authorized_keys"), public).unwrap();
    let hits = Rc::new(Cell::new(5_i64));
    let reg = Registry::new();
    let (h, h2) = (hits.clone(), hits.clone());
    reg.value_rw(
        "hits",
        move || h.get(),
        move |v: i64| {
            h2.set(v);
            Ok(())
        },
    );
    reg.function("history_size", || 200_i64);
    (dir, hits, reg)
}

#[test]
fn exec_runs_one_command_with_its_status() {
    if !have_ssh() {
        return;
    }
    let (dir, hits, reg) = setup("mh-exec");
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let outs = with_server(
        move || ssh_server(reg, &auth, vec![HostKey::generate()], quick()),
        move |port| {
            let run = |key: &str, cmd: &str| {
                ssh_key(&d, port, &d.join(key))
                    .arg("anyone@127.0.0.1")
                    .arg(cmd)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap()
            };
            (
                run("id", "hits"),
                run("id", "hits = hits * 10"),
                run("id", "[hits, \"x\"]"),
                run("id", "no_such_thing()"),
                run("id", "import os"),
                run("other", "hits"),
            )
        },
    );
    let (read, set, list, unknown, python, refused) = outs;
    assert_eq!(text(&read.stdout), "5\n", "{}", describe(&read));
    assert_eq!(read.status.code(), Some(0), "{}", describe(&read));
    assert_eq!(text(&set.stdout), "", "{}", describe(&set));
    assert_eq!(set.status.code(), Some(0), "{}", describe(&set));
    assert_eq!(hits.get(), 50);
    assert_eq!(text(&list.stdout), "[50, \"x\"]\n", "{}", describe(&list));
    assert_eq!(unknown.status.code(), Some(1), "{}", describe(&unknown));
    assert!(
        text(&unknown.stdout).contains("no_such_thing"),
        "{}",
        describe(&unknown)
    );
    assert_eq!(python.status.code(), Some(1), "{}", describe(&python));
    assert!(text(&python.stdout).contains("Rhai, not Python"));
    assert_eq!(refused.status.code(), Some(255), "{}", describe(&refused));
    assert!(
        text(&refused.stderr).contains("Permission denied"),
        "{}",
        describe(&refused)
    );
    assert_eq!(text(&refused.stdout), "");
}

/// `ssh`'s standard output, gathered by a thread, waited on with a deadline.
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Screen {
    fn watch(child: &mut Child) -> Screen {
        let mut out = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Screen(seen)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits (at most 20 s) until the output, from byte `from` on, contains `needle`;
    /// returns the length of the output then.
    fn wait_for(&self, from: usize, needle: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let all = self.text();
            if all.get(from..).is_some_and(|s| s.contains(needle)) {
                return all.len();
            }
            assert!(Instant::now() < deadline, "no {needle:?} in {all:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_shell_with_a_pty_edits_completes_and_remembers() {
    if !have_ssh() {
        return;
    }
    let (dir, hits, reg) = setup("mh-shell");
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let (status, screen) = with_server(
        move || ssh_server(reg, &auth, vec![HostKey::generate()], quick()),
        move |port| {
            let mut child = ssh_key(&d, port, &d.join("id"))
                .args(["-tt", "me@127.0.0.1"])
                .env("TERM", "xterm")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let screen = Screen::watch(&mut child);
            let mut input = child.stdin.take().unwrap();
            let mut at = screen.wait_for(0, ">>> ");
            // Tab completes the exposed name; the console echoes as it edits.
            input.write_all(b"hit\t").unwrap();
            at = screen.wait_for(at, "hits");
            input.write_all(b" + 1\r").unwrap();
            at = screen.wait_for(at, "6\r\n>>> ");
            // Two candidates: Tab completes their common part, then lists them.
            input.write_all(b"h\t\t").unwrap();
            at = screen.wait_for(at, "history_size  hits");
            input.write_all(b"\x15hits = 7\r").unwrap();
            at = screen.wait_for(at, ">>> ");
            // Up brings back the last line; Ctrl-U empties it again.
            input.write_all(b"\x1b[A").unwrap();
            at = screen.wait_for(at, "hits = 7");
            // Ctrl-D on an empty line ends the session, status 0.
            input.write_all(b"\x15\x04").unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                assert!(
                    Instant::now() < deadline,
                    "ssh did not end: {}",
                    screen.text()
                );
                std::thread::sleep(Duration::from_millis(10));
            };
            let _ = at;
            (status, screen.text())
        },
    );
    assert_eq!(status.code(), Some(0), "{screen:?}");
    assert_eq!(hits.get(), 7, "{screen:?}");
    assert!(screen.contains("Torsion manhole"), "{screen:?}");
}

#[test]
fn a_shell_without_a_pty_reads_plain_lines() {
    if !have_ssh() {
        return;
    }
    let (dir, hits, reg) = setup("mh-plain");
    let (d, auth) = (dir.path().to_owned(), dir.join("authorized_keys"));
    let out = with_server(
        move || ssh_server(reg, &auth, vec![HostKey::generate()], quick()),
        move |port| {
            let mut child = ssh_key(&d, port, &d.join("id"))
                .args(["-T", "me@127.0.0.1"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = child.stdin.take().unwrap();
            input.write_all(b"hits += 2\nhits\n").unwrap();
            drop(input);
            child.wait_with_output().unwrap()
        },
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(hits.get(), 7);
    let stdout = text(&out.stdout);
    // No echo, no redraw: the prompt, and the value of the second line.
    assert!(stdout.contains(">>> >>> 7\r\n>>> "), "{}", describe(&out));
    assert!(!stdout.contains('\x1b'), "{}", describe(&out));
}
