//! Seed 004's get_page example, run as a binary against Python's `http.server` (a server
//! nobody here wrote) and against a refused port, in both its callback and async styles.

use crate::support;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use support::Running;

/// How long the example may take, building included.
const DEADLINE: Duration = Duration::from_secs(300);

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "torsion-{name}-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn have_python() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            "python3 is not installed, so there is no http.server to fetch from",
        );
    }
    found
}

/// Starts `python3 -m http.server` serving `dir` on a free port; returns it and the port.
fn http_server(dir: &TempDir) -> (Running, u16) {
    let mut child = Command::new("python3")
        .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
        .current_dir(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 starts");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // "Serving HTTP on 127.0.0.1 port 45678 (http://127.0.0.1:45678/) ..."
            if let Some(rest) = line.split(" port ").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = tx.send(digits.parse::<u16>().unwrap());
                break;
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("http.server said which port it serves on");
    (running, port)
}

/// Runs the example to the end; returns (success, stdout, stderr).
fn get_page(args: &[&str]) -> (bool, String, String) {
    get_page_with(args, &[])
}

/// As [`get_page`], with `env` set for the example.
fn get_page_with(args: &[&str], env: &[(&str, &std::path::Path)]) -> (bool, String, String) {
    let mut child = support::example("get_page")
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo run starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut running = Running(child);
    let errors = thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send((out, errors.join().unwrap_or_default()));
    });
    let (out, err) = rx
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("get_page {args:?} did not finish in {DEADLINE:?}"));
    let status = running.0.wait().unwrap();
    (status.success(), out, err)
}

#[test]
fn get_page_prints_a_page_from_python_http_server() {
    if !have_python() {
        return;
    }
    let dir = TempDir::new("get-page");
    std::fs::write(dir.0.join("hello.txt"), "Hello from Python's http.server\n").unwrap();
    let (_server, port) = http_server(&dir);
    let url = format!("http://127.0.0.1:{port}/hello.txt");
    for style in [&[][..], &["--async"][..]] {
        let mut args = vec![url.as_str()];
        args.extend_from_slice(style);
        let (ok, out, err) = get_page(&args);
        assert!(ok, "get_page {args:?} failed; stdout: {out}\nstderr: {err}");
        assert_eq!(out, "Hello from Python's http.server\n\n", "stderr: {err}");
    }
    // A missing file is a 404: a failure.
    let missing = format!("http://127.0.0.1:{port}/missing.txt");
    let (ok, out, err) = get_page(&[&missing]);
    assert!(!ok, "a 404 is a failure");
    assert_eq!(out, "Unable to fetch.\n");
    assert!(err.contains("404"), "{err}");
}

#[test]
fn get_page_says_unable_to_fetch_when_refused() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let url = format!("http://127.0.0.1:{port}/");
    for style in [&[][..], &["--async"][..]] {
        let mut args = vec![url.as_str()];
        args.extend_from_slice(style);
        let (ok, out, err) = get_page(&args);
        assert!(!ok, "get_page {args:?} should fail");
        assert_eq!(out, "Unable to fetch.\n", "stderr: {err}");
        assert!(err.contains("refused"), "{err}");
    }
}

/// `openssl s_server -www` (a TLS server nobody here wrote) on a free port with a certificate
/// for `localhost` signed by a throwaway CA; the server, its port, and the CA's PEM file.
fn openssl_https_server(dir: &TempDir) -> Option<(Running, u16, PathBuf)> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca_file = write("ca.pem", &ca_pem);
    let cert = write("cert.pem", &leaf.pem());
    let key = write("key.pem", &leaf_key.serialize_pem());
    let spawned = Command::new("openssl")
        .args(["s_server", "-accept", "127.0.0.1:0", "-www", "-cert"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            torsion::testing::skip(
                torsion::testing::Missing::Peer,
                format!("openssl is not installed ({e})"),
            );
            return None;
        }
    };
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        // "ACCEPT 127.0.0.1:PORT"
        if let Some(port) = lines.by_ref().find_map(|l| {
            l.strip_prefix("ACCEPT 127.0.0.1:")
                .and_then(|p| p.trim().parse::<u16>().ok())
        }) {
            let _ = tx.send(port);
        }
        lines.for_each(drop); // never let it block on a full pipe
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("s_server said which port it listens on");
    Some((running, port, ca_file))
}

/// `get_page https://...` trusts the platform's roots: here the throwaway CA, named by
/// `SSL_CERT_FILE` (which rustls-native-certs reads instead of the system store), so the
/// page comes; without it, the certificate is refused and the example says so.
#[test]
fn get_page_fetches_https_with_the_platforms_roots() {
    let dir = TempDir::new("get-page-https");
    let Some((_server, port, ca_file)) = openssl_https_server(&dir) else {
        return;
    };
    let url = format!("https://localhost:{port}/");
    let (ok, out, err) = get_page_with(&[&url], &[("SSL_CERT_FILE", &ca_file)]);
    assert!(ok, "get_page {url} failed; stdout: {out}\nstderr: {err}");
    assert!(out.contains("s_server -accept"), "{out}");
    let system = std::path::Path::new("/nonexistent/no-such-bundle.pem");
    let (ok, out, err) = get_page_with(&[&url], &[("SSL_CERT_FILE", system)]);
    assert!(!ok, "an untrusted certificate is a failure");
    assert_eq!(out, "Unable to fetch.\n", "stderr: {err}");
}
