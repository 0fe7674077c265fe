//! The integration tests of torsion-db, in one binary (linking one test binary per file
//! dominated CI time): each file is a module named after the behaviour it pins down, and
//! `support` holds what they share.

mod support;

mod postgres;
mod sqlite;
