#!/usr/bin/env bash
# Smoke test of ringrelay-bench: start a sink on loopback with --store,
# send it messages with blast and with a hand-driven SMTP session, and
# check the counts and the stored files.
#
# usage: bench_smoke.sh [PATH-TO-ringrelay-bench]
# The binary defaults to $RINGRELAY_BENCH, then build/bench/ringrelay-bench.
# Everything runs on 127.0.0.1; every step has a timeout.
set -euo pipefail

bench=${1:-${RINGRELAY_BENCH:-build/bench/ringrelay-bench}}
if [[ ! -x $bench ]]; then
    echo "bench_smoke: $bench is not an executable; pass its path" >&2
    exit 1
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/bench_smoke.XXXXXX")
sink_pid=""
port=""

cleanup() {
    if [[ -n $sink_pid ]] && kill -0 "$sink_pid" 2>/dev/null; then
        kill -TERM "$sink_pid" 2>/dev/null || true
        wait "$sink_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

fail() {
    echo "bench_smoke: FAIL: $*" >&2
    for log in "$workdir"/*.log; do
        [[ -f $log ]] || continue
        echo "--- $log" >&2
        tail -n 20 "$log" >&2
    done
    exit 1
}

# Start the sink on a random port in 20000-40000, retrying when the port
# is taken. The sink stops by itself after 120 s if the trap never runs.
start_sink() {
    for attempt in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 20001))
        "$bench" sink --listen "127.0.0.1:$port" --store "$workdir/store" \
            --max-seconds 120 >"$workdir/sink.out.log" \
            2>"$workdir/sink.err.log" &
        sink_pid=$!
        for _ in $(seq 50); do
            if grep -q "listening on" "$workdir/sink.err.log"; then
                return 0
            fi
            if ! kill -0 "$sink_pid" 2>/dev/null; then
                break
            fi
            sleep 0.1
        done
        wait "$sink_pid" 2>/dev/null || true
        sink_pid=""
        if ! grep -q "Address already in use" "$workdir/sink.err.log"; then
            fail "sink did not start (attempt $attempt)"
        fi
    done
    fail "no free port found in 8 attempts"
}

# Read one reply from descriptor 3 and fail unless its code is $1.
expect_reply() {
    local want=$1 line
    while true; do
        IFS= read -r -t 10 -u 3 line || fail "no reply, expected $want"
        line=${line%$'\r'}
        if [[ ${line:0:3} != "$want" ]]; then
            fail "expected reply $want, got: $line"
        fi
        if [[ ${line:3:1} != "-" ]]; then
            reply=$line
            return 0
        fi
    done
}

send_line() {
    printf '%s\r\n' "$1" >&3
}

# A message whose lines start with dots, sent by hand with the stuffing
# a client must add; the stored file must hold them unstuffed.
send_dotted_message() {
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    expect_reply 220
    send_line "EHLO smoke.example.test"
    expect_reply 250
    send_line "MAIL FROM:<dots@example.test>"
    expect_reply 250
    send_line "RCPT TO:<dest@example.test>"
    expect_reply 250
    send_line "DATA"
    expect_reply 354
    send_line "Subject: dots"
    send_line ""
    send_line "..leading dot"
    send_line "...two dots"
    send_line "no dot."
    send_line "."
    expect_reply 250
    dotted_reply=$reply
    send_line "QUIT"
    expect_reply 221
    exec 3<&-
}

# A client that goes away in the middle of DATA must not leave a file.
send_cut_message() {
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    expect_reply 220
    send_line "HELO smoke.example.test"
    expect_reply 250
    send_line "MAIL FROM:<cut@example.test>"
    expect_reply 250
    send_line "RCPT TO:<dest@example.test>"
    expect_reply 250
    send_line "DATA"
    expect_reply 354
    printf 'Subject: cut\r\n\r\nhalf a messa' >&3
    exec 3<&-
}

check_blast_file() {
    local file=$1 envelope_len content_len
    local -a lines
    mapfile -t -n 4 lines <"$file"
    [[ ${lines[0]} == $'MAIL FROM:<blast@example.test>\r' ]] ||
        fail "$file: first line is '${lines[0]}'"
    [[ ${lines[1]} == $'RCPT TO:<user@example.test>\r' ]] ||
        fail "$file: second line is '${lines[1]}'"
    [[ ${lines[2]} == $'RCPT TO:<user@example.test>\r' ]] ||
        fail "$file: third line is '${lines[2]}'"
    [[ ${lines[3]} == $'\r' ]] ||
        fail "$file: no empty line after the envelope"
    if grep -q -v $'\r$' "$file"; then
        fail "$file: a line does not end in CRLF"
    fi
    grep -q '^X-Blast-Sent: [0-9]*'$'\r$' "$file" ||
        fail "$file: no X-Blast-Sent header"
    envelope_len=$(head -n 4 "$file" | wc -c)
    content_len=$(($(wc -c <"$file") - envelope_len))
    if ((content_len < 1900 || content_len > 2100)); then
        fail "$file: content is $content_len bytes, expected about 2000"
    fi
}

check_store() {
    local store=$workdir/store seqs expected_seqs file
    local -a files
    files=("$store"/*.msg)
    [[ ${#files[@]} -eq 11 ]] ||
        fail "expected 11 stored files, found ${#files[@]}"
    if compgen -G "$store/tmp-*" >/dev/null; then
        fail "temporary files left in the store: $(ls "$store")"
    fi
    for n in $(seq 1 10); do
        file=$(printf '%s/%08d.msg' "$store" "$n")
        [[ -f $file ]] || fail "missing $file"
        check_blast_file "$file"
    done
    seqs=$(grep -h '^X-Blast-Seq: ' "$store"/0000000[0-9].msg \
        "$store"/00000010.msg | tr -d '\r' | cut -d' ' -f2 | sort -n |
        tr '\n' ' ')
    expected_seqs=$(seq 1 10 | tr '\n' ' ')
    [[ $seqs == "$expected_seqs" ]] ||
        fail "X-Blast-Seq values are '$seqs', expected '$expected_seqs'"

    file=$store/00000011.msg
    printf '%s\r\n' 'MAIL FROM:<dots@example.test>' \
        'RCPT TO:<dest@example.test>' '' 'Subject: dots' '' \
        '.leading dot' '..two dots' 'no dot.' >"$workdir/expected.msg"
    cmp -s "$file" "$workdir/expected.msg" ||
        fail "$file differs from the unstuffed message: $(od -c "$file")"
}

start_sink

if ! timeout 90 "$bench" blast --server "127.0.0.1:$port" \
    --connections 3 --messages 10 --size 2000 --rcpts 2 --timeout 60 \
    >"$workdir/blast.log" 2>&1; then
    fail "blast against the sink did not succeed"
fi
grep -q 'messages sent: *10$' "$workdir/blast.log" ||
    fail "blast did not report 10 messages sent"
grep -q 'accepted (2xx): *10$' "$workdir/blast.log" ||
    fail "blast did not report 10 messages accepted"

send_dotted_message
[[ $dotted_reply == "250 2.0.0 Ok: stored as 00000011" ]] ||
    fail "unexpected reply to the dotted message: $dotted_reply"
send_cut_message

# The sink notices the cut connection within a reactor turn; give it a
# moment before stopping it.
sleep 0.5
kill -TERM "$sink_pid"
sink_status=0
wait "$sink_pid" || sink_status=$?
sink_pid=""
[[ $sink_status -eq 0 ]] || fail "sink exited with status $sink_status"
grep -q 'messages accepted: *11$' "$workdir/sink.out.log" ||
    fail "sink summary does not report 11 messages"
grep -q 'bodies aborted: *1$' "$workdir/sink.out.log" ||
    fail "sink summary does not report the cut message as aborted"
check_store

# With the sink gone, blast must fail and say why.
blast_status=0
timeout 30 "$bench" blast --server "127.0.0.1:$port" --connections 1 \
    --messages 2 --timeout 10 >"$workdir/refused.log" 2>&1 ||
    blast_status=$?
[[ $blast_status -eq 1 ]] ||
    fail "blast against a closed port exited with $blast_status, expected 1"
grep -q 'connect failed' "$workdir/refused.log" ||
    fail "blast did not report the failed connect"
grep -q 'connection failures: *1$' "$workdir/refused.log" ||
    fail "blast did not count the connection failure"

echo "bench_smoke: ok"
