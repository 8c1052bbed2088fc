#!/usr/bin/env bash
# Smoke test of bench/compare-tools with small counts: it must finish,
# exit 0 (every client run succeeded and each server counted every
# message), and print a rate for each cell, each server's memory and
# blast's memory with --idle.
#
# usage: bench_compare_smoke.sh SOURCE_DIR BUILD_DIR
set -u
source_dir=$1
build_dir=$2
out=$(mktemp "${TMPDIR:-/tmp}/bench_compare_smoke.XXXXXX")
trap 'rm -f "$out"' EXIT

fail() {
    echo "bench_compare_smoke: FAIL: $*" >&2
    sed 's/^/  /' "$out" >&2
    exit 1
}

status=0
timeout 120 "$source_dir/bench/compare-tools" --build "$build_dir" \
    --reps 1 --total 300 --single-total 100 --idle 300 --hold-seconds 1 \
    >"$out" 2>&1 ||
    status=$?
[[ $status -eq 0 ]] || fail "compare-tools exited with status $status"

for row in "smtp-source +smtp-sink" "blast +smtp-sink" \
    "smtp-source +sink" "blast +sink"; do
    grep -Eq "^$row +[0-9]+ +([0-9]+|n/a)$" "$out" ||
        fail "no rates for \"$row\""
done
for server in smtp-sink sink; do
    grep -Eq "^  $server: VmRSS [0-9.]+ MiB" "$out" ||
        fail "no memory line for $server"
done
for client in smtp-source blast; do
    grep -Eq "^  $client: [0-9.]+ MiB$" "$out" ||
        fail "no peak memory for $client"
done
idle_line='^  blast --idle: [0-9.]+ MiB, 300 of 300 held at once'
idle_line+=', all held after [0-9.]+ s$'
grep -Eq "$idle_line" "$out" || fail "no memory line for blast --idle"
grep -q '^  blast/smtp-source against sink, 3 per connection: [0-9.]*$' \
    "$out" || fail "no blast/smtp-source ratio"
echo "bench_compare_smoke: ok"
