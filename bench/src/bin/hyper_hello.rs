//! The hyper 1.x hello server of the benchmark: HTTP/1.1 with keep-alive on a current-thread
//! runtime, answering every request with the page `examples/hello_web.rs` renders.
//!
//! ```text
//! hyper_hello --port 8880 [--pipeline-flush]
//! ```
//!
//! `--pipeline-flush` turns on hyper's `http1::Builder::pipeline_flush` (off by default, marked
//! experimental by hyper): responses to requests pipelined in one read leave in one write
//! instead of one write each. Scenario 14 of `bench/run` runs both settings.
#![forbid(unsafe_code)]

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn hello(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(
        torsion_bench::HELLO_PAGE.as_bytes(),
    )));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html"),
    );
    Ok(resp)
}

fn main() -> std::io::Result<()> {
    let port: u16 = torsion_bench::arg("--port", 8880);
    let pipeline_flush = torsion_bench::flag("--pipeline-flush");
    let rt = torsion_bench::current_thread_runtime()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("hyper_hello listening on {}", listener.local_addr()?);
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(pair) => pair,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let conn = http1::Builder::new()
                    .pipeline_flush(pipeline_flush)
                    .serve_connection(TokioIo::new(sock), service_fn(hello));
                if let Err(e) = conn.await {
                    if !e.is_incomplete_message() {
                        eprintln!("connection error: {e}");
                    }
                }
            });
        }
    })
}
