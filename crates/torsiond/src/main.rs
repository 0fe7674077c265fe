//! The `torsiond` binary: [`torsiond::run`] with the built-in plugins.

fn main() -> std::process::ExitCode {
    torsiond::run(torsiond::builtin_plugins(), std::env::args_os())
}
