//! `static_file::File` sends large bodies by `sendfile(2)` on plain TCP: whole files and single
//! ranges arrive intact at every size, pipelined and slowly read, and
//! `transport::file_bytes_sent` (counted on the reactor's thread, which serves and fetches
//! here) shows they went that way; small files, HEAD, several ranges, encoded responses and
//! TLS keep their own paths and send the same bytes.

use std::cell::RefCell;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::transport::file_bytes_sent;
use torsion::{factory, reactor, ConnectionEnd, Failure, Protocol, Transport};
use torsion_web::encoding::EncodingResourceWrapper;
use torsion_web::static_file::File;
use torsion_web::Site;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// `len` bytes that no shifted copy of themselves matches.
fn content(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// A folder of files of the sizes the benchmark serves and more, removed when dropped.
struct Folder(PathBuf);

/// The files: name and size.
const FILES: &[(&str, usize)] = &[
    ("empty.bin", 0),
    ("one.bin", 1),
    ("16k.bin", 16 * KIB),
    ("16k1.bin", 16 * KIB + 1),
    ("64k.bin", 64 * KIB),
    ("64k1.bin", 64 * KIB + 1),
    ("1m1.bin", MIB + 1),
    ("16m.bin", 16 * MIB),
];

impl Folder {
    fn new(test: &str) -> Folder {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "torsion-sendfile-{test}-{}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let data = content(16 * MIB);
        for (name, size) in FILES {
            std::fs::write(dir.join(name), &data[..*size]).unwrap();
        }
        // Compressible, for the encoded path.
        std::fs::write(dir.join("text.txt"), text()).unwrap();
        Folder(dir)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text() -> Vec<u8> {
    (0..40_000)
        .flat_map(|i| format!("line {i} of a text file\n").into_bytes())
        .collect()
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
}

/// One response from the front of `buf` (no body if `head_only`), and what follows it.
fn parse(buf: &[u8], head_only: bool) -> (Response, &[u8]) {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
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
    if head_only {
        return (r, rest);
    }
    let len: usize = r.header("content-length").unwrap().parse().unwrap();
    assert!(rest.len() >= len, "short body: {} of {len}", rest.len());
    r.body = rest[..len].to_vec();
    (r, &rest[len..])
}

/// Sends `request` (several, pipelined, if it holds several) and reads to the end, slowly
/// if `slow` (1 ms after every 256 KiB).
async fn fetch(addr: SocketAddr, request: &str, slow: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let (mut out, mut buf, mut since) = (Vec::new(), vec![0; 64 * KIB], 0);
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
        since += n;
        if slow && since >= 256 * KIB {
            since = 0;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n")
}

fn listen(site: Site) -> (torsion::tcp::ListeningPort, SocketAddr) {
    crate::support::listen(site)
}

#[torsion::test(timeout = 60)]
async fn large_files_go_by_sendfile_and_small_ones_are_read() -> Result<(), Failure> {
    let dir = Folder::new("sizes");
    let data = content(16 * MIB);
    let (port, addr) = listen(Site::new(File::new(dir.0.clone())));
    for (name, size) in FILES {
        let before = file_bytes_sent();
        let out = fetch(addr, &get(&format!("/{name}"), ""), false).await;
        let (r, rest) = parse(&out, false);
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
        assert!(r.body == data[..*size], "{name}: the bytes differ");
        assert!(rest.is_empty());
        // Up to 16 KiB a file is read into the response (one write); larger, sendfile.
        let by_sendfile = if *size > 16 * KIB { *size as u64 } else { 0 };
        assert_eq!(file_bytes_sent() - before, by_sendfile, "{name}");
    }
    port.stop_listening().await
}

#[torsion::test(timeout = 60)]
async fn a_single_range_goes_by_sendfile() -> Result<(), Failure> {
    let dir = Folder::new("range");
    let data = content(16 * MIB);
    let (port, addr) = listen(Site::new(File::new(dir.0.clone())));
    let (first, last) = (5 * MIB + 3, 9 * MIB + 10);
    let before = file_bytes_sent();
    let out = fetch(
        addr,
        &get("/16m.bin", &format!("Range: bytes={first}-{last}\r\n")),
        false,
    )
    .await;
    let (r, _) = parse(&out, false);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {first}-{last}/{}", 16 * MIB).as_str())
    );
    assert!(r.body == data[first..=last], "the bytes differ");
    assert_eq!(file_bytes_sent() - before, (last - first + 1) as u64);
    port.stop_listening().await
}

#[torsion::test(timeout = 60)]
async fn pipelined_requests_read_slowly_come_whole_and_in_order() -> Result<(), Failure> {
    let dir = Folder::new("pipelined");
    let data = content(16 * MIB);
    let (port, addr) = listen(Site::new(File::new(dir.0.clone())));
    // The second and third wait behind the first: their bodies start by sendfile only when
    // their turn comes.
    let requests = "GET /16m.bin HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /one.bin HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /1m1.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=10-\r\n\r\n\
                    GET /64k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let before = file_bytes_sent();
    let out = fetch(addr, requests, true).await;
    let (a, rest) = parse(&out, false);
    let (b, rest) = parse(rest, false);
    let (c, rest) = parse(rest, false);
    let (d, rest) = parse(rest, false);
    assert!(rest.is_empty());
    assert!(a.body == data[..16 * MIB], "the first body differs");
    assert_eq!(b.body, &data[..1]);
    assert_eq!(c.status, 206);
    assert!(c.body == data[10..=MIB], "the third body differs");
    assert!(d.body == data[..64 * KIB], "the fourth body differs");
    assert_eq!(
        file_bytes_sent() - before,
        (16 * MIB + MIB + 1 - 10 + 64 * KIB) as u64
    );
    port.stop_listening().await
}

#[torsion::test(timeout = 60)]
async fn head_several_ranges_and_encoded_bodies_keep_their_paths() -> Result<(), Failure> {
    let dir = Folder::new("fallbacks");
    let data = content(16 * MIB);
    let root = EncodingResourceWrapper::new(Rc::new(File::new(dir.0.clone())));
    let (port, addr) = listen(Site::new(root));
    let before = file_bytes_sent();

    let head = "HEAD /16m.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let out = fetch(addr, head, false).await;
    let (r, rest) = parse(&out, true);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some((16 * MIB).to_string().as_str())
    );
    assert!(rest.is_empty(), "HEAD sent a body");
    assert_eq!(file_bytes_sent(), before);

    // Several ranges: a multipart body with the file's bytes in each part.
    let out = fetch(
        addr,
        &get("/1m1.bin", "Range: bytes=0-99,200000-900000\r\n"),
        false,
    )
    .await;
    let (r, _) = parse(&out, false);
    assert_eq!(r.status, 206);
    let body = &r.body;
    let find = |needle: &[u8]| body.windows(needle.len()).position(|w| w == needle);
    assert!(find(&data[..100]).is_some(), "the first part is missing");
    assert!(
        find(&data[200_000..=900_000]).is_some(),
        "the second part is missing"
    );

    // Encoded: gzip is asked and the type is compressible, so the bytes are read and
    // compressed, never sent by sendfile.
    let at_encoded = file_bytes_sent();
    let out = fetch(addr, &get("/text.txt", "Accept-Encoding: gzip\r\n"), false).await;
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let body = unchunk(&out[end + 4..]);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert!(plain == text(), "the decoded bytes differ");
    assert_eq!(file_bytes_sent(), at_encoded);
    port.stop_listening().await
}

/// The body of a chunked response.
fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap(), 16).unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// Sends a GET over TLS and keeps what comes back.
struct TlsGet {
    request: String,
    got: Rc<RefCell<Vec<u8>>>,
    done: Rc<torsion::defer::DeferredQueue<()>>,
}

impl Protocol for TlsGet {
    fn connection_made(&mut self, t: &Transport) {
        t.write(self.request.as_bytes());
    }

    fn data_received(&mut self, _t: &Transport, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
    }

    fn connection_lost(&mut self, _reason: ConnectionEnd) {
        self.done.put(()).unwrap();
    }
}

#[torsion::test(timeout = 60)]
async fn tls_serves_the_same_bytes_by_reading() -> Result<(), Failure> {
    use torsion::tls::{ClientContext, Identity, ServerContext};
    let dir = Folder::new("tls");
    let data = content(16 * MIB);
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let identity = Identity::from_pem(
        made.cert.pem().as_bytes(),
        made.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let server = ServerContext::new(identity).unwrap();
    let client = ClientContext::builder()
        .trust([made.cert.der().clone()])
        .build()
        .unwrap();
    let port =
        reactor().listen_tls_on(0, Site::new(File::new(dir.0.clone())), server, "127.0.0.1")?;
    let before = file_bytes_sent();
    for (name, size) in [("1m1.bin", MIB + 1), ("16m.bin", 16 * MIB)] {
        let got: Rc<RefCell<Vec<u8>>> = Rc::default();
        let done: Rc<torsion::defer::DeferredQueue<()>> = Rc::default();
        let (g, d, request) = (got.clone(), done.clone(), get(&format!("/{name}"), ""));
        reactor().connect_tls(
            "localhost",
            port.get_host().port().unwrap(),
            factory(move || TlsGet {
                request: request.clone(),
                got: g.clone(),
                done: d.clone(),
            }),
            client.clone(),
        );
        done.get().expect("one reader").await?;
        let out = got.borrow();
        let (r, _) = parse(&out, false);
        assert_eq!(r.status, 200);
        assert!(r.body == data[..size], "{name}: the bytes differ");
    }
    assert_eq!(file_bytes_sent(), before, "TLS never uses sendfile");
    port.stop_listening().await
}
