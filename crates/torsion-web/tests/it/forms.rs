//! Forms in request bodies, sent by clients nobody here wrote: curl `-F` (several files, a
//! big one spooled to disk, over HTTP/1.1 and HTTP/2), Python `requests` (urlencoded and
//! multipart), and raw sockets for chunked bodies and the limits (413) and malformed bodies
//! (400).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion::testing::TempDir;
use torsion::Failure;
use torsion_web::form::FormLimits;
use torsion_web::site::SiteConfig;
use torsion_web::{Render, Request, Resource, Site};

use crate::support::{exchange, listen, status_line};

/// One uploaded file as the resource saw it.
#[derive(Debug, Clone)]
struct SeenFile {
    name: String,
    filename: String,
    raw_filename: String,
    content_type: Option<String>,
    content: Vec<u8>,
    path: Option<PathBuf>,
}

/// What the last POST carried.
#[derive(Debug, Default)]
struct Seen {
    args: Vec<(String, String)>,
    files: Vec<SeenFile>,
}

/// Records each POST's args and files, and answers with a summary of them.
struct Forms(Rc<RefCell<Seen>>);

impl Resource for Forms {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["POST"]
    }
    fn render_post(&self, r: &Request) -> Render {
        let mut seen = self.0.borrow_mut();
        seen.args = r
            .args()
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        seen.files = r
            .files()
            .iter()
            .map(|f| SeenFile {
                name: f.name().to_owned(),
                filename: f.filename().to_owned(),
                raw_filename: f.raw_filename().to_owned(),
                content_type: f.content_type().map(str::to_owned),
                content: f.bytes().expect("the file reads"),
                path: f.path().map(Path::to_owned),
            })
            .collect();
        assert_eq!(
            r.file("doc").map(|f| f.name().to_owned()),
            seen.files
                .iter()
                .find(|f| f.name == "doc")
                .map(|f| f.name.clone())
        );
        let mut out = String::new();
        for (k, v) in &seen.args {
            out += &format!("arg {k}={v}\n");
        }
        for f in &seen.files {
            out += &format!(
                "file {} {} {} {}\n",
                f.name,
                f.filename,
                f.content.len(),
                f.path.is_some()
            );
        }
        out.into()
    }
}

fn site(config: SiteConfig) -> (Site, Rc<RefCell<Seen>>) {
    let seen = Rc::new(RefCell::new(Seen::default()));
    (
        Site::with_config(Rc::new(Forms(seen.clone())), config),
        seen,
    )
}

fn installed(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            format!("{program} is not installed"),
        );
    }
    ok
}

/// Runs a program to its end on another thread while the reactor keeps serving.
async fn run(program: &str, args: &[&str]) -> Output {
    let program = program.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let worker = std::thread::spawn(move || {
        Command::new(&program)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"))
    });
    while !worker.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.join().expect("the runner thread")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `n` bytes that are not all alike (and contain CR, LF and dashes, which the parser must
/// not take for a delimiter).
fn pattern(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match i % 97 {
                0 => b'\r',
                1 => b'\n',
                2 | 3 => b'-',
                _ => x as u8,
            }
        })
        .collect()
}

/// Waits (with a deadline) until none of `paths` exists: spooled files go with the request.
async fn gone(paths: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while paths.iter().any(|p| p.exists()) {
        assert!(Instant::now() < deadline, "spooled files left: {paths:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[torsion::test]
async fn curl_uploads_several_files_and_a_big_one_is_spooled_over_http1_and_http2(
) -> Result<(), Failure> {
    if !installed("curl") {
        return Ok(());
    }
    let dir = TempDir::new("forms-curl");
    let small = dir.join("small.txt");
    std::fs::write(&small, b"hello, form\r\n--not a delimiter")?;
    let big = dir.join("big.bin");
    let big_content = pattern(3 * 1024 * 1024 + 17);
    std::fs::write(&big, &big_content)?;
    let (site, seen) = site(SiteConfig::default());
    let (port, addr) = listen(site);
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let out = run(
            "curl",
            &[
                "-sS",
                version,
                "-F",
                "title=Hello world",
                "-F",
                &format!("doc=@{};type=text/plain", small.display()),
                "-F",
                &format!("big=@{}", big.display()),
                "-F",
                &format!("evil=@{};filename=../../etc/pass\u{7}wd", small.display()),
                &format!("http://{addr}/upload?from=query"),
            ],
        )
        .await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        let big_len = big_content.len();
        let n = std::fs::metadata(&small)?.len();
        assert_eq!(
            text(&out.stdout),
            format!(
                "arg from=query\narg title=Hello world\n\
                 file doc small.txt {n} false\nfile big big.bin {big_len} true\n\
                 file evil passwd {n} false\n"
            ),
            "{version}"
        );
        let spooled = check_curl_upload(&seen.borrow(), &small, &big_content, version)?;
        gone(&spooled).await;
    }
    port.stop_listening().await
}

/// Checks what the resource saw of curl's upload; the files it found spooled.
fn check_curl_upload(
    seen: &Seen,
    small: &Path,
    big_content: &[u8],
    version: &str,
) -> Result<Vec<PathBuf>, Failure> {
    {
        // Files are not in args (a difference from Twisted, whose args hold their content).
        assert!(!seen.args.iter().any(|(k, _)| k == "doc" || k == "big"));
        let files = &seen.files;
        assert_eq!(files[0].content_type.as_deref(), Some("text/plain"));
        assert_eq!(files[0].content, std::fs::read(small)?);
        assert_eq!(files[1].content, big_content, "{version}");
        assert!(files[1].path.is_some());
        assert!(
            files[2].raw_filename.starts_with("../../etc/pass"),
            "{:?}",
            files[2].raw_filename
        );
        Ok(files.iter().filter_map(|f| f.path.clone()).collect())
    }
}

/// A multipart body with `boundary` and `parts` as (name, filename, content).
fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, content) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

fn post(boundary: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST /f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

async fn send(addr: SocketAddr, request: Vec<u8>) -> String {
    exchange(addr, request).await
}

#[torsion::test]
async fn a_chunked_multipart_body_in_small_pieces_is_parsed_and_its_file_spooled(
) -> Result<(), Failure> {
    let config = SiteConfig {
        body_spool_threshold: 1000,
        forms: FormLimits {
            spool_threshold: 500,
            ..FormLimits::default()
        },
        ..SiteConfig::default()
    };
    let (site, seen) = site(config);
    let (port, addr) = listen(site);
    let content = pattern(5000);
    let body = multipart(
        "zz",
        &[("a", None, b"1"), ("f", Some("C:\\x\\y.bin"), &content)],
    );
    let mut request = b"POST /f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
        Content-Type: multipart/form-data; boundary=zz\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for piece in body.chunks(7) {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = send(addr, request).await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert!(
        response.ends_with("arg a=1\nfile f y.bin 5000 true\n"),
        "{response}"
    );
    assert_eq!(seen.borrow().files[0].content, content);
    port.stop_listening().await
}

#[torsion::test]
async fn form_limits_are_413_and_malformed_forms_400_with_a_message() -> Result<(), Failure> {
    let config = SiteConfig {
        forms: FormLimits {
            max_parts: 3,
            max_part_header: 200,
            max_field_size: 10,
            ..FormLimits::default()
        },
        ..SiteConfig::default()
    };
    let (site, seen) = site(config);
    let (port, addr) = listen(site);

    let four = multipart(
        "b",
        &[
            ("a", None, b"1"),
            ("b", None, b"2"),
            ("c", None, b"3"),
            ("d", None, b"4"),
        ],
    );
    let r = send(addr, post("b", &four)).await;
    assert_eq!(status_line(&r), "HTTP/1.1 413 Content Too Large", "{r}");
    assert!(r.contains("The form has more than 3 parts."), "{r}");

    let long = multipart("b", &[("<name>", None, b"eleven byte")]);
    let r = send(addr, post("b", &long)).await;
    assert_eq!(status_line(&r), "HTTP/1.1 413 Content Too Large", "{r}");
    // The field's name is the client's: escaped on the page.
    assert!(
        r.contains("The form field &quot;&lt;name&gt;&quot; is larger than 10 bytes."),
        "{r}"
    );

    let mut head = b"--b\r\nContent-Disposition: form-data; name=a\r\nX-Pad: ".to_vec();
    head.extend_from_slice(&[b'p'; 300]);
    head.extend_from_slice(b"\r\n\r\nx\r\n--b--\r\n");
    let r = send(addr, post("b", &head)).await;
    assert_eq!(status_line(&r), "HTTP/1.1 413 Content Too Large", "{r}");
    assert!(r.contains("headers are larger than 200 bytes"), "{r}");

    // Files are not bound by the field limit.
    let file = multipart("b", &[("f", Some("f.txt"), &[b'x'; 1000])]);
    let r = send(addr, post("b", &file)).await;
    assert_eq!(status_line(&r), "HTTP/1.1 200 OK", "{r}");
    assert_eq!(seen.borrow().files[0].content.len(), 1000);

    for (body, why) in [
        (
            &b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nnever ends"[..],
            "ended before its closing delimiter",
        ),
        (b"no boundary here", "no delimiter matches"),
        (
            b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--",
            "a part has no name",
        ),
    ] {
        let r = send(addr, post("b", body)).await;
        assert_eq!(status_line(&r), "HTTP/1.1 400 Bad Request", "{r}");
        assert!(r.contains(why), "{why}: {r}");
    }
    port.stop_listening().await
}

#[torsion::test]
async fn http2_answers_a_form_limit_with_413_too() -> Result<(), Failure> {
    if !installed("curl") {
        return Ok(());
    }
    let config = SiteConfig {
        forms: FormLimits {
            max_parts: 2,
            ..FormLimits::default()
        },
        ..SiteConfig::default()
    };
    let (site, _seen) = site(config);
    let (port, addr) = listen(site);
    let out = run(
        "curl",
        &[
            "-sS",
            "--http2-prior-knowledge",
            "-w",
            "\n%{http_code}",
            "-F",
            "a=1",
            "-F",
            "b=2",
            "-F",
            "c=3",
            &format!("http://{addr}/f"),
        ],
    )
    .await;
    let got = text(&out.stdout);
    assert!(got.ends_with("\n413"), "{got} {}", text(&out.stderr));
    assert!(got.contains("The form has more than 2 parts."), "{got}");
    port.stop_listening().await
}

/// A python with requests (made once per process), or `None`, loudly.
fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("forms-venv");
    torsion::testing::python_venv(&venv, "requests", &["requests"])
}

#[torsion::test]
async fn python_requests_posts_urlencoded_and_multipart_forms() -> Result<(), Failure> {
    let Some(py) = python() else {
        return Ok(());
    };
    let (site, seen) = site(SiteConfig::default());
    let (port, addr) = listen(site);
    let script = "import sys, requests\n\
        url = sys.argv[1]\n\
        r = requests.post(url, data={'name': 'Ada L', 'lang': 'en&fr'})\n\
        print(r.status_code, r.content.decode('utf-8'), end='')\n\
        r = requests.post(url, data={'note': 'caf\u{e9}'}, \
        files={'doc': ('r\u{e9}sum\u{e9}.txt', b'x' * 200000, 'text/plain')})\n\
        print(r.status_code, r.content.decode('utf-8'), end='')\n";
    let py = py.to_string_lossy().into_owned();
    let out = run(&py, &["-c", script, &format!("http://{addr}/form?q=1")]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "200 arg q=1\narg name=Ada L\narg lang=en&fr\n\
         200 arg q=1\narg note=caf\u{e9}\nfile doc r\u{e9}sum\u{e9}.txt 200000 true\n"
    );
    assert_eq!(seen.borrow().files[0].content, vec![b'x'; 200000]);
    port.stop_listening().await
}
