//! The integration tests of the benchmark suite, in one binary like every crate's (linking
//! one test binary per file dominated CI time): each file is a module named after what it
//! pins down; a new file joins as a module here rather than as a binary of its own.

mod loadgen;
mod run_options;
mod ws_echo;
