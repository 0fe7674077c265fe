//! A chat server over WebSocket: a page at `/` (a little HTML and JavaScript) and the
//! WebSocket at `/ws`; each text message a client sends goes to every other client.
//!
//! ```text
//! cargo run --release --example ws_chat -- --port 8080
//! open http://localhost:8080/ in two browser tabs, or:
//! python3 -m websockets ws://localhost:8080/ws
//! ```
use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;

use clap::Parser;
use torsion::web::resource::Children;
use torsion::web::websocket::{
    CloseReason, WebSocketProtocol, WebSocketResource, WebSocketTransport, WsLimits,
};
use torsion::web::{Render, Request, Resource, Site};
use torsion::{reactor, Failure};
use torsion_examples::init_logging;

/// A chat server over WebSocket (Twisted's twisted.web.websocket): the page at /, the WebSocket at /ws.
#[derive(Parser)]
struct Cli {
    /// The HTTP port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The address to listen on (an IPv4 or IPv6 address). The default, 127.0.0.1, is this
    /// machine only; 0.0.0.0 (or ::) is every interface.
    #[arg(long, default_value = "127.0.0.1")]
    interface: IpAddr,
}

/// Everyone connected, by id.
#[derive(Default)]
struct Room {
    next_id: Cell<u64>,
    members: RefCell<Vec<(u64, WebSocketTransport)>>,
}

/// One chatter.
struct Chatter {
    id: u64,
    room: Rc<Room>,
}

impl WebSocketProtocol for Chatter {
    fn connection_made(&mut self, transport: &WebSocketTransport) {
        self.room
            .members
            .borrow_mut()
            .push((self.id, transport.clone()));
    }

    fn text_message_received(&mut self, _transport: &WebSocketTransport, text: String) {
        // Cloned out first: a send never re-enters the room, but a list borrowed across
        // other code is a trap.
        let others: Vec<WebSocketTransport> = self
            .room
            .members
            .borrow()
            .iter()
            .filter(|(id, _)| *id != self.id)
            .map(|(_, t)| t.clone())
            .collect();
        for t in others {
            t.send_text(&text);
        }
    }

    fn connection_lost(&mut self, _reason: CloseReason) {
        self.room
            .members
            .borrow_mut()
            .retain(|(id, _)| *id != self.id);
    }
}

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Torsion chat</title></head>
<body>
<ul id="log"></ul>
<form id="f"><input id="m" autocomplete="off" autofocus><button>Send</button></form>
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
const log = document.getElementById("log");
function say(text) { const li = document.createElement("li"); li.textContent = text; log.appendChild(li); }
ws.onmessage = (e) => say(e.data);
ws.onclose = (e) => say("(closed " + e.code + ")");
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  const m = document.getElementById("m");
  if (m.value) { ws.send(m.value); say("me: " + m.value); m.value = ""; }
};
</script>
</body></html>
"#;

/// The page at `/`, the WebSocket below.
struct Root {
    children: Children,
}

impl Resource for Root {
    fn children(&self) -> Option<&Children> {
        Some(&self.children)
    }

    fn get_child(&self, name: &[u8], _request: &Request) -> Option<Rc<dyn Resource>> {
        // `/` itself (an empty segment) is this page.
        name.is_empty().then(|| Rc::new(Page) as Rc<dyn Resource>)
    }
}

struct Page;

impl Resource for Page {
    fn render_get(&self, request: &Request) -> Render {
        request.set_header("Content-Type", "text/html; charset=utf-8");
        PAGE.into()
    }
}

fn main() -> Result<(), Failure> {
    let cli = Cli::parse();
    init_logging();
    let room = Rc::new(Room::default());
    let ws = WebSocketResource::new(move |_request| {
        let id = room.next_id.get();
        room.next_id.set(id + 1);
        Some(Chatter {
            id,
            room: room.clone(),
        })
    })
    // A chat line is small: 64 KiB is plenty, and a client cannot make the server hold more.
    .with_limits(WsLimits {
        max_frame: 64 << 10,
        max_message: 64 << 10,
    });
    let root = Root {
        children: Children::new(),
    };
    root.put_child(b"ws", Rc::new(ws));
    let listening =
        reactor().listen_tcp_on(cli.port, Site::new(root), &cli.interface.to_string())?;
    println!("ws_chat listening on {}", listening.get_host());
    reactor().run()
}
