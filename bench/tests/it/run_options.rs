//! bench/run's command line and the callgrind arithmetic it shares with bench/profile
//! (bench/callgrind.sh): what can be checked without running a benchmark.

use std::io::Write;
use std::process::Command;

const RUN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/run");
const CALLGRIND: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/callgrind.sh");

/// bench/run with `args`: its exit code and standard error.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("bash")
        .arg(RUN)
        .args(args)
        .output()
        .expect("bash runs bench/run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A function of bench/callgrind.sh called with `args`: its exit code and standard output.
fn callgrind(function: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(". {CALLGRIND}; {function} \"$@\""))
        .arg("callgrind.sh")
        .args(args)
        .output()
        .expect("bash runs bench/callgrind.sh");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

#[test]
fn only_refuses_scenarios_that_do_not_exist() {
    for bad in ["16", "0", "12,16", "x"] {
        let (code, err) = run(&["--only", bad]);
        assert_eq!(code, Some(2), "--only {bad}: {err}");
        assert!(err.contains("1 to 15"), "--only {bad}: {err}");
    }
}

#[test]
fn help_names_the_instruction_count_scenario() {
    let out = Command::new("bash")
        .args([RUN, "--help"])
        .output()
        .expect("bash runs bench/run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Scenario 12"), "{help}");
    assert!(help.contains("callgrind"), "{help}");
}

#[test]
fn instructions_per_operation_are_the_difference_over_the_operations() {
    assert_eq!(
        callgrind("cg_per", &["1000", "21000", "10"]),
        (Some(0), "2000".into())
    );
    // Rounded, and a count that went down (noise) is reported as it is.
    assert_eq!(
        callgrind("cg_per", &["1000", "1015", "10"]),
        (Some(0), "2".into())
    );
    assert_eq!(
        callgrind("cg_per", &["1000", "900", "10"]),
        (Some(0), "-10".into())
    );
    // A missing total or no operations between the two runs is an error, not a figure.
    assert_eq!(callgrind("cg_per", &["", "900", "10"]).0, Some(1));
    assert_eq!(callgrind("cg_per", &["1000", "900", "0"]).0, Some(1));
}

#[test]
fn the_total_is_read_from_the_profile() {
    let dir = std::env::temp_dir().join(format!("torsion-cg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let with_totals = dir.join("a.out");
    let mut f = std::fs::File::create(&with_totals).unwrap();
    writeln!(
        f,
        "# callgrind format\nevents: Ir\nsummary: 12345\nfn=(1) main\n3 7\ntotals: 12345"
    )
    .unwrap();
    let with_summary = dir.join("b.out");
    std::fs::write(&with_summary, "events: Ir\nsummary: 678\n").unwrap();
    let empty = dir.join("c.out");
    std::fs::write(&empty, "").unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    assert_eq!(
        callgrind("cg_total", &[&path(&with_totals)]),
        (Some(0), "12345".into())
    );
    assert_eq!(
        callgrind("cg_total", &[&path(&with_summary)]),
        (Some(0), "678".into())
    );
    assert_eq!(callgrind("cg_total", &[&path(&empty)]).0, Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}
