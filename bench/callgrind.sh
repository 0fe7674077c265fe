# shellcheck shell=bash
# User-space instruction counts with valgrind's callgrind, shared by bench/run (scenario 12)
# and bench/profile. Sourced, not run. The method: run the same program on two fixed amounts
# of work and divide the difference of the two totals by the operations between them, so that
# start-up and shut-down cancel out and what is left is the cost of one operation. Counts, not
# times: they repeat on a busy machine and, for the same build, on another one.

# cg_total FILE: the instructions a callgrind profile counted, every thread's together (its
# `totals:` line, or `summary:` in a file without one).
cg_total() {
    awk '$1 == "totals:" { t = $2 } $1 == "summary:" { s = $2 }
         END { if (t != "") print t; else if (s != "") print s; else exit 1 }' "$1"
}

# cg_per A B N: (B - A) / N rounded, the instructions per operation between two totals; fails
# when a total is missing or N is not positive.
cg_per() {
    awk -v a="$1" -v b="$2" -v n="$3" \
        'BEGIN { if (a == "" || b == "" || n + 0 <= 0) exit 1; printf "%.0f\n", (b - a) / n }'
}

# cg_run FILE COMMAND...: COMMAND under callgrind, its profile in FILE, its output discarded.
cg_run() {
    local file=$1; shift
    valgrind --tool=callgrind --callgrind-out-file="$file" "$@" >/dev/null 2>&1
}

# cg_micro MICRO DIR NAME ROUNDS-A ROUNDS-B PER-ROUND: instructions per operation of one of
# the micro benchmarks (bench/src/bin/micro.rs at path MICRO, `--only NAME --rounds N`, which
# does PER-ROUND operations a round), profiles left in DIR.
cg_micro() {
    local micro=$1 dir=$2 name=$3 a=$4 b=$5 per=$6 ia ib
    cg_run "$dir/cg-$name-$a.out" "$micro" --only "$name" --rounds "$a" || return 1
    cg_run "$dir/cg-$name-$b.out" "$micro" --only "$name" --rounds "$b" || return 1
    ia=$(cg_total "$dir/cg-$name-$a.out") && ib=$(cg_total "$dir/cg-$name-$b.out") || return 1
    cg_per "$ia" "$ib" $(( (b - a) * per ))
}

# cg_smtp TORSIOND SMTP_SEND DIR SMALL LARGE: user-space instructions per message of
# `torsiond mail` (issue 23) under scenario 9's load: smtp_send's 20 lock-step senders,
# 10 KB messages, one Maildir user, SMALL and then LARGE messages (`--messages`), the server
# under callgrind each time (its pool threads counted too), profiles and Maildirs in DIR.
# Fails unless every message of both runs was stored. Caveat: valgrind counts each byte a
# `rep movsb` moves as an instruction, so a large memcpy counts ~1 per byte (a 10 KB copy
# about 10k) though it costs a few hundred cycles.
cg_smtp() {
    local torsiond=$1 send=$2 dir=$3 n port pid totals=()
    for n in "$4" "$5"; do
        port=$(( 20000 + RANDOM % 20000 ))
        rm -rf "$dir/smtp-$n"
        mkdir -p "$dir/smtp-$n/bench"
        valgrind --tool=callgrind --callgrind-out-file="$dir/cg-smtp-$n.out" "$torsiond" mail \
            --domain bench.test="$dir/smtp-$n" --smtp "tcp:$port:interface=127.0.0.1" \
            >"$dir/cg-smtp-$n.log" 2>&1 &
        pid=$!
        for _ in $(seq 600); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.1
        done
        if ! "$send" --port "$port" --conns 20 --size 10240 --seconds 600 --messages "$n" \
            >/dev/null 2>>"$dir/cg-smtp-$n.log"; then
            kill -TERM "$pid"; wait "$pid"; return 1
        fi
        kill -TERM "$pid"
        wait "$pid"
        [ "$(find "$dir/smtp-$n/bench/new" -type f | wc -l)" = "$n" ] || return 1
        rm -rf "$dir/smtp-$n"
        totals+=("$(cg_total "$dir/cg-smtp-$n.out")") || return 1
    done
    cg_per "${totals[0]}" "${totals[1]}" $(( $5 - $4 ))
}
