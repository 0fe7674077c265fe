//! HTML templates (Twisted's `twisted.web.template`): an [`Element`] has a [`Template`] with
//! `t:render` renderers and `t:slot` slots; renderers return tags, text or Deferreds; and
//! [`render_element`] streams the page to a request, escaping text and attributes, and
//! sending what is rendered before a renderer's Deferred fires.
//!
//! ```
//! use torsion::defer::succeed;
//! use torsion::Failure;
//! use torsion_web::template::{flatten, tags, Element, Node, Tag, Template};
//! use torsion_web::Request;
//!
//! struct Widgets {
//!     template: Template,
//! }
//!
//! impl Element for Widgets {
//!     fn template(&self) -> Option<&Template> {
//!         Some(&self.template)
//!     }
//!
//!     fn render(&self, name: &str, _: Option<&Request>, tag: Tag) -> Result<Node, Failure> {
//!         match name {
//!             // A renderer may answer later: the page waits for the Deferred.
//!             "widgets" => Ok(Node::later(succeed(vec!["gadget", "<gizmo>"]).add_callback(
//!                 move |names| {
//!                     let items: Vec<Node> = names
//!                         .into_iter()
//!                         .map(|n| tag.clone().fill_slot("name", n).into())
//!                         .collect();
//!                     Node::from(items)
//!                 },
//!             ))),
//!             "title" => Ok(tag.child(tags::b().child("Widgets & co")).into()),
//!             _ => Err(torsion_web::template::MissingRenderMethod::new("Widgets", name).into()),
//!         }
//!     }
//! }
//!
//! let page = Widgets {
//!     template: Template::parse(
//!         r#"<div xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
//! <h1 t:render="title"/><ul><li t:render="widgets"><t:slot name="name"/></li></ul></div>"#,
//!     )
//!     .unwrap(),
//! };
//! let html = flatten(Node::element(page)).result().unwrap().unwrap();
//! assert_eq!(
//!     html,
//!     "<div>\n<h1><b>Widgets &amp; co</b></h1><ul><li>gadget</li><li>&lt;gizmo&gt;</li></ul></div>"
//! );
//! ```
//!
//! # How it differs from Twisted
//!
//! - Renderers are one method, [`Element::render`], that matches on the renderer's name,
//!   instead of methods marked `@renderer`; an unknown name is a [`MissingRenderMethod`].
//! - Tag and attribute names are checked when written: a name with characters outside
//!   letters, digits, `-`, `_`, `.` and `:` fails the rendering ([`InvalidName`]) rather
//!   than writing markup a renderer did not mean.
//! - A Deferred in a tree is rendered once: a copy of the tree shares it, and rendering the
//!   copy after the original fails ([`DeferredReused`]).

mod loader;
mod node;
pub mod tags;

pub use loader::{Template, TemplateError, TEMPLATE_NAMESPACE};
pub use node::{slot, Node, PendingNode, Slot, Tag};

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use torsion::defer::Deferred;
use torsion::Failure;

use crate::request::Request;
use crate::resource::Render;

/// Something with a template and renderers (Twisted's `Element`).
///
/// Rendering an element writes its [`document`](Element::document) (by default, its
/// [`template`](Element::template) loaded); each tag in it with a renderer (`t:render="x"`,
/// [`Tag::render`]) is replaced by what [`render`](Element::render) returns for that name.
/// An element inside another renders with its own renderers.
pub trait Element: 'static {
    /// The element's template (Twisted's `loader`), if it has one.
    fn template(&self) -> Option<&Template> {
        None
    }

    /// What rendering the element writes (Twisted's `Element.render`): by default its
    /// template, loaded; without one, a [`MissingTemplateLoader`] failure.
    fn document(&self, request: Option<&Request>) -> Result<Node, Failure> {
        let _ = request;
        match self.template() {
            Some(t) => Ok(t.load()),
            None => Err(Failure::new(MissingTemplateLoader {
                element: self.element_name(),
            })),
        }
    }

    /// Runs renderer `name` on `tag` (the tag that named it, without its `t:render`; its
    /// children and slots are still there): returns what replaces the tag (often `tag` with
    /// children added, or copies of it with slots filled, or a Deferred of that).
    /// `request` is the request being answered ([`render_element`]), or `None`
    /// ([`flatten`]). An error fails the rendering; so does a panic. By default, every name
    /// is a [`MissingRenderMethod`].
    fn render(&self, name: &str, request: Option<&Request>, tag: Tag) -> Result<Node, Failure> {
        let _ = (request, tag);
        Err(Failure::new(MissingRenderMethod::new(
            self.element_name(),
            name,
        )))
    }

    /// The element's name in error messages: its type's name.
    fn element_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// A renderer name the element does not know (Twisted's `MissingRenderMethod`).
#[derive(Debug, Clone)]
pub struct MissingRenderMethod {
    element: String,
    name: String,
}

impl MissingRenderMethod {
    /// Element `element` has no renderer `name`.
    pub fn new(element: impl Into<String>, name: impl Into<String>) -> MissingRenderMethod {
        MissingRenderMethod {
            element: element.into(),
            name: name.into(),
        }
    }

    /// The renderer's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for MissingRenderMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} has no renderer named {:?}", self.element, self.name)
    }
}

impl std::error::Error for MissingRenderMethod {}

/// An element rendered without a template and without its own
/// [`document`](Element::document) (Twisted's `MissingTemplateLoader`).
#[derive(Debug, Clone)]
pub struct MissingTemplateLoader {
    element: &'static str,
}

impl fmt::Display for MissingTemplateLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} has no template", self.element)
    }
}

impl std::error::Error for MissingTemplateLoader {}

/// A slot that no tag around it fills, with no default (Twisted's `UnfilledSlot`).
#[derive(Debug, Clone)]
pub struct UnfilledSlot {
    name: String,
}

impl UnfilledSlot {
    /// The slot's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for UnfilledSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot {:?} was not filled", self.name)
    }
}

impl std::error::Error for UnfilledSlot {}

/// A tag or attribute name that would not be one in HTML (see the module's notes).
#[derive(Debug, Clone)]
pub struct InvalidName {
    name: String,
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a valid tag or attribute name", self.name)
    }
}

impl std::error::Error for InvalidName {}

/// A Deferred node rendered a second time, through a copy of its tree.
#[derive(Debug, Clone)]
pub struct DeferredReused;

impl fmt::Display for DeferredReused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Deferred in a template was rendered twice (it fires once)")
    }
}

impl std::error::Error for DeferredReused {}

/// Rendering failed (Twisted's `FlattenerError`): the failure, and where it happened — the
/// elements and tags being rendered, outermost first.
#[derive(Debug)]
pub struct FlattenerError {
    roots: Vec<String>,
    failure: Failure,
}

impl FlattenerError {
    /// The elements and tags being rendered when it failed, outermost first (`<ul>`,
    /// `<li t:render="items">`, an element's type name).
    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    /// The failure itself (a renderer's error, a [`MissingRenderMethod`], ...).
    pub fn failure(&self) -> &Failure {
        &self.failure
    }
}

impl fmt::Display for FlattenerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rendering failed: {}", self.failure.error())?;
        if !self.roots.is_empty() {
            write!(f, " (in {})", self.roots.join(" > "))?;
        }
        Ok(())
    }
}

impl std::error::Error for FlattenerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.failure.error())
    }
}

/// Output is sent on once this much has been rendered, so a large page does not wait whole
/// in memory.
const FLUSH_AT: usize = 64 * 1024;

/// HTML's void elements, written `<br />` when they have no children (Twisted's list).
const VOID: &[&str] = &[
    "img", "br", "hr", "base", "meta", "link", "param", "area", "input", "col", "basefont",
    "isindex", "frame", "command", "embed", "keygen", "source", "track", "wbr",
];

/// What rendering a failed page writes in place of the rest (Twisted's, as it is when the
/// site does not display tracebacks).
const ERROR_FRAGMENT: &[u8] = b"<div style=\"font-size:800%;background-color:#FFF;color:#F00\">An error occurred while rendering the response.</div>";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Content,
    Attribute,
}

/// Where a failure happened.
enum Root {
    Tag(Cow<'static, str>, Option<Cow<'static, str>>),
    Element(&'static str),
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Root::Tag(name, None) => write!(f, "<{name}>"),
            Root::Tag(name, Some(r)) => write!(f, "<{name} t:render={r:?}>"),
            Root::Element(e) => f.write_str(e),
        }
    }
}

/// One thing left to do.
enum Work {
    Node(Node, Mode),
    /// Markup (escaped in an attribute).
    Markup(&'static str, Mode),
    /// ` name="`
    AttrOpen(Cow<'static, str>, Mode),
    /// `</name>`
    Close(Cow<'static, str>, Mode),
    PopSlots,
    PopElement,
    PopRoot,
}

enum Step {
    Done,
    /// The output reached [`FLUSH_AT`].
    Full,
    /// A Deferred that has not fired (boxed: a Deferred is large).
    Pending(Box<Deferred<Node>>, Mode),
    Failed(FlattenerError),
}

/// Renders a tree to bytes, one [`Work`] at a time, stopping at a Deferred that has not
/// fired (Twisted's `_flattenTree`).
struct Flattener {
    work: Vec<Work>,
    slots: Vec<Vec<(Cow<'static, str>, Node)>>,
    elements: Vec<Rc<dyn Element>>,
    roots: Vec<Root>,
    request: Option<Request>,
    out: Vec<u8>,
    failed: Option<Failure>,
}

impl Flattener {
    fn new(request: Option<Request>, root: Node) -> Flattener {
        Flattener {
            work: vec![Work::Node(root, Mode::Content)],
            slots: Vec::new(),
            elements: Vec::new(),
            roots: Vec::new(),
            request,
            out: Vec::new(),
            failed: None,
        }
    }

    /// A pending Deferred gave its outcome.
    fn resume(&mut self, outcome: Result<Node, Failure>, mode: Mode) {
        match outcome {
            Ok(node) => self.work.push(Work::Node(node, mode)),
            Err(f) => self.failed = Some(f),
        }
    }

    fn fail(&mut self, failure: Failure) -> Step {
        self.work.clear();
        Step::Failed(FlattenerError {
            roots: self.roots.iter().map(ToString::to_string).collect(),
            failure,
        })
    }

    fn run(&mut self) -> Step {
        if let Some(f) = self.failed.take() {
            return self.fail(f);
        }
        while let Some(work) = self.work.pop() {
            match work {
                Work::Node(node, mode) => {
                    if let Err(step) = self.node(node, mode) {
                        return step;
                    }
                }
                Work::Markup(s, mode) => self.markup(s, mode),
                Work::AttrOpen(name, mode) => {
                    self.markup(" ", mode);
                    self.markup(&name, mode);
                    self.markup("=\"", mode);
                }
                Work::Close(name, mode) => {
                    self.markup("</", mode);
                    self.markup(&name, mode);
                    self.markup(">", mode);
                }
                Work::PopSlots => {
                    self.slots.pop();
                }
                Work::PopElement => {
                    self.elements.pop();
                }
                Work::PopRoot => {
                    self.roots.pop();
                }
            }
            if self.out.len() >= FLUSH_AT {
                return Step::Full;
            }
        }
        Step::Done
    }

    /// Writes markup: as it is, or escaped inside an attribute (Twisted's
    /// `writeWithAttributeEscaping`).
    fn markup(&mut self, s: &str, mode: Mode) {
        match mode {
            Mode::Content => self.out.extend_from_slice(s.as_bytes()),
            Mode::Attribute => escape(&mut self.out, s, true),
        }
    }

    fn node(&mut self, node: Node, mode: Mode) -> Result<(), Step> {
        match node {
            Node::Text(t) => escape(&mut self.out, &t, mode == Mode::Attribute),
            Node::Raw(t) => self.markup(&t, mode),
            Node::Comment(c) => {
                let mut c = c.replace("--", "- - ").replace('>', "&gt;");
                if c.ends_with('-') {
                    c.push(' ');
                }
                self.markup("<!--", mode);
                self.markup(&c, mode);
                self.markup("-->", mode);
            }
            Node::CData(c) => {
                self.markup("<![CDATA[", mode);
                self.markup(&c.replace("]]>", "]]]]><![CDATA[>"), mode);
                self.markup("]]>", mode);
            }
            Node::CharRef(n) => self.markup(&format!("&#{n};"), mode),
            Node::List(nodes) => {
                self.work
                    .extend(nodes.into_iter().rev().map(|n| Work::Node(n, mode)));
            }
            Node::Slot(s) => {
                let filled = self.slots.iter().rev().find_map(|frame| {
                    frame
                        .iter()
                        .find(|(k, _)| *k == s.name)
                        .map(|(_, v)| v.clone())
                });
                match filled.or(s.default.map(|d| *d)) {
                    Some(v) => self.work.push(Work::Node(v, mode)),
                    None => {
                        return Err(self.fail(Failure::new(UnfilledSlot {
                            name: s.name.into_owned(),
                        })))
                    }
                }
            }
            Node::Element(e) => {
                self.roots.push(Root::Element(e.element_name()));
                let request = self.request.clone();
                let doc = catch_unwind(AssertUnwindSafe(|| e.document(request.as_ref())));
                let doc = match doc {
                    Ok(Ok(doc)) => doc,
                    Ok(Err(f)) => return Err(self.fail(f)),
                    Err(panic) => return Err(self.fail(Failure::from_panic(panic))),
                };
                self.elements.push(e);
                self.work.push(Work::PopRoot);
                self.work.push(Work::PopElement);
                self.work.push(Work::Node(doc, mode));
            }
            Node::Deferred(p) => {
                let Some(d) = p.take() else {
                    return Err(self.fail(Failure::new(DeferredReused)));
                };
                if !d.called() {
                    return Err(Step::Pending(Box::new(d), mode));
                }
                match d.result() {
                    Some(Ok(n)) => self.work.push(Work::Node(n, mode)),
                    Some(Err(f)) => return Err(self.fail(f)),
                    None => return Err(self.fail(Failure::new(DeferredReused))),
                }
            }
            Node::Tag(t) => self.tag(t, mode)?,
        }
        Ok(())
    }

    fn tag(&mut self, tag: Tag, mode: Mode) -> Result<(), Step> {
        let Tag {
            name,
            attributes,
            children,
            render,
            slots,
        } = tag;
        if let Some(renderer) = render {
            // The tag's slot values hold for what its renderer returns (as in Twisted).
            self.roots
                .push(Root::Tag(name.clone(), Some(renderer.clone())));
            self.work.push(Work::PopRoot);
            if !slots.is_empty() {
                self.slots.push(slots.clone());
                self.work.push(Work::PopSlots);
            }
            let Some(element) = self.elements.last().cloned() else {
                return Err(self.fail(Failure::new(MissingRenderMethod::new(
                    "a tree outside any element",
                    renderer.into_owned(),
                ))));
            };
            let tag = Tag {
                name,
                attributes,
                children,
                render: None,
                slots,
            };
            let request = self.request.clone();
            let out = catch_unwind(AssertUnwindSafe(|| {
                element.render(&renderer, request.as_ref(), tag)
            }));
            match out {
                Ok(Ok(node)) => self.work.push(Work::Node(node, mode)),
                Ok(Err(f)) => return Err(self.fail(f)),
                Err(panic) => return Err(self.fail(Failure::from_panic(panic))),
            }
            return Ok(());
        }
        if !slots.is_empty() {
            self.slots.push(slots);
            self.work.push(Work::PopSlots);
        }
        if name.is_empty() {
            self.work
                .extend(children.into_iter().rev().map(|n| Work::Node(n, mode)));
            return Ok(());
        }
        if !valid_name(&name) {
            return Err(self.fail(Failure::new(InvalidName {
                name: name.into_owned(),
            })));
        }
        if let Some((bad, _)) = attributes.iter().find(|(k, _)| !valid_name(k)) {
            let name = bad.to_string();
            return Err(self.fail(Failure::new(InvalidName { name })));
        }
        self.roots.push(Root::Tag(name.clone(), None));
        self.work.push(Work::PopRoot);
        if children.is_empty() && VOID.contains(&&*name) {
            self.work.push(Work::Markup(" />", mode));
        } else {
            self.work.push(Work::Close(name.clone(), mode));
            self.work
                .extend(children.into_iter().rev().map(|n| Work::Node(n, mode)));
            self.work.push(Work::Markup(">", mode));
        }
        for (k, v) in attributes.into_iter().rev() {
            self.work.push(Work::Markup("\"", mode));
            self.work.push(Work::Node(v, Mode::Attribute));
            self.work.push(Work::AttrOpen(k, mode));
        }
        self.markup("<", mode);
        self.markup(&name, mode);
        Ok(())
    }
}

/// True for a name that can be written as a tag or attribute name as it is.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Escapes `&`, `<` and `>` (and `"` in an attribute) onto `out`.
fn escape(out: &mut Vec<u8>, s: &str, attribute: bool) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' if attribute => b"&quot;",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[start..i]);
        out.extend_from_slice(rep);
        start = i + 1;
    }
    out.extend_from_slice(&s.as_bytes()[start..]);
}

/// Where output goes; it says false once the reader has gone.
type Sink = Box<dyn FnMut(&[u8]) -> bool>;

/// What runs when rendering ends.
type Done = Box<dyn FnOnce(Result<(), FlattenerError>)>;

/// Runs a flattener to its end: writes through `sink` (which says false once the reader has
/// gone), waits on each pending Deferred, and calls `done` at the end.
struct Driver {
    flattener: Flattener,
    sink: Sink,
    done: Option<Done>,
    /// The Deferred rendering waits on, to cancel if the reader goes away.
    waiting: Rc<RefCell<Option<Deferred<()>>>>,
}

impl Driver {
    fn flush(&mut self) -> bool {
        if self.flattener.out.is_empty() {
            return true;
        }
        let go_on = (self.sink)(&self.flattener.out);
        self.flattener.out.clear();
        go_on
    }

    fn finish(mut self, outcome: Result<(), FlattenerError>) {
        if let Some(done) = self.done.take() {
            done(outcome);
        }
    }
}

fn drive(mut driver: Driver) {
    loop {
        match driver.flattener.run() {
            Step::Full => {
                if !driver.flush() {
                    return driver.finish(Ok(()));
                }
            }
            Step::Done => {
                driver.flush();
                return driver.finish(Ok(()));
            }
            Step::Failed(e) => {
                driver.flush();
                return driver.finish(Err(e));
            }
            Step::Pending(d, mode) => {
                // Send what came before the Deferred, then wait for it.
                if !driver.flush() {
                    d.cancel();
                    return driver.finish(Ok(()));
                }
                let waiting = driver.waiting.clone();
                let chain = d.add_both(move |outcome| {
                    driver.waiting.borrow_mut().take();
                    driver.flattener.resume(outcome, mode);
                    drive(driver);
                    Ok(())
                });
                if !chain.called() {
                    *waiting.borrow_mut() = Some(chain);
                }
                return;
            }
        }
    }
}

/// Renders `root` to a string (Twisted's `flattenString`), with no request: the Deferred
/// fires with the whole document, at once if nothing in it waits, or fails with a
/// [`FlattenerError`].
///
/// ```
/// use torsion_web::template::{flatten, slot, tags};
///
/// let tree = tags::p()
///     .attr("title", slot("t"))
///     .child("<script>")
///     .fill_slot("t", r#"say "hi""#);
/// assert_eq!(
///     flatten(tree).result().unwrap().unwrap(),
///     r#"<p title="say &quot;hi&quot;">&lt;script&gt;</p>"#
/// );
/// ```
pub fn flatten(root: impl Into<Node>) -> Deferred<String> {
    let buffer: Rc<RefCell<Vec<u8>>> = Rc::default();
    let sink_buffer = buffer.clone();
    flatten_to(None, root, move |bytes| {
        sink_buffer.borrow_mut().extend_from_slice(bytes)
    })
    .add_callback(move |()| String::from_utf8_lossy(&buffer.take()).into_owned())
}

/// Renders `root`, handing the output to `write` in pieces as it is rendered (Twisted's
/// `flatten(request, root, write)`): what comes before a Deferred that has not fired is
/// written before waiting for it. The Deferred fires when all is written, or fails with a
/// [`FlattenerError`] (after writing what came before the failure).
pub fn flatten_to(
    request: Option<&Request>,
    root: impl Into<Node>,
    mut write: impl FnMut(&[u8]) + 'static,
) -> Deferred<()> {
    let d = Deferred::new();
    let trigger = d.trigger();
    drive(Driver {
        flattener: Flattener::new(request.cloned(), root.into()),
        sink: Box::new(move |bytes| {
            write(bytes);
            true
        }),
        done: Some(Box::new(move |outcome| match outcome {
            Ok(()) => trigger.callback(()),
            Err(e) => trigger.errback(Failure::new(e)),
        })),
        waiting: Rc::default(),
    });
    d
}

/// Answers `request` with `element`, rendered (Twisted's `renderElement`): `<!DOCTYPE html>`,
/// then the element, as `text/html; charset=utf-8` unless the resource set a type.
///
/// A page rendered at once goes out in one piece with its length. Otherwise what is rendered
/// goes out as soon as a renderer's Deferred has to be waited for (and every 64 KiB), and
/// the response ends when the last piece is written. If the client leaves meanwhile, the
/// Deferred waited on is cancelled. If rendering fails, the failure is logged and Twisted's
/// error fragment (`<div ...>An error occurred while rendering the response.</div>`) ends the
/// page, after what was rendered before it; the status stays 200, as in Twisted (it may
/// have gone out already).
pub fn render_element(request: &Request, element: impl Element) -> Render {
    if !request.has_response_header("content-type") {
        request.set_header("Content-Type", "text/html; charset=utf-8");
    }
    let mut flattener = Flattener::new(Some(request.clone()), Node::element(element));
    flattener.out.extend_from_slice(b"<!DOCTYPE html>\n");
    match flattener.run() {
        Step::Done => return Render::Body(flattener.out),
        Step::Failed(e) => {
            log_failure(request, e);
            flattener.out.extend_from_slice(ERROR_FRAGMENT);
            return Render::Body(flattener.out);
        }
        Step::Full => {}
        Step::Pending(d, mode) => {
            // Back on the stack: the driver meets it again, after sending what is ready.
            flattener.work.push(Work::Node(Node::from(*d), mode));
        }
    }
    let waiting: Rc<RefCell<Option<Deferred<()>>>> = Rc::default();
    let cancel = waiting.clone();
    request.notify_finish().add_errback(move |_lost| {
        let pending = cancel.borrow_mut().take();
        if let Some(d) = pending {
            d.cancel();
        }
        Ok(())
    });
    let (sink_request, done_request) = (request.clone(), request.clone());
    drive(Driver {
        flattener,
        sink: Box::new(move |bytes| !sink_request.lost() && sink_request.try_write(bytes).is_ok()),
        done: Some(Box::new(move |outcome| {
            if done_request.lost() || done_request.finished() {
                return;
            }
            if let Err(e) = outcome {
                log_failure(&done_request, e);
                let _ = done_request.try_write(ERROR_FRAGMENT);
            }
            let _ = done_request.try_finish();
        })),
        waiting,
    });
    Render::NotDoneYet
}

fn log_failure(request: &Request, e: FlattenerError) {
    torsion::log::err(
        &Failure::new(e),
        &format!(
            "An error occurred while rendering the response to {} {}",
            request.method(),
            request.uri()
        ),
    );
}
