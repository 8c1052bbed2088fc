#!/usr/bin/env bash
# Smoke test of bench/delivery-domains with small counts. One round
# sends 200 messages over 50 domains, then over one domain. Both runs
# must succeed, so every message is accepted and delivered once. Each
# must print its rates, sessions and DNS queries, and the round its
# ratio. The relay's DNS cache must hold: 50 MX queries and at most two
# per MX host (A and AAAA), and at most 3 queries for the one domain.
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

status=0
N=200 DOMAINS=50 HOSTS=4 C=10 BUILD=$build_dir \
    timeout 60 "$source_dir/bench/delivery-domains" 1 >"$out" 2>&1 ||
    status=$?
[[ $status -eq 0 ]] || fail "delivery-domains exited with status $status"

num='[0-9]+(\.[0-9]+)?'
for domains in 50 1; do
    line=$(grep -E "^domains=$domains round=1 " "$out") ||
        fail "no line for $domains domains"
    [[ $line =~ delivered/s=$num\ accepted/s=$num\ cpu_per_1000=$num\ \
sessions=([0-9]+)\ sessions_peak=[0-9]+\ dns_queries=([0-9]+)\ \
udp_drops=0$ ]] || fail "malformed line: $line"
    sessions=${BASH_REMATCH[4]}
    queries=${BASH_REMATCH[5]}
    [[ $sessions -ge 1 ]] || fail "no session counted: $line"
    if [[ $domains == 50 ]]; then
        [[ $queries -ge 54 && $queries -le 58 ]] ||
            fail "expected 54 to 58 DNS queries: $line"
        [[ $sessions -ge 50 ]] || fail "fewer sessions than domains: $line"
    else
        [[ $queries -ge 2 && $queries -le 3 ]] ||
            fail "expected 2 or 3 DNS queries: $line"
    fi
done
grep -Eq "^round=1 ratio many/one delivered/s=$num$" "$out" ||
    fail "no ratio line"
echo "bench_domains_smoke: ok"
