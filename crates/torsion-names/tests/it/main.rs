//! The integration tests of torsion-names, in one binary: each module pins down one side.

mod client;
