//! torsion-mail's integration tests: the SMTP state machine, the protocol over in-memory
//! transports, properties of the parser, hostile clients, idle timeouts and write backpressure, and interop with Python's smtplib
//! and swaks.

mod imap_client;
mod imap_interop;
mod imap_props;
mod imap_protocol;
mod maildir_commit;
mod pop3_client;
mod pop3_interop;
mod pop3_server;
mod smtp_client;
mod smtp_core;
mod smtp_hostile;
mod smtp_interop;
mod smtp_props;
mod smtp_protocol;
mod smtp_timeout;
mod support;
