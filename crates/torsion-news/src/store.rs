//! Where articles live: a [`Store`] of newsgroups, on disk (one folder per group, one file
//! per article, named by its number) or in memory (for tests).
//!
//! On disk, an article is written under a temporary name in the root, `fsync`ed, then
//! hard-linked to its number in each of its groups (a link never replaces a file, so two
//! writers cannot take the same number) and the folders `fsync`ed: a reader sees a whole
//! article or none. Files are the articles as posted, lines ended with CRLF and not
//! dot-stuffed. The overview (subject, sender, ...) and the message-id index are kept in
//! memory, rebuilt from the files when the store is opened.
//!
//! ```
//! use torsion_news::store::Store;
//!
//! let store = Store::in_memory();
//! store.create_group("local.test", "Testing", 0).unwrap();
//! let placed = store
//!     .post(b"From: a@b\r\nSubject: hi\r\nMessage-ID: <1@b>\r\n\r\nHello\r\n", &["local.test".into()], 5)
//!     .unwrap();
//! assert_eq!(placed, vec![("local.test".to_string(), 1)]);
//! assert_eq!(store.locate("<1@b>"), Some(("local.test".to_string(), 1)));
//! assert_eq!(store.group("local.test").unwrap().count, 1);
//! ```
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::wire::{header, headers, split_article, wildmat};

/// An article's overview (RFC 3977 8.3): what OVER and HDR answer from without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overview {
    /// `Subject:`
    pub subject: String,
    /// `From:`
    pub from: String,
    /// `Date:`
    pub date: String,
    /// `Message-ID:`
    pub message_id: String,
    /// `References:`
    pub references: String,
    /// The article's size in octets, CRLFs included.
    pub bytes: u64,
    /// Lines in its body.
    pub lines: u64,
    /// When it arrived, Unix seconds (NEWNEWS).
    pub arrived: i64,
}

impl Overview {
    /// The overview of an article (CRLF lines) that arrived at `arrived`. Tabs and line
    /// breaks in fields become spaces, as an OVER line needs.
    pub fn of(article: &[u8], arrived: i64) -> Overview {
        let (head, body) = split_article(article);
        let hs = headers(head);
        let field = |name: &str| {
            header(&hs, name)
                .unwrap_or("")
                .replace(['\t', '\r', '\n'], " ")
        };
        let lines = body.iter().filter(|&&b| b == b'\n').count() as u64
            + u64::from(!body.is_empty() && !body.ends_with(b"\n"));
        Overview {
            subject: field("Subject"),
            from: field("From"),
            date: field("Date"),
            message_id: field("Message-ID"),
            references: field("References"),
            bytes: article.len() as u64,
            lines,
            arrived,
        }
    }
}

/// What LIST and GROUP say about a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Its name.
    pub name: String,
    /// Its description (LIST NEWSGROUPS), maybe empty.
    pub description: String,
    /// When it was made, Unix seconds (NEWGROUPS).
    pub created: i64,
    /// Articles in it.
    pub count: u64,
    /// Its lowest article number (one more than `high` when empty).
    pub low: u64,
    /// Its highest article number.
    pub high: u64,
}

#[derive(Default)]
struct Group {
    description: String,
    created: i64,
    articles: BTreeMap<u64, Overview>,
    /// The articles themselves, for a store in memory.
    texts: HashMap<u64, Vec<u8>>,
    next: u64,
}

impl Group {
    fn info(&self, name: &str) -> GroupInfo {
        let low = self.articles.keys().next().copied().unwrap_or(self.next);
        GroupInfo {
            name: name.to_owned(),
            description: self.description.clone(),
            created: self.created,
            count: self.articles.len() as u64,
            low,
            high: self.next - 1,
        }
    }
}

struct Inner {
    root: Option<PathBuf>,
    groups: BTreeMap<String, Group>,
    ids: HashMap<String, (String, u64)>,
    temporaries: u64,
    serials: u64,
}

/// A set of newsgroups and their articles; cheap to clone (clones share it).
#[derive(Clone)]
pub struct Store(Rc<RefCell<Inner>>);

/// Whether `name` is a group name this store takes: 1 to 128 of `a-z A-Z 0-9 . + - _`,
/// not starting with a dot and without `..` (so it is a safe folder name too).
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-_.".contains(&b))
}

fn bad_name(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{name:?} is not a newsgroup name (letters, digits, . + - _)"),
    )
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn mtime(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

impl Store {
    /// A store kept in memory only.
    pub fn in_memory() -> Store {
        Store(Rc::new(RefCell::new(Inner {
            root: None,
            groups: BTreeMap::new(),
            ids: HashMap::new(),
            temporaries: 0,
            serials: 0,
        })))
    }

    /// A number not given before by this store (for the message-ids a server makes).
    pub fn next_serial(&self) -> u64 {
        let mut inner = self.0.borrow_mut();
        inner.serials += 1;
        inner.serials
    }

    /// The store in folder `root` (made if missing): every sub-folder with a group's name
    /// is a group, every file in it named by a number an article. Its `.description` file,
    /// if any, describes it; `.created` holds when it was made (Unix seconds).
    pub fn open(root: impl AsRef<Path>) -> io::Result<Store> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root)?;
        let mut groups = BTreeMap::new();
        let mut ids = HashMap::new();
        // Groups in name order, so a crossposted article's first group is the same on
        // every start.
        let mut entries = std::fs::read_dir(&root)?.collect::<io::Result<Vec<_>>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type()?.is_dir() || !valid_group_name(&name) {
                continue;
            }
            let dir = entry.path();
            let mut group = Group {
                description: std::fs::read_to_string(dir.join(".description"))
                    .map(|d| d.trim().to_owned())
                    .unwrap_or_default(),
                created: std::fs::read_to_string(dir.join(".created"))
                    .ok()
                    .and_then(|c| c.trim().parse().ok())
                    .unwrap_or(0),
                ..Group::default()
            };
            for file in std::fs::read_dir(&dir)? {
                let file = file?;
                let Some(n) = file
                    .file_name()
                    .to_str()
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|&n| n > 0)
                else {
                    continue;
                };
                let text = std::fs::read(file.path())?;
                let overview = Overview::of(&text, mtime(&file.metadata()?));
                if !overview.message_id.is_empty() {
                    ids.entry(overview.message_id.clone())
                        .or_insert_with(|| (name.clone(), n));
                }
                group.articles.insert(n, overview);
            }
            group.next = group.articles.keys().next_back().map_or(1, |n| n + 1);
            groups.insert(name, group);
        }
        Ok(Store(Rc::new(RefCell::new(Inner {
            root: Some(root),
            groups,
            ids,
            temporaries: 0,
            serials: 0,
        }))))
    }

    /// Makes group `name` (nothing if it exists), described by `description`, made at
    /// `now` (Unix seconds).
    pub fn create_group(&self, name: &str, description: &str, now: i64) -> io::Result<()> {
        if !valid_group_name(name) {
            return Err(bad_name(name));
        }
        let mut inner = self.0.borrow_mut();
        if inner.groups.contains_key(name) {
            return Ok(());
        }
        if let Some(root) = &inner.root {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(".created"), format!("{now}\n"))?;
            if !description.is_empty() {
                std::fs::write(dir.join(".description"), format!("{description}\n"))?;
            }
            sync_dir(root)?;
        }
        inner.groups.insert(
            name.to_owned(),
            Group {
                description: description.to_owned(),
                created: now,
                next: 1,
                ..Group::default()
            },
        );
        Ok(())
    }

    /// Every group, by name.
    pub fn groups(&self) -> Vec<GroupInfo> {
        let inner = self.0.borrow();
        inner.groups.iter().map(|(n, g)| g.info(n)).collect()
    }

    /// One group.
    pub fn group(&self, name: &str) -> Option<GroupInfo> {
        self.0.borrow().groups.get(name).map(|g| g.info(name))
    }

    /// The article numbers of a group within `low..=high`, in order.
    pub fn numbers(&self, name: &str, low: u64, high: u64) -> Vec<u64> {
        let inner = self.0.borrow();
        match inner.groups.get(name) {
            Some(g) if low <= high => g.articles.range(low..=high).map(|(n, _)| *n).collect(),
            _ => Vec::new(),
        }
    }

    /// The overview of an article.
    pub fn overview(&self, name: &str, number: u64) -> Option<Overview> {
        let inner = self.0.borrow();
        inner.groups.get(name)?.articles.get(&number).cloned()
    }

    /// An article, as stored (CRLF lines, not dot-stuffed).
    pub fn article(&self, name: &str, number: u64) -> io::Result<Option<Vec<u8>>> {
        let inner = self.0.borrow();
        let Some(group) = inner.groups.get(name) else {
            return Ok(None);
        };
        if !group.articles.contains_key(&number) {
            return Ok(None);
        }
        match &inner.root {
            None => Ok(group.texts.get(&number).cloned()),
            Some(root) => match std::fs::read(root.join(name).join(number.to_string())) {
                Ok(t) => Ok(Some(t)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Where the article with this message-id is: its first group and number there.
    pub fn locate(&self, message_id: &str) -> Option<(String, u64)> {
        self.0.borrow().ids.get(message_id).cloned()
    }

    /// The message-ids of articles that arrived at or after `since` in groups matching
    /// `pattern` (a wildmat), each once.
    pub fn new_news(&self, pattern: &str, since: i64) -> Vec<String> {
        let inner = self.0.borrow();
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for (name, g) in &inner.groups {
            if !wildmat(pattern, name) {
                continue;
            }
            for o in g.articles.values() {
                if o.arrived >= since && !o.message_id.is_empty() && seen.insert(&o.message_id) {
                    out.push(o.message_id.clone());
                }
            }
        }
        out
    }

    /// Stores `article` (CRLF lines, headers complete: the server has added Message-ID and
    /// Date) in each of `groups` that exists, arrived at `now`; answers where it went.
    /// Fails if none of the groups exists, or on a disk error (nothing is then indexed).
    pub fn post(
        &self,
        article: &[u8],
        groups: &[String],
        now: i64,
    ) -> io::Result<Vec<(String, u64)>> {
        let mut inner = self.0.borrow_mut();
        let mut targets: Vec<(String, u64)> = Vec::new();
        for g in groups {
            if let Some(group) = inner.groups.get(g) {
                if !targets.iter().any(|(t, _)| t == g) {
                    targets.push((g.clone(), group.next));
                }
            }
        }
        if targets.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "none of its newsgroups is carried here",
            ));
        }
        if let Some(root) = inner.root.clone() {
            inner.temporaries += 1;
            let tmp = root.join(format!(".tmp-{}-{}", std::process::id(), inner.temporaries));
            let written = (|| {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(article)?;
                f.sync_all()?;
                for (g, n) in &mut targets {
                    let dir = root.join(&*g);
                    // A link never replaces a file: a number another writer took is skipped.
                    loop {
                        match std::fs::hard_link(&tmp, dir.join(n.to_string())) {
                            Ok(()) => break,
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => *n += 1,
                            Err(e) => return Err(e),
                        }
                    }
                    sync_dir(&dir)?;
                }
                Ok(())
            })();
            let _ = std::fs::remove_file(&tmp);
            written?;
        }
        let overview = Overview::of(article, now);
        for (g, n) in &targets {
            let group = inner.groups.get_mut(g).expect("checked above");
            group.articles.insert(*n, overview.clone());
            group.next = n + 1;
            if group_is_memory(&inner.root) {
                let group = inner.groups.get_mut(g).expect("checked above");
                group.texts.insert(*n, article.to_vec());
            }
        }
        if !overview.message_id.is_empty() {
            let first = targets[0].clone();
            inner.ids.entry(overview.message_id).or_insert(first);
        }
        Ok(targets)
    }
}

fn group_is_memory(root: &Option<PathBuf>) -> bool {
    root.is_none()
}
