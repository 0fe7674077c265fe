//! torsion-conch's integration tests: OpenSSH's `ssh` against the Torsion SSH server (key and
//! password logins, exec, shell with a pty, refused forwarding), hostile clients (floods,
//! stalls, oversized packets, wrong keys), and properties of the authorized_keys parser.

mod ssh_hostile;
mod ssh_interop;
mod ssh_props;
mod support;
