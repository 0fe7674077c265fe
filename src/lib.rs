//! Helpers shared by the seed programs in `examples/`: a tiny command-line reader and logging
//! set-up, so each example shows only its Twisted twin.
//!
//! ```
//! use torsion_examples::Args;
//!
//! let args = Args::parse_from(["--port", "8080", "--blocking"]).unwrap();
//! assert_eq!(args.value("--port", 1033u16).unwrap(), 8080);
//! assert!(args.flag("--blocking"));
//! assert_eq!(args.value("--scale", 1.0f64).unwrap(), 1.0);
//! ```
#![forbid(unsafe_code)]

use std::str::FromStr;

/// Command-line arguments of the form `--name value`, `--flag`, and positional values.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pairs: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl Args {
    /// Reads the process's arguments; prints a usage error and exits with status 2 on a
    /// malformed command line.
    pub fn from_env() -> Args {
        Args::parse_from(std::env::args().skip(1)).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        })
    }

    /// Reads arguments from a list (for tests).
    pub fn parse_from<I, S>(args: I) -> Result<Args, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut out = Args::default();
        let mut it = args.into_iter().map(Into::into).peekable();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                if name.is_empty() {
                    out.positional.extend(it.by_ref());
                    break;
                }
                if let Some((k, v)) = name.split_once('=') {
                    out.pairs.push((format!("--{k}"), Some(v.to_owned())));
                } else {
                    let value = match it.peek() {
                        Some(next) if !next.starts_with("--") => it.next(),
                        _ => None,
                    };
                    out.pairs.push((a.clone(), value));
                }
            } else {
                out.positional.push(a);
            }
        }
        Ok(out)
    }

    /// The value of `--name`, parsed, or `default` when absent.
    pub fn value<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.pairs.iter().rev().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, None)) => Err(format!("{name} needs a value")),
            Some((_, Some(v))) => v
                .parse()
                .map_err(|_| format!("{name}: cannot understand {v:?}")),
        }
    }

    /// The value of `--name`, or exits with a usage error.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        self.value(name, default).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        })
    }

    /// The value of `--name` as text, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// True when `--name` is given (as a flag or with a value).
    pub fn flag(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// The arguments that are not `--name value` pairs.
    pub fn positional(&self) -> &[String] {
        &self.positional
    }
}

/// Sends log output (`torsion::log`, `tracing`) to standard error, at the level given by
/// `RUST_LOG`-style `TORSION_LOG` (default `info`).
pub fn init_logging() {
    let level = std::env::var("TORSION_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .log_internal_errors(false)
        .try_init();
}
