//! torsion-news's integration tests: the NNTP state machine, the folder store, the protocol
//! over in-memory transports (idle time-out, AUTHINFO), properties of the parser and core,
//! hostile clients, Torsion's client against the server, and interop with Python's nntplib.

mod client;
mod core;
mod hostile;
mod interop;
mod props;
mod protocol;
mod store;
mod support;
