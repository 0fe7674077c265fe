//! Resources that ship with torsion-web (Twisted's `static.Data`, `util.Redirect`,
//! `resource.NoResource`, `resource.ErrorPage`, `vhost.NameVirtualHost`).
//!
//! ```
//! use std::rc::Rc;
//! use torsion_web::resources::{Data, Directory, Redirect};
//! use torsion_web::resource::Resource;
//!
//! let root = Directory::new();
//! root.put_child(b"", Rc::new(Data::new("<h1>home</h1>", "text/html")));
//! root.put_child(b"old", Rc::new(Redirect::new("/")));
//! ```

use std::collections::HashMap;
use std::rc::Rc;

use crate::channel::error_page;
use crate::proto::html_escape;
use crate::request::Request;
use crate::resource::{Children, Render, Resource};

/// Fixed bytes with a content type (Twisted's `static.Data`), sent with
/// `X-Content-Type-Options: nosniff` so browsers keep to that type (JSON is never run as
/// script, text never rendered as HTML).
pub struct Data {
    /// Shared with each response, not copied.
    body: bytes::Bytes,
    content_type: String,
}

impl Data {
    /// Serves `body` as `content_type`.
    pub fn new(body: impl Into<Vec<u8>>, content_type: &str) -> Data {
        Data {
            body: bytes::Bytes::from(body.into()),
            content_type: content_type.to_owned(),
        }
    }
}

impl Resource for Data {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, request: &Request) -> Render {
        request.set_header("Content-Type", &self.content_type);
        request.set_header("X-Content-Type-Options", "nosniff");
        Render::Bytes(self.body.clone())
    }
}

/// A resource that only holds children (Twisted's plain `Resource()` used as a container).
#[derive(Default)]
pub struct Directory {
    children: Children,
}

impl Directory {
    /// An empty container.
    pub fn new() -> Directory {
        Directory::default()
    }
}

impl Resource for Directory {
    fn children(&self) -> Option<&Children> {
        Some(&self.children)
    }
    fn render_get(&self, request: &Request) -> Render {
        NoResource.render_get(request)
    }
}

/// Redirects every request to a URL (Twisted's `util.Redirect`): 302 with a small page.
pub struct Redirect {
    url: String,
    code: u16,
}

impl Redirect {
    /// Redirects to `url` with 302 Found.
    pub fn new(url: &str) -> Redirect {
        Redirect {
            url: url.to_owned(),
            code: 302,
        }
    }

    /// Redirects with 301 Moved Permanently instead.
    pub fn permanent(url: &str) -> Redirect {
        Redirect {
            url: url.to_owned(),
            code: 301,
        }
    }
}

impl Resource for Redirect {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, request: &Request) -> Render {
        request.set_response_code(self.code);
        request.set_header("Location", self.url.clone());
        let url = html_escape(&self.url);
        format!("<html><head><meta http-equiv=\"refresh\" content=\"0;URL={url}\"></head><body bgcolor=\"#FFFFFF\" text=\"#000000\"><a href=\"{url}\">click here</a></body></html>").into()
    }
}

/// An error page with a status (Twisted's `resource.ErrorPage`).
pub struct ErrorPage {
    code: u16,
    detail: String,
}

impl ErrorPage {
    /// A page answering `code` with `detail` (HTML-escaped).
    pub fn new(code: u16, detail: &str) -> ErrorPage {
        ErrorPage {
            code,
            detail: detail.to_owned(),
        }
    }
}

impl Resource for ErrorPage {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render(&self, request: &Request) -> Render {
        request.set_response_code(self.code);
        Render::Body(error_page(self.code, &html_escape(&self.detail)))
    }
}

/// 404 Not Found (Twisted's `resource.NoResource`).
pub struct NoResource;

impl Resource for NoResource {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render(&self, request: &Request) -> Render {
        request.set_response_code(404);
        Render::Body(error_page(404, "Sorry. No luck finding that resource."))
    }
}

/// Chooses a resource by the request's `Host` header (Twisted's `vhost.NameVirtualHost`).
#[derive(Default)]
pub struct NameVirtualHost {
    hosts: std::cell::RefCell<HashMap<String, Rc<dyn Resource>>>,
    default: std::cell::RefCell<Option<Rc<dyn Resource>>>,
}

impl NameVirtualHost {
    /// No hosts yet.
    pub fn new() -> NameVirtualHost {
        NameVirtualHost::default()
    }

    /// Serves `resource` for host `name` (without port, case-insensitive).
    pub fn add_host(&self, name: &str, resource: Rc<dyn Resource>) {
        self.hosts
            .borrow_mut()
            .insert(name.to_ascii_lowercase(), resource);
    }

    /// Serves `resource` for unknown hosts (404 otherwise).
    pub fn set_default(&self, resource: Rc<dyn Resource>) {
        *self.default.borrow_mut() = Some(resource);
    }

    fn pick(&self, request: &Request) -> Option<Rc<dyn Resource>> {
        let host = request.get_header("host").unwrap_or("");
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let found = self.hosts.borrow().get(&name.to_ascii_lowercase()).cloned();
        found.or_else(|| self.default.borrow().clone())
    }
}

impl Resource for NameVirtualHost {
    fn get_child(&self, name: &[u8], request: &Request) -> Option<Rc<dyn Resource>> {
        let host = self.pick(request)?;
        if host.is_leaf() {
            // A leaf renders the whole path itself: give the segment back (as Twisted does).
            request.unadvance_path();
            return Some(host);
        }
        crate::resource::child_with_default(&host, name, request)
    }
    fn render(&self, request: &Request) -> Render {
        match self.pick(request) {
            Some(r) => r.render(request),
            None => NoResource.render(request),
        }
    }
}
