//! Integration tests of torsion-conch: telnet against a real client, the line editor and the
//! manhole console.

mod manhole;
mod support;
mod telnet;
