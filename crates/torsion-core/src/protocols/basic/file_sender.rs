//! `FileSender`: streams a file (or any reader) to a transport a chunk at a time, with flow
//! control (Twisted's `twisted.protocols.basic.FileSender`).

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::rc::Rc;

use crate::defer::{Deferred, Trigger};
use crate::producer::{Producer, ProducerStopped};
use crate::{Failure, Transport};

/// Sends a file to a transport as a pull [`Producer`]: one chunk is read and written each
/// time the transport's write buffer has emptied, so a slow peer slows the reading and at
/// most one chunk of the file is in memory (Twisted's `FileSender`).
///
/// [`begin_file_transfer`](Self::begin_file_transfer) returns a Deferred that fires with the
/// number of bytes sent once the whole file is written (the producer is then unregistered;
/// close the connection or send more from the callback). It fails with the I/O error if the
/// file cannot be read (the connection is then closed, since the peer got only part of it),
/// with [`ProducerStopped`] if the connection ends first, and with a
/// [`ProducerError`](crate::producer::ProducerError) if the transport already has a producer.
///
/// ```
/// use torsion::protocols::basic::FileSender;
/// use torsion::testing::StringTransport;
///
/// let st = StringTransport::new();
/// let file = std::io::Cursor::new(vec![b'x'; 100_000]);
/// let d = FileSender::begin_file_transfer(file, &st.transport());
/// // A real transport asks for each chunk when its buffer empties; here the test does.
/// while let Some(p) = st.producer() {
///     p.resume_producing();
/// }
/// assert_eq!(st.value().len(), 100_000);
/// assert_eq!(d.result().unwrap().unwrap(), 100_000);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FileSender;

impl FileSender {
    /// The size of the chunks read and written (64 KiB).
    pub const CHUNK_SIZE: usize = 64 * 1024;

    /// Starts sending `file` to `transport` in [`CHUNK_SIZE`](Self::CHUNK_SIZE) chunks.
    pub fn begin_file_transfer<R: Read + 'static>(file: R, transport: &Transport) -> Deferred<u64> {
        FileSender::begin_file_transfer_chunked(file, transport, FileSender::CHUNK_SIZE)
    }

    /// Starts sending `file` to `transport` in chunks of `chunk_size` bytes (at least 1).
    pub fn begin_file_transfer_chunked<R: Read + 'static>(
        file: R,
        transport: &Transport,
        chunk_size: usize,
    ) -> Deferred<u64> {
        let d = Deferred::new();
        let sending = Rc::new(Sending {
            file: RefCell::new(Some(file)),
            transport: transport.clone(),
            buf: RefCell::new(Vec::new()),
            chunk_size: chunk_size.max(1),
            sent: Cell::new(0),
            done: RefCell::new(Some(d.trigger())),
        });
        if let Err(e) = transport.register_producer(sending.clone(), false) {
            sending.file.borrow_mut().take();
            sending.finish(Err(Failure::new(e)));
        }
        d
    }
}

/// One transfer in progress: the pull producer registered with the transport.
struct Sending<R> {
    /// `None` once the transfer has ended.
    file: RefCell<Option<R>>,
    transport: Transport,
    /// One chunk, allocated on the first read and reused.
    buf: RefCell<Vec<u8>>,
    chunk_size: usize,
    sent: Cell<u64>,
    done: RefCell<Option<Trigger<u64>>>,
}

impl<R> Sending<R> {
    fn finish(&self, outcome: Result<u64, Failure>) {
        let trigger = self.done.borrow_mut().take();
        if let Some(t) = trigger {
            let _ = t.fire(outcome);
        }
    }
}

impl<R: Read + 'static> Producer for Sending<R> {
    fn resume_producing(&self) {
        let read = {
            let mut file = self.file.borrow_mut();
            let Some(f) = file.as_mut() else { return };
            let mut buf = self.buf.borrow_mut();
            if buf.len() != self.chunk_size {
                buf.resize(self.chunk_size, 0);
            }
            let read = loop {
                match f.read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            match read {
                Ok(n) if n > 0 => {
                    self.transport.write(&buf[..n]);
                    self.sent.set(self.sent.get() + n as u64);
                    return;
                }
                _ => {
                    // Done or failed: release the file and the chunk now.
                    file.take();
                    *buf = Vec::new();
                    read
                }
            }
        };
        self.transport.unregister_producer();
        match read {
            Ok(_) => self.finish(Ok(self.sent.get())),
            Err(e) => {
                crate::log::error_event(format_args!(
                    "reading a file failed after {} bytes were sent to {}: {e}; closing",
                    self.sent.get(),
                    self.transport.get_peer()
                ));
                self.transport.lose_connection();
                self.finish(Err(Failure::new(e)));
            }
        }
    }

    fn stop_producing(&self) {
        if self.file.borrow_mut().take().is_some() {
            *self.buf.borrow_mut() = Vec::new();
            self.finish(Err(Failure::new(ProducerStopped)));
        }
    }
}
