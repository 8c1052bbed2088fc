/* Measurement helpers for the bench subcommands: clocks, reply-code
 * tallies and rates. */
#ifndef RINGRELAY_BENCH_STATS_H
#define RINGRELAY_BENCH_STATS_H

#include <stdint.h>
#include <stdio.h>

/* SMTP reply codes are three digits from 200 to 599 (RFC 5321 4.2). */
#define BENCH_CODE_MIN 200
#define BENCH_CODE_MAX 599

/* bench_code_tally: how many times each reply code was seen. Codes out
 * of range are counted in other. */
struct bench_code_tally {
    uint64_t count[BENCH_CODE_MAX - BENCH_CODE_MIN + 1];
    uint64_t other;
};

void bench_code_tally_add(struct bench_code_tally *tally, int code);

uint64_t bench_code_tally_total(const struct bench_code_tally *tally);

/* bench_code_tally_print writes one line per code seen, as
 * "<prefix> <code>: <count>", in ascending code order. */
void bench_code_tally_print(const struct bench_code_tally *tally,
                            const char *prefix, FILE *out);

/* bench_monotonic_ns returns CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_monotonic_ns(void);

/* bench_wall_us returns CLOCK_REALTIME in microseconds since the Unix
 * epoch. */
uint64_t bench_wall_us(void);

/* bench_rate returns count per second, 0 when seconds is not positive. */
double bench_rate(double count, double seconds);

#endif
