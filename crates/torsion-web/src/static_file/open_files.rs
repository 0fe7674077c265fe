//! Files kept open between requests (nginx's `open_file_cache`): a request for a file whose
//! device and inode match an entry reads through the entry's descriptor instead of opening
//! and closing the file again, two system calls of the six a small file costs.
//!
//! Nothing served can be stale. The caller looks the path up first (`lstat` or `stat`, which
//! the resource does anyway), so the metadata (length, validators) is always fresh; an entry
//! is used only when that fresh metadata names the inode the entry holds open, and the
//! descriptor reads that inode's current bytes. While a descriptor is open its inode cannot be
//! freed, so no other file can take the same device and inode number. An entry is reopened
//! after [`TTL`] (so a deleted file's space is not held for long), and the cache holds at most
//! [`MAX_OPEN`] descriptors.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a descriptor is reused before the file is opened again.
pub(super) const TTL: Duration = Duration::from_secs(10);
/// How many descriptors one site keeps open at the most.
pub(super) const MAX_OPEN: usize = 256;

/// One site's open files (shared by every `File` made below its root).
#[derive(Default)]
pub(super) struct OpenFiles {
    entries: RefCell<HashMap<PathBuf, Entry>>,
}

struct Entry {
    dev: u64,
    ino: u64,
    opened: Instant,
    file: Rc<fs::File>,
}

impl OpenFiles {
    /// The file at `path`, which the caller just found to have metadata `meta`.
    pub(super) fn open(&self, path: &Path, meta: &fs::Metadata) -> io::Result<Rc<fs::File>> {
        let (dev, ino) = identity(meta);
        let now = Instant::now();
        if let Some(e) = self.entries.borrow().get(path) {
            if (e.dev, e.ino) == (dev, ino) && now.duration_since(e.opened) < TTL {
                return Ok(e.file.clone());
            }
        }
        let file = Rc::new(fs::File::open(path)?);
        let mut entries = self.entries.borrow_mut();
        entries.remove(path);
        // Kept only if it is the file the caller looked at (the path may have been replaced
        // between the lookup and the open); either way this request reads what it opened.
        if file.metadata().is_ok_and(|m| identity(&m) == (dev, ino)) && dev | ino != 0 {
            if entries.len() >= MAX_OPEN {
                entries.retain(|_, e| now.duration_since(e.opened) < TTL);
                if entries.len() >= MAX_OPEN {
                    entries.clear();
                }
            }
            entries.insert(
                path.to_owned(),
                Entry {
                    dev,
                    ino,
                    opened: now,
                    file: file.clone(),
                },
            );
        }
        Ok(file)
    }

    /// How many descriptors are held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.borrow().len()
    }
}

/// The device and inode a file's metadata names (0, 0 where the platform has none: such
/// files are never cached).
fn identity(meta: &fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("torsion-open-files-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Opens `path` as a request does: looked up first, then through the cache.
    fn open(files: &OpenFiles, path: &Path) -> Rc<fs::File> {
        files
            .open(path, &fs::symlink_metadata(path).unwrap())
            .unwrap()
    }

    fn read_all(file: &fs::File, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    #[test]
    fn a_file_is_opened_once_and_read_fresh() {
        let dir = temp("fresh");
        let path = dir.join("a.txt");
        fs::write(&path, b"first").unwrap();
        let files = OpenFiles::default();
        let f1 = open(&files, &path);
        let f2 = open(&files, &path);
        assert!(
            Rc::ptr_eq(&f1, &f2),
            "the second request reuses the descriptor"
        );
        // Rewritten in place: same inode, the descriptor reads the new bytes.
        fs::write(&path, b"again").unwrap();
        let f3 = open(&files, &path);
        assert_eq!(read_all(&f3, 5), b"again");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_replaced_file_is_opened_again() {
        let dir = temp("replaced");
        let path = dir.join("a.txt");
        fs::write(&path, b"old").unwrap();
        let files = OpenFiles::default();
        let old = open(&files, &path);
        // Replaced by rename, as deploy tools do: a new inode at the same path.
        let new_path = dir.join("a.txt.new");
        fs::write(&new_path, b"new!").unwrap();
        fs::rename(&new_path, &path).unwrap();
        let new = open(&files, &path);
        assert!(!Rc::ptr_eq(&old, &new));
        assert_eq!(read_all(&new, 4), b"new!");
        assert_eq!(files.len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn metadata_of_another_file_is_not_cached() {
        let dir = temp("other");
        let (a, b) = (dir.join("a"), dir.join("b"));
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        let files = OpenFiles::default();
        // The lookup saw `b`, but `a` is what gets opened (a replaced path): served, not kept.
        let f = files.open(&a, &fs::symlink_metadata(&b).unwrap()).unwrap();
        assert_eq!(read_all(&f, 1), b"a");
        assert_eq!(files.len(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_cache_is_bounded() {
        let dir = temp("bounded");
        let files = OpenFiles::default();
        for i in 0..MAX_OPEN + 10 {
            let path = dir.join(format!("f{i}"));
            fs::write(&path, b"x").unwrap();
            open(&files, &path);
            assert!(files.len() <= MAX_OPEN);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
