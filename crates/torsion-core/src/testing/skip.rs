//! Skipping a test loudly (trial's `SkipTest`).
//!
//! `cargo test` has no "skipped" outcome: a test that returns early reports `ok`, and what it
//! printed is swallowed by the output capture. [`skip`] makes a skip visible where people look
//! and impossible to miss where it matters:
//!
//! - it prints `*** SKIPPED <test>: <reason> ***` on standard error (shown with `--nocapture`);
//! - when the environment variable `TORSION_SKIP_LOG` names a file, it appends one line
//!   `<test>: <reason>` to it — the project's test command sets it and prints the list at the
//!   end of the run;
//! - when a [`Missing::Peer`] is missing and the environment variable `CI` is set (to anything
//!   but `""`, `0` or `false`), it panics, failing the test: on CI the test command installs
//!   every peer, so a missing one is a broken machine, not a reason to pass.

use std::fmt::Display;
use std::io::Write;

/// What a skipped test lacks, which decides whether a skip may pass on CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A peer program the test command installs (python3 and Twisted, curl, OpenSSL,
    /// HAProxy, ngIRCd, PostgreSQL, ...): missing on CI fails the test.
    Peer,
    /// Something of the host's that no install provides (an IPv6 loopback, multicast on
    /// the loopback interface): the test is skipped even on CI.
    HostFeature,
}

/// Skips the calling test, loudly (trial's `SkipTest`); the caller returns right after:
/// `return skip(Missing::Peer, "...")`.
///
/// `cargo test` has no "skipped" outcome: a test that returns early reports `ok`, and what
/// it printed is swallowed by the output capture. So `skip`:
///
/// - prints `*** SKIPPED <test>: <reason> ***` on standard error (shown with `--nocapture`);
/// - when the environment variable `TORSION_SKIP_LOG` names a file, appends one line
///   `<test>: <reason>` to it — the project's test command sets it and lists the skips at
///   the end of the run;
/// - when a [`Missing::Peer`] is missing and the environment variable `CI` is set (to
///   anything but `""`, `0` or `false`), panics instead, failing the test: on CI the test
///   command installs every peer, so a missing one is a broken machine, not a pass.
///
/// The test's name is the current thread's name, which is how libtest names the thread a
/// test runs on.
///
/// ```
/// use torsion::testing::{skip, Missing};
///
/// fn needs_ipv6() {
///     if std::net::TcpListener::bind("[::1]:0").is_err() {
///         return skip(Missing::HostFeature, "no IPv6 loopback on this machine");
///     }
///     // ... the test proper ...
/// }
/// # needs_ipv6();
/// ```
#[doc(alias = "SkipTest")]
#[track_caller]
pub fn skip(missing: Missing, reason: impl Display) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if missing == Missing::Peer && on_ci() {
        panic!(
            "{test} needs a peer that the test command installs, and it is missing on CI: {reason}"
        );
    }
    eprintln!("\n*** SKIPPED {test}: {reason} ***\n");
    record(&format!("{test}: {reason}\n"));
}

/// Whether the environment says this is a CI run.
fn on_ci() -> bool {
    is_ci(std::env::var("CI").ok().as_deref())
}

/// Whether a value of `CI` means a CI run: set, and not `""`, `0` or `false`.
fn is_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Appends `line` to `$TORSION_SKIP_LOG`, if set. One `write` of one short line on a file
/// opened for appending, so lines from tests running in parallel processes do not interleave.
fn record(line: &str) {
    let Some(path) = std::env::var_os("TORSION_SKIP_LOG") else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "torsion: could not record a skip in {}: {e}",
            std::path::Path::new(&path).display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::is_ci;

    #[test]
    fn ci_is_any_value_but_empty_zero_or_false() {
        assert!(is_ci(Some("true")));
        assert!(is_ci(Some("1")));
        assert!(!is_ci(Some("")));
        assert!(!is_ci(Some("0")));
        assert!(!is_ci(Some("false")));
        assert!(!is_ci(None));
    }
}
