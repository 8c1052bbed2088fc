#!/usr/bin/env bash
# bench/compare-tools rejects each invalid option with exit status 2 and
# a message naming the option, before it measures anything.
#
# usage: bench_compare_options.sh SOURCE_DIR
set -u
script=$1/bench/compare-tools
failed=0
count=0

# check NAME MESSAGE ARGS...: compare-tools ARGS exits 2 and prints
# MESSAGE.
check() {
    local name=$1 message=$2 output status
    shift 2
    count=$((count + 1))
    output=$(timeout 30 "$script" "$@" 2>&1)
    status=$?
    if [ "$status" -eq 2 ] && [[ $output == *"$message"* ]]; then
        echo "ok $count - $name"
    else
        echo "not ok $count - $name"
        echo "# exit $status, expected 2 and: $message"
        printf '%s\n' "$output" | sed 's/^/# /'
        failed=1
    fi
}

check "reps without value" "--reps needs a value" --reps
check "build without value" "--build needs a value" --build
check "reps zero" 'invalid --reps "0": expected at least 1' --reps 0
check "reps not a number" 'invalid --reps "x": expected a whole number' \
    --reps x
check "total below connections" \
    'invalid --total "50": expected at least 100' --total 50
check "total not a multiple" \
    "invalid --total 150: expected a multiple of 100" --total 150
check "client timeout zero" \
    'invalid --client-timeout "0": expected at least 1' \
    --client-timeout 0
check "server timeout not a number" \
    'invalid --server-timeout "5x": expected a whole number' \
    --server-timeout 5x
check "single total zero" \
    'invalid --single-total "0": expected at least 1' --single-total 0
check "hold seconds too long" \
    'invalid --hold-seconds "1234567890": expected at most 9 digits' \
    --hold-seconds 1234567890
check "seconds out of range" 'invalid --seconds "61"' --seconds 61
check "unknown option" "unknown option --bogus" --bogus
echo "1..$count"
exit "$failed"
