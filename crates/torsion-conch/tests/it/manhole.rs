//! The manhole over telnet, driven by Python's `telnetlib` (which refuses to let the server
//! echo, so the console stays in plain-line mode): exposed values read and changed, a
//! runaway script interrupted while the reactor keeps serving, Python syntax answered with
//! a clear error.

use std::cell::Cell;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use torsion_conch::manhole::{ManholeFactory, Registry};

use crate::support::{reactor, run_until_exit, telnetlib_missing};

const CLIENT: &str = r#"
import sys, time, warnings
warnings.simplefilter("ignore")
import telnetlib
t = telnetlib.Telnet("127.0.0.1", int(sys.argv[1]), timeout=20)
t.read_until(b">>> ", 20)
def ask(cmd):
    t.write(cmd.encode() + b"\r\n")
    out = t.read_until(b">>> ", 20)
    assert out.endswith(b">>> "), out
    return out[:-4].decode().removesuffix("\r\n")
for cmd in sys.argv[2:]:
    # "poll:CMD" asks again (for at most 2 s) until the answer is true: a timer's turn on
    # the reactor comes when it comes, not at a time a test can name.
    if cmd.startswith("poll:"):
        for _ in range(100):
            out = ask(cmd[5:])
            if out == "true":
                break
            time.sleep(0.02)
    else:
        out = ask(cmd)
    print(repr(out))
"#;

#[test]
fn telnet_console_reads_changes_and_interrupts() {
    let r = reactor();
    let hits = Rc::new(Cell::new(5_i64));
    let ticks = Rc::new(Cell::new(0_u32));
    let reg = Registry::new();
    reg.set_time_limit(Duration::from_millis(300));
    {
        let (h, h2) = (hits.clone(), hits.clone());
        reg.value_rw(
            "hits",
            move || h.get(),
            move |v: i64| {
                h2.set(v);
                Ok(())
            },
        );
        let t = ticks.clone();
        reg.function("ticks", move || t.get() as i64);
    }
    // A timer counting while the console runs: it keeps ticking around a runaway script.
    fn tick(r: torsion::Reactor, t: Rc<Cell<u32>>) {
        t.set(t.get() + 1);
        let again = r.clone();
        r.call_later(0.01, move || tick(again, t));
    }
    tick(r.clone(), ticks.clone());
    let port = ManholeFactory::listen_telnet(&r, 0, "127.0.0.1", reg).unwrap();
    let port = port.get_host().port().unwrap().to_string();
    let child = match Command::new("python3")
        .args([
            "-c",
            CLIENT,
            &port,
            "hits",
            "hits = hits * 10",
            "let a = ticks(); loop {}",
            "poll:ticks() > a",
            "import os",
            "\"caf\\u00e9\"",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            torsion::testing::skip(torsion::testing::Missing::Peer, format!("python3: {e}"));
            return;
        }
    };
    let out = run_until_exit(&r, child);
    if telnetlib_missing(&out) {
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "'5'", "{stdout}");
    assert_eq!(lines[1], "''", "{stdout}");
    assert_eq!(hits.get(), 50);
    assert!(
        lines[2].starts_with("'interrupted: the command ran past its time limit"),
        "{stdout}"
    );
    // The `let` before the loop was kept, and the reactor's timer ran again after it.
    assert_eq!(lines[3], "'true'", "{stdout}");
    assert!(lines[4].contains("Rhai, not Python"), "{stdout}");
    assert_eq!(lines[5], "'\"café\"'", "{stdout}");
}

#[test]
fn telnet_manhole_refuses_a_non_loopback_interface() {
    let r = reactor();
    for host in ["0.0.0.0", "::", "192.0.2.1"] {
        let e = ManholeFactory::listen_telnet(&r, 0, host, Registry::new()).unwrap_err();
        assert!(e.to_string().contains("only on a loopback address"), "{e}");
    }
}

/// A telnetlib client that lets the server echo (DO ECHO, DO SGA, as a Linux telnet client
/// in character mode does) gets VT100 line editing: tab completion of exposed names, Left
/// and a character inserted, Up to repeat a line from the history.
const CHAR_CLIENT: &str = r#"
import sys, warnings
warnings.simplefilter("ignore")
import telnetlib
from telnetlib import IAC, DO, DONT, WILL, WONT, ECHO, SGA
def cb(sock, cmd, opt):
    if cmd == WILL and opt in (ECHO, SGA):
        sock.sendall(IAC + DO + opt)
    elif cmd == DO and opt == SGA:
        sock.sendall(IAC + WILL + opt)
    elif cmd == DO:
        sock.sendall(IAC + WONT + opt)
    elif cmd == WILL:
        sock.sendall(IAC + DONT + opt)
t = telnetlib.Telnet("127.0.0.1", int(sys.argv[1]), timeout=20)
t.set_option_negotiation_callback(cb)
t.read_until(b">>> ", 20)
# The client's DO ECHO went out while it read the banner; an echoed key shows the console
# is in character mode, and Backspace takes it away again.
t.write(b"x")
t.read_until(b"x", 20)
t.write(b"\x7f")
t.read_until(b">>> ", 20)
def keys(k, until):
    t.write(k)
    print(repr(t.read_until(until, 20).decode()))
keys(b"coun\t", b"counter")           # completed to `counter`
keys(b" + 1\r", b"\r\n>>> ")              # 8
keys(b"counter + 2\x1b[D\x1b[D\x1b[D\x1b[D0\r", b"\r\n>>> ")  # Left x4, 0: counter0 + 2
keys(b"\x1b[A\x1b[A\r", b"\r\n>>> ")      # Up twice: `counter + 1` again
"#;

#[test]
fn telnet_character_mode_edits_lines_and_completes_names() {
    let r = reactor();
    let reg = Registry::new();
    reg.value("counter", || 7_i64);
    let port = ManholeFactory::listen_telnet(&r, 0, "127.0.0.1", reg).unwrap();
    let port = port.get_host().port().unwrap().to_string();
    let child = match Command::new("python3")
        .args(["-c", CHAR_CLIENT, &port])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            torsion::testing::skip(torsion::testing::Missing::Peer, format!("python3: {e}"));
            return;
        }
    };
    let out = run_until_exit(&r, child);
    if telnetlib_missing(&out) {
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    // The echo of what was typed, and the completion's addition, `ter`.
    assert_eq!(lines[0], "'counter'", "{stdout}");
    assert!(lines[1].contains("\\r\\n8\\r\\n>>> "), "{stdout}");
    assert!(lines[2].contains("counter0"), "{stdout}");
    assert!(
        lines[2].contains("Variable not found: counter0"),
        "{stdout}"
    );
    assert!(
        lines[3].ends_with("counter + 1\\r\\n8\\r\\n>>> '"),
        "{stdout}"
    );
}
