//! Response encoding (Twisted's `EncodingResourceWrapper` with its `GzipEncoderFactory`):
//! gzip and Brotli bodies negotiated from `Accept-Encoding`, compressed as they are written.
//!
//! Wrap any resource in an [`EncodingResourceWrapper`] and every response below it is
//! offered for encoding. The decision is made when the response head goes out, from the
//! headers the resource set by then:
//!
//! - the coding is the acceptable one with the highest q-value in the request's
//!   `Accept-Encoding` (`br` before `gzip` on a tie, or the order given to
//!   [`EncodingResourceWrapper::codings`]); `q=0` and `*` are honoured;
//! - nothing is encoded for a response that already has a `Content-Encoding`, for a type
//!   that is compressed already ([`is_compressible`]: images but SVG, audio, video, archives,
//!   WOFF fonts, PDF), for a bodiless status (204, 304, 1xx), for a request with a `Range`
//!   header or a 206 answer (ranges apply to the identity body, so they are served
//!   unencoded), and for a body under [`min_length`](EncodingResourceWrapper::min_length)
//!   (1 KiB by default) when its length is known;
//! - `Vary: Accept-Encoding` is added to every response that could have been encoded
//!   (whether or not this client accepted a coding), so caches keep the versions apart;
//! - an encoded response drops its `Content-Length` (it goes out chunked on HTTP/1.1, in
//!   DATA frames ended by the stream on HTTP/2), and a strong `ETag` becomes weak, since the
//!   bytes differ from the identity body's;
//! - a HEAD request gets the head a GET would, without a body.
//!
//! The body is compressed as the resource writes it (streaming, through a producer or in
//! pieces with [`Request::write`]): the encoder holds its window and at most one compressed
//! block, never the whole body. As in Twisted, a write is not flushed through the compressor
//! on its own; what is pending goes out with later writes and at `finish`.
//!
//! Children found below a wrapped resource are wrapped too, so wrapping a site's root
//! encodes the whole site (Twisted's wrapper proxies `getChildWithDefault` unwrapped; see
//! docs/design.md, "Differences from Twisted").
//!
//! ```
//! use std::io::{Read, Write};
//! use std::rc::Rc;
//! use torsion::reactor;
//! use torsion_web::encoding::EncodingResourceWrapper;
//! use torsion_web::resources::Data;
//! use torsion_web::site::Site;
//!
//! let page = "<p>hello</p>".repeat(500);
//! let root = EncodingResourceWrapper::new(Rc::new(Data::new(page.clone(), "text/html")));
//! let port = reactor().listen_tcp_on(0, Site::new(root), "127.0.0.1")?;
//! let addr = port.get_host().socket_addr().unwrap();
//! let handle = reactor().handle();
//! let client = std::thread::spawn(move || {
//!     let mut s = std::net::TcpStream::connect(addr).unwrap();
//!     s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n").unwrap();
//!     let mut answer = Vec::new();
//!     s.read_to_end(&mut answer).unwrap();
//!     handle.stop();
//!     answer
//! });
//! reactor().run()?;
//! let answer = String::from_utf8_lossy(&client.join().unwrap()).into_owned();
//! assert!(answer.contains("Content-Encoding: gzip\r\n"), "{answer}");
//! assert!(answer.contains("Vary: Accept-Encoding\r\n"), "{answer}");
//! assert!(answer.contains("Transfer-Encoding: chunked\r\n"), "{answer}");
//! assert!(answer.len() < page.len() / 4, "{} bytes", answer.len());
//! # Ok::<(), torsion::Failure>(())
//! ```

use std::io::Write;
use std::rc::Rc;

use crate::request::Request;
use crate::resource::{child_with_default, Children, Render, Resource};

/// A content coding the server can apply to a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Coding {
    /// `gzip` (RFC 1952), by flate2.
    Gzip,
    /// `br` (RFC 7932), by the `brotli` crate.
    Br,
}

impl Coding {
    /// The coding's token, as in `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Br => "br",
        }
    }

    /// The file name suffix of a precompressed sibling (`.gz`, `.br`).
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Gzip => ".gz",
            Coding::Br => ".br",
        }
    }

    fn matches(self, token: &str) -> bool {
        match self {
            Coding::Gzip => {
                token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip")
            }
            Coding::Br => token.eq_ignore_ascii_case("br"),
        }
    }
}

/// The coding to use for a request whose `Accept-Encoding` field values are `accept`, among
/// `offered` (in the server's order of preference): the acceptable one with the highest
/// q-value, the earlier one in `offered` on a tie. `None` when none is acceptable (or there
/// is no `Accept-Encoding`: identity then).
///
/// ```
/// use torsion_web::encoding::{negotiate, Coding};
/// let both = [Coding::Br, Coding::Gzip];
/// assert_eq!(negotiate("gzip, deflate, br", &both), Some(Coding::Br));
/// assert_eq!(negotiate("gzip;q=1.0, br;q=0.5", &both), Some(Coding::Gzip));
/// assert_eq!(negotiate("*;q=0.1, br;q=0", &both), Some(Coding::Gzip));
/// assert_eq!(negotiate("identity", &both), None);
/// assert_eq!(negotiate("gzip;q=0", &both), None);
/// ```
pub fn negotiate(accept: &str, offered: &[Coding]) -> Option<Coding> {
    let mut best: Option<(Coding, u16)> = None;
    for &coding in offered {
        let mut explicit = None;
        let mut star = None;
        for element in accept.split(',') {
            let mut parts = element.split(';');
            let token = parts.next().unwrap_or("").trim();
            if token.is_empty() {
                continue;
            }
            let mut q = Some(1000);
            for param in parts {
                if let Some((k, v)) = param.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = parse_qvalue(v.trim());
                    }
                }
            }
            // A malformed q-value makes the element meaningless: ignore it.
            let Some(q) = q else { continue };
            if coding.matches(token) {
                explicit = Some(explicit.map_or(q, |e: u16| e.max(q)));
            } else if token == "*" {
                star = Some(q);
            }
        }
        let q = explicit.or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((coding, q));
        }
    }
    best.map(|(c, _)| c)
}

/// A q-value (RFC 9110 12.4.2) in thousandths, or `None` if malformed.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// True when a body of `content_type` is worth compressing: false for types that are
/// compressed already (images other than SVG, BMP and icons; audio; video; zip, gzip, bzip2,
/// xz, zstd, 7z and rar archives; WOFF fonts; PDF).
///
/// ```
/// use torsion_web::encoding::is_compressible;
/// assert!(is_compressible("text/html; charset=utf-8"));
/// assert!(is_compressible("image/svg+xml"));
/// assert!(!is_compressible("image/png"));
/// assert!(!is_compressible("application/gzip"));
/// assert!(!is_compressible("font/woff2"));
/// ```
pub fn is_compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (kind, sub) = essence.split_once('/').unwrap_or((essence.as_str(), ""));
    match kind {
        "image" => matches!(sub, "svg+xml" | "bmp" | "x-icon" | "vnd.microsoft.icon"),
        "audio" | "video" => false,
        "font" => !matches!(sub, "woff" | "woff2"),
        "application" => !matches!(
            sub,
            "zip"
                | "gzip"
                | "x-gzip"
                | "x-bzip2"
                | "x-xz"
                | "zstd"
                | "x-7z-compressed"
                | "x-rar-compressed"
                | "vnd.rar"
                | "x-compress"
                | "font-woff"
                | "pdf"
                | "java-archive"
                | "epub+zip"
        ),
        _ => true,
    }
}

/// What a wrapper asked of a response, decided when its head goes out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodingOffer {
    /// The coding the client accepts (`None`: none, or a Range request: only `Vary`).
    pub(crate) coding: Option<Coding>,
    /// Bodies of a known length under this are sent as they are.
    pub(crate) min_length: usize,
}

/// A streaming encoder for one response body.
pub(crate) enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
}

/// Brotli quality: 4 compresses about as well as gzip -6 at a similar speed (11, the
/// library's default, is for static files compressed once, far too slow per response).
const BROTLI_QUALITY: u32 = 4;
/// Brotli window: 2^19 = 512 KiB (nginx's brotli module's default), bounding the memory
/// each encoded response holds.
const BROTLI_LGWIN: u32 = 19;

impl Encoder {
    pub(crate) fn new(coding: Coding) -> Encoder {
        match coding {
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            Coding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                BROTLI_QUALITY,
                BROTLI_LGWIN,
            ))),
        }
    }

    /// Compresses `data`; the compressed bytes ready so far (often none for a small write).
    pub(crate) fn encode(&mut self, data: &[u8]) -> Vec<u8> {
        // Writing into a Vec cannot fail.
        match self {
            Encoder::Gzip(e) => {
                let _ = e.write_all(data);
                std::mem::take(e.get_mut())
            }
            Encoder::Br(e) => {
                let _ = e.write_all(data);
                std::mem::take(e.get_mut())
            }
        }
    }

    /// Ends the stream: the last compressed bytes.
    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.finish().unwrap_or_default(),
            Encoder::Br(e) => e.into_inner(),
        }
    }
}

/// Encodes the responses of a resource and of every child found below it (Twisted's
/// `EncodingResourceWrapper(resource, [GzipEncoderFactory()])`). See the [module
/// docs](self) for when a response is encoded.
pub struct EncodingResourceWrapper {
    inner: Rc<dyn Resource>,
    codings: Vec<Coding>,
    min_length: usize,
}

impl EncodingResourceWrapper {
    /// Wraps `resource`, offering `br` and `gzip` (preferring `br` when the client weighs them
    /// the same) for bodies of 1 KiB or more.
    pub fn new(resource: Rc<dyn Resource>) -> EncodingResourceWrapper {
        EncodingResourceWrapper {
            inner: resource,
            codings: vec![Coding::Br, Coding::Gzip],
            min_length: 1024,
        }
    }

    /// Wraps `resource` with the given codings (in order of preference) and minimum length.
    pub fn with_options(
        resource: Rc<dyn Resource>,
        codings: &[Coding],
        min_length: usize,
    ) -> EncodingResourceWrapper {
        EncodingResourceWrapper {
            inner: resource,
            codings: codings.to_vec(),
            min_length,
        }
    }

    /// The codings offered, in order of preference.
    pub fn codings(&self) -> &[Coding] {
        &self.codings
    }

    /// Bodies whose length is known and shorter than this are not encoded.
    pub fn min_length(&self) -> usize {
        self.min_length
    }

    /// The wrapped resource.
    pub fn inner(&self) -> &Rc<dyn Resource> {
        &self.inner
    }

    fn wrap(&self, child: Rc<dyn Resource>) -> Rc<dyn Resource> {
        Rc::new(EncodingResourceWrapper {
            inner: child,
            codings: self.codings.clone(),
            min_length: self.min_length,
        })
    }
}

impl Resource for EncodingResourceWrapper {
    fn is_leaf(&self) -> bool {
        self.inner.is_leaf()
    }

    fn children(&self) -> Option<&Children> {
        // Children are found through `get_child`, which wraps them.
        None
    }

    fn put_child(&self, name: &[u8], child: Rc<dyn Resource>) {
        self.inner.put_child(name, child);
    }

    fn get_child(&self, name: &[u8], request: &Request) -> Option<Rc<dyn Resource>> {
        child_with_default(&self.inner, name, request).map(|c| self.wrap(c))
    }

    fn allowed_methods(&self) -> Vec<&'static str> {
        self.inner.allowed_methods()
    }

    fn answers_before_body(&self, request: &Request) -> bool {
        self.inner.answers_before_body(request)
    }

    fn render(&self, request: &Request) -> Render {
        let coding = if request.headers().contains("range") {
            None
        } else {
            let accept: Vec<&str> = request
                .headers()
                .get_all("accept-encoding")
                .filter_map(|v| std::str::from_utf8(v).ok())
                .collect();
            negotiate(&accept.join(","), &self.codings)
        };
        request.offer_encoding(EncodingOffer {
            coding,
            min_length: self.min_length,
        });
        self.inner.render(request)
    }
}
