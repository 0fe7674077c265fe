//! OpenSSH's `sftp` client in batch mode against the Torsion server's SFTP subsystem: get,
//! put, ls, mkdir, rename, rm, and paths that would leave the served folder refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{describe, have_ssh, keygen, quick, server, text, with_server, TempDir};
use torsion_conch::ssh::HostKey;

/// A scratch folder with a client key, authorized_keys, the served folder `root` and a
/// folder `local` for the client's side.
fn setup(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let public = keygen(&dir.join("id"));
    std::fs::write(dir.join("authorized_keys"), public).unwrap();
    std::fs::create_dir(dir.join("root")).unwrap();
    std::fs::create_dir(dir.join("local")).unwrap();
    dir
}

/// Runs `sftp -b` with `batch` (one command a line) against `port`.
fn sftp(dir: &Path, port: u16, batch: &str) -> Output {
    let file = dir.join(format!("batch-{port}-{}", batch.len()));
    std::fs::write(&file, batch).unwrap();
    Command::new("sftp")
        .args(["-F", "/dev/null", "-P", &port.to_string(), "-b"])
        .arg(&file)
        .arg("-i")
        .arg(dir.join("id"))
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "bob@127.0.0.1",
        ])
        .current_dir(dir.join("local"))
        .output()
        .unwrap()
}

/// Serves `dir/root` over SFTP and runs each batch in turn.
fn serve(dir: &TempDir, batches: Vec<String>) -> Vec<Output> {
    let (d, auth, root) = (
        dir.path().to_owned(),
        dir.join("authorized_keys"),
        dir.join("root"),
    );
    with_server(
        move || {
            server(&auth, HostKey::generate(), quick())
                .sftp_root(&root)
                .unwrap()
        },
        move |port| batches.iter().map(|b| sftp(&d, port, b)).collect(),
    )
}

#[test]
fn get_put_ls_mkdir_rename_rm_work_inside_the_folder() {
    if !have_ssh() {
        return;
    }
    let dir = setup("sftp-ops");
    let root = dir.join("root");
    std::fs::write(root.join("hello.txt"), "hello from the server\n").unwrap();
    // Bigger than one read, so the client's pipelined reads and writes are exercised.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("local/big.bin"), &big).unwrap();
    let outs = serve(
        &dir,
        vec![
            "ls\nget hello.txt got.txt\nput big.bin up.bin\nmkdir sub\nrename up.bin sub/moved.bin\n\
             ls sub\nget sub/moved.bin back.bin\nrm hello.txt\n"
                .into(),
        ],
    );
    let out = &outs[0];
    assert_eq!(out.status.code(), Some(0), "{}", describe(out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("hello.txt"),
        "ls lists the file: {}",
        describe(out)
    );
    assert!(stdout.contains("moved.bin"), "ls sub: {}", describe(out));
    assert_eq!(
        std::fs::read_to_string(dir.join("local/got.txt")).unwrap(),
        "hello from the server\n"
    );
    assert_eq!(std::fs::read(root.join("sub/moved.bin")).unwrap(), big);
    assert_eq!(std::fs::read(dir.join("local/back.bin")).unwrap(), big);
    assert!(!root.join("up.bin").exists());
    assert!(!root.join("hello.txt").exists(), "rm removed it");
}

fn exists(p: PathBuf) -> bool {
    p.symlink_metadata().is_ok()
}

#[test]
fn paths_outside_the_folder_are_refused() {
    if !have_ssh() {
        return;
    }
    let dir = setup("sftp-escape");
    let root = dir.join("root");
    std::fs::write(dir.join("secret.txt"), "not served\n").unwrap();
    std::fs::create_dir(root.join("inner")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("link-out")).unwrap();
    std::os::unix::fs::symlink("..", root.join("dir-out")).unwrap();
    std::fs::write(root.join("inner/data.txt"), "inside\n").unwrap();
    std::os::unix::fs::symlink("inner/data.txt", root.join("link-in")).unwrap();
    std::fs::write(dir.join("local/up.txt"), "upload\n").unwrap();
    // Each command is run on its own (a leading '-' lets the batch go on past a failure).
    let outs = serve(
        &dir,
        vec![
            "-get ../../etc/passwd passwd\n-get ../secret.txt s1\n-get link-out s2\n\
             -get dir-out/secret.txt s3\n-get /../secret.txt s4\n-put up.txt ../up.txt\n\
             -put up.txt dir-out/up.txt\n-mkdir ../made\n-rm dir-out/secret.txt\n\
             -rename link-out ../moved\n-ls dir-out\n-symlink inner/x inner/y\n"
                .into(),
            // Absolute paths are the folder's: /etc/passwd is root/etc/passwd, absent.
            "get /etc/passwd abs\n".into(),
            // And a link that stays inside is followed as usual.
            "get link-in ok.txt\n".into(),
        ],
    );
    let refused = &outs[0];
    assert_eq!(refused.status.code(), Some(0), "{}", describe(refused));
    for f in ["passwd", "s1", "s2", "s3", "s4"] {
        assert!(
            !exists(dir.join(format!("local/{f}"))),
            "{f} was fetched: {}",
            describe(refused)
        );
    }
    assert!(!exists(dir.join("up.txt")), "put went outside");
    assert!(!exists(dir.join("made")));
    assert!(!exists(dir.join("moved")));
    assert!(exists(dir.join("secret.txt")), "rm through a link out");
    assert!(exists(root.join("link-out")), "the link was renamed out");
    assert!(!exists(root.join("inner/y")), "a symlink was made");
    let err = text(&refused.stderr);
    assert!(
        err.contains("Permission denied"),
        "refusals say so: {}",
        describe(refused)
    );
    // The scratch folder above the root holds authorized_keys: ls through the link out
    // would list it.
    assert!(
        !text(&refused.stdout).contains("authorized_keys"),
        "ls through the link: {}",
        describe(refused)
    );
    let abs = &outs[1];
    assert_ne!(abs.status.code(), Some(0), "{}", describe(abs));
    assert!(!exists(dir.join("local/abs")));
    assert!(text(&abs.stderr).contains("not found"), "{}", describe(abs));
    let inside = &outs[2];
    assert_eq!(inside.status.code(), Some(0), "{}", describe(inside));
    assert_eq!(
        std::fs::read_to_string(dir.join("local/ok.txt")).unwrap(),
        "inside\n"
    );
}
