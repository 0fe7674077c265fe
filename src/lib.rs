//! Helpers shared by the seed programs in `examples/`: logging set-up, the error a program
//! stops with at start-up, and the per-user data folder, so each example shows only its
//! Twisted twin. Each example reads its command line with `clap` (`--help` lists its
//! options and their defaults).
//!
//! ```
//! use torsion_examples::startup_error;
//!
//! let failure = startup_error("--path /nowhere: no such folder");
//! // `main() -> Result<(), Failure>` prints `Error: ` and this one line, and exits with 1.
//! assert_eq!(format!("{failure:?}"), "--path /nowhere: no such folder");
//! ```
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use torsion::Failure;

/// Sends log output (`torsion::log`, `tracing`) to standard error, at the level given by
/// `RUST_LOG`-style `TORSION_LOG` (default `info`). Colours only when standard error is a
/// terminal: a log redirected to a file holds no escape codes.
pub fn init_logging() {
    let level = std::env::var("TORSION_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level)
        .with_target(false)
        .log_internal_errors(false)
        .try_init();
}

/// A failure carrying only `message`: what an example's `main` returns when it cannot start
/// (`Error: <message>` on standard error, exit status 1). Say the cause, and the fix where
/// one is known.
#[track_caller]
pub fn startup_error(message: impl Into<String>) -> Failure {
    Failure::from_boxed(message.into().into())
}

/// Reads a time scale (`--scale`): a finite number, zero or more. For clap's `value_parser`.
pub fn scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!(
            "{text:?} is not a scale (a number, zero or more, such as 0.5)"
        )),
    }
}

/// The folder where an example keeps its files when not told where: `$XDG_DATA_HOME/torsion`,
/// or `~/.local/share/torsion` (the XDG base directory default). It may not exist yet: the
/// example creates it (`std::fs::create_dir_all`) once it knows it will write there.
pub fn data_dir() -> Result<PathBuf, Failure> {
    data_dir_from(
        std::env::var_os("XDG_DATA_HOME").as_deref().map(Path::new),
        std::env::var_os("HOME").as_deref().map(Path::new),
    )
    .ok_or_else(|| startup_error("no folder for data: set XDG_DATA_HOME or HOME"))
}

/// [`data_dir`]'s choice, without touching the environment or the disk. A relative
/// `XDG_DATA_HOME` is ignored, as the XDG specification says.
fn data_dir_from(xdg_data_home: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    match (xdg_data_home, home) {
        (Some(xdg), _) if xdg.is_absolute() => Some(xdg.join("torsion")),
        (_, Some(home)) if !home.as_os_str().is_empty() => Some(home.join(".local/share/torsion")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_folder_follows_xdg() {
        let at = |xdg: Option<&str>, home: Option<&str>| {
            data_dir_from(xdg.map(Path::new), home.map(Path::new))
        };
        assert_eq!(
            at(Some("/data"), Some("/home/ann")),
            Some(PathBuf::from("/data/torsion"))
        );
        assert_eq!(
            at(None, Some("/home/ann")),
            Some(PathBuf::from("/home/ann/.local/share/torsion"))
        );
        assert_eq!(
            at(Some("relative"), Some("/home/ann")),
            Some(PathBuf::from("/home/ann/.local/share/torsion"))
        );
        assert_eq!(at(None, None), None);
        assert_eq!(at(None, Some("")), None);
    }

    #[test]
    fn scales_are_finite_and_not_negative() {
        assert_eq!(scale("0.5"), Ok(0.5));
        assert_eq!(scale("0"), Ok(0.0));
        for bad in ["-1", "NaN", "inf", "fast", ""] {
            assert!(scale(bad).is_err(), "{bad}");
        }
    }
}

/// The commands of Twisted's AMP howto (`doc/core/howto/listings/amp/ampserver.py`), shared
/// by `examples/amp_server.rs` and `examples/amp_client.rs` as the howto's client imports
/// them from its server. Names of commands and arguments are the howto's, so Twisted's own
/// client and server work against the examples unchanged.
pub mod amp_math {
    torsion::amp::command! {
        /// `Sum(a: Integer, b: Integer) -> total: Integer`.
        pub struct Sum { a: i64, b: i64 }
        response SumResult { total: i64 }
    }

    torsion::amp::command! {
        /// `Divide(numerator: Integer, denominator: Integer) -> result: Float`; division by
        /// zero is answered with the error code `ZERO_DIVISION`.
        pub struct Divide { numerator: i64, denominator: i64 }
        response DivideResult { result: f64 }
        errors ["ZERO_DIVISION"]
    }
}
