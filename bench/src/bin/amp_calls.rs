//! AMP calls per second over one connection (issue 21's benchmark): a Torsion AMP server
//! answering `Sum`, and a load client (raw tokio, the same for every server) that keeps
//! `--inflight` calls outstanding on one connection and counts answers.
//!
//! ```text
//! amp_calls server --port 1040
//! amp_calls client --port 1040 --seconds 10 --inflight 100 [--calls N]
//! amp_calls torsion-client --port 1040 --seconds 10 --inflight 100 [--calls N]
//! ```
//!
//! `torsion-client` does what `client` does with Torsion's own AMP client (`call_remote`,
//! a typed Deferred per call), so `bench/profile` can count what a call costs the calling
//! side too. Both clients print `calls N seconds S calls_per_s R`. With `--calls N` it stops after
//! exactly N answers (or at `--seconds`, whichever comes first), which is what
//! `bench/profile` needs to count instructions per call as the difference of two fixed runs. It parses answers as boxes (lengths
//! only, no allocation per box) and asks a new question per answer, so the server always has
//! `--inflight` questions to answer.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use torsion::defer::{ensure_deferred, Deferred, Trigger};
use torsion::endpoints::client_from_string;
use torsion::task::react;
use torsion::{factory, Failure};
use torsion_amp::{command, Amp, AmpSender, Locator, RemoteError};

command! {
    /// `Sum(a, b) -> total`, Twisted's howto command.
    pub struct Sum { a: i64, b: i64 }
    response SumResult { total: i64 }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = torsion_bench::arg("--port", 1040);
    match args.get(1).map(String::as_str) {
        Some("server") => server(port),
        Some("client") => client(
            port,
            torsion_bench::arg("--seconds", 10.0),
            torsion_bench::arg("--inflight", 100),
            torsion_bench::arg("--calls", u64::MAX),
        ),
        Some("torsion-client") => torsion_client(
            port,
            torsion_bench::arg("--seconds", 10.0),
            torsion_bench::arg("--inflight", 100),
            torsion_bench::arg("--calls", u64::MAX),
        ),
        _ => {
            eprintln!(
                "usage: amp_calls server|client|torsion-client --port P [--seconds S] \
                 [--inflight N] [--calls N]"
            );
            std::process::exit(2)
        }
    }
}

fn server(port: u16) -> std::io::Result<()> {
    let r = torsion::Reactor::new();
    let locator = || {
        Locator::new().responder(|c: Sum, _| Ok::<_, RemoteError>(SumResult { total: c.a + c.b }))
    };
    let listening = r
        .listen_tcp_on(
            port,
            torsion::factory(move || Amp::new(locator())),
            "127.0.0.1",
        )
        .map_err(|f| std::io::Error::other(f.to_string()))?;
    println!(
        "torsion amp listening on {}",
        listening.get_host().port().unwrap_or(port)
    );
    r.run().map_err(|f| std::io::Error::other(f.to_string()))
}

/// One `Sum` question with tag `tag` (keys sorted, as Twisted writes them): the tag in hex,
/// as Twisted writes it, then the same bytes for every question (no formatting per call: the
/// client's own cost per call sets the calls/s measured as much as the server's does).
fn question(out: &mut Vec<u8>, tag: u64) {
    const REST: &[u8] =
        b"\x00\x08_command\x00\x03Sum\x00\x01a\x00\x0213\x00\x01b\x00\x0281\x00\x00";
    let mut hex = [0u8; 16];
    let mut at = hex.len();
    let mut n = tag;
    loop {
        at -= 1;
        hex[at] = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(b"\x00\x04_ask\x00");
    out.push((hex.len() - at) as u8);
    out.extend_from_slice(&hex[at..]);
    out.extend_from_slice(REST);
}

fn client(port: u16, seconds: f64, inflight: usize, calls: u64) -> std::io::Result<()> {
    let rt = torsion_bench::current_thread_runtime()?;
    rt.block_on(async move {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).await?;
        sock.set_nodelay(true)?;
        // `tag` counts the questions asked: never more than `calls`.
        let mut tag = 0u64;
        let mut out = Vec::new();
        for _ in 0..(inflight as u64).min(calls) {
            tag += 1;
            question(&mut out, tag);
        }
        sock.write_all(&out).await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        // Parser state: expecting a key (true) or a value (false).
        let mut expect_key = true;
        let mut answers = 0u64;
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(seconds);
        loop {
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::other("server closed the connection"));
            }
            pending.extend_from_slice(&buf[..n]);
            let mut pos = 0;
            let mut done_now = 0;
            while pending.len() - pos >= 2 {
                let len = usize::from(u16::from_be_bytes([pending[pos], pending[pos + 1]]));
                if pending.len() - pos < 2 + len {
                    break;
                }
                pos += 2 + len;
                if expect_key && len == 0 {
                    done_now += 1;
                } else {
                    expect_key = !expect_key;
                }
            }
            pending.drain(..pos);
            answers += done_now;
            if answers >= calls || Instant::now() >= end {
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "calls {answers} seconds {secs:.3} calls_per_s {:.0}",
                    answers as f64 / secs
                );
                return Ok(());
            }
            out.clear();
            for _ in 0..done_now.min(calls - tag) {
                tag += 1;
                question(&mut out, tag);
            }
            sock.write_all(&out).await?;
        }
    })
}

/// The state of a `torsion-client` run.
struct Run {
    sender: AmpSender,
    calls: u64,
    asked: Cell<u64>,
    answered: Cell<u64>,
    start: Instant,
    end: Instant,
    /// Fired once the run is over: with the error if a call failed.
    done: RefCell<Option<Trigger<()>>>,
}

impl Run {
    /// Calls `Sum` once more; its answer counts and asks the next question, until `calls`
    /// answers have come or the time is up (looked at every 100 answers).
    fn ask(me: &Rc<Run>) {
        me.asked.set(me.asked.get() + 1);
        let run = me.clone();
        let answer = me.sender.call_remote(Sum { a: 13, b: 81 });
        drop(answer.add_both(move |out| {
            let answered = run.answered.get() + 1;
            run.answered.set(answered);
            let over = answered >= run.calls || answered % 100 == 0 && Instant::now() >= run.end;
            match out {
                Ok(SumResult { total: 94 }) if !over => {
                    if run.asked.get() < run.calls {
                        Run::ask(&run);
                    }
                }
                Ok(SumResult { total: 94 }) => run.finish(Ok(())),
                Ok(other) => run.finish(Err(Failure::new(std::io::Error::other(format!(
                    "Sum(13, 81) answered {}",
                    other.total
                ))))),
                Err(failure) => run.finish(Err(failure)),
            }
            Ok::<(), Failure>(())
        }));
    }

    fn finish(&self, out: Result<(), Failure>) {
        let Some(done) = self.done.borrow_mut().take() else {
            return;
        };
        if out.is_ok() {
            let secs = self.start.elapsed().as_secs_f64();
            let answers = self.answered.get();
            println!(
                "calls {answers} seconds {secs:.3} calls_per_s {:.0}",
                answers as f64 / secs
            );
        }
        let _ = match out {
            Ok(()) => done.try_callback(()),
            Err(failure) => done.try_errback(failure),
        };
    }
}

/// The `client` run with Torsion's AMP client: `inflight` calls of `Sum` outstanding.
fn torsion_client(port: u16, seconds: f64, inflight: usize, calls: u64) -> std::io::Result<()> {
    let code = react(move |r| {
        let r = r.clone();
        ensure_deferred(async move {
            let endpoint = client_from_string(&r, &format!("tcp:127.0.0.1:{port}"))?;
            let conn = endpoint
                .connect_deferred(factory(|| Amp::new(Locator::new())))
                .await?;
            let _ = conn.transport().set_tcp_no_delay(true);
            let finished = Deferred::<()>::new();
            let start = Instant::now();
            let run = Rc::new(Run {
                sender: conn.protocol().borrow().sender(),
                calls,
                asked: Cell::new(0),
                answered: Cell::new(0),
                start,
                end: start + Duration::from_secs_f64(seconds),
                done: RefCell::new(Some(finished.trigger())),
            });
            for _ in 0..(inflight as u64).min(calls) {
                Run::ask(&run);
            }
            finished.await?;
            conn.transport().lose_connection();
            Ok::<(), Failure>(())
        })
    });
    if code == ExitCode::SUCCESS {
        Ok(())
    } else {
        Err(std::io::Error::other("the Torsion AMP client failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::question;
    use torsion_amp::AmpBox;

    #[test]
    fn a_question_is_the_box_torsion_and_twisted_write() {
        for (tag, hex) in [(1, "1"), (0xabc, "abc"), (u64::MAX, "ffffffffffffffff")] {
            let mut out = Vec::new();
            question(&mut out, tag);
            let b: AmpBox = [("_ask", hex), ("_command", "Sum"), ("a", "13"), ("b", "81")]
                .into_iter()
                .collect();
            assert_eq!(out, b.to_bytes().unwrap());
        }
    }
}
