//! SMTP messages accepted per second (issue 23's benchmark): `--conns` senders, each on its
//! own connection, sending `--size`-byte messages one after another (MAIL, RCPT, DATA, the
//! body, then the next once the server said 250), the same client for every server. Raw
//! tokio on one thread, so that the load costs as little as it can.
//!
//! ```text
//! smtp_send --port 8025 --seconds 10 --conns 20 --size 10240 [--to bench@bench.test]
//!           [--messages N]
//! ```
//!
//! `--messages N` stops after N messages in all (or at `--seconds`, whichever comes first):
//! a fixed amount of work, for counting a server's instructions per message (bench/profile).
//!
//! Prints `messages N seconds S messages_per_s R`. Any reply but the expected one fails the
//! run (exit status 1) with the reply, so a server refusing the mail cannot look fast.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn main() -> ExitCode {
    let port: u16 = torsion_bench::arg("--port", 8025);
    let seconds: f64 = torsion_bench::arg("--seconds", 10.0);
    let conns: usize = torsion_bench::arg("--conns", 20);
    let size: usize = torsion_bench::arg("--size", 10240);
    let to: String = torsion_bench::arg("--to", "bench@bench.test".to_owned());
    let limit: u64 = torsion_bench::arg("--messages", 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let local = tokio::task::LocalSet::new();
    let sent = Rc::new(Cell::new(0u64));
    // Messages begun, against `--messages` (0: no limit).
    let begun = Rc::new(Budget {
        begun: Cell::new(0),
        limit,
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let body = Rc::new(message(size));
    let outcome = local.block_on(&rt, async {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (sent, body, to) = (sent.clone(), body.clone(), to.clone());
            let begun = begun.clone();
            tasks.push(tokio::task::spawn_local(async move {
                sender(port, &to, &body, deadline, &begun, &sent).await
            }));
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    });
    if let Err(e) = outcome {
        eprintln!("smtp_send: {e}");
        return ExitCode::FAILURE;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "messages {} seconds {secs:.3} messages_per_s {:.1}",
        sent.get(),
        sent.get() as f64 / secs
    );
    ExitCode::SUCCESS
}

/// A message of about `size` bytes: headers, then lines of 76 letters (none starts with a
/// dot, so no stuffing), the end-of-data marker included.
fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: load@bench.test\r\nTo: bench@bench.test\r\nSubject: bench\r\n\r\n".to_vec();
    let line = [b'x'; 76];
    while m.len() + 78 <= size {
        m.extend_from_slice(&line);
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b".\r\n");
    m
}

/// How many messages the senders may begin in all.
struct Budget {
    begun: Cell<u64>,
    /// 0: no limit.
    limit: u64,
}

impl Budget {
    /// Takes one message from the budget; false once it is spent.
    fn take(&self) -> bool {
        if self.limit != 0 && self.begun.get() >= self.limit {
            return false;
        }
        self.begun.set(self.begun.get() + 1);
        true
    }
}

/// One connection: EHLO, then messages until the deadline (or the budget is spent), then
/// QUIT.
async fn sender(
    port: u16,
    to: &str,
    body: &[u8],
    deadline: Instant,
    budget: &Budget,
    sent: &Cell<u64>,
) -> Result<(), String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    expect(&mut r, &mut line, 220).await?;
    w.write_all(b"EHLO load.bench.test\r\n")
        .await
        .map_err(|e| e.to_string())?;
    expect(&mut r, &mut line, 250).await?;
    let rcpt = format!("RCPT TO:<{to}>\r\n");
    while Instant::now() < deadline && budget.take() {
        let io = |e: std::io::Error| e.to_string();
        w.write_all(b"MAIL FROM:<load@bench.test>\r\n")
            .await
            .map_err(io)?;
        expect(&mut r, &mut line, 250).await?;
        w.write_all(rcpt.as_bytes()).await.map_err(io)?;
        expect(&mut r, &mut line, 250).await?;
        w.write_all(b"DATA\r\n").await.map_err(io)?;
        expect(&mut r, &mut line, 354).await?;
        w.write_all(body).await.map_err(io)?;
        expect(&mut r, &mut line, 250).await?;
        sent.set(sent.get() + 1);
    }
    let _ = w.write_all(b"QUIT\r\n").await;
    Ok(())
}

/// Reads one reply (its continuation lines too) and checks its code.
async fn expect(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut String,
    code: u16,
) -> Result<(), String> {
    loop {
        line.clear();
        let n = r.read_line(line).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "the server closed the connection (expected {code})"
            ));
        }
        let got: Option<u16> = line.get(..3).and_then(|c| c.parse().ok());
        if got != Some(code) {
            return Err(format!("expected {code}, got {:?}", line.trim_end()));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}
