//! Criterion micro-benchmarks of Torsion's hot paths, so that regressions show in review:
//! a Deferred chain, timer insert and cancel, LineReceiver parsing, and HTTP request-head
//! parsing in torsion-web's `proto` module.
//!
//! ```text
//! cargo bench -p torsion-bench --bench hot_paths
//! ```
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::testing::{Clock, StringTransport};
use torsion::{Deferred, Protocol};
use torsion_web::proto::{parse_request_head, Limits};

fn deferred_chain(c: &mut Criterion) {
    c.bench_function("deferred: 10 callbacks, created and fired", |b| {
        b.iter(|| {
            let d: Deferred<u64> = Deferred::new();
            let fire = d.trigger();
            let mut d = d;
            for _ in 0..10 {
                d = d.add_callback(|x| x + 1);
            }
            fire.callback(black_box(1));
            d.result()
        })
    });
}

fn timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("timers");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("call_later then cancel, 1000 at a time", |b| {
        let clock = Clock::new();
        let mut calls = Vec::with_capacity(1000);
        b.iter(|| {
            for i in 0..1000 {
                calls.push(clock.call_later(60.0 + f64::from(i), || ()));
            }
            for call in calls.drain(..) {
                call.cancel().expect("a pending call cancels");
            }
            // Cancelled calls leave the heap lazily; advancing past them collects them.
            clock.advance(3600.0);
        })
    });
    g.finish();
}

/// Counts lines, as the cheapest possible handler.
struct Count(u64);

impl LineReceiver for Count {
    fn line_received(&mut self, _t: &mut LineTransport<'_>, line: &[u8]) {
        self.0 += line.len() as u64 + 1;
    }
}

fn line_receiver(c: &mut Criterion) {
    let line = b"PRIVMSG #torsion :a line of an ordinary chat protocol\r\n";
    let data: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(line.len() * 100)
        .collect();
    let mut g = c.benchmark_group("line_receiver");
    g.throughput(Throughput::Bytes(data.len() as u64));
    let st = StringTransport::new();
    let t = st.transport();
    g.bench_function("100 lines in one read", |b| {
        let mut p = Lines::new(Count(0));
        b.iter(|| p.data_received(&t, black_box(&data)))
    });
    // The same bytes split at an awkward place, so a partial line is kept between reads.
    g.bench_function("100 lines split across two reads", |b| {
        let mut p = Lines::new(Count(0));
        let (a, rest) = data.split_at(data.len() / 2 + 7);
        b.iter(|| {
            p.data_received(&t, black_box(a));
            p.data_received(&t, black_box(rest));
        })
    });
    g.finish();
}

fn http_parse(c: &mut Criterion) {
    let wrk = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    let browser = b"GET /static/app.css?v=3 HTTP/1.1\r\nHost: example.com\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
        Accept: text/css,*/*;q=0.1\r\nAccept-Language: en-US,en;q=0.5\r\n\
        Accept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n\
        Referer: https://example.com/\r\nCookie: session=0123456789abcdef\r\n\r\n";
    let limits = Limits::default();
    let mut g = c.benchmark_group("http_parse");
    for (name, head) in [
        ("wrk's request", &wrk[..]),
        ("a browser's request", &browser[..]),
    ] {
        g.throughput(Throughput::Bytes(head.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                parse_request_head(black_box(head), &limits)
                    .expect("valid")
                    .expect("complete")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, deferred_chain, timers, line_receiver, http_parse);
criterion_main!(benches);
