//! What a template is made of: [`Node`], [`Tag`], [`Slot`] (Twisted's `twisted.web._stan`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::rc::Rc;

use torsion::defer::{ensure_deferred, Deferred};
use torsion::Failure;

use super::Element;

/// A piece of a document: what renderers return and templates are made of (Twisted's
/// "flattenable" objects).
///
/// Text is escaped when it is written; a [`Tag`] is written with its attributes and
/// children; a [`Slot`] is replaced by the value a tag around it fills; an [`Element`] is
/// replaced by its template, rendered by its own renderers; a Deferred is waited for, what
/// was rendered before it having been sent on.
#[derive(Clone)]
pub enum Node {
    /// Text, escaped when written (`<` becomes `&lt;`; in an attribute, `"` becomes
    /// `&quot;` too).
    Text(Cow<'static, str>),
    /// Markup written as it is, not escaped: only for text you trust. (Twisted has no such
    /// node; its templates are the way to write markup.) Inside an attribute it is escaped
    /// like everything else there.
    Raw(Cow<'static, str>),
    /// An XML comment, `<!--...-->`; a `--` inside is broken up so it cannot end early.
    Comment(Cow<'static, str>),
    /// A CDATA section; a `]]>` inside is split so it cannot end early.
    CData(Cow<'static, str>),
    /// A character reference, `&#N;`.
    CharRef(u32),
    /// An element with attributes and children.
    Tag(Tag),
    /// A slot: replaced by the value filled by the nearest tag around it.
    Slot(Slot),
    /// Several nodes, in order.
    List(Vec<Node>),
    /// An element: its template, rendered with its renderers.
    Element(Rc<dyn Element>),
    /// A node that comes later: rendering waits for it, after sending what came before.
    Deferred(PendingNode),
}

impl Node {
    /// Text (escaped when written).
    pub fn text(text: impl Into<Cow<'static, str>>) -> Node {
        Node::Text(text.into())
    }

    /// Markup written as it is: only for text you trust (see [`Node::Raw`]).
    pub fn raw(markup: impl Into<Cow<'static, str>>) -> Node {
        Node::Raw(markup.into())
    }

    /// Nothing: an empty list.
    pub fn empty() -> Node {
        Node::List(Vec::new())
    }

    /// An element, rendered with its own template and renderers.
    pub fn element(element: impl Element) -> Node {
        Node::Element(Rc::new(element))
    }

    /// The node a Deferred fires with: rendering waits for it, sending what came before it
    /// first. Its failure fails the rendering.
    pub fn later<T: Into<Node> + 'static>(d: Deferred<T>) -> Node {
        Node::Deferred(PendingNode::new(d.add_callback(Into::into)))
    }

    /// The node async code returns (a Deferred of it, through
    /// [`ensure_deferred`]); its error fails the rendering.
    pub fn future<T, E>(fut: impl Future<Output = Result<T, E>> + 'static) -> Node
    where
        T: Into<Node> + 'static,
        E: Into<Failure> + 'static,
    {
        Node::later(ensure_deferred(fut))
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Text(t) => f.debug_tuple("Text").field(t).finish(),
            Node::Raw(t) => f.debug_tuple("Raw").field(t).finish(),
            Node::Comment(t) => f.debug_tuple("Comment").field(t).finish(),
            Node::CData(t) => f.debug_tuple("CData").field(t).finish(),
            Node::CharRef(c) => f.debug_tuple("CharRef").field(c).finish(),
            Node::Tag(t) => t.fmt(f),
            Node::Slot(s) => s.fmt(f),
            Node::List(l) => f.debug_list().entries(l).finish(),
            Node::Element(_) => f.write_str("Element(..)"),
            Node::Deferred(_) => f.write_str("Deferred(..)"),
        }
    }
}

impl From<&'static str> for Node {
    fn from(s: &'static str) -> Node {
        Node::Text(Cow::Borrowed(s))
    }
}

impl From<String> for Node {
    fn from(s: String) -> Node {
        Node::Text(Cow::Owned(s))
    }
}

impl From<Cow<'static, str>> for Node {
    fn from(s: Cow<'static, str>) -> Node {
        Node::Text(s)
    }
}

impl From<Tag> for Node {
    fn from(t: Tag) -> Node {
        Node::Tag(t)
    }
}

impl From<Slot> for Node {
    fn from(s: Slot) -> Node {
        Node::Slot(s)
    }
}

impl<T: Into<Node>> From<Vec<T>> for Node {
    fn from(v: Vec<T>) -> Node {
        Node::List(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Node>> From<Option<T>> for Node {
    fn from(v: Option<T>) -> Node {
        v.map_or_else(Node::empty, Into::into)
    }
}

impl From<Rc<dyn Element>> for Node {
    fn from(e: Rc<dyn Element>) -> Node {
        Node::Element(e)
    }
}

impl From<Deferred<Node>> for Node {
    fn from(d: Deferred<Node>) -> Node {
        Node::Deferred(PendingNode::new(d))
    }
}

macro_rules! number_nodes {
    ($($t:ty),*) => {$(
        impl From<$t> for Node {
            fn from(n: $t) -> Node {
                Node::Text(Cow::Owned(n.to_string()))
            }
        }
    )*};
}
number_nodes!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);

/// A Deferred node in a tree. Cloning a tree shares it: the first rendering that reaches it
/// takes it, and a second fails with a [`FlattenerError`](super::FlattenerError) (a Deferred
/// fires once).
#[derive(Clone)]
pub struct PendingNode(Rc<RefCell<Option<Deferred<Node>>>>);

impl PendingNode {
    fn new(d: Deferred<Node>) -> PendingNode {
        PendingNode(Rc::new(RefCell::new(Some(d))))
    }

    pub(super) fn take(&self) -> Option<Deferred<Node>> {
        self.0.borrow_mut().take()
    }
}

/// An element (Twisted's `Tag`): a name, attributes, children, and optionally the name of the
/// renderer that renders it and the values of the slots below it.
///
/// ```
/// use torsion_web::template::{tags, flatten};
///
/// let link = tags::a().attr("href", "/?a=1&b=2").child("Tom & Jerry");
/// let out = flatten(link).result().unwrap().unwrap();
/// assert_eq!(out, r#"<a href="/?a=1&amp;b=2">Tom &amp; Jerry</a>"#);
/// ```
#[derive(Clone, Default)]
pub struct Tag {
    pub(super) name: Cow<'static, str>,
    pub(super) attributes: Vec<(Cow<'static, str>, Node)>,
    pub(super) children: Vec<Node>,
    pub(super) render: Option<Cow<'static, str>>,
    pub(super) slots: Vec<(Cow<'static, str>, Node)>,
}

impl Tag {
    /// A tag named `name`, with nothing in it. An empty name is a transparent tag (Twisted's
    /// `tags.transparent`, `<t:transparent>`): only its children are written.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Tag {
        Tag {
            name: name.into(),
            ..Tag::default()
        }
    }

    /// The tag's name (empty for a transparent tag).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets attribute `name` (replacing a value it had). The value is text, a slot, or any
    /// node; it is escaped for an attribute when written.
    pub fn attr(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Node>) -> Tag {
        self.set_attr(name, value);
        self
    }

    /// Sets attribute `name` in place (replacing a value it had).
    pub fn set_attr(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Node>) {
        let name = name.into();
        let value = value.into();
        match self.attributes.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v = value,
            None => self.attributes.push((name, value)),
        }
    }

    /// The value of attribute `name`, if it has one.
    pub fn attribute(&self, name: &str) -> Option<&Node> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The attributes, in order.
    pub fn attributes(&self) -> &[(Cow<'static, str>, Node)] {
        &self.attributes
    }

    /// Adds a child at the end (Twisted's `tag(child)`).
    pub fn child(mut self, child: impl Into<Node>) -> Tag {
        self.children.push(child.into());
        self
    }

    /// Adds children at the end.
    pub fn children<I>(mut self, children: I) -> Tag
    where
        I: IntoIterator,
        I::Item: Into<Node>,
    {
        self.children.extend(children.into_iter().map(Into::into));
        self
    }

    /// Adds a child at the end, in place.
    pub fn push(&mut self, child: impl Into<Node>) {
        self.children.push(child.into());
    }

    /// The children, in order.
    pub fn child_nodes(&self) -> &[Node] {
        &self.children
    }

    /// The tag without its children (Twisted's `tag.clear()`).
    pub fn clear(mut self) -> Tag {
        self.children.clear();
        self
    }

    /// Fills slot `name` for everything below this tag (Twisted's `fillSlots`): a
    /// [`Slot`] of that name below it is replaced by `value` when written, unless a tag
    /// nearer to it fills it too.
    pub fn fill_slot(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Node>) -> Tag {
        let name = name.into();
        let value = value.into();
        match self.slots.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v = value,
            None => self.slots.push((name, value)),
        }
        self
    }

    /// Has the tag rendered by renderer `name` of the element being rendered (the template's
    /// `t:render="name"`).
    pub fn render(mut self, name: impl Into<Cow<'static, str>>) -> Tag {
        self.render = Some(name.into());
        self
    }

    /// The renderer this tag is rendered by, if any.
    pub fn renderer(&self) -> Option<&str> {
        self.render.as_deref()
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Tag");
        d.field("name", &self.name);
        if !self.attributes.is_empty() {
            d.field("attributes", &self.attributes);
        }
        if let Some(r) = &self.render {
            d.field("render", r);
        }
        if !self.slots.is_empty() {
            d.field("slots", &self.slots);
        }
        d.field("children", &self.children).finish()
    }
}

/// A slot (Twisted's `slot`, `<t:slot name="x"/>`): replaced, when written, by the value the
/// nearest tag around it [fills](Tag::fill_slot) for its name, or by its default.
#[derive(Clone, Debug)]
pub struct Slot {
    pub(super) name: Cow<'static, str>,
    pub(super) default: Option<Box<Node>>,
}

impl Slot {
    /// A slot named `name`, with no default: left unfilled, it fails the rendering.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Slot {
        Slot {
            name: name.into(),
            default: None,
        }
    }

    /// The value written when no tag around the slot fills it (the template's
    /// `<t:slot name="x" default="..."/>`).
    pub fn default(mut self, value: impl Into<Node>) -> Slot {
        self.default = Some(Box::new(value.into()));
        self
    }

    /// The slot's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A slot named `name` (Twisted's `slot("name")`).
pub fn slot(name: impl Into<Cow<'static, str>>) -> Slot {
    Slot::new(name)
}
