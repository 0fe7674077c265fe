//! Mail for Torsion, as Twisted's `twisted.mail`: today, an ESMTP server delivering into
//! Maildir folders, with STARTTLS and AUTH through [`torsion_cred`].
//!
//! The server is built in two layers, as every protocol battery here is:
//!
//! - [`command`] and [`reply`]: SMTP's commands and replies, parsed and written without I/O.
//! - [`server_core`]: the server's state machine, bytes in, replies and [`Event`]s out; it
//!   enforces the order of commands, PIPELINING, the line length limit (1,000 bytes with
//!   CRLF), `SIZE` while the body arrives, the recipient cap, dot-unstuffing and AUTH's
//!   exchanges. Every test of the protocol's rules runs against it without a socket.
//! - [`delivery`]: where mail goes, Twisted's `IMessageDelivery` ([`MessageDelivery`]) and
//!   `IMessage` ([`Message`]).
//! - [`maildir`]: [`MaildirDomain`], one domain's users with a Maildir each, written
//!   atomically (`tmp/`, `fsync`, rename into `new/`).
//! - [`smtp`]: [`SmtpFactory`] and its [`Smtp`] protocol, the thin layer that moves bytes,
//!   asks the delivery, logs in through a [`Portal`](torsion_cred::Portal) and starts TLS.
//! - IMAP4rev1 over the same Maildirs: [`imap_parse`] (commands framed and parsed without
//!   I/O, literal limits), [`imap_message`] (sections, ENVELOPE, BODYSTRUCTURE),
//!   [`imap_store`] (Maildir++ folders, flags in file names, UIDs), [`imap`] (the server,
//!   [`ImapFactory`]) and [`imap_client`] ([`ImapClient`], Deferreds as Twisted's
//!   `IMAP4Client`).
//!
//! # Example
//!
//! A server for `example.org` on a test connection, without a socket:
//!
//! ```
//! use torsion::testing::StringTransport;
//! use torsion::Protocol;
//! use torsion::Factory;
//! use torsion_mail::{MaildirDomain, SmtpFactory};
//!
//! let root = std::env::temp_dir().join(format!("mail-lib-doc-{}", std::process::id()));
//! let domain = MaildirDomain::new("example.org", &root).unwrap();
//! domain.add_user("alice").unwrap();
//! let factory = SmtpFactory::new("mx.example.org", domain);
//!
//! let st = StringTransport::new();
//! let t = st.transport();
//! let mut smtp = factory.build_protocol(&t.get_peer()).unwrap();
//! smtp.connection_made(&t);
//! smtp.data_received(
//!     &t,
//!     b"EHLO me\r\nMAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n",
//! );
//! smtp.data_received(&t, b"Subject: hi\r\n\r\n..and hello\r\n.\r\nQUIT\r\n");
//! let replies = String::from_utf8(st.value()).unwrap();
//! assert!(replies.contains("250 2.0.0 Message accepted"), "{replies}");
//! assert!(st.disconnecting());
//!
//! let new = std::fs::read_dir(root.join("alice/new")).unwrap().next().unwrap().unwrap();
//! let stored = String::from_utf8(std::fs::read(new.path()).unwrap()).unwrap();
//! assert!(stored.starts_with("Received: from me"));
//! assert!(stored.ends_with("\nSubject: hi\n\n.and hello\n"));
//! # std::fs::remove_dir_all(&root).unwrap();
//! ```
#![forbid(unsafe_code)]

pub mod command;
pub mod delivery;
pub mod imap;
pub mod imap_client;
pub mod imap_message;
pub mod imap_parse;
pub mod imap_store;
pub mod maildir;
pub mod reply;
pub mod server_core;
pub mod smtp;

pub use command::{parse_command, Address, Command, ReversePath};
pub use delivery::{Message, MessageDelivery, MessageFactory, Session};
pub use imap::{Imap, ImapFactory};
pub use imap_client::ImapClient;
pub use maildir::{Maildir, MaildirDomain, MaildirMessage};
pub use reply::Reply;
pub use server_core::{Event, Limits, ServerCore};
pub use smtp::{Smtp, SmtpFactory, SmtpRealm, SmtpUser};
