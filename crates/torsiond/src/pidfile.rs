//! The PID file (Twisted's `twistd --pidfile`): written when the runner starts, removed when it
//! exits; a file naming a live process stops a second copy from starting, and a stale one
//! (its process is gone, or it holds no number) is replaced.
//!
//! ```
//! use torsiond::pidfile::PidFile;
//!
//! let path = std::env::temp_dir().join(format!("torsiond-doc-{}.pid", std::process::id()));
//! let pidfile = PidFile::create(&path).unwrap();
//! let written = std::fs::read_to_string(&path).unwrap();
//! assert_eq!(written.trim(), std::process::id().to_string());
//! // This process is alive, so a second PID file at the same path is refused.
//! assert!(PidFile::create(&path).unwrap_err().contains("is running"));
//! drop(pidfile); // removes the file
//! assert!(!path.exists());
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustix::process::{test_kill_process, Pid};

/// A PID file this process wrote; dropping it removes the file (if it still names this
/// process).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

/// Whether process `pid` exists: `kill(pid, 0)` succeeds, or fails only for lack of
/// permission (the process is someone else's).
fn alive(pid: i32) -> bool {
    let Some(pid) = Pid::from_raw(pid) else {
        return false;
    };
    match test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

impl PidFile {
    /// Writes this process's ID to `path`, replacing a stale file.
    ///
    /// # Errors
    /// A one-line message: the file names a live process, or it cannot be read or written.
    pub fn create(path: &Path) -> Result<PidFile, String> {
        let me = std::process::id();
        match fs::read_to_string(path) {
            Ok(text) => match text.trim().parse::<i32>() {
                Ok(pid) if pid > 0 && alive(pid) => {
                    return Err(format!(
                        "the pidfile {} says process {pid} is running: is another torsiond using it? (remove the file if not)",
                        path.display()
                    ));
                }
                _ => {
                    tracing::info!("replacing the stale pidfile {}", path.display());
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read the pidfile {}: {e}", path.display())),
        }
        // Written to a temporary name and renamed, so nobody reads a half-written file.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{me}.tmp"));
        let tmp = PathBuf::from(tmp);
        let written = fs::File::create(&tmp)
            .and_then(|mut f| writeln!(f, "{me}"))
            .and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(format!("cannot write the pidfile {}: {e}", path.display()));
        }
        Ok(PidFile {
            path: path.to_owned(),
            pid: me,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = fs::read_to_string(&self.path)
            .is_ok_and(|t| t.trim().parse::<u32>().ok() == Some(self.pid));
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_pidfile_is_replaced() {
        let path =
            std::env::temp_dir().join(format!("torsiond-unit-{}-stale.pid", std::process::id()));
        // PID numbers never reach i32::MAX - 1 on Linux (pid_max is at most 2^22).
        fs::write(&path, format!("{}\n", i32::MAX - 1)).unwrap();
        let p = PidFile::create(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        drop(p);
        assert!(!path.exists());
    }

    #[test]
    fn garbage_counts_as_stale() {
        let path =
            std::env::temp_dir().join(format!("torsiond-unit-{}-junk.pid", std::process::id()));
        fs::write(&path, "not a number").unwrap();
        drop(PidFile::create(&path).unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_folder_is_an_error() {
        let err = PidFile::create(Path::new("/nonexistent-folder-for-torsiond/x.pid")).unwrap_err();
        assert!(err.contains("cannot write the pidfile"), "{err}");
    }
}
