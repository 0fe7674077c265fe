//! Static files (Twisted's `twisted.web.static.File`): serves one file, or a folder tree.
//!
//! A [`File`] on a folder finds its children by path segment; a folder asked for with a
//! trailing slash is answered with its index page (`index.html`, or the names given to
//! [`File::index_names`]) or else an HTML listing; without the slash it is redirected (301) to
//! the slash form. A file is sent with its content type (by extension),
//! `X-Content-Type-Options: nosniff` (so a browser trusts that type rather than finding HTML
//! or script in, say, an uploaded `.txt`; nginx does not add it by default, but it costs
//! nothing for correctly typed files), `Last-Modified`, a strong `ETag` and
//! `Accept-Ranges: bytes`, and the server answers what HTTP lets a client ask of it:
//!
//! - conditional requests: `If-None-Match` (and, without it, `If-Modified-Since`) give 304;
//!   `If-Match` and `If-Unmodified-Since` give 412;
//! - ranges: `bytes=a-b`, `a-` and `-n` give 206 with `Content-Range`, several ranges give a
//!   `multipart/byteranges` body, ranges outside the file give 416 (`Content-Range: bytes
//!   */size`), malformed Range headers are ignored, and `If-Range` lets a range apply only to
//!   the version the client has;
//! - HEAD: the same head as GET, no body.
//!
//! Files up to 16 KiB are read and go out in one write with the head. Larger bodies (the
//! whole file or one range) go by `sendfile(2)` on a plain TCP or Unix connection
//! ([`Request::write_file`]): nothing of the file is read here, and the connection sends it
//! as the client takes it.
//! Where the bytes themselves are needed (TLS, HTTP/2, an encoded response, several ranges)
//! they are read and written a chunk at a time, the next chunk only once the connection's
//! write buffer has emptied, so a slow client holds at most one chunk here (see
//! `producer.rs`).
//!
//! Requests never leave the root: a segment that is `.` or `..` or holds `/`, `\` or NUL
//! (also once percent-decoded) is not found, and a symbolic link that resolves outside the
//! root is refused with 403 unless [`File::allow_symlinks_outside`] says otherwise. A file that
//! cannot be read is answered 403 or 404 and logged, never a panic.
//!
//! Hidden entries are not served unless [`File::show_hidden`] says so: a path segment that
//! starts with `.` (`/.git/config`, `/.env`, `/.ssh/`) is answered 404, and such entries are
//! left out of listings. Twisted's `static.File` serves them; Torsion does not, because a
//! folder served as it is (`torsiond web --path .`) would otherwise publish its version
//! control metadata and secrets. Only the name in the URL is checked: a symbolic link with
//! a plain name that leads to a hidden entry inside the root is followed, and children added
//! with [`put_child`](crate::resource::Resource::put_child) (a `.well-known` resource, say) are served
//! whatever their name.
//!
//! Seed 004's `File('.')`, fetched once:
//!
//! ```
//! use std::io::{Read, Write};
//! use torsion::reactor;
//! use torsion_web::{site::Site, static_file::File};
//!
//! let dir = std::env::temp_dir().join(format!("torsion-static-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(dir.join("index.html"), "<h1>Hello</h1>")?;
//!
//! let port = reactor().listen_tcp_on(0, Site::new(File::new(&dir)), "127.0.0.1")?;
//! let addr = port.get_host().socket_addr().unwrap();
//! let handle = reactor().handle();
//! let client = std::thread::spawn(move || {
//!     let mut s = std::net::TcpStream::connect(addr).unwrap();
//!     s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
//!     let mut answer = String::new();
//!     s.read_to_string(&mut answer).unwrap();
//!     handle.stop();
//!     answer
//! });
//! reactor().run()?;
//! let answer = client.join().unwrap();
//! assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
//! assert!(answer.contains("Content-Type: text/html\r\n"), "{answer}");
//! assert!(answer.ends_with("\r\n\r\n<h1>Hello</h1>"), "{answer}");
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), torsion::Failure>(())
//! ```

mod listing;
mod open_files;
mod producer;
mod range;
mod validators;

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::channel::error_page;
use crate::encoding::{negotiate, Coding};
use crate::proto::{html_escape, http_date, percent_decode};
use crate::request::Request;
use crate::resource::{Children, Render, Resource};
use crate::resources::ErrorPage;

use listing::{render_listing, Entry};
use open_files::OpenFiles;
use producer::{body_len, read_body, stream, Piece, CHUNK};
use range::{parse_range, Ranges};
use validators::{evaluate, if_range_holds, Precondition, Validators};

/// Settings shared by a [`File`] and every `File` made for what lies below it.
#[derive(Clone)]
struct Config {
    root: PathBuf,
    /// The root with every symbolic link resolved, found on first use.
    canonical_root: OnceCell<PathBuf>,
    index_names: Vec<String>,
    directory_listing: bool,
    show_hidden: bool,
    allow_symlinks_outside: bool,
    default_type: String,
    /// Lower-case extension (without the dot) to content type; checked before `mime_guess`.
    content_types: HashMap<String, String>,
    /// Descriptors kept open between requests, shared by every `File` below the root;
    /// `None` when turned off.
    open_files: Option<Rc<OpenFiles>>,
    /// Serve `name.br` / `name.gz` for `name` when present and accepted.
    precompressed: bool,
    /// Send large bodies by `sendfile(2)` where the connection can.
    sendfile: bool,
}

impl Config {
    fn canonical_root(&self) -> io::Result<&Path> {
        if self.canonical_root.get().is_none() {
            let _ = self.canonical_root.set(fs::canonicalize(&self.root)?);
        }
        Ok(self
            .canonical_root
            .get()
            .map_or(self.root.as_path(), PathBuf::as_path))
    }

    /// True when `path` (which exists) resolves to a place inside the root.
    fn inside_root(&self, path: &Path) -> io::Result<bool> {
        let real = fs::canonicalize(path)?;
        Ok(real.starts_with(self.canonical_root()?))
    }

    /// The content type for a file name: the types set with [`File::content_type`], then
    /// `mime_guess`, then the default type.
    fn content_type_of(&self, path: &Path) -> Cow<'_, str> {
        if !self.content_types.is_empty() {
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase());
            if let Some(t) = ext.as_ref().and_then(|e| self.content_types.get(e)) {
                return Cow::Borrowed(t);
            }
        }
        match mime_guess::from_path(path).first_raw() {
            Some(t) => Cow::Borrowed(t),
            None => Cow::Borrowed(&self.default_type),
        }
    }
}

/// A file or folder on disk, served over HTTP (Twisted's `static.File`).
///
/// ```
/// use std::rc::Rc;
/// use torsion_web::resource::Resource;
/// use torsion_web::resources::Data;
/// use torsion_web::static_file::File;
///
/// let root = File::new("./public")
///     .index_names(["index.html", "index.htm"])
///     .directory_listing(false)
///     .content_type("md", "text/markdown");
/// root.put_child(b"status", Rc::new(Data::new("ok", "text/plain")));
/// ```
pub struct File {
    path: PathBuf,
    config: Rc<Config>,
    children: Children,
    /// What the parent's lookup found at `path`, when that was not a symbolic link: the
    /// render uses it instead of asking the file system again. A `File` made by a lookup
    /// serves one request, so this is never stale by more than that request.
    looked_up: Option<fs::Metadata>,
}

impl File {
    /// Serves the file or folder at `path`. The path need not exist yet: requests for it are
    /// answered 404 until it does.
    pub fn new(path: impl Into<PathBuf>) -> File {
        let path = path.into();
        File {
            config: Rc::new(Config {
                root: path.clone(),
                canonical_root: OnceCell::new(),
                index_names: vec!["index.html".to_owned()],
                directory_listing: true,
                show_hidden: false,
                allow_symlinks_outside: false,
                default_type: "application/octet-stream".to_owned(),
                content_types: HashMap::new(),
                open_files: Some(Rc::default()),
                sendfile: true,
                precompressed: true,
            }),
            path,
            children: Children::new(),
            looked_up: None,
        }
    }

    /// The names tried, in order, for a folder's index page (Twisted's `indexNames`); the
    /// default is `index.html`.
    pub fn index_names<I, S>(mut self, names: I) -> File
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config_mut().index_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Lists folders that have no index page (the default); when off, such a folder is
    /// answered 403 Forbidden.
    pub fn directory_listing(mut self, on: bool) -> File {
        self.config_mut().directory_listing = on;
        self
    }

    /// Serves hidden entries, those whose name starts with `.` (`.git`, `.env`,
    /// `.htaccess`), and lists them, as Twisted does. Off by default: a URL path segment that
    /// starts with `.` is answered 404 and hidden entries are left out of listings, so serving
    /// a working copy does not publish its `.git` folder.
    pub fn show_hidden(mut self, show: bool) -> File {
        self.config_mut().show_hidden = show;
        self
    }

    /// Keeps served files open between requests (on by default), as nginx's
    /// `open_file_cache` does: a file whose device and inode are unchanged since the last
    /// request is read through the same descriptor, saving an `open` and a `close` per
    /// request. Metadata is still looked up on every request, so a changed or replaced file is
    /// never served stale; a descriptor is reopened after 10 seconds, and at most 256 are kept
    /// per site. Turn it off to have no descriptor outlive its request.
    pub fn open_file_cache(mut self, on: bool) -> File {
        self.config_mut().open_files = on.then(Rc::default);
        self
    }

    /// Sends bodies over 16 KiB with `sendfile(2)` where the connection allows it (on by
    /// default; nginx's `sendfile` directive): the kernel copies the file to the socket and
    /// nothing of it is read into memory. Where it cannot (TLS, HTTP/2, an encoded or chunked
    /// body) the file is read and written in chunks either way. Turn it off for file systems
    /// whose `sendfile` misbehaves (some network mounts), or to have every body read.
    pub fn sendfile(mut self, on: bool) -> File {
        self.config_mut().sendfile = on;
        self
    }

    /// Serves a precompressed sibling, `name.br` or `name.gz`, for a GET or HEAD of `name`
    /// when the client accepts that coding (on by default): with `Content-Encoding`, the
    /// original's `Content-Type`, and `Vary: Accept-Encoding` (on every answer for a file that
    /// has a sibling, except to a request without `Accept-Encoding`, which gets the original
    /// as nginx's `gzip_static` answers it, and costs no look for siblings). A sibling is used only when it is a regular file (not a symbolic link)
    /// at least as new as the original, so a stale one is never served; a request with a
    /// `Range` header gets the original.
    pub fn precompressed(mut self, on: bool) -> File {
        self.config_mut().precompressed = on;
        self
    }

    /// Follows symbolic links that lead outside the root. Off by default: such links are
    /// answered 403 Forbidden and left out of listings.
    pub fn allow_symlinks_outside(mut self, allow: bool) -> File {
        self.config_mut().allow_symlinks_outside = allow;
        self
    }

    /// The content type of files whose type is not known (Twisted's `defaultType`); the
    /// default is `application/octet-stream`.
    pub fn default_type(mut self, content_type: &str) -> File {
        self.config_mut().default_type = content_type.to_owned();
        self
    }

    /// Serves files ending in `.extension` as `content_type` (Twisted's `contentTypes`),
    /// before the types `mime_guess` knows. The extension is matched without case.
    pub fn content_type(mut self, extension: &str, content_type: &str) -> File {
        let ext = extension.trim_start_matches('.').to_ascii_lowercase();
        self.config_mut()
            .content_types
            .insert(ext, content_type.to_owned());
        self
    }

    /// The path this resource serves.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn config_mut(&mut self) -> &mut Config {
        Rc::make_mut(&mut self.config)
    }

    /// A `File` for a path below this one, with the same settings (Twisted's
    /// `createSimilarFile`).
    fn create_similar_file(&self, path: PathBuf, looked_up: Option<fs::Metadata>) -> File {
        File {
            path,
            config: self.config.clone(),
            children: Children::new(),
            looked_up,
        }
    }

    /// Finds the entry called `name` in this folder.
    fn lookup(&self, name: &[u8]) -> Lookup {
        let Some(name) = safe_segment(name) else {
            return Lookup::Missing;
        };
        // `join` would copy the folder's path and then grow it: one allocation instead.
        let mut path = PathBuf::with_capacity(self.path.as_os_str().len() + 1 + name.len());
        path.push(&self.path);
        path.push(name);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return Lookup::Missing;
        };
        let is_link = meta.file_type().is_symlink();
        if is_link && !self.config.allow_symlinks_outside {
            match self.config.inside_root(&path) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(target: "torsion_web", path = %path.display(), "refused: a symbolic link leading outside the served folder");
                    return Lookup::Forbidden;
                }
                // A dangling link, or one in a loop.
                Err(_) => return Lookup::Missing,
            }
        }
        // A link's own metadata is not its target's.
        Lookup::Found(path, (!is_link).then_some(meta))
    }

    /// What a folder answers for its own URL with a trailing slash.
    fn index(&self) -> Rc<dyn Resource> {
        for name in &self.config.index_names {
            if let Lookup::Found(path, _) = self.lookup(name.as_bytes()) {
                if let Some(meta) = fs::metadata(&path).ok().filter(|m| m.is_file()) {
                    return Rc::new(self.create_similar_file(path, Some(meta)));
                }
            }
        }
        if self.config.directory_listing {
            Rc::new(DirectoryLister {
                path: self.path.clone(),
                config: self.config.clone(),
            })
        } else {
            Rc::new(ErrorPage::new(
                403,
                "Directory listing is not allowed here.",
            ))
        }
    }
}

/// What looking a name up in a folder found.
enum Lookup {
    /// The path, and its metadata unless it is a symbolic link.
    Found(PathBuf, Option<fs::Metadata>),
    Missing,
    Forbidden,
}

/// True for a hidden entry's name: one that starts with `.` (as `ls` and most servers
/// treat them).
fn is_hidden(name: &[u8]) -> bool {
    name.first() == Some(&b'.')
}

/// The file-system name for a decoded path segment, unless it could step out of its folder:
/// `.` and `..`, and names holding `/`, `\` or NUL, are refused.
fn safe_segment(name: &[u8]) -> Option<&OsStr> {
    if name.is_empty()
        || name == b"."
        || name == b".."
        || name.iter().any(|&b| matches!(b, b'/' | b'\\' | 0))
    {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Some(OsStr::from_bytes(name))
    }
    #[cfg(not(unix))]
    {
        let name = std::str::from_utf8(name).ok()?;
        // Drive letters and alternate data streams.
        (!name.contains(':')).then(|| OsStr::new(name))
    }
}

impl Resource for File {
    fn children(&self) -> Option<&Children> {
        Some(&self.children)
    }

    /// A file is only read: any other method than GET and HEAD gets its 405 without waiting
    /// for the request's body.
    fn answers_before_body(&self, request: &Request) -> bool {
        !matches!(request.method(), "GET" | "HEAD")
    }

    fn get_child(&self, name: &[u8], _request: &Request) -> Option<Rc<dyn Resource>> {
        if name.is_empty() {
            if !fs::metadata(&self.path).is_ok_and(|m| m.is_dir()) {
                return None;
            }
            return Some(self.index());
        }
        if is_hidden(name) && !self.config.show_hidden {
            return None;
        }
        // No need to check that this is a folder first: below anything else, the lookup
        // finds nothing (ENOTDIR).
        match self.lookup(name) {
            Lookup::Found(path, meta) => Some(Rc::new(self.create_similar_file(path, meta))),
            Lookup::Missing => None,
            Lookup::Forbidden => Some(Rc::new(ErrorPage::new(
                403,
                "You don't have permission to access this resource.",
            ))),
        }
    }

    fn render_get(&self, request: &Request) -> Render {
        let meta = match self
            .looked_up
            .clone()
            .map_or_else(|| fs::metadata(&self.path), Ok)
        {
            Ok(m) => m,
            Err(e) => return io_error(request, &self.path, &e),
        };
        if meta.is_dir() {
            return redirect_with_slash(request);
        }
        if !meta.is_file() {
            tracing::warn!(target: "torsion_web", path = %self.path.display(), "refused: not a regular file");
            return forbidden(request);
        }
        let content_type = self.config.content_type_of(&self.path);
        if self.config.precompressed {
            if let Some((coding, path, sibling)) = precompressed_sibling(request, &self.path, &meta)
            {
                request.set_header("Content-Encoding", coding.token());
                return serve_file(request, &self.config, &path, &sibling, &content_type);
            }
        }
        serve_file(request, &self.config, &self.path, &meta, &content_type)
    }
}

/// The precompressed sibling of `path` to serve (`name.br`, `name.gz`) for this request, if
/// any: a regular file at least as new as the original, in a coding the client accepts, the
/// request being a GET or HEAD without a `Range`. Adds `Vary: Accept-Encoding` when a sibling
/// exists, whether or not it is chosen, unless the request has no `Accept-Encoding` at all
/// (then no sibling is looked for).
fn precompressed_sibling(
    request: &Request,
    path: &Path,
    meta: &fs::Metadata,
) -> Option<(Coding, PathBuf, fs::Metadata)> {
    if !matches!(request.method(), "GET" | "HEAD") {
        return None;
    }
    // A request without Accept-Encoding (wrk, curl without --compressed, most API clients)
    // is answered with the original and no Vary, as nginx's gzip_static does: looking for
    // siblings cost it two failed `stat`s per request, and the answer is right for any
    // client a cache may give it to.
    if !request.headers().contains("accept-encoding") {
        return None;
    }
    let modified = meta.modified().ok();
    let mut found = Vec::new();
    for coding in [Coding::Br, Coding::Gzip] {
        let mut name = path.as_os_str().to_owned();
        name.push(coding.suffix());
        let sibling = PathBuf::from(name);
        let Ok(m) = fs::symlink_metadata(&sibling) else {
            continue;
        };
        let fresh = match (modified, m.modified().ok()) {
            (Some(orig), Some(sib)) => sib >= orig,
            _ => false,
        };
        if m.is_file() && fresh {
            found.push((coding, sibling, m));
        } else {
            tracing::debug!(target: "torsion_web", path = %sibling.display(), "precompressed sibling ignored: not a regular file, or older than the original");
        }
    }
    if found.is_empty() {
        return None;
    }
    request.add_header("Vary", "Accept-Encoding");
    if request.headers().contains("range") {
        return None;
    }
    let accept: Vec<&str> = request
        .headers()
        .get_all("accept-encoding")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .collect();
    let codings: Vec<Coding> = found.iter().map(|(c, _, _)| *c).collect();
    let chosen = negotiate(&accept.join(","), &codings)?;
    found.into_iter().find(|(c, _, _)| *c == chosen)
}

/// Bodies longer than this go by `sendfile(2)` where the connection can: below it, reading
/// the file into the response (one write with the head) costs less than a second system
/// call.
const SENDFILE_MIN: u64 = 16 * 1024;

/// Sends a regular file, or the part of it the request asks for.
fn serve_file(
    request: &Request,
    config: &Config,
    path: &Path,
    meta: &fs::Metadata,
    content_type: &str,
) -> Render {
    let size = meta.len();
    let mtime = meta.modified().ok();
    let validators = Validators::new(size, mtime);
    request.set_header("Accept-Ranges", "bytes");
    request.set_header("ETag", &validators.etag);
    if let Some(t) = validators.last_modified {
        request.set_header("Last-Modified", http_date(t));
    }
    match evaluate(request.headers(), &validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            request.set_response_code(304);
            return Render::Body(Vec::new());
        }
        Precondition::Failed => {
            request.set_response_code(412);
            return Render::Body(error_page(
                412,
                "The file is not in the state the request's conditions ask for.",
            ));
        }
    }
    let opened = match config.open_files.as_deref() {
        Some(files) => files.open(path, meta),
        None => fs::File::open(path).map(Rc::new),
    };
    let file = match opened {
        Ok(f) => f,
        Err(e) => return io_error(request, path, &e),
    };
    let ranges = match request.headers().get("range") {
        Some(range) => {
            let applies = request
                .headers()
                .get("if-range")
                .is_none_or(|v| if_range_holds(v, &validators));
            if applies {
                parse_range(range, size)
            } else {
                Ranges::Whole
            }
        }
        None => Ranges::Whole,
    };
    // The type comes from the file name, which the site may not control (uploads): tell
    // browsers to trust it rather than sniff HTML or script out of, say, a `.txt` file.
    request.set_header("X-Content-Type-Options", "nosniff");
    let pieces = match ranges {
        Ranges::Whole => {
            request.set_header("Content-Type", content_type);
            vec![Piece::File {
                offset: 0,
                len: size,
            }]
        }
        Ranges::Unsatisfiable => {
            request.set_response_code(416);
            request.set_header("Content-Range", format!("bytes */{size}"));
            request.set_header("Content-Type", "text/html; charset=utf-8");
            return Render::Body(error_page(
                416,
                "None of the requested ranges lies within the file.",
            ));
        }
        Ranges::Parts(parts) => {
            request.set_response_code(206);
            if let [(first, last)] = parts[..] {
                request.set_header("Content-Type", content_type);
                request.set_header("Content-Range", format!("bytes {first}-{last}/{size}"));
                vec![Piece::File {
                    offset: first,
                    len: last - first + 1,
                }]
            } else {
                multipart(request, &parts, size, content_type)
            }
        }
    };
    let len = body_len(&pieces);
    request.set_header("Content-Length", itoa::Buffer::new().format(len));
    if request.method() == "HEAD" {
        return Render::Body(Vec::new());
    }
    // The whole file or one range past SENDFILE_MIN, on a plain connection with nothing
    // ahead of it: the connection sends it by sendfile(2), nothing read here. Otherwise
    // (encoded, TLS, HTTP/2, behind a pipelined response) the producer sends it: by sendfile
    // too once the request is at the front where it can, else read and written.
    if let ([Piece::File { offset, len }], true) = (&pieces[..], config.sendfile) {
        if *len > SENDFILE_MIN {
            match request.write_file(&file, *offset, *len) {
                Ok(true) => {
                    let _ = request.try_finish();
                    return Render::NotDoneYet;
                }
                Ok(false) => {
                    return Render::Later(stream(request, file, path.to_owned(), pieces, true))
                }
                // The client left: nothing more to send.
                Err(_) => return Render::NotDoneYet,
            }
        }
    }
    if len <= CHUNK as u64 {
        return match read_body(&file, pieces) {
            Ok(body) => Render::Body(body),
            Err(e) => {
                tracing::warn!(target: "torsion_web", path = %path.display(), "reading the file failed: {e}");
                request.set_response_code(500);
                request.set_header("Content-Type", "text/html");
                let page = error_page(500, "The file changed while it was being read.");
                request.set_header("Content-Length", page.len().to_string());
                Render::Body(page)
            }
        };
    }
    Render::Later(stream(
        request,
        file,
        path.to_owned(),
        pieces,
        config.sendfile,
    ))
}

/// The body of a multi-range answer (`multipart/byteranges`, RFC 9110 section 14.6).
fn multipart(request: &Request, parts: &[(u64, u64)], size: u64, content_type: &str) -> Vec<Piece> {
    let boundary = boundary();
    request.set_header(
        "Content-Type",
        format!("multipart/byteranges; boundary={boundary}"),
    );
    let mut pieces = Vec::with_capacity(parts.len() * 2 + 1);
    for (i, &(first, last)) in parts.iter().enumerate() {
        let head = format!(
            "{}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {first}-{last}/{size}\r\n\r\n",
            if i == 0 { "" } else { "\r\n" }
        );
        pieces.push(Piece::Bytes(head.into_bytes()));
        pieces.push(Piece::File {
            offset: first,
            len: last - first + 1,
        });
    }
    pieces.push(Piece::Bytes(format!("\r\n--{boundary}--\r\n").into_bytes()));
    pieces
}

/// A boundary no file is likely to hold: 64 random bits from the standard library's hasher
/// keys, over the time.
fn boundary() -> String {
    use std::hash::BuildHasher;
    let bits =
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    format!("torsion-{bits:016x}")
}

/// 301 to the same path with a trailing slash (and the same query).
fn redirect_with_slash(request: &Request) -> Render {
    let path = String::from_utf8_lossy(request.path());
    // Never `//host`: that would send the client to another site.
    let mut location = format!("/{}/", path.trim_start_matches(['/', '\\']));
    if !request.query().is_empty() {
        location.push('?');
        location.push_str(&String::from_utf8_lossy(request.query()));
    }
    request.set_response_code(301);
    request.set_header("Location", location.clone());
    request.set_header("Content-Type", "text/html; charset=utf-8");
    let url = html_escape(&location);
    format!("<html><head><meta http-equiv=\"refresh\" content=\"0;URL={url}\"></head><body bgcolor=\"#FFFFFF\" text=\"#000000\"><a href=\"{url}\">click here</a></body></html>").into()
}

fn forbidden(request: &Request) -> Render {
    request.set_response_code(403);
    Render::Body(error_page(
        403,
        "You don't have permission to access this resource.",
    ))
}

/// A file-system error as an answer: 404 for what is not there, 403 for what may not be
/// read, 500 for the rest. Logged.
fn io_error(request: &Request, path: &Path, e: &io::Error) -> Render {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            tracing::info!(target: "torsion_web", path = %path.display(), "not found: {e}");
            request.set_response_code(404);
            Render::Body(error_page(404, "Sorry. No luck finding that resource."))
        }
        io::ErrorKind::PermissionDenied => {
            tracing::warn!(target: "torsion_web", path = %path.display(), "cannot read: {e}");
            forbidden(request)
        }
        _ => {
            tracing::error!(target: "torsion_web", path = %path.display(), "cannot read: {e}");
            request.set_response_code(500);
            Render::Body(error_page(
                500,
                "The file could not be read; the error has been logged.",
            ))
        }
    }
}

/// The HTML listing of a folder (Twisted's `static.DirectoryLister`).
struct DirectoryLister {
    path: PathBuf,
    config: Rc<Config>,
}

impl DirectoryLister {
    /// The folder's entries, without hidden ones (unless shown) and symbolic links that
    /// lead outside the root (unless allowed) or nowhere.
    fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.path)? {
            let Ok(entry) = entry else { continue };
            let name = os_bytes(entry.file_name());
            if is_hidden(&name) && !self.config.show_hidden {
                continue;
            }
            let path = entry.path();
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            if is_link
                && !self.config.allow_symlinks_outside
                && !self.config.inside_root(&path).unwrap_or(false)
            {
                continue;
            }
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            entries.push(Entry {
                is_dir: meta.is_dir(),
                size: meta.len(),
                content_type: if meta.is_dir() {
                    String::new()
                } else {
                    self.config.content_type_of(&path).into_owned()
                },
                name,
            });
        }
        Ok(entries)
    }
}

fn os_bytes(name: OsString) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        name.into_vec()
    }
    #[cfg(not(unix))]
    {
        name.to_string_lossy().into_owned().into_bytes()
    }
}

impl Resource for DirectoryLister {
    fn render_get(&self, request: &Request) -> Render {
        let entries = match self.entries() {
            Ok(e) => e,
            Err(e) => return io_error(request, &self.path, &e),
        };
        let title = String::from_utf8_lossy(&percent_decode(request.path())).into_owned();
        request.set_header("Content-Type", "text/html; charset=utf-8");
        render_listing(&title, entries).into()
    }
}
