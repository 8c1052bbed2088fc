#!/usr/bin/env bash
# Runs the live resolver tests (test_dns_live) against ldns-testns inside a
# private network namespace, so the test name server, which binds the
# wildcard address, is reachable only over this namespace's loopback.
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

# Entries match first to last. Each name ends with a catch-all entry that
# answers NOERROR without records (NODATA) for the types not listed.
# truncated.test has TC set over UDP and the full answer over TCP, and
# alwaystc.test is truncated over both.
cat > "$workdir/zone.data" <<'DATA'
$ORIGIN test.
$TTL 300

ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA RD RA NOERROR
SECTION QUESTION
example.test. IN MX
SECTION ANSWER
example.test. IN MX 10 mx1.example.test.
ENTRY_END

ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA RD RA NOERROR
SECTION QUESTION
mx1.example.test. IN A
SECTION ANSWER
mx1.example.test. IN A 127.0.0.1
ENTRY_END

ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA RD RA NOERROR
SECTION QUESTION
implicit.test. IN A
SECTION ANSWER
implicit.test. IN A 127.0.0.1
ENTRY_END

ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA RD RA NOERROR
SECTION QUESTION
nullmx.test. IN MX
SECTION ANSWER
nullmx.test. IN MX 0 .
ENTRY_END

ENTRY_BEGIN
MATCH opcode qtype qname UDP
ADJUST copy_id
REPLY QR AA TC RD RA NOERROR
SECTION QUESTION
truncated.test. IN MX
ENTRY_END

ENTRY_BEGIN
MATCH opcode qtype qname TCP
ADJUST copy_id
REPLY QR AA RD RA NOERROR
SECTION QUESTION
truncated.test. IN MX
SECTION ANSWER
truncated.test. IN MX 10 mx1.example.test.
ENTRY_END

ENTRY_BEGIN
MATCH opcode qtype qname
ADJUST copy_id
REPLY QR AA TC RD RA NOERROR
SECTION QUESTION
alwaystc.test. IN MX
ENTRY_END

ENTRY_BEGIN
MATCH opcode qname
ADJUST copy_id copy_query
REPLY QR AA RD RA NXDOMAIN
SECTION QUESTION
nx.test. IN MX
SECTION AUTHORITY
test. IN SOA ns.test. admin.test. 1 7200 3600 86400 60
ENTRY_END

ENTRY_BEGIN
MATCH opcode qname
ADJUST copy_id copy_query
REPLY QR RD RA SERVFAIL
SECTION QUESTION
servfail.test. IN MX
ENTRY_END

ENTRY_BEGIN
MATCH opcode qname
ADJUST copy_id copy_query
REPLY QR AA RD RA NOERROR
SECTION QUESTION
example.test. IN MX
SECTION AUTHORITY
test. IN SOA ns.test. admin.test. 1 7200 3600 86400 60
ENTRY_END

ENTRY_BEGIN
MATCH opcode qname
ADJUST copy_id copy_query
REPLY QR AA RD RA NOERROR
SECTION QUESTION
mx1.example.test. IN MX
SECTION AUTHORITY
test. IN SOA ns.test. admin.test. 1 7200 3600 86400 60
ENTRY_END

ENTRY_BEGIN
MATCH opcode qname
ADJUST copy_id copy_query
REPLY QR AA RD RA NOERROR
SECTION QUESTION
implicit.test. IN MX
SECTION AUTHORITY
test. IN SOA ns.test. admin.test. 1 7200 3600 86400 60
ENTRY_END
DATA

ldns-testns -p "$port" "$workdir/zone.data" > "$workdir/server.log" 2>&1 &
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
"$@"
