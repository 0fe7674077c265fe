//! The examples as command-line programs for a new user: every one answers `--help` and
//! refuses options it does not know; a program that cannot start says why in one line and
//! exits non-zero (a busy port, a missing folder or command) and leaves nothing behind; a
//! log sent to a file holds no colour codes.

use crate::support;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// How long an example may take to start, building included.
const DEADLINE: Duration = Duration::from_secs(300);

/// Every example in `examples/`, by name.
fn all_examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read examples/")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".rs")?.to_owned())
        })
        .collect();
    names.sort();
    assert!(names.len() > 10, "examples found: {names:?}");
    names
}

/// Runs an example to the end with `args`, standard input closed.
fn run(name: &str, args: &[&str]) -> Output {
    support::example(name)
        .args(args)
        .output()
        .expect("cannot start cargo run")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port taken by a listener on 127.0.0.1, for as long as the listener lives.
fn busy_port() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = listener.local_addr().unwrap().port().to_string();
    (listener, port)
}

/// Asserts that an example that could not start said so in one line of standard error,
/// `Error: ...` holding `needle`, without a struct dump, and exited with status 1.
fn assert_one_line_error(what: &str, out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
    assert!(stderr.starts_with("Error: "), "{what}: {stderr}");
    assert!(stderr.contains(needle), "{what}: {needle:?} in {stderr}");
    for dump in ["Failure {", "location", "panicked"] {
        assert!(!stderr.contains(dump), "{what}: {stderr}");
    }
}

/// A folder in the temporary folder, removed (with what it holds) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    /// A path for a folder, not created: the examples create what they need.
    fn new(stem: &str) -> TempDir {
        TempDir(support::temp_path(stem, ""))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_example_has_help() {
    for name in all_examples() {
        let out = run(&name, &["--help"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{name} --help: {}", text(&out.stderr));
        assert!(
            stdout.contains(&format!("Usage: {name}")),
            "{name} --help:\n{stdout}"
        );
        let about = stdout.lines().next().unwrap_or_default();
        assert!(about.contains("Twisted"), "{name}'s about: {about:?}");
        assert!(stdout.contains("-h, --help"), "{name} --help:\n{stdout}");
        // Servers listen on this machine only unless told `--interface 0.0.0.0`.
        if stdout.contains("--interface <INTERFACE>") {
            assert!(
                stdout.contains("[default: 127.0.0.1]") && stdout.contains("0.0.0.0"),
                "{name} --help:\n{stdout}"
            );
        }
    }
}

#[test]
fn the_help_shows_the_defaults() {
    let out = run("echo_server", &["--help"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("--port <PORT>"), "{stdout}");
    assert!(stdout.contains("[default: 1033]"), "{stdout}");
    assert!(stdout.contains("--interface <INTERFACE>"), "{stdout}");
}

#[test]
fn every_example_refuses_an_unknown_option() {
    for name in all_examples() {
        let out = run(&name, &["--no-such-option", "1"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains("'--no-such-option'"), "{name}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{name} started: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn malformed_values_are_refused() {
    for (name, args, option) in [
        ("echo_server", &["--port", "70000"][..], "--port"),
        ("echo_server", &["--port", "ten"], "--port"),
        (
            "echo_server",
            &["--interface", "localhost:1"],
            "--interface",
        ),
        ("reverse_client", &["--port", "-1"], "-1"),
        ("hello_reactor", &["--scale", "-2"], "--scale"),
        ("data_client", &["localhost"], "HOST:PORT"),
        ("tls_echo_server", &["--key", "key.pem"], "--cert"),
    ] {
        let out = run(name, args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr}");
        assert!(stderr.contains(option), "{name} {args:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{name} {args:?}: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn a_busy_port_is_one_line_naming_the_address() {
    let (_taken, port) = busy_port();
    let address = format!("127.0.0.1:{port}");
    for (name, args) in [
        ("echo_server", vec!["--port", &port]),
        ("chat_server", vec!["--port", &port]),
        ("reverse_server", vec!["--port", &port]),
        ("hello_web", vec!["--port", &port]),
        ("web_counter", vec!["--port", &port]),
        ("static_files", vec!["--port", &port]),
        ("tls_echo_server", vec!["--port", &port]),
        (
            "ssh_server",
            vec!["--port", &port, "--authorized-keys", "Cargo.toml"],
        ),
        ("byte_count", vec!["--tcp-port", &port, "--web-port", "0"]),
        ("byte_count", vec!["--tcp-port", "0", "--web-port", &port]),
    ] {
        let mut args = args.clone();
        args.extend(["--interface", "127.0.0.1"]);
        let out = run(name, &args);
        assert_one_line_error(name, &out, &address);
        assert!(
            text(&out.stderr).contains("choose another port"),
            "{name}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn static_files_needs_an_existing_folder() {
    let out = run("static_files", &["--path", "/nonexistent", "--port", "0"]);
    assert_one_line_error("static_files", &out, "--path /nonexistent");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    let file = support::TempFile::new("static-not-a-folder", ".txt", b"hi");
    let out = run("static_files", &["--path", file.path(), "--port", "0"]);
    assert_one_line_error("static_files", &out, "not a folder");
}

#[test]
fn process_demo_fails_when_its_command_cannot_start() {
    let out = run("process_demo", &["no-such-command-for-torsion"]);
    assert_one_line_error("process_demo", &out, "no-such-command-for-torsion");
}

#[test]
fn highscore_on_a_busy_port_leaves_no_database() {
    let (_taken, port) = busy_port();
    let data = TempDir::new("highscore-busy-data");
    let db = support::temp_path("highscore-busy", ".db");
    for (ports, db_args) in [
        (["--game-port", &port, "--web-port", "0"], vec![]),
        (["--game-port", "0", "--web-port", &port], vec![]),
        (
            ["--game-port", &port, "--web-port", "0"],
            vec!["--db".to_owned(), format!("sqlite:{}", db.display())],
        ),
    ] {
        let out = support::example("highscore")
            .args(ports)
            .args(["--interface", "127.0.0.1"])
            .args(&db_args)
            .env("XDG_DATA_HOME", &data.0)
            .output()
            .expect("cannot start cargo run");
        assert_one_line_error("highscore", &out, &format!("127.0.0.1:{port}"));
        assert!(!data.0.exists(), "{} was created", data.0.display());
        assert!(!db.exists(), "{} was created", db.display());
    }
}

#[test]
fn highscore_keeps_its_scores_in_the_data_folder_and_says_where() {
    let data = TempDir::new("highscore-data");
    let child = support::example("highscore")
        .args([
            "--game-port",
            "0",
            "--web-port",
            "0",
            "--interface",
            "127.0.0.1",
        ])
        .env("XDG_DATA_HOME", &data.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start cargo run");
    let mut running = support::Running(child);
    let lines = support::lines(running.0.stdout.take().unwrap());
    let file = data.0.join("torsion").join("highscore.db");
    let started = Instant::now();
    let mut said = Vec::new();
    while !said
        .iter()
        .any(|l: &String| l.starts_with("highscore web listening"))
    {
        let left = DEADLINE.saturating_sub(started.elapsed());
        said.push(lines.recv_timeout(left).expect("highscore did not start"));
    }
    assert!(
        said.contains(&format!(
            "highscore: scores kept in {} (--db chooses another database)",
            file.display()
        )),
        "{said:?}"
    );
    assert!(file.is_file(), "no {}", file.display());
}

#[test]
fn a_log_sent_to_a_file_has_no_colour_codes() {
    let log = support::TempFile::new("examples-log", ".txt", b"");
    let out = support::example("db_demo")
        .env("TORSION_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log.0).expect("create the log"))
        .output()
        .expect("cannot start cargo run");
    assert!(out.status.success(), "{}", text(&out.stdout));
    let logged = std::fs::read_to_string(&log.0).expect("read the log");
    assert!(logged.contains("DEBUG"), "nothing was logged: {logged:?}");
    assert!(!logged.contains("\x1b["), "{logged:?}");
}
