#include "bench/bench_stats.h"

#include <inttypes.h>
#include <time.h>

void bench_code_tally_add(struct bench_code_tally *tally, int code)
{
    if (code < BENCH_CODE_MIN || code > BENCH_CODE_MAX) {
        tally->other++;
        return;
    }
    tally->count[code - BENCH_CODE_MIN]++;
}

uint64_t bench_code_tally_total(const struct bench_code_tally *tally)
{
    uint64_t total = tally->other;

    for (int i = 0; i <= BENCH_CODE_MAX - BENCH_CODE_MIN; i++) {
        total += tally->count[i];
    }
    return total;
}

void bench_code_tally_print(const struct bench_code_tally *tally,
                            const char *prefix, FILE *out)
{
    for (int i = 0; i <= BENCH_CODE_MAX - BENCH_CODE_MIN; i++) {
        if (tally->count[i] != 0) {
            fprintf(out, "%s %d: %" PRIu64 "\n", prefix,
                    i + BENCH_CODE_MIN, tally->count[i]);
        }
    }
    if (tally->other != 0) {
        fprintf(out, "%s other: %" PRIu64 "\n", prefix, tally->other);
    }
}

/* clock_gettime(2) fails only for an invalid clock id or pointer, so its
 * result is not checked. */
uint64_t bench_monotonic_ns(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

uint64_t bench_wall_us(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

double bench_rate(double count, double seconds)
{
    if (seconds <= 0) {
        return 0;
    }
    return count / seconds;
}
