//! FTP for Torsion, as Twisted's `twisted.protocols.ftp`: a server over a folder (anonymous
//! read-only access and users through [`torsion_cred`]), explicit FTPS (AUTH TLS, PROT P),
//! and a client.
//!
//! Built in layers, as every protocol battery here is:
//!
//! - [`command`] and [`reply`]: FTP's commands and replies, parsed and written without I/O.
//! - [`fs`]: the served folder: client paths resolved inside the root (`..` and symbolic
//!   links included) and the listing formats.
//! - [`server_core`]: the control connection's state machine (I/O-free).
//! - [`server`]: [`FtpFactory`] and its [`Ftp`] protocol, with passive (and, when asked
//!   for, active) data connections that stream files in bounded chunks.
//! - [`client`]: [`FtpClient`], Twisted's `FTPClient`, with Deferreds.
#![forbid(unsafe_code)]

pub mod client;
pub mod command;
pub mod fs;
pub mod reply;
pub mod server;
pub mod server_core;

pub use client::{FtpClient, FtpError, ListEntry};
pub use command::{parse_command, Command};
pub use fs::Root;
pub use reply::Reply;
pub use server::{Ftp, FtpFactory, FtpRealm, FtpUser};
pub use server_core::{Event, Options, ServerCore};
