//! The raw tokio echo server of the benchmark: a current-thread runtime, one task per
//! connection, and an 8 KiB buffer per connection for its whole life (the usual way to write
//! it, and the baseline Torsion's `echo_server` is measured against).
//!
//! ```text
//! tokio_echo --port 1033
//! ```
#![forbid(unsafe_code)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let port: u16 = torsion_bench::arg("--port", 1033);
    let rt = torsion_bench::current_thread_runtime()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("tokio_echo listening on {}", listener.local_addr()?);
        loop {
            let (mut sock, _) = match listener.accept().await {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: report and keep serving the others.
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if sock.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}
