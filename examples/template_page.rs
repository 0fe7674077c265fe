//! A page from a template (Twisted's template howto, "Widgets"): an `Element` with an XML
//! template, renderers for the title and the footer, and a list of widgets filled in from a
//! slow source — a renderer that answers with a Deferred. The page streams: the head goes
//! out at once, the list when its Deferred fires. Widget names are text, escaped (one of
//! them is a `<script>` tag, shown, not run).
//!
//! ```text
//! cargo run --release --example template_page -- --port 8080
//! curl -N localhost:8080/          # the head, then the list half a second later
//! curl localhost:8080/widget/gizmo
//! ```
use std::net::IpAddr;

use clap::Parser;
use torsion::task::defer_later;
use torsion::web::template::{
    render_element, slot, tags, Element, MissingRenderMethod, Node, Tag, Template,
};
use torsion::web::{Render, Request, Resource, Site};
use torsion::{reactor, Failure};
use torsion_examples::{init_logging, scale};

/// A page rendered from a template, its list from an async renderer (Twisted's template howto).
#[derive(Parser)]
struct Cli {
    /// The HTTP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
    /// How long the widget list takes to arrive, in seconds.
    #[arg(long, default_value_t = 0.5, value_parser = scale)]
    delay: f64,
}

/// The page's template: `t:render` names the renderers, `t:slot` the holes they fill.
const PAGE: &str = r#"<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
<head><meta charset="utf-8"/><title t:render="title"/></head>
<body>
  <h1 t:render="title"/>
  <p>Our widgets, fresh from the warehouse:</p>
  <ul id="widgets">
    <li class="widget" t:render="widgets"><a><t:attr name="href">/widget/<t:slot name="slug"/></t:attr><t:slot name="name"/></a></li>
  </ul>
  <footer t:render="footer"/>
</body>
</html>"#;

/// What the warehouse stocks: a display name and its address.
const WIDGETS: &[(&str, &str)] = &[
    ("gadget", "gadget"),
    ("contraption", "contraption"),
    ("gizmo", "gizmo"),
    ("doohickey", "doohickey"),
    // A name with markup in it: the page shows it as text.
    ("<script>document.title=\"pwned\"</script>", "script"),
];

/// The widgets page.
struct WidgetsPage {
    template: Template,
    delay: f64,
}

impl Element for WidgetsPage {
    fn template(&self) -> Option<&Template> {
        Some(&self.template)
    }

    fn render(&self, name: &str, _request: Option<&Request>, tag: Tag) -> Result<Node, Failure> {
        match name {
            "title" => Ok(tag.child("Widgets").into()),
            // The warehouse answers later: one copy of the <li> per widget, slots filled.
            "widgets" => Ok(Node::later(defer_later(
                &reactor(),
                self.delay,
                move || {
                    let items: Vec<Node> = WIDGETS
                        .iter()
                        .map(|&(name, slug)| {
                            tag.clone()
                                .fill_slot("name", name)
                                .fill_slot("slug", slug)
                                .into()
                        })
                        .collect();
                    Node::from(items)
                },
            ))),
            // Another element, with its own renderers.
            "footer" => Ok(tag.child(Node::element(Footer)).into()),
            _ => Err(MissingRenderMethod::new("WidgetsPage", name).into()),
        }
    }
}

/// The footer: an element built in code rather than parsed.
struct Footer;

impl Element for Footer {
    fn document(&self, _request: Option<&Request>) -> Result<Node, Failure> {
        Ok(tags::small()
            .child("Rendered by ")
            .child(tags::transparent().render("engine"))
            .into())
    }

    fn render(&self, name: &str, _request: Option<&Request>, tag: Tag) -> Result<Node, Failure> {
        match name {
            "engine" => Ok(tag
                .child(
                    tags::a()
                        .attr("href", "https://twisted.org/")
                        .child("Torsion"),
                )
                .into()),
            _ => Err(MissingRenderMethod::new("Footer", name).into()),
        }
    }
}

/// One widget's page, built from tags with a slot.
struct WidgetPage {
    name: &'static str,
}

impl Element for WidgetPage {
    fn document(&self, _request: Option<&Request>) -> Result<Node, Failure> {
        Ok(tags::html()
            .child(tags::head().child(tags::title().child(slot("name"))))
            .child(
                tags::body()
                    .child(tags::h1().attr("class", "widget").child(slot("name")))
                    .child(tags::a().attr("href", "/").child("All widgets")),
            )
            .fill_slot("name", self.name)
            .into())
    }
}

/// `/`: the list; `/widget/SLUG`: one widget.
struct Shop {
    template: Template,
    delay: f64,
}

impl Resource for Shop {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render_get(&self, request: &Request) -> Render {
        let path = request.postpath();
        match path.as_slice() {
            [] => {}
            [only] if only.is_empty() => {}
            [dir, slug] if dir == b"widget" => {
                return match WIDGETS.iter().find(|(_, s)| s.as_bytes() == slug) {
                    Some(&(name, _)) => render_element(request, WidgetPage { name }),
                    None => not_found(request),
                }
            }
            _ => return not_found(request),
        }
        render_element(
            request,
            WidgetsPage {
                template: self.template.clone(),
                delay: self.delay,
            },
        )
    }
}

fn not_found(request: &Request) -> Render {
    request.set_response_code(404);
    "<html><body>No such widget.</body></html>".into()
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let shop = Shop {
        template: Template::parse(PAGE)?,
        delay: cli.delay,
    };
    let listening =
        reactor().listen_tcp_on(cli.port, Site::new(shop), &cli.interface.to_string())?;
    println!("template_page listening on {}", listening.get_host());
    reactor().run()
}
