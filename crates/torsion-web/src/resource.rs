//! Resources: the tree a [`Site`](crate::site::Site) serves (Twisted's `twisted.web.resource`).
//!
//! A request's path is walked from the root: each segment asks the current resource for a
//! child ([`get_child`](Resource::get_child), after the children added with
//! [`put_child`](Resource::put_child)), until the path runs out or a resource says it is a
//! leaf ([`is_leaf`](Resource::is_leaf)). The resource reached renders the request with the
//! `render_*` method for its HTTP method.
//!
//! Seed 000's counter, complete:
//!
//! ```
//! use std::cell::Cell;
//! use torsion_web::resource::{Render, Resource};
//! use torsion_web::request::Request;
//!
//! #[derive(Default)]
//! struct Counter { users: Cell<u32> }
//!
//! impl Resource for Counter {
//!     fn is_leaf(&self) -> bool { true }
//!     fn render_get(&self, _request: &Request) -> Render {
//!         self.users.set(self.users.get() + 1);
//!         format!("Welcome user number {}", self.users.get()).into()
//!     }
//! }
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use torsion::defer::{ensure_deferred, Deferred};
use torsion::Failure;

use crate::request::Request;

/// What rendering produced (Twisted's bytes or `NOT_DONE_YET`).
pub enum Render {
    /// The whole body, now. The response gets a `Content-Length` and goes out in one write.
    Body(Vec<u8>),
    /// The whole body, now, without a copy: a static string (what `"...".into()` gives) or
    /// bytes shared between responses. Sent as [`Render::Body`] is.
    Bytes(bytes::Bytes),
    /// The resource will write the body with [`Request::write`] and end it with
    /// [`Request::finish`] later (Twisted's `NOT_DONE_YET`).
    NotDoneYet,
    /// The body comes later, from a Deferred (a failure becomes a 500 page).
    Later(Deferred<Vec<u8>>),
    /// The resource does not handle this method: 405 with an `Allow` header.
    NotAllowed,
}

impl Render {
    /// Renders from async code: the future's body, or its error as a 500 page.
    pub fn future<E: Into<Failure> + 'static>(
        fut: impl Future<Output = Result<Vec<u8>, E>> + 'static,
    ) -> Render {
        Render::Later(ensure_deferred(fut))
    }
}

impl From<Vec<u8>> for Render {
    fn from(v: Vec<u8>) -> Render {
        Render::Body(v)
    }
}

impl From<&'static [u8]> for Render {
    fn from(v: &'static [u8]) -> Render {
        Render::Bytes(bytes::Bytes::from_static(v))
    }
}

impl<const N: usize> From<&'static [u8; N]> for Render {
    fn from(v: &'static [u8; N]) -> Render {
        Render::Bytes(bytes::Bytes::from_static(v))
    }
}

impl From<bytes::Bytes> for Render {
    fn from(v: bytes::Bytes) -> Render {
        Render::Bytes(v)
    }
}

impl From<String> for Render {
    fn from(v: String) -> Render {
        Render::Body(v.into_bytes())
    }
}

/// A static string, sent without a copy. (A borrowed string that is not `'static` converts
/// through `String`: `text.to_owned().into()`.)
impl From<&'static str> for Render {
    fn from(v: &'static str) -> Render {
        Render::Bytes(bytes::Bytes::from_static(v.as_bytes()))
    }
}

impl From<Deferred<Vec<u8>>> for Render {
    fn from(d: Deferred<Vec<u8>>) -> Render {
        Render::Later(d)
    }
}

/// Children added with `put_child`: embed one in a resource and return it from
/// [`Resource::children`].
#[derive(Default)]
pub struct Children {
    map: RefCell<HashMap<Vec<u8>, Rc<dyn Resource>>>,
}

impl Children {
    /// No children yet.
    pub fn new() -> Children {
        Children::default()
    }

    /// Adds (or replaces) the child at path segment `name`.
    pub fn put(&self, name: &[u8], child: Rc<dyn Resource>) {
        self.map.borrow_mut().insert(name.to_vec(), child);
    }

    /// The child at `name`.
    pub fn get(&self, name: &[u8]) -> Option<Rc<dyn Resource>> {
        self.map.borrow().get(name).cloned()
    }

    /// The children's names, sorted.
    pub fn names(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = self.map.borrow().keys().cloned().collect();
        names.sort();
        names
    }
}

/// A web resource (Twisted's `IResource`). Every method has a default; implement the ones
/// you need. Methods take `&self`: keep changing state in `Cell`/`RefCell`.
pub trait Resource: 'static {
    /// True when this resource renders every path below it itself (Twisted's `isLeaf`).
    fn is_leaf(&self) -> bool {
        false
    }

    /// The children added with `put_child`, if this resource keeps any.
    fn children(&self) -> Option<&Children> {
        None
    }

    /// Adds a child at path segment `name` (Twisted's `putChild`).
    ///
    /// # Panics
    /// If the resource keeps no [`Children`].
    fn put_child(&self, name: &[u8], child: Rc<dyn Resource>) {
        match self.children() {
            Some(c) => c.put(name, child),
            None => panic!(
                "{} keeps no children; return a Children from children() to use put_child",
                std::any::type_name::<Self>()
            ),
        }
    }

    /// The child for a path segment not found among the children (Twisted's `getChild`);
    /// `None` gives 404.
    fn get_child(&self, name: &[u8], request: &Request) -> Option<Rc<dyn Resource>> {
        let _ = (name, request);
        None
    }

    /// Renders the request: calls the `render_*` method for its HTTP method.
    fn render(&self, request: &Request) -> Render {
        match request.method() {
            "GET" => self.render_get(request),
            "HEAD" => self.render_head(request),
            "POST" => self.render_post(request),
            "PUT" => self.render_put(request),
            "DELETE" => self.render_delete(request),
            "PATCH" => self.render_patch(request),
            "OPTIONS" => self.render_options(request),
            other => self.render_method(other, request),
        }
    }

    /// The methods this resource renders, for `Allow` headers (Twisted's `allowedMethods`):
    /// the 405 answer to a method it does not render, and the automatic answer to `OPTIONS`,
    /// list these, with `HEAD` added when `GET` is there and `OPTIONS` always (see
    /// [`allow_header`]). Override when you implement other methods than GET: Twisted finds
    /// them by looking for `render_*` attributes, which Rust cannot do, so the list is the
    /// resource's word.
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD"]
    }

    /// True when this resource answers `request` without its body (say, for a method it does
    /// not support). The channel then renders the request as soon as its head is in, reads
    /// and drops the body, and the client gets its answer without sending a large body
    /// first; with `Expect: 100-continue`, no `100 Continue` is sent and the connection closes
    /// after the answer. Only asked for requests with a body. Default false: the body is read
    /// first, as in Twisted. The static [`File`](crate::static_file::File) says true for
    /// every method but GET and HEAD.
    fn answers_before_body(&self, request: &Request) -> bool {
        let _ = request;
        false
    }

    /// Renders GET.
    fn render_get(&self, request: &Request) -> Render {
        let _ = request;
        Render::NotAllowed
    }

    /// Renders HEAD: by default as GET, without sending the body.
    fn render_head(&self, request: &Request) -> Render {
        self.render_get(request)
    }

    /// Renders POST.
    fn render_post(&self, request: &Request) -> Render {
        let _ = request;
        Render::NotAllowed
    }

    /// Renders PUT.
    fn render_put(&self, request: &Request) -> Render {
        let _ = request;
        Render::NotAllowed
    }

    /// Renders DELETE.
    fn render_delete(&self, request: &Request) -> Render {
        let _ = request;
        Render::NotAllowed
    }

    /// Renders PATCH.
    fn render_patch(&self, request: &Request) -> Render {
        let _ = request;
        Render::NotAllowed
    }

    /// Renders OPTIONS. The default, [`Render::NotAllowed`], has the server answer `200 OK`
    /// with an `Allow` header built from [`allowed_methods`](Self::allowed_methods) and no
    /// body (Twisted answers 405; see docs/design.md, "Differences from Twisted").
    fn render_options(&self, request: &Request) -> Render {
        let _ = request;
        Render::NotAllowed
    }

    /// Renders a method that has no `render_*` method of its own: an extension method such
    /// as WebDAV's `PROPFIND` or `MKCOL`, or `TRACE`, `CONNECT` (Twisted's
    /// `getattr(self, 'render_' + method)`). `method` is the token as the client sent it
    /// (methods are case-sensitive). The default does not allow it (405 with `Allow`); list
    /// the methods you render here in [`allowed_methods`](Self::allowed_methods).
    ///
    /// ```
    /// use torsion_web::{Render, Request, Resource};
    ///
    /// struct Dav;
    /// impl Resource for Dav {
    ///     fn render_method(&self, method: &str, request: &Request) -> Render {
    ///         match method {
    ///             "PROPFIND" => {
    ///                 request.set_response_code(207);
    ///                 request.set_header("Content-Type", "application/xml; charset=utf-8");
    ///                 Render::Body(b"<multistatus xmlns=\"DAV:\"/>".to_vec())
    ///             }
    ///             _ => Render::NotAllowed,
    ///         }
    ///     }
    ///     fn allowed_methods(&self) -> Vec<&'static str> {
    ///         vec!["PROPFIND"]
    ///     }
    /// }
    /// ```
    fn render_method(&self, method: &str, request: &Request) -> Render {
        let _ = (method, request);
        Render::NotAllowed
    }
}

/// The `Allow` header's value for `resource`: its
/// [`allowed_methods`](Resource::allowed_methods) in order, with `HEAD` after `GET` when
/// missing (HEAD is rendered as GET by default) and `OPTIONS` at the end (the server answers
/// it), each once.
///
/// ```
/// use torsion_web::resource::{allow_header, Resource};
/// struct Page;
/// impl Resource for Page {}
/// assert_eq!(allow_header(&Page), "GET, HEAD, OPTIONS");
/// ```
pub fn allow_header(resource: &dyn Resource) -> String {
    let mut methods: Vec<&str> = Vec::new();
    for m in resource.allowed_methods() {
        if !methods.contains(&m) {
            methods.push(m);
        }
        if m == "GET" && !methods.contains(&"HEAD") {
            methods.push("HEAD");
        }
    }
    if !methods.contains(&"OPTIONS") {
        methods.push("OPTIONS");
    }
    methods.join(", ")
}

/// The child of `resource` for `name`: among its children first, then `get_child` (Twisted's
/// `getChildWithDefault`).
pub fn child_with_default(
    resource: &Rc<dyn Resource>,
    name: &[u8],
    request: &Request,
) -> Option<Rc<dyn Resource>> {
    if let Some(c) = resource.children().and_then(|c| c.get(name)) {
        return Some(c);
    }
    resource.get_child(name, request)
}

/// Walks the request's remaining path from `root` (Twisted's `getChildForRequest`), moving
/// segments from `postpath` to `prepath`. `None` when a segment has no resource (404).
pub fn resource_for_request(
    root: &Rc<dyn Resource>,
    request: &Request,
) -> Option<Rc<dyn Resource>> {
    let mut current = root.clone();
    while !current.is_leaf() {
        let Some(name) = request.advance_path() else {
            break;
        };
        current = child_with_default(&current, &name, request)?;
    }
    Some(current)
}
