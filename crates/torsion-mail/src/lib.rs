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
//!   atomically (`tmp/`, `fsync`, rename into `new/`), with the folder flushes of messages
//!   stored at the same time shared (group commit).
//! - [`mailbox`]: reading a Maildir ([`Mailbox`]): unique ids, sizes, contents, deletion,
//!   and the one listing of `new/` and `cur/` ([`mailbox::list`]) the POP3 and IMAP servers
//!   share.
//! - [`pop3_core`]: the POP3 server's state machine (RFC 1939, CAPA, STLS), I/O-free, and
//!   [`DotStuffer`], which sends a stored message with CRLF and byte-stuffing.
//! - [`pop3`]: [`Pop3Factory`] and its [`Pop3`] protocol over Maildirs, logging in through
//!   cred ([`MaildirRealm`]), streaming messages with bounded memory.
//! - [`pop3_client`]: [`Pop3Client`], a POP3 client whose commands return Deferreds.
//! - [`smtp_client`]: [`send_mail`] and [`send_mail_to_domain`] (MX lookup), Twisted's
//!   `sendmail`: STARTTLS, AUTH, PIPELINING, per-recipient results, the message from memory
//!   or streamed from a file or reader ([`MessageBody`]).
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
pub mod mailbox;
pub mod maildir;
pub mod pop3;
pub mod pop3_client;
pub mod pop3_core;
pub mod reply;
pub mod server_core;
pub mod smtp;
pub mod smtp_client;

pub use command::{parse_command, Address, Command, ReversePath};
pub use delivery::{Message, MessageDelivery, MessageFactory, Session};
pub use imap::{Imap, ImapFactory};
pub use imap_client::ImapClient;
pub use mailbox::{Mailbox, MailboxMessage};
pub use maildir::{Maildir, MaildirDomain, MaildirMessage};
pub use pop3::{MaildirRealm, Pop3, Pop3Factory};
pub use pop3_client::{Pop3Client, Pop3ClientError};
pub use pop3_core::{DotStuffer, Pop3Core, Pop3Event, Pop3Limits};
pub use reply::Reply;
pub use server_core::{Event, Limits, ServerCore};
pub use smtp::{Smtp, SmtpFactory, SmtpRealm, SmtpUser};
pub use smtp_client::{
    send_mail, send_mail_to_domain, MessageBody, SendOptions, Sent, SmtpClientError, TlsPolicy,
};
