//! A part of an open file handed to a transport ([`TransportImpl::write_file`]), and the
//! count of bytes sent that way.

use std::cell::Cell;
use std::fs::File;
use std::rc::Rc;

#[cfg(doc)]
use super::TransportImpl;

/// A part of an open file to send: the file, where the part starts and how many bytes it
/// has. Queue it with [`TransportImpl::write_file`]; a transport that cannot send files
/// refuses it with [`Unsupported`](std::io::ErrorKind::Unsupported), and the caller writes
/// the bytes instead.
///
/// The file is shared, not copied: a transport reads it at offsets (`sendfile(2)` with an
/// offset), never through its cursor, so one open file can serve many connections at once.
///
/// ```
/// use std::io::{self, Read, Seek, SeekFrom};
/// use std::{cell::RefCell, fs, rc::Rc};
/// use torsion::transport::{Address, FileSegment, Transport, TransportImpl};
///
/// /// Sends `len` bytes of `file` from `offset`: by `sendfile(2)` where the transport can,
/// /// else read here and written.
/// fn send_part(t: &Transport, file: &Rc<fs::File>, offset: u64, len: u64) -> io::Result<()> {
///     match t.write_file(FileSegment::new(file.clone(), offset, len)) {
///         Err(e) if e.kind() == io::ErrorKind::Unsupported => {
///             let mut buf = vec![0; len as usize];
///             let mut f = &**file;
///             f.seek(SeekFrom::Start(offset))?;
///             f.read_exact(&mut buf)?;
///             t.write(&buf);
///             Ok(())
///         }
///         other => other,
///     }
/// }
///
/// // A transport that keeps what is written (it cannot send files: the default).
/// #[derive(Default)]
/// struct Recorder(RefCell<Vec<u8>>);
/// impl TransportImpl for Recorder {
///     fn write(&self, data: &[u8]) { self.0.borrow_mut().extend_from_slice(data) }
///     fn lose_connection(&self) {}
///     fn abort_connection(&self) {}
///     fn get_peer(&self) -> Address { Address::Named("peer".into()) }
///     fn get_host(&self) -> Address { Address::Named("host".into()) }
/// }
///
/// let path = std::env::temp_dir().join(format!("torsion-segment-doc-{}", std::process::id()));
/// fs::write(&path, b"0123456789")?;
/// let file = Rc::new(fs::File::open(&path)?);
/// let rec = Rc::new(Recorder::default());
/// send_part(&Transport::new(rec.clone()), &file, 3, 4)?;
/// assert_eq!(&*rec.0.borrow(), b"3456");
/// fs::remove_file(&path)?;
/// # Ok::<(), io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileSegment {
    /// The open file (read at offsets only).
    pub file: Rc<File>,
    /// Where the part starts, in bytes from the start of the file.
    pub offset: u64,
    /// How many bytes the part has.
    pub len: u64,
}

impl FileSegment {
    /// `len` bytes of `file` from `offset`.
    pub fn new(file: Rc<File>, offset: u64, len: u64) -> FileSegment {
        FileSegment { file, offset, len }
    }
}

thread_local! {
    static FILE_BYTES_SENT: Cell<u64> = const { Cell::new(0) };
}

/// Notes `n` bytes sent by `sendfile(2)` on this thread.
#[inline]
pub(crate) fn count_file_bytes(n: usize) {
    FILE_BYTES_SENT.with(|c| c.set(c.get().wrapping_add(n as u64)));
}

/// How many bytes the stream transports running on the calling thread (a reactor runs its
/// connections on its own thread) have sent with `sendfile(2)`, from
/// [`write_file`](TransportImpl::write_file) segments, since the thread started: what shows
/// that a file went out without being read into memory (for tests and metrics).
pub fn file_bytes_sent() -> u64 {
    FILE_BYTES_SENT.with(Cell::get)
}
