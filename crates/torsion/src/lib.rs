//! # Torsion: Twisted's event-driven networking, in Rust
//!
//! Torsion is Twisted's programming model — a [reactor](mod@reactor) that calls your code when
//! events happen, [Deferreds](defer) for results you don't have yet, and [protocols](protocol),
//! [factories](protocol::Factory) and [transports](transport) that keep the meaning of bytes
//! apart from moving them — written as idiomatic, fast Rust on tokio.
//!
//! This is the one crate to depend on. The core is always here; each battery is a module
//! behind a feature of the same name, as Twisted's packages are:
//!
//! | feature | module | Twisted |
//! |---|---|---|
//! | (always) | the crate root: [`reactor`](mod@reactor), [`defer`], [`protocol`], [`transport`], [`protocols::basic`], [`endpoints`], [`testing`], ... | `twisted.internet`, `twisted.protocols`, `twisted.trial` |
//! | `tls` (default) | [`tls`] | `twisted.internet.ssl` |
//! | `web` (default) | `web`: `Site`, `Resource`, `static_file::File`, `client::Agent` | `twisted.web` |
//! | `db` | `db`: `ConnectionPool` | `twisted.enterprise.adbapi` |
//! | `words` | `words`: `irc::IrcClient`, `service` (the IRC server) | `twisted.words` |
//! | `amp` | `amp`: `Amp`, `Locator`, `command!` | `twisted.protocols.amp` |
//! | `names` | `names`: `Resolver`, `Query`, `Answer` | `twisted.names` |
//! | `cred` | `cred`: `Portal`, `Realm`, `FilePasswordDb`, `UsernamePassword` | `twisted.cred` |
//! | `mail` | `mail`: `SmtpFactory`, `MessageDelivery`, `MaildirDomain` | `twisted.mail` |
//! | `conch` | `conch`: SSH, telnet, the manhole | `twisted.conch` |
//! | `news` | `news`: `NntpFactory`, `Store`, `NntpClient` | `twisted.news` |
//! | `ftp` | `ftp`: `FtpFactory`, `FtpRealm`, `FtpClient` | `twisted.protocols.ftp` |
//! | `full` | all of the above | |
//!
//! ```toml
//! [dependencies]
//! torsion = { path = "../torsion/crates/torsion", features = ["full"] }
//! ```
//!
//! The seed's echo server, complete:
//!
//! ```no_run
//! use torsion::{factory, reactor, Protocol, Transport};
//!
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     fn data_received(&mut self, transport: &Transport, data: &[u8]) {
//!         transport.write(data);
//!     }
//! }
//!
//! fn main() -> Result<(), torsion::Failure> {
//!     reactor().listen_tcp(1033, factory(|| Echo))?;
//!     reactor().run()
//! }
//! ```
//!
//! And a web server, the resource tree of `twisted.web` (feature `web`):
//!
//! ```no_run
//! # #[cfg(feature = "web")]
//! # fn main() -> Result<(), torsion::Failure> {
//! use torsion::reactor;
//! use torsion::web::{Request, Resource, Site};
//!
//! struct Hello;
//!
//! impl Resource for Hello {
//!     fn is_leaf(&self) -> bool {
//!         true
//!     }
//!     fn render_get(&self, _request: &Request) -> torsion::web::Render {
//!         "<html>Hello, world!</html>".into()
//!     }
//! }
//!
//! reactor().listen_tcp(8080, Site::new(Hello))?;
//! reactor().run()
//! # }
//! # #[cfg(not(feature = "web"))]
//! # fn main() {}
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[doc(inline)]
pub use torsion_core::*;

/// The web server and client: Twisted's `twisted.web` (feature `web`).
///
/// A [`Site`](web::Site) serves a tree of [`Resource`](web::Resource)s and is a factory, so it
/// listens like any protocol; [`static_file::File`](web::static_file::File) serves a folder;
/// [`client::Agent`](web::client::Agent) is the HTTP client.
#[cfg(feature = "web")]
pub mod web {
    #[doc(inline)]
    pub use torsion_web::*;
}

/// Databases without blocking the reactor: Twisted's `adbapi` (feature `db`).
///
/// A [`ConnectionPool`](db::ConnectionPool) runs blocking calls (SQLite, PostgreSQL) in worker
/// threads and hands results back as Deferreds.
#[cfg(feature = "db")]
pub mod db {
    #[doc(inline)]
    pub use torsion_db::*;
}

/// Chat protocols: Twisted Words (feature `words`): the IRC client,
/// [`irc::IrcClient`](words::irc::IrcClient), and the IRC server, [`service`](words::service).
#[cfg(feature = "words")]
pub mod words {
    #[doc(inline)]
    pub use torsion_words::*;
}

/// AMP, Twisted's Asynchronous Messaging Protocol (feature `amp`): typed commands
/// ([`command!`](amp::command!)), [`Amp`](amp::Amp) with its [`Locator`](amp::Locator) of
/// responders, and [`call_remote`](amp::AmpSender::call_remote), wire-compatible with
/// `twisted.protocols.amp`.
#[cfg(feature = "amp")]
pub mod amp {
    #[doc(inline)]
    pub use torsion_amp::*;
}

/// DNS, Twisted's `twisted.names` (feature `names`): the [`Resolver`](names::Resolver) trait
/// with its typed lookups, and the failures they end with.
#[cfg(feature = "names")]
pub mod names {
    #[doc(inline)]
    pub use torsion_names::*;
}

/// Authentication, Twisted's `twisted.cred` (feature `cred`): a [`Portal`](cred::Portal) logs
/// users in through a checker per kind of credentials (passwords against argon2id or bcrypt
/// hashes in a [`FilePasswordDb`](cred::FilePasswordDb), verified in worker threads) and a
/// [`Realm`](cred::Realm) that hands out typed avatars.
#[cfg(feature = "cred")]
pub mod cred {
    #[doc(inline)]
    pub use torsion_cred::*;
}

/// Mail, Twisted's `twisted.mail` (feature `mail`): the ESMTP server
/// ([`SmtpFactory`](mail::SmtpFactory)) with STARTTLS and AUTH through [`cred`], delivering
/// through a [`MessageDelivery`](mail::MessageDelivery) such as
/// [`MaildirDomain`](mail::MaildirDomain) (atomic Maildir delivery).
#[cfg(feature = "mail")]
pub mod mail {
    #[doc(inline)]
    pub use torsion_mail::*;
}

/// News, Twisted's `twisted.news` (feature `news`): the NNTP server
/// ([`NntpFactory`](news::NntpFactory)) over a [`Store`](news::Store) of groups (a folder,
/// one file per article), with AUTHINFO through [`cred`], and the NNTP client
/// ([`NntpClient`](news::NntpClient)) with Deferreds.
#[cfg(feature = "news")]
pub mod news {
    #[doc(inline)]
    pub use torsion_news::*;
}

/// FTP, Twisted's `twisted.protocols.ftp` (feature `ftp`): the server
/// ([`FtpFactory`](ftp::FtpFactory)) over a folder, for anonymous users and users logged in
/// through [`cred`] ([`FtpRealm`](ftp::FtpRealm)), with passive data connections and
/// explicit FTPS; and the client.
#[cfg(feature = "ftp")]
pub mod ftp {
    #[doc(inline)]
    pub use torsion_ftp::*;
}

/// Conch, Twisted's `twisted.conch` (feature `conch`): an SSH server on russh whose session
/// channels are served by Torsion protocols, logins through cred, and the `authorized_keys`
/// checker; an SSH client (`client`) checking host keys against `known_hosts`.
#[cfg(feature = "conch")]
pub mod conch {
    #[doc(inline)]
    pub use torsion_conch::*;
}
