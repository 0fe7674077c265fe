//! Reading a Maildir: the messages in `new/` and `cur/`, their unique ids, sizes and
//! contents, and deleting them. POP3 and IMAP both serve mail through this.
//!
//! A [`Mailbox`] is a snapshot taken by [`Mailbox::open`]: the messages there at that
//! moment, oldest first (by the delivery time their Maildir names start with, compared as
//! numbers). A
//! message's unique id is its Maildir base name (the name without the `:2,FLAGS` info
//! part), which stays the same when a reader moves it from `new/` to `cur/` or changes its
//! flags, and is never reused (RFC 1939's UIDL, IMAP's UID map).
//!
//! [`list`] is the one listing of a Maildir's `new/` or `cur/` that both servers use (the
//! IMAP store, [`imap_store`](crate::imap_store), reads its flags and UIDs from it). A
//! message another reader renamed since the snapshot was taken (IMAP moving it from `new/`
//! to `cur/`, or changing its flags) is found again by its unique id when it is opened or
//! deleted.
//!
//! Messages are stored with LF line endings (see [`maildir`](crate::maildir)); network
//! protocols send CRLF. [`MailboxMessage::size`] is the size on the wire (each bare LF
//! counted as CRLF), which is what POP3's `LIST` and IMAP's `RFC822.SIZE` report, and
//! [`MailboxMessage::file_size`] the size on disk. Contents are read through a file
//! ([`MailboxMessage::open`]), never whole into memory.
//!
//! ```
//! use std::io::Read;
//! use torsion_mail::delivery::Message;
//! use torsion_mail::mailbox::Mailbox;
//! use torsion_mail::maildir::Maildir;
//!
//! let root = std::env::temp_dir().join(format!("mailbox-doc-{}", std::process::id()));
//! let maildir = Maildir::create(&root).unwrap();
//! let mut m = maildir.deliver().unwrap();
//! m.write(b"Subject: hi\r\n\r\nHello\r\n").unwrap();
//! Box::new(m).finish().unwrap();
//!
//! let mailbox = Mailbox::open(&maildir).unwrap();
//! assert_eq!(mailbox.len(), 1);
//! let first = &mailbox.messages()[0];
//! assert_eq!(first.file_size(), 19); // "Subject: hi\n\nHello\n"
//! assert_eq!(first.size(), 22); // with CRLF line endings
//! let mut text = String::new();
//! first.open().unwrap().read_to_string(&mut text).unwrap();
//! assert_eq!(text, "Subject: hi\n\nHello\n");
//! first.delete().unwrap();
//! assert!(Mailbox::open(&maildir).unwrap().is_empty());
//! # std::fs::remove_dir_all(&root).unwrap();
//! ```
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::maildir::Maildir;

/// One entry of a Maildir's `new/` or `cur/`, as [`list`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The file's name.
    pub name: String,
    /// The name without the info (`time.unique.host`): the message's unique id.
    pub base: String,
    /// The info after the first `:` (`2,FLAGS`), empty without one.
    pub info: String,
    /// Where it is.
    pub path: PathBuf,
    /// Whether it is a plain file (not a folder or a link to one).
    pub is_file: bool,
}

/// The entries of `dir` (a Maildir's `new/` or `cur/`) whose names are UTF-8 and do not
/// start with a dot, in no particular order. A missing `dir` is an error (of kind
/// `NotFound`).
pub fn list(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let (base, info) = match name.split_once(':') {
            Some((b, i)) => (b.to_owned(), i.to_owned()),
            None => (name.clone(), String::new()),
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        out.push(Entry {
            name,
            base,
            info,
            path: entry.path(),
            is_file,
        });
    }
    Ok(out)
}

/// Where the message with unique id `base` is now in the Maildir at `root`: in `cur/`
/// under any info, or in `new/`. `None` if it is gone.
pub fn find(root: &Path, base: &str) -> Option<PathBuf> {
    ["cur", "new"].iter().find_map(|sub| {
        list(&root.join(sub))
            .ok()?
            .into_iter()
            .find(|e| e.base == base && e.is_file)
            .map(|e| e.path)
    })
}

/// One message of a [`Mailbox`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxMessage {
    uid: String,
    path: PathBuf,
    file_size: u64,
    size: u64,
}

impl MailboxMessage {
    /// Its unique id: the Maildir base name, without the `:2,FLAGS` info. Only printable
    /// ASCII, as POP3's UIDL requires (names with other bytes are not listed).
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// Where it is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size on disk, in bytes (LF line endings).
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Its size with CRLF line endings, as network protocols send it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Opens it for reading (as stored: LF line endings), where it is now if another
    /// reader moved or renamed it since it was listed.
    pub fn open(&self) -> io::Result<File> {
        match File::open(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.moved() {
                Some(path) => File::open(path),
                None => Err(e),
            },
            opened => opened,
        }
    }

    /// Deletes it, where it is now if another reader moved or renamed it since it was
    /// listed; one already gone (another reader deleted it) is not an error.
    pub fn delete(&self) -> io::Result<()> {
        let gone = |r: io::Result<()>| match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.moved() {
                Some(path) => gone(fs::remove_file(path)),
                None => Ok(()),
            },
            removed => gone(removed),
        }
    }

    /// Where it is now, found by its unique id in its Maildir (the folder above its `new/`
    /// or `cur/`).
    fn moved(&self) -> Option<PathBuf> {
        find(self.path.parent()?.parent()?, &self.uid)
    }
}

/// The messages of a Maildir when it was opened, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Mailbox {
    messages: Vec<MailboxMessage>,
}

impl Mailbox {
    /// Lists the messages in `new/` and `cur/` (files whose names are printable ASCII),
    /// reading each once to count its line endings.
    pub fn open(maildir: &Maildir) -> io::Result<Mailbox> {
        let mut messages = Vec::new();
        for sub in ["cur", "new"] {
            let entries = match list(&maildir.path().join(sub)) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                if !entry.is_file || !entry.name.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                    continue;
                }
                let (file_size, size) = match wire_size(&entry.path) {
                    Ok(s) => s,
                    // Deleted by another reader since it was listed.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                messages.push(MailboxMessage {
                    uid: entry.base,
                    path: entry.path,
                    file_size,
                    size,
                });
            }
        }
        messages.sort_by(|a, b| delivery_order(&a.uid).cmp(&delivery_order(&b.uid)));
        messages.dedup_by(|a, b| a.uid == b.uid);
        Ok(Mailbox { messages })
    }

    /// The messages, oldest first.
    pub fn messages(&self) -> &[MailboxMessage] {
        &self.messages
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// The order of delivery a Maildir name gives: its seconds, then its microseconds (the
/// `M` part of `secs.MusecPpidQn.host`), then the name. Compared as numbers, since `M9`
/// comes before `M10`; names of another form sort by their leading number and name.
pub(crate) fn delivery_order(uid: &str) -> (u64, u64, &str) {
    let number = |s: &str| -> u64 {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        s[..digits].parse().unwrap_or(u64::MAX)
    };
    let (secs, rest) = uid.split_once('.').unwrap_or((uid, ""));
    let micros = rest.strip_prefix('M').map_or(0, number);
    (number(secs), micros, uid)
}

/// A file's size and its size with every bare LF made CRLF, read in pieces.
fn wire_size(path: &Path) -> io::Result<(u64, u64)> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 64 << 10];
    let (mut total, mut bare) = (0u64, 0u64);
    let mut last_cr = false;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        for i in memchr::memchr_iter(b'\n', chunk) {
            let before = if i == 0 {
                last_cr
            } else {
                chunk[i - 1] == b'\r'
            };
            if !before {
                bare += 1;
            }
        }
        last_cr = chunk[n - 1] == b'\r';
        total += n as u64;
    }
    Ok((total, total + bare))
}
