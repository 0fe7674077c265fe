//! Maildir delivery: one domain, its users, a Maildir folder each (Twisted's
//! `twisted.mail.maildir`).
//!
//! A message is written to `tmp/` under a unique name, flushed to disk (`fdatasync`), then
//! renamed into `new/` and the folder flushed (`fsync`), as the Maildir specification says
//! (<https://cr.yp.to/proto/maildir.html>): a reader never sees half a message in `new/`, and
//! a crash mid-message leaves at most a file in `tmp/`. Lines are stored with LF endings, as
//! Maildir readers (Dovecot, mutt, Twisted's own) expect.
//!
//! A message is kept in memory until it is stored, and only one larger than 64 KiB is
//! written to its file in `tmp/` as it arrives; the file is then written with one `write`.
//! `fdatasync` is enough for the file: it flushes the file's data and the metadata needed to
//! read it back (its size and blocks, which writing a new file always changes), leaving only
//! its times (fdatasync(2)). Each [`Maildir`] keeps its `tmp/` and `new/` folders open, so
//! storing a message names files relative to them (`openat`, `renameat`) and flushes `new/`
//! without opening it; a Maildir replaced on disk while a server holds it is therefore not
//! seen until the [`MaildirDomain`] is made again. The rename never replaces a file already
//! in `new/` (`RENAME_NOREPLACE` where the file system has it).
//!
//! # Group commit
//!
//! In a running reactor, [`Message::eom_received`] does not store the message at once: the
//! messages that end in the same reactor iteration form a group. Each message of the group
//! is stored by a job of its own in the reactor's thread pool (its file created unless it
//! was already spilled to disk, written, flushed and renamed into `new/`), so the disk
//! flushes run in parallel; the job that finishes last flushes each `new/` folder the
//! group's renames touched, once, and answers the whole group with one hand-off back to the
//! reactor. So the folder flush (milliseconds on many disks) and the way back are shared by
//! the group, and a group's jobs overlap with the next group's.
//!
//! The guarantee: a message's Deferred fires (the SMTP server answers 250) only after its
//! file was flushed, renamed into `new/`, and `new/` itself flushed after that rename. A
//! crash at any moment therefore never loses a message the client was told was taken; it may
//! leave a message in `new/` that was not yet acknowledged (the client sends it again: a
//! duplicate, never a loss), or a file in `tmp/`. A message whose file cannot be written,
//! flushed or renamed fails alone (451 for it, the rest of its group is unaffected); one
//! whose folder flush fails is removed from `new/` again (best effort) and fails with every
//! message of that folder in the group.
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
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use torsion::defer::{fail, succeed, Deferred, Trigger};
use torsion::reactor::{Event, Phase, ReactorHandle};
use torsion::threads::get_thread_pool;
use torsion::Failure;

use crate::command::{Address, ReversePath};
use crate::delivery::{Message, MessageDelivery, MessageFactory, Session};
use crate::reply::Reply;

/// Deliveries made by this process: the `Q` part of a Maildir name.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// A message larger than this is written to its file in `tmp/` as it arrives instead of
/// being kept in memory until it is stored.
const IN_MEMORY: usize = 64 << 10;

/// One Maildir folder (`tmp/`, `new/`, `cur/`), its `tmp/` and `new/` kept open.
#[derive(Clone, Debug)]
pub struct Maildir {
    path: PathBuf,
    folders: Arc<Folders>,
}

/// A Maildir's open `tmp/` and `new/`.
#[derive(Debug)]
struct Folders {
    tmp: OwnedFd,
    new: OwnedFd,
}

/// Opens a folder to name files relative to it and to flush it.
fn open_folder(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

impl Maildir {
    /// The Maildir at `path`, made (with its three folders) if missing.
    pub fn create(path: impl Into<PathBuf>) -> io::Result<Maildir> {
        let path = path.into();
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(path.join(sub))?;
        }
        let folders = Arc::new(Folders {
            tmp: open_folder(&path.join("tmp"))?,
            new: open_folder(&path.join("new"))?,
        });
        Ok(Maildir { path, folders })
    }

    /// Its folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a message, to be stored in `tmp/` and then `new/` (nothing is on disk before
    /// it grows past 64 KiB or is stored).
    pub fn deliver(&self) -> io::Result<MaildirMessage> {
        Ok(MaildirMessage {
            maildir: self.clone(),
            name: unique_name(),
            // Room for a typical message from the start, instead of a dozen reallocations
            // (and copies) while a 10 KB one arrives.
            buffer: Vec::with_capacity(16 << 10),
            file: None,
            in_tmp: false,
            cr_pending: false,
        })
    }
}

/// `time.MusecPpidQn.host`, the Maildir specification's unique name.
fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // The host name and process id are read once: reading /proc for the host cost an open,
    // two reads and a close per message, and the id a getpid. A forked child that delivers
    // would share its parent's id and counter; its names could then only collide in the
    // same microsecond, and a collision fails the message (O_EXCL in tmp/, RENAME_NOREPLACE
    // into new/), never replaces one.
    static HOST: OnceLock<(String, u32)> = OnceLock::new();
    let (host, pid) = HOST.get_or_init(|| {
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
            .replace('/', "\\057")
            .replace(':', "\\072");
        (host, std::process::id())
    });
    // Written by hand rather than with format!, whose machinery cost more than the rest of
    // starting a message.
    let mut name = String::with_capacity(48 + host.len());
    push_decimal(&mut name, now.as_secs());
    name.push_str(".M");
    push_decimal(&mut name, u64::from(now.subsec_micros()));
    name.push('P');
    push_decimal(&mut name, u64::from(*pid));
    name.push('Q');
    push_decimal(&mut name, DELIVERIES.fetch_add(1, Ordering::Relaxed));
    name.push('.');
    name.push_str(host);
    name
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// A message being received for a Maildir; [`finish`](Message::finish) stores it in
/// `new/`, dropping it unfinished discards it (and its file in `tmp/`, if it had one).
#[derive(Debug)]
pub struct MaildirMessage {
    maildir: Maildir,
    name: String,
    /// What is not yet in the file (all of it, while the message is small).
    buffer: Vec<u8>,
    /// The file in `tmp/`, once the message outgrew memory.
    file: Option<File>,
    /// Whether `tmp/` holds a file of this name made by this message.
    in_tmp: bool,
    cr_pending: bool,
}

impl MaildirMessage {
    /// Where it will be once finished.
    pub fn final_path(&self) -> PathBuf {
        self.maildir.path.join("new").join(&self.name)
    }

    /// Makes its file in `tmp/`.
    fn create(&mut self) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.maildir.folders.tmp,
            self.name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        self.in_tmp = true;
        Ok(File::from(fd))
    }

    /// The part of storing a message it does alone: the rest of the file written, flushed
    /// to disk and renamed into `new/`. The folder is not flushed yet.
    fn store_file(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.cr_pending) {
            self.buffer.push(b'\r');
        }
        let mut file = match self.file.take() {
            Some(file) => file,
            None => self.create()?,
        };
        file.write_all(&self.buffer)?;
        self.buffer = Vec::new();
        // The file is new: fdatasync flushes its size and blocks with its data.
        rustix::fs::fdatasync(&file)?;
        drop(file);
        let folders = &self.maildir.folders;
        let name = self.name.as_str();
        match rustix::fs::renameat_with(
            &folders.tmp,
            name,
            &folders.new,
            name,
            RenameFlags::NOREPLACE,
        ) {
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                rustix::fs::renameat(&folders.tmp, name, &folders.new, name)?
            }
            renamed => renamed?,
        }
        self.in_tmp = false;
        Ok(())
    }
}

/// Appends `data` to `out` with each CRLF made an LF: each run up to a CR before an LF is
/// copied at once. The search is for the LF, a single byte (cheaper than one for the
/// pair), with AVX2's searcher taken directly where there is one: the search restarts at
/// every line (some 130 times for a 10 KB message), and memchr's own choice of searcher,
/// made on each call, cost as much as the search itself.
fn crlf_to_lf(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len());
    let mut start = 0;
    let mut lf = |i: usize| {
        if i > start && data[i - 1] == b'\r' {
            out.extend_from_slice(&data[start..i - 1]);
            start = i;
        }
    };
    #[cfg(target_arch = "x86_64")]
    if let Some(finder) = memchr::arch::x86_64::avx2::memchr::One::new(b'\n') {
        finder.iter(data).for_each(&mut lf);
        out.extend_from_slice(&data[start..]);
        return;
    }
    memchr::memchr_iter(b'\n', data).for_each(&mut lf);
    out.extend_from_slice(&data[start..]);
}

impl Message for MaildirMessage {
    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        if std::mem::take(&mut self.cr_pending) {
            if data.first() == Some(&b'\n') {
                self.buffer.push(b'\n');
                data = &data[1..];
            } else {
                self.buffer.push(b'\r');
            }
        }
        if let Some(rest) = data.strip_suffix(b"\r") {
            self.cr_pending = true;
            data = rest;
        }
        crlf_to_lf(data, &mut self.buffer);
        if self.buffer.len() >= IN_MEMORY {
            if self.file.is_none() {
                self.file = Some(self.create()?);
            }
            if let Some(file) = self.file.as_mut() {
                file.write_all(&self.buffer)?;
            }
            self.buffer.clear();
        }
        Ok(())
    }

    /// In a running reactor the message is stored in the reactor's thread pool, with the
    /// others that end in the same reactor iteration, so that no connection waits for the
    /// disk and the folder's flush is shared (see [the module's
    /// documentation](self#group-commit)); outside one (a test driving the protocol by hand),
    /// [`finish`](Message::finish) in place.
    fn eom_received(self: Box<Self>) -> Deferred<()> {
        if !torsion::reactor().running() {
            return match self.finish() {
                Ok(()) => succeed(()),
                Err(e) => fail(e),
            };
        }
        group_commit(*self)
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.store_file()?;
        // The rename is in the folder's entries: flush them too, or a crash could lose it.
        Ok(rustix::fs::fsync(&self.maildir.folders.new)?)
    }
}

/// The group commit of one reactor thread: the messages that ended in this iteration, and
/// the groups in the pool, by id.
#[derive(Default)]
struct Committer {
    waiting: Vec<MaildirMessage>,
    triggers: Vec<Trigger<()>>,
    /// Whether a call at the end of this iteration will hand them to the pool.
    scheduled: bool,
    in_pool: HashMap<u64, Vec<Trigger<()>>>,
    next_id: u64,
}

thread_local! {
    /// The running reactor's committer, made on first use and dropped when that reactor
    /// shuts down (a group in flight then never answers: its connections are gone).
    static COMMITTER: RefCell<Option<Committer>> = const { RefCell::new(None) };
}

/// Fires once `m` is stored with the group of messages ending in this reactor iteration.
fn group_commit(m: MaildirMessage) -> Deferred<()> {
    let stored = Deferred::new();
    let schedule = COMMITTER.with_borrow_mut(|c| {
        let c = c.get_or_insert_with(|| {
            torsion::reactor().add_system_event_trigger(Phase::After, Event::Shutdown, || {
                COMMITTER.with_borrow_mut(|c| *c = None);
            });
            Committer::default()
        });
        c.waiting.push(m);
        c.triggers.push(stored.trigger());
        !std::mem::replace(&mut c.scheduled, true)
    });
    if schedule {
        drop(torsion::reactor().call_later(0.0, commit_group));
    }
    stored
}

/// A group of messages in the pool: each stored by a job of its own, in parallel; the job
/// that finishes last flushes the folders and answers the whole group at once.
struct Group {
    id: u64,
    reactor: ReactorHandle,
    /// Each message's outcome once its job is done (with the message, to remove it from
    /// `new/` if its folder's flush fails), by its place in the group.
    done: Mutex<Vec<Option<Done>>>,
    remaining: AtomicUsize,
    /// The messages no job has taken yet, with their places.
    pending: Mutex<Vec<(usize, MaildirMessage)>>,
}

/// A message whose job is done (gone if the pool refused it), and its outcome.
type Done = (Option<MaildirMessage>, io::Result<()>);

/// Hands the messages that ended in this iteration to the pool and answers each with its
/// outcome when the last is done. Each message is stored by a job of its own, but a job
/// goes on with the group's next message rather than ending: as many jobs as the pool has
/// threads (or messages, if fewer) do the same work, in parallel as far as the pool allows,
/// with fewer hand-offs (each one a wake-up of a worker, and its wait after).
fn commit_group() {
    let Some((messages, id)) = COMMITTER.with_borrow_mut(|c| {
        let c = c.as_mut()?;
        c.scheduled = false;
        if c.waiting.is_empty() {
            return None;
        }
        c.next_id += 1;
        let triggers = std::mem::take(&mut c.triggers);
        c.in_pool.insert(c.next_id, triggers);
        Some((std::mem::take(&mut c.waiting), c.next_id))
    }) else {
        return;
    };
    tracing::trace!("Maildir: committing a group of {} messages", messages.len());
    let pool = get_thread_pool();
    let jobs = messages.len().min(pool.max_threads().max(1));
    let group = Arc::new(Group {
        id,
        reactor: torsion::reactor().handle(),
        done: Mutex::new(messages.iter().map(|_| None).collect()),
        remaining: AtomicUsize::new(messages.len()),
        // Taken from the end: the last message first, so reversed.
        pending: Mutex::new(messages.into_iter().enumerate().rev().collect()),
    });
    let mut refused = None;
    for _ in 0..jobs {
        let job_group = group.clone();
        if let Err(e) = pool.call_in_thread(move || store_pending(&job_group)) {
            refused = Some(e);
        }
    }
    if let Some(e) = refused {
        // The pool refused a job (its queue is full, or it stopped). The jobs it took store
        // every message, but if no job holds the group (none was taken, or those taken are
        // done), what is left will not be stored: it fails (each dropped, its file removed).
        if Arc::strong_count(&group) == 1 {
            let pending = std::mem::take(&mut *lock(&group.pending));
            for (i, m) in pending {
                drop(m);
                finished_one(&group, i, None, Err(io::Error::other(e.to_string())));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// In a pool thread: stores the group's messages no job has taken, one at a time.
fn store_pending(group: &Arc<Group>) {
    loop {
        let next = lock(&group.pending).pop();
        let Some((i, m)) = next else { return };
        stored_one(group, i, m);
    }
}

/// In a pool thread: stores one message of a group.
fn stored_one(group: &Arc<Group>, i: usize, mut m: MaildirMessage) {
    let outcome = catch_unwind(AssertUnwindSafe(|| m.store_file()))
        .unwrap_or_else(|_| Err(io::Error::other("storing the message panicked")));
    finished_one(group, i, Some(m), outcome);
}

/// Records one message's outcome; the last of its group flushes each `new/` the renames
/// touched once and answers the group.
fn finished_one(group: &Arc<Group>, i: usize, m: Option<MaildirMessage>, outcome: io::Result<()>) {
    group.done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some((m, outcome));
    if group.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    let done = std::mem::take(&mut *group.done.lock().unwrap_or_else(|e| e.into_inner()));
    let mut done: Vec<Done> = done.into_iter().flatten().collect();
    flush_folders(&mut done);
    let outcomes: Vec<Result<(), String>> = done
        .into_iter()
        .map(|(m, outcome)| {
            drop(m);
            outcome.map_err(|e| e.to_string())
        })
        .collect();
    let id = group.id;
    group
        .reactor
        .call_from_thread(move || answer_group(id, outcomes));
}

/// Flushes each `new/` the stored messages were renamed into, once; a message whose folder
/// cannot be flushed is removed from `new/` again (best effort) and fails.
fn flush_folders(done: &mut [Done]) {
    let mut folders: BTreeMap<*const Folders, Vec<usize>> = BTreeMap::new();
    for (i, (m, outcome)) in done.iter().enumerate() {
        if let (Some(m), Ok(())) = (m, outcome) {
            folders
                .entry(Arc::as_ptr(&m.maildir.folders))
                .or_default()
                .push(i);
        }
    }
    for stored in folders.into_values() {
        let Some(maildir) = done[stored[0]].0.as_ref().map(|m| m.maildir.clone()) else {
            continue;
        };
        if let Err(e) = rustix::fs::fsync(&maildir.folders.new) {
            let why = format!("flushing {}: {e}", maildir.path.join("new").display());
            for i in stored {
                // Not acknowledged: not left in new/ either, if it can be helped, so that
                // the client's retry does not make a duplicate.
                let (m, outcome) = &mut done[i];
                if let Some(m) = m {
                    let _ = rustix::fs::unlinkat(
                        &maildir.folders.new,
                        m.name.as_str(),
                        AtFlags::empty(),
                    );
                }
                *outcome = Err(io::Error::other(why.clone()));
            }
        }
    }
}

/// On the reactor thread: answers a group's messages.
fn answer_group(id: u64, outcomes: Vec<Result<(), String>>) {
    let Some(triggers) =
        COMMITTER.with_borrow_mut(|c| c.as_mut().and_then(|c| c.in_pool.remove(&id)))
    else {
        return;
    };
    for (stored, outcome) in triggers.into_iter().zip(outcomes) {
        match outcome {
            Ok(()) => stored.callback(()),
            Err(why) => stored.errback(Failure::new(io::Error::other(why))),
        }
    }
}

impl Drop for MaildirMessage {
    fn drop(&mut self) {
        if self.in_tmp {
            self.file = None;
            let _ = rustix::fs::unlinkat(
                &self.maildir.folders.tmp,
                self.name.as_str(),
                AtFlags::empty(),
            );
        }
    }
}

/// One domain's users, each with a Maildir under one folder (`ROOT/USER/{tmp,new,cur}`):
/// a [`MessageDelivery`] taking mail for `user@domain`. Twisted's `MaildirDirdbmDomain`,
/// with the users listed here rather than in a dbm file.
///
/// The Maildirs of the users who received mail lately are kept open (two folders each, at
/// most [`OPEN_MAILDIRS`] Maildirs), so that a message costs no opening of folders.
#[derive(Debug)]
pub struct MaildirDomain {
    domain: String,
    root: PathBuf,
    users: RefCell<BTreeSet<String>>,
    open: RefCell<HashMap<String, Maildir>>,
}

/// The most Maildirs a [`MaildirDomain`] keeps open; past it, it closes them all and opens
/// again those that receive mail.
pub const OPEN_MAILDIRS: usize = 1024;

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
            open: RefCell::new(HashMap::new()),
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
        self.users.borrow_mut().insert(user.clone());
        self.keep_open(user, &maildir);
        Ok(maildir)
    }

    /// The users, sorted.
    pub fn users(&self) -> Vec<String> {
        self.users.borrow().iter().cloned().collect()
    }

    /// A user's Maildir, if they are a user and it can be opened.
    pub fn maildir(&self, user: &str) -> Option<Maildir> {
        self.open_maildir(user)?.ok()
    }

    /// A user's Maildir, if they are a user: kept open, or opened (and made again if its
    /// folders are missing).
    fn open_maildir(&self, user: &str) -> Option<io::Result<Maildir>> {
        let user = user.to_ascii_lowercase();
        if let Some(open) = self.open.borrow().get(&user) {
            return Some(Ok(open.clone()));
        }
        if !self.users.borrow().contains(&user) {
            return None;
        }
        let opened = Maildir::create(self.root.join(&user));
        if let Ok(maildir) = &opened {
            self.keep_open(user, maildir);
        }
        Some(opened)
    }

    fn keep_open(&self, user: String, maildir: &Maildir) {
        let mut open = self.open.borrow_mut();
        if open.len() >= OPEN_MAILDIRS {
            open.clear();
        }
        open.insert(user, maildir.clone());
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
        let maildir = match self.open_maildir(to.local()) {
            Some(Ok(maildir)) => maildir,
            Some(Err(e)) => {
                tracing::error!("Maildir: cannot open the Maildir of <{to}>: {e}");
                return Err(Reply::new(451, "4.3.0 Cannot store the message now"));
            }
            None => return Err(Reply::new(550, "5.1.1 No such user here")),
        };
        Ok(Box::new(move || {
            Ok(Box::new(maildir.deliver()?) as Box<dyn Message>)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_time_micros_pid_counter_and_host() {
        let mut s = String::new();
        for n in [0, 7, 10, 1_234_567_890, u64::MAX] {
            s.clear();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        let name = unique_name();
        let (secs, rest) = name.split_once(".M").unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_600_000_000, "{name}");
        let (micros, rest) = rest.split_once('P').unwrap();
        assert!(micros.parse::<u32>().unwrap() < 1_000_000, "{name}");
        let (pid, rest) = rest.split_once('Q').unwrap();
        assert_eq!(pid.parse::<u32>().unwrap(), std::process::id());
        let (count, host) = rest.split_once('.').unwrap();
        count.parse::<u64>().unwrap();
        assert!(!host.is_empty() && !host.contains('/'), "{name}");
    }
}
