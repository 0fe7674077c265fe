"""Writes docs/benchmarks.md and docs/benchmarks.png from a bench/run results file.

    python report.py --results R.tsv --meta M.tsv --notes N.txt --md OUT.md --png OUT.png [--quick]

results: scenario, contender, run, metric, value (tab-separated), one line per figure;
the report quotes the median of the runs. meta: key, value. notes: one line each.
The chart needs matplotlib; without it a full run fails and a quick run notes its absence.
"""
import argparse
import os
import re as regex
import statistics
import sys
from collections import defaultdict

SCENARIOS = [
    ("echo50", "1. TCP echo, 50 connections, 64 B ping-pong", "msgs/s", "µs per message"),
    ("echo1", "1. TCP echo, 1 connection (latency), 64 B", "msgs/s", "µs per message"),
    ("http", "2. HTTP hello, keep-alive, wrk -t1 -c50", "req/s", "µs per request"),
    ("static1k", "3. Static file, 1 KiB, wrk -t1 -c50", "req/s", "µs per request"),
    ("static64k", "3. Static file, 64 KiB, wrk -t1 -c50", "req/s", "µs per request"),
    ("static1m", "3. Static file, 1 MiB, wrk -t1 -c50", "req/s", "µs per request"),
    ("static16m", "3. Static file, 16 MiB, wrk -t1 -c50", "req/s", "µs per request"),
    ("workers", "6. torsiond web --workers 2 against --workers 1 (1 KiB-ish index.html)", "req/s",
     "µs per request"),
    ("https", "13. HTTPS hello page (/index.html), TLS 1.3, wrk -t1 -c50", "req/s",
     "µs per request"),
    ("https1m", "13. HTTPS static file, 1 MiB, TLS 1.3, wrk -t1 -c50", "req/s", "µs per request"),
]

LABELS = {
    "torsion": "Torsion", "tokio": "raw tokio", "twisted": "Twisted", "node": "Node",
    "hyper": "hyper", "hyper-pf": "hyper, pipeline_flush", "axum": "axum", "nginx": "nginx",
    "torsion-echo": "Torsion echo_server", "torsion-web": "Torsion hello_web",
    "twisted-echo": "Twisted echo", "twisted-web": "twisted.web",
    "workers-1": "torsiond --workers 1", "workers-2": "torsiond --workers 2",
    "dnsmasq": "dnsmasq",
}

# Scenario 8 names the servers by their command.
DNS_LABELS = {"torsion": "torsiond dns", "twisted": "twistd dns", "dnsmasq": "dnsmasq",
              "floor": "floor (dns_floor)"}
MAIL_LABELS = {"torsion": "torsiond mail", "twisted": "Twisted ESMTP", "aiosmtpd": "aiosmtpd"}

CONTENDER_NOTES = {
    "echo50": "Torsion: examples/echo_server.rs; raw tokio: bench/src/bin/tokio_echo.rs (8 KiB "
              "buffer per connection); Twisted: epoll reactor; Node: `net`.",
    "http": "Torsion: examples/hello_web.rs (a leaf Resource in a Site); hyper 1.x and axum on a "
            "current-thread runtime (bench/src/bin); twisted.web Site without access log; nginx "
            "`return 200`; Node `http`.",
    "static1k": "Torsion: `torsiond web --path`; nginx with one worker process and sendfile on; "
                "`twistd -n web --path` (which writes its access log).",
    "https": "Torsion: `torsiond web --path --listen ssl:PORT:privateKey=…:certKey=…` (rustls, "
             "ring provider); nginx with one worker process, `ssl_protocols TLSv1.3`, "
             "`ssl_session_cache`, `ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256`. The "
             "same self-signed ECDSA P-256 certificate; wrk (OpenSSL) offers only "
             "TLS_AES_128_GCM_SHA256, since Torsion's TLS settings cannot restrict suites (the "
             "suite each negotiated is in the table above). Both serve the files of scenario 3; "
             "the hello page is the 40-byte `index.html`. Keep-alive: 50 handshakes per "
             "measurement.",
}


def load(args):
    figures = defaultdict(list)
    for line in open(args.results):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 5 or not parts[4]:
            continue
        scen, who, _run, metric, value = parts
        try:
            figures[(scen, who, metric)].append(float(value))
        except ValueError:
            continue
    med = {k: statistics.median(v) for k, v in figures.items()}
    meta = []
    for line in open(args.meta):
        if "\t" in line:
            meta.append(line.rstrip("\n").split("\t", 1))
    notes = [n.strip() for n in open(args.notes) if n.strip()]
    return med, dict(meta), meta, notes, figures


def fmt(v):
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def contenders(med, scen):
    seen = []
    for (s, who, _m) in med:
        if s == scen and who not in seen:
            seen.append(who)
    order = list(LABELS)
    return sorted(seen, key=lambda w: order.index(w) if w in order else 99)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    p = argparse.ArgumentParser()
    for opt in ("--results", "--meta", "--notes", "--md", "--png"):
        p.add_argument(opt, required=True)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    med, meta, meta_list, notes, raw = load(args)
    g = lambda s, w, m: med.get((s, w, m))  # noqa: E731

    def contender_row(scen, w, metrics, label=None, extra=()):
        """A table row: the contender, its medians of `metrics`, `extra` cells, its runs."""
        cells = [label or LABELS.get(w, w)] + [fmt(g(scen, w, m)) for m in metrics]
        cells += list(extra) + [str(len(raw.get((scen, w, "rate"), [])))]
        return "| " + " | ".join(cells) + " |"

    out = ["# Benchmarks", ""]
    if args.quick:
        out += ["**Quick run (`bench/run --quick`): debug build, one short run each. These "
                "figures check that every scenario works and say nothing about speed.**", ""]
    out += ["Written by `bench/run` (the whole method is in that script). The server is pinned "
            "to core 0 and the load generator to core 1 with `taskset`; each measurement follows "
            "a warm-up; the runs of the contenders are interleaved and the tables quote the "
            "median. *CPU* is the server's utime+stime from `/proc/PID/stat` over the "
            "measurement divided by the messages or requests served: on a two-core machine "
            "where server and load generator both saturate a core, it is the figure that "
            "separates fast servers. Ratios are Torsion's figure over the peer's (for CPU, "
            "latency and memory lower is better; for throughput higher is better).", ""]
    out += ["![Torsion against each peer](benchmarks.png)", ""]
    out += ["## Machine and versions", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in meta_list]
    out.append("")

    chart = []  # (label, advantage) where advantage > 1 means Torsion does better
    targets = []  # (target text, figure text, met)

    for scen, title, unit, cpu_unit in SCENARIOS:
        whos = contenders(med, scen)
        if not whos:
            continue
        out += [f"## {title}", ""]
        if scen in CONTENDER_NOTES:
            out += [CONTENDER_NOTES[scen], ""]
        out += [f"| contender | {unit} | p50 µs | p99 µs | server CPU, {cpu_unit} | runs |",
                "|---|---:|---:|---:|---:|---:|"]
        for w in whos:
            out.append(contender_row(scen, w, ("rate", "p50_us", "p99_us", "cpu_us")))
        out.append("")
        base = "workers-2" if scen == "workers" else "torsion"
        peers = [w for w in whos if w != base]
        if base in whos and peers:
            out += [f"Ratios, {LABELS.get(base, base)} ÷ peer:", "",
                    "| peer | throughput | p99 | CPU per op |", "|---|---:|---:|---:|"]
            for w in peers:
                rt = ratio(g(scen, base, "rate"), g(scen, w, "rate"))
                rp = ratio(g(scen, base, "p99_us"), g(scen, w, "p99_us"))
                rc = ratio(g(scen, base, "cpu_us"), g(scen, w, "cpu_us"))
                out.append(f"| {LABELS.get(w, w)} | {fmt(rt)}× | {fmt(rp)}× | {fmt(rc)}× |")
                if scen in ("echo50", "http", "static1k", "static1m", "static16m", "https",
                            "https1m") and rc:
                    chart.append((f"{scen}: CPU/op vs {LABELS.get(w, w)}", 1 / rc))
            out.append("")

    micro_metrics = [("chains_per_s", "Deferred with 10 callbacks, created and fired (chains/s)"),
                     ("timers_per_s", "call_later scheduled and cancelled, 10⁶ a round (pairs/s)"),
                     ("awaits_per_s", "awaits of fired Deferreds in an async fn (awaits/s)")]
    if any(s == "micro" for (s, _w, _m) in med):
        out += ["## 4. Deferreds and timers, in-process", "",
                "Torsion: `bench/src/bin/micro.rs`; Twisted: `bench/twisted_peers.py micro` "
                "(awaits through `Deferred.fromCoroutine` of an `async def`, Twisted's fastest "
                "path).", "", "| measurement | Torsion | Twisted | ratio |", "|---|---:|---:|---:|"]
        for m, text in micro_metrics:
            t, tw = g("micro", "torsion", m), g("micro", "twisted", m)
            r = ratio(t, tw)
            out.append(f"| {text} | {fmt(t)} | {fmt(tw)} | {fmt(r)}× |")
            if r:
                chart.append((f"micro: {m.split('_')[0]} vs Twisted", r))
        out.append("")

    if any(s == "memory" for (s, _w, _m) in med):
        out += ["## 5. Memory: server RSS growth per idle connection", "",
                "Each idle connection made one exchange (an echo, or one GET) and then stayed "
                "open; RSS from `/proc/PID/status` before and after.", "",
                "| server | KiB per idle connection | RSS at start, KiB |", "|---|---:|---:|"]
        for w in contenders(med, "memory"):
            out.append(f"| {LABELS.get(w, w)} | {fmt(g('memory', w, 'rss_kib_per_conn'))} | "
                       f"{fmt(g('memory', w, 'rss_start_kib'))} |")
        out.append("")
        for w in ("tokio", "hyper", "twisted-echo", "twisted-web", "nginx"):
            base = "torsion-echo" if w in ("tokio", "twisted-echo") else "torsion-web"
            a, b = g("memory", base, "rss_kib_per_conn"), g("memory", w, "rss_kib_per_conn")
            if a is not None and b:
                chart.append((f"memory vs {LABELS[w]}", b / max(a, 0.01)))

    if any(s == "amp" for (s, _w, _m) in med):
        out += ["## 7. AMP calls, one connection, 100 in flight", "",
                "`Sum(a, b)` answered by the server; the load client is the same for both "
                "(`bench/src/bin/amp_calls.rs`, raw tokio, asks a new question per answer). "
                "Torsion: `amp_calls server` (torsion-amp); Twisted: `bench/twisted_peers.py "
                "amp` (`twisted.protocols.amp` on the epoll reactor). The last row sets the "
                "server CPU per call against Torsion's echo server's per message (scenario 1, "
                "50 connections); with 100 calls in flight one read carries many boxes, so "
                "syscalls are shared by calls where echo pays them per message.", "",
                "| server | calls/s | server CPU, µs per call | runs |", "|---|---:|---:|---:|"]
        for w in contenders(med, "amp"):
            out.append(contender_row("amp", w, ("rate", "cpu_us")))
        rt = ratio(g("amp", "torsion", "rate"), g("amp", "twisted", "rate"))
        rc = ratio(g("amp", "torsion", "cpu_us"), g("amp", "twisted", "cpu_us"))
        re = ratio(g("amp", "torsion", "cpu_us"), g("echo50", "torsion", "cpu_us"))
        out += ["", "| ratio | |", "|---|---:|",
                f"| Torsion ÷ Twisted, calls/s | {fmt(rt)}× |",
                f"| Torsion ÷ Twisted, CPU per call | {fmt(rc)}× |",
                f"| Torsion's CPU per AMP call ÷ its echo CPU per message | {fmt(re)}× |", ""]
        if rc:
            chart.append(("amp: CPU/call vs Twisted", 1 / rc))

    if any(s == "dns" for (s, _w, _m) in med):
        out += ["## 8. DNS queries over UDP, 100 in flight", "",
                "One zone (`bench.test`: SOA, NS, MX and three A records) served by `torsiond "
                "dns --bindzone` and `twistd dns --bindzone` (Twisted's FileAuthority on its "
                "default reactor), and by dnsmasq with the same records given on its command line "
                "(`--host-record`, `--mx-host`, `--local=/bench.test/`). The load is "
                "`bench/src/bin/dns_load.rs` (one client, 100 queries in flight, sent and read "
                "with sendmmsg/recvmmsg, a new query for each answer), asking in turn for an A "
                "record, the MX record and a name that does not exist (NXDOMAIN); a run fails on "
                "any other answer. dnsperf costs its core ~2.2 µs per query here and stops near "
                "430k queries/s whatever the server, so it only checks each server's answers "
                "(one second at the start of every run); *answer bytes* is its average answer "
                "size: torsiond adds the zone's NS record and its address (authority and "
                "additional sections) as BIND does, twistd and dnsmasq do not. *Average latency* "
                "is 100 ÷ the rate (Little's law). *Lost* is the queries the client saw no answer "
                "to. The floor row is `bench/src/bin/dns_floor.rs`: one UDP socket, "
                "recvmmsg/sendmmsg of up to 32, every query answered with a fixed record and no "
                "other work: the kernel's cost per query, which no server here can go under.", "",
                "| server | queries/s | average latency µs | server CPU, µs per query | "
                "answer bytes | lost | runs |", "|---|---:|---:|---:|---:|---:|---:|"]
        for w in contenders(med, "dns"):
            out.append(contender_row("dns", w, ("rate", "avg_us", "cpu_us", "answer_bytes", "lost"),
                                     DNS_LABELS.get(w, w)))
        out += ["", "Ratios, torsiond dns ÷ peer:", "",
                "| peer | queries/s | CPU per query |", "|---|---:|---:|"]
        for w in contenders(med, "dns"):
            if w == "torsion":
                continue
            rt = ratio(g("dns", "torsion", "rate"), g("dns", w, "rate"))
            rc = ratio(g("dns", "torsion", "cpu_us"), g("dns", w, "cpu_us"))
            out.append(f"| {DNS_LABELS.get(w, w)} | {fmt(rt)}× | {fmt(rc)}× |")
            if rc:
                chart.append((f"dns: CPU/query vs {DNS_LABELS.get(w, w)}", 1 / rc))
        out.append("")

    if any(s == "mail" for (s, _w, _m) in med):
        out += ["## 9. SMTP messages into Maildir, 20 senders, 10 KB each", "",
                "`bench/src/bin/smtp_send.rs` (raw tokio, the same for every server): 20 "
                "connections, each sending 10 KB messages one after another (MAIL, RCPT, DATA, "
                "the body; the next once the server answered 250) to one Maildir user. Torsion: "
                "`torsiond mail --domain bench.test=DIR`, which `fsync`s each message and its "
                "folder before answering 250 (in the reactor's thread pool). Twisted: "
                "`bench/twisted_peers.py mail`, Twisted's ESMTP protocol with a delivery doing "
                "what its FileMessage does (tmp/, then renamed into new/, no `fsync`): `twistd "
                "mail --maildirdbmdomain` itself refuses every recipient on Python 3. aiosmtpd: "
                "`python -m aiosmtpd -c aiosmtpd.handlers.Mailbox DIR` (Python's `mailbox`, "
                "which `fsync`s the message file). A run fails on any reply but the expected "
                "one, or when fewer messages are in `new/` than were accepted. Where the "
                "Maildirs were is in the machine table (*scenario 9 Maildirs*): a tmpfs when "
                "the machine has one with room, so that the servers are compared and not the "
                "disk (on a tmpfs a flush costs nothing, which spares Torsion the flushes "
                "Twisted never makes; on a disk the file system's state, fresh or aged by "
                "deletions, moved every server's figure several-fold).", "",
                "| server | messages/s | server CPU, µs per message | runs |",
                "|---|---:|---:|---:|"]
        for w in contenders(med, "mail"):
            out.append(contender_row("mail", w, ("rate", "cpu_us"), MAIL_LABELS.get(w, w)))
        out += ["", "Ratios, torsiond mail ÷ peer:", "",
                "| peer | messages/s | CPU per message |", "|---|---:|---:|"]
        for w in contenders(med, "mail"):
            if w == "torsion":
                continue
            rt = ratio(g("mail", "torsion", "rate"), g("mail", w, "rate"))
            rc = ratio(g("mail", "torsion", "cpu_us"), g("mail", w, "cpu_us"))
            out.append(f"| {MAIL_LABELS.get(w, w)} | {fmt(rt)}× | {fmt(rc)}× |")
            if rt:
                chart.append((f"mail: messages/s vs {MAIL_LABELS.get(w, w)}", rt))
        out.append("")

    if any(s == "h2" for (s, _w, _m) in med):
        out += ["## 10. HTTP/2 hello, prior-knowledge h2c, h2load -c50 -m10", "",
                "The hello page of scenario 2 over HTTP/2 without TLS: `hello_web` (the same "
                "binary: a site takes the HTTP/2 preface on its HTTP/1.1 port) and nginx with "
                "`listen ... http2`. h2load, one thread, 50 connections with 10 streams in flight "
                "on each; a run fails unless every request got a 2xx.", "",
                "| server | requests/s | mean latency µs | server CPU, µs per request | runs |",
                "|---|---:|---:|---:|---:|"]
        for w in contenders(med, "h2"):
            out.append(contender_row("h2", w, ("rate", "mean_us", "cpu_us")))
        rc = ratio(g("h2", "torsion", "cpu_us"), g("h2", "nginx", "cpu_us"))
        if rc:
            chart.append(("h2: CPU/request vs nginx", 1 / rc))
        out.append("")

    if any(s == "ws50" for (s, _w, _m) in med):
        out += ["## 11. WebSocket echo, 50 connections, 64 B text ping-pong", "",
                "The same client for every server (`bench/src/bin/ws_echo.rs load`: raw tokio, "
                "Torsion's frame codec, no extension offered), one message in flight per "
                "connection. Torsion: `ws_echo server` (`torsion_web::websocket`); Twisted: "
                "`bench/twisted_peers.py ws` (`twisted.web.websocket` over wsproto, epoll "
                "reactor); Python `websockets` (asyncio): `bench/twisted_peers.py ws-websockets`. "
                "The last column divides by the Torsion TCP echo's CPU per message (scenario 1, "
                "50 connections) in the same run.", "",
                "| server | msgs/s | p50 µs | p99 µs | server CPU, µs per message | "
                "÷ TCP echo's | runs |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        echo_cpu = g("echo50", "torsion", "cpu_us")
        ws_labels = {"websockets": "Python websockets"}
        for w in contenders(med, "ws50"):
            re = ratio(g("ws50", w, "cpu_us"), echo_cpu)
            out.append(contender_row("ws50", w, ("rate", "p50_us", "p99_us", "cpu_us"),
                                     ws_labels.get(w, LABELS.get(w, w)),
                                     [fmt(re) if re else "—"]))
        rt = ratio(g("ws50", "torsion", "rate"), g("ws50", "twisted", "rate"))
        if rt:
            chart.append(("ws: msgs/s vs Twisted", rt))
        out.append("")

    if any(s.startswith("ir_") for (s, _w, _m) in med):
        out += ["## 12. User-space instructions per operation (callgrind)", "",
                "Counted, not timed: `valgrind --tool=callgrind` runs the server (or the micro "
                "benchmark) on two fixed amounts of work, a new process each, and the difference "
                "of the two instruction totals is divided by the operations between them, so "
                "start-up and shut-down cancel out (`bench/callgrind.sh`). The load is the same "
                "for both sides of a row: echo, 64 B messages over 50 connections from "
                "`loadgen` (10,000 and 50,000 messages); HTTP hello, `h2load --h1 -c10` "
                "(10,000 and 50,000 requests, every one a 2xx), and the same for the 1 KiB "
                "static file of scenario 3 (`torsiond web`, access log off; Torsion only, as "
                "nginx's C and forked workers make no like-for-like count); the chain, "
                "`micro --only chains` "
                "(5 and 25 rounds of 1,000 chains). Counts hold on any x86-64 machine for the "
                "same build, where wall clock on a two-core VM does not; the last column is the "
                "wall-clock figure of the same run, when its scenario was measured. Caveat: "
                "under valgrind the server is ~50× slower than its load generator, so it finds "
                "more work waiting at each wake-up than at full speed: fewer waits per "
                "operation, which favours code that reads speculatively.",
                "", "| measurement | Torsion | peer | peer's | Torsion ÷ peer | wall clock, same "
                "run |", "|---|---:|---|---:|---:|---:|"]
        ir_rows = [("ir_echo50", "echo, 50 connections, per message", "tokio", "echo50"),
                   ("ir_http", "HTTP hello, per request", "hyper", "http"),
                   ("ir_http", "HTTP hello, per request", "axum", "http")]
        for scen, text, peer, wall in ir_rows:
            a, b = g(scen, "torsion", "instructions"), g(scen, peer, "instructions")
            if b is None and (a is None or peer == "axum"):
                continue
            r = ratio(a, b)
            rc = ratio(g(wall, "torsion", "cpu_us"), g(wall, peer, "cpu_us"))
            out.append(f"| {text} | {fmt(a)} | {LABELS[peer]} | {fmt(b)} | "
                       f"{fmt(r) + '×' if r else '—'} | "
                       f"{'CPU per op ' + fmt(rc) + '×' if rc else '—'} |")
            if r:
                chart.append((f"instructions: {scen[3:]} vs {LABELS[peer]}", 1 / r))
        c, cps = g("ir_chain", "torsion", "instructions"), g("micro", "torsion", "chains_per_s")
        if c is not None:
            out.append(f"| Deferred with 10 callbacks, per chain | {fmt(c)} | — | — | — | "
                       f"{fmt(1e9 / cps) + ' ns per chain' if cps else '—'} |")
        s, sc = g("ir_static1k", "torsion", "instructions"), g("static1k", "torsion", "cpu_us")
        if s is not None:
            out.append(f"| static file, 1 KiB, per request | {fmt(s)} | — | — | — | "
                       f"{'CPU per request ' + fmt(sc) + ' µs' if sc else '—'} |")
        out.append("")

    if any(s == "tlsecho" for (s, _w, _m) in med):
        out += ["## 13. TLS echo throughput, one connection", "",
                "`bench/src/bin/tls_echo.rs`: a Torsion echo server (`tls_echo server`, the Echo "
                "protocol over `listen_tls_on`, or plain `listen_tcp_on` with `--plain`) and a "
                "Torsion client (`tls_echo load`) that keeps 256 KiB in flight on one connection, "
                "checks every byte that comes back and stops after a fixed amount (see the "
                "machine table). MB is 10⁶ bytes; CPU is the server's per MB echoed (each MB is "
                "read, decrypted, encrypted and written once).", "",
                "| server | MB/s | server CPU, µs per MB | runs |", "|---|---:|---:|---:|"]
        tls_labels = {"torsion-tls": "Torsion over TLS 1.3", "torsion-plain": "Torsion, plain TCP"}
        for w in contenders(med, "tlsecho"):
            out.append(contender_row("tlsecho", w, ("rate", "cpu_us"), tls_labels.get(w, w)))
        rc = ratio(g("tlsecho", "torsion-tls", "cpu_us"), g("tlsecho", "torsion-plain", "cpu_us"))
        out += ["", f"TLS ÷ plain, server CPU per MB: {fmt(rc) + '×' if rc else '—'}", ""]
    # Scenario 14 (issue 27): many connections and pipelining.
    conns14 = meta.get("scenario 14 connections", "1000").split()[0]
    for scen, title, text in [
        ("http1000", f"14a. HTTP hello, {conns14} connections, wrk -t1 -c{conns14}",
         f"The servers of scenario 2 with {conns14} keep-alive connections, one request in "
         "flight on each; a run fails on any connect error or non-2xx response."),
        ("httppipe", "14b. HTTP hello, pipelined 16 deep, 50 connections",
         "The servers of scenario 2, wrk with `bench/wrk/pipeline16.lua`: each connection "
         "writes 16 GETs at once and the next 16 once all 16 responses are in. wrk counts "
         "every response; its latency is that of a batch of 16. *hyper, pipeline_flush* is "
         "the same server with hyper's `pipeline_flush(true)` (off by default), which writes "
         "the responses to one read together instead of one `writev` each."),
    ]:
        whos = contenders(med, scen)
        if not whos:
            continue
        out += [f"## {title}", "", text, "",
                "| contender | req/s | p50 µs | p99 µs | server CPU, µs per request | runs |",
                "|---|---:|---:|---:|---:|---:|"]
        for w in whos:
            out.append(contender_row(scen, w, ("rate", "p50_us", "p99_us", "cpu_us")))
        peers = [w for w in whos if w != "torsion"]
        if "torsion" in whos and peers:
            out += ["", "Ratios, Torsion ÷ peer (scenario 2's, with 50 connections, beside "
                    "them):", "", "| peer | throughput | p99 | CPU per request | "
                    "CPU per request, scenario 2 |", "|---|---:|---:|---:|---:|"]
            for w in peers:
                rt = ratio(g(scen, "torsion", "rate"), g(scen, w, "rate"))
                rp = ratio(g(scen, "torsion", "p99_us"), g(scen, w, "p99_us"))
                rc = ratio(g(scen, "torsion", "cpu_us"), g(scen, w, "cpu_us"))
                r2 = ratio(g("http", "torsion", "cpu_us"), g("http", w, "cpu_us"))
                out.append(f"| {LABELS.get(w, w)} | {fmt(rt)}× | {fmt(rp)}× | {fmt(rc)}× | "
                           f"{fmt(r2) + '×' if r2 else '—'} |")
                if rc and w in ("hyper", "nginx"):
                    chart.append((f"{scen}: CPU/op vs {LABELS.get(w, w)}", 1 / rc))
        out.append("")

    # The targets of issues 7, 21, 22, 23, 26 and 27.
    def target(text, a, b, limit, higher_is_better):
        r = ratio(a, b)
        if r is None:
            targets.append((text, "not measured", "—"))
            return
        met = r >= limit if higher_is_better else r <= limit
        targets.append((text, f"{r:.2f}×", "met" if met else "**missed**"))

    target("echo, 50 conns: server CPU per message ≤ 1.05× raw tokio",
           g("echo50", "torsion", "cpu_us"), g("echo50", "tokio", "cpu_us"), 1.05, False)
    target("echo, 50 conns: p99 ≤ 1.1× raw tokio",
           g("echo50", "torsion", "p99_us"), g("echo50", "tokio", "p99_us"), 1.1, False)
    target("echo, 1 conn: p99 ≤ 1.1× raw tokio",
           g("echo1", "torsion", "p99_us"), g("echo1", "tokio", "p99_us"), 1.1, False)
    # Scenario 15's pairs, where measured, decide the targets that sit inside the machine's
    # spread: the median of per-pair ratios instead of the ratio of two separate medians.
    def paired_target(text, scen, metric, limit, higher_is_better, fallback):
        ratios = raw.get((scen, "pair", metric))
        if not ratios:
            fallback()
            return
        r = statistics.median(ratios)
        held = sum(1 for x in ratios if (x >= limit if higher_is_better else x <= limit))
        met = r >= limit if higher_is_better else r <= limit
        targets.append((f"{text} (paired, scenario 15)",
                        f"{r:.2f}× (the target held in {held} of {len(ratios)} pairs)",
                        "met" if met else "**missed**"))

    paired_target("HTTP hello: server CPU per request ≤ hyper's", "pair_http", "cpu_us", 1.0,
                  False, lambda: target("HTTP hello: server CPU per request ≤ hyper's",
                                        g("http", "torsion", "cpu_us"),
                                        g("http", "hyper", "cpu_us"), 1.0, False))
    target("static 1 KiB: req/s ≥ 1.0× nginx",
           g("static1k", "torsion", "rate"), g("static1k", "nginx", "rate"), 1.0, True)
    target("static 1 MiB: req/s ≥ 0.9× nginx",
           g("static1m", "torsion", "rate"), g("static1m", "nginx", "rate"), 0.9, True)
    paired_target("static 1 MiB: req/s ≥ 1.0× nginx (issue 27)", "pair_static1m", "rate",
                  1.0, True, lambda: target("static 1 MiB: req/s ≥ 1.0× nginx (issue 27)",
                                            g("static1m", "torsion", "rate"),
                                            g("static1m", "nginx", "rate"), 1.0, True))
    paired_target("static 1 MiB: server CPU per request ≤ nginx's (issue 27)", "pair_static1m",
                  "cpu_us", 1.0, False,
                  lambda: target("static 1 MiB: server CPU per request ≤ nginx's (issue 27)",
                                 g("static1m", "torsion", "cpu_us"),
                                 g("static1m", "nginx", "cpu_us"), 1.0, False))
    target("Deferred chains ≥ 50× Twisted", g("micro", "torsion", "chains_per_s"),
           g("micro", "twisted", "chains_per_s"), 50, True)
    target("timers ≥ 50× Twisted", g("micro", "torsion", "timers_per_s"),
           g("micro", "twisted", "timers_per_s"), 50, True)
    target("awaits ≥ 10× Twisted's fastest path", g("micro", "torsion", "awaits_per_s"),
           g("micro", "twisted", "awaits_per_s"), 10, True)
    for w in ("torsion-echo", "torsion-web"):
        v = g("memory", w, "rss_kib_per_conn")
        targets.append((f"memory, {LABELS[w]}: ≤ 0.5 KiB per idle connection",
                        "not measured" if v is None else f"{v:.2f} KiB",
                        "—" if v is None else ("met" if v <= 0.5 else "**missed**")))
    w1, w2 = g("workers", "workers-1", "rate"), g("workers", "workers-2", "rate")
    targets.append(("torsiond web --workers 2 ÷ --workers 1 (report only)",
                    "not measured" if ratio(w2, w1) is None else f"{ratio(w2, w1):.2f}×", "—"))

    target("AMP: calls/s ≥ 20× Twisted (issue 21)", g("amp", "torsion", "rate"),
           g("amp", "twisted", "rate"), 20, True)
    target("AMP: server CPU per call ≤ 2× echo's per message, 50 conns (issue 21)",
           g("amp", "torsion", "cpu_us"), g("echo50", "torsion", "cpu_us"), 2, False)
    paired_target("DNS: queries/s ≥ 20× twistd dns (issue 22)", "pair_dns", "rate", 20, True,
                  lambda: target("DNS: queries/s ≥ 20× twistd dns (issue 22)",
                                 g("dns", "torsion", "rate"), g("dns", "twisted", "rate"), 20,
                                 True))
    target("DNS: server CPU per query ≤ 1.5× dnsmasq's (issue 22)",
           g("dns", "torsion", "cpu_us"), g("dns", "dnsmasq", "cpu_us"), 1.5, False)
    fr = ratio(g("dns", "floor", "rate"), g("dns", "twisted", "rate"))
    targets.append(("DNS: the floor's queries/s ÷ twistd's, the most any server reaches here "
                    "(report only, issue 22)", "not measured" if fr is None else f"{fr:.2f}×",
                    "—"))

    paired_target("SMTP: messages/s ≥ 10× Twisted (issue 23)", "pair_mail", "rate", 10, True,
                  lambda: target("SMTP: messages/s ≥ 10× Twisted (issue 23)",
                                 g("mail", "torsion", "rate"), g("mail", "twisted", "rate"), 10,
                                 True))
    target("HTTP/2 hello: server CPU per request ≤ nginx's (issue 26)",
           g("h2", "torsion", "cpu_us"), g("h2", "nginx", "cpu_us"), 1, False)
    paired_target("WebSocket echo: msgs/s ≥ 10× Twisted (issue 26)", "pair_ws", "rate", 10,
                  True, lambda: target("WebSocket echo: msgs/s ≥ 10× Twisted (issue 26)",
                                       g("ws50", "torsion", "rate"),
                                       g("ws50", "twisted", "rate"), 10, True))
    target("WebSocket echo: server CPU per message ≤ 1.5× the TCP echo's (issue 26)",
           g("ws50", "torsion", "cpu_us"), g("echo50", "torsion", "cpu_us"), 1.5, False)

    target("echo, 50 conns: instructions per message ≤ raw tokio's (callgrind, issue 27)",
           g("ir_echo50", "torsion", "instructions"), g("ir_echo50", "tokio", "instructions"),
           1, False)
    target("HTTP hello: instructions per request ≤ hyper's (callgrind, issue 27)",
           g("ir_http", "torsion", "instructions"), g("ir_http", "hyper", "instructions"), 1,
           False)
    target("HTTPS hello: server CPU per request ≤ nginx's (issue 27)",
           g("https", "torsion", "cpu_us"), g("https", "nginx", "cpu_us"), 1, False)
    target("HTTPS 1 MiB: req/s ≥ 0.8× nginx (issue 27)",
           g("https1m", "torsion", "rate"), g("https1m", "nginx", "rate"), 0.8, True)
    v = g("ir_chain", "torsion", "instructions")
    targets.append(("Deferred with 10 callbacks: ≤ 1,200 instructions per chain (callgrind, "
                    "issue 27)", "not measured" if v is None else f"{v:,.0f}",
                    "—" if v is None else ("met" if v <= 1200 else "**missed**")))

    target(f"HTTP hello, {conns14} connections: server CPU per request ≤ hyper's (issue 27)",
           g("http1000", "torsion", "cpu_us"), g("http1000", "hyper", "cpu_us"), 1, False)
    target("HTTP hello, pipelined 16 deep: server CPU per request ≤ hyper's (issue 27)",
           g("httppipe", "torsion", "cpu_us"), g("httppipe", "hyper", "cpu_us"), 1, False)
    for scen, text in (("http1000", f"{conns14} connections"), ("httppipe", "pipelined 16 deep")):
        r = ratio(g(scen, "torsion", "cpu_us"), g(scen, "nginx", "cpu_us"))
        targets.append((f"HTTP hello, {text}: server CPU per request, Torsion ÷ nginx "
                        "(report only, issue 27)", "not measured" if r is None else f"{r:.2f}×",
                        "—"))

    pair_rows = [(scen, peer, text) for scen, peer, text in
                 (("pair_http", "hyper", "HTTP hello against hyper"),
                  ("pair_static1m", "nginx", "static 1 MiB against nginx"),
                  ("pair_dns", "twisted", "DNS against twistd dns"),
                  ("pair_ws", "twisted", "WebSocket echo against Twisted"),
                  ("pair_mail", "twisted", "SMTP into Maildir against Twisted"))
                 if raw.get((scen, "pair", "rate"))]
    if pair_rows:
        out += ["## Paired runs (scenario 15)", "",
                "Torsion's server and the peer's run side by side; pairs of short wrk runs "
                "follow one another, Torsion first in odd pairs and the peer first in even "
                "ones. Each pair gives a ratio (Torsion ÷ peer); the table quotes the median of "
                "those ratios, their range, and in how many pairs Torsion did better. A drift "
                "of the machine's speed during the scenario falls on both sides of a pair "
                "alike, which the ratio of two separate medians (the tables above) does not "
                "promise.", "",
                "| pairs | n | per second, median ratio (range) | better | CPU per operation, "
                "median ratio (range) | better |", "|---|---:|---:|---:|---:|---:|"]
        for scen, peer, text in pair_rows:
            rates, cpus = raw[(scen, "pair", "rate")], raw.get((scen, "pair", "cpu_us"), [])
            out.append(
                f"| {text} | {len(rates)} | {statistics.median(rates):.3f}× "
                f"({min(rates):.3f}–{max(rates):.3f}) | {sum(1 for x in rates if x > 1)} | "
                + (f"{statistics.median(cpus):.3f}× ({min(cpus):.3f}–{max(cpus):.3f}) | "
                   f"{sum(1 for x in cpus if x < 1)} |" if cpus else "— | — |"))
        out.append("")

    out += ["## Targets (issues 7, 21, 22, 23, 26 and 27)", "", "| target | figure | |",
            "|---|---:|---|"]
    out += [f"| {t} | {f} | {m} |" for t, f, m in targets]
    out.append("")
    here = os.path.dirname(os.path.abspath(__file__))
    earlier = os.path.join(here, "earlier.md")
    if os.path.exists(earlier) and not args.quick:
        text = regex.sub(r"\A\s*<!--.*?-->\s*", "", open(earlier).read(), flags=regex.S)
        out += ["## Other runs: partial runs and other machines (`bench/earlier.md`)", "",
                text.strip(), ""]
    findings = os.path.join(here, "findings.md")
    if os.path.exists(findings):
        out += ["## What limits Torsion (profiling notes, `bench/findings.md`)", "",
                open(findings).read().strip(), ""]
    if notes:
        out += ["## Notes from this run", ""] + [f"- {n}" for n in notes] + [""]
    with open(args.md, "w") as f:
        f.write("\n".join(out))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if args.quick:
            print("report: matplotlib missing, no chart in a quick run", file=sys.stderr)
            return 0
        print("report: matplotlib is needed for the chart", file=sys.stderr)
        return 1
    if not chart:
        chart = [("no figures", 1.0)]
    labels = [c[0] for c in chart]
    values = [c[1] for c in chart]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(chart) + 1.5))
    colors = ["#2a7" if v >= 1 else "#c43" for v in values]
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("Torsion's advantage (peer ÷ Torsion for costs, Torsion ÷ peer for rates); "
                  "> 1 is better", fontsize=8)
    ax.set_title("Torsion against its peers" + (" (quick run: meaningless)" if args.quick else ""))
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
