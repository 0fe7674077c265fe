//! The integration tests of torsion-names, in one binary: each module is named after the part
//! it pins down.

mod authority;
mod client;
mod interop;
mod server;
