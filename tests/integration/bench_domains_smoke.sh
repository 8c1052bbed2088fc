#!/usr/bin/env bash
# Smoke test of bench/delivery-domains with small counts. The first
# invocation sends 200 messages over 50 domains that share 4 MX hosts,
# so 4 destinations, then over one domain. The second sends them over
# 50 domains with an MX host each, 50 hosts on 4 addresses (HOSTS >
# ADDRS), so 50 destinations, and skips the one-domain run. Every run
# must succeed, so every message is accepted and delivered once. Each
# must print its rates, sessions and DNS queries, and the first
# invocation a ratio line. The relay must answer repeated lookups from
# its DNS cache, so it sends one MX query per domain, at most two per MX
# host (A and AAAA), and at most 3 queries for the one domain. Each
# destination needs at least one session.
#
# usage: bench_domains_smoke.sh SOURCE_DIR BUILD_DIR
set -u
source_dir=$1
build_dir=$2
out=$(mktemp "${TMPDIR:-/tmp}/bench_domains_smoke.XXXXXX")
trap 'rm -f "$out"' EXIT

fail() {
    echo "bench_domains_smoke: FAIL: $*" >&2
    sed 's/^/  /' "$out" >&2
    exit 1
}

# run_bench HOSTS ADDRS ONE: one round over 50 domains, output in $out.
run_bench() {
    local status=0
    N=200 DOMAINS=50 HOSTS=$1 ADDRS=$2 ONE=$3 C=10 BUILD=$build_dir \
        timeout 60 "$source_dir/bench/delivery-domains" 1 >"$out" 2>&1 ||
        status=$?
    [[ $status -eq 0 ]] ||
        fail "delivery-domains with HOSTS=$1 ADDRS=$2 exited with" \
            "status $status"
}

num='[0-9]+(\.[0-9]+)?'

# check_line DOMAINS MIN-QUERIES MAX-QUERIES MIN-SESSIONS
check_line() {
    local domains=$1 min_queries=$2 max_queries=$3 min_sessions=$4
    local line sessions queries
    line=$(grep -E "^domains=$domains round=1 " "$out") ||
        fail "no line for $domains domains"
    [[ $line =~ delivered/s=$num\ accepted/s=$num\ cpu_per_1000=$num\ \
sessions=([0-9]+)\ sessions_peak=[0-9]+\ dns_queries=([0-9]+)\ \
udp_drops=0$ ]] || fail "malformed line: $line"
    sessions=${BASH_REMATCH[4]}
    queries=${BASH_REMATCH[5]}
    [[ $queries -ge $min_queries && $queries -le $max_queries ]] ||
        fail "expected $min_queries to $max_queries DNS queries: $line"
    [[ $sessions -ge $min_sessions ]] ||
        fail "expected at least $min_sessions sessions: $line"
}

run_bench 4 4 1
grep -q ' HOSTS=4 ADDRS=4 ' "$out" || fail "no HOSTS and ADDRS in header"
check_line 50 54 58 4
check_line 1 2 3 1
grep -Eq "^round=1 ratio many/one delivered/s=$num$" "$out" ||
    fail "no ratio line"

run_bench 50 4 0
grep -q ' HOSTS=50 ADDRS=4 ' "$out" || fail "no HOSTS and ADDRS in header"
check_line 50 100 150 50
if grep -Eq "^domains=1 " "$out"; then
    fail "one-domain run with ONE=0"
fi
echo "bench_domains_smoke: ok"
