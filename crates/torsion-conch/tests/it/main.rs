//! torsion-conch's integration tests: telnet against a real client, the line editor and the
//! manhole console; OpenSSH's `ssh` against the Torsion SSH server (key and password logins,
//! exec, shell with a pty, refused forwarding), hostile clients (floods, stalls, oversized
//! packets, wrong keys), and properties of the authorized_keys parser.

mod manhole;
mod sftp;
mod ssh_hostile;
mod ssh_interop;
mod ssh_props;
mod support;
mod telnet;
