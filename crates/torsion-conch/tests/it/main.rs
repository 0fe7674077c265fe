//! torsion-conch's integration tests: telnet against a real client, the line editor and the
//! manhole console; OpenSSH's `ssh` against the Torsion SSH server (key and password logins,
//! exec, shell with a pty, refused forwarding), hostile clients (floods, stalls, oversized
//! packets, wrong keys), and properties of the authorized_keys parser; paramiko against the
//! server; the Torsion SSH client against a throwaway OpenSSH sshd and against the server,
//! and the known_hosts parser and policy.

mod known_hosts;
mod manhole;
mod manhole_ssh;
mod sftp;
mod ssh_client;
mod ssh_hostile;
mod ssh_interop;
mod ssh_paramiko;
mod ssh_props;
mod support;
mod telnet;
