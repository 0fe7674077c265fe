//! The Torsion client.
