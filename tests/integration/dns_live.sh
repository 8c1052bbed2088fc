#!/usr/bin/env bash
# Runs the live resolver tests (test_dns_live) against ldns-testns serving
# resolver_zone.data, inside a private network namespace, so the test name
# server, which binds the wildcard address, is reachable only over this
# namespace's loopback.
# Usage: dns_live.sh TEST_DNS_LIVE_EXECUTABLE [CRITERION ARGS...]
set -eu

if [ "$#" -lt 1 ]; then
    echo "usage: $0 TEST_DNS_LIVE_EXECUTABLE [ARGS...]" >&2
    exit 2
fi
if [ "${RINGRELAY_DNS_NETNS:-}" != 1 ]; then
    export RINGRELAY_DNS_NETNS=1
    exec unshare --net -- "$0" "$@"
fi
ip link set lo up

# A fresh namespace has every port free, so a fixed port is safe.
port=5353
workdir=$(mktemp -d /tmp/ringrelay-dns-live.XXXXXX)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

zone="$(cd "$(dirname "$0")" && pwd)/resolver_zone.data"

# -v logs every query, line-buffered, so tests can count the queries
# that reached the server.
stdbuf -oL ldns-testns -v -p "$port" "$zone" > "$workdir/server.log" 2>&1 &
server_pid=$!

# Wait until the server answers, at most about 5 seconds.
ready=0
for _ in $(seq 1 50); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        break
    fi
    if ss -lun 2>/dev/null | grep -q ":$port "; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "Bail out! ldns-testns did not start on port $port" >&2
    cat "$workdir/server.log" >&2 || true
    exit 1
fi

export RINGRELAY_TEST_DNS="127.0.0.1:$port"
export RINGRELAY_TEST_DNS_LOG="$workdir/server.log"
"$@"
