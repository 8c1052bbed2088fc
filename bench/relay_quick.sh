#!/usr/bin/env bash
# Quick end-to-end measurement until `ringrelay-bench run` exists: a sink on
# 127.0.0.1:2526, ringrelay with that sink as smarthost, and blast sending
# N messages of S bytes over C connections. Prints blast's summary, the
# sink's delivery rate, and the relay's CPU time.
#
# Runs itself inside a private network namespace (needs root). Bounded:
# blast stops after 120 s and the wait for deliveries after 60 s.
# usage: bench/relay_quick.sh [BUILD_DIR]
#   env: C=50 N=20000 S=1024 DURABILITY=fsync|batch|none TARGET=relay|sink
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
if [ "${RINGRELAY_IN_NETNS:-}" != 1 ]; then
    exec "$top/tests/integration/netns_run.sh" "$0" "$@"
fi
build=$(cd "${1:-$top/build}" && pwd)
bench="$build/bench/ringrelay-bench"
work=$(mktemp -d)
sink_pid=""
relay_pid=""
cleanup() {
    [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null && wait "$relay_pid"
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid"
    rm -rf "$work"
}
trap cleanup EXIT

"$bench" sink --listen 127.0.0.1:2526 >"$work/sink.out" 2>"$work/sink.err" &
sink_pid=$!
port=2526
if [ "${TARGET:-relay}" = relay ]; then
    cat >"$work/relay.conf" <<CONF
queue_dir = "$work/queue";
hostname = "relay.test";
smarthost = "127.0.0.1:2526";
durability = "${DURABILITY:-fsync}";
log_level = "warning";
CONF
    "$build/ringrelay" -c "$work/relay.conf" 2>"$work/relay.err" &
    relay_pid=$!
    port=2525
fi
sleep 0.5

start=$(date +%s.%N)
timeout 120 "$bench" blast --server "127.0.0.1:$port" \
    --connections "${C:-50}" --messages "${N:-20000}" --size "${S:-1024}" \
    | grep -E 'accepted|elapsed|messages/s|MB/s'
for _ in $(seq 600); do
    got=$(grep -o '[0-9]* total' "$work/sink.err" | tail -n 1 | cut -d' ' -f1)
    [ "${got:-0}" = "${N:-20000}" ] && break
    sleep 0.1
done
end=$(date +%s.%N)
# The sink reports its total once a second, so this time is rounded up to
# the next whole second; its own rate below is exact.
echo "  sink had ${got:-0} after: $(echo "$end - $start" | bc) s"
if [ -n "$relay_pid" ]; then
    echo "  relay CPU seconds:    $(awk '{print ($14 + $15) / 100}' \
        "/proc/$relay_pid/stat")"
fi
kill "$sink_pid" && wait "$sink_pid"
sink_pid=""
grep 'messages/s' "$work/sink.out" | sed 's/^ */  sink /'
