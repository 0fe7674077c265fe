//! Templates from XML (Twisted's `XMLString`, `XMLFile`, `TagLoader`), parsed with
//! quick-xml.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::rc::Rc;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::{Node, Slot, Tag};

/// The template namespace: `t:render`, `t:slot`, `t:attr` and `t:transparent` are in it
/// (Twisted's `TEMPLATE_NAMESPACE`, the same URI, so Twisted's templates load as they are).
pub const TEMPLATE_NAMESPACE: &str = "http://twistedmatrix.com/ns/twisted.web.template/0.1";

/// A template that cannot be loaded: malformed XML, a `t:slot` or `t:attr` without a name,
/// a `t:attr` at the top, or a file that cannot be read.
#[derive(Debug)]
pub struct TemplateError {
    message: String,
    position: Option<u64>,
}

impl TemplateError {
    fn at(position: u64, message: impl Into<String>) -> TemplateError {
        TemplateError {
            message: message.into(),
            position: Some(position),
        }
    }

    /// The byte offset in the template where the error was found, if it came from parsing.
    pub fn position(&self) -> Option<u64> {
        self.position
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "template error at byte {p}: {}", self.message),
            None => write!(f, "template error: {}", self.message),
        }
    }
}

impl std::error::Error for TemplateError {}

/// A loaded template (Twisted's template loaders): the document, parsed once;
/// [`load`](Template::load) hands out a copy to render. Cheap to clone.
///
/// ```
/// use torsion_web::template::Template;
///
/// let t = Template::parse(r#"<p xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
///     Hello, <t:slot name="who" default="world"/>!</p>"#).unwrap();
/// assert_eq!(
///     torsion_web::template::flatten(t.load()).result().unwrap().unwrap(),
///     "<p>\n    Hello, world!</p>"
/// );
/// ```
#[derive(Clone)]
pub struct Template {
    nodes: Rc<[Node]>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.nodes.iter()).finish()
    }
}

impl Template {
    /// Parses an XML template (Twisted's `XMLString`). Elements and attributes in
    /// [`TEMPLATE_NAMESPACE`] are the template's: `t:render="name"` on any element names its
    /// renderer; `<t:slot name="x" default="d"/>` is a [`Slot`]; `<t:attr name="a">...</t:attr>`
    /// sets attribute `a` of the element around it to its content (slots included);
    /// `<t:transparent>` writes only its children. The XML declaration, processing
    /// instructions and the doctype are dropped, as Twisted drops them
    /// ([`render_element`](super::render_element) writes `<!DOCTYPE html>` itself); comments
    /// and CDATA sections are kept. Only XML's own entities (`&amp;` ...) and character
    /// references are known.
    pub fn parse(xml: &str) -> Result<Template, TemplateError> {
        parse(xml).map(|nodes| Template {
            nodes: nodes.into(),
        })
    }

    /// Reads and parses an XML template file (Twisted's `XMLFile`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Template, TemplateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| TemplateError {
            message: format!("cannot read {}: {e}", path.display()),
            position: None,
        })?;
        Template::parse(&text)
    }

    /// A template made of a tree built in code (Twisted's `TagLoader`).
    pub fn from_node(node: impl Into<Node>) -> Template {
        Template {
            nodes: Rc::from(vec![node.into()]),
        }
    }

    /// A copy of the document, to render (Twisted's `loader.load()`).
    pub fn load(&self) -> Node {
        match &*self.nodes {
            [one] => one.clone(),
            many => Node::List(many.to_vec()),
        }
    }
}

/// What an open element turned into.
enum Open {
    Tag(Tag),
    /// A `t:attr`: its content becomes attribute `name` of the element around it.
    Attr(Cow<'static, str>, Tag),
    /// A `t:slot`: its content is ignored, as in Twisted.
    Slot(Slot),
}

fn utf8(bytes: &[u8], at: u64) -> Result<String, TemplateError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| TemplateError::at(at, "invalid UTF-8"))
}

fn parse(xml: &str) -> Result<Vec<Node>, TemplateError> {
    let mut reader = NsReader::from_str(xml);
    let mut top: Vec<Node> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let ns = TEMPLATE_NAMESPACE.as_bytes();
    loop {
        let at = reader.buffer_position();
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| TemplateError::at(at, e.to_string()))?;
        let in_template_ns = matches!(resolved, ResolveResult::Bound(n) if n.0 == ns);
        let push = |stack: &mut Vec<Open>, top: &mut Vec<Node>, node: Node| match stack.last_mut() {
            Some(Open::Tag(t)) | Some(Open::Attr(_, t)) => t.children.push(node),
            Some(Open::Slot(_)) => {}
            None => top.push(node),
        };
        match event {
            Event::Start(e) => {
                let open = open_element(&reader, &e, in_template_ns, &stack, at)?;
                stack.push(open);
            }
            Event::Empty(e) => {
                let open = open_element(&reader, &e, in_template_ns, &stack, at)?;
                stack.push(open);
                close(&mut stack, &mut top, at)?;
            }
            Event::End(_) => close(&mut stack, &mut top, at)?,
            Event::Text(t) => {
                let text = utf8(&t.into_inner(), at)?;
                if !text.is_empty() {
                    push(&mut stack, &mut top, Node::Text(text.into()));
                }
            }
            Event::GeneralRef(r) => {
                let text = match r
                    .resolve_char_ref()
                    .map_err(|e| TemplateError::at(at, e.to_string()))?
                {
                    Some(c) => c.to_string(),
                    None => {
                        let name = utf8(&r.into_inner(), at)?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| {
                                TemplateError::at(at, format!("unknown entity &{name};"))
                            })?
                            .to_owned()
                    }
                };
                push(&mut stack, &mut top, Node::Text(text.into()));
            }
            Event::CData(c) => {
                let text = utf8(&c.into_inner(), at)?;
                push(&mut stack, &mut top, Node::CData(text.into()));
            }
            Event::Comment(c) => {
                let text = utf8(&c.into_inner(), at)?;
                push(&mut stack, &mut top, Node::Comment(text.into()));
            }
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => {
                if !stack.is_empty() {
                    return Err(TemplateError::at(at, "unclosed element at the end"));
                }
                return Ok(top);
            }
        }
    }
}

/// The element `e` starts, as a tag, a `t:attr` or a `t:slot`.
fn open_element(
    reader: &NsReader<&[u8]>,
    e: &BytesStart<'_>,
    in_template_ns: bool,
    stack: &[Open],
    at: u64,
) -> Result<Open, TemplateError> {
    let ns = TEMPLATE_NAMESPACE.as_bytes();
    let mut render: Option<String> = None;
    let mut attributes: Vec<(String, String)> = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|e| TemplateError::at(at, e.to_string()))?;
        let key = utf8(attr.key.as_ref(), at)?;
        let value = attr
            .unescape_value()
            .map_err(|e| TemplateError::at(at, e.to_string()))?
            .into_owned();
        // The template namespace's declaration is the template's, not the page's.
        if (key == "xmlns" || key.starts_with("xmlns:")) && value == TEMPLATE_NAMESPACE {
            continue;
        }
        let (resolved, local) = reader.resolve_attribute(attr.key);
        if matches!(resolved, ResolveResult::Bound(n) if n.0 == ns) {
            match local.as_ref() {
                b"render" => render = Some(value),
                other => {
                    return Err(TemplateError::at(
                        at,
                        format!(
                            "unknown template attribute {}",
                            String::from_utf8_lossy(other)
                        ),
                    ))
                }
            }
            continue;
        }
        attributes.push((key, value));
    }
    let plain = |name: &str| -> Option<String> {
        attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if in_template_ns {
        let local = e.local_name();
        match local.as_ref() {
            b"slot" => {
                let name = plain("name")
                    .ok_or_else(|| TemplateError::at(at, "<t:slot> needs a name attribute"))?;
                let mut s = Slot::new(name);
                if let Some(d) = plain("default") {
                    s = s.default(d);
                }
                return Ok(Open::Slot(s));
            }
            b"attr" => {
                let name = plain("name")
                    .ok_or_else(|| TemplateError::at(at, "<t:attr> needs a name attribute"))?;
                if !matches!(stack.last(), Some(Open::Tag(t)) if !t.name.is_empty()) {
                    return Err(TemplateError::at(
                        at,
                        "<t:attr> must be directly inside an element",
                    ));
                }
                let mut tag = Tag::new("");
                tag.render = render.map(Into::into);
                return Ok(Open::Attr(name.into(), tag));
            }
            b"transparent" => {
                let mut tag = Tag::new("");
                tag.render = render.map(Into::into);
                return Ok(Open::Tag(tag));
            }
            other => {
                return Err(TemplateError::at(
                    at,
                    format!(
                        "unknown template element <t:{}>",
                        String::from_utf8_lossy(other)
                    ),
                ))
            }
        }
    }
    let mut tag = Tag::new(utf8(e.name().as_ref(), at)?);
    tag.render = render.map(Into::into);
    for (k, v) in attributes {
        tag.attributes.push((k.into(), Node::Text(v.into())));
    }
    Ok(Open::Tag(tag))
}

/// Closes the innermost open element, putting it where it belongs.
fn close(stack: &mut Vec<Open>, top: &mut Vec<Node>, at: u64) -> Result<(), TemplateError> {
    let Some(open) = stack.pop() else {
        return Err(TemplateError::at(at, "a closing tag with nothing open"));
    };
    let node = match open {
        Open::Tag(t) => Node::Tag(t),
        Open::Slot(s) => Node::Slot(s),
        Open::Attr(name, value) => {
            return match stack.last_mut() {
                Some(Open::Tag(parent)) => {
                    parent.set_attr(name, Node::Tag(value));
                    Ok(())
                }
                _ => Err(TemplateError::at(
                    at,
                    "<t:attr> must be directly inside an element",
                )),
            };
        }
    };
    match stack.last_mut() {
        Some(Open::Tag(t)) | Some(Open::Attr(_, t)) => t.children.push(node),
        Some(Open::Slot(_)) => {}
        None => top.push(node),
    }
    Ok(())
}
