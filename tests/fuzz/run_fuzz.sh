#!/usr/bin/env bash
# Runs a libFuzzer target for a fixed number of inputs over its seed
# corpus, for tools/test. New inputs go to a temporary folder that is
# removed at exit, so the seed corpus in the source tree stays as it is.
# An input that crashes is saved in CRASH_DIR, and the run then exits
# non-zero.
#
# usage: run_fuzz.sh TARGET SEED_DIR DICT RUNS MAX_SECONDS CRASH_DIR
set -u

if [ $# -ne 6 ]; then
    echo "usage: run_fuzz.sh TARGET SEED_DIR DICT RUNS MAX_SECONDS" \
        "CRASH_DIR" >&2
    exit 2
fi
target=$1
seeds=$2
dict=$3
runs=$4
seconds=$5
crashes=$6

if [ ! -d "$seeds" ]; then
    echo "run_fuzz.sh: seed corpus folder not found: $seeds" >&2
    exit 2
fi
if ! mkdir -p "$crashes"; then
    echo "run_fuzz.sh: failed to create crash folder $crashes" >&2
    exit 1
fi
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT

# An input that runs longer than -timeout seconds counts as a hang. The
# slowest inputs seen so far took less than a second. libFuzzer exits 77
# on a crash by default, which meson reads as a skipped test, so crashes
# and hangs exit 1 instead.
"$target" -runs="$runs" -max_total_time="$seconds" -timeout=25 \
    -error_exitcode=1 -timeout_exitcode=1 \
    -dict="$dict" -artifact_prefix="$crashes/" -print_final_stats=1 \
    "$work" "$seeds"
status=$?
if [ "$status" -ne 0 ]; then
    echo "run_fuzz.sh: $target exited with status $status; inputs that" \
        "crashed it are in $crashes" >&2
fi
exit "$status"
