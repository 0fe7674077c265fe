//! Shared by the tests of torsion-db: a throwaway PostgreSQL server
//! ([`postgres_url`]), unique temporary paths, and the behaviour every backend must show
//! ([`conformance`]).
#![allow(dead_code, unreachable_pub)]

pub mod conformance;
pub mod pg;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A path in the temporary folder, unique to this process and call; the files SQLite makes
/// beside it (`-wal`, `-shm`) are removed with it when the guard drops.
pub struct TempDb(pub PathBuf);

impl TempDb {
    pub fn new(tag: &str) -> TempDb {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempDb(std::env::temp_dir().join(format!("torsion-db-{tag}-{}-{n}.db", std::process::id())))
    }

    /// `sqlite:PATH`.
    pub fn url(&self) -> String {
        format!("sqlite:{}", self.0.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}
