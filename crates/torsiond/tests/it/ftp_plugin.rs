//! `torsiond ftp`, run for real: Python's ftplib through AUTH TLS and PROT P, passive ports
//! from the range given, anonymous read-only access beside a password user; misuse.

use std::process::Command;

use torsion::testing::{skip, Missing};

use crate::support::{free_port, run, stderr_of, Running, TempDir, TIMEOUT};

#[test]
fn misuse_is_refused_with_a_message() {
    let dir = TempDir::new("ftp-misuse");
    let root = dir.path().to_str().unwrap();
    let out = run(&["ftp", "--root", root, "--listen", "tcp:0"], TIMEOUT);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("nobody could log in"),
        "{}",
        stderr_of(&out)
    );
    let out = run(
        &[
            "ftp",
            "--root",
            root,
            "--anonymous",
            "--passive-ports",
            "9-3",
        ],
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let out = run(
        &["ftp", "--root", "/no/such/folder", "--anonymous"],
        TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("--root"), "{}", stderr_of(&out));
}

const SESSION: &str = r#"
import ftplib, io, ssl, sys
port, cafile, first, last = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.create_default_context(cafile=cafile)
ftp = ftplib.FTP_TLS(context=ctx, timeout=20)
ftp.connect("127.0.0.1", port)
ftp.login("alice", "correct horse")  # AUTH TLS first, by FTP_TLS
ftp.prot_p()
for _ in range(3):
    r = ftp.sendcmd("EPSV")
    p = int(r.split("|")[3])
    assert first <= p <= last, (p, first, last)
ftp.storbinary("STOR up.txt", io.BytesIO(b"uploaded through torsiond"))
out = io.BytesIO()
ftp.retrbinary("RETR up.txt", out.write)
assert out.getvalue() == b"uploaded through torsiond", out.getvalue()
ftp.quit()
anon = ftplib.FTP(timeout=20)
anon.connect("127.0.0.1", port)
anon.login()
assert "up.txt" in anon.nlst()
try:
    anon.storbinary("STOR no.txt", io.BytesIO(b"x"))
    raise SystemExit("anonymous wrote")
except ftplib.error_perm:
    pass
anon.quit()
print("ok")
"#;

#[test]
fn ftplib_logs_in_over_tls_and_uses_the_passive_range() {
    if Command::new("python3").arg("--version").output().is_err() {
        return skip(Missing::Peer, "python3 is not installed");
    }
    let dir = TempDir::new("ftp");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = dir.path().join("cert.pem");
    let key_pem = dir.path().join("key.pem");
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let passwords = dir.path().join("passwords");
    std::fs::write(
        &passwords,
        format!("alice:{}\n", torsion_cred::hash_password("correct horse")),
    )
    .unwrap();
    // A small range of ports that were free a moment ago.
    let first = free_port().max(1024);
    let last = first.saturating_add(20);
    let range = format!("{first}-{last}");
    let mut server = Running::start(&[
        "ftp",
        "--root",
        root.to_str().unwrap(),
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--anonymous",
        "--passwordfile",
        passwords.to_str().unwrap(),
        "--passive-ports",
        &range,
        "--certificate",
        cert_pem.to_str().unwrap(),
        "--key",
        key_pem.to_str().unwrap(),
        "--require-tls",
    ]);
    let port = server.port();
    let out = Command::new("python3")
        .args([
            "-c",
            SESSION,
            &port.to_string(),
            cert_pem.to_str().unwrap(),
            &first.to_string(),
            &last.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ftplib: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(root.join("up.txt")).unwrap(),
        b"uploaded through torsiond"
    );
    assert!(!root.join("no.txt").exists());
    assert!(server.terminate().success());
}
