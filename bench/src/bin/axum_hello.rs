//! The axum hello server of the benchmark: one route on a current-thread runtime, answering
//! with the page `examples/hello_web.rs` renders.
//!
//! ```text
//! axum_hello --port 8880
//! ```
#![forbid(unsafe_code)]

use axum::response::Html;
use axum::routing::get;
use axum::Router;

fn main() -> std::io::Result<()> {
    let port: u16 = torsion_bench::arg("--port", 8880);
    let rt = torsion_bench::current_thread_runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("axum_hello listening on {}", listener.local_addr()?);
        let app = Router::new().fallback(get(|| async { Html(torsion_bench::HELLO_PAGE) }));
        axum::serve(listener, app).await
    })
}
