//! The `torsiond` binary, run for real: help, the web and echo plugins, signals, and misuse.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{self, stderr_of, torsiond, TempDir};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    fn terminate(&mut self) -> ExitStatus {
        support::terminate(&mut self.0, TIMEOUT)
    }
}

/// Runs torsiond to completion (killed after 10 s).
fn run(args: &[&str]) -> Output {
    support::run(args, TIMEOUT)
}

/// Starts a server and returns it with the ports of its first `count` "listening on" lines
/// (the log goes to standard output).
fn start(args: &[&str], count: usize) -> (Running, Vec<u16>) {
    let mut child = torsiond()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Reads to the end, so the server never writes into a closed pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    let mut ports = Vec::new();
    while ports.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("torsiond printed 'listening on'");
        if let Some((_, addr)) = line.split_once("listening on tcp:") {
            let port = addr.trim().rsplit(':').next().unwrap().parse().unwrap();
            ports.push(port);
        }
    }
    (running, ports)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// GETs `path`; returns the whole response.
fn get(port: u16, path: &str) -> String {
    let mut s = connect(port);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn help_lists_the_plugins() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("web") && help.contains("Serve the files"),
        "{help}"
    );
    assert!(
        help.contains("echo") && help.contains("Echo back"),
        "{help}"
    );
    assert!(help.contains("--nodaemon"), "{help}");
}

#[test]
fn web_serves_a_file_and_stops_on_sigterm() {
    let tmp = TempDir::new("web");
    let dir = tmp.path();
    std::fs::write(dir.join("hello.txt"), "hello from torsiond\n").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let (mut server, ports) = start(
        &[
            "-n",
            "web",
            "--path",
            dir.to_str().unwrap(),
            "--listen",
            "tcp:0:interface=127.0.0.1",
        ],
        1,
    );
    let response = get(ports[0], "/hello.txt");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.ends_with("\r\n\r\nhello from torsiond\n"),
        "{response}"
    );
    let listing = get(ports[0], "/sub/");
    assert!(listing.starts_with("HTTP/1.1 200"), "{listing}");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn web_no_listing_forbids_folders() {
    let tmp = TempDir::new("nolisting");
    let dir = tmp.path();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let (mut server, ports) = start(
        &[
            "web",
            "--path",
            dir.to_str().unwrap(),
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--no-listing",
        ],
        1,
    );
    let response = get(ports[0], "/sub/");
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

/// Serves `dir` (with `extra` options), and checks that a file rewritten in place and a file
/// replaced by a rename are served as they are now, whatever the server kept open.
fn files_are_served_as_they_are_now(name: &str, extra: &[&str]) {
    let tmp = TempDir::new(name);
    let dir = tmp.path();
    let file = dir.join("a.txt");
    std::fs::write(&file, "first version").unwrap();
    let mut args = vec![
        "web",
        "--path",
        dir.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ];
    args.extend_from_slice(extra);
    let (mut server, ports) = start(&args, 1);
    let first = get(ports[0], "/a.txt");
    assert!(first.ends_with("\r\n\r\nfirst version"), "{first}");
    // Rewritten in place, longer: same inode, new length and bytes.
    std::fs::write(&file, "the second, longer version").unwrap();
    let second = get(ports[0], "/a.txt");
    assert!(
        second.ends_with("\r\n\r\nthe second, longer version"),
        "{second}"
    );
    assert!(second.contains("Content-Length: 26"), "{second}");
    // Replaced by a rename, as deploy tools do: a new inode at the same path.
    let next = dir.join("a.txt.next");
    std::fs::write(&next, "third").unwrap();
    std::fs::rename(&next, &file).unwrap();
    let third = get(ports[0], "/a.txt");
    assert!(third.ends_with("\r\n\r\nthird"), "{third}");
    // Deleted: gone, whatever was open.
    std::fs::remove_file(&file).unwrap();
    let gone = get(ports[0], "/a.txt");
    assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn web_serves_changed_and_replaced_files_fresh() {
    files_are_served_as_they_are_now("fresh", &[]);
}

#[test]
fn web_without_the_open_file_cache_serves_the_same() {
    files_are_served_as_they_are_now("nocache", &["--no-open-file-cache"]);
}

#[test]
fn web_port_alias_listens() {
    let tmp = TempDir::new("port");
    let dir = tmp.path();
    std::fs::write(dir.join("a.txt"), "alias").unwrap();
    let (mut server, ports) = start(&["web", "--path", dir.to_str().unwrap(), "--port", "0"], 1);
    let response = get(ports[0], "/a.txt");
    assert!(response.ends_with("\r\n\r\nalias"), "{response}");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn web_answers_curl_over_http2_with_prior_knowledge_and_over_tls() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        return torsion::testing::skip(torsion::testing::Missing::Peer, "curl is not installed");
    }
    let tmp = TempDir::new("web-h2");
    let dir = tmp.path();
    std::fs::write(dir.join("a.txt"), "over h2").unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    let tls = format!(
        "tls:0:interface=127.0.0.1:privateKey={}:certKey={}",
        dir.join("key.pem").display(),
        dir.join("cert.pem").display()
    );
    let (mut server, ports) = start(
        &[
            "web",
            "--path",
            dir.to_str().unwrap(),
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--listen",
            &tls,
        ],
        2,
    );
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-w", " %{http_version}"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let urls: Vec<(String, bool)> = ports
        .iter()
        .map(|p| {
            // Which port is which: the TLS one does not answer plain HTTP.
            let plain = format!("http://127.0.0.1:{p}/a.txt");
            let is_plain = curl(&["--http1.1", "-m", "5", &plain]).starts_with("over h2");
            if is_plain {
                (plain, false)
            } else {
                (format!("https://127.0.0.1:{p}/a.txt"), true)
            }
        })
        .collect();
    for (url, tls) in &urls {
        let out = if *tls {
            curl(&["-k", "--http2", url])
        } else {
            curl(&["--http2-prior-knowledge", url])
        };
        assert_eq!(out, "over h2 2", "{url}");
    }
    assert!(urls.iter().any(|(_, tls)| *tls) && urls.iter().any(|(_, tls)| !*tls));
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

/// Checks that a startup error is one line on standard error, prefixed `torsiond: `, with
/// no Rust debug output, panic or backtrace in it; returns the line.
fn one_clean_line(out: &Output) -> String {
    let err = stderr_of(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("torsiond: "), "{err}");
    for dump in [
        "Failure {",
        "Error {",
        "Os {",
        "kind:",
        "location:",
        "panicked",
        "backtrace",
        "\x1b[",
    ] {
        assert!(!err.contains(dump), "{dump:?} in {err}");
    }
    err.trim_end().to_owned()
}

#[test]
fn a_missing_folder_is_one_line_with_the_fix_and_status_1() {
    let tmp = TempDir::new("missing");
    let dir = tmp.path().join("not-there");
    let out = run(&[
        "web",
        "--path",
        dir.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_clean_line(&out);
    assert!(err.contains("not-there"), "{err}");
    assert!(err.contains("no such file or folder"), "{err}");
    assert!(err.contains("give --path a folder that exists"), "{err}");
}

#[test]
fn a_bad_endpoint_names_the_bad_part_and_the_plugin_help() {
    let out = run(&["web", "--listen", "tcp:80x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_clean_line(&out);
    assert!(err.contains("80x"), "{err}");
    assert!(err.ends_with("(see torsiond web --help)"), "{err}");
    // An unknown keyword lists the ones the kind takes.
    let out = run(&["web", "--listen", "tcp:8080:intrface=127.0.0.1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = one_clean_line(&out);
    assert!(err.contains("'intrface'"), "{err}");
    assert!(err.contains("expected port, interface, backlog"), "{err}");
    assert!(err.ends_with("(see torsiond web --help)"), "{err}");
}

#[test]
fn usage_errors_point_at_the_help_of_the_command_they_are_in() {
    for (args, help) in [
        (&["web", "--no-such-option"][..], "torsiond web --help"),
        (&["echo", "--listen", "bogus:1"], "torsiond echo --help"),
        (
            &["portforward", "--listen", "tcp:0"],
            "torsiond portforward --help",
        ),
        (&["--no-such-option", "web"], "torsiond --help"),
        (&["--workers", "0", "web"], "torsiond --help"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = one_clean_line(&out);
        assert!(err.ends_with(&format!("(see {help})")), "{args:?}: {err}");
    }
}

#[test]
fn version_prints_the_package_version() {
    for flag in ["--version", "-V"] {
        let out = run(&[flag]);
        assert!(out.status.success(), "{flag}: {}", stderr_of(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.trim_end(),
            format!("torsiond {}", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
}

#[test]
fn web_help_explains_endpoint_strings_and_hidden_files() {
    let out = run(&["web", "--help"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "An endpoint string is KIND:ARGS",
        "tcp:8080 ",
        "tcp:8080:interface=127.0.0.1",
        "unix:/run/web.sock",
        "tls:8443:privateKey=key.pem:certKey=cert.pem",
        "systemd:domain=INET:index=0",
        "the torsion::endpoints API docs (cargo doc -p torsion --open)",
        "--show-hidden",
    ] {
        assert!(help.contains(want), "{want:?} missing from {help}");
    }
    // The other plugins that listen explain it too.
    for plugin in ["echo", "portforward"] {
        let out = run(&[plugin, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("An endpoint string is"), "{plugin}: {help}");
    }
}

/// A folder served as it is: its `.git` and `.env` are answered 404 and left out of the
/// listing, unless `--show-hidden`.
#[test]
fn web_hides_dotfiles_unless_show_hidden() {
    let tmp = TempDir::new("hidden");
    let dir = tmp.path();
    std::fs::create_dir(dir.join(".git")).unwrap();
    std::fs::write(dir.join(".git").join("config"), "[core]\n").unwrap();
    std::fs::write(dir.join(".env"), "SECRET=1\n").unwrap();
    std::fs::write(dir.join("index.txt"), "public\n").unwrap();
    let args = [
        "web",
        "--path",
        dir.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ];
    let (mut server, ports) = start(&args, 1);
    for path in ["/.git/config", "/.git/", "/.env", "/%2Eenv"] {
        let response = get(ports[0], path);
        assert!(response.starts_with("HTTP/1.1 404"), "{path}: {response}");
        assert!(!response.contains("SECRET") && !response.contains("[core]"));
    }
    let listing = get(ports[0], "/");
    assert!(listing.starts_with("HTTP/1.1 200"), "{listing}");
    assert!(listing.contains("index.txt"), "{listing}");
    assert!(
        !listing.contains(".git") && !listing.contains(".env"),
        "{listing}"
    );
    assert!(server.terminate().success());

    let mut shown = args.to_vec();
    shown.push("--show-hidden");
    let (mut server, ports) = start(&shown, 1);
    let response = get(ports[0], "/.git/config");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("\r\n\r\n[core]\n"), "{response}");
    let listing = get(ports[0], "/");
    assert!(
        listing.contains(".git/") && listing.contains(".env"),
        "{listing}"
    );
    assert!(server.terminate().success());
}

/// A folder whose name holds an escape sequence: the log lines that name it, written to a
/// pipe or a file, hold no ANSI escape code (nor do the access lines or standard error).
#[test]
fn logs_to_a_pipe_or_a_file_hold_no_ansi_codes() {
    let tmp = TempDir::new("ansi");
    let dir = tmp.path().join("red\x1b[31mfolder");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "a").unwrap();
    let serve = [
        "web",
        "--path",
        dir.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ];

    // Standard output and standard error are pipes here.
    let mut server = support::Running::start(&serve);
    let mut lines = server.lines_until("listening on tcp:");
    let listening = lines.last().unwrap();
    let port: u16 = listening
        .rsplit(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(get(port, "/a.txt").starts_with("HTTP/1.1 200"));
    assert!(get(port, "/missing").starts_with("HTTP/1.1 404"));
    lines.extend(server.lines_until("GET /missing"));
    assert!(server.terminate().success());
    lines.extend(server.lines_until(" stopped"));
    let text = lines.join("\n");
    assert!(text.contains("serving "), "{text}");
    assert!(text.contains("red\\u{1b}[31mfolder"), "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");

    // With --logfile.
    let log = tmp.path().join("torsiond.log");
    let mut args = vec!["--logfile", log.to_str().unwrap()];
    args.extend_from_slice(&serve);
    let mut server = support::Running::start(&args);
    let deadline = Instant::now() + TIMEOUT;
    let port = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some((_, rest)) = text.split_once("listening on tcp:") {
            let addr = rest.lines().next().unwrap();
            break addr
                .rsplit(':')
                .next()
                .unwrap()
                .trim()
                .parse::<u16>()
                .unwrap();
        }
        assert!(Instant::now() < deadline, "no listening line in {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(get(port, "/missing").starts_with("HTTP/1.1 404"));
    assert!(server.terminate().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("GET /missing"), "{text}");
    assert!(text.contains("red\\u{1b}[31mfolder"), "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");
}

#[test]
fn an_unknown_plugin_is_a_usage_error() {
    let out = run(&["nosuchplugin"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_of(&out).lines().count(), 1);
}

#[test]
fn a_port_in_use_is_status_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(&[
        "echo",
        "--listen",
        &format!("tcp:{port}:interface=127.0.0.1"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    let failure: Vec<&str> = err.lines().filter(|l| l.starts_with("torsiond:")).collect();
    assert_eq!(failure.len(), 1, "{err}");
    assert!(failure[0].contains(&port.to_string()), "{err}");
    assert!(!err.contains("Failure:"), "{err}");
}

/// An interface address this machine does not have (192.0.2.1 is reserved for
/// documentation): one line naming it, and the fix.
#[test]
fn web_on_an_address_not_here_is_one_line_with_the_fix_and_status_1() {
    let tmp = TempDir::new("notmine");
    let out = run(&[
        "web",
        "--path",
        tmp.path().to_str().unwrap(),
        "--listen",
        "tcp:0:interface=192.0.2.1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_clean_line(&out);
    assert!(err.contains("192.0.2.1"), "{err}");
    assert!(
        err.contains("no interface of this machine has that address"),
        "{err}"
    );
}

/// The README's command on a port that is taken: one line naming the port and the fix.
#[test]
fn web_on_a_port_in_use_is_one_line_with_the_fix_and_status_1() {
    let tmp = TempDir::new("busy");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(&[
        "web",
        "--path",
        tmp.path().to_str().unwrap(),
        "--listen",
        &format!("tcp:{port}:interface=127.0.0.1"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_clean_line(&out);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("Address already in use"), "{err}");
    assert!(err.contains("choose another port"), "{err}");
    // The log (standard output) has no second report of it.
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(!log.contains("Address already in use"), "{log}");
}

#[test]
fn echo_round_trip() {
    let (mut server, ports) = start(&["echo", "--listen", "tcp:0:interface=127.0.0.1"], 1);
    let mut s = connect(ports[0]);
    s.write_all(b"ping\r\n").unwrap();
    let mut buf = [0u8; 6];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping\r\n");
    drop(s);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_closed_stdout_and_stderr_do_not_turn_shutdown_into_a_panic() {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_torsiond"))
        .args(["echo", "--listen", "tcp:0:interface=127.0.0.1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap(); // it is running and logging
                                            // Whoever started it stops reading: the log lines of the shutdown meet closed pipes.
    drop(stdout);
    drop(child.stderr.take());
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "exit status {exit:?} (101 would be a panic)"
    );
}

/// Run on a terminal (a pseudo-terminal made by python3's `pty`), the level is coloured.
#[test]
fn logs_to_a_terminal_are_coloured() {
    const ON_A_PTY: &str = r#"
import os, pty, signal, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
seen = b""
while b"listening on" not in seen:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
os.kill(pid, signal.SIGTERM)
os.waitpid(pid, 0)
sys.stdout.write(seen.decode("utf-8", "replace"))
"#;
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("\n*** SKIPPING: python3 is not installed ***\n");
        return;
    }
    let mut child = std::process::Command::new("python3")
        .args(["-c", ON_A_PTY, env!("CARGO_BIN_EXE_torsiond")])
        .args(["echo", "--listen", "tcp:0:interface=127.0.0.1"])
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let text = rx.recv_timeout(TIMEOUT).expect("the pty launcher finished");
    drop(running);
    assert!(
        text.contains("\x1b[32m INFO\x1b[0m torsiond: listening on"),
        "{text:?}"
    );
}

/// `GET path` with `Accept-Encoding: accept`; the whole response, bytes.
fn get_accepting(port: u16, path: &str, accept: &str) -> Vec<u8> {
    let mut s = connect(port);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// `torsiond web --encoding` compresses a text file for a client that accepts gzip; without
/// the option it does not.
#[test]
fn web_encoding_compresses_responses_when_asked() {
    let tmp = TempDir::new("encoding");
    let dir = tmp.path();
    std::fs::write(dir.join("page.html"), "<p>torsion</p>\n".repeat(500)).unwrap();
    for (flag, encoded) in [(None, false), (Some("--encoding"), true)] {
        let mut args = vec![
            "web",
            "--path",
            dir.to_str().unwrap(),
            "--listen",
            "tcp:0:interface=127.0.0.1",
        ];
        args.extend(flag);
        let (mut server, ports) = start(&args, 1);
        let response = get_accepting(ports[0], "/page.html", "gzip");
        let end = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head");
        let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(
            head.contains("content-encoding: gzip"),
            encoded,
            "{flag:?}: {head}"
        );
        if encoded {
            assert!(head.contains("vary: accept-encoding"), "{head}");
            // The whole page is 8000 bytes; gzip makes it a few dozen.
            assert!(response.len() - end < 1000, "{}", response.len() - end);
        }
        assert!(server.terminate().success());
    }
}
