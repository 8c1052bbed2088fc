#!/usr/bin/env bash
# Smoke test of ringrelay-bench: start a sink on loopback with --store,
# send it messages with blast and with a hand-driven SMTP session, and
# check the counts and the stored files.
#
# usage: bench_smoke.sh [PATH-TO-ringrelay-bench]
# The binary defaults to $RINGRELAY_BENCH, then build/bench/ringrelay-bench.
# Everything runs on 127.0.0.1; every step has a timeout. meson runs it
# in a private network namespace (netns_run.sh).
set -euo pipefail

bench=${1:-${RINGRELAY_BENCH:-build/bench/ringrelay-bench}}
if [[ ! -x $bench ]]; then
    echo "bench_smoke: $bench is not an executable; pass its path" >&2
    exit 1
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/bench_smoke.XXXXXX")
sink_pid=""
blast_pid=""
port=""

cleanup() {
    if [[ -n $blast_pid ]] && kill -0 "$blast_pid" 2>/dev/null; then
        kill -KILL "$blast_pid" 2>/dev/null || true
        wait "$blast_pid" 2>/dev/null || true
    fi
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

# Start the sink on a random port in 20000-40000, storing into $1, with
# the sink options that follow, retrying when the port is taken. The
# sink stops by itself after 120 s if the trap never runs.
start_sink() {
    local store=$1
    shift
    for attempt in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 20001))
        # Emptied here, because the sink's own redirection may come after
        # the first grep below, which would then find the line of the
        # sink before.
        : >"$workdir/sink.err.log"
        "$bench" sink --listen "127.0.0.1:$port" --store "$store" \
            --max-seconds 120 "$@" >"$workdir/sink.out.log" \
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
        file=$(printf '%s/%012d.msg' "$store" "$n")
        [[ -f $file ]] || fail "missing $file"
        check_blast_file "$file"
    done
    seqs=$(grep -h '^X-Blast-Seq: ' "$store"/00000000000[0-9].msg \
        "$store"/000000000010.msg | tr -d '\r' | cut -d' ' -f2 | sort -n |
        tr '\n' ' ')
    expected_seqs=$(seq 1 10 | tr '\n' ' ')
    [[ $seqs == "$expected_seqs" ]] ||
        fail "X-Blast-Seq values are '$seqs', expected '$expected_seqs'"

    file=$store/000000000011.msg
    printf '%s\r\n' 'MAIL FROM:<dots@example.test>' \
        'RCPT TO:<dest@example.test>' '' 'Subject: dots' '' \
        '.leading dot' '..two dots' 'no dot.' >"$workdir/expected.msg"
    cmp -s "$file" "$workdir/expected.msg" ||
        fail "$file differs from the unstuffed message: $(od -c "$file")"
}

stop_sink() {
    kill -TERM "$sink_pid"
    sink_status=0
    wait "$sink_pid" || sink_status=$?
    sink_pid=""
    [[ $sink_status -eq 0 ]] || fail "sink exited with status $sink_status"
}

# Check that the stats file $1 has exactly the keys ringrelay-bench run
# reads, in order, then the ones added after them, each with a number,
# and that key $2 is $3.
check_stats_file() {
    local file=$1 want_key=$2 want_value=$3 keys
    keys=$(cut -d= -f1 "$file" | tr '\n' ' ')
    [[ $keys == "sent accepted rejected failed connection_failures \
elapsed_s msgs_per_s mb_per_s data_p50_ms data_p90_ms data_p99_ms \
data_p999_ms data_max_ms first_send_wall_us last_reply_wall_us \
not_finished connections_opened accepted_rcpts " ]] ||
        fail "$file has keys '$keys'"
    if grep -q -v -E '^[a-z0-9_]+=[0-9]+(\.[0-9]+)?$' "$file"; then
        fail "$file has a line that is not key=number: $(cat "$file")"
    fi
    grep -q "^$want_key=$want_value\$" "$file" ||
        fail "$file does not have $want_key=$want_value: $(cat "$file")"
    if compgen -G "$(dirname "$file")/.blast-stats.*" >/dev/null; then
        fail "temporary stats file left beside $file"
    fi
}

# Exit status 2 and an error naming the option for a bad command line.
expect_usage_error() {
    local want=$1 status=0
    shift
    timeout 10 "$bench" blast "$@" >"$workdir/usage.log" 2>&1 || status=$?
    [[ $status -eq 2 ]] ||
        fail "blast $* exited with $status, expected 2"
    grep -q -F -- "$want" "$workdir/usage.log" ||
        fail "blast $* did not name $want: $(cat "$workdir/usage.log")"
}

# blast's newer options against a second sink: a connection per message
# with templates and the report files, a duration, an open-loop rate
# without pipelining, and message files from a directory.
blast_options_smoke() {
    local store=$workdir/store2 bodies=$workdir/bodies file
    start_sink "$store"

    timeout 60 "$bench" blast --server "127.0.0.1:$port" --connections 4 \
        --messages 20 --per-connection 1 --rcpts 2 --domains 2 \
        --from 'bounce%n@example.test' --to 'u%n.%r@d%d.example.test' \
        --json "$workdir/blast.json" --stats-file "$workdir/blast.stats" \
        --timeout 30 >"$workdir/per-connection.log" 2>&1 ||
        fail "blast --per-connection 1 did not succeed"
    grep -q 'connections opened: *20$' "$workdir/per-connection.log" ||
        fail "blast --per-connection 1 did not open 20 connections"
    check_stats_file "$workdir/blast.stats" accepted 20
    check_stats_file "$workdir/blast.stats" connections_opened 20
    check_stats_file "$workdir/blast.stats" not_finished 0
    python3 - "$workdir/blast.json" <<'PY' || fail "bad --json output"
import json, sys
report = json.load(open(sys.argv[1]))
assert report["summary"]["accepted"] == 20, report["summary"]
assert report["reply_codes"]["rcpt"]["250"] == 40, report["reply_codes"]
assert report["latency_ms"]["data"]["count"] == 20
assert sum(s["accepted"] for s in report["series"]) == 20
for key in ("t", "accepted", "bytes", "rate", "data_p50_ms", "data_p90_ms",
            "data_p99_ms", "data_p999_ms"):
    assert key in report["series"][-1], key
PY
    "$(dirname "$0")/../../bench/plot" "$workdir/blast.json" \
        "$workdir/chart" >"$workdir/plot.log" 2>&1 ||
        fail "bench/plot failed on blast's --json report"
    [[ -s $workdir/chart-throughput.png && -s $workdir/chart-latency.png ]] ||
        fail "bench/plot wrote no charts from blast's --json report"
    file=$(grep -l '^X-Blast-Seq: 7'$'\r$' "$store"/*.msg) ||
        fail "no stored message with X-Blast-Seq 7"
    grep -q '^MAIL FROM:<bounce7@example.test>'$'\r$' "$file" ||
        fail "$file: sender template not expanded"
    grep -q '^RCPT TO:<u7.1@d1.example.test>'$'\r$' "$file" &&
        grep -q '^RCPT TO:<u7.2@d2.example.test>'$'\r$' "$file" ||
        fail "$file: recipient template not expanded"
    grep -q '^X-Blast-Rcpts: 2'$'\r$' "$file" ||
        fail "$file: no X-Blast-Rcpts header"

    timeout 60 "$bench" blast --server "127.0.0.1:$port" --connections 2 \
        --duration 2 --per-connection 5 >"$workdir/duration.log" \
        2>"$workdir/duration.err" || fail "blast --duration did not succeed"
    grep -q '^blast: elapsed=1s sent=[0-9]* accepted=[0-9]* rate=' \
        "$workdir/duration.err" || fail "blast printed no progress line"
    awk '/^  elapsed:/ { e = $2 } END { exit !(e >= 2 && e < 10) }' \
        "$workdir/duration.log" ||
        fail "blast --duration 2 did not run for 2 s"

    timeout 60 "$bench" blast --server "127.0.0.1:$port" --connections 3 \
        --messages 50 --rate 100 --pipelining off >"$workdir/rate.log" \
        2>&1 || fail "blast --rate did not succeed"
    grep -q 'accepted (2xx): *50$' "$workdir/rate.log" ||
        fail "blast --rate did not report 50 messages accepted"
    grep -q 'open loop at 100/s' "$workdir/rate.log" ||
        fail "blast --rate did not report an open loop"
    # The last of 50 messages at 100/s is due 0.49 s after the start.
    awk '/^  elapsed:/ { e = $2 } END { exit !(e >= 0.49 && e < 10) }' \
        "$workdir/rate.log" ||
        fail "50 messages at 100/s did not take 0.49 s or more"

    mkdir "$bodies"
    printf 'Subject: one\n\n.leading dot\nlast line' >"$bodies/1.eml"
    printf 'Subject: two\r\n\r\nbody\r\n' >"$bodies/2.eml"
    # The store may hold more files than one command line takes.
    find "$store" -maxdepth 1 -name '*.msg' -delete
    timeout 60 "$bench" blast --server "127.0.0.1:$port" --connections 1 \
        --messages 4 --body-dir "$bodies" >"$workdir/body-dir.log" 2>&1 ||
        fail "blast --body-dir did not succeed"
    for file in "$store"/*.msg; do
        if grep -q '^X-Blast-Seq: [13]'$'\r$' "$file"; then
            tail -n 4 "$file" | cmp -s - <(printf '%s\r\n' \
                'Subject: one' '' '.leading dot' 'last line') ||
                fail "$file: --body-dir file 1 changed: $(od -c "$file")"
        else
            tail -n 3 "$file" | cmp -s - <(printf '%s\r\n' \
                'Subject: two' '' 'body') ||
                fail "$file: --body-dir file 2 changed: $(od -c "$file")"
        fi
    done
    stop_sink

    expect_usage_error '--pipelining' --pipelining maybe
    expect_usage_error '--duration 1' --messages 5 --duration 1
    expect_usage_error 'expected USER:PASS' --auth user-without-password
    expect_usage_error '--to' --to 'user%x@example.test'
    expect_usage_error '--server' --server 127.0.0.1:99999
    expect_usage_error 'missing port' --server 127.0.0.1
    mkdir "$workdir/empty"
    expect_usage_error "--body-dir \"$workdir/empty\"" \
        --body-dir "$workdir/empty"
    expect_usage_error "--json \"$workdir\": Is a directory" \
        --json "$workdir"
    expect_usage_error "No such file or directory" \
        --stats-file "$workdir/missing/s"
}

# Check blast's --json report $1 of $2 messages: every message ended in
# exactly one outcome, and only messages whose MAIL got a reply failed.
# Print the failed messages and those rejected with 421 for the caller.
check_outcomes() {
    python3 - "$1" "$2" <<'PY' || fail "bad outcome counts in $1"
import json, sys
report = json.load(open(sys.argv[1]))
summary = report["summary"]
total = int(sys.argv[2])
ended = (summary["accepted"] + summary["rejected"] + summary["failed"]
         + summary["not_finished"])
assert ended == total, summary
mail_replies = sum(report["reply_codes"]["mail"].values())
assert summary["failed"] <= mail_replies, (summary, mail_replies)
assert summary["failed_never_sent"] == 0, summary
print(summary["failed"], report["reply_codes"]["rejected"].get("421", 0))
PY
}

# Run blast with $1 messages over 4 connections against the sink on
# $port, with the blast options that follow; blast exits 1 because some
# messages do not get through.
blast_against_faults() {
    local messages=$1 status=0
    shift
    timeout 60 "$bench" blast --server "127.0.0.1:$port" --connections 4 \
        --messages "$messages" --timeout 30 --json "$workdir/fault.json" \
        "$@" >"$workdir/fault.log" 2>&1 || status=$?
    [[ $status -eq 1 ]] ||
        fail "blast against faults exited with $status, expected 1"
}

# Faults that close connections: blast reconnects and sends the rest of
# each share, and its counts match the sink's.
blast_fault_smoke() {
    local counts
    start_sink "$workdir/store3" --disconnect-in-data 0.3 --seed 1
    blast_against_faults 200
    stop_sink
    counts=$(check_outcomes "$workdir/fault.json" 200)
    grep -q "disconnects in DATA (p=0.3): ${counts% *}\$" \
        "$workdir/sink.out.log" ||
        fail "blast failed ${counts% *}, the sink disconnected otherwise"
    grep -q "messages accepted: *$((200 - ${counts% *}))\$" \
        "$workdir/sink.out.log" ||
        fail "the sink did not accept the messages blast did not fail"

    # A 421 rejects the message, and the server then closes: no
    # message fails, and no connection counts as failed.
    for stage in data mail; do
        for pipelining in on off; do
            start_sink "$workdir/store4" --seed 1 \
                "--$stage-reply" '421 4.3.2 bye:0.05'
            blast_against_faults 200 --pipelining "$pipelining"
            stop_sink
            counts=$(check_outcomes "$workdir/fault.json" 200)
            grep -q "$stage reply \"421 4.3.2 bye\" (p=0.05): ${counts#* }\$" \
                "$workdir/sink.out.log" ||
                fail "blast counted ${counts#* } 421 replies to $stage"
            [[ ${counts% *} -eq 0 ]] ||
                fail "blast failed messages after a 421 to $stage"
            grep -q 'connection failures: *0$' "$workdir/fault.log" ||
                fail "blast counted the close after a 421 as a failure:" \
                    "$(grep '^blast: connection' "$workdir/fault.log")"
        done
    done

    start_sink "$workdir/store5" --max-connections 5
    timeout 60 "$bench" blast --server "127.0.0.1:$port" --connections 8 \
        --messages 400 --timeout 30 >"$workdir/fault.log" 2>&1 ||
        fail "blast with 8 connections to a sink taking 5 did not succeed"
    stop_sink
    grep -q 'accepted (2xx): *400$' "$workdir/fault.log" ||
        fail "blast did not send every message past --max-connections"

    # A closed port: each slot gives up after 5 connects, well before
    # the duration ends.
    timeout 30 "$bench" blast --server "127.0.0.1:$port" --connections 3 \
        --duration 3 >"$workdir/down.log" 2>&1 && fail "blast succeeded"
    awk '/connections opened:/ { n = $3 } END { exit !(n >= 3 && n <= 30) }' \
        "$workdir/down.log" ||
        fail "blast against a closed port: $(grep opened "$workdir/down.log")"
    awk '/^  elapsed:/ { e = $2 } END { exit !(e < 2) }' \
        "$workdir/down.log" || fail "blast against a closed port kept trying"
}

# Start blast in the background, as a script does, so that it inherits
# SIGINT ignored; its options follow. Sets blast_pid.
start_blast() {
    "$bench" blast --server "127.0.0.1:$port" --connections 4 \
        --timeout 30 "$@" >"$workdir/signal.log" 2>"$workdir/signal.err" &
    blast_pid=$!
}

# Wait for blast to exit and fail unless its status is $1.
expect_blast_exit() {
    local want=$1 status=0
    wait "$blast_pid" || status=$?
    blast_pid=""
    [[ $status -eq $want ]] ||
        fail "blast exited with $status after a signal, expected $want"
}

# SIGINT and SIGTERM: the first lets messages in flight finish and
# writes the reports, a second one exits at once.
blast_signal_smoke() {
    local json=$workdir/signal.json stats=$workdir/signal.stats
    start_sink "$workdir/store6" --data-delay 100
    start_blast --messages 100000 --json "$json" --stats-file "$stats"
    sleep 1
    kill -INT "$blast_pid"
    expect_blast_exit 1
    grep -q 'interrupted by: *SIGINT$' "$workdir/signal.log" ||
        fail "blast printed no summary after SIGINT"
    [[ -s $stats ]] || fail "blast wrote no --stats-file after SIGINT"
    check_outcomes "$json" 100000 >/dev/null
    python3 - "$json" <<'PY' || fail "bad --json report after SIGINT"
import json, sys
summary = json.load(open(sys.argv[1]))["summary"]
assert summary["interrupted"] is True, summary
assert summary["failed"] == 0, summary
assert summary["accepted"] > 0, summary
assert summary["not_started"] > 90000, summary
assert summary["elapsed_s"] < 3, summary
PY
    stop_sink

    start_sink "$workdir/store7" --data-delay 20000
    rm -f "$json"
    start_blast --messages 100 --json "$json"
    sleep 0.5
    kill -TERM "$blast_pid"
    sleep 0.3
    kill -TERM "$blast_pid"
    expect_blast_exit 143
    [[ ! -e $json ]] || fail "blast wrote --json after a second SIGTERM"

    # Replies that never come: blast waits 5 s, then reports them.
    start_blast --messages 100 --json "$json"
    sleep 0.5
    kill -TERM "$blast_pid"
    expect_blast_exit 1
    grep -q 'still in flight 5 s after' "$workdir/signal.err" ||
        fail "blast did not say that messages were still in flight"
    check_outcomes "$json" 100 >/dev/null
    python3 - "$json" <<'PY' || fail "bad --json report after SIGTERM"
import json, sys
summary = json.load(open(sys.argv[1]))["summary"]
assert summary["not_finished"] == 100, summary
assert 5 <= summary["elapsed_s"] < 8, summary
PY
    stop_sink
}

# An open-loop rate above what the sink can take: at the end of the
# duration the messages still waiting are dropped as not started.
blast_rate_deadline_smoke() {
    local json=$workdir/deadline.json status=0
    start_sink "$workdir/store8" --data-delay 100
    timeout 60 "$bench" blast --server "127.0.0.1:$port" --connections 5 \
        --rate 200 --duration 2 --json "$json" >"$workdir/deadline.log" \
        2>&1 || status=$?
    stop_sink
    [[ $status -eq 1 ]] || fail "blast --rate 200 exited with $status"
    check_outcomes "$json" 400 >/dev/null
    python3 - "$json" <<'PY' || fail "blast sent after the duration ended"
import json, sys
summary = json.load(open(sys.argv[1]))["summary"]
assert summary["failed"] == 0, summary
assert summary["not_started"] > 100, summary
assert summary["not_started"] == summary["not_finished"], summary
assert 2 <= summary["elapsed_s"] < 3, summary
PY
}

# A server that sends 421 closes the connection, so blast must send
# nothing after that reply. The sink closes at once and cannot show what
# came after, so a scripted peer replies 421 to MAIL, then waits 2 s
# for more bytes and prints what it got (nothing, once blast closed).
blast_421_peer_smoke() {
    local peer_port="" after status=0
    # Created first, because awk below may run before the redirection.
    : >"$workdir/peer.log"
    timeout 20 python3 - >"$workdir/peer.log" 2>&1 <<'PY' &
import socket
server = socket.create_server(("127.0.0.1", 0))
server.settimeout(10)
print("listening on", server.getsockname()[1], flush=True)
conn, _ = server.accept()
conn.settimeout(2)
conn.sendall(b"220 peer.example.test ESMTP\r\n")
received = b""
for reply in (b"250 peer.example.test\r\n", b"421 4.3.2 bye\r\n"):
    while b"\r\n" not in received:
        received += conn.recv(4096)
    received = received.split(b"\r\n", 1)[1]
    conn.sendall(reply)
try:
    while True:
        data = conn.recv(4096)
        if not data:
            break
        received += data
except socket.timeout:
    pass
print("after 421:", repr(received), flush=True)
PY
    local peer_pid=$!
    for _ in $(seq 50); do
        peer_port=$(awk '/^listening on/ { print $3 }' "$workdir/peer.log")
        [[ -n $peer_port ]] && break
        sleep 0.1
    done
    [[ -n $peer_port ]] ||
        fail "the 421 peer did not listen: $(cat "$workdir/peer.log")"
    timeout 30 "$bench" blast --server "127.0.0.1:$peer_port" \
        --connections 1 --messages 1 --pipelining off --timeout 10 \
        >"$workdir/peer-blast.log" 2>&1 || status=$?
    wait "$peer_pid" || fail "the 421 peer failed: $(cat "$workdir/peer.log")"
    [[ $status -eq 1 ]] || fail "blast against the 421 peer exited $status"
    after=$(grep '^after 421:' "$workdir/peer.log") ||
        fail "the 421 peer saw no end: $(cat "$workdir/peer.log")"
    [[ $after == "after 421: b''" ]] ||
        fail "blast sent more after a 421 reply: $after"
    grep -q 'rejected with 421: 1$' "$workdir/peer-blast.log" ||
        fail "blast did not count the message rejected with 421"
}

# Every MAIL or RCPT gets 421 without pipelining: each message is
# rejected on a connection of its own, closed by blast, and none fails.
blast_421_counts_smoke() {
    local stage
    for stage in mail rcpt; do
        start_sink "$workdir/store9" "--$stage-reply" '421 4.3.2 bye:1'
        blast_against_faults 20 --pipelining off
        stop_sink
        if ! python3 - "$workdir/fault.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
summary = report["summary"]
assert summary["rejected"] == 20, summary
assert report["reply_codes"]["rejected"] == {"421": 20}, report
assert summary["failed"] == 0, summary
assert summary["connection_failures"] == 0, summary
assert summary["connections_opened"] == 20, summary
assert summary["closed_after_421"] == 20, summary
PY
        then
            fail "421 to $stage: counts; blast's errors:" \
                "$(grep '^blast: connection' "$workdir/fault.log")"
        fi
        grep -q "$stage reply \"421 4.3.2 bye\" (p=1): 20\$" \
            "$workdir/sink.out.log" ||
            fail "the sink did not send 20 421 replies to $stage"
    done
}

# --idle: 200 connections held for 2 s, then each QUITs; the sink counts
# 200 sessions and no message. A closed port ends the run at once.
blast_idle_smoke() {
    local json=$workdir/idle.json status=0
    start_sink "$workdir/store10"
    timeout 30 "$bench" blast --idle --server "127.0.0.1:$port" \
        --connections 200 --duration 2 --json "$json" \
        --stats-file "$workdir/idle.stats" >"$workdir/idle.log" \
        2>"$workdir/idle.err" || fail "blast --idle did not succeed"
    stop_sink
    python3 - "$json" <<'PY' || fail "bad --json report of blast --idle"
import json, sys
report = json.load(open(sys.argv[1]))
summary = report["summary"]
assert report["options"]["idle"] is True, report["options"]
for key in ("connections_opened", "held_max", "held_at_end",
            "quit_replied"):
    assert summary[key] == 200, (key, summary)
assert summary["connection_failures"] == 0, summary
assert summary["idle_closed"] == 0, summary
assert 0 <= summary["all_held_s"] < 2, summary
assert 2 <= summary["elapsed_s"] < 5, summary
assert summary["vmhwm_kib"] > 0, summary
PY
    grep -q '^held_at_end=200$' "$workdir/idle.stats" ||
        fail "blast --idle stats file: $(cat "$workdir/idle.stats")"
    grep -q '^blast: elapsed=1s held=200 ' "$workdir/idle.err" ||
        fail "blast --idle printed no progress line with held=200"
    grep -q 'sessions: *200$' "$workdir/sink.out.log" ||
        fail "the sink did not see 200 sessions"
    grep -q 'messages accepted: *0$' "$workdir/sink.out.log" ||
        fail "the sink got messages from blast --idle"

    timeout 30 "$bench" blast --idle --server "127.0.0.1:$port" \
        --connections 20 --duration 10 >"$workdir/idle-down.log" 2>&1 ||
        status=$?
    [[ $status -eq 1 ]] ||
        fail "blast --idle against a closed port exited with $status"
    grep -q 'connection failures: *20$' "$workdir/idle-down.log" ||
        fail "blast --idle did not count 20 failed connections"
    awk '/^  elapsed:/ { e = $2 } END { exit !(e < 2) }' \
        "$workdir/idle-down.log" ||
        fail "blast --idle against a closed port did not end at once"

    # A hard limit on open files below --connections stops blast before
    # it connects.
    status=0
    (ulimit -n 200 && ulimit -Hn 200 &&
        exec timeout 10 "$bench" blast --idle --server "127.0.0.1:$port" \
            --connections 500 --duration 1) >"$workdir/nofile.log" 2>&1 ||
        status=$?
    [[ $status -eq 1 ]] ||
        fail "blast with too few open files exited with $status"
    grep -q 'needs 564 open files, but RLIMIT_NOFILE is 200' \
        "$workdir/nofile.log" ||
        fail "blast did not explain the open file limit:" \
            "$(cat "$workdir/nofile.log")"

    expect_usage_error '--idle needs --duration' --idle
    expect_usage_error '--size has no effect with --idle' --idle \
        --duration 1 --size 10
}

start_sink "$workdir/store"

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
stop_sink
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
grep -q 'connection failures: *5$' "$workdir/refused.log" ||
    fail "blast did not give up after 5 failed connects"
grep -q 'giving up after 5 connections' "$workdir/refused.log" ||
    fail "blast did not say why it gave up"
grep -q 'never sent, the connection gave up: *2$' "$workdir/refused.log" ||
    fail "blast did not count the unsent messages as given up"

blast_options_smoke
blast_fault_smoke
blast_signal_smoke
blast_rate_deadline_smoke
blast_421_peer_smoke
blast_421_counts_smoke
blast_idle_smoke

echo "bench_smoke: ok"
