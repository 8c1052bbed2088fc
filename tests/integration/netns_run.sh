#!/usr/bin/env bash
# Runs a command inside a private network namespace with only loopback up,
# so a test can bind port 25 and 53 and cannot reach any other network.
# Usage: netns_run.sh COMMAND [ARG...]
set -eu
if [ "${RINGRELAY_IN_NETNS:-}" != 1 ]; then
    export RINGRELAY_IN_NETNS=1
    exec unshare --net -- "$0" "$@"
fi
ip link set lo up
exec "$@"
