//! Scratch folders for tests (trial's `TestCase.mktemp`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty folder under the system's temporary folder, removed with everything in it
/// when dropped: trial's `mktemp()`, except that the folder is made (most tests want it) and
/// goes away with the test.
///
/// The name is `torsion-NAME-PID-N`: unique across the tests of one process (N counts) and
/// across processes running at once (PID), so tests using it run in parallel.
///
/// ```
/// use torsion::testing::TempDir;
///
/// let kept;
/// {
///     let dir = TempDir::new("doc");
///     std::fs::write(dir.join("a.txt"), b"hello").unwrap();
///     assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"hello");
///     kept = dir.path().to_path_buf();
/// }
/// assert!(!kept.exists());
/// ```
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes the folder, empty (a leftover of an earlier run with the same name is removed).
    ///
    /// # Panics
    ///
    /// When the folder cannot be made: a test cannot go on without it.
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "torsion-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("TempDir: cannot make {}: {e}", dir.display());
        }
        TempDir(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the folder (`path().join(name)`).
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
