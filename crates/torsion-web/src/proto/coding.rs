//! Content codings for response bodies, without I/O: `Accept-Encoding` negotiation, the
//! types worth compressing, and a streaming encoder (gzip by flate2, br by `brotli`). The
//! resource that applies them is [`EncodingResourceWrapper`](crate::encoding::EncodingResourceWrapper).

use std::io::Write;

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
/// use torsion_web::proto::{negotiate, Coding};
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
/// use torsion_web::proto::is_compressible;
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

/// What an encoding wrapper offers a response (`crate::encoding`), decided when its head
/// goes out.
#[derive(Debug, Clone, Copy)]
pub struct EncodingOffer {
    /// The coding the client accepts (`None`: none, or a Range request: only `Vary`).
    pub coding: Option<Coding>,
    /// Bodies of a known length under this are sent as they are.
    pub min_length: usize,
}

/// A streaming encoder for one response body.
pub enum Encoder {
    /// gzip, by flate2 (boxed: with the zlib-rs backend the encoder is some 256 bytes).
    Gzip(Box<flate2::write::GzEncoder<Vec<u8>>>),
    /// Brotli.
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
}

/// Brotli quality: 4 compresses about as well as gzip -6 at a similar speed (11, the
/// library's default, is for static files compressed once, far too slow per response).
const BROTLI_QUALITY: u32 = 4;
/// Brotli window: 2^19 = 512 KiB (nginx's brotli module's default), bounding the memory
/// each encoded response holds.
const BROTLI_LGWIN: u32 = 19;

impl Encoder {
    /// An encoder for `coding`.
    pub fn new(coding: Coding) -> Encoder {
        match coding {
            Coding::Gzip => Encoder::Gzip(Box::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            ))),
            Coding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                BROTLI_QUALITY,
                BROTLI_LGWIN,
            ))),
        }
    }

    /// Compresses `data`; the compressed bytes ready so far (often none for a small write).
    pub fn encode(&mut self, data: &[u8]) -> Vec<u8> {
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
    pub fn finish(self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.finish().unwrap_or_default(),
            Encoder::Br(e) => e.into_inner(),
        }
    }
}
