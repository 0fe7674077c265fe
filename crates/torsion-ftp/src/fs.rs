//! The served folder: client paths resolved inside a root (never outside it, `..` and
//! symbolic links included), and the listing formats (`ls -l` lines for LIST, RFC 3659
//! facts for MLSD/MLST, MDTM's time stamps).
//!
//! ```
//! use torsion_ftp::fs::virtual_path;
//!
//! assert_eq!(virtual_path("/pub", "../etc/x").as_deref(), Ok("/etc/x"));
//! assert_eq!(virtual_path("/pub", "docs/./a").as_deref(), Ok("/pub/docs/a"));
//! assert!(virtual_path("/", "../../etc/passwd").is_err()); // above the root: refused
//! ```
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A path that would leave the root (through `..` or a symbolic link).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutsideRoot;

impl std::fmt::Display for OutsideRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("path outside the served folder")
    }
}

impl std::error::Error for OutsideRoot {}

/// The client's view of `arg` from the working directory `cwd`: an absolute path of `/`-
/// separated names, `.` and `..` resolved. Going above `/` is refused (as Twisted's
/// `toSegments` raises `InvalidPath`), as are NUL bytes.
pub fn virtual_path(cwd: &str, arg: &str) -> Result<String, OutsideRoot> {
    if arg.contains('\0') {
        return Err(OutsideRoot);
    }
    let mut segs: Vec<&str> = Vec::new();
    let start = if arg.starts_with('/') { "" } else { cwd };
    for part in start.split('/').chain(arg.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                segs.pop().ok_or(OutsideRoot)?;
            }
            name => segs.push(name),
        }
    }
    Ok(format!("/{}", segs.join("/")))
}

/// A folder served: resolves client paths to real ones inside it.
#[derive(Clone, Debug)]
pub struct Root {
    real: PathBuf,
}

impl Root {
    /// Serves `dir`, which must exist (it is resolved once, symbolic links and all).
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Root> {
        Ok(Root {
            real: dir.as_ref().canonicalize()?,
        })
    }

    /// The folder, resolved.
    pub fn path(&self) -> &Path {
        &self.real
    }

    /// The real path for the virtual path `vpath` (from [`virtual_path`]), checked to stay
    /// inside the root: the longest part of it that exists is resolved (symbolic links
    /// followed) and must be under the root, and what follows must be plain names. A link
    /// pointing out of the root is refused, whether it is the file named or a folder on
    /// the way.
    pub fn resolve(&self, vpath: &str) -> io::Result<PathBuf> {
        let mut real = self.real.clone();
        for seg in vpath.split('/').filter(|s| !s.is_empty()) {
            if seg == "." || seg == ".." || Path::new(seg).components().count() != 1 {
                return Err(refused());
            }
            real.push(seg);
        }
        // The deepest existing ancestor (or the path itself), resolved.
        let mut existing = real.as_path();
        let mut rest = Vec::new();
        let resolved = loop {
            match existing.canonicalize() {
                Ok(p) => break p,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // A dangling symbolic link is not a name to create through.
                    if existing.symlink_metadata().is_ok() {
                        return Err(refused());
                    }
                    match (existing.parent(), existing.file_name()) {
                        (Some(parent), Some(name)) => {
                            rest.push(name.to_owned());
                            existing = parent;
                        }
                        _ => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        };
        if !resolved.starts_with(&self.real) {
            return Err(refused());
        }
        let mut out = resolved;
        for name in rest.into_iter().rev() {
            out.push(name);
        }
        Ok(out)
    }
}

fn refused() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, OutsideRoot)
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX / 2),
    }
}

/// `YYYYMMDDHHMMSS` in UTC (MDTM, and MLSx's `modify` fact).
pub fn timeval(t: SystemTime) -> String {
    let s = unix_seconds(t);
    let (y, m, d) = civil(s.div_euclid(86_400));
    let sod = s.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One `ls -l` line (without CRLF) for `name`, as LIST sends and clients (curl, lftp,
/// ftplib's users, Twisted's `FTPFileListProtocol`) parse: permissions, links, owner and
/// group (`ftp ftp`: user names are not given away), size, the date (`Mon dd HH:MM` within
/// six months of `now`, `Mon dd  YYYY` otherwise) and the name.
pub fn ls_line(name: &str, meta: &Metadata, now: SystemTime) -> String {
    let kind = if meta.is_dir() {
        'd'
    } else if meta.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    let mode = meta.mode();
    let mut perms = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = mode >> shift;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let s = unix_seconds(mtime);
    let (y, m, d) = civil(s.div_euclid(86_400));
    let sod = s.rem_euclid(86_400);
    let recent = (unix_seconds(now) - s).abs() < 180 * 86_400;
    let when = if recent {
        format!("{:02}:{:02}", sod / 3600, sod / 60 % 60)
    } else {
        format!(" {y}")
    };
    format!(
        "{kind}{perms} {:>3} ftp      ftp      {:>12} {} {d:>2} {when} {name}",
        meta.nlink(),
        meta.len(),
        MONTHS[(m - 1) as usize]
    )
}

/// RFC 3659 facts for MLSD/MLST (`type=file;size=3;modify=...;perm=r;`), followed by a
/// space; `writable` adds the write permissions.
pub fn mlsx_facts(meta: &Metadata, kind_override: Option<&str>, writable: bool) -> String {
    let mtime = timeval(meta.modified().unwrap_or(UNIX_EPOCH));
    if meta.is_dir() {
        let kind = kind_override.unwrap_or("dir");
        let perm = if writable { "elcmpf" } else { "el" };
        format!("type={kind};modify={mtime};perm={perm}; ")
    } else {
        let perm = if writable { "radfw" } else { "r" };
        format!("type=file;size={};modify={mtime};perm={perm}; ", meta.len())
    }
}

/// A file name safe to send in a listing: no line breaks (which would let a name forge
/// listing lines).
pub fn listable(name: &std::ffi::OsStr) -> Option<String> {
    let name = name.to_string_lossy();
    (!name.contains(['\r', '\n'])).then(|| name.into_owned())
}

/// Whether a real path is the root itself (RMD and RNFR of `/` are refused).
pub fn is_root(root: &Root, real: &Path) -> bool {
    real.components().eq(root.real.components()) || real.components().next_back().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times() {
        assert_eq!(timeval(UNIX_EPOCH), "19700101000000");
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(timeval(t), "20231114221320");
    }

    #[test]
    fn virtual_paths() {
        assert_eq!(virtual_path("/a/b", "..").unwrap(), "/a");
        assert_eq!(virtual_path("/a/b", "/x//y/").unwrap(), "/x/y");
        assert_eq!(virtual_path("/", "..").unwrap_err(), OutsideRoot);
        assert_eq!(virtual_path("/a", "../..").unwrap_err(), OutsideRoot);
        assert!(virtual_path("/", "a\0b").is_err());
    }
}
