#!/usr/bin/env bash
# bench/static1k.sh TORSIOND [DIR]: user-space instructions (callgrind) and system calls
# (strace -c -f) per request of `torsiond web` serving a 1 KiB file with its access log off,
# the request of bench/run's scenario 3, for any build of any commit: build torsiond
# (`cargo build --release -p torsiond`), copy the binary aside, pass its path. The load is
# `h2load --h1 -t1 -c10 -n N` on /1k.bin, N = 2,000 and 10,000, a new server each time; the
# figures are the differences divided by 8,000, so start-up and shut-down cancel out. The
# profiles and strace tables are left in DIR (default: a new temporary folder).
set -euo pipefail
bin=$(realpath "$1")
dir=${2:-$(mktemp -d)}
mkdir -p "$dir/www"
# shellcheck source=bench/callgrind.sh
. "$(dirname "$0")/callgrind.sh"
head -c 1024 /dev/urandom >"$dir/www/1k.bin"

port=
# serve WRAPPER...: starts WRAPPER... torsiond web on a free port ($port), in the background.
serve() {
    port=$(( 20000 + RANDOM % 20000 ))
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$(( port + 1 )); done
    "$@" "$bin" web --path "$dir/www" --listen "tcp:$port:interface=127.0.0.1" \
        --no-access-log >>"$dir/server.log" 2>&1 &
    local i
    for i in $(seq 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        [ "$i" = 600 ] || sleep 0.1
    done
    echo "torsiond did not listen on $port (see $dir/server.log)" >&2
    return 1
}

# load N: N requests for /1k.bin, all of them 2xx, or fail.
load() {
    local out
    out=$(h2load --h1 -t1 -c10 -n "$1" "http://127.0.0.1:$port/1k.bin" 2>&1)
    grep -q "status codes: $1 2xx" <<<"$out" || { echo "$out" >&2; return 1; }
}

totals=()
for n in 2000 10000; do
    serve valgrind --tool=callgrind --callgrind-out-file="$dir/cg-$n.out"
    pid=$!
    load "$n"
    kill "$pid"; wait "$pid" || true
    totals+=("$(cg_total "$dir/cg-$n.out")")
done
echo "instructions per request: $(cg_per "${totals[0]}" "${totals[1]}" 8000)"

calls=()
for n in 2000 10000; do
    serve strace -c -f -o "$dir/strace-$n.txt"
    pid=$!
    load "$n"
    # strace itself ignores the SIGTERM of a background job: stop the server it traces.
    pkill -P "$pid"; wait "$pid" || true
    calls+=("$(awk '$NF == "total" { print $4 }' "$dir/strace-$n.txt")")
done
echo "system calls per request: $(awk -v a="${calls[0]}" -v b="${calls[1]}" \
    'BEGIN { printf "%.2f\n", (b - a) / 8000 }')"
# Each call's own count, where it grew by more than 1 per 100 requests.
join <(awk '$1 ~ /^[0-9.]+$/ && $NF != "total" { print $NF, $4 }' "$dir/strace-2000.txt" | sort) \
    <(awk '$1 ~ /^[0-9.]+$/ && $NF != "total" { print $NF, $4 }' "$dir/strace-10000.txt" | sort) |
    awk '{ d = ($3 - $2) / 8000; if (d > 0.01) printf "  %s %.2f\n", $1, d }'
