//! `Agent::with_content_decoding`: gzip, deflate (zlib) and br bodies, stacked, decoded; and
//! the bounds against decompression bombs (the expansion ratio, and the decoded-size limit
//! that also holds for streamed bodies).

use std::io::Write;
use std::rc::Rc;

use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use torsion::{reactor, Failure};
use torsion_web::client::{read_body, Agent, ContentDecodingError, MAX_EXPANSION};
use torsion_web::resources::Directory;
use torsion_web::{Render, Request, Resource, Site};

/// Answers `body` labelled `Content-Encoding: coding`, and echoes the request's
/// `Accept-Encoding` in `X-Accept`.
struct Encoded {
    coding: &'static str,
    body: Vec<u8>,
}

impl Resource for Encoded {
    fn is_leaf(&self) -> bool {
        true
    }

    fn render_get(&self, r: &Request) -> Render {
        let accept = r.get_header("accept-encoding").unwrap_or("-").to_owned();
        r.set_header("X-Accept", accept);
        r.set_header("Content-Encoding", self.coding);
        self.body.clone().into()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

/// Bytes that hardly compress (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 2463534242;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn serve(
    children: Vec<(&'static str, &'static str, Vec<u8>)>,
) -> (torsion::tcp::ListeningPort, String) {
    let root = Directory::new();
    for (name, coding, body) in children {
        root.put_child(name.as_bytes(), Rc::new(Encoded { coding, body }));
    }
    let port = reactor()
        .listen_tcp_on(0, Site::new(root), "127.0.0.1")
        .unwrap();
    let base = format!("http://127.0.0.1:{}", port.get_host().port().unwrap());
    (port, base)
}

#[torsion::test]
async fn br_deflate_and_stacked_codings_are_decoded() -> Result<(), Failure> {
    let text = b"the quick brown fox jumps over the lazy dog\n".repeat(500);
    let (port, base) = serve(vec![
        ("br", "br", br(&text)),
        ("deflate", "deflate", deflate(&text)),
        ("stacked", "br, gzip", gzip(&br(&text))),
        ("unknown", "zstd, gzip", gzip(b"still zstd")),
        ("bad", "br", b"not brotli at all".to_vec()),
    ]);
    let agent = Agent::new().with_content_decoding();
    for name in ["br", "deflate", "stacked"] {
        let response = agent.get(&format!("{base}/{name}")).await?;
        assert_eq!(
            response.headers.get_str("x-accept"),
            Some("gzip, deflate, br")
        );
        assert_eq!(response.headers.get_str("content-encoding"), None, "{name}");
        assert_eq!(read_body(response).await?, text, "{name}");
    }
    // A coding it does not know stops decoding there, and stays in the header.
    let response = agent.get(&format!("{base}/unknown")).await?;
    assert_eq!(response.headers.get_str("content-encoding"), Some("zstd"));
    assert_eq!(read_body(response).await?, b"still zstd");
    // Malformed brotli fails the body, never panics.
    let response = agent.get(&format!("{base}/bad")).await?;
    let f = read_body(response).await.unwrap_err();
    assert!(f.check::<ContentDecodingError>(), "{f}");
    // with_gzip alone asks for and decodes gzip only.
    let gz_only = Agent::new().with_gzip();
    let response = gz_only.get(&format!("{base}/br")).await?;
    assert_eq!(response.headers.get_str("x-accept"), Some("gzip"));
    assert_eq!(response.headers.get_str("content-encoding"), Some("br"));
    drop(read_body(response).await?);
    agent.close_cached_connections().await?;
    gz_only.close_cached_connections().await?;
    port.stop_listening().await
}

#[torsion::test(timeout = 300)]
async fn decompression_bombs_fail_early_whole_or_streamed() -> Result<(), Failure> {
    // 256 MiB of zeros in a few hundred bytes of brotli.
    let bomb = br(&vec![0u8; 256 << 20]);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    // 8 MiB of zeros in gzip: about deflate's best ratio, which is allowed.
    let zeros = gzip(&vec![0u8; 8 << 20]);
    let (port, base) = serve(vec![
        ("bomb", "br", bomb.clone()),
        ("zeros", "gzip", zeros),
        ("noise", "gzip", gzip(&noise(3 << 20))),
    ]);
    // Even with no body limit to speak of, the bomb is refused by its expansion.
    let agent = Agent::new().with_content_decoding().with_max_body(u64::MAX);
    let f = read_body(agent.get(&format!("{base}/bomb")).await?)
        .await
        .unwrap_err();
    let e = f
        .downcast_ref::<ContentDecodingError>()
        .unwrap_or_else(|| panic!("{f}"));
    assert!(e.to_string().contains("decompression bomb"), "{e}");
    // Streamed too, and well before the 256 MiB: at most the allowance and the ratio.
    let body = agent.get(&format!("{base}/bomb")).await?.stream();
    let mut total = 0u64;
    let failure = loop {
        match body.next_chunk().await {
            Ok(Some(chunk)) => total += chunk.len() as u64,
            Ok(None) => panic!("the bomb was decoded whole: {total} bytes"),
            Err(f) => break f,
        }
    };
    assert!(failure.check::<ContentDecodingError>(), "{failure}");
    assert!(
        total <= (1 << 20) + bomb.len() as u64 * MAX_EXPANSION,
        "{total} bytes decoded"
    );
    // Legitimately compressible data (about 1000:1) passes.
    let zeros = read_body(agent.get(&format!("{base}/zeros")).await?).await?;
    assert_eq!(zeros.len(), 8 << 20);
    // The decoded-size limit holds for streams, which have no body limit.
    let small = Agent::new()
        .with_content_decoding()
        .with_max_decoded(1 << 20);
    let body = small.get(&format!("{base}/noise")).await?.stream();
    let failure = loop {
        match body.next_chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("3 MiB decoded past a 1 MiB limit"),
            Err(f) => break f,
        }
    };
    assert!(
        failure.to_string().contains("passed 1048576 bytes"),
        "{failure}"
    );
    agent.close_cached_connections().await?;
    small.close_cached_connections().await?;
    port.stop_listening().await
}
