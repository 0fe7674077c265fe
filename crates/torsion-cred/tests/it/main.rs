//! The integration tests of torsion-cred, in one binary: each file is a module named after
//! the behaviour it pins down.

mod hashes;
mod password_db;
mod support;
