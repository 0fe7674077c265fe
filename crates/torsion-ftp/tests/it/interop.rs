//! Interop with FTP clients nobody here wrote: Python's ftplib (plain, and FTP_TLS with
//! PROT P) and curl (`ftp://` and `ftps://` with `--ssl-reqd`). Each test reads back what
//! was stored from the folder itself.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use torsion::testing::{skip, Missing};
use torsion_cred::{hash_password, FilePasswordDb, Portal};
use torsion_ftp::{FtpFactory, FtpRealm, Root};

use crate::support::{have, python, self_signed, with_server, TempDir};

/// A served folder with a file, a folder and a file in it.
pub(crate) fn populate(dir: &Path) {
    std::fs::write(dir.join("hello.txt"), b"Hello, FTP!\n").unwrap();
    std::fs::create_dir(dir.join("sub dir")).unwrap();
    std::fs::write(dir.join("sub dir/inner.bin"), vec![7u8; 300_000]).unwrap();
}

/// A factory serving `root` to alice (password "wonderland", writable) and anonymous
/// users (read-only).
pub(crate) fn factory(root: &Path, passwords: &Path) -> FtpFactory {
    std::fs::write(
        passwords,
        format!("alice:{}\n", hash_password("wonderland")),
    )
    .unwrap();
    let portal = Portal::new(FtpRealm::shared(Root::new(root).unwrap()));
    portal.register_checker(FilePasswordDb::open(passwords).unwrap());
    FtpFactory::new()
        .anonymous(Root::new(root).unwrap())
        .portal(portal)
        .login_failure_delay(Duration::from_millis(20))
}

const FTPLIB: &str = r#"
import ftplib, io, ssl, sys
port, mode, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if mode == "tls":
    ctx = ssl.create_default_context(cafile=cafile)
    ftp = ftplib.FTP_TLS(context=ctx, timeout=30)
else:
    ftp = ftplib.FTP(timeout=30)
ftp.connect("127.0.0.1", port)
if mode == "tls":
    ftp.auth()
try:
    ftp.login("alice", "wrong")
    raise SystemExit("a wrong password logged in")
except ftplib.error_perm as e:
    assert str(e).startswith("530"), e
ftp.login("alice", "wonderland")
if mode == "tls":
    ftp.prot_p()
assert ftp.pwd() == "/", ftp.pwd()
names = sorted(ftp.nlst())
assert names == ["hello.txt", "sub dir"], names
lines = []
ftp.retrlines("LIST", lines.append)
assert any(l.startswith("-rw") and l.endswith(" hello.txt") for l in lines), lines
assert any(l.startswith("d") and l.endswith(" sub dir") for l in lines), lines
facts = dict(ftp.mlsd())
assert facts["hello.txt"]["type"] == "file" and facts["hello.txt"]["size"] == "12", facts
assert facts["sub dir"]["type"] == "dir", facts
out = io.BytesIO()
ftp.retrbinary("RETR hello.txt", out.write)
assert out.getvalue() == b"Hello, FTP!\n", out.getvalue()
assert ftp.size("hello.txt") == 12
assert ftp.sendcmd("MDTM hello.txt").startswith("213 2")
ftp.cwd("sub dir")
assert ftp.pwd() == "/sub dir"
out = io.BytesIO()
ftp.retrbinary("RETR inner.bin", out.write, rest=299_990)
assert out.getvalue() == b"\x07" * 10, len(out.getvalue())
ftp.cwd("..")
ftp.mkd("new")
ftp.storbinary("STOR new/up.bin", io.BytesIO(b"x" * 1_000_000))
ftp.storbinary("APPE new/up.bin", io.BytesIO(b"tail"))
assert ftp.size("new/up.bin") == 1_000_004
ftp.rename("new/up.bin", "new/moved.bin")
try:
    ftp.size("new/up.bin")
    raise SystemExit("the old name is still there")
except ftplib.error_perm:
    pass
ftp.storbinary("STOR new/gone.txt", io.BytesIO(b"bye"))
ftp.delete("new/gone.txt")
try:
    ftp.cwd("../..")
    raise SystemExit("left the root")
except ftplib.error_perm as e:
    assert str(e).startswith("550"), e
ftp.quit()

# Anonymous: reads, cannot write.
ftp = ftplib.FTP_TLS(context=ctx, timeout=30) if mode == "tls" else ftplib.FTP(timeout=30)
ftp.connect("127.0.0.1", port)
if mode == "tls":
    ftp.auth()
ftp.login()
if mode == "tls":
    ftp.prot_p()
out = io.BytesIO()
ftp.retrbinary("RETR hello.txt", out.write)
assert out.getvalue() == b"Hello, FTP!\n"
try:
    ftp.storbinary("STOR evil.txt", io.BytesIO(b"no"))
    raise SystemExit("anonymous wrote")
except ftplib.error_perm as e:
    assert str(e).startswith("550"), e
ftp.quit()
print("ftplib ok")
"#;

fn ftplib(mode: &'static str) {
    let dir = TempDir::new(&format!("ftplib-{mode}"));
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    populate(&root);
    let (tls, pem) = self_signed();
    let cafile = dir.path().join("ca.pem");
    std::fs::write(&cafile, pem).unwrap();
    let mut f = factory(&root, &dir.path().join("passwords"));
    if mode == "tls" {
        f = f.tls(tls);
    }
    let ca = cafile.to_string_lossy().into_owned();
    let (ok, out) = with_server(f, move |port| {
        python(FTPLIB, &[port.to_string(), mode.into(), ca])
    });
    assert!(ok, "{out}");
    assert!(out.contains("ftplib ok"), "{out}");
    assert_eq!(
        std::fs::metadata(root.join("new/moved.bin")).unwrap().len(),
        1_000_004
    );
    assert!(!root.join("new/gone.txt").exists());
    assert!(!root.join("evil.txt").exists());
}

#[test]
fn ftplib_plain() {
    ftplib("plain");
}

#[test]
fn ftplib_tls_prot_p() {
    ftplib("tls");
}

const FTPLIB_ABORT: &str = r#"
import ftplib, io, sys
port = int(sys.argv[1])
ftp = ftplib.FTP(timeout=30)
ftp.connect("127.0.0.1", port)
ftp.login("alice", "wonderland")
# A download aborted after its first bytes: ftplib sends ABOR as urgent data.
conn = ftp.transfercmd("RETR big.bin")
assert len(conn.recv(65536)) > 0
resp = ftp.abort()
assert resp.startswith("426"), resp
assert ftp.getresp().startswith("226")
conn.close()
# An upload aborted after its first bytes.
conn = ftp.transfercmd("STOR part.bin")
conn.sendall(b"u" * 100_000)
resp = ftp.abort()
assert resp.startswith("426"), resp
assert ftp.getresp().startswith("226")
conn.close()
# The session goes on: a whole transfer after both.
out = io.BytesIO()
ftp.retrbinary("RETR hello.txt", out.write)
assert out.getvalue() == b"Hello, FTP!\n", out.getvalue()
# ABOR with no transfer running.
assert ftp.abort().startswith("226")
ftp.quit()
print("abort ok")
"#;

/// ABOR mid-transfer, as Python's ftplib sends it (the line as TCP urgent data): the
/// transfer ends with 426, the ABOR is answered 226, and the session goes on.
#[test]
fn ftplib_aborts_a_download_and_an_upload_mid_transfer() {
    let dir = TempDir::new("ftplib-abort");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    populate(&root);
    // Far more than the socket buffers hold: the download cannot finish before the ABOR.
    let big = std::fs::File::create(root.join("big.bin")).unwrap();
    big.set_len(512 << 20).unwrap();
    let f = factory(&root, &dir.path().join("passwords"));
    let (ok, out) = with_server(f, move |port| python(FTPLIB_ABORT, &[port.to_string()]));
    assert!(ok, "{out}");
    assert!(out.contains("abort ok"), "{out}");
    let part = std::fs::metadata(root.join("part.bin")).unwrap().len();
    assert!(part <= 100_000, "{part} bytes stored");
}

fn curl(args: Vec<String>) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(&args)
        .output()
        .expect("curl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn curl_session(tls: bool) {
    if !have("curl", "--version") {
        return skip(Missing::Peer, "curl is not installed");
    }
    let dir = TempDir::new(if tls { "curl-tls" } else { "curl" });
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    populate(&root);
    let upload = dir.path().join("upload.bin");
    std::fs::write(&upload, vec![42u8; 200_000]).unwrap();
    let (ctx, pem) = self_signed();
    let cafile = dir.path().join("ca.pem");
    std::fs::write(&cafile, pem).unwrap();
    let mut f = factory(&root, &dir.path().join("passwords"));
    if tls {
        f = f.tls(ctx).require_tls_for_login(true);
    }
    let mut common: Vec<String> = vec!["--user".into(), "alice:wonderland".into()];
    if tls {
        common.extend([
            "--ssl-reqd".into(),
            "--cacert".into(),
            cafile.to_string_lossy().into(),
        ]);
    }
    let upload_s = upload.to_string_lossy().into_owned();
    let results = with_server(f, move |port| {
        // Explicit FTPS: ftp:// with --ssl-reqd (AUTH TLS, then PROT P).
        let base = format!("ftp://127.0.0.1:{port}");
        let mut out = Vec::new();
        let run = |extra: &[&str]| {
            let mut a = common.clone();
            a.extend(extra.iter().map(|s| s.to_string()));
            curl(a)
        };
        out.push(run(&[&format!("{base}/")]));
        out.push(run(&[&format!("{base}/hello.txt")]));
        out.push(run(&["-T", &upload_s, &format!("{base}/sub%20dir/up.bin")]));
        out.push(run(&["--list-only", &format!("{base}/sub%20dir/")]));
        out.push(run(&["-r", "199990-", &format!("{base}/sub%20dir/up.bin")]));
        out
    });
    for (ok, out) in &results {
        assert!(ok, "curl failed: {out}");
    }
    assert!(results[0].1.contains(" hello.txt"), "{}", results[0].1);
    assert!(results[0]
        .1
        .lines()
        .any(|l| l.starts_with('d') && l.ends_with("sub dir")));
    assert_eq!(results[1].1, "Hello, FTP!\n");
    assert_eq!(
        std::fs::read(root.join("sub dir/up.bin")).unwrap(),
        vec![42u8; 200_000]
    );
    let mut names: Vec<&str> = results[3].1.lines().collect();
    names.sort();
    assert_eq!(names, ["inner.bin", "up.bin"]);
    assert_eq!(results[4].1.as_bytes(), &[42u8; 10]);
}

#[test]
fn curl_ftp() {
    curl_session(false);
}

#[test]
fn curl_ftps_ssl_reqd() {
    curl_session(true);
}

/// lftp, scripted with `lftp -c`: a listing, a download, a mirror of a folder and an
/// upload, in the clear and through AUTH TLS with PROT P (lftp's `ftp:ssl-force`).
fn lftp_session(tls: bool) {
    if !have("lftp", "--version") {
        return skip(
            Missing::Peer,
            "lftp is not installed (scripts/test installs it)",
        );
    }
    let dir = TempDir::new(if tls { "lftp-tls" } else { "lftp" });
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    populate(&root);
    let local = dir.path().join("local");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(local.join("put.txt"), b"put by lftp\n").unwrap();
    let (ctx, pem) = self_signed();
    let cafile = dir.path().join("ca.pem");
    std::fs::write(&cafile, pem).unwrap();
    let mut f = factory(&root, &dir.path().join("passwords"));
    if tls {
        f = f.tls(ctx).require_tls_for_login(true);
    }
    let settings = if tls {
        format!(
            "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file {}; set ssl:check-hostname false;",
            cafile.display()
        )
    } else {
        "set ftp:ssl-allow false;".to_owned()
    };
    let local_s = local.to_string_lossy().into_owned();
    let out = with_server(f, move |port| {
        let script = format!(
            "{settings} set net:max-retries 1; set net:timeout 20; \
             open -u alice,wonderland ftp://127.0.0.1:{port}; \
             cls -l; lcd {local_s}; get hello.txt; mirror 'sub dir' mirrored; put put.txt; \
             cls -1 /; bye"
        );
        Command::new("lftp")
            .args(["-c", &script])
            .output()
            .expect("lftp runs")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("hello.txt") && text.contains("sub dir/"),
        "{text}"
    );
    assert!(text.contains("put.txt"), "{text}");
    assert_eq!(
        std::fs::read(local.join("hello.txt")).unwrap(),
        b"Hello, FTP!\n"
    );
    assert_eq!(
        std::fs::read(local.join("mirrored/inner.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    assert_eq!(
        std::fs::read(root.join("put.txt")).unwrap(),
        b"put by lftp\n"
    );
}

#[test]
fn lftp_plain() {
    lftp_session(false);
}

#[test]
fn lftp_ftps() {
    lftp_session(true);
}
