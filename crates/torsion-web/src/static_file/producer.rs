//! Sending a file's bytes (Twisted's `static.NoRangeStaticProducer`,
//! `SingleRangeStaticProducer` and `MultipleRangeStaticProducer` in one): a body is a list of
//! [`Piece`]s, fixed bytes and ranges of the open file. A small body is read at once; a large
//! one is sent by a pull producer registered on the request. A range of the file at the front
//! of what is left is handed to the connection whole where it can send files
//! ([`Request::write_file`], `sendfile(2)`); otherwise the connection asks for the next chunk
//! each time its write buffer has emptied, so a slow client slows the reading and only one
//! chunk of the file is in this module's memory at any moment (64 KiB, growing to 256 KiB
//! while the socket takes every chunk whole, and back once it does not).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

use torsion::defer::{Deferred, Trigger};
use torsion::producer::Producer;
use torsion::Failure;

use crate::request::Request;

/// The size of one chunk read from a file and written to the connection; bodies up to this
/// size go out in one write.
pub(super) const CHUNK: usize = 64 * 1024;

/// The largest chunk: while the socket takes every chunk whole, each is twice the last, up to
/// this (fewer, larger sends: measured ~1.5x the requests per second of 64 KiB chunks for
/// 1 MiB files on loopback). When the socket is full the chunk drops back to [`CHUNK`] and a
/// larger buffer is freed, so a slow client holds at most one small chunk here.
const MAX_CHUNK: usize = 256 * 1024;

/// A part of a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    /// Bytes made here (multipart headers).
    Bytes(Vec<u8>),
    /// `len` bytes of the file from `offset`.
    File {
        /// Where the range starts.
        offset: u64,
        /// How many bytes it has.
        len: u64,
    },
}

/// The length of a body made of `pieces`.
pub(super) fn body_len(pieces: &[Piece]) -> u64 {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Bytes(b) => b.len() as u64,
            Piece::File { len, .. } => *len,
        })
        .sum()
}

/// Fills `buf` from the file at `offset` (one `pread` on Unix: no seek, no cursor to track).
fn read_exact_at(file: &fs::File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

/// Reads a whole (small) body. A file that shrank since it was measured is an error.
pub(super) fn read_body(file: &fs::File, pieces: Vec<Piece>) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(usize::try_from(body_len(&pieces)).unwrap_or(0));
    for piece in pieces {
        match piece {
            Piece::Bytes(b) => out.extend_from_slice(&b),
            Piece::File { offset, len } => {
                let start = out.len();
                out.resize(start + len as usize, 0);
                read_exact_at(file, &mut out[start..], offset)?;
            }
        }
    }
    Ok(out)
}

/// Streams a body whose head (with its `Content-Length`) the caller has prepared; the
/// Deferred fires with nothing more to write once all is written, or fails if the file could
/// not be read to the end (the connection is then closed, since the length was promised).
/// Stops quietly if the client goes away. With `sends_files`, parts of the file go by
/// `sendfile(2)` when the connection takes them ([`File::sendfile`](super::File::sendfile)).
pub(super) fn stream(
    request: &Request,
    file: Rc<fs::File>,
    path: PathBuf,
    pieces: Vec<Piece>,
    sends_files: bool,
) -> Deferred<Vec<u8>> {
    let d = Deferred::new();
    let body = Rc::new(FileBody {
        request: request.clone(),
        state: RefCell::new(Reading {
            file,
            path,
            pieces: pieces.into(),
            buf: Vec::new(),
            filled: 0,
            chunk: CHUNK,
            sends_files,
        }),
        done: RefCell::new(Some(d.trigger())),
    });
    if let Err(e) = request.register_producer(body.clone(), false) {
        body.end(Err(Failure::new(e)));
    }
    d
}

/// The pull producer of a file body.
struct FileBody {
    request: Request,
    state: RefCell<Reading>,
    done: RefCell<Option<Trigger<Vec<u8>>>>,
}

/// Where the reading is.
struct Reading {
    /// Shared with the site's open-file cache, perhaps: only read at offsets (`pread`).
    file: Rc<fs::File>,
    path: PathBuf,
    pieces: VecDeque<Piece>,
    /// One chunk, allocated (and zeroed) on the first read and reused.
    buf: Vec<u8>,
    /// How much of `buf` the last `fill` filled.
    filled: usize,
    /// How much the next `fill` reads: from [`CHUNK`] to [`MAX_CHUNK`].
    chunk: usize,
    /// False once the response refused a file range ([`Request::write_file`]): read and
    /// write from then on.
    sends_files: bool,
}

impl FileBody {
    fn end(&self, outcome: Result<Vec<u8>, Failure>) {
        let done = self.done.borrow_mut().take();
        if let Some(t) = done {
            let _ = t.fire(outcome);
        }
    }
}

impl Producer for FileBody {
    /// Writes the next chunk; the connection asks again once it has sent it.
    fn resume_producing(&self) {
        if self.done.borrow().is_none() {
            return;
        }
        if self.request.lost() || self.request.finished() {
            self.request.unregister_producer();
            return self.end(Ok(Vec::new()));
        }
        if self.send_file_range() {
            return;
        }
        let (filled, last) = {
            let mut reading = self.state.borrow_mut();
            let filled = reading.fill();
            if let Err(e) = &filled {
                tracing::warn!(target: "torsion_web", path = %reading.path.display(), "reading the file failed while sending it: {e}");
            } else {
                self.request.write(&reading.buf[..reading.filled]);
                let taken_whole = self.request.buffered_size() == 0;
                reading.adapt(taken_whole);
            }
            (filled, reading.pieces.is_empty())
        };
        match filled {
            Err(e) => {
                self.request.unregister_producer();
                self.end(Err(Failure::new(e)));
            }
            Ok(()) if last => {
                self.request.unregister_producer();
                self.end(Ok(Vec::new()));
            }
            Ok(()) => {}
        }
    }

    fn stop_producing(&self) {
        self.end(Ok(Vec::new()));
    }
}

impl FileBody {
    /// Hands a range of the file at the front of what is left to the connection whole, where
    /// the response can take it; true when that was this call's work (or the client left).
    fn send_file_range(&self) -> bool {
        let range = {
            let reading = self.state.borrow();
            match reading.pieces.front() {
                Some(&Piece::File { offset, len }) if reading.sends_files => {
                    Some((reading.file.clone(), offset, len))
                }
                _ => None,
            }
        };
        let Some((file, offset, len)) = range else {
            return false;
        };
        match self.request.write_file(&file, offset, len) {
            Ok(true) => {
                let last = {
                    let mut reading = self.state.borrow_mut();
                    reading.pieces.pop_front();
                    reading.pieces.is_empty()
                };
                if last {
                    self.request.unregister_producer();
                    self.end(Ok(Vec::new()));
                }
                // Otherwise asked again once the range is sent.
                true
            }
            Ok(false) => {
                self.state.borrow_mut().sends_files = false;
                false
            }
            Err(_) => {
                self.request.unregister_producer();
                self.end(Ok(Vec::new()));
                true
            }
        }
    }
}

impl Reading {
    /// Grows the next chunk if the socket took the last one whole; otherwise goes back to
    /// the smallest chunk and frees a larger buffer.
    fn adapt(&mut self, taken_whole: bool) {
        if taken_whole {
            self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        } else {
            self.chunk = CHUNK;
            if self.buf.len() > CHUNK {
                self.buf = Vec::new();
            }
        }
    }

    /// Puts the next chunk of the body in `buf[..filled]`.
    fn fill(&mut self) -> io::Result<()> {
        let chunk = self.chunk;
        if self.buf.len() < chunk {
            self.buf.resize(chunk, 0);
        }
        self.filled = 0;
        while self.filled < chunk {
            let Some(piece) = self.pieces.front_mut() else {
                break;
            };
            match piece {
                Piece::Bytes(b) => {
                    // Multipart headers are short; a chunk ends early rather than split one.
                    if self.filled + b.len() > chunk && self.filled > 0 {
                        break;
                    }
                    let b = std::mem::take(b);
                    self.pieces.pop_front();
                    if self.filled + b.len() > self.buf.len() {
                        // A piece longer than a chunk (not made here): grow the buffer.
                        self.buf.resize(self.filled + b.len(), 0);
                    }
                    self.buf[self.filled..self.filled + b.len()].copy_from_slice(&b);
                    self.filled += b.len();
                }
                Piece::File { offset, len } => {
                    let want = (*len).min((chunk - self.filled) as u64) as usize;
                    let start = self.filled;
                    let target = &mut self.buf[start..start + want];
                    if let Err(e) = read_exact_at(&self.file, target, *offset) {
                        return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                            io::Error::new(e.kind(), "the file shrank while it was being sent")
                        } else {
                            e
                        });
                    }
                    self.filled += want;
                    *offset += want as u64;
                    *len -= want as u64;
                    if *len == 0 {
                        self.pieces.pop_front();
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{parse_request_head, Limits};
    use torsion::transport::Address;

    /// A GET not tied to any connection: what it writes stays in its own buffer.
    fn detached_request() -> Request {
        let wire = b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n";
        let (head, _) = parse_request_head(wire, &Limits::default())
            .unwrap()
            .unwrap();
        let named = |n: &str| Address::Named(n.into());
        let no_channel = std::rc::Weak::<crate::channel::ChannelShared>::new();
        Request::new(head, named("client"), named("host"), no_channel)
    }

    fn temp_file(test: &str, len: usize) -> io::Result<PathBuf> {
        let path =
            std::env::temp_dir().join(format!("torsion-producer-{test}-{}", std::process::id()));
        fs::write(&path, vec![7u8; len])?;
        Ok(path)
    }

    #[test]
    fn a_file_that_shrinks_while_streaming_fails_the_body() {
        torsion::testing::run_test("shrink", 10.0, || async {
            let path = temp_file("shrink", 5 * CHUNK)?;
            let request = detached_request();
            let file = fs::File::open(&path)?;
            let whole = vec![Piece::File {
                offset: 0,
                len: 5 * CHUNK as u64,
            }];
            // A detached request: the test asks for each chunk, as a connection would.
            let d = stream(&request, Rc::new(file), path.clone(), whole, true);
            let producer = request.producer().expect("a registered producer");
            producer.resume_producing();
            fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(CHUNK as u64 + 10)?;
            producer.resume_producing();
            assert!(request.producer().is_none(), "unregistered after the error");
            let out = d.await;
            fs::remove_file(&path)?;
            let f = out.expect_err("the body could not be completed");
            assert!(f.error_message().contains("shrank"), "{}", f.report());
            Ok::<(), Failure>(())
        });
    }

    #[test]
    fn the_stream_stops_when_the_client_leaves() {
        torsion::testing::run_test("leave", 10.0, || async {
            let path = temp_file("leave", 5 * CHUNK)?;
            let request = detached_request();
            let file = fs::File::open(&path)?;
            let whole = vec![Piece::File {
                offset: 0,
                len: 5 * CHUNK as u64,
            }];
            let d = stream(&request, Rc::new(file), path.clone(), whole, true);
            request.producer().unwrap().resume_producing();
            request.connection_lost(false);
            let out = d.await;
            fs::remove_file(&path)?;
            assert_eq!(out?, Vec::<u8>::new());
            Ok::<(), Failure>(())
        });
    }

    #[test]
    fn small_bodies_are_read_whole() -> io::Result<()> {
        let path = std::env::temp_dir().join(format!("torsion-producer-{}", std::process::id()));
        fs::write(&path, b"0123456789")?;
        let f = fs::File::open(&path)?;
        let pieces = vec![
            Piece::Bytes(b"<".to_vec()),
            Piece::File { offset: 7, len: 3 },
            Piece::Bytes(b"|".to_vec()),
            Piece::File { offset: 0, len: 2 },
        ];
        assert_eq!(body_len(&pieces), 7);
        assert_eq!(read_body(&f, pieces)?, b"<789|01");
        let short = read_body(&f, vec![Piece::File { offset: 5, len: 10 }]);
        assert_eq!(short.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        fs::remove_file(&path)
    }
}
