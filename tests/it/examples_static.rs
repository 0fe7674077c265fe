//! The static_files seed program, run as a binary: seed 004's `File('.')` serving a folder.

use crate::support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;
use support::Running;

/// Sends one request with a fresh connection; returns the whole response.
fn fetch(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn static_files_serves_a_folder() {
    let dir = std::env::temp_dir().join(format!("torsion-example-static-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello world\n").unwrap();
    std::fs::write(dir.join("docs/index.html"), "<h1>docs</h1>").unwrap();

    let (_running, port) = start_static(&dir);

    let out = fetch(
        port,
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello"), "{out}");
    let out = fetch(
        port,
        "GET /docs/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(out.ends_with("<h1>docs</h1>"), "{out}");
    let out = fetch(
        port,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        out.contains("Directory listing for /") && out.contains(">hello.txt<"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts static_files on a free port serving `dir`; returns it and the port.
fn start_static(dir: &std::path::Path) -> (Running, u16) {
    let mut child = support::example("static_files")
        .args(["--port", "0", "--interface", "127.0.0.1", "--path"])
        .arg(dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cargo run starts");
    let lines = support::lines(child.stdout.take().unwrap());
    let running = Running(child);
    let line = lines
        .recv_timeout(Duration::from_secs(300))
        .expect("the example started");
    assert!(line.starts_with("static_files listening on tcp:"), "{line}");
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a port in {line:?}"));
    (running, port)
}

/// The listing as a reader sees it: Chromium renders it, names with markup or URL syntax in
/// them show as text and link to the right files, and hidden entries are not there.
#[test]
fn a_listing_renders_in_a_browser() {
    let dir = support::temp_path("browser-listing", "");
    std::fs::create_dir_all(dir.join("sub folder")).unwrap();
    std::fs::write(dir.join("a b&c.txt"), "ampersand file\n").unwrap();
    std::fs::write(dir.join("<b>bold.txt"), "markup file\n").unwrap();
    std::fs::write(dir.join(".secret"), "hidden\n").unwrap();
    let (_running, port) = start_static(&dir);

    let Some(dom) = support::browser_dom(&format!("http://127.0.0.1:{port}/")) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    assert!(dom.contains("Directory listing for /"), "{dom}");
    // The markup in a name is text in the DOM, not an element.
    assert!(dom.contains("&lt;b&gt;bold.txt"), "{dom}");
    assert!(!dom.contains("<b>bold"), "{dom}");
    assert!(dom.contains("a b&amp;c.txt"), "{dom}");
    assert!(dom.contains("sub folder/"), "{dom}");
    assert!(!dom.contains(".secret"), "{dom}");

    // Each link, followed as the browser resolves it, reaches its file.
    let href = |name: &str| -> String {
        let at = dom
            .find(&format!(">{name}<"))
            .unwrap_or_else(|| panic!("{name} in {dom}"));
        let start = dom[..at].rfind("href=\"").expect("a link") + 6;
        let end = start + dom[start..].find('"').unwrap();
        dom[start..end].replace("&amp;", "&")
    };
    for (name, body) in [
        ("a b&amp;c.txt", "ampersand file"),
        ("&lt;b&gt;bold.txt", "markup file"),
    ] {
        let url = format!("http://127.0.0.1:{port}/{}", href(name));
        let page = support::browser_dom(&url).expect("chromium ran above");
        assert!(page.contains(body), "{url}: {page}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
