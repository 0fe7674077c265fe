//! Password stores that keep hashes: [`PasswordHashDb`] in memory (users given on a command
//! line) and [`FilePasswordDb`], a file of `user:hash` lines (Twisted's `FilePasswordDB`,
//! with hashes where Twisted's default is plain text).
//!
//! Both check a login the same way, the same number of times whether the user exists or not:
//!
//! 1. in a worker thread, through a [`VerifyLimiter`] (a few at once, a bounded queue), never
//!    on the reactor;
//! 2. a known user's password is verified against their hash; an unknown user's against a
//!    [dummy](crate::StoredHash::dummy) of the cost most hashes in the store have, so the
//!    refusal takes as long as a wrong password's and says the same
//!    ([`UnauthorizedLogin`]).
//!
//! The file format is `htpasswd`'s: one `user:hash` per line, `#` comments and blank lines
//! ignored, hashes in Argon2 PHC form (what [`hash_password`](crate::hash_password) and
//! Python's `argon2-cffi` write) or bcrypt (`htpasswd -B`, Python's `bcrypt`). A line that
//! cannot be used is logged with its file and line number, and skipped. The file is read again
//! when it changes (size, modification time or inode), checked before each login.
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use torsion::{reactor, Reactor};
//! use torsion_cred::{hash_password, AvatarId, CredentialsChecker, FilePasswordDb, UsernamePassword};
//!
//! let dir = std::env::temp_dir().join(format!("cred-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("passwords");
//! let text = format!("# user:hash\nalice:{}\nbob:not-a-hash\n", hash_password("secret"));
//! std::fs::write(&path, text).unwrap();
//!
//! let db = FilePasswordDb::open(&path).unwrap();
//! assert_eq!(db.users(), 1);
//! assert_eq!(db.malformed()[0].line, 3); // bob's line, logged and skipped
//!
//! let r = Reactor::new();
//! let who = Rc::new(RefCell::new(None));
//! let w = who.clone();
//! r.call_when_running(move || {
//!     db.request_avatar_id(UsernamePassword::new("alice", "secret"))
//!         .add_both(move |id| {
//!             *w.borrow_mut() = Some(id?);
//!             reactor().stop()
//!         })
//! });
//! r.run().unwrap();
//! assert_eq!(*who.borrow(), Some(AvatarId::User("alice".into())));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use torsion::defer::Deferred;

use crate::checker::CredentialsChecker;
use crate::credentials::{AvatarId, UsernamePassword};
use crate::error::{HashFormatError, UnauthorizedLogin};
use crate::hash::{HashVerifier, StoredHash, Verifier};
use crate::limit::VerifyLimiter;

/// Users and their hashes, with the stand-in unknown users are checked against.
#[derive(Clone)]
struct Table {
    users: HashMap<String, StoredHash>,
    dummy: StoredHash,
}

impl Table {
    fn new(users: HashMap<String, StoredHash>) -> Table {
        let dummy = dummy_for(&users);
        Table { users, dummy }
    }

    /// Verifies once, whoever asks: against the user's hash or the dummy.
    fn check(&self, verifier: &dyn Verifier, credentials: &UsernamePassword) -> bool {
        match self.users.get(credentials.username()) {
            Some(hash) => verifier.verify(credentials.password(), hash),
            None => {
                // The answer is no either way; the work is done so that it takes as long.
                let _ = verifier.verify(credentials.password(), &self.dummy);
                false
            }
        }
    }
}

/// A dummy of the cost most of `users`' hashes have (the default cost for none), logging when
/// costs differ: then a user with a rarer cost can be told from an unknown one by timing.
fn dummy_for(users: &HashMap<String, StoredHash>) -> StoredHash {
    let mut costs: HashMap<String, (usize, &StoredHash)> = HashMap::new();
    for hash in users.values() {
        costs.entry(hash.cost()).or_insert((0, hash)).0 += 1;
    }
    if costs.len() > 1 {
        tracing::warn!(
            costs = costs.len(),
            "password hashes of different costs: unknown users are checked at the most common \
             one, so users with another can be told apart by timing; rehash them at one cost"
        );
    }
    costs
        .into_iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then_with(|| b.0.cmp(&a.0)))
        .map_or_else(StoredHash::default_dummy, |(_, (_, hash))| hash.dummy())
}

/// Checks a login against the table `table` gives, in a worker thread.
fn check_login(
    limiter: &VerifyLimiter,
    verifier: Arc<dyn Verifier>,
    table: impl FnOnce() -> Arc<Table> + Send + 'static,
    credentials: UsernamePassword,
) -> Deferred<AvatarId> {
    limiter
        .run(move || {
            let ok = table().check(&*verifier, &credentials);
            ok.then(|| AvatarId::User(credentials.username().to_owned()))
        })
        .add_callback_result(|id| id.ok_or(UnauthorizedLogin))
}

/// User names and password hashes held in memory: `torsiond mail --user alice=HASH`.
///
/// Only hashes go in ([`add_user`](Self::add_user) refuses anything else); checking is the
/// module's: in a worker thread, unknown users against a dummy. Cheap to clone: clones share
/// the users and the limiter.
#[derive(Clone)]
pub struct PasswordHashDb {
    table: Rc<RefCell<Arc<Table>>>,
    limiter: VerifyLimiter,
    verifier: Arc<dyn Verifier>,
}

impl PasswordHashDb {
    /// An empty store, verifying through a [`VerifyLimiter::default`].
    pub fn new() -> PasswordHashDb {
        PasswordHashDb {
            table: Rc::new(RefCell::new(Arc::new(Table::new(HashMap::new())))),
            limiter: VerifyLimiter::default(),
            verifier: Arc::new(HashVerifier),
        }
    }

    /// Adds a user with a stored hash (a PHC or bcrypt string), or replaces their hash.
    pub fn add_user(&self, username: impl Into<String>, hash: &str) -> Result<(), HashFormatError> {
        let hash = StoredHash::parse(hash)?;
        let mut table = self.table.borrow_mut();
        let mut users = table.users.clone();
        users.insert(username.into(), hash);
        *table = Arc::new(Table::new(users));
        Ok(())
    }

    /// Removes a user; true if they were there.
    pub fn remove_user(&self, username: &str) -> bool {
        let mut table = self.table.borrow_mut();
        let mut users = table.users.clone();
        let was = users.remove(username).is_some();
        *table = Arc::new(Table::new(users));
        was
    }

    /// How many users it holds.
    pub fn users(&self) -> usize {
        self.table.borrow().users.len()
    }

    /// Verifies through `limiter` (shared with other checkers, or with other limits).
    pub fn with_limiter(mut self, limiter: VerifyLimiter) -> PasswordHashDb {
        self.limiter = limiter;
        self
    }

    /// Verifies through `verifier` instead of [`HashVerifier`].
    pub fn with_verifier(mut self, verifier: Arc<dyn Verifier>) -> PasswordHashDb {
        self.verifier = verifier;
        self
    }
}

impl Default for PasswordHashDb {
    fn default() -> PasswordHashDb {
        PasswordHashDb::new()
    }
}

impl fmt::Debug for PasswordHashDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHashDb")
            .field("users", &self.users())
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl CredentialsChecker<UsernamePassword> for PasswordHashDb {
    fn request_avatar_id(&self, credentials: UsernamePassword) -> Deferred<AvatarId> {
        let table = self.table.borrow().clone();
        check_login(
            &self.limiter,
            self.verifier.clone(),
            move || table,
            credentials,
        )
    }
}

/// A line of a password file that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The file.
    pub path: PathBuf,
    /// The line number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.reason)
    }
}

/// What identifies a version of the file: a change to any of these reloads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

struct FileState {
    /// The version loaded; None when the file could not be read.
    stamp: Option<Stamp>,
    table: Arc<Table>,
    malformed: Vec<Malformed>,
}

/// A file of `user:hash` lines (Twisted's `FilePasswordDB`), read again when it changes.
///
/// See the [module](self) for the format and how logins are checked. Cheap to clone: clones
/// share the loaded file and the limiter.
#[derive(Clone)]
pub struct FilePasswordDb {
    path: Arc<Path>,
    state: Arc<Mutex<FileState>>,
    limiter: VerifyLimiter,
    verifier: Arc<dyn Verifier>,
}

impl FilePasswordDb {
    /// Reads the file now (lines that cannot be used are logged and skipped: see
    /// [`malformed`](Self::malformed)); fails if it cannot be read at all. Blocking: call it
    /// while setting up, before the reactor runs, or in a thread.
    pub fn open(path: impl AsRef<Path>) -> io::Result<FilePasswordDb> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        let stamp = Stamp::of(&path)?;
        let bytes = std::fs::read(&path)?;
        let (table, malformed) = parse_file(&path, &bytes);
        tracing::info!(path = %path.display(), users = table.users.len(), "password file loaded");
        Ok(FilePasswordDb {
            path,
            state: Arc::new(Mutex::new(FileState {
                stamp: Some(stamp),
                table: Arc::new(table),
                malformed,
            })),
            limiter: VerifyLimiter::default(),
            verifier: Arc::new(HashVerifier),
        })
    }

    /// Verifies through `limiter` (shared with other checkers, or with other limits).
    pub fn with_limiter(mut self, limiter: VerifyLimiter) -> FilePasswordDb {
        self.limiter = limiter;
        self
    }

    /// Verifies through `verifier` instead of [`HashVerifier`].
    pub fn with_verifier(mut self, verifier: Arc<dyn Verifier>) -> FilePasswordDb {
        self.verifier = verifier;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many users the version loaded holds.
    pub fn users(&self) -> usize {
        lock(&self.state).table.users.len()
    }

    /// The lines the last load skipped (also logged as warnings then).
    pub fn malformed(&self) -> Vec<Malformed> {
        lock(&self.state).malformed.clone()
    }

    /// Reads the file again if it changed since it was loaded; true if it was read.
    /// Logins do this themselves, in their worker thread; this is for a program that wants
    /// to know now (after a SIGHUP, say). Blocking.
    pub fn reload_if_changed(&self) -> bool {
        reload_if_changed(&self.path, &self.state).1
    }
}

impl fmt::Debug for FilePasswordDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilePasswordDb")
            .field("path", &self.path)
            .field("users", &self.users())
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl CredentialsChecker<UsernamePassword> for FilePasswordDb {
    fn request_avatar_id(&self, credentials: UsernamePassword) -> Deferred<AvatarId> {
        let (path, state) = (self.path.clone(), self.state.clone());
        check_login(
            &self.limiter,
            self.verifier.clone(),
            move || reload_if_changed(&path, &state).0,
            credentials,
        )
    }
}

fn lock(state: &Mutex<FileState>) -> std::sync::MutexGuard<'_, FileState> {
    // A panic while holding it cannot leave a half-made table (tables are swapped whole).
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The current table, reading the file first if it changed; and whether it was read.
fn reload_if_changed(path: &Path, state: &Mutex<FileState>) -> (Arc<Table>, bool) {
    let mut st = lock(state);
    let stamp = Stamp::of(path).ok();
    if stamp == st.stamp {
        return (st.table.clone(), false);
    }
    let read = stamp
        .ok_or(())
        .and_then(|_| std::fs::read(path).map_err(|_| ()));
    match read {
        Ok(bytes) => {
            let (table, malformed) = parse_file(path, &bytes);
            tracing::info!(path = %path.display(), users = table.users.len(), "password file changed: reloaded");
            st.table = Arc::new(table);
            st.malformed = malformed;
        }
        Err(()) => {
            // Gone or unreadable: nobody gets in until it is back (it may have been removed
            // to lock everyone out), and this is said once, not at every login.
            tracing::error!(path = %path.display(), "password file cannot be read: every login is refused until it can");
            st.table = Arc::new(Table::new(HashMap::new()));
            st.malformed = vec![Malformed {
                path: path.to_owned(),
                line: 0,
                reason: "cannot be read".into(),
            }];
        }
    }
    st.stamp = stamp;
    (st.table.clone(), true)
}

/// Reads `user:hash` lines; the lines that cannot be used are logged and returned.
fn parse_file(path: &Path, bytes: &[u8]) -> (Table, Vec<Malformed>) {
    let mut users = HashMap::new();
    let mut malformed = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let mut skip = |reason: String| {
            let m = Malformed {
                path: path.to_owned(),
                line,
                reason,
            };
            tracing::warn!("{m}: line skipped");
            malformed.push(m);
        };
        let Ok(text) = std::str::from_utf8(raw) else {
            skip("not UTF-8".into());
            continue;
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = text.split_once(':') else {
            skip("expected user:hash".into());
            continue;
        };
        let user = user.trim();
        if user.is_empty() {
            skip("empty user name".into());
            continue;
        }
        match StoredHash::parse(hash) {
            Ok(hash) => {
                if users.contains_key(user) {
                    skip(format!(
                        "{user} is already on an earlier line; this one is ignored"
                    ));
                } else {
                    users.insert(user.to_owned(), hash);
                }
            }
            Err(e) => skip(format!("user {user}: {e}")),
        }
    }
    (Table::new(users), malformed)
}
