//! Sending a file's bytes (Twisted's `static.NoRangeStaticProducer`,
//! `SingleRangeStaticProducer` and `MultipleRangeStaticProducer` in one): a body is a list of
//! [`Piece`]s, fixed bytes and ranges of the open file. A small body is read at once; a large
//! one is streamed a chunk at a time, one chunk per reactor turn, so only one chunk of the file
//! is in this module's memory at any moment.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use torsion::defer::{Deferred, Trigger};
use torsion::Failure;

use crate::request::Request;

/// The size of one chunk read from a file and written to the connection; bodies up to this
/// size go out in one write.
pub(super) const CHUNK: usize = 64 * 1024;

/// Above this many bytes waiting to be sent, the producer waits instead of writing.
const HIGH_WATER: usize = 4 * CHUNK;

/// How long the producer waits, in seconds, before looking at the backlog again.
const BACKLOG_POLL: f64 = 0.001;

/// Bytes of this response written but not yet sent: the connection's write buffer, and the
/// request's own output held back behind earlier pipelined responses. The producer holds at
/// [`HIGH_WATER`], so a slow client cannot make the server buffer a whole file.
fn backlog(request: &Request) -> usize {
    request.buffered_size()
}

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

/// Reads a whole (small) body. A file that shrank since it was measured is an error.
pub(super) fn read_body(file: &mut fs::File, pieces: Vec<Piece>) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(usize::try_from(body_len(&pieces)).unwrap_or(0));
    for piece in pieces {
        match piece {
            Piece::Bytes(b) => out.extend_from_slice(&b),
            Piece::File { offset, len } => {
                file.seek(SeekFrom::Start(offset))?;
                let start = out.len();
                out.resize(start + len as usize, 0);
                file.read_exact(&mut out[start..])?;
            }
        }
    }
    Ok(out)
}

/// Streams a body whose head (with its `Content-Length`) the caller has prepared; the
/// Deferred fires with nothing more to write once all is written, or fails if the file could
/// not be read to the end (the connection is then closed, since the length was promised).
/// Stops quietly if the client goes away.
pub(super) fn stream(
    request: &Request,
    file: fs::File,
    path: PathBuf,
    pieces: Vec<Piece>,
) -> Deferred<Vec<u8>> {
    let d = Deferred::new();
    let producer = Producer {
        request: request.clone(),
        file,
        path,
        position: None,
        pieces: pieces.into(),
        buf: Vec::with_capacity(CHUNK + 256),
        done: d.trigger(),
    };
    producer.step();
    d
}

struct Producer {
    request: Request,
    file: fs::File,
    path: PathBuf,
    /// Where the file's cursor is, when known.
    position: Option<u64>,
    pieces: VecDeque<Piece>,
    buf: Vec<u8>,
    done: Trigger<Vec<u8>>,
}

impl Producer {
    /// Writes the next chunk, then comes back on the next reactor turn for the one after, so
    /// the connection flushes between chunks and other connections get their turn.
    fn step(mut self) {
        if self.request.lost() || self.request.finished() {
            let _ = self.done.try_callback(Vec::new());
            return;
        }
        if backlog(&self.request) > HIGH_WATER {
            torsion::reactor().call_later(BACKLOG_POLL, move || self.step());
            return;
        }
        if let Err(e) = self.fill() {
            tracing::warn!(target: "torsion_web", path = %self.path.display(), "reading the file failed while sending it: {e}");
            let _ = self.done.try_errback(Failure::new(e));
            return;
        }
        self.request.write(&self.buf);
        if self.pieces.is_empty() {
            let _ = self.done.try_callback(Vec::new());
            return;
        }
        torsion::reactor().call_later(0.0, move || self.step());
    }

    /// Puts the next chunk of the body in `buf`.
    fn fill(&mut self) -> io::Result<()> {
        self.buf.clear();
        while self.buf.len() < CHUNK {
            let Some(piece) = self.pieces.front_mut() else {
                break;
            };
            match piece {
                Piece::Bytes(b) => {
                    self.buf.extend_from_slice(b);
                    self.pieces.pop_front();
                }
                Piece::File { offset, len } => {
                    let want = (*len).min((CHUNK - self.buf.len()) as u64);
                    if self.position != Some(*offset) {
                        self.file.seek(SeekFrom::Start(*offset))?;
                    }
                    let start = self.buf.len();
                    self.buf.resize(start + want as usize, 0);
                    if let Err(e) = self.file.read_exact(&mut self.buf[start..]) {
                        self.position = None;
                        return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                            io::Error::new(e.kind(), "the file shrank while it was being sent")
                        } else {
                            e
                        });
                    }
                    *offset += want;
                    *len -= want;
                    self.position = Some(*offset);
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
        Request::new(head, named("client"), named("host"), std::rc::Weak::new())
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
            // The first chunk is written at once; the rest come on later turns.
            let d = stream(&request, file, path.clone(), whole);
            fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(CHUNK as u64 + 10)?;
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
            let d = stream(&request, file, path.clone(), whole);
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
        let mut f = fs::File::open(&path)?;
        let pieces = vec![
            Piece::Bytes(b"<".to_vec()),
            Piece::File { offset: 7, len: 3 },
            Piece::Bytes(b"|".to_vec()),
            Piece::File { offset: 0, len: 2 },
        ];
        assert_eq!(body_len(&pieces), 7);
        assert_eq!(read_body(&mut f, pieces)?, b"<789|01");
        let short = read_body(&mut f, vec![Piece::File { offset: 5, len: 10 }]);
        assert_eq!(short.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        fs::remove_file(&path)
    }
}
