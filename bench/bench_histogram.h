/* Latency histogram with bounded relative error, for percentiles of
 * durations from a nanosecond to about three days.
 *
 * Values are recorded in nanoseconds into log-linear buckets. Values
 * below 64 get a bucket each; every power of two above that is split into
 * 64 linear sub-buckets, so a reported percentile is within about 1.6% of
 * the true value. Memory is fixed (no allocation after init), and two
 * histograms merge by adding buckets. */
#ifndef RINGRELAY_BENCH_HISTOGRAM_H
#define RINGRELAY_BENCH_HISTOGRAM_H

#include <stdint.h>

#define BENCH_HISTOGRAM_SUB_BUCKETS 64
/* Magnitude m >= 1 covers [2^(m+5), 2^(m+6)) ns, so the top one ends at
 * 2^48 ns, about 78 hours; larger values count as overflow. */
#define BENCH_HISTOGRAM_MAGNITUDES 43

struct bench_histogram {
    uint64_t count;                   /* values recorded */
    uint64_t max_ns;                  /* largest value recorded */
    uint64_t min_ns;                  /* smallest value recorded */
    uint64_t overflow;                /* values above the top bucket */
    uint64_t buckets[BENCH_HISTOGRAM_MAGNITUDES]
                    [BENCH_HISTOGRAM_SUB_BUCKETS];
};

void bench_histogram_init(struct bench_histogram *histogram);

void bench_histogram_record(struct bench_histogram *histogram,
                            uint64_t value_ns);

/* bench_histogram_merge adds every value of from into into. */
void bench_histogram_merge(struct bench_histogram *into,
                           const struct bench_histogram *from);

/* bench_histogram_percentile returns the value at percentile (0..100) in
 * nanoseconds, as the upper edge of its bucket capped at max_ns; 0 when
 * the histogram is empty. */
uint64_t bench_histogram_percentile(const struct bench_histogram *histogram,
                                    double percentile);

#endif
