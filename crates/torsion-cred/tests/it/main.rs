//! The integration tests of torsion-cred, in one binary: each file is a module named after
//! the behaviour it pins down.

mod hashes;
mod interop;
mod password_db;
mod portal;
mod support;
