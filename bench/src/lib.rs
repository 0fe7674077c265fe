//! The benchmark suite's shared pieces: a tiny command-line reader and the runtime every peer
//! uses (tokio's current-thread runtime, so each server gets exactly one core, like Torsion's
//! reactor).
//!
//! The suite itself is driven by `bench/run`; the binaries in `src/bin/` are the load
//! generator (`loadgen`), the peers written for the benchmark (`tokio_echo`, `hyper_hello`,
//! `axum_hello`), the TLS echo pair of scenario 13 (`tls_echo`), the in-process micro
//! benchmarks (`micro`), and for DNS the kernel's floor (`dns_floor`, a responder doing
//! nothing but copy) and a batched load generator (`dns_load`).
//!
//! ```
//! let args = ["--port", "9000", "--quick"].map(String::from);
//! assert_eq!(torsion_bench::arg_in(&args, "--port", 0u16), 9000);
//! assert_eq!(torsion_bench::arg_in(&args, "--size", 64usize), 64);
//! assert!(torsion_bench::flag_in(&args, "--quick"));
//! ```
#![forbid(unsafe_code)]

use std::str::FromStr;

/// The value after `name` in `args`, parsed; `default` when absent. Exits with status 2 and
/// a message when the value does not parse.
pub fn arg_in<T: FromStr>(args: &[String], name: &str, default: T) -> T {
    match args.iter().position(|a| a == name) {
        None => default,
        Some(i) => match args.get(i + 1).map(|v| v.parse()) {
            Some(Ok(v)) => v,
            _ => {
                eprintln!("error: {name} needs a valid value");
                std::process::exit(2)
            }
        },
    }
}

/// Whether `name` appears in `args`.
pub fn flag_in(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

/// [`arg_in`] over the process's own arguments.
pub fn arg<T: FromStr>(name: &str, default: T) -> T {
    arg_in(&std::env::args().skip(1).collect::<Vec<_>>(), name, default)
}

/// [`flag_in`] over the process's own arguments.
pub fn flag(name: &str) -> bool {
    flag_in(&std::env::args().skip(1).collect::<Vec<_>>(), name)
}

/// A tokio current-thread runtime with I/O and timers: one thread, one core.
pub fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The page every HTTP hello contender serves, the same bytes as `examples/hello_web.rs`.
pub const HELLO_PAGE: &str = "<html><body>Hello Twisted</body></html>";
