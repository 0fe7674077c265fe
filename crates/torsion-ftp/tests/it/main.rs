//! The FTP battery's integration tests.

mod support;

mod client;
mod core_rules;
mod hostile;
mod interop;
