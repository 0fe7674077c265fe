//! Forms in request bodies: `application/x-www-form-urlencoded` and `multipart/form-data`.
//!
//! The server parses both before the resource renders. Their fields join the query string's
//! in [`Request::args`](crate::Request::args) (Twisted's `request.args`), in order; the files
//! of a multipart form are in [`Request::files`](crate::Request::files) as
//! [`UploadedFile`]s, not in `args` (Twisted puts a file's whole content in `args`; see
//! docs/design.md, "Uploaded files are not in request.args").
//!
//! A multipart body is parsed as it arrives ([`proto::multipart`](crate::proto::multipart)),
//! so its limits are enforced before the rest of it is read, and the connection is answered
//! and closed at once:
//!
//! | limit ([`FormLimits`])       | default   | answer |
//! |------------------------------|-----------|--------|
//! | the whole body               | [`SiteConfig::max_body`](crate::site::SiteConfig::max_body) (10 MiB) | 413 |
//! | `max_parts`                  | 1000      | 413 |
//! | `max_part_header`            | 8192 bytes| 413 |
//! | `max_field_size` (not files) | 1 MiB     | 413 |
//! | a malformed body             |           | 400 |
//!
//! A file part stays in memory up to `spool_threshold` bytes (100,000 by default, as the
//! body's own threshold) and moves to a temporary file past it, removed when the request is
//! dropped. File names are sanitised ([`sanitize_filename`]): the client's name, without
//! directories or control characters, is in [`UploadedFile::filename`]; what it sent is
//! [`UploadedFile::raw_filename`].
//!
//! The raw body stays readable too ([`Request::body`](crate::Request::body)), so a body
//! spooled to disk is there twice while the request lives.
//!
//! ```
//! use std::rc::Rc;
//! use torsion_web::{Render, Request, Resource};
//!
//! /// Answers with the title field and the uploaded files' names and sizes.
//! struct Upload;
//!
//! impl Resource for Upload {
//!     fn is_leaf(&self) -> bool {
//!         true
//!     }
//!     fn allowed_methods(&self) -> Vec<&'static str> {
//!         vec!["POST"]
//!     }
//!     fn render_post(&self, request: &Request) -> Render {
//!         let mut out = request.arg("title").unwrap_or_default();
//!         for file in request.files().iter() {
//!             out += &format!(
//!                 "\n{}: {} ({} bytes, on disk: {})",
//!                 file.name(),
//!                 file.filename(),
//!                 file.len(),
//!                 file.path().is_some()
//!             );
//!         }
//!         out.into()
//!     }
//! }
//! # let _root: Rc<dyn Resource> = Rc::new(Upload);
//! assert_eq!(torsion_web::form::sanitize_filename("C:\\Users\\me\\..\\cv\u{7}.pdf"), "cv.pdf");
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use bytes::Bytes;

use super::{RequestBody, SpoolFile};
use crate::proto::multipart::{MultipartEvent, MultipartLimits, MultipartParser, PartHead};

pub use crate::proto::multipart::FormError;

/// Limits on a `multipart/form-data` body, and where its files go (a site's
/// [`SiteConfig::forms`](crate::site::SiteConfig::forms)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormLimits {
    /// Most parts in one form (default 1000).
    pub max_parts: usize,
    /// Largest head of one part in bytes (default 8192).
    pub max_part_header: usize,
    /// Largest value of a field that is not a file, in bytes (default 1 MiB). Fields are
    /// kept in memory; files are bounded by the site's `max_body` only.
    pub max_field_size: u64,
    /// A file longer than this many bytes is moved to a temporary file (default 100,000).
    pub spool_threshold: u64,
}

impl Default for FormLimits {
    fn default() -> Self {
        FormLimits {
            max_parts: 1000,
            max_part_header: 8192,
            max_field_size: 1024 * 1024,
            spool_threshold: 100_000,
        }
    }
}

/// The client's file name made safe to use as a file name: only what follows the last `/`
/// or `\` (browsers on Windows have sent whole paths), without control characters, leading
/// and trailing spaces, and at most 255 bytes; `.` and `..` become empty.
///
/// It is still the client's choice: never trust it to be unique or to have a truthful
/// extension.
///
/// ```
/// use torsion_web::form::sanitize_filename;
/// assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
/// assert_eq!(sanitize_filename("a\r\nb\0.txt"), "ab.txt");
/// assert_eq!(sanitize_filename(".."), "");
/// assert_eq!(sanitize_filename("résumé.pdf"), "résumé.pdf");
/// ```
pub fn sanitize_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let mut clean = clean.trim().to_owned();
    if clean == "." || clean == ".." {
        return String::new();
    }
    if clean.len() > 255 {
        let mut end = 255;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
    }
    clean
}

enum Data {
    Memory(Vec<u8>),
    Spooled(SpoolFile),
}

/// A file uploaded in a `multipart/form-data` body ([`Request::files`](crate::Request::files)):
/// in memory while small, in a temporary file (removed with the request) past the form's
/// `spool_threshold`.
pub struct UploadedFile {
    head: PartHead,
    filename: String,
    len: u64,
    data: Data,
}

impl UploadedFile {
    /// The form field's name.
    pub fn name(&self) -> &str {
        &self.head.name
    }

    /// The file's name, sanitised ([`sanitize_filename`]); may be empty (a form's file
    /// input left empty sends `filename=""`).
    pub fn filename(&self) -> &str {
        &self.filename
    }

    /// The file name exactly as the client sent it.
    pub fn raw_filename(&self) -> &str {
        self.head.filename.as_deref().unwrap_or("")
    }

    /// The part's `Content-Type`, as the client said.
    pub fn content_type(&self) -> Option<&str> {
        self.head.content_type.as_deref()
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file (a form's file input left empty sends one).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The temporary file holding it, when it was spooled to disk.
    pub fn path(&self) -> Option<&Path> {
        match &self.data {
            Data::Memory(_) => None,
            Data::Spooled(s) => Some(s.path()),
        }
    }

    /// A reader over its content from the start (`Read` and `Seek`), never loading a spooled
    /// file whole.
    pub fn reader(&self) -> io::Result<RequestBody> {
        match &self.data {
            Data::Memory(b) => Ok(RequestBody::from_bytes(Bytes::copy_from_slice(b))),
            Data::Spooled(s) => Ok(RequestBody::from_file(File::open(s.path())?)),
        }
    }

    /// Its whole content, read into memory.
    pub fn bytes(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        self.reader()?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Copies its content to `dest` (created or truncated); the bytes copied.
    pub fn save(&self, dest: &Path) -> io::Result<u64> {
        let mut out = File::create(dest)?;
        let n = io::copy(&mut self.reader()?, &mut out)?;
        out.flush()?;
        Ok(n)
    }
}

impl fmt::Debug for UploadedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadedFile")
            .field("name", &self.head.name)
            .field("filename", &self.filename)
            .field("content_type", &self.head.content_type)
            .field("len", &self.len)
            .field("spooled", &self.path().is_some())
            .finish()
    }
}

enum Current {
    Field { name: String, value: Vec<u8> },
    File(UploadedFile),
}

/// A `multipart/form-data` body's fields and files, collected as it arrives.
pub(crate) struct MultipartSink {
    parser: MultipartParser,
    limits: FormLimits,
    current: Option<Current>,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    files: Vec<UploadedFile>,
}

/// A multipart form once its body has arrived.
pub(crate) struct ParsedForm {
    pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) files: Vec<UploadedFile>,
}

impl MultipartSink {
    /// A sink for a body of `content_type`, if it is `multipart/form-data` with a boundary.
    pub(crate) fn for_content_type(content_type: &str, limits: FormLimits) -> Option<Self> {
        let boundary = crate::proto::multipart::form_data_boundary(content_type)?;
        let parser = MultipartParser::new(
            boundary.as_bytes(),
            MultipartLimits {
                max_parts: limits.max_parts,
                max_part_header: limits.max_part_header,
            },
        );
        Some(MultipartSink {
            parser,
            limits,
            current: None,
            fields: Vec::new(),
            files: Vec::new(),
        })
    }

    /// Parses the next bytes of the body.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<(), FormError> {
        let MultipartSink {
            parser,
            limits,
            current,
            fields,
            files,
        } = self;
        parser.feed(data, &mut |event| match event {
            MultipartEvent::Part(head) => {
                *current = Some(match head.filename.as_deref() {
                    None => Current::Field {
                        name: head.name,
                        value: Vec::new(),
                    },
                    Some(raw) => Current::File(UploadedFile {
                        filename: sanitize_filename(raw),
                        head,
                        len: 0,
                        data: Data::Memory(Vec::new()),
                    }),
                });
                Ok(())
            }
            MultipartEvent::Data(d) => match current.as_mut() {
                Some(Current::Field { name, value }) => {
                    if (value.len() + d.len()) as u64 > limits.max_field_size {
                        return Err(FormError::too_large(format!(
                            "The form field {name:?} is larger than {} bytes.",
                            limits.max_field_size
                        )));
                    }
                    value.extend_from_slice(d);
                    Ok(())
                }
                Some(Current::File(file)) => append(file, d, limits.spool_threshold),
                None => Ok(()),
            },
            MultipartEvent::PartEnd => {
                match current.take() {
                    Some(Current::Field { name, value }) => fields.push((name.into_bytes(), value)),
                    Some(Current::File(mut file)) => {
                        if let Data::Spooled(s) = &mut file.data {
                            s.flush().map_err(storage)?;
                        }
                        files.push(file);
                    }
                    None => {}
                }
                Ok(())
            }
            MultipartEvent::End => Ok(()),
        })
    }

    /// The body ended: the form, or why it is refused.
    pub(crate) fn finish(self) -> Result<ParsedForm, FormError> {
        self.parser.finish()?;
        Ok(ParsedForm {
            fields: self.fields,
            files: self.files,
        })
    }
}

fn storage(e: io::Error) -> FormError {
    tracing::error!(target: "torsion_web", "cannot spool an uploaded file: {e}");
    FormError::storage("An uploaded file could not be stored.")
}

/// Appends to a file part, moving it to disk once it passes `threshold`.
fn append(file: &mut UploadedFile, d: &[u8], threshold: u64) -> Result<(), FormError> {
    file.len += d.len() as u64;
    match &mut file.data {
        Data::Spooled(s) => s.write_all(d).map_err(storage),
        Data::Memory(m) => {
            if file.len > threshold {
                let mut s = SpoolFile::create().map_err(storage)?;
                s.write_all(m).map_err(storage)?;
                s.write_all(d).map_err(storage)?;
                file.data = Data::Spooled(s);
            } else {
                m.extend_from_slice(d);
            }
            Ok(())
        }
    }
}
