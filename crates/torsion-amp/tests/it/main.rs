//! The integration tests of torsion-amp, in one binary: each file is a module named after
//! the behaviour it pins down.

mod amp_protocol;
mod amp_switch;
mod amp_tls;
mod amp_twisted;
mod amp_types;
mod amp_wire;
mod support;
