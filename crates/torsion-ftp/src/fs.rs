//! The served folder: client paths resolved inside a root (never outside it, `..` and
//! symbolic links included), and the listing formats (`ls -l` lines for LIST, RFC 3659
//! facts for MLSD/MLST, MDTM's time stamps).
//!
//! A client's path is first made absolute against its working directory
//! ([`virtual_path`]; `..` above `/` is refused), then [`Root`] does the file-system
//! operation relative to an open handle of the served folder with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: the kernel refuses a way out while it looks
//! the path up (a relative link or `..` leaving the folder, any absolute link, `/proc`'s
//! magic links), so there is no check that a folder swapped for a link could race.
//! Where `openat2` is missing (Linux before 5.6, or refused by a seccomp filter) `Root`
//! logs one warning and falls back to [`Root::resolve`]: canonicalize, check, then use by
//! name.
//!
//! ```
//! use torsion_ftp::fs::{virtual_path, Root, WriteMode};
//!
//! assert_eq!(virtual_path("/pub", "../etc/x").as_deref(), Ok("/etc/x"));
//! assert_eq!(virtual_path("/pub", "docs/./a").as_deref(), Ok("/pub/docs/a"));
//! assert!(virtual_path("/", "../../etc/passwd").is_err()); // above the root: refused
//!
//! let dir = std::env::temp_dir().join(format!("torsion-ftp-fs-doc-{}", std::process::id()));
//! std::fs::create_dir_all(dir.join("served")).unwrap();
//! std::os::unix::fs::symlink("..", dir.join("served/up")).unwrap();
//! let root = Root::new(dir.join("served")).unwrap();
//! std::io::Write::write_all(&mut root.open_write("/a", WriteMode::Truncate).unwrap(), b"hi")
//!     .unwrap();
//! assert_eq!(root.metadata("/a").unwrap().len(), 2);
//! // A link out of the served folder is refused, for reading as for writing.
//! let refused = root.open_write("/up/escaped", WriteMode::Truncate).unwrap_err();
//! assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
//! assert!(!dir.join("escaped").exists());
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
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

/// How [`Root::open_write`] opens a file (STOR, STOR after REST, APPE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Created or emptied (STOR).
    Truncate,
    /// Created or kept as it is, written from the start (STOR after REST).
    Keep,
    /// Created or appended to (APPE).
    Append,
}

/// Logged once per process when `openat2(2)` is missing and paths are checked the old way.
static FALLBACK_LOGGED: std::sync::Once = std::sync::Once::new();

/// A folder served: every client path is looked up inside it, never outside.
///
/// On Linux 5.6 and later each operation is done relative to an open handle of the folder
/// with `openat2(2)` and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: the kernel refuses
/// (`EXDEV`, answered 550), while it looks the path up, a relative symbolic link or `..`
/// that would leave the folder, every absolute link (even one that points back inside)
/// and `/proc`'s magic links, so a client who can write inside the root cannot swap a
/// folder for a link between a check and the use: there is no separate check. Relative
/// links that stay inside are followed. MKD, RMD, DELE and RNFR/RNTO open the parent
/// folder that way and act on the last name with `mkdirat`, `unlinkat` and `renameat`,
/// which do not follow it: DELE of a link removes the link.
///
/// Where `openat2` is missing (`ENOSYS`: kernels before 5.6; `EPERM`: refused by an old
/// seccomp filter) the root falls back, with one log line, to [`Root::resolve`]: the path
/// is canonicalized and checked to stay inside, then used by name, which leaves a window
/// between the check and the use.
#[derive(Clone, Debug)]
pub struct Root {
    real: PathBuf,
    /// The folder, open; `None` when paths are checked by name (no `openat2`).
    dir: Option<Arc<OwnedFd>>,
}

impl Root {
    /// Serves `dir`, which must exist (it is resolved once, symbolic links and all, and
    /// opened).
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Root> {
        let real = dir.as_ref().canonicalize()?;
        let fd = rustix::fs::open(
            &real,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let dir = match rustix::fs::openat2(
            &fd,
            ".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            resolve_flags(),
        ) {
            Ok(_) => Some(Arc::new(fd)),
            // ENOSYS: Linux before 5.6; EPERM: a seccomp filter that predates the call
            // (older container runtimes') refuses it. Opening "." cannot otherwise fail so.
            Err(Errno::NOSYS | Errno::PERM) => {
                FALLBACK_LOGGED.call_once(|| {
                    tracing::warn!(
                        "FTP: openat2(2) is missing (Linux before 5.6, or refused by a \
                         seccomp filter): client paths are canonicalized and checked by name, \
                         which a writer inside the root could race"
                    );
                });
                None
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Root { real, dir })
    }

    /// Serves `dir` with paths canonicalized and checked by name ([`Root::resolve`]), as
    /// [`Root::new`] does where `openat2(2)` is missing; for tests of that fallback.
    pub fn checked_by_name(dir: impl AsRef<Path>) -> io::Result<Root> {
        Ok(Root {
            real: dir.as_ref().canonicalize()?,
            dir: None,
        })
    }

    /// The folder `name` (one name, no `/`) inside this one, served as a root of its own
    /// (each user's folder under a base): looked up beneath this root's handle like any
    /// client path, so a link out of this root is refused (`PermissionDenied`).
    pub fn child(&self, name: &str) -> io::Result<Root> {
        if name.is_empty() || name.contains(['/', '\0']) || name == "." || name == ".." {
            return Err(refused());
        }
        match &self.dir {
            Some(dir) => {
                let fd = beneath(dir, name, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
                // The resolved path, for path() and logs; the handle is what is used.
                let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                    .unwrap_or_else(|_| self.real.join(name));
                Ok(Root {
                    real,
                    dir: Some(Arc::new(fd)),
                })
            }
            None => {
                let real = self.real.join(name).canonicalize()?;
                if !real.starts_with(&self.real) || !real.is_dir() {
                    return Err(refused());
                }
                Ok(Root { real, dir: None })
            }
        }
    }

    /// The folder, resolved.
    pub fn path(&self) -> &Path {
        &self.real
    }

    /// Whether paths are looked up with `openat2(2)` beneath an open handle of the folder
    /// (`false`: canonicalized and checked by name).
    pub fn is_beneath(&self) -> bool {
        self.dir.is_some()
    }

    /// The metadata of the file at `vpath`, symbolic links inside the root followed.
    pub fn metadata(&self, vpath: &str) -> io::Result<Metadata> {
        match &self.dir {
            Some(dir) => File::from(beneath(dir, &relative(vpath)?, OFlags::PATH, 0)?).metadata(),
            None => std::fs::metadata(self.resolve(vpath)?),
        }
    }

    /// The metadata of `vpath` itself (a symbolic link is not followed; the folders on the
    /// way are).
    pub fn symlink_metadata(&self, vpath: &str) -> io::Result<Metadata> {
        match &self.dir {
            Some(dir) => {
                let fd = beneath(dir, &relative(vpath)?, OFlags::PATH | OFlags::NOFOLLOW, 0)?;
                File::from(fd).metadata()
            }
            None => match self.resolve_last(vpath)? {
                Some(p) => std::fs::symlink_metadata(p),
                None => std::fs::symlink_metadata(&self.real),
            },
        }
    }

    /// The regular file at `vpath`, open for reading (a folder is `IsADirectory`; a FIFO
    /// or device is refused, without waiting for a writer).
    pub fn open_read(&self, vpath: &str) -> io::Result<File> {
        let f = match &self.dir {
            Some(dir) => File::from(beneath(
                dir,
                &relative(vpath)?,
                OFlags::RDONLY | OFlags::NONBLOCK,
                0,
            )?),
            None => std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nonblock())
                .open(self.resolve(vpath)?)?,
        };
        regular(f)
    }

    /// The regular file at `vpath`, open for writing (created if missing, mode 0666 less
    /// the umask; a FIFO or device is refused, without waiting for a reader).
    pub fn open_write(&self, vpath: &str, mode: WriteMode) -> io::Result<File> {
        let f = match &self.dir {
            Some(dir) => {
                let flags = OFlags::WRONLY
                    | OFlags::NONBLOCK
                    | OFlags::CREATE
                    | match mode {
                        WriteMode::Truncate => OFlags::TRUNC,
                        WriteMode::Keep => OFlags::empty(),
                        WriteMode::Append => OFlags::APPEND,
                    };
                File::from(beneath(dir, &relative(vpath)?, flags, 0o666)?)
            }
            None => {
                let p = self.resolve(vpath)?;
                let mut o = std::fs::OpenOptions::new();
                o.create(true).custom_flags(nonblock());
                match mode {
                    WriteMode::Truncate => o.write(true).truncate(true),
                    WriteMode::Keep => o.write(true).truncate(false),
                    WriteMode::Append => o.append(true),
                };
                o.open(p)?
            }
        };
        regular(f)
    }

    /// The entries of the folder at `vpath` (without `.` and `..`), each with its own
    /// metadata (a symbolic link's, not its target's).
    pub fn read_dir(&self, vpath: &str) -> io::Result<Listing> {
        match &self.dir {
            Some(dir) => {
                let fd = beneath(
                    dir,
                    &relative(vpath)?,
                    OFlags::RDONLY | OFlags::DIRECTORY,
                    0,
                )?;
                let entries = rustix::fs::Dir::read_from(&fd)?;
                Ok(Listing(ListingInner::At { dir: fd, entries }))
            }
            None => Ok(Listing(ListingInner::Std(std::fs::read_dir(
                self.resolve(vpath)?,
            )?))),
        }
    }

    /// MKD: a new folder at `vpath` (mode 0777 less the umask).
    pub fn create_dir(&self, vpath: &str) -> io::Result<()> {
        match &self.dir {
            Some(dir) => {
                let (parent, name) = self.parent(dir, vpath)?;
                let name = name.ok_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists))?;
                Ok(rustix::fs::mkdirat(
                    &parent,
                    name,
                    Mode::from_raw_mode(0o777),
                )?)
            }
            None => match self.resolve_last(vpath)? {
                Some(p) => std::fs::create_dir(p),
                None => Err(io::ErrorKind::AlreadyExists.into()),
            },
        }
    }

    /// RMD: removes the empty folder at `vpath` (never the root).
    pub fn remove_dir(&self, vpath: &str) -> io::Result<()> {
        match &self.dir {
            Some(dir) => {
                let (parent, name) = self.parent(dir, vpath)?;
                let name = name.ok_or_else(the_root)?;
                Ok(rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR)?)
            }
            None => std::fs::remove_dir(self.resolve_last(vpath)?.ok_or_else(the_root)?),
        }
    }

    /// DELE: removes the file (or the symbolic link itself) at `vpath`.
    pub fn remove_file(&self, vpath: &str) -> io::Result<()> {
        match &self.dir {
            Some(dir) => {
                let (parent, name) = self.parent(dir, vpath)?;
                let name = name.ok_or_else(the_root)?;
                Ok(rustix::fs::unlinkat(&parent, name, AtFlags::empty())?)
            }
            None => std::fs::remove_file(self.resolve_last(vpath)?.ok_or_else(the_root)?),
        }
    }

    /// RNFR/RNTO: renames `from` to `to` (the root is never renamed, nor replaced).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        match &self.dir {
            Some(dir) => {
                let (from_dir, from_name) = self.parent(dir, from)?;
                let (to_dir, to_name) = self.parent(dir, to)?;
                let (Some(from_name), Some(to_name)) = (from_name, to_name) else {
                    return Err(the_root());
                };
                Ok(rustix::fs::renameat(
                    &from_dir, from_name, &to_dir, to_name,
                )?)
            }
            None => match (self.resolve_last(from)?, self.resolve_last(to)?) {
                (Some(f), Some(t)) => std::fs::rename(f, t),
                _ => Err(the_root()),
            },
        }
    }

    /// The folder holding `vpath`'s last name, open (looked up beneath the root), and that
    /// name (`None` for the root itself).
    fn parent<'a>(&self, dir: &OwnedFd, vpath: &'a str) -> io::Result<(OwnedFd, Option<&'a str>)> {
        let (parent, name) = split(vpath)?;
        let fd = beneath(dir, &relative(parent)?, OFlags::PATH | OFlags::DIRECTORY, 0)?;
        Ok((fd, name))
    }

    /// The fallback's [`Root::parent`]: `vpath`'s folder resolved and checked by name
    /// ([`Root::resolve`]), and its last name joined unresolved, so that DELE, RMD and
    /// RNFR/RNTO act on a symbolic link itself, as they do beneath the open handle (`None`
    /// for the root itself).
    fn resolve_last(&self, vpath: &str) -> io::Result<Option<PathBuf>> {
        let (parent, name) = split(vpath)?;
        match name {
            Some(name) => Ok(Some(self.resolve(parent)?.join(name))),
            None => Ok(None),
        }
    }

    /// The real path for the virtual path `vpath` (from [`virtual_path`]), checked to stay
    /// inside the root: the longest part of it that exists is resolved (symbolic links
    /// followed) and must be under the root, and what follows must be plain names. A link
    /// pointing out of the root is refused, whether it is the file named or a folder on
    /// the way. This is the fallback where `openat2(2)` is missing: the path can change
    /// between this check and its use.
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

/// The entries of a folder, from [`Root::read_dir`]: names with their metadata.
pub struct Listing(ListingInner);

enum ListingInner {
    At {
        dir: OwnedFd,
        entries: rustix::fs::Dir,
    },
    Std(std::fs::ReadDir),
}

impl Iterator for Listing {
    type Item = (OsString, Metadata);

    fn next(&mut self) -> Option<(OsString, Metadata)> {
        loop {
            match &mut self.0 {
                ListingInner::At { dir, entries } => {
                    let Ok(entry) = entries.next()? else { continue };
                    let name = entry.file_name();
                    if name == c"." || name == c".." {
                        continue;
                    }
                    // One name read from the folder: nothing to resolve but itself.
                    let Ok(fd) = rustix::fs::openat(
                        &*dir,
                        name,
                        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) else {
                        continue;
                    };
                    let Ok(meta) = File::from(fd).metadata() else {
                        continue;
                    };
                    let name = OsString::from_vec(name.to_bytes().to_vec());
                    return Some((name, meta));
                }
                ListingInner::Std(entries) => {
                    let Ok(entry) = entries.next()? else { continue };
                    let Ok(meta) = entry.metadata() else { continue };
                    return Some((entry.file_name(), meta));
                }
            }
        }
    }
}

/// `vpath` split into its folder and its last name (`None` for the root itself); names
/// `.` and `..` are refused.
fn split(vpath: &str) -> io::Result<(&str, Option<&str>)> {
    relative(vpath)?;
    let trimmed = vpath.trim_end_matches('/');
    let (parent, name) = match trimmed.rfind('/') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    Ok((parent, (!name.is_empty()).then_some(name)))
}

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

/// `vpath` (absolute, from [`virtual_path`]) as a path relative to the root (`.` for the
/// root); names `.` and `..` are refused.
fn relative(vpath: &str) -> io::Result<String> {
    let mut out = String::new();
    for seg in vpath.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." || seg.contains('\0') {
            return Err(refused());
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('.');
    }
    Ok(out)
}

/// Opens `rel` beneath `dir` with `openat2(2)`: leaving `dir` by any means (`..`, an
/// absolute link, a relative link out, a magic `/proc` link) fails instead of resolving.
fn beneath(dir: &OwnedFd, rel: &str, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
    // EAGAIN: a rename elsewhere raced the lookup; the kernel asks for a retry.
    for _ in 0..32 {
        match rustix::fs::openat2(
            dir,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
            resolve_flags(),
        ) {
            Err(Errno::AGAIN) => continue,
            Err(Errno::XDEV) => return Err(refused()),
            r => return r.map_err(io::Error::from),
        }
    }
    Err(Errno::AGAIN.into())
}

/// `O_NONBLOCK`, for `OpenOptions`: opening a FIFO must not wait for its other end (the
/// reactor's thread would wait with it). Regular files ignore it.
fn nonblock() -> i32 {
    OFlags::NONBLOCK.bits() as i32
}

/// `f` if it is a regular file (FTP transfers nothing else).
fn regular(f: File) -> io::Result<File> {
    let kind = f.metadata()?.file_type();
    if kind.is_file() {
        Ok(f)
    } else if kind.is_dir() {
        Err(io::Error::new(io::ErrorKind::IsADirectory, "a folder"))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

fn the_root() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "the root")
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

    /// A scratch folder holding `root/` (with `file`, `sub/`, and links) and `outside/`
    /// (with `secret`).
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str) -> Tree {
            use std::os::unix::fs::symlink;
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("torsion-ftp-fs-{name}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let root = dir.join("root");
            std::fs::create_dir_all(root.join("sub")).unwrap();
            std::fs::create_dir_all(dir.join("outside")).unwrap();
            std::fs::write(root.join("file"), b"inside").unwrap();
            std::fs::write(dir.join("outside/secret"), b"secret").unwrap();
            symlink(dir.join("outside"), root.join("abs-out")).unwrap();
            symlink("../../outside", root.join("sub/rel-out")).unwrap();
            symlink("../file", root.join("sub/rel-in")).unwrap();
            symlink("..", root.join("sub/up")).unwrap();
            symlink(root.join("file"), root.join("abs-in")).unwrap();
            Tree(dir)
        }

        fn roots(&self) -> Vec<Root> {
            let beneath = Root::new(self.0.join("root")).unwrap();
            assert!(beneath.is_beneath(), "this kernel has no openat2(2)");
            vec![beneath, Root::checked_by_name(self.0.join("root")).unwrap()]
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn denied(r: io::Result<impl std::fmt::Debug>) -> bool {
        matches!(&r, Err(e) if e.kind() == io::ErrorKind::PermissionDenied)
    }

    fn read(root: &Root, vpath: &str) -> io::Result<String> {
        let mut s = String::new();
        io::Read::read_to_string(&mut root.open_read(vpath)?, &mut s)?;
        Ok(s)
    }

    #[test]
    fn dot_dot_in_the_middle_is_refused() {
        let t = Tree::new("dotdot");
        for root in t.roots() {
            // The server normalizes first (virtual_path); a raw `..` never reaches a lookup.
            assert!(denied(root.metadata("/sub/../file")), "{root:?}");
            assert!(denied(root.metadata("/sub/../../outside/secret")));
            assert!(denied(read(&root, "/../outside/secret")));
            let v = virtual_path("/sub", "../file").unwrap();
            assert_eq!(read(&root, &v).unwrap(), "inside");
            // A link to `..` that stays inside is followed.
            assert_eq!(read(&root, "/sub/up/file").unwrap(), "inside");
            assert!(denied(read(&root, "/sub/up/../outside/secret")));
        }
    }

    #[test]
    fn absolute_links_out_are_refused() {
        let t = Tree::new("abs");
        for root in t.roots() {
            assert!(denied(read(&root, "/abs-out/secret")), "{root:?}");
            assert!(denied(root.metadata("/abs-out")));
            assert!(denied(root.open_write("/abs-out/new", WriteMode::Truncate)));
            assert!(denied(root.create_dir("/abs-out/made")));
            assert!(denied(root.rename("/file", "/abs-out/moved")));
            assert!(denied(root.read_dir("/abs-out").map(|_| ())));
            // An absolute link that points inside: followed by name, refused beneath.
            assert_eq!(denied(read(&root, "/abs-in")), root.is_beneath());
        }
        assert!(!t.0.join("outside/new").exists());
        assert!(!t.0.join("outside/made").exists());
        assert!(!t.0.join("outside/moved").exists());
        assert!(t.0.join("root/file").exists());
    }

    #[test]
    fn relative_links_out_are_refused() {
        let t = Tree::new("relout");
        for root in t.roots() {
            assert!(denied(read(&root, "/sub/rel-out/secret")), "{root:?}");
            assert!(denied(
                root.open_write("/sub/rel-out/new", WriteMode::Append)
            ));
            assert!(denied(root.remove_file("/sub/rel-out/secret")));
            assert!(denied(root.create_dir("/sub/rel-out/made")));
        }
        assert_eq!(
            std::fs::read(t.0.join("outside/secret")).unwrap(),
            b"secret"
        );
        assert!(!t.0.join("outside/new").exists());
        assert!(!t.0.join("outside/made").exists());
    }

    #[test]
    fn links_that_stay_inside_are_followed() {
        let t = Tree::new("relin");
        for root in t.roots() {
            assert_eq!(read(&root, "/sub/rel-in").unwrap(), "inside", "{root:?}");
            assert!(root.metadata("/sub/rel-in").unwrap().is_file());
            assert!(root.symlink_metadata("/sub/rel-in").unwrap().is_symlink());
            let names: Vec<_> = root
                .read_dir("/sub/up/sub")
                .unwrap()
                .map(|(n, _)| n)
                .collect();
            assert_eq!(names.len(), 3, "{names:?}");
            let mut w = root
                .open_write("/sub/up/sub/new", WriteMode::Truncate)
                .unwrap();
            io::Write::write_all(&mut w, b"x").unwrap();
            root.rename("/sub/new", "/sub/renamed").unwrap();
            root.create_dir("/sub/up/made").unwrap();
            root.remove_dir("/made").unwrap();
            root.remove_file("/sub/renamed").unwrap();
            assert!(denied(root.remove_dir("/")));
            assert!(denied(root.rename("/", "/x")));
        }
        assert!(!t.0.join("root/sub/renamed").exists());
        assert!(!t.0.join("root/made").exists());
    }

    #[test]
    fn the_last_name_is_not_followed() {
        let t = Tree::new("last");
        for root in t.roots() {
            // DELE, RNFR/RNTO and RMD act on a link itself, wherever it points.
            std::os::unix::fs::symlink("../file", t.0.join("root/sub/link")).unwrap();
            root.remove_file("/sub/link").unwrap();
            assert!(t.0.join("root/file").exists(), "{root:?}");
            assert!(t.0.join("root/sub/link").symlink_metadata().is_err());
            assert!(root.symlink_metadata("/abs-out").unwrap().is_symlink());
            root.rename("/abs-out", "/sub/moved").unwrap();
            root.rename("/sub/moved", "/abs-out").unwrap();
            assert!(root.remove_dir("/abs-out").is_err());
            assert!(denied(root.create_dir("/abs-out/x")));
        }
        assert_eq!(
            std::fs::read(t.0.join("outside/secret")).unwrap(),
            b"secret"
        );
        assert!(t
            .0
            .join("root/abs-out")
            .symlink_metadata()
            .unwrap()
            .is_symlink());
    }

    #[test]
    fn a_child_root_stays_inside() {
        let t = Tree::new("child");
        for root in t.roots() {
            let sub = root.child("sub").unwrap();
            assert_eq!(sub.is_beneath(), root.is_beneath());
            assert_eq!(sub.path(), t.0.join("root/sub").canonicalize().unwrap());
            assert_eq!(
                read(&sub, "/rel-in").unwrap_err().kind(),
                io::ErrorKind::PermissionDenied
            );
            assert!(sub.metadata("/rel-out").is_err());
            for bad in ["abs-out", "..", ".", "", "sub/up", "sub\0"] {
                assert!(denied(root.child(bad)), "{bad:?} {root:?}");
            }
            assert!(root.child("file").is_err());
            assert!(root.child("missing").is_err());
        }
    }

    #[test]
    fn fifos_are_refused_without_waiting() {
        use rustix::fs::{FileType, CWD};
        let t = Tree::new("fifo");
        let fifo = t.0.join("root/fifo");
        rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o666), 0).unwrap();
        for root in t.roots() {
            // Without O_NONBLOCK each of these would wait for the other end forever.
            assert!(read(&root, "/fifo").is_err(), "{root:?}");
            for mode in [WriteMode::Truncate, WriteMode::Keep, WriteMode::Append] {
                assert!(root.open_write("/fifo", mode).is_err(), "{mode:?}");
            }
            let dir = root.open_read("/sub").unwrap_err();
            assert_eq!(dir.kind(), io::ErrorKind::IsADirectory);
        }
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
