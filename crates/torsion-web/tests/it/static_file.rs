//! `static_file::File` over real sockets, against a folder made for each test: index pages,
//! listings, content types, conditional requests, ranges, HEAD, streaming a large file, and
//! every way out of the root we could think of.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::tcp::ListeningPort;
use torsion::Failure;
use torsion_web::resource::Resource;
use torsion_web::resources::Data;
use torsion_web::static_file::File;
use torsion_web::Site;

const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzAB";
const BIG: usize = 5 * 1024 * 1024;
const ODD_NAME: &str = "<b>&\"x\".txt";

/// A folder under the system's temporary folder, removed when dropped:
/// `root/` is served, `outside/` is next to it.
struct Fixture {
    base: PathBuf,
}

impl Fixture {
    fn new(test: &str) -> Fixture {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let base = std::env::temp_dir().join(format!(
            "torsion-static-{test}-{}-{nanos:x}",
            std::process::id()
        ));
        let root = base.join("root");
        let w = |p: &str, data: &[u8]| std::fs::write(root.join(p), data).unwrap();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("list/nested")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("outside/secret.txt"), "TOP SECRET").unwrap();
        w("hello.txt", b"hello world\n");
        w("page.html", b"<p>page</p>");
        w("style.css", b"p {}");
        w("data.json", b"{}");
        w("image.png", b"\x89PNG\r\n\x1a\n");
        w("blob.qqqzzz", b"?");
        w("notes.md", b"# notes");
        w(".hidden", b"hidden, served only when asked");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        w(".git/config", b"[core]\n");
        w("digits.txt", DIGITS);
        w(ODD_NAME, b"odd");
        w("sub/index.html", b"<h1>sub index</h1>");
        w("list/a.txt", b"a");
        w("list/b b.txt", &[b'b'; 2048]);
        w(&format!("list/{ODD_NAME}"), b"odd");
        w("big.bin", &big_content());
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            symlink(base.join("outside/secret.txt"), root.join("leak.txt")).unwrap();
            symlink(base.join("outside"), root.join("list/outdir")).unwrap();
            symlink("hello.txt", root.join("alias.txt")).unwrap();
            symlink(
                "../../outside/secret.txt",
                root.join("sub/relative-leak.txt"),
            )
            .unwrap();
        }
        Fixture { base }
    }

    fn root(&self) -> PathBuf {
        self.base.join("root")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// 5 MiB that no shifted copy of itself matches.
fn big_content() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..BIG)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// FNV-1a, 64 bits.
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn listen(resource: impl Resource) -> (ListeningPort, std::net::SocketAddr) {
    crate::support::listen(Site::new(resource))
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from the front of `buf` (with a body unless `head_only`), and what
/// follows it.
fn parse_response(buf: &[u8], head_only: bool) -> (Response, &[u8]) {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(buf)));
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let rest = &buf[end + 4..];
    let mut r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 304 {
        return (r, rest);
    }
    let len: usize = r
        .header("content-length")
        .expect("a content-length")
        .parse()
        .unwrap();
    assert!(rest.len() >= len, "short body: {} of {len}", rest.len());
    r.body = rest[..len].to_vec();
    (r, &rest[len..])
}

/// Sends a raw request (which should ask to close) and reads until the server closes.
async fn raw(addr: std::net::SocketAddr, request: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    out
}

/// One request with `method`, `target` and extra header lines; the whole response.
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let out = raw(addr, &req).await;
    let (r, rest) = parse_response(&out, method == "HEAD");
    assert!(rest.is_empty(), "bytes after the response: {rest:?}");
    r
}

async fn get(addr: std::net::SocketAddr, target: &str) -> Response {
    request(addr, "GET", target, &[]).await
}

#[torsion::test]
async fn a_folder_with_a_trailing_slash_serves_its_index_page() -> Result<(), Failure> {
    let fx = Fixture::new("index");
    let (port, addr) = listen(File::new(fx.root()));
    let r = get(addr, "/sub/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>sub index</h1>");
    assert_eq!(r.header("content-type"), Some("text/html"));
    let r = get(addr, "/sub/index.html").await;
    assert_eq!(r.text(), "<h1>sub index</h1>");

    // Other index names, in order.
    port.stop_listening().await?;
    let (port, addr) = listen(File::new(fx.root()).index_names(["missing.html", "hello.txt"]));
    let r = get(addr, "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello world\n"));
    port.stop_listening().await
}

#[torsion::test]
async fn a_folder_without_the_slash_is_redirected_to_it() -> Result<(), Failure> {
    let fx = Fixture::new("redirect");
    let (port, addr) = listen(File::new(fx.root()));
    let r = get(addr, "/sub").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/sub/"));
    let r = get(addr, "/list/nested?x=1&y=%20").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/list/nested/?x=1&y=%20"));
    // Under a mount point the whole path is kept.
    port.stop_listening().await?;
    let root = torsion_web::resources::Directory::new();
    root.put_child(b"files", Rc::new(File::new(fx.root())));
    let (port, addr) = listen(root);
    let r = get(addr, "/files").await;
    assert_eq!((r.status, r.header("location")), (301, Some("/files/")));
    let r = get(addr, "/files/sub").await;
    assert_eq!((r.status, r.header("location")), (301, Some("/files/sub/")));
    let r = get(addr, "/files/sub/").await;
    assert_eq!(r.text(), "<h1>sub index</h1>");
    // Never to another host.
    let r = get(addr, "//files/sub").await;
    assert_ne!(
        r.header("location").map(|l| l.starts_with("//")),
        Some(true)
    );
    port.stop_listening().await
}

#[torsion::test]
async fn a_folder_without_an_index_is_listed_sorted_and_escaped() -> Result<(), Failure> {
    let fx = Fixture::new("listing");
    let (port, addr) = listen(File::new(fx.root()));
    let r = get(addr, "/list/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(page.contains("Directory listing for /list/"), "{page}");
    // Folders first, then files by name.
    let nested = page.find(">nested/<").expect("the sub-folder");
    let a = page.find(">a.txt<").expect("a.txt");
    let odd = page
        .find(">&lt;b&gt;&amp;&quot;x&quot;.txt<")
        .expect("the odd name, escaped");
    let bb = page.find(">b b.txt<").expect("b b.txt");
    assert!(nested < odd && odd < a && a < bb, "{page}");
    assert!(!page.contains("<b>&"), "raw name in the page: {page}");
    assert!(page.contains("href=\"%3Cb%3E%26%22x%22.txt\""), "{page}");
    assert!(page.contains("href=\"b%20b.txt\""), "{page}");
    assert!(page.contains("href=\"nested/\""), "{page}");
    assert!(page.contains("<td>2K</td>"), "{page}");
    assert!(page.contains("<td>1B</td>"), "{page}");
    // The link leading outside is not shown.
    assert!(!page.contains("outdir"), "{page}");
    // The links work.
    let r = get(addr, "/list/%3Cb%3E%26%22x%22.txt").await;
    assert_eq!((r.status, r.text().as_str()), (200, "odd"));
    let r = get(addr, "/list/b%20b.txt").await;
    assert_eq!((r.status, r.body.len()), (200, 2048));
    // The root is listed too.
    let page = get(addr, "/").await.text();
    assert!(page.contains(">hello.txt<"), "{page}");
    port.stop_listening().await
}

#[torsion::test]
async fn listings_can_be_turned_off() -> Result<(), Failure> {
    let fx = Fixture::new("nolisting");
    let (port, addr) = listen(File::new(fx.root()).directory_listing(false));
    let r = get(addr, "/list/").await;
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("a.txt"));
    // Index pages and files are still served.
    assert_eq!(get(addr, "/sub/").await.status, 200);
    assert_eq!(get(addr, "/list/a.txt").await.text(), "a");
    port.stop_listening().await
}

#[torsion::test]
async fn content_types_come_from_the_extension() -> Result<(), Failure> {
    let fx = Fixture::new("mime");
    let (port, addr) = listen(File::new(fx.root()).content_type("MD", "text/markdown"));
    for (path, want) in [
        ("/hello.txt", "text/plain"),
        ("/page.html", "text/html"),
        ("/style.css", "text/css"),
        ("/data.json", "application/json"),
        ("/image.png", "image/png"),
        ("/blob.qqqzzz", "application/octet-stream"),
        ("/notes.md", "text/markdown"),
        ("/big.bin", "application/octet-stream"),
    ] {
        let r = request(addr, "HEAD", path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(want), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}: browsers must not sniff another type"
        );
    }
    port.stop_listening().await?;
    let (port, addr) = listen(File::new(fx.root()).default_type("text/plain"));
    let r = get(addr, "/blob.qqqzzz").await;
    assert_eq!(r.header("content-type"), Some("text/plain"));
    port.stop_listening().await
}

#[torsion::test]
async fn files_carry_validators() -> Result<(), Failure> {
    let fx = Fixture::new("validators");
    let (port, addr) = listen(File::new(fx.root()));
    let r = get(addr, "/hello.txt").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello world\n");
    assert_eq!(r.header("content-length"), Some("12"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let meta = std::fs::metadata(fx.root().join("hello.txt")).unwrap();
    let mtime = meta.modified().unwrap();
    let nanos = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    assert_eq!(r.header("etag"), Some(format!("\"c-{nanos:x}\"").as_str()));
    assert_eq!(
        r.header("last-modified"),
        Some(torsion_web::proto::http_date(mtime).as_str())
    );
    port.stop_listening().await
}

/// Twisted serves dotfiles; Torsion answers 404 for them unless `show_hidden(true)`, so a
/// working copy served as it is does not publish `.git` (see "Differences from Twisted" in
/// docs/design.md).
#[torsion::test]
async fn hidden_entries_are_not_found_or_listed_unless_shown() -> Result<(), Failure> {
    let fx = Fixture::new("hidden");
    let (port, addr) = listen(File::new(fx.root()));
    for target in [
        "/.git/config",
        "/.git/",
        "/.git",
        "/.hidden",
        "/%2Ehidden",
        "/%2egit/config",
    ] {
        let r = get(addr, target).await;
        assert_eq!(r.status, 404, "{target}: {}", r.text());
        assert!(!r.text().contains("[core]"), "{target}");
    }
    let page = get(addr, "/").await.text();
    assert!(page.contains(">hello.txt<"), "{page}");
    assert!(!page.contains(".hidden"), "{page}");
    assert!(!page.contains(".git"), "{page}");
    // Files with a dot inside their name are not hidden.
    assert_eq!(get(addr, "/hello.txt").await.status, 200);
    port.stop_listening().await?;

    let (port, addr) = listen(File::new(fx.root()).show_hidden(true));
    let r = get(addr, "/.git/config").await;
    assert_eq!((r.status, r.text().as_str()), (200, "[core]\n"));
    let r = get(addr, "/.hidden").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hidden, served only when asked")
    );
    let page = get(addr, "/").await.text();
    assert!(
        page.contains(">.hidden<") && page.contains(">.git/<"),
        "{page}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn if_none_match_gives_304() -> Result<(), Failure> {
    let fx = Fixture::new("etag304");
    let (port, addr) = listen(File::new(fx.root()));
    let etag = get(addr, "/hello.txt")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    for value in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"nope\", {etag}"),
        "*".to_owned(),
    ] {
        let r = request(addr, "GET", "/hello.txt", &[("If-None-Match", &value)]).await;
        assert_eq!(r.status, 304, "{value}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("content-length"), None);
    }
    let r = request(addr, "GET", "/hello.txt", &[("If-None-Match", "\"nope\"")]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello world\n"));
    // If-None-Match wins over If-Modified-Since.
    let lm = get(addr, "/hello.txt")
        .await
        .header("last-modified")
        .unwrap()
        .to_owned();
    let r = request(
        addr,
        "GET",
        "/hello.txt",
        &[("If-None-Match", "\"nope\""), ("If-Modified-Since", &lm)],
    )
    .await;
    assert_eq!(r.status, 200);
    // If-Match that fails is 412.
    let r = request(addr, "GET", "/hello.txt", &[("If-Match", "\"nope\"")]).await;
    assert_eq!(r.status, 412);
    port.stop_listening().await
}

#[torsion::test]
async fn if_modified_since_gives_304() -> Result<(), Failure> {
    let fx = Fixture::new("date304");
    let (port, addr) = listen(File::new(fx.root()));
    let lm = get(addr, "/hello.txt")
        .await
        .header("last-modified")
        .unwrap()
        .to_owned();
    let r = request(addr, "GET", "/hello.txt", &[("If-Modified-Since", &lm)]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = request(
        addr,
        "GET",
        "/hello.txt",
        &[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")],
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello world\n"));
    let r = request(
        addr,
        "GET",
        "/hello.txt",
        &[("If-Modified-Since", "garbage")],
    )
    .await;
    assert_eq!(r.status, 200);
    port.stop_listening().await
}

#[torsion::test]
async fn a_single_range_gives_206() -> Result<(), Failure> {
    let fx = Fixture::new("range");
    let (port, addr) = listen(File::new(fx.root()));
    let r = request(addr, "GET", "/digits.txt", &[("Range", "bytes=0-9")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &DIGITS[..10]);
    assert_eq!(r.header("content-range"), Some("bytes 0-9/100"));
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = request(addr, "GET", "/digits.txt", &[("Range", "bytes=95-")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &DIGITS[95..]));
    assert_eq!(r.header("content-range"), Some("bytes 95-99/100"));
    let r = request(addr, "GET", "/digits.txt", &[("Range", "bytes=90-1000")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &DIGITS[90..]));
    port.stop_listening().await
}

#[torsion::test]
async fn a_suffix_range_gives_the_last_bytes() -> Result<(), Failure> {
    let fx = Fixture::new("suffix");
    let (port, addr) = listen(File::new(fx.root()));
    let r = request(addr, "GET", "/digits.txt", &[("Range", "bytes=-7")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &DIGITS[93..]);
    assert_eq!(r.header("content-range"), Some("bytes 93-99/100"));
    let r = request(addr, "GET", "/digits.txt", &[("Range", "bytes=-500")]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, DIGITS));
    assert_eq!(r.header("content-range"), Some("bytes 0-99/100"));
    port.stop_listening().await
}

/// The parts of a `multipart/byteranges` body: (Content-Range, Content-Type, data).
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    // The body starts with the first delimiter.
    assert!(
        rest.starts_with(delimiter.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(body)
    );
    rest = &rest[delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            assert_eq!(rest, b"--\r\n", "the close delimiter ends the body");
            break;
        }
        rest = rest.strip_prefix(b"\r\n").expect("CRLF after a delimiter");
        let (part, _) = parse_part(rest);
        let next = rest
            .windows(delimiter.len() + 2)
            .position(|w| w == format!("\r\n{delimiter}").as_bytes())
            .expect("another delimiter");
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        parts.push((part.0, part.1, rest[head_end..next].to_vec()));
        rest = &rest[next + 2 + delimiter.len()..];
    }
    parts
}

/// The Content-Range and Content-Type of a part's head.
fn parse_part(part: &[u8]) -> ((String, String), usize) {
    let end = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = std::str::from_utf8(&part[..end]).unwrap();
    let mut range = String::new();
    let mut ctype = String::new();
    for line in head.split("\r\n") {
        let (k, v) = line.split_once(':').unwrap();
        match k.to_ascii_lowercase().as_str() {
            "content-range" => range = v.trim().to_owned(),
            "content-type" => ctype = v.trim().to_owned(),
            _ => {}
        }
    }
    ((range, ctype), end + 4)
}

#[torsion::test]
async fn several_ranges_give_a_multipart_body() -> Result<(), Failure> {
    let fx = Fixture::new("multirange");
    let (port, addr) = listen(File::new(fx.root()));
    let r = request(
        addr,
        "GET",
        "/digits.txt",
        &[("Range", "bytes=0-4, 10-14,-3,500-")],
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), None);
    let parts = multipart_parts(r.header("content-type").unwrap(), &r.body);
    assert_eq!(
        parts,
        vec![
            (
                "bytes 0-4/100".to_owned(),
                "text/plain".to_owned(),
                DIGITS[0..5].to_vec()
            ),
            (
                "bytes 10-14/100".to_owned(),
                "text/plain".to_owned(),
                DIGITS[10..15].to_vec()
            ),
            (
                "bytes 97-99/100".to_owned(),
                "text/plain".to_owned(),
                DIGITS[97..].to_vec()
            ),
        ]
    );
    // Overlapping ranges that ask for more than the file: the whole file.
    let r = request(addr, "GET", "/digits.txt", &[("Range", "bytes=0-,0-")]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, DIGITS));
    port.stop_listening().await
}

#[torsion::test]
async fn ranges_over_a_large_file_are_streamed() -> Result<(), Failure> {
    let fx = Fixture::new("bigranges");
    let (port, addr) = listen(File::new(fx.root()));
    let big = big_content();
    let r = request(
        addr,
        "GET",
        "/big.bin",
        &[("Range", "bytes=1000-300999,4000000-4199999")],
    )
    .await;
    assert_eq!(r.status, 206);
    let parts = multipart_parts(r.header("content-type").unwrap(), &r.body);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].0, format!("bytes 1000-300999/{BIG}"));
    assert_eq!(parts[0].2, &big[1000..301_000]);
    assert_eq!(parts[1].0, format!("bytes 4000000-4199999/{BIG}"));
    assert_eq!(parts[1].2, &big[4_000_000..4_200_000]);
    let r = request(addr, "GET", "/big.bin", &[("Range", "bytes=100000-")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(checksum(&r.body), checksum(&big[100_000..]));
    port.stop_listening().await
}

#[torsion::test]
async fn ranges_outside_the_file_give_416() -> Result<(), Failure> {
    let fx = Fixture::new("416");
    let (port, addr) = listen(File::new(fx.root()));
    for range in [
        "bytes=100-",
        "bytes=100-200",
        "bytes=-0",
        "bytes=200-300,400-500",
    ] {
        let r = request(addr, "GET", "/digits.txt", &[("Range", range)]).await;
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */100"), "{range}");
    }
    port.stop_listening().await
}

#[torsion::test]
async fn malformed_ranges_are_ignored() -> Result<(), Failure> {
    let fx = Fixture::new("badrange");
    let (port, addr) = listen(File::new(fx.root()));
    for range in [
        "bytes=5-1",
        "bytes=abc",
        "lines=0-1",
        "bytes=0-1,x",
        "bytes",
    ] {
        let r = request(addr, "GET", "/digits.txt", &[("Range", range)]).await;
        assert_eq!((r.status, r.body.as_slice()), (200, DIGITS), "{range}");
        assert_eq!(r.header("content-range"), None);
    }
    port.stop_listening().await
}

#[torsion::test]
async fn if_range_applies_the_range_only_to_the_same_version() -> Result<(), Failure> {
    let fx = Fixture::new("ifrange");
    let (port, addr) = listen(File::new(fx.root()));
    let first = get(addr, "/digits.txt").await;
    let etag = first.header("etag").unwrap().to_owned();
    let lm = first.header("last-modified").unwrap().to_owned();
    for validator in [etag.as_str(), lm.as_str()] {
        let r = request(
            addr,
            "GET",
            "/digits.txt",
            &[("Range", "bytes=0-1"), ("If-Range", validator)],
        )
        .await;
        assert_eq!(
            (r.status, r.body.as_slice()),
            (206, &DIGITS[..2]),
            "{validator}"
        );
    }
    for validator in [
        "\"something-else\"",
        &format!("W/{etag}"),
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "garbage",
    ] {
        let r = request(
            addr,
            "GET",
            "/digits.txt",
            &[("Range", "bytes=0-1"), ("If-Range", validator)],
        )
        .await;
        assert_eq!((r.status, r.body.as_slice()), (200, DIGITS), "{validator}");
    }
    port.stop_listening().await
}

#[torsion::test]
async fn head_sends_the_head_of_get_without_the_body() -> Result<(), Failure> {
    let fx = Fixture::new("head");
    let (port, addr) = listen(File::new(fx.root()));
    for path in ["/hello.txt", "/big.bin", "/list/", "/sub/"] {
        let g = get(addr, path).await;
        let h = request(addr, "HEAD", path, &[]).await;
        assert_eq!(h.status, g.status, "{path}");
        for name in [
            "content-length",
            "content-type",
            "etag",
            "last-modified",
            "accept-ranges",
        ] {
            assert_eq!(h.header(name), g.header(name), "{path} {name}");
        }
    }
    let h = request(addr, "HEAD", "/big.bin", &[]).await;
    assert_eq!(h.header("content-length"), Some(BIG.to_string().as_str()));
    // A HEAD with a range answers as the GET would.
    let h = request(addr, "HEAD", "/digits.txt", &[("Range", "bytes=0-9")]).await;
    assert_eq!(h.status, 206);
    assert_eq!(h.header("content-length"), Some("10"));
    // The raw bytes end with the head.
    let out = raw(
        addr,
        "HEAD /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        out.ends_with(b"\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    // Other methods are not allowed.
    let r = request(addr, "POST", "/hello.txt", &[("Content-Length", "0")]).await;
    assert_eq!(r.status, 405);
    port.stop_listening().await
}

#[torsion::test]
async fn a_large_file_streams_whole_and_intact() -> Result<(), Failure> {
    let fx = Fixture::new("big");
    let (port, addr) = listen(File::new(fx.root()));
    let r = get(addr, "/big.bin").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(BIG.to_string().as_str()));
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.body.len(), BIG);
    assert_eq!(checksum(&r.body), checksum(&big_content()));

    // Keep-alive after a streamed body: two on one connection, read slowly.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() < 1024 * 1024 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let (first, rest) = parse_response(&out, false);
    assert_eq!(checksum(&first.body), checksum(&big_content()));
    let (second, rest) = parse_response(rest, false);
    assert_eq!(second.text(), "hello world\n");
    assert!(rest.is_empty());
    port.stop_listening().await
}

#[torsion::test]
async fn a_client_leaving_mid_stream_stops_the_stream() -> Result<(), Failure> {
    let fx = Fixture::new("leave");
    let (port, addr) = listen(File::new(fx.root()));
    {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0; 64 * 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    }
    // The server notices, stops reading the file and closes; then it serves others.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(addr, "/hello.txt").await.text(), "hello world\n");
    tokio::time::sleep(Duration::from_millis(50)).await;
    port.stop_listening().await
}

#[torsion::test]
async fn no_path_leads_out_of_the_root() -> Result<(), Failure> {
    let fx = Fixture::new("traversal");
    let (port, addr) = listen(File::new(fx.root().join("sub")));
    // From root/sub, outside/secret.txt is ../../outside/secret.txt and hello.txt is ../hello.txt.
    for target in [
        "/../hello.txt",
        "/../../outside/secret.txt",
        "/../../../../../../etc/passwd",
        "/%2e%2e/hello.txt",
        "/%2E%2E/%2e%2e/outside/secret.txt",
        "/%2e%2e/",
        "/.%2e/hello.txt",
        "/a%2f..%2f..%2fetc",
        "/..%2fhello.txt",
        "/%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",
        "/..%5chello.txt",
        "/%2e%2e%5c%2e%2e%5coutside%5csecret.txt",
        "/index.html%00",
        "/%00",
        "/index.html%00.png",
        "/./index.html/..",
        "/%2e/index.html",
        "/index.html/../../hello.txt",
        "/relative-leak.txt",
        "/%2fetc%2fpasswd",
    ] {
        let out = raw(
            addr,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        let text = String::from_utf8_lossy(&out);
        let status = &text[9..12];
        assert!(matches!(status, "400" | "403" | "404"), "{target}: {text}");
        assert!(
            !text.contains("TOP SECRET") && !text.contains("hello world"),
            "{target}: {text}"
        );
        assert!(!text.contains("root:"), "{target}: {text}");
    }
    // What is inside is served.
    assert_eq!(get(addr, "/index.html").await.status, 200);
    port.stop_listening().await
}

#[cfg(unix)]
#[torsion::test]
async fn symbolic_links_out_of_the_root_are_refused() -> Result<(), Failure> {
    let fx = Fixture::new("symlinks");
    let (port, addr) = listen(File::new(fx.root()));
    let r = get(addr, "/leak.txt").await;
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("TOP SECRET"));
    let r = get(addr, "/list/outdir/secret.txt").await;
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("TOP SECRET"));
    let r = get(addr, "/sub/relative-leak.txt").await;
    assert_eq!(r.status, 403);
    // A link that stays inside is followed.
    let r = get(addr, "/alias.txt").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello world\n"));
    port.stop_listening().await?;

    // Unless allowed.
    let (port, addr) = listen(File::new(fx.root()).allow_symlinks_outside(true));
    let r = get(addr, "/leak.txt").await;
    assert_eq!((r.status, r.text().as_str()), (200, "TOP SECRET"));
    let r = get(addr, "/list/outdir/secret.txt").await;
    assert_eq!((r.status, r.text().as_str()), (200, "TOP SECRET"));
    assert!(get(addr, "/list/").await.text().contains(">outdir/<"));
    port.stop_listening().await?;

    // A root reached through a link is fine.
    let link = fx.base.join("root-link");
    std::os::unix::fs::symlink(fx.root(), &link).unwrap();
    let (port, addr) = listen(File::new(&link));
    assert_eq!(get(addr, "/alias.txt").await.text(), "hello world\n");
    assert_eq!(get(addr, "/leak.txt").await.status, 403);
    port.stop_listening().await
}

#[torsion::test]
async fn missing_files_and_files_used_as_folders_are_404() -> Result<(), Failure> {
    let fx = Fixture::new("missing");
    let (port, addr) = listen(File::new(fx.root()));
    for target in [
        "/nope.txt",
        "/hello.txt/",
        "/hello.txt/x",
        "/sub/nope/",
        "/list/nested/x",
    ] {
        assert_eq!(get(addr, target).await.status, 404, "{target}");
    }
    port.stop_listening().await?;
    // A root that does not exist answers 404.
    let (port, addr) = listen(File::new(fx.base.join("not-there")));
    assert_eq!(get(addr, "/").await.status, 404);
    assert_eq!(get(addr, "/x").await.status, 404);
    port.stop_listening().await?;
    // A root that is one file serves it at its own path only (as in Twisted).
    let root = torsion_web::resources::Directory::new();
    root.put_child(b"hello", Rc::new(File::new(fx.root().join("hello.txt"))));
    root.put_child(b"gone", Rc::new(File::new(fx.base.join("gone.txt"))));
    let (port, addr) = listen(root);
    assert_eq!(get(addr, "/hello").await.text(), "hello world\n");
    assert_eq!(get(addr, "/hello/").await.status, 404);
    // A file that vanished after the resource was made.
    std::fs::write(fx.base.join("gone.txt"), "soon gone").unwrap();
    assert_eq!(get(addr, "/gone").await.text(), "soon gone");
    std::fs::remove_file(fx.base.join("gone.txt")).unwrap();
    assert_eq!(get(addr, "/gone").await.status, 404);
    port.stop_listening().await
}

#[cfg(unix)]
#[torsion::test]
async fn unreadable_files_are_403() -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new("perm");
    let path = fx.root().join("locked.txt");
    std::fs::write(&path, "locked").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&path).is_ok() {
        // Running as root: permissions do not stop reading; nothing to check.
        return Ok(());
    }
    let (port, addr) = listen(File::new(fx.root()));
    let r = get(addr, "/locked.txt").await;
    assert_eq!(r.status, 403);
    port.stop_listening().await
}

#[torsion::test]
async fn children_put_on_a_file_come_first() -> Result<(), Failure> {
    let fx = Fixture::new("children");
    let root = File::new(fx.root());
    root.put_child(
        b"hello.txt",
        Rc::new(Data::new("from a child", "text/plain")),
    );
    let (port, addr) = listen(root);
    assert_eq!(get(addr, "/hello.txt").await.text(), "from a child");
    assert_eq!(get(addr, "/digits.txt").await.body, DIGITS);
    port.stop_listening().await
}
