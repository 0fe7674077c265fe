//! Conch for Torsion, as Twisted's `twisted.conch`: SSH (server and client, built on the
//! russh implementation, never hand-written cryptography), telnet with option negotiation,
//! and the manhole, a console into the running program.
//!
//! Authentication goes through [`torsion_cred`], the same portal, realms and checkers the
//! mail servers use.

pub mod client;
pub mod keys;
pub mod known_hosts;
pub mod manhole;
mod openssh_key;
pub mod recvline;
pub mod sftp;
pub mod ssh;
pub mod telnet;
