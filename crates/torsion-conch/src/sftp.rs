//! An SFTP server (version 3, what OpenSSH's `sftp` speaks; Twisted's `conch.ssh.filetransfer`
//! with `conch.unix`'s file system) serving one folder, read and write, as a Torsion
//! [`Protocol`] on an SSH channel's `sftp` subsystem.
//!
//! The client's paths are taken as inside the folder, as under OpenSSH's `ChrootDirectory`:
//! `/` is the folder, `..` above it is refused, and a symbolic link that resolves outside it
//! is refused whether it is the file named or a folder on the way (the resolving is
//! torsion-ftp's [`Root`]); files are then opened with `O_NOFOLLOW`, so a link swapped in
//! after the check is not followed either. Creating symbolic links is refused.
//!
//! The packet layer has no I/O: [`parse_request`] reads one packet's body, and the protocol
//! answers requests in order, their file work on the reactor's thread pool
//! ([`defer_to_thread`], up to 16 requests per trip), so the reactor never waits on the
//! disk. Requests queue while a trip runs; past [`SftpOptions::max_queued`] the channel is paused
//! ([`pause_producing`](torsion::transport::TransportImpl::pause_producing)) until the queue
//! drains. Open handles, read sizes and packet sizes are capped ([`SftpOptions`]).
//!
//! Why not the `russh-sftp` crate: its server loop is a `tokio::spawn`ed task over a `Send`
//! stream (so it could not be a Torsion protocol nor use the reactor's pool), it answers an
//! oversized packet and then reads that packet's body as the next packets, and its paths
//! are `String`s decoded through serde; version 3 is small enough to read directly.
//!
//! ```
//! use torsion_conch::sftp::{parse_request, Op};
//!
//! // SSH_FXP_REALPATH (16), request id 7, path "a/../b" (the body after the length).
//! let mut body = vec![16, 0, 0, 0, 7, 0, 0, 0, 6];
//! body.extend_from_slice(b"a/../b");
//! let req = parse_request(&body).unwrap();
//! assert_eq!(req.id, 7);
//! assert!(matches!(req.op, Op::RealPath(ref p) if p == "a/../b"));
//! // A packet that ends early is refused, not read past its end.
//! assert!(parse_request(&[16, 0, 0, 0, 7, 0, 0, 0, 9, b'a']).is_err());
//! ```
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions, ReadDir};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use torsion::threads::defer_to_thread;
use torsion::transport::Transport;
use torsion::{ConnectionEnd, Protocol};
use torsion_ftp::fs::{ls_line, virtual_path, Root};

const FXP_INIT: u8 = 1;
const FXP_VERSION: u8 = 2;
const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_LSTAT: u8 = 7;
const FXP_FSTAT: u8 = 8;
const FXP_SETSTAT: u8 = 9;
const FXP_FSETSTAT: u8 = 10;
const FXP_OPENDIR: u8 = 11;
const FXP_READDIR: u8 = 12;
const FXP_REMOVE: u8 = 13;
const FXP_MKDIR: u8 = 14;
const FXP_RMDIR: u8 = 15;
const FXP_REALPATH: u8 = 16;
const FXP_STAT: u8 = 17;
const FXP_RENAME: u8 = 18;
const FXP_READLINK: u8 = 19;
const FXP_SYMLINK: u8 = 20;
const FXP_STATUS: u8 = 101;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;
const FXP_NAME: u8 = 104;
const FXP_ATTRS: u8 = 105;
const FXP_EXTENDED: u8 = 200;

const ATTR_SIZE: u32 = 0x1;
const ATTR_UIDGID: u32 = 0x2;
const ATTR_PERMISSIONS: u32 = 0x4;
const ATTR_ACMODTIME: u32 = 0x8;
const ATTR_EXTENDED: u32 = 0x8000_0000;

const OPEN_READ: u32 = 0x1;
const OPEN_WRITE: u32 = 0x2;
const OPEN_APPEND: u32 = 0x4;
const OPEN_CREAT: u32 = 0x8;
const OPEN_TRUNC: u32 = 0x10;
const OPEN_EXCL: u32 = 0x20;

/// An SFTP status code (`SSH_FX_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum StatusCode {
    /// `SSH_FX_OK`.
    Ok = 0,
    /// `SSH_FX_EOF`: the end of a file or a folder's listing.
    Eof = 1,
    /// `SSH_FX_NO_SUCH_FILE`.
    NoSuchFile = 2,
    /// `SSH_FX_PERMISSION_DENIED`: also what a path outside the folder gets.
    PermissionDenied = 3,
    /// `SSH_FX_FAILURE`.
    Failure = 4,
    /// `SSH_FX_BAD_MESSAGE`.
    BadMessage = 5,
    /// `SSH_FX_OP_UNSUPPORTED`.
    OpUnsupported = 8,
}

/// A file's attributes as version 3 carries them; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Size in bytes.
    pub size: Option<u64>,
    /// Owner and group numbers.
    pub uid_gid: Option<(u32, u32)>,
    /// Mode bits, file type included when sent by the server.
    pub permissions: Option<u32>,
    /// Access and modification times, Unix seconds.
    pub times: Option<(u32, u32)>,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `SSH_FXP_INIT` with the client's version.
    Init(u32),
    /// `SSH_FXP_OPEN`.
    Open {
        /// The path.
        path: String,
        /// `SSH_FXF_*` flags.
        flags: u32,
        /// Attributes for a created file.
        attrs: Attrs,
    },
    /// `SSH_FXP_CLOSE` of a handle.
    Close(Vec<u8>),
    /// `SSH_FXP_READ`.
    Read {
        /// The handle.
        handle: Vec<u8>,
        /// Where.
        offset: u64,
        /// How much at most.
        len: u32,
    },
    /// `SSH_FXP_WRITE`.
    Write {
        /// The handle.
        handle: Vec<u8>,
        /// Where.
        offset: u64,
        /// What.
        data: Vec<u8>,
    },
    /// `SSH_FXP_LSTAT`: a path's attributes, a final link not followed.
    Lstat(String),
    /// `SSH_FXP_FSTAT`: an open file's attributes.
    Fstat(Vec<u8>),
    /// `SSH_FXP_SETSTAT`.
    SetStat(String, Attrs),
    /// `SSH_FXP_FSETSTAT`.
    FSetStat(Vec<u8>, Attrs),
    /// `SSH_FXP_OPENDIR`.
    OpenDir(String),
    /// `SSH_FXP_READDIR`.
    ReadDir(Vec<u8>),
    /// `SSH_FXP_REMOVE`: a file.
    Remove(String),
    /// `SSH_FXP_MKDIR`.
    MkDir(String, Attrs),
    /// `SSH_FXP_RMDIR`.
    RmDir(String),
    /// `SSH_FXP_REALPATH`: the path made absolute (inside the folder).
    RealPath(String),
    /// `SSH_FXP_STAT`: a path's attributes, links followed.
    Stat(String),
    /// `SSH_FXP_RENAME`.
    Rename(String, String),
    /// `SSH_FXP_READLINK`.
    ReadLink(String),
    /// `SSH_FXP_SYMLINK` (always refused).
    Symlink,
    /// `SSH_FXP_EXTENDED` with its name (none is supported).
    Extended(String),
    /// A packet type this server does not know.
    Unknown(u8),
}

/// One request: its id (echoed in the answer) and what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The client's request id (0 for `SSH_FXP_INIT`, which has none).
    pub id: u32,
    /// The operation.
    pub op: Op,
}

/// A packet that does not parse: too short, or a string that is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadMessage;

impl std::fmt::Display for BadMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed SFTP packet")
    }
}

impl std::error::Error for BadMessage {}

struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadMessage> {
        if self.0.len() < n {
            return Err(BadMessage);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, BadMessage> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, BadMessage> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, BadMessage> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], BadMessage> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, BadMessage> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| BadMessage)
    }
    fn attrs(&mut self) -> Result<Attrs, BadMessage> {
        let flags = self.u32()?;
        let mut a = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(self.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            a.uid_gid = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.permissions = Some(self.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            a.times = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_EXTENDED != 0 {
            // Pairs of strings, each read (so a count larger than the packet fails early).
            for _ in 0..self.u32()? {
                self.bytes()?;
                self.bytes()?;
            }
        }
        Ok(a)
    }
}

/// Parses one packet's body (what follows its 4-byte length): type, request id and fields.
/// Bytes after the fields are ignored, as OpenSSH does.
pub fn parse_request(body: &[u8]) -> Result<Request, BadMessage> {
    let mut r = Rd(body);
    let kind = r.u8()?;
    if kind == FXP_INIT {
        return Ok(Request {
            id: 0,
            op: Op::Init(r.u32()?),
        });
    }
    let id = r.u32()?;
    let op = match kind {
        FXP_OPEN => Op::Open {
            path: r.string()?,
            flags: r.u32()?,
            attrs: r.attrs()?,
        },
        FXP_CLOSE => Op::Close(r.bytes()?.to_vec()),
        FXP_READ => Op::Read {
            handle: r.bytes()?.to_vec(),
            offset: r.u64()?,
            len: r.u32()?,
        },
        FXP_WRITE => Op::Write {
            handle: r.bytes()?.to_vec(),
            offset: r.u64()?,
            data: r.bytes()?.to_vec(),
        },
        FXP_LSTAT => Op::Lstat(r.string()?),
        FXP_FSTAT => Op::Fstat(r.bytes()?.to_vec()),
        FXP_SETSTAT => Op::SetStat(r.string()?, r.attrs()?),
        FXP_FSETSTAT => Op::FSetStat(r.bytes()?.to_vec(), r.attrs()?),
        FXP_OPENDIR => Op::OpenDir(r.string()?),
        FXP_READDIR => Op::ReadDir(r.bytes()?.to_vec()),
        FXP_REMOVE => Op::Remove(r.string()?),
        FXP_MKDIR => Op::MkDir(r.string()?, r.attrs()?),
        FXP_RMDIR => Op::RmDir(r.string()?),
        FXP_REALPATH => Op::RealPath(r.string()?),
        FXP_STAT => Op::Stat(r.string()?),
        FXP_RENAME => Op::Rename(r.string()?, r.string()?),
        FXP_READLINK => Op::ReadLink(r.string()?),
        FXP_SYMLINK => Op::Symlink,
        FXP_EXTENDED => Op::Extended(r.string()?),
        other => Op::Unknown(other),
    };
    Ok(Request { id, op })
}

/// Builds one outgoing packet, its length filled in by [`Packet::finish`].
struct Packet(Vec<u8>);

impl Packet {
    fn new(kind: u8, id: Option<u32>) -> Packet {
        let mut p = Packet(vec![0, 0, 0, 0, kind]);
        if let Some(id) = id {
            p.u32(id);
        }
        p
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(b);
        self
    }
    fn attrs(&mut self, a: &Attrs) -> &mut Self {
        let mut flags = 0;
        if a.size.is_some() {
            flags |= ATTR_SIZE;
        }
        if a.uid_gid.is_some() {
            flags |= ATTR_UIDGID;
        }
        if a.permissions.is_some() {
            flags |= ATTR_PERMISSIONS;
        }
        if a.times.is_some() {
            flags |= ATTR_ACMODTIME;
        }
        self.u32(flags);
        if let Some(s) = a.size {
            self.u64(s);
        }
        if let Some((u, g)) = a.uid_gid {
            self.u32(u).u32(g);
        }
        if let Some(p) = a.permissions {
            self.u32(p);
        }
        if let Some((at, mt)) = a.times {
            self.u32(at).u32(mt);
        }
        self
    }
    fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.0.len() - 4).unwrap_or(u32::MAX);
        self.0[..4].copy_from_slice(&len.to_be_bytes());
        self.0
    }
}

/// An `SSH_FXP_STATUS` packet.
pub fn status_packet(id: u32, code: StatusCode, message: &str) -> Vec<u8> {
    let mut p = Packet::new(FXP_STATUS, Some(id));
    p.u32(code as u32).bytes(message.as_bytes()).bytes(b"en");
    p.finish()
}

fn io_status(id: u32, e: &io::Error) -> Vec<u8> {
    let code = match e.kind() {
        io::ErrorKind::NotFound => StatusCode::NoSuchFile,
        io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        io::ErrorKind::Unsupported => StatusCode::OpUnsupported,
        _ => StatusCode::Failure,
    };
    status_packet(id, code, &e.to_string())
}

fn attrs_of(meta: &std::fs::Metadata) -> Attrs {
    let secs = |t: io::Result<SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
    };
    Attrs {
        size: Some(meta.len()),
        uid_gid: Some((meta.uid(), meta.gid())),
        permissions: Some(meta.mode()),
        times: Some((secs(meta.accessed()), secs(meta.modified()))),
    }
}

/// Limits of an SFTP session.
#[derive(Debug, Clone)]
pub struct SftpOptions {
    /// Files and folders open at once per session (OpenSSH's server allows 100); 64.
    pub max_handles: usize,
    /// Largest read answered; a larger request gets this much (32 KiB is what OpenSSH's
    /// client asks); 64 KiB.
    pub max_read: u32,
    /// Largest packet accepted; a larger one closes the session (OpenSSH's limit, 256 KiB).
    pub max_packet: u32,
    /// Requests waiting while one runs before the channel is paused; 64.
    pub max_queued: usize,
}

impl Default for SftpOptions {
    fn default() -> SftpOptions {
        SftpOptions {
            max_handles: 64,
            max_read: 64 * 1024,
            max_packet: 256 * 1024,
            max_queued: 64,
        }
    }
}

/// The folder an SFTP subsystem serves, and its limits: makes one [`SftpSession`] per
/// channel.
#[derive(Debug, Clone)]
pub struct SftpServer {
    root: Arc<Root>,
    options: SftpOptions,
}

impl SftpServer {
    /// Serves `dir` (which must exist) with default [`SftpOptions`].
    pub fn new(dir: impl AsRef<Path>) -> io::Result<SftpServer> {
        SftpServer::with_options(dir, SftpOptions::default())
    }

    /// Serves `dir` with `options`.
    pub fn with_options(dir: impl AsRef<Path>, options: SftpOptions) -> io::Result<SftpServer> {
        let root = Root::new(dir)?;
        if !root.path().is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("SFTP root {} is not a folder", root.path().display()),
            ));
        }
        Ok(SftpServer {
            root: Arc::new(root),
            options,
        })
    }

    /// The folder served, resolved.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A session: the protocol for one `sftp` subsystem channel.
    pub fn session(&self) -> SftpSession {
        SftpSession {
            state: Rc::new(State {
                server: self.clone(),
                inbuf: RefCell::new(Vec::new()),
                queue: RefCell::new(VecDeque::new()),
                busy: Cell::new(false),
                handles: RefCell::new(HashMap::new()),
                next_handle: Cell::new(1),
                transport: RefCell::new(None),
                paused: Cell::new(false),
                gone: Cell::new(false),
            }),
        }
    }
}

/// An open file or folder.
#[derive(Clone)]
enum Handle {
    File(Arc<File>),
    Dir(Arc<Mutex<ReadDir>>),
}

/// What a job on the pool produced.
enum Outcome {
    Reply(Vec<u8>),
    Opened(u32, Handle),
}

struct State {
    server: SftpServer,
    inbuf: RefCell<Vec<u8>>,
    queue: RefCell<VecDeque<Request>>,
    busy: Cell<bool>,
    handles: RefCell<HashMap<u32, Handle>>,
    next_handle: Cell<u32>,
    transport: RefCell<Option<Transport>>,
    paused: Cell<bool>,
    gone: Cell<bool>,
}

/// One SFTP session: the protocol of an `sftp` subsystem channel.
pub struct SftpSession {
    state: Rc<State>,
}

impl std::fmt::Debug for SftpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpSession")
            .field("root", &self.state.server.root())
            .field("handles", &self.state.handles.borrow().len())
            .finish()
    }
}

impl Protocol for SftpSession {
    fn connection_made(&mut self, transport: &Transport) {
        *self.state.transport.borrow_mut() = Some(transport.clone());
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        let st = &self.state;
        let max = st.server.options.max_packet as usize;
        {
            let mut buf = st.inbuf.borrow_mut();
            buf.extend_from_slice(data);
            let mut at = 0;
            while buf.len() - at >= 4 {
                let len =
                    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
                if len == 0 || len > max {
                    tracing::info!("SFTP packet of {len} bytes refused: closing the session");
                    buf.clear();
                    drop(buf);
                    transport.lose_connection();
                    return;
                }
                if buf.len() - at - 4 < len {
                    break;
                }
                let body = &buf[at + 4..at + 4 + len];
                let req = parse_request(body).unwrap_or(Request {
                    // The id, if the packet is long enough to have one.
                    id: body
                        .get(1..5)
                        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                    op: Op::Unknown(0),
                });
                st.queue.borrow_mut().push_back(req);
                at += 4 + len;
            }
            buf.drain(..at);
        }
        if st.queue.borrow().len() > st.server.options.max_queued && !st.paused.replace(true) {
            transport.pause_producing();
        }
        pump(st);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        let st = &self.state;
        st.gone.set(true);
        st.queue.borrow_mut().clear();
        // Files close as their last reference drops: here, or when a running job ends.
        st.handles.borrow_mut().clear();
        st.transport.borrow_mut().take();
    }
}

fn send(st: &State, packet: &[u8]) {
    if let Some(t) = st.transport.borrow().as_ref() {
        t.write(packet);
    }
}

/// Requests taken to the thread pool in one trip, at most.
const BATCH: usize = 16;

/// One request of a batch: answered already, or file work to do.
enum Step {
    Ready(Vec<u8>),
    Run(Job),
}

/// Runs the queued requests, if none are running: answers what needs no file I/O at once,
/// up to the first that does; from there takes up to [`BATCH`] requests to the pool in one
/// job, run in order there, and sends their answers in order when it is done. (A trip per
/// request made uploads, 32 KiB writes pipelined by the client, wait mostly on the pool.)
fn pump(st: &Rc<State>) {
    if st.busy.get() || st.gone.get() {
        return;
    }
    let mut batch = Vec::new();
    let mut ids = Vec::new();
    while batch.len() < BATCH {
        let Some(req) = st.queue.borrow_mut().pop_front() else {
            break;
        };
        if st.paused.get() && st.queue.borrow().len() <= st.server.options.max_queued / 4 {
            st.paused.set(false);
            let t = st.transport.borrow().clone();
            if let Some(t) = t {
                t.resume_producing();
            }
        }
        let id = req.id;
        match immediate(st, req) {
            Ok(reply) if batch.is_empty() => send(st, &reply),
            Ok(reply) => batch.push(Step::Ready(reply)),
            Err((_, job)) => batch.push(Step::Run(job)),
        }
        if !batch.is_empty() {
            ids.push(id);
        }
    }
    if batch.is_empty() {
        return;
    }
    st.busy.set(true);
    let st2 = st.clone();
    let run = move || -> Vec<Outcome> {
        batch
            .into_iter()
            .map(|step| match step {
                Step::Ready(reply) => Outcome::Reply(reply),
                Step::Run(job) => job(),
            })
            .collect()
    };
    defer_to_thread(run).add_both(move |out| {
        st2.busy.set(false);
        let replies: Vec<Vec<u8>> = match out {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|o| match o {
                    Outcome::Reply(r) => r,
                    Outcome::Opened(id, h) => opened(&st2, id, h),
                })
                .collect(),
            Err(f) => ids
                .iter()
                .map(|id| status_packet(*id, StatusCode::Failure, &f.to_string()))
                .collect(),
        };
        if !st2.gone.get() {
            for reply in &replies {
                send(&st2, reply);
            }
            pump(&st2);
        }
        Ok(())
    });
}

fn opened(st: &State, id: u32, h: Handle) -> Vec<u8> {
    let mut handles = st.handles.borrow_mut();
    if handles.len() >= st.server.options.max_handles {
        return status_packet(id, StatusCode::Failure, "too many open handles");
    }
    let mut n = st.next_handle.get();
    while handles.contains_key(&n) {
        n = n.wrapping_add(1);
    }
    st.next_handle.set(n.wrapping_add(1));
    handles.insert(n, h);
    let mut p = Packet::new(FXP_HANDLE, Some(id));
    p.bytes(&n.to_be_bytes());
    p.finish()
}

type Job = Box<dyn FnOnce() -> Outcome + Send>;

/// Answers what needs no file I/O now; otherwise gives back the job to run on the pool.
fn immediate(st: &State, req: Request) -> Result<Vec<u8>, (u32, Job)> {
    let id = req.id;
    let root = st.server.root.clone();
    let handle = |h: &[u8]| -> Option<Handle> {
        let n = u32::from_be_bytes(h.try_into().ok()?);
        st.handles.borrow().get(&n).cloned()
    };
    let bad_handle = || status_packet(id, StatusCode::Failure, "no such handle");
    let job = |f: Job| Err((id, f));
    let reply = |f: Box<dyn FnOnce() -> Vec<u8> + Send>| -> Result<Vec<u8>, (u32, Job)> {
        Err((id, Box::new(move || Outcome::Reply(f()))))
    };
    match req.op {
        Op::Init(_) => {
            let mut p = Packet::new(FXP_VERSION, None);
            p.u32(3);
            Ok(p.finish())
        }
        Op::RealPath(p) => match virtual_path("/", &p) {
            Ok(v) => {
                let mut out = Packet::new(FXP_NAME, Some(id));
                out.u32(1)
                    .bytes(v.as_bytes())
                    .bytes(v.as_bytes())
                    .attrs(&Attrs::default());
                Ok(out.finish())
            }
            Err(_) => Ok(outside(id)),
        },
        Op::Close(h) => {
            let n = h.as_slice().try_into().ok().map(u32::from_be_bytes);
            let removed = n.and_then(|n| st.handles.borrow_mut().remove(&n));
            match removed {
                // The close(2) itself runs on the pool (it can wait on the disk).
                Some(h) => reply(Box::new(move || {
                    drop(h);
                    status_packet(id, StatusCode::Ok, "")
                })),
                None => Ok(bad_handle()),
            }
        }
        Op::Open { path, flags, attrs } => {
            if st.handles.borrow().len() >= st.server.options.max_handles {
                return Ok(status_packet(
                    id,
                    StatusCode::Failure,
                    "too many open handles",
                ));
            }
            job(Box::new(move || match open(&root, &path, flags, &attrs) {
                Ok(f) => Outcome::Opened(id, Handle::File(Arc::new(f))),
                Err(e) => Outcome::Reply(io_status(id, &e)),
            }))
        }
        Op::OpenDir(path) => {
            if st.handles.borrow().len() >= st.server.options.max_handles {
                return Ok(status_packet(
                    id,
                    StatusCode::Failure,
                    "too many open handles",
                ));
            }
            job(Box::new(move || {
                match resolve(&root, &path).and_then(std::fs::read_dir) {
                    Ok(d) => Outcome::Opened(id, Handle::Dir(Arc::new(Mutex::new(d)))),
                    Err(e) => Outcome::Reply(io_status(id, &e)),
                }
            }))
        }
        Op::Read {
            handle: h,
            offset,
            len,
        } => match handle(&h) {
            Some(Handle::File(f)) => {
                let len = len.min(st.server.options.max_read) as usize;
                reply(Box::new(move || read(&f, id, offset, len)))
            }
            _ => Ok(bad_handle()),
        },
        Op::Write {
            handle: h,
            offset,
            data,
        } => match handle(&h) {
            Some(Handle::File(f)) => reply(Box::new(move || match f.write_all_at(&data, offset) {
                Ok(()) => status_packet(id, StatusCode::Ok, ""),
                Err(e) => io_status(id, &e),
            })),
            _ => Ok(bad_handle()),
        },
        Op::Fstat(h) => match handle(&h) {
            Some(Handle::File(f)) => reply(Box::new(move || match f.metadata() {
                Ok(m) => attrs_packet(id, &m),
                Err(e) => io_status(id, &e),
            })),
            _ => Ok(bad_handle()),
        },
        Op::FSetStat(h, attrs) => match handle(&h) {
            Some(Handle::File(f)) => {
                reply(Box::new(move || result_status(id, set_attrs(&f, &attrs))))
            }
            _ => Ok(bad_handle()),
        },
        Op::ReadDir(h) => match handle(&h) {
            Some(Handle::Dir(d)) => reply(Box::new(move || read_dir(&d, id))),
            _ => Ok(bad_handle()),
        },
        Op::Stat(p) => reply(Box::new(move || {
            match resolve(&root, &p).and_then(std::fs::metadata) {
                Ok(m) => attrs_packet(id, &m),
                Err(e) => io_status(id, &e),
            }
        })),
        Op::Lstat(p) => reply(Box::new(move || {
            match resolve_nofollow(&root, &p).and_then(std::fs::symlink_metadata) {
                Ok(m) => attrs_packet(id, &m),
                Err(e) => io_status(id, &e),
            }
        })),
        Op::SetStat(p, attrs) => reply(Box::new(move || {
            let r = resolve(&root, &p).and_then(|path| {
                let f = OpenOptions::new()
                    .read(true)
                    .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                    .open(path)?;
                set_attrs(&f, &attrs)
            });
            result_status(id, r)
        })),
        Op::Remove(p) => reply(Box::new(move || {
            result_status(
                id,
                resolve_nofollow(&root, &p).and_then(std::fs::remove_file),
            )
        })),
        Op::MkDir(p, attrs) => reply(Box::new(move || {
            let r = resolve(&root, &p).and_then(|path| {
                std::fs::create_dir(&path)?;
                if let Some(mode) = attrs.permissions {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))?;
                }
                Ok(())
            });
            result_status(id, r)
        })),
        Op::RmDir(p) => reply(Box::new(move || {
            result_status(
                id,
                resolve_nofollow(&root, &p).and_then(std::fs::remove_dir),
            )
        })),
        Op::Rename(from, to) => reply(Box::new(move || {
            let r = (|| {
                let from = resolve_nofollow(&root, &from)?;
                let to = resolve(&root, &to)?;
                // Version 3's rename does not replace an existing file.
                if to.symlink_metadata().is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "the new name exists",
                    ));
                }
                std::fs::rename(from, to)
            })();
            result_status(id, r)
        })),
        Op::Symlink => Ok(status_packet(
            id,
            StatusCode::PermissionDenied,
            "symbolic links are not made here",
        )),
        Op::ReadLink(_) | Op::Extended(_) => Ok(status_packet(
            id,
            StatusCode::OpUnsupported,
            "not supported",
        )),
        Op::Unknown(_) => Ok(status_packet(
            id,
            StatusCode::BadMessage,
            "malformed or unknown request",
        )),
    }
}

fn outside(id: u32) -> Vec<u8> {
    status_packet(
        id,
        StatusCode::PermissionDenied,
        "outside the served folder",
    )
}

fn result_status(id: u32, r: io::Result<()>) -> Vec<u8> {
    match r {
        Ok(()) => status_packet(id, StatusCode::Ok, ""),
        Err(e) => io_status(id, &e),
    }
}

fn attrs_packet(id: u32, meta: &std::fs::Metadata) -> Vec<u8> {
    let mut p = Packet::new(FXP_ATTRS, Some(id));
    p.attrs(&attrs_of(meta));
    p.finish()
}

/// The real path for a client's path, inside the root (links followed and checked).
fn resolve(root: &Root, path: &str) -> io::Result<PathBuf> {
    let v =
        virtual_path("/", path).map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
    root.resolve(&v)
}

/// The real path naming the entry itself (a final link is not followed): its folder
/// resolved inside the root, then its name. For lstat, remove, rmdir and the old name of a
/// rename, which act on a link and not on what it points to.
fn resolve_nofollow(root: &Root, path: &str) -> io::Result<PathBuf> {
    let v =
        virtual_path("/", path).map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
    let Some((parent, name)) = v.rsplit_once('/') else {
        return root.resolve(&v);
    };
    if name.is_empty() {
        return root.resolve(&v);
    }
    Ok(root
        .resolve(if parent.is_empty() { "/" } else { parent })?
        .join(name))
}

fn open(root: &Root, path: &str, flags: u32, attrs: &Attrs) -> io::Result<File> {
    let real = resolve(root, path)?;
    let mode = attrs.permissions.map_or(0o644, |m| m & 0o777);
    let f = OpenOptions::new()
        .read(flags & OPEN_READ != 0)
        .write(flags & (OPEN_WRITE | OPEN_APPEND) != 0)
        .append(flags & OPEN_APPEND != 0)
        .create(flags & OPEN_CREAT != 0 && flags & OPEN_EXCL == 0)
        .create_new(flags & OPEN_CREAT != 0 && flags & OPEN_EXCL != 0)
        .truncate(flags & OPEN_TRUNC != 0)
        .mode(mode)
        // The path was resolved with links followed; a link put there since is not.
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(real)?;
    if f.metadata()?.is_dir() {
        return Err(io::Error::other("is a folder"));
    }
    Ok(f)
}

fn read(f: &File, id: u32, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return io_status(id, &e),
        }
    }
    if got == 0 && len > 0 {
        return status_packet(id, StatusCode::Eof, "end of file");
    }
    let mut p = Packet::new(FXP_DATA, Some(id));
    p.bytes(&buf[..got]);
    p.finish()
}

/// Up to 100 entries of a folder's listing per READDIR, `ls -l` lines as long names.
fn read_dir(d: &Mutex<ReadDir>, id: u32) -> Vec<u8> {
    let mut it = match d.lock() {
        Ok(it) => it,
        Err(_) => return status_packet(id, StatusCode::Failure, "listing failed"),
    };
    let now = SystemTime::now();
    let mut entries = Vec::new();
    for e in it.by_ref().take(100) {
        let Ok(e) = e else { continue };
        let Ok(meta) = e.metadata() else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        entries.push((ls_line(&name, &meta, now), name, attrs_of(&meta)));
    }
    if entries.is_empty() {
        return status_packet(id, StatusCode::Eof, "end of listing");
    }
    let mut p = Packet::new(FXP_NAME, Some(id));
    p.u32(entries.len() as u32);
    for (long, name, attrs) in &entries {
        p.bytes(name.as_bytes()).bytes(long.as_bytes()).attrs(attrs);
    }
    p.finish()
}

fn set_attrs(f: &File, a: &Attrs) -> io::Result<()> {
    if a.uid_gid.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "owners are not changed",
        ));
    }
    if let Some(size) = a.size {
        f.set_len(size)?;
    }
    if let Some(mode) = a.permissions {
        f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
    if let Some((at, mt)) = a.times {
        let t = |s: u32| UNIX_EPOCH + Duration::from_secs(u64::from(s));
        f.set_times(
            std::fs::FileTimes::new()
                .set_accessed(t(at))
                .set_modified(t(mt)),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_truncation_of_a_packet_is_refused_not_a_panic() {
        let mut body = vec![FXP_WRITE, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0, 0, 1];
        body.extend_from_slice(&7u64.to_be_bytes());
        body.extend_from_slice(&[0, 0, 0, 3, b'a', b'b', b'c']);
        let full = parse_request(&body).unwrap();
        assert_eq!(
            full.op,
            Op::Write {
                handle: vec![0, 0, 0, 1],
                offset: 7,
                data: b"abc".to_vec()
            }
        );
        for cut in 0..body.len() {
            assert_eq!(parse_request(&body[..cut]), Err(BadMessage), "cut at {cut}");
        }
    }

    fn packet(kind: u8, id: u32, path: &str) -> Vec<u8> {
        let mut p = Packet::new(kind, Some(id));
        p.bytes(path.as_bytes());
        p.finish()
    }

    fn session() -> (SftpSession, torsion::testing::StringTransport, Transport) {
        let dir = std::env::temp_dir();
        let s = SftpServer::new(&dir).unwrap().session();
        let st = torsion::testing::StringTransport::new();
        let t = st.transport();
        (s, st, t)
    }

    #[test]
    fn init_is_answered_with_version_3_and_a_bad_request_with_its_id() {
        let (mut s, st, t) = session();
        s.connection_made(&t);
        s.data_received(&t, &[0, 0, 0, 5, FXP_INIT, 0, 0, 0, 3]);
        assert_eq!(st.take(), [0, 0, 0, 5, FXP_VERSION, 0, 0, 0, 3]);
        // Type 99 is unknown; split across two reads.
        let mut bad = vec![0, 0, 0, 5, 99, 0, 0, 0, 42];
        let tail = bad.split_off(3);
        s.data_received(&t, &bad);
        assert!(st.value().is_empty());
        s.data_received(&t, &tail);
        let reply = st.take();
        assert_eq!(reply[4], FXP_STATUS);
        assert_eq!(reply[5..9], [0, 0, 0, 42]);
        assert_eq!(reply[9..13], (StatusCode::BadMessage as u32).to_be_bytes());
        assert!(!st.disconnecting());
    }

    #[test]
    fn an_oversized_packet_closes_the_session_unread() {
        let (mut s, st, t) = session();
        s.connection_made(&t);
        s.data_received(&t, &[0x7f, 0xff, 0xff, 0xff, FXP_INIT]);
        assert!(st.disconnecting());
        assert!(st.value().is_empty());
        assert!(s.state.inbuf.borrow().is_empty());
    }

    #[test]
    fn realpath_stays_inside_and_above_the_root_is_refused() {
        let (mut s, st, t) = session();
        s.connection_made(&t);
        s.data_received(&t, &packet(FXP_REALPATH, 1, "a/./b/../c"));
        let reply = st.take();
        assert_eq!(reply[4], FXP_NAME);
        assert!(reply.windows(4).any(|w| w == b"/a/c"));
        s.data_received(&t, &packet(FXP_REALPATH, 2, "/../etc"));
        let reply = st.take();
        assert_eq!(reply[4], FXP_STATUS);
        assert_eq!(
            reply[9..13],
            (StatusCode::PermissionDenied as u32).to_be_bytes()
        );
    }

    #[test]
    fn a_backlog_of_requests_pauses_the_channel() {
        let (mut s, st, t) = session();
        s.connection_made(&t);
        let mut many = Vec::new();
        for id in 0..100 {
            many.extend(packet(FXP_STAT, id, "/"));
        }
        s.data_received(&t, &many);
        // One runs on the pool; the rest wait, more than the queue's cap.
        assert!(st.paused());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_are_refused(body in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = parse_request(&body);
        }
    }

    #[test]
    fn attributes_round_trip() {
        let a = Attrs {
            size: Some(5),
            uid_gid: Some((1, 2)),
            permissions: Some(0o100644),
            times: Some((3, 4)),
        };
        let mut p = Packet::new(FXP_SETSTAT, Some(1));
        p.bytes(b"/x").attrs(&a);
        let bytes = p.finish();
        let req = parse_request(&bytes[4..]).unwrap();
        assert_eq!(req.op, Op::SetStat("/x".into(), a));
    }
}
