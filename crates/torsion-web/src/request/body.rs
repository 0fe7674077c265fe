//! Request bodies: kept in memory while small, spooled to a temporary file past
//! [`SiteConfig::body_spool_threshold`](crate::site::SiteConfig::body_spool_threshold)
//! (Twisted's `Request.gotLength` does the same at 100,000 bytes), so that a slow upload holds
//! a bounded amount of memory while it arrives.
//!
//! The temporary file is created in [`std::env::temp_dir`] with a unique name, exclusively
//! (`O_EXCL`: an existing file, or a link planted there, is never opened), readable by its
//! owner only, and removed when the request is dropped.

use std::cell::OnceCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::form::{FormError, FormLimits, MultipartSink, ParsedForm};
use crate::proto::{ChunkedDecoder, ParseError};

/// Why a request body could not be taken in.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Its temporary file failed (500).
    Io(io::Error),
    /// Its form was refused (413, 400; 500 if a file could not be stored).
    Form(FormError),
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> Self {
        BodyError::Io(e)
    }
}

/// A temporary file that is removed when dropped.
pub(crate) struct SpoolFile {
    path: PathBuf,
    file: File,
}

impl SpoolFile {
    /// Creates a new, empty file in the temporary directory, under a name no other file has.
    pub(crate) fn create() -> io::Result<SpoolFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir();
        for _ in 0..16 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!(
                "torsion-body-{}-{}-{nanos:08x}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let path = dir.join(name);
            let mut options = OpenOptions::new();
            options.read(true).write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(&path) {
                Ok(file) => return Ok(SpoolFile { path, file }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no unused temporary file name for a request body",
        ))
    }

    pub(crate) fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A request body while it arrives: bytes in memory until they pass the threshold, then a
/// temporary file.
pub(crate) struct BodySink {
    memory: Vec<u8>,
    spool: Option<SpoolFile>,
    threshold: u64,
    len: u64,
    /// Decoded chunked payload on its way to the file (or dropped).
    scratch: Vec<u8>,
    /// Keep nothing.
    discard: bool,
    /// The multipart form the body carries, parsed as it arrives.
    form: Option<MultipartSink>,
}

impl BodySink {
    /// A sink for a body of `expected` bytes (`None`: chunked, length unknown); a body known
    /// to be over `threshold` goes to a file from its first byte.
    pub(crate) fn new(threshold: u64, expected: Option<u64>) -> io::Result<BodySink> {
        let spool = match expected {
            Some(n) if n > threshold => Some(SpoolFile::create()?),
            _ => None,
        };
        Ok(BodySink {
            memory: Vec::new(),
            spool,
            threshold,
            len: 0,
            scratch: Vec::new(),
            discard: false,
            form: None,
        })
    }

    /// A sink that keeps nothing: the body of a request answered without it.
    pub(crate) fn discard() -> BodySink {
        BodySink {
            memory: Vec::new(),
            spool: None,
            threshold: 0,
            len: 0,
            scratch: Vec::new(),
            discard: true,
            form: None,
        }
    }

    /// Parses the body as a `multipart/form-data` form as it arrives, if `content_type` says
    /// it is one.
    pub(crate) fn parse_form(&mut self, content_type: Option<&str>, limits: FormLimits) {
        if self.discard {
            return;
        }
        self.form = content_type.and_then(|t| MultipartSink::for_content_type(t, limits));
    }

    /// Appends `data`, moving the body to a file once it passes the threshold.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<(), BodyError> {
        self.len += data.len() as u64;
        if self.discard {
            return Ok(());
        }
        if let Some(form) = &mut self.form {
            form.feed(data).map_err(BodyError::Form)?;
        }
        if let Some(spool) = &mut self.spool {
            return Ok(spool.write_all(data)?);
        }
        self.memory.extend_from_slice(data);
        Ok(self.spill_if_over()?)
    }

    /// Decodes chunked framing from `input` into the body; returns how much was used.
    pub(crate) fn push_chunked(
        &mut self,
        decoder: &mut ChunkedDecoder,
        input: &[u8],
    ) -> Result<Result<usize, BodyError>, ParseError> {
        if self.discard {
            self.scratch.clear();
            let used = decoder.decode(input, &mut self.scratch)?;
            self.len += self.scratch.len() as u64;
            return Ok(Ok(used));
        }
        if let Some(spool) = &mut self.spool {
            self.scratch.clear();
            let used = decoder.decode(input, &mut self.scratch)?;
            self.len += self.scratch.len() as u64;
            if let Some(form) = &mut self.form {
                if let Err(e) = form.feed(&self.scratch) {
                    return Ok(Err(BodyError::Form(e)));
                }
            }
            return Ok(spool
                .write_all(&self.scratch)
                .map(|()| used)
                .map_err(BodyError::Io));
        }
        let before = self.memory.len();
        let used = decoder.decode(input, &mut self.memory)?;
        self.len += (self.memory.len() - before) as u64;
        if let Some(form) = &mut self.form {
            if let Err(e) = form.feed(&self.memory[before..]) {
                return Ok(Err(BodyError::Form(e)));
            }
        }
        Ok(self.spill_if_over().map(|()| used).map_err(BodyError::Io))
    }

    fn spill_if_over(&mut self) -> io::Result<()> {
        if self.memory.len() as u64 > self.threshold {
            let mut spool = SpoolFile::create()?;
            spool.write_all(&self.memory)?;
            self.memory = Vec::new();
            self.spool = Some(spool);
        }
        Ok(())
    }

    /// The whole body, once it has arrived, and its multipart form if it carries one.
    pub(crate) fn finish(self) -> Result<(StoredBody, Option<ParsedForm>), BodyError> {
        let form = match self.form {
            Some(f) => Some(f.finish().map_err(BodyError::Form)?),
            None => None,
        };
        let body = match self.spool {
            None => StoredBody::Memory(Bytes::from(self.memory)),
            Some(mut spool) => {
                spool.file.flush()?;
                StoredBody::File {
                    spool,
                    len: self.len,
                    loaded: OnceCell::new(),
                }
            }
        };
        Ok((body, form))
    }
}

/// A request body as the request keeps it.
pub(crate) enum StoredBody {
    /// A small body.
    Memory(Bytes),
    /// A body past the threshold, in a temporary file; `loaded` is its content, read on the
    /// first call of [`Request::content`](crate::request::Request::content).
    File {
        spool: SpoolFile,
        len: u64,
        loaded: OnceCell<Vec<u8>>,
    },
}

impl Default for StoredBody {
    fn default() -> Self {
        StoredBody::Memory(Bytes::new())
    }
}

impl StoredBody {
    /// The body's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        match self {
            StoredBody::Memory(b) => b.len() as u64,
            StoredBody::File { len, .. } => *len,
        }
    }

    /// The file holding the body, if it was spooled.
    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            StoredBody::Memory(_) => None,
            StoredBody::File { spool, .. } => Some(&spool.path),
        }
    }

    /// The whole body as bytes; a spooled one is read into memory (once). A spooled body
    /// that cannot be read back is logged and seen as empty.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            StoredBody::Memory(b) => b,
            StoredBody::File { spool, loaded, .. } => loaded.get_or_init(|| {
                let mut out = Vec::new();
                if let Err(e) = File::open(&spool.path).and_then(|mut f| f.read_to_end(&mut out))
                {
                    tracing::error!(target: "torsion_web", path = %spool.path.display(), "cannot read a spooled request body back: {e}");
                    out.clear();
                }
                out
            }),
        }
    }

    /// A reader over the body from its start.
    pub(crate) fn reader(&self) -> io::Result<RequestBody> {
        Ok(RequestBody {
            inner: match self {
                StoredBody::Memory(b) => BodyReader::Memory(Cursor::new(b.clone())),
                StoredBody::File { spool, .. } => BodyReader::File(File::open(&spool.path)?),
            },
        })
    }
}

/// A reader over a request body ([`Request::body`](crate::request::Request::body)): over
/// memory for a small body, over its temporary file for a spooled one. Reading never loads a
/// spooled body whole.
pub struct RequestBody {
    inner: BodyReader,
}

enum BodyReader {
    Memory(Cursor<Bytes>),
    File(File),
}

impl RequestBody {
    pub(crate) fn from_bytes(b: Bytes) -> RequestBody {
        RequestBody {
            inner: BodyReader::Memory(Cursor::new(b)),
        }
    }

    pub(crate) fn from_file(f: File) -> RequestBody {
        RequestBody {
            inner: BodyReader::File(f),
        }
    }

    /// True when this reads from a temporary file (the body was spooled).
    pub fn is_file(&self) -> bool {
        matches!(self.inner, BodyReader::File(_))
    }
}

impl Read for RequestBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            BodyReader::Memory(c) => c.read(buf),
            BodyReader::File(f) => f.read(buf),
        }
    }
}

impl Seek for RequestBody {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match &mut self.inner {
            BodyReader::Memory(c) => c.seek(pos),
            BodyReader::File(f) => f.seek(pos),
        }
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("is_file", &self.is_file())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_body_stays_in_memory_and_a_large_one_goes_to_a_removed_file() {
        let mut sink = BodySink::new(10, None).unwrap();
        sink.push(b"hello").unwrap();
        let (small, _) = sink.finish().unwrap();
        assert!(small.path().is_none());
        assert_eq!(small.as_slice(), b"hello");

        let mut sink = BodySink::new(10, None).unwrap();
        sink.push(b"hello ").unwrap();
        sink.push(b"world, at length").unwrap();
        let (big, _) = sink.finish().unwrap();
        let path = big.path().unwrap().to_owned();
        assert!(path.exists());
        assert_eq!(big.len(), 22);
        let mut read = String::new();
        big.reader().unwrap().read_to_string(&mut read).unwrap();
        assert_eq!(read, "hello world, at length");
        assert_eq!(big.as_slice(), b"hello world, at length");
        drop(big);
        assert!(!path.exists());
    }

    #[test]
    fn a_known_large_length_spools_from_the_first_byte() {
        let sink = BodySink::new(10, Some(11)).unwrap();
        assert!(sink.spool.is_some());
        let sink = BodySink::new(10, Some(10)).unwrap();
        assert!(sink.spool.is_none());
    }

    #[test]
    fn chunked_bodies_spill_too() {
        let mut sink = BodySink::new(4, None).unwrap();
        let mut d = ChunkedDecoder::new(100);
        let input = b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
        let used = sink.push_chunked(&mut d, input).unwrap().unwrap();
        assert_eq!(used, input.len());
        assert!(d.is_done());
        let (body, _) = sink.finish().unwrap();
        assert!(body.path().is_some());
        assert_eq!(body.as_slice(), b"abcdef");
    }
}
