//! The integration tests of torsion-names, in one binary: each file is a module named after
//! the part it pins down.

mod authority;
mod interop;
mod server;
