//! Runs seed 001's `db_demo` (`cargo run --example db_demo`) and checks what it prints.

use std::process::Command;

#[test]
fn db_demo_runs_queries_in_threads() {
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "db_demo"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot start cargo run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "db_demo exited with {}; stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "inserted 2 users\njoe is 42 years old\n");
}

#[test]
fn db_demo_reports_a_bad_database() {
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "db_demo", "--"])
        .args(["--db", "sqlite:/nonexistent-torsion-dir/demo.db"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot start cargo run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.starts_with("Error: cannot connect to sqlite: /nonexistent-torsion-dir/demo.db"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
