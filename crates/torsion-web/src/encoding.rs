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

use std::rc::Rc;

use crate::proto::EncodingOffer;
pub use crate::proto::{is_compressible, negotiate, Coding};
use crate::request::Request;
use crate::resource::{child_with_default, Children, Render, Resource};

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
