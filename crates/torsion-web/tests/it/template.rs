//! Templates (`torsion_web::template`, Twisted's `twisted.web.template`): escaping of text
//! and attributes, slots, nested elements, renderers that answer later (the page streams
//! past them, on a test Clock), renderer errors, malformed templates, and the differences
//! from Twisted the module documents.

use std::cell::RefCell;
use std::rc::Rc;

use crate::support::{exchange, listen};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::defer::Deferred;
use torsion::task::defer_later;
use torsion::testing::{flush_logged_errors, Clock};
use torsion::Failure;
use torsion_web::template::{
    flatten, flatten_to, render_element, slot, tags, DeferredReused, Element, FlattenerError,
    InvalidName, MissingRenderMethod, Node, Tag, Template, TemplateError, UnfilledSlot,
};
use torsion_web::{Render, Request, Resource, Site};

const NS: &str = r#"xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1""#;

/// The document a Deferred of a flatten holds, which must have fired.
fn now(d: Deferred<String>) -> String {
    d.result()
        .expect("rendered at once")
        .expect("rendered without error")
}

/// The error a flatten failed with, which must have fired.
fn failed(d: Deferred<String>) -> FlattenerError {
    let f = d
        .result()
        .expect("rendered at once")
        .expect_err("rendering failed");
    f.trap::<FlattenerError>().expect("a FlattenerError")
}

/// A renderer given as a closure.
type Renderer = Box<dyn Fn(Tag) -> Result<Node, Failure>>;

/// An element made of a template and renderers given as closures.
struct Page {
    template: Template,
    renderers: Vec<(&'static str, Renderer)>,
}

impl Page {
    fn new(xml: &str) -> Page {
        Page {
            template: Template::parse(xml).expect("the template parses"),
            renderers: Vec::new(),
        }
    }

    fn renderer(
        mut self,
        name: &'static str,
        f: impl Fn(Tag) -> Result<Node, Failure> + 'static,
    ) -> Page {
        self.renderers.push((name, Box::new(f)));
        self
    }
}

impl Element for Page {
    fn template(&self) -> Option<&Template> {
        Some(&self.template)
    }

    fn render(&self, name: &str, _: Option<&Request>, tag: Tag) -> Result<Node, Failure> {
        match self.renderers.iter().find(|(n, _)| *n == name) {
            Some((_, f)) => f(tag),
            None => Err(MissingRenderMethod::new("Page", name).into()),
        }
    }
}

#[test]
fn text_and_attributes_are_escaped() {
    let page = Page::new(&format!(
        r#"<div {NS}><p t:render="text"/><a t:render="link">x</a></div>"#
    ))
    .renderer("text", |tag| {
        Ok(tag.child("<script>alert('x')</script> & more").into())
    })
    .renderer("link", |tag| {
        Ok(tag
            .attr("title", r#"say "hi" <b>&"#)
            .attr("href", "/a?b=1&c=2")
            .into())
    });
    let out = now(flatten(Node::element(page)));
    assert_eq!(
        out,
        concat!(
            r#"<div><p>&lt;script&gt;alert('x')&lt;/script&gt; &amp; more</p>"#,
            r#"<a title="say &quot;hi&quot; &lt;b&gt;&amp;" href="/a?b=1&amp;c=2">x</a></div>"#
        )
    );
}

#[test]
fn markup_inside_an_attribute_is_escaped_too() {
    // A tag given as an attribute value is written as text, not as markup (as in Twisted).
    let tree = tags::img().attr("alt", tags::b().child("\"bold\""));
    assert_eq!(
        now(flatten(tree)),
        r#"<img alt="&lt;b&gt;&quot;bold&quot;&lt;/b&gt;" />"#
    );
    // Raw markup is written as is in content, escaped in an attribute.
    let tree = tags::p()
        .attr("data-x", Node::raw("<i>"))
        .child(Node::raw("<i>trusted</i>"));
    assert_eq!(
        now(flatten(tree)),
        r#"<p data-x="&lt;i&gt;"><i>trusted</i></p>"#
    );
}

#[test]
fn template_text_and_entities_are_escaped_again_when_written() {
    let t = Template::parse(&format!(
        r#"<?xml version="1.0"?><!DOCTYPE html><p {NS} title="a &amp; &quot;b&quot;">1 &lt; 2 &#38; &#x263A;<!-- note --><![CDATA[<raw>]]></p>"#
    ))
    .unwrap();
    assert_eq!(
        now(flatten(t.load())),
        r#"<p title="a &amp; &quot;b&quot;">1 &lt; 2 &amp; ☺<!-- note --><![CDATA[<raw>]]></p>"#
    );
}

#[test]
fn slots_are_filled_by_the_nearest_tag_or_their_default() {
    let page = Page::new(&format!(
        r#"<ul {NS} t:render="items"><li><a><t:attr name="href">/item/<t:slot name="id"/></t:attr><t:slot name="label"/></a> <t:slot name="note" default="(none)"/></li></ul>"#
    ))
    .renderer("items", |tag| {
        let items: Vec<Node> = [("1", "<one>"), ("2\"", "two")]
            .into_iter()
            .map(|(id, label)| {
                tag.clone()
                    .fill_slot("id", id)
                    .fill_slot("label", label)
                    .into()
            })
            .collect();
        Ok(items.into())
    });
    assert_eq!(
        now(flatten(Node::element(page))),
        concat!(
            r#"<ul><li><a href="/item/1">&lt;one&gt;</a> (none)</li></ul>"#,
            r#"<ul><li><a href="/item/2&quot;">two</a> (none)</li></ul>"#
        )
    );

    // An inner tag's value wins over an outer one's.
    let tree = tags::div()
        .fill_slot("x", "outer")
        .child(tags::span().child(slot("x")))
        .child(tags::span().fill_slot("x", "inner").child(slot("x")));
    assert_eq!(
        now(flatten(tree)),
        "<div><span>outer</span><span>inner</span></div>"
    );
}

#[test]
fn an_unfilled_slot_fails_the_rendering() {
    let e = failed(flatten(tags::p().child(slot("missing"))));
    let unfilled = e
        .failure()
        .downcast_ref::<UnfilledSlot>()
        .expect("an UnfilledSlot");
    assert_eq!(unfilled.name(), "missing");
    assert_eq!(e.roots(), ["<p>"]);
}

/// The inner element of `nested_elements_render_with_their_own_renderers`.
struct Footer {
    year: u32,
}

impl Element for Footer {
    fn document(&self, _: Option<&Request>) -> Result<Node, Failure> {
        Ok(tags::footer().render("year").into())
    }

    fn render(&self, name: &str, _: Option<&Request>, tag: Tag) -> Result<Node, Failure> {
        match name {
            "year" => Ok(tag.child(format!("© {}", self.year)).into()),
            _ => Err(MissingRenderMethod::new("Footer", name).into()),
        }
    }
}

#[test]
fn nested_elements_render_with_their_own_renderers() {
    let page = Page::new(&format!(
        r#"<body {NS}><h1 t:render="title"/><t:transparent t:render="footer"/></body>"#
    ))
    .renderer("title", |tag| Ok(tag.child("Home").into()))
    .renderer("footer", |_| Ok(Node::element(Footer { year: 2026 })))
    // The outer element's "year" is not the one the footer uses.
    .renderer("year", |_| Ok("wrong".into()));
    assert_eq!(
        now(flatten(Node::element(page))),
        "<body><h1>Home</h1><footer>© 2026</footer></body>"
    );

    // A renderer of the inner element's template is looked up on the inner element only.
    let outer = Page::new(&format!(r#"<div {NS} t:render="inner"/>"#)).renderer("inner", |_| {
        Ok(Node::element(Page::new(&format!(
            r#"<p {NS} t:render="title"/>"#
        ))))
    });
    let outer = outer.renderer("title", |tag| Ok(tag.into()));
    let e = failed(flatten(Node::element(outer)));
    let missing = e
        .failure()
        .downcast_ref::<MissingRenderMethod>()
        .expect("a MissingRenderMethod");
    assert_eq!(missing.name(), "title");
}

/// A page whose list comes from a Deferred on `clock`.
fn slow_list(clock: &Clock) -> Page {
    let clock = clock.clone();
    Page::new(&format!(
        r#"<html {NS}><body><h1>Widgets</h1><ul t:render="widgets"><li><t:slot name="name"/></li></ul><p>end</p></body></html>"#
    ))
    .renderer("widgets", move |tag| {
        Ok(Node::later(defer_later(&clock, 1.0, move || {
            let items: Vec<Node> = ["gadget", "<gizmo>"]
                .into_iter()
                .map(|n| tag.clone().fill_slot("name", n).into())
                .collect();
            Node::from(items)
        })))
    })
}

#[test]
fn what_comes_before_a_pending_deferred_is_written_before_it_fires() {
    let clock = Clock::new();
    let pieces: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = pieces.clone();
    let done = flatten_to(None, Node::element(slow_list(&clock)), move |b| {
        sink.borrow_mut()
            .push(String::from_utf8_lossy(b).into_owned())
    });
    assert_eq!(
        *pieces.borrow(),
        ["<html><body><h1>Widgets</h1>"],
        "the head went out before the Deferred fired"
    );
    assert!(!done.called());
    clock.advance(1.0);
    assert!(done.result().expect("done").is_ok());
    assert_eq!(
        pieces.borrow()[1..].concat(),
        "<ul><li>gadget</li></ul><ul><li>&lt;gizmo&gt;</li></ul><p>end</p></body></html>"
    );
}

/// Serves a page made by `make` at every path.
struct Serve(Box<dyn Fn() -> Page>);

impl Resource for Serve {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render_get(&self, request: &Request) -> Render {
        render_element(request, (self.0)())
    }
}

/// The body of a chunked response, its chunks joined.
fn dechunk(response: &str) -> String {
    let mut rest = &response[response.find("\r\n\r\n").expect("a head") + 4..];
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size");
        let size = usize::from_str_radix(size, 16).expect("a hex size");
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// Reads from `s` until `out` holds `needle`, with a deadline.
async fn read_until(s: &mut TcpStream, out: &mut Vec<u8>, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(out).contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} never came: {}",
            String::from_utf8_lossy(out)
        );
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("read in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(out)
        );
        out.extend_from_slice(&buf[..n]);
    }
}

#[torsion::test]
async fn render_element_streams_the_page_to_the_client_before_the_deferred_fires(
) -> Result<(), Failure> {
    let clock = Clock::new();
    let c = clock.clone();
    let (port, addr) = listen(Site::new(Serve(Box::new(move || slow_list(&c)))));
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    read_until(&mut s, &mut out, "<h1>Widgets</h1>").await;
    let head = String::from_utf8_lossy(&out).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked"), "{head}");
    assert!(
        lower.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("<!DOCTYPE html>\n<html><body>"), "{head}");
    assert!(!head.contains("gadget"), "the list came early: {head}");
    assert_eq!(clock.pending_call_times(), [1.0]);

    clock.advance(1.0);
    s.read_to_end(&mut out).await?;
    let all = String::from_utf8_lossy(&out);
    assert!(all.ends_with("0\r\n\r\n"), "the response was ended: {all}");
    assert_eq!(
        dechunk(&all),
        concat!(
            "<!DOCTYPE html>\n<html><body><h1>Widgets</h1>",
            "<ul><li>gadget</li></ul><ul><li>&lt;gizmo&gt;</li></ul><p>end</p></body></html>"
        )
    );
    port.stop_listening().await
}

#[torsion::test]
async fn a_page_with_nothing_to_wait_for_goes_out_with_its_length() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(Serve(Box::new(|| {
        Page::new(&format!(r#"<p {NS} t:render="x"/>"#))
            .renderer("x", |tag| Ok(tag.child("hi").into()))
    }))));
    let out = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let body = "<!DOCTYPE html>\n<p>hi</p>";
    assert!(
        out.to_ascii_lowercase()
            .contains(&format!("content-length: {}\r\n", body.len())),
        "{out}"
    );
    assert!(out.ends_with(&format!("\r\n\r\n{body}")), "{out}");
    port.stop_listening().await
}

#[torsion::test]
async fn a_client_that_leaves_cancels_the_deferred_the_page_waits_on() -> Result<(), Failure> {
    let clock = Clock::new();
    let c = clock.clone();
    let (port, addr) = listen(Site::new(Serve(Box::new(move || slow_list(&c)))));
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let mut out = Vec::new();
    read_until(&mut s, &mut out, "<h1>Widgets</h1>").await;
    assert_eq!(clock.pending_call_times(), [1.0]);
    drop(s);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !clock.pending_call_times().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the renderer's timer was never cancelled"
        );
        tokio::task::yield_now().await;
    }
    // Nothing was logged: a client leaving is not a rendering error.
    assert!(flush_logged_errors::<(FlattenerError,)>().is_empty());
    port.stop_listening().await
}

/// A renderer's own error.
#[derive(Debug)]
struct NoWidgets;

impl std::fmt::Display for NoWidgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the widget store is closed")
    }
}

impl std::error::Error for NoWidgets {}

#[test]
fn a_renderer_error_fails_the_flatten_with_where_it_happened() {
    let page = Page::new(&format!(r#"<div {NS}><ul t:render="widgets"/></div>"#))
        .renderer("widgets", |_| Err(NoWidgets.into()));
    let e = failed(flatten(Node::element(page)));
    assert!(e.failure().check::<NoWidgets>(), "{e}");
    assert_eq!(
        e.roots()[1..],
        [
            "<div>".to_string(),
            r#"<ul t:render="widgets">"#.to_string()
        ]
    );
    assert!(e.roots()[0].ends_with("Page"), "{:?}", e.roots());
    assert!(e.to_string().contains("the widget store is closed"), "{e}");

    // A panic in a renderer is a failure too, not a crash.
    let page = Page::new(&format!(r#"<p {NS} t:render="boom"/>"#))
        .renderer("boom", |_| panic!("renderer exploded"));
    let e = failed(flatten(Node::element(page)));
    assert!(e.failure().is_panic(), "{e}");

    // So is a renderer the element does not have, and a Deferred that fails later.
    let page = Page::new(&format!(r#"<p {NS} t:render="nope"/>"#));
    let e = failed(flatten(Node::element(page)));
    assert!(e.failure().check::<MissingRenderMethod>(), "{e}");
    let clock = Clock::new();
    let c = clock.clone();
    let page = Page::new(&format!(r#"<p {NS} t:render="later"/>"#)).renderer("later", move |_| {
        Ok(Node::later(
            defer_later(&c, 1.0, || ()).add_callback_result(|()| Err::<Node, _>(NoWidgets)),
        ))
    });
    let d = flatten(Node::element(page));
    assert!(!d.called());
    clock.advance(1.0);
    let e = failed(d);
    assert!(e.failure().check::<NoWidgets>(), "{e}");
}

#[torsion::test]
async fn a_renderer_error_ends_the_page_with_twisteds_error_fragment_and_is_logged(
) -> Result<(), Failure> {
    let clock = Clock::new();
    let c = clock.clone();
    let (port, addr) = listen(Site::new(Serve(Box::new(move || {
        let c = c.clone();
        Page::new(&format!(
            r#"<body {NS}><h1>Before</h1><div t:render="slow"/><ul t:render="broken"/></body>"#
        ))
        .renderer("slow", move |tag| {
            let tag = tag.child("slow part");
            Ok(Node::later(defer_later(&c, 1.0, move || Node::from(tag))))
        })
        .renderer("broken", |_| Err(NoWidgets.into()))
    }))));
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    read_until(&mut s, &mut out, "<h1>Before</h1>").await;
    clock.advance(1.0);
    s.read_to_end(&mut out).await?;
    let all = String::from_utf8_lossy(&out);
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.ends_with("0\r\n\r\n"), "the response was ended: {all}");
    let body = dechunk(&all);
    assert!(
        body.ends_with(concat!(
            "<div>slow part</div>",
            r#"<div style="font-size:800%;background-color:#FFF;color:#F00">"#,
            "An error occurred while rendering the response.</div>"
        )),
        "{body}"
    );
    let logged = flush_logged_errors::<(FlattenerError,)>();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0].to_string().contains("the widget store is closed"),
        "{}",
        logged[0]
    );

    // Failing before anything had to wait: the page, the fragment, and a length.
    let (port2, addr2) = listen(Site::new(Serve(Box::new(|| {
        Page::new(&format!(r#"<p {NS}>x<b t:render="broken"/></p>"#))
            .renderer("broken", |_| Err(NoWidgets.into()))
    }))));
    let out = exchange(
        addr2,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        out.contains("content-length: ") || out.contains("Content-Length: "),
        "{out}"
    );
    assert!(
        out.ends_with("\r\n\r\n<!DOCTYPE html>\n<p>x<div style=\"font-size:800%;background-color:#FFF;color:#F00\">An error occurred while rendering the response.</div>"),
        "{out}"
    );
    assert_eq!(flush_logged_errors::<(FlattenerError,)>().len(), 1);
    port2.stop_listening().await?;
    port.stop_listening().await
}

#[test]
fn malformed_templates_are_errors_not_panics() {
    for (xml, why) in [
        ("<p>", "unclosed"),
        ("<p></q>", "mismatched end"),
        ("</p>", "end with nothing open"),
        ("<p>&nbsp;</p>", "an entity XML does not define"),
        (
            &format!(r#"<p {NS}><t:slot/></p>"#),
            "a slot without a name",
        ),
        (&format!(r#"<t:attr {NS} name="x"/>"#), "t:attr at the top"),
        (
            &format!(r#"<p {NS}><t:bogus/></p>"#),
            "an unknown template element",
        ),
        (
            &format!(r#"<p {NS} t:bogus="x"/>"#),
            "an unknown template attribute",
        ),
        ("<p a=\"1\" a=\"2\"/>", "a repeated attribute"),
        ("<p \u{0}/>", "a NUL"),
    ] {
        let e: TemplateError = Template::parse(xml).expect_err(why);
        assert!(e.position().is_some(), "{why}: {e}");
    }
    let e = Template::from_file("/nonexistent/template.xml").expect_err("no such file");
    assert!(e.to_string().contains("/nonexistent/template.xml"), "{e}");
}

#[test]
fn difference_renderers_are_one_method_and_names_are_checked() {
    // Renderers are Element::render's match arms; a name it does not know fails.
    let page = Page::new(&format!(r#"<p {NS} t:render="x"/>"#));
    let e = failed(flatten(Node::element(page)));
    assert_eq!(
        e.failure()
            .downcast_ref::<MissingRenderMethod>()
            .map(|m| m.name().to_owned()),
        Some("x".to_owned())
    );
    // A tag or attribute name that is not a name fails rather than writing markup.
    let e = failed(flatten(Tag::new("p onclick=alert(1)")));
    assert!(e.failure().check::<InvalidName>(), "{e}");
    let e = failed(flatten(tags::p().attr("x\"><script>", "1")));
    assert!(e.failure().check::<InvalidName>(), "{e}");
    // A Deferred in a tree renders once; a copy of the tree shares it.
    let tree = tags::p().child(Node::later(torsion::defer::succeed("once")));
    let copy = tree.clone();
    assert_eq!(now(flatten(tree)), "<p>once</p>");
    let e = failed(flatten(copy));
    assert!(e.failure().check::<DeferredReused>(), "{e}");
}

#[test]
fn comments_and_cdata_cannot_end_early() {
    let tree = tags::div()
        .child(Node::Comment("a -- b -->".into()))
        .child(Node::Comment("ends in -".into()))
        .child(Node::CData("x ]]> y".into()));
    assert_eq!(
        now(flatten(tree)),
        "<div><!--a - -  b - - &gt;--><!--ends in - --><![CDATA[x ]]]]><![CDATA[> y]]></div>"
    );
}

#[test]
fn a_large_page_is_sent_in_pieces() {
    let rows: Vec<Node> = (0..20_000).map(|i| tags::li().child(i).into()).collect();
    let pieces: Rc<RefCell<Vec<usize>>> = Rc::default();
    let sink = pieces.clone();
    let d = flatten_to(None, tags::ul().children(rows), move |b| {
        sink.borrow_mut().push(b.len())
    });
    assert!(d.result().unwrap().is_ok());
    let pieces = pieces.borrow();
    assert!(pieces.len() > 2, "{pieces:?}");
    assert!(pieces.iter().all(|&n| n < 80 * 1024), "{pieces:?}");
}
