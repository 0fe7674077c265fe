//! The IMAP server's view of a user's Maildir: Maildir++ folders, flags in the file names'
//! `:2,` info, and UIDs kept in a small file per folder.
//!
//! Folders are listed with [`mailbox::list`], the listing the POP3 server's
//! [`Mailbox`](crate::mailbox::Mailbox) uses too.
//!
//! A user's Maildir is `INBOX`; another mailbox `Work.2026` is the Maildir++ folder
//! `.Work.2026` beside `cur/` (`.` separates levels). A message's flags are the letters
//! after `:2,` in its name in `cur/` (`S` seen, `R` answered, `F` flagged, `T` deleted, `D`
//! draft), so mutt or Dovecot reading the same Maildir see them. UIDs and the folder's
//! UIDVALIDITY are in `torsion-imap-uids`, one line per message (`UID basename`), written
//! to a temporary file and renamed over the old one, so a crash leaves the old or the new
//! file, never half of one.
//!
//! ```
//! use torsion_mail::imap_store::{Folder, Store};
//!
//! let root = std::env::temp_dir().join(format!("imap-store-doc-{}", std::process::id()));
//! let store = Store::new(&root).unwrap();
//! Folder::append(&store.folder_path("INBOX").unwrap(), b"Subject: a\r\n\r\nHi\r\n", "S", None)
//!     .unwrap();
//! let inbox = Folder::open(store.folder_path("INBOX").unwrap()).unwrap();
//! assert_eq!(inbox.messages().len(), 1);
//! assert_eq!(inbox.messages()[0].uid, 1);
//! assert_eq!(inbox.messages()[0].flags, "S");
//! assert_eq!(inbox.read(0).unwrap(), b"Subject: a\r\n\r\nHi\r\n");
//! store.create("Work").unwrap();
//! assert_eq!(store.list(), ["INBOX", "Work"]);
//! # std::fs::remove_dir_all(&root).unwrap();
//! ```
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::mailbox;
use crate::maildir::Maildir;

const UID_FILE: &str = "torsion-imap-uids";
const SUBSCRIPTIONS: &str = "torsion-imap-subscriptions";

/// The IMAP flags kept in a Maildir info, with their letters, in letter order.
pub const FLAGS: [(char, &str); 5] = [
    ('D', "\\Draft"),
    ('F', "\\Flagged"),
    ('R', "\\Answered"),
    ('S', "\\Seen"),
    ('T', "\\Deleted"),
];

/// The letter of a system flag (`\Seen` is `S`), case-insensitively; `None` for others.
pub fn flag_letter(flag: &str) -> Option<char> {
    FLAGS
        .iter()
        .find(|(_, f)| f.eq_ignore_ascii_case(flag))
        .map(|(c, _)| *c)
}

/// The IMAP names of a Maildir info's letters (`\Seen \Deleted`).
pub fn flag_names(letters: &str) -> Vec<&'static str> {
    FLAGS
        .iter()
        .filter(|(c, _)| letters.contains(*c))
        .map(|(_, f)| *f)
        .collect()
}

/// A user's mailboxes.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The mailboxes of the Maildir at `root` (made if missing).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Store> {
        let root = root.into();
        Maildir::create(&root)?;
        Ok(Store { root })
    }

    /// The folder of mailbox `name`, or `None` for a name that cannot be one (empty, with
    /// `/`, a level empty or starting with `.`, control characters).
    pub fn folder_path(&self, name: &str) -> Option<PathBuf> {
        if name.eq_ignore_ascii_case("INBOX") {
            return Some(self.root.clone());
        }
        let ok = !name.is_empty()
            && name.len() <= 255
            && !name.contains('/')
            && !name.chars().any(char::is_control)
            && name.split('.').all(|l| !l.is_empty())
            && !name.starts_with("INBOX.")
            && !name.eq_ignore_ascii_case("tmp");
        ok.then(|| self.root.join(format!(".{name}")))
    }

    /// Whether mailbox `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.folder_path(name)
            .is_some_and(|p| p.join("cur").is_dir())
    }

    /// Every mailbox, `INBOX` first, the rest sorted.
    pub fn list(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                let name = n.strip_prefix('.')?;
                (!name.is_empty() && !name.starts_with('.') && e.path().join("cur").is_dir())
                    .then(|| name.to_owned())
            })
            .collect();
        names.sort();
        names.insert(0, "INBOX".to_owned());
        names
    }

    /// Makes mailbox `name`.
    pub fn create(&self, name: &str) -> io::Result<()> {
        let path = self
            .folder_path(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad mailbox name"))?;
        if path.join("cur").is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "mailbox exists",
            ));
        }
        Maildir::create(&path)?;
        // Maildir++ marks folders with this file.
        fs::File::create(path.join("maildirfolder"))?;
        Ok(())
    }

    /// Removes mailbox `name` (not INBOX) and its messages.
    pub fn delete(&self, name: &str) -> io::Result<()> {
        if name.eq_ignore_ascii_case("INBOX") {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "INBOX cannot be deleted",
            ));
        }
        match self.folder_path(name) {
            Some(p) if p.join("cur").is_dir() => fs::remove_dir_all(p),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such mailbox")),
        }
    }

    /// Renames mailbox `from` (not INBOX) to `to`, and its children with it.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let bad = || io::Error::new(io::ErrorKind::InvalidInput, "bad mailbox name");
        if from.eq_ignore_ascii_case("INBOX") {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "renaming INBOX is not supported",
            ));
        }
        let (src, dst) = (
            self.folder_path(from).ok_or_else(bad)?,
            self.folder_path(to).ok_or_else(bad)?,
        );
        if !src.join("cur").is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such mailbox"));
        }
        if dst.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "mailbox exists",
            ));
        }
        let children: Vec<String> = self
            .list()
            .into_iter()
            .filter(|n| n.starts_with(&format!("{from}.")))
            .collect();
        fs::rename(src, dst)?;
        for child in children {
            let new = format!("{to}{}", &child[from.len()..]);
            if let (Some(a), Some(b)) = (self.folder_path(&child), self.folder_path(&new)) {
                fs::rename(a, b)?;
            }
        }
        Ok(())
    }

    /// The subscribed mailboxes.
    pub fn subscriptions(&self) -> Vec<String> {
        fs::read_to_string(self.root.join(SUBSCRIPTIONS))
            .map(|s| {
                s.lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Subscribes to `name` (`true`) or unsubscribes.
    pub fn set_subscribed(&self, name: &str, on: bool) -> io::Result<()> {
        let mut subs = self.subscriptions();
        subs.retain(|s| s != name);
        if on {
            subs.push(name.to_owned());
        }
        let mut text = subs.join("\n");
        text.push('\n');
        write_atomically(&self.root.join(SUBSCRIPTIONS), text.as_bytes())
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// One message of a folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    /// Its UID.
    pub uid: u32,
    /// Its name without the info (`time.unique.host`).
    pub base: String,
    /// Its flags, as Maildir letters in order (`"RS"`).
    pub flags: String,
    /// Found in `new/` by this scan.
    pub recent: bool,
}

impl Msg {
    fn file_name(&self) -> String {
        format!("{}:2,{}", self.base, self.flags)
    }
}

/// A folder's messages in UID order, as last scanned.
#[derive(Debug)]
pub struct Folder {
    path: PathBuf,
    /// Its UIDVALIDITY.
    pub uid_validity: u32,
    /// The UID the next new message gets.
    pub next_uid: u32,
    msgs: Vec<Msg>,
    /// `cur/`'s and `new/`'s modification times before the scan, and when it was made.
    stamp: Option<(SystemTime, SystemTime, SystemTime)>,
}

fn dir_times(path: &Path) -> Option<(SystemTime, SystemTime)> {
    let m = |d: &str| fs::metadata(path.join(d)).and_then(|m| m.modified()).ok();
    Some((m("cur")?, m("new")?))
}

impl Folder {
    /// Whether a scan now would surely find what the last one did: neither `cur/` nor
    /// `new/` was changed since (a message delivered, renamed for its flags, or removed
    /// changes its folder's time), and both were last changed over a second before the
    /// last scan, so a change within the file system's timestamp granularity is not missed.
    pub fn unchanged(&self) -> bool {
        let Some((cur, new, scanned)) = self.stamp else {
            return false;
        };
        let settled = |t: SystemTime| {
            scanned
                .duration_since(t)
                .is_ok_and(|d| d > std::time::Duration::from_secs(1))
        };
        dir_times(&self.path) == Some((cur, new)) && settled(cur) && settled(new)
    }

    /// Scans the folder at `path`: messages in `new/` move to `cur/` (and are recent), new
    /// messages get UIDs.
    pub fn open(path: PathBuf) -> io::Result<Folder> {
        let stamp = dir_times(&path).map(|(c, n)| (c, n, SystemTime::now()));
        let mut recent = Vec::new();
        for e in mailbox::list(&path.join("new"))? {
            match fs::rename(&e.path, path.join("cur").join(format!("{}:2,", e.base))) {
                Ok(()) => recent.push(e.base),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut found: Vec<(String, String)> = Vec::new();
        for e in mailbox::list(&path.join("cur"))? {
            let info = e.info.strip_prefix("2,").unwrap_or("");
            let flags: String = FLAGS
                .iter()
                .map(|(c, _)| *c)
                .filter(|c| info.contains(*c))
                .collect();
            found.push((e.base, flags));
        }
        // The UID file: "1 UIDVALIDITY NEXTUID", then "UID BASE" lines.
        let text = fs::read_to_string(path.join(UID_FILE)).unwrap_or_default();
        let mut lines = text.lines();
        let header: Vec<u32> = lines
            .next()
            .unwrap_or("")
            .split(' ')
            .filter_map(|w| w.parse().ok())
            .collect();
        let (mut uid_validity, mut next_uid, mut known) = (0, 1, HashMap::new());
        if let [1, v, n] = header[..] {
            uid_validity = v;
            next_uid = n;
            for l in lines {
                if let Some((u, b)) = l.split_once(' ') {
                    if let Ok(u) = u.parse::<u32>() {
                        known.insert(b.to_owned(), u);
                    }
                }
            }
        }
        let mut changed = false;
        if uid_validity == 0 {
            uid_validity = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as u32)
                .unwrap_or(1)
                .max(1);
            changed = true;
        }
        // Unknown messages get UIDs in delivery order, which the names give (their seconds
        // and microseconds compared as numbers, as POP3's listing does: `M9` before `M10`).
        found.sort_by(|a, b| mailbox::delivery_order(&a.0).cmp(&mailbox::delivery_order(&b.0)));
        let mut msgs = Vec::with_capacity(found.len());
        for (base, flags) in found {
            let uid = match known.get(&base) {
                Some(&u) => u,
                None => {
                    changed = true;
                    next_uid += 1;
                    next_uid - 1
                }
            };
            let recent = recent.contains(&base);
            msgs.push(Msg {
                uid,
                base,
                flags,
                recent,
            });
        }
        changed |= msgs.len() != known.len();
        msgs.sort_by_key(|m| m.uid);
        let folder = Folder {
            path,
            uid_validity,
            next_uid,
            msgs,
            stamp,
        };
        if changed {
            folder.save()?;
        }
        Ok(folder)
    }

    fn save(&self) -> io::Result<()> {
        let mut text = format!("1 {} {}\n", self.uid_validity, self.next_uid);
        for m in &self.msgs {
            text.push_str(&format!("{} {}\n", m.uid, m.base));
        }
        write_atomically(&self.path.join(UID_FILE), text.as_bytes())
    }

    /// Its messages, in UID order.
    pub fn messages(&self) -> &[Msg] {
        &self.msgs
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self, i: usize) -> PathBuf {
        self.path.join("cur").join(self.msgs[i].file_name())
    }

    /// Message `i` (0-based), with CRLF line endings as IMAP sends it; found again by its
    /// name if another reader renamed it since the scan (its flags changed elsewhere).
    pub fn read(&self, i: usize) -> io::Result<Vec<u8>> {
        let data = match fs::read(self.file(i)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match mailbox::find(&self.path, &self.msgs[i].base) {
                    Some(path) => fs::read(path)?,
                    None => return Err(e),
                }
            }
            read => read?,
        };
        Ok(crlf(&data))
    }

    /// Message `i`'s modification time (its INTERNALDATE), as a Unix time.
    pub fn internal_date(&self, i: usize) -> i64 {
        fs::metadata(self.file(i))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// Sets message `i`'s flags (Maildir letters) by renaming its file.
    pub fn set_flags(&mut self, i: usize, letters: &str) -> io::Result<()> {
        let flags: String = FLAGS
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| letters.contains(*c))
            .collect();
        if flags == self.msgs[i].flags {
            return Ok(());
        }
        let old = self.file(i);
        self.msgs[i].flags = flags;
        fs::rename(old, self.file(i))
    }

    /// Removes the messages flagged deleted (`T`); returns their 0-based indexes, before
    /// removal, in increasing order.
    pub fn expunge(&mut self) -> io::Result<Vec<usize>> {
        let mut gone = Vec::new();
        for i in 0..self.msgs.len() {
            if self.msgs[i].flags.contains('T') {
                match fs::remove_file(self.file(i)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                gone.push(i);
            }
        }
        for &i in gone.iter().rev() {
            self.msgs.remove(i);
        }
        if !gone.is_empty() {
            self.save()?;
        }
        Ok(gone)
    }

    /// Stores a message (CRLF or LF line endings; kept with LF, as delivery does) in the
    /// folder at `path` with `flags` (Maildir letters) and a modification time of `date`.
    /// It gets its UID at the next scan.
    pub fn append(path: &Path, data: &[u8], flags: &str, date: Option<i64>) -> io::Result<()> {
        use crate::delivery::Message;
        let maildir = Maildir::create(path)?;
        let mut m = Box::new(maildir.deliver()?);
        m.write(data)?;
        let new = m.final_path();
        m.finish()?;
        let base = new
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let letters: String = FLAGS
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| flags.contains(*c))
            .collect();
        let cur = path.join("cur").join(format!("{base}:2,{letters}"));
        fs::rename(&new, &cur)?;
        if let Some(t) = date.and_then(|d| u64::try_from(d).ok()) {
            let f = fs::File::options().write(true).open(&cur)?;
            f.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(t))?;
        }
        Ok(())
    }

    /// Copies message `i` into the folder at `to`, flags and date kept.
    pub fn copy_to(&self, i: usize, to: &Path) -> io::Result<()> {
        let data = fs::read(self.file(i))?;
        Folder::append(to, &data, &self.msgs[i].flags, Some(self.internal_date(i)))
    }
}

/// LF line endings made CRLF (a CR already before an LF is kept).
pub fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}
