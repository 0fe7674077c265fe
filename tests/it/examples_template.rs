//! The template_page example, run as a binary: its page streams (the head before the
//! widget list's Deferred fires), and in headless Chromium the DOM holds the list, the
//! hostile widget name as text, and links that reach each widget's page.

use crate::support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::Running;

/// Starts template_page on a free port with the list `delay` seconds late; returns it and
/// the port.
fn start(delay: &str) -> (Running, u16) {
    let mut child = support::example("template_page")
        .args(["--port", "0", "--delay", delay])
        .stdout(Stdio::piped())
        .spawn()
        .expect("cargo run starts");
    let lines = support::lines(child.stdout.take().unwrap());
    let running = Running(child);
    let line = lines
        .recv_timeout(Duration::from_secs(300))
        .expect("the example started");
    assert!(
        line.starts_with("template_page listening on tcp:"),
        "{line}"
    );
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("a port in {line:?}"));
    (running, port)
}

#[test]
fn the_page_head_arrives_before_the_widget_list() {
    let (_running, port) = start("3");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains("<h1>Widgets</h1>") {
        let n = s.read(&mut buf).expect("the head arrives");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    let head_after = started.elapsed();
    let head = String::from_utf8_lossy(&out).into_owned();
    assert!(
        head_after < Duration::from_secs(2),
        "the head took {head_after:?}"
    );
    assert!(
        !head.contains("gadget"),
        "the list came with the head: {head}"
    );
    s.read_to_end(&mut out).unwrap();
    let all = String::from_utf8_lossy(&out);
    assert!(
        all.contains(r#"<li class="widget"><a href="/widget/gadget">gadget</a></li>"#),
        "{all}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "the list came before its delay"
    );
}

#[test]
fn the_page_renders_in_a_browser() {
    let (_running, port) = start("0.2");
    let Some(dom) = support::browser_dom(&format!("http://127.0.0.1:{port}/")) else {
        return;
    };
    assert!(dom.contains("<title>Widgets</title>"), "{dom}");
    assert!(dom.contains("<h1>Widgets</h1>"), "{dom}");
    for name in ["gadget", "contraption", "gizmo", "doohickey"] {
        assert!(
            dom.contains(&format!(
                r#"<li class="widget"><a href="/widget/{name}">{name}</a></li>"#
            )),
            "{name} in {dom}"
        );
    }
    // The hostile name is text in the DOM: no script element ran and changed the title.
    assert!(
        dom.contains(
            r#"<a href="/widget/script">&lt;script&gt;document.title="pwned"&lt;/script&gt;</a>"#
        ),
        "{dom}"
    );
    assert!(!dom.contains("pwned</title>"), "{dom}");
    assert_eq!(dom.matches("<script").count(), 0, "{dom}");
    assert!(
        dom.contains(r#"<footer><small>Rendered by <a href="https://twisted.org/">Torsion</a></small></footer>"#),
        "{dom}"
    );

    // A link, followed as the browser resolves it, reaches its widget's page.
    let page = support::browser_dom(&format!("http://127.0.0.1:{port}/widget/gizmo"))
        .expect("chromium ran above");
    assert!(page.contains(r#"<h1 class="widget">gizmo</h1>"#), "{page}");
}
