//! Any method reaches the resource (`render_method` for the ones without a `render_*` of
//! their own), `Allow` comes from what the resource says it renders, and OPTIONS is answered
//! with it: curl `-X PROPFIND` over HTTP/1.1 and HTTP/2, and raw requests.

use std::process::{Command, Output};
use std::time::Duration;

use torsion::Failure;
use torsion_web::{Render, Request, Resource, Site};

use crate::support::{exchange, listen, status_line};

/// A WebDAV-ish resource: GET, PROPFIND and MKCOL.
struct Dav;

impl Resource for Dav {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, _r: &Request) -> Render {
        "a document".into()
    }
    fn render_method(&self, method: &str, r: &Request) -> Render {
        match method {
            "PROPFIND" => {
                r.set_response_code(207);
                r.set_header("Content-Type", "application/xml; charset=utf-8");
                Render::Body(
                    format!(
                        "<multistatus xmlns=\"DAV:\" depth=\"{}\" body=\"{}\"/>",
                        r.get_header("depth").unwrap_or("-"),
                        r.content().len()
                    )
                    .into_bytes(),
                )
            }
            "MKCOL" => {
                r.set_response_code(201);
                Render::Body(Vec::new())
            }
            _ => Render::NotAllowed,
        }
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "PROPFIND", "MKCOL"]
    }
}

/// A resource that answers OPTIONS itself (CORS preflight, say).
struct OwnOptions;

impl Resource for OwnOptions {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_options(&self, r: &Request) -> Render {
        r.set_response_code(204);
        r.set_header("Access-Control-Allow-Methods", "GET");
        Render::Body(Vec::new())
    }
}

async fn run(program: &str, args: &[&str]) -> Option<Output> {
    if Command::new(program).arg("--version").output().is_err() {
        torsion::testing::skip(
            torsion::testing::Missing::Peer,
            format!("{program} is not installed"),
        );
        return None;
    }
    let program = program.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let worker = std::thread::spawn(move || Command::new(&program).args(&args).output().unwrap());
    while !worker.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Some(worker.join().unwrap())
}

#[torsion::test]
async fn curl_propfind_reaches_the_resource_over_http1_and_http2() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(Dav));
    let url = format!("http://{addr}/doc");
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let Some(out) = run(
            "curl",
            &[
                "-sS",
                version,
                "-X",
                "PROPFIND",
                "-H",
                "Depth: 1",
                "-d",
                "<propfind/>",
                "-w",
                "\n%{http_code}",
                &url,
            ],
        )
        .await
        else {
            return port.stop_listening().await;
        };
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "<multistatus xmlns=\"DAV:\" depth=\"1\" body=\"11\"/>\n207",
            "{version}: {out:?}"
        );
        // A method it does not render: 405, with what it does.
        let out = run(
            "curl",
            &[
                "-sS",
                version,
                "-X",
                "LOCK",
                "-D",
                "-",
                "-o",
                "/dev/null",
                &url,
            ],
        )
        .await
        .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(head.contains(" 405"), "{version}: {head}");
        assert!(
            head.contains("allow: get, head, propfind, mkcol, options\r\n"),
            "{version}: {head}"
        );
    }
    port.stop_listening().await
}

#[torsion::test]
async fn extension_methods_are_case_sensitive_tokens() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(Dav));
    let out = exchange(
        addr,
        "MKCOL /new HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&out), "HTTP/1.1 201 Created", "{out}");
    let out = exchange(
        addr,
        "mkcol /new HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        status_line(&out),
        "HTTP/1.1 405 Method Not Allowed",
        "{out}"
    );
    assert!(out.contains("with the method \"mkcol\""), "{out}");
    port.stop_listening().await
}

/// Twisted answers OPTIONS 405 when the resource has no `render_OPTIONS`, and a method other
/// than GET, HEAD and POST that the resource does not render 501; Torsion answers OPTIONS
/// with the `Allow` list and every unrendered method 405 (docs/design.md, "Differences from
/// Twisted").
#[torsion::test]
async fn options_is_answered_with_allow_and_unrendered_methods_are_405() -> Result<(), Failure> {
    let (port, addr) = listen(Site::new(Dav));
    let out = exchange(
        addr,
        "OPTIONS /doc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&out), "HTTP/1.1 200 OK", "{out}");
    assert!(
        out.contains("Allow: GET, HEAD, PROPFIND, MKCOL, OPTIONS\r\n"),
        "{out}"
    );
    assert!(out.contains("Content-Length: 0\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "{out}");
    // Twisted: 501 "Huh?".
    let out = exchange(
        addr,
        "BREW /doc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        status_line(&out),
        "HTTP/1.1 405 Method Not Allowed",
        "{out}"
    );
    port.stop_listening().await?;
    // A resource that renders OPTIONS itself keeps its answer.
    let (port, addr) = listen(Site::new(OwnOptions));
    let out = exchange(
        addr,
        "OPTIONS / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&out), "HTTP/1.1 204 No Content", "{out}");
    assert!(
        out.contains("Access-Control-Allow-Methods: GET\r\n"),
        "{out}"
    );
    assert!(!out.contains("Allow: GET"), "{out}");
    // A default resource allows GET and HEAD (and OPTIONS).
    let out = exchange(
        addr,
        "DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        status_line(&out),
        "HTTP/1.1 405 Method Not Allowed",
        "{out}"
    );
    assert!(out.contains("Allow: GET, HEAD, OPTIONS\r\n"), "{out}");
    port.stop_listening().await
}
