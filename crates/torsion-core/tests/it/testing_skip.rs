//! `testing::skip`: a skip is recorded in `$TORSION_SKIP_LOG`, and a missing peer fails the
//! test on CI while a missing host feature does not. Each case runs this test binary again
//! on one `#[ignore]`d child test, with its own environment.

use std::process::Command;

use torsion::testing::{skip, Missing};

/// Runs the ignored child test `name` in a new process of this binary, with `CI` set or
/// unset and a fresh skip log; returns whether it passed, its stderr and the log's text.
fn run_child(name: &str, ci: Option<&str>) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!(
        "torsion-skip-{}-{name}-{}",
        std::process::id(),
        ci.unwrap_or("unset")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("skips");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "--nocapture", "--test-threads=1"])
        .arg(format!("testing_skip::{name}"))
        .env("TORSION_SKIP_LOG", &log)
        .env_remove("CI");
    if let Some(v) = ci {
        cmd.env("CI", v);
    }
    let out = cmd.output().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        logged,
    )
}

#[test]
#[ignore = "run by the tests below, in a child process"]
fn child_missing_peer() {
    skip(Missing::Peer, "frobnicator is not installed")
}

#[test]
#[ignore = "run by the tests below, in a child process"]
fn child_missing_host_feature() {
    skip(Missing::HostFeature, "no IPv6 loopback")
}

#[test]
fn a_skip_outside_ci_passes_and_is_recorded_and_printed() {
    let (passed, stderr, log) = run_child("child_missing_peer", None);
    assert!(passed, "{stderr}");
    assert_eq!(
        log,
        "testing_skip::child_missing_peer: frobnicator is not installed\n"
    );
    assert!(
        stderr.contains("*** SKIPPED testing_skip::child_missing_peer: frobnicator"),
        "{stderr}"
    );
}

#[test]
fn a_missing_peer_on_ci_fails_the_test() {
    let (passed, stderr, log) = run_child("child_missing_peer", Some("true"));
    assert!(!passed, "{stderr}");
    assert!(
        stderr.contains("missing on CI: frobnicator is not installed"),
        "{stderr}"
    );
    assert_eq!(log, "", "a failure is not a skip");
}

#[test]
fn a_missing_host_feature_on_ci_is_still_a_skip() {
    let (passed, stderr, log) = run_child("child_missing_host_feature", Some("true"));
    assert!(passed, "{stderr}");
    assert_eq!(
        log,
        "testing_skip::child_missing_host_feature: no IPv6 loopback\n"
    );
}

#[test]
fn ci_set_to_false_is_not_ci() {
    let (passed, stderr, _) = run_child("child_missing_peer", Some("false"));
    assert!(passed, "{stderr}");
}
