//! Maildir delivery: one domain, its users, a Maildir folder each (Twisted's
//! `twisted.mail.maildir`).
//!
//! A message is written to `tmp/` under a unique name, flushed to disk (`fsync`), then
//! renamed into `new/` and the folder flushed, as the Maildir specification says
//! (<https://cr.yp.to/proto/maildir.html>): a reader never sees half a message in `new/`, and
//! a crash mid-message leaves at most a file in `tmp/`. Lines are stored with LF endings, as
//! Maildir readers (Dovecot, mutt, Twisted's own) expect.
//!
//! # Group commit
//!
//! In a running reactor, [`Message::eom_received`] stores a message in two steps, both in
//! the reactor's thread pool:
//!
//! 1. its own: the rest of the file written, the file flushed (`fsync`) and renamed into
//!    `new/`. Messages do this in parallel, one pool thread each.
//! 2. shared: one `fsync` of each `new/` folder that renames touched. Messages that finished
//!    step 1 while a folder flush is in flight wait and join the next one, so under load one
//!    folder flush (milliseconds on many disks) commits many messages instead of one.
//!
//! The guarantee: a message's Deferred fires (the SMTP server answers 250) only after its
//! file was flushed, renamed into `new/`, and `new/` itself flushed after that rename. A
//! crash at any moment therefore never loses a message the client was told was taken; it may
//! leave a message in `new/` that was not yet acknowledged (the client sends it again: a
//! duplicate, never a loss), or a file in `tmp/`. A message whose file cannot be written,
//! flushed or renamed fails alone (451 for it, the rest of its batch is unaffected); one
//! whose folder flush fails is removed from `new/` again (best effort) and fails with every
//! message of that folder in the batch.
//!
//! ```
//! use torsion_mail::command::Address;
//! use torsion_mail::delivery::{MessageDelivery, Session};
//! use torsion_mail::maildir::MaildirDomain;
//!
//! let root = std::env::temp_dir().join(format!("maildir-doc-{}", std::process::id()));
//! let domain = MaildirDomain::new("example.org", &root).unwrap();
//! domain.add_user("alice").unwrap();
//!
//! let s = Session::default();
//! let nobody = Address::parse("bob@example.org").unwrap();
//! assert_eq!(domain.validate_to(&s, &nobody).err().unwrap().code(), 550);
//! let open = domain.validate_to(&s, &Address::parse("Alice@EXAMPLE.org").unwrap()).unwrap();
//! let mut m = open().unwrap();
//! m.write(b"Subject: hi\r\n\r\nHello\r\n").unwrap();
//! assert_eq!(std::fs::read_dir(root.join("alice/new")).unwrap().count(), 0);
//! m.finish().unwrap();
//! let new: Vec<_> = std::fs::read_dir(root.join("alice/new")).unwrap().collect();
//! assert_eq!(std::fs::read(new[0].as_ref().unwrap().path()).unwrap(), b"Subject: hi\n\nHello\n");
//! # std::fs::remove_dir_all(&root).unwrap();
//! ```
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use torsion::defer::{fail, succeed, Deferred, DeferredList, Trigger};
use torsion::reactor::{Event, Phase};
use torsion::threads::defer_to_thread;
use torsion::Failure;

use crate::command::{Address, ReversePath};
use crate::delivery::{Message, MessageDelivery, MessageFactory, Session};
use crate::reply::Reply;

/// Deliveries made by this process: the `Q` part of a Maildir name.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// One Maildir folder (`tmp/`, `new/`, `cur/`).
#[derive(Clone, Debug)]
pub struct Maildir {
    path: PathBuf,
}

impl Maildir {
    /// The Maildir at `path`, made (with its three folders) if missing.
    pub fn create(path: impl Into<PathBuf>) -> io::Result<Maildir> {
        let path = path.into();
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(path.join(sub))?;
        }
        Ok(Maildir { path })
    }

    /// Its folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a message in `tmp/`.
    pub fn deliver(&self) -> io::Result<MaildirMessage> {
        let name = unique_name();
        let tmp = self.path.join("tmp").join(&name);
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        Ok(MaildirMessage {
            file: Some(BufWriter::with_capacity(64 << 10, file)),
            tmp,
            new: self.path.join("new").join(&name),
            new_dir: self.path.join("new"),
            cr_pending: false,
        })
    }
}

/// `time.MusecPpidQn.host`, the Maildir specification's unique name.
fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // The host name is read once: reading /proc for it cost an open, two reads and a close
    // per message.
    static HOST: OnceLock<String> = OnceLock::new();
    let host = HOST.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
            .replace('/', "\\057")
            .replace(':', "\\072")
    });
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        DELIVERIES.fetch_add(1, Ordering::Relaxed),
        host
    )
}

/// A message being written to a Maildir's `tmp/`; [`finish`](Message::finish) moves it
/// into `new/`, dropping it unfinished removes it.
#[derive(Debug)]
pub struct MaildirMessage {
    file: Option<BufWriter<File>>,
    tmp: PathBuf,
    new: PathBuf,
    new_dir: PathBuf,
    cr_pending: bool,
}

impl MaildirMessage {
    /// Where it will be once finished.
    pub fn final_path(&self) -> &Path {
        &self.new
    }
}

impl Message for MaildirMessage {
    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        if std::mem::take(&mut self.cr_pending) {
            if data.first() == Some(&b'\n') {
                file.write_all(b"\n")?;
                data = &data[1..];
            } else {
                file.write_all(b"\r")?;
            }
        }
        if let Some(rest) = data.strip_suffix(b"\r") {
            self.cr_pending = true;
            data = rest;
        }
        let mut start = 0;
        for i in memchr::memmem::find_iter(data, b"\r\n") {
            file.write_all(&data[start..i])?;
            start = i + 1;
        }
        file.write_all(&data[start..])
    }

    /// In a running reactor the disk flushes and the rename run in the reactor's thread
    /// pool, so that no other connection waits for them, and the folder's flush is shared
    /// with the messages finishing at the same time (see [the module's
    /// documentation](self#group-commit)); outside one (a test driving the protocol by hand),
    /// [`finish`](Message::finish) in place.
    fn eom_received(mut self: Box<Self>) -> Deferred<()> {
        if !torsion::reactor().running() {
            return match self.finish() {
                Ok(()) => succeed(()),
                Err(e) => fail(e),
            };
        }
        defer_to_thread(move || {
            self.store_file()?;
            Ok::<_, io::Error>((self.new_dir.clone(), self.new.clone()))
        })
        .add_callback_result(|stored| stored)
        .add_callback_deferred(|(dir, new)| group_commit(dir, new))
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.store_file()?;
        // The rename is in the folder's entries: flush them too, or a crash could lose it.
        sync_dir(&self.new_dir)
    }
}

impl MaildirMessage {
    /// The part of storing a message it does alone: the rest of the file written, flushed
    /// to disk and renamed into `new/`. The folder is not flushed yet.
    fn store_file(&mut self) -> io::Result<()> {
        let Some(mut file) = self.file.take() else {
            return Err(io::Error::other("message already finished"));
        };
        if self.cr_pending {
            file.write_all(b"\r")?;
        }
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.new)?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

/// Flushes a folder's entries (the renames into it) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A message renamed into `new/`, waiting for a flush of that folder.
struct Renamed {
    dir: PathBuf,
    path: PathBuf,
    stored: Trigger<()>,
}

/// The group commit of one reactor thread: messages waiting for the next folder flushes, and
/// whether a batch of flushes is in flight.
#[derive(Default)]
struct Committer {
    waiting: Vec<Renamed>,
    in_flight: bool,
}

thread_local! {
    /// The running reactor's committer, made on first use and dropped when that reactor
    /// shuts down (a batch in flight then never answers: its connections are gone).
    static COMMITTER: RefCell<Option<Committer>> = const { RefCell::new(None) };
}

/// Fires once `dir` (where `path` was renamed) has been flushed, in this batch of folder
/// flushes or, if one is in flight, the next.
fn group_commit(dir: PathBuf, path: PathBuf) -> Deferred<()> {
    let stored = Deferred::new();
    let waiting = Renamed {
        dir,
        path,
        stored: stored.trigger(),
    };
    let start = COMMITTER.with_borrow_mut(|c| {
        let c = c.get_or_insert_with(|| {
            torsion::reactor().add_system_event_trigger(Phase::After, Event::Shutdown, || {
                COMMITTER.with_borrow_mut(|c| *c = None);
            });
            Committer::default()
        });
        c.waiting.push(waiting);
        !std::mem::replace(&mut c.in_flight, true)
    });
    if start {
        commit_next();
    }
    stored
}

/// Flushes every folder the waiting messages were renamed into, each once and in parallel,
/// then answers them and starts the next batch if more came meanwhile.
fn commit_next() {
    let batch = COMMITTER.with_borrow_mut(|c| {
        let Some(c) = c.as_mut() else {
            return Vec::new();
        };
        c.in_flight = !c.waiting.is_empty();
        std::mem::take(&mut c.waiting)
    });
    if batch.is_empty() {
        return;
    }
    let dirs: Vec<PathBuf> = batch
        .iter()
        .map(|m| m.dir.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    tracing::trace!(
        "Maildir: committing {} messages in {} folders",
        batch.len(),
        dirs.len()
    );
    let flushes = dirs
        .iter()
        .map(|dir| {
            let dir = dir.clone();
            defer_to_thread(move || sync_dir(&dir)).add_callback_result(|synced| synced)
        })
        .collect();
    drop(
        DeferredList::builder(flushes)
            .consume_errors(true)
            .build()
            .add_callback(move |outcomes| {
                for m in batch {
                    let outcome = dirs
                        .iter()
                        .position(|d| *d == m.dir)
                        .and_then(|i| outcomes.get(i));
                    match outcome {
                        Some(Ok(())) => m.stored.callback(()),
                        failed => {
                            let why = match failed {
                                Some(Err(f)) => f.error_message(),
                                _ => "no flush".to_owned(),
                            };
                            // Not acknowledged: not left in new/ either, if it can be helped,
                            // so that the client's retry does not make a duplicate.
                            let _ = fs::remove_file(&m.path);
                            m.stored.errback(Failure::new(io::Error::other(format!(
                                "flushing {}: {why}",
                                m.dir.display()
                            ))));
                        }
                    }
                }
                commit_next();
            }),
    );
}

impl Drop for MaildirMessage {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.file = None;
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// One domain's users, each with a Maildir under one folder (`ROOT/USER/{tmp,new,cur}`):
/// a [`MessageDelivery`] taking mail for `user@domain`. Twisted's `MaildirDirdbmDomain`,
/// with the users listed here rather than in a dbm file.
#[derive(Debug)]
pub struct MaildirDomain {
    domain: String,
    root: PathBuf,
    users: RefCell<BTreeSet<String>>,
}

impl MaildirDomain {
    /// The domain `domain` stored under `root` (made if missing); every folder already in
    /// `root` with a valid user name is a user, its `tmp/`, `new/` and `cur/` made if
    /// missing.
    pub fn new(domain: &str, root: impl Into<PathBuf>) -> io::Result<MaildirDomain> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        let mut users = BTreeSet::new();
        for entry in fs::read_dir(&root)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                if let Some(name) = entry.file_name().to_str() {
                    if valid_user(name) {
                        // A plain folder (made by hand for a new user) becomes a Maildir.
                        Maildir::create(entry.path())?;
                        users.insert(name.to_owned());
                    }
                }
            }
        }
        Ok(MaildirDomain {
            domain: domain.to_ascii_lowercase(),
            root,
            users: RefCell::new(users),
        })
    }

    /// The domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Adds a user (lower-cased), making their Maildir.
    pub fn add_user(&self, user: &str) -> io::Result<Maildir> {
        let user = user.to_ascii_lowercase();
        if !valid_user(&user) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{user:?} is not a valid mailbox name"),
            ));
        }
        let maildir = Maildir::create(self.root.join(&user))?;
        self.users.borrow_mut().insert(user);
        Ok(maildir)
    }

    /// The users, sorted.
    pub fn users(&self) -> Vec<String> {
        self.users.borrow().iter().cloned().collect()
    }

    /// A user's Maildir, if they are a user.
    pub fn maildir(&self, user: &str) -> Option<Maildir> {
        let user = user.to_ascii_lowercase();
        self.users.borrow().contains(&user).then(|| Maildir {
            path: self.root.join(user),
        })
    }
}

/// A user name that is safe as a folder name: letters, digits and `._-+`, not starting
/// with a dot.
fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
}

impl MessageDelivery for MaildirDomain {
    fn validate_from(&self, _session: &Session, _from: &ReversePath) -> Result<(), Reply> {
        Ok(())
    }

    fn validate_to(&self, _session: &Session, to: &Address) -> Result<MessageFactory, Reply> {
        if !to.domain().eq_ignore_ascii_case(&self.domain) {
            return Err(Reply::new(550, "5.7.1 Relaying denied"));
        }
        let Some(maildir) = self.maildir(to.local()) else {
            return Err(Reply::new(550, "5.1.1 No such user here"));
        };
        Ok(Box::new(move || {
            Ok(Box::new(maildir.deliver()?) as Box<dyn Message>)
        }))
    }
}
