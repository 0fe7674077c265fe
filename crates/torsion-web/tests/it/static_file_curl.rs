//! `static_file::File` checked by clients nobody here wrote: curl (ranges, `-z` conditional
//! requests, `-I`, resuming with `-C -`, following the trailing-slash redirect, a large
//! download) and Python's `urllib.request` (a range, and a 304). Each client runs in its own
//! process, waited for on a thread so the reactor keeps serving meanwhile. A test whose client
//! is not installed says so and passes.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use torsion::tcp::ListeningPort;
use torsion::Failure;
use torsion_web::static_file::File;
use torsion_web::Site;

const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A served folder under the system's temporary folder, removed when dropped.
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
            "torsion-static-curl-{test}-{}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(base.join("root/sub")).unwrap();
        std::fs::create_dir_all(base.join("downloads")).unwrap();
        std::fs::write(base.join("root/digits.txt"), DIGITS).unwrap();
        std::fs::write(base.join("root/sub/index.html"), "<h1>sub</h1>").unwrap();
        std::fs::write(base.join("root/big.bin"), big_content()).unwrap();
        Fixture { base }
    }

    fn root(&self) -> PathBuf {
        self.base.join("root")
    }

    fn download(&self, name: &str) -> PathBuf {
        self.base.join("downloads").join(name)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// 3 MiB and a bit, so the body is streamed in many chunks.
fn big_content() -> Vec<u8> {
    (0..3 * 1024 * 1024 + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn listen(root: PathBuf) -> (ListeningPort, String) {
    let (port, addr) = crate::support::listen(Site::new(File::new(root)));
    (port, format!("http://{addr}"))
}

/// True when `program` runs here.
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
    let out = worker.join().expect("the runner thread");
    // Let the server see the client's connection close.
    tokio::time::sleep(Duration::from_millis(30)).await;
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status code of the last response in `curl -D -` / `-i` output.
fn last_status(headers: &str) -> u16 {
    headers
        .lines()
        .rfind(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {headers:?}"))
}

#[torsion::test]
async fn curl_fetches_a_range() -> Result<(), Failure> {
    if !installed("curl") {
        return Ok(());
    }
    let fx = Fixture::new("range");
    let (port, url) = listen(fx.root());
    let file = format!("{url}/digits.txt");
    let out = run("curl", &["-sS", "-r", "0-9", &file]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, &DIGITS[..10]);
    let out = run("curl", &["-sS", "-r", "-6", "-D", "-", &file]).await;
    let text = stdout(&out);
    assert_eq!(last_status(&text), 206, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-range: bytes 30-35/36"),
        "{text}"
    );
    assert!(text.ends_with("uvwxyz"), "{text}");
    // Two ranges: a multipart body with both parts.
    let out = run("curl", &["-sS", "-r", "0-1,10-11", "-D", "-", &file]).await;
    let text = stdout(&out);
    assert_eq!(last_status(&text), 206, "{text}");
    assert!(text.contains("multipart/byteranges; boundary="), "{text}");
    assert!(
        text.contains("Content-Range: bytes 0-1/36\r\n\r\n01\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Content-Range: bytes 10-11/36\r\n\r\nab\r\n"),
        "{text}"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn curl_resumes_a_download() -> Result<(), Failure> {
    if !installed("curl") {
        return Ok(());
    }
    let fx = Fixture::new("resume");
    let (port, url) = listen(fx.root());
    let big = big_content();
    let partial = fx.download("big.bin");
    std::fs::write(&partial, &big[..1_000_000]).unwrap();
    let target = partial.to_str().unwrap();
    let out = run(
        "curl",
        &["-sS", "-C", "-", "-o", target, &format!("{url}/big.bin")],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read(&partial).unwrap() == big,
        "the resumed file is the served file"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn curl_downloads_a_large_file_intact() -> Result<(), Failure> {
    if !installed("curl") {
        return Ok(());
    }
    let fx = Fixture::new("large");
    let (port, url) = listen(fx.root());
    let target = fx.download("big.bin");
    let out = run(
        "curl",
        &[
            "-sS",
            "-o",
            target.to_str().unwrap(),
            "-w",
            "%{http_code} %{size_download}",
            &format!("{url}/big.bin"),
        ],
    )
    .await;
    let big = big_content();
    assert_eq!(stdout(&out), format!("200 {}", big.len()));
    assert!(
        std::fs::read(&target).unwrap() == big,
        "the downloaded file is the served file"
    );
    port.stop_listening().await
}

#[torsion::test]
async fn curl_z_makes_a_conditional_request() -> Result<(), Failure> {
    if !installed("curl") {
        return Ok(());
    }
    let fx = Fixture::new("conditional");
    let (port, url) = listen(fx.root());
    let file = format!("{url}/digits.txt");
    // -z with the file itself: curl sends its modification time as If-Modified-Since.
    let served = fx.root().join("digits.txt");
    let out = run(
        "curl",
        &["-sS", "-D", "-", "-z", served.to_str().unwrap(), &file],
    )
    .await;
    let text = stdout(&out);
    assert_eq!(last_status(&text), 304, "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body: {text}");
    // -z with an older date: the file.
    let out = run(
        "curl",
        &[
            "-sS",
            "-D",
            "-",
            "-z",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            &file,
        ],
    )
    .await;
    let text = stdout(&out);
    assert_eq!(last_status(&text), 200, "{text}");
    assert!(
        text.ends_with(std::str::from_utf8(DIGITS).unwrap()),
        "{text}"
    );
    // -z with the Last-Modified date the server sent.
    let head = stdout(&run("curl", &["-sSI", &file]).await);
    let lm = head
        .lines()
        .find_map(|l| l.strip_prefix("Last-Modified: "))
        .expect("a Last-Modified")
        .trim()
        .to_owned();
    let out = run(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-z",
            &lm,
            &file,
        ],
    )
    .await;
    assert_eq!(stdout(&out), "304");
    // An ETag round trip.
    let etag_file = fx.download("etag");
    let etag_path = etag_file.to_str().unwrap();
    if run("curl", &["--help", "all"])
        .await
        .stdout
        .windows(11)
        .any(|w| w == b"--etag-save")
    {
        let out = run(
            "curl",
            &["-sS", "-o", "/dev/null", "--etag-save", etag_path, &file],
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        let out = run(
            "curl",
            &[
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--etag-compare",
                etag_path,
                &file,
            ],
        )
        .await;
        assert_eq!(stdout(&out), "304");
    }
    port.stop_listening().await
}

#[torsion::test]
async fn curl_i_shows_the_head() -> Result<(), Failure> {
    if !installed("curl") {
        return Ok(());
    }
    let fx = Fixture::new("head");
    let (port, url) = listen(fx.root());
    let out = run("curl", &["-sSI", &format!("{url}/digits.txt")]).await;
    let text = stdout(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    for line in [
        "Content-Length: 36\r\n",
        "Content-Type: text/plain\r\n",
        "Accept-Ranges: bytes\r\n",
        "ETag: \"24-",
        "Last-Modified: ",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    assert!(text.ends_with("\r\n\r\n"), "{text}");
    // The trailing-slash redirect, and curl following it.
    let out = run("curl", &["-sSI", &format!("{url}/sub")]).await;
    let text = stdout(&out);
    assert!(text.starts_with("HTTP/1.1 301 "), "{text}");
    assert!(text.contains("Location: /sub/\r\n"), "{text}");
    let out = run("curl", &["-sSL", &format!("{url}/sub")]).await;
    assert_eq!(stdout(&out), "<h1>sub</h1>");
    port.stop_listening().await
}

#[torsion::test]
async fn python_urllib_fetches_a_range_and_a_304() -> Result<(), Failure> {
    if !installed("python3") {
        return Ok(());
    }
    let fx = Fixture::new("python");
    let (port, url) = listen(fx.root());
    let script = r#"
import sys, urllib.request, urllib.error
url = sys.argv[1]
r = urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=10-19"}))
print(r.status, r.headers["Content-Range"], r.read().decode())
etag = urllib.request.urlopen(url).headers["ETag"]
try:
    urllib.request.urlopen(urllib.request.Request(url, headers={"If-None-Match": etag}))
    print("no 304")
except urllib.error.HTTPError as e:
    print(e.code, len(e.read()))
"#;
    let out = run("python3", &["-c", script, &format!("{url}/digits.txt")]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "206 bytes 10-19/36 abcdefghij\n304 0\n");
    port.stop_listening().await
}
