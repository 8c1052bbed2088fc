#include "bench/bench_histogram.h"

#include <string.h>

/* log2 of the sub-bucket count: a magnitude splits into 64 buckets. */
#define HISTOGRAM_SUB_BITS 6

/* The first value past the top bucket: 2^(MAGNITUDES + SUB_BITS - 1). */
#define HISTOGRAM_LIMIT \
    ((uint64_t)1 << (BENCH_HISTOGRAM_MAGNITUDES + HISTOGRAM_SUB_BITS - 1))

void bench_histogram_init(struct bench_histogram *histogram)
{
    memset(histogram, 0, sizeof(*histogram));
    histogram->min_ns = UINT64_MAX;
}

static void histogram_locate(uint64_t value, unsigned *magnitude,
                             unsigned *sub)
{
    unsigned msb;

    if (value < BENCH_HISTOGRAM_SUB_BUCKETS) {
        *magnitude = 0;
        *sub = (unsigned)value;
        return;
    }
    msb = 63u - (unsigned)__builtin_clzll(value);
    *magnitude = msb - HISTOGRAM_SUB_BITS + 1;
    *sub = (unsigned)(value >> (msb - HISTOGRAM_SUB_BITS))
           & (BENCH_HISTOGRAM_SUB_BUCKETS - 1);
}

/* Return the largest value that falls into bucket [magnitude][sub]. */
static uint64_t histogram_bucket_top(unsigned magnitude, unsigned sub)
{
    uint64_t width;
    uint64_t low;

    if (magnitude == 0) {
        return sub;
    }
    width = (uint64_t)1 << (magnitude - 1);
    low = ((uint64_t)BENCH_HISTOGRAM_SUB_BUCKETS + sub) * width;
    return low + width - 1;
}

void bench_histogram_record(struct bench_histogram *histogram,
                            uint64_t value_ns)
{
    unsigned magnitude;
    unsigned sub;

    histogram->count++;
    if (value_ns > histogram->max_ns) {
        histogram->max_ns = value_ns;
    }
    if (value_ns < histogram->min_ns) {
        histogram->min_ns = value_ns;
    }
    if (value_ns >= HISTOGRAM_LIMIT) {
        histogram->overflow++;
        return;
    }
    histogram_locate(value_ns, &magnitude, &sub);
    histogram->buckets[magnitude][sub]++;
}

void bench_histogram_merge(struct bench_histogram *into,
                           const struct bench_histogram *from)
{
    if (from->count == 0) {
        return;
    }
    into->count += from->count;
    into->overflow += from->overflow;
    if (from->max_ns > into->max_ns) {
        into->max_ns = from->max_ns;
    }
    if (from->min_ns < into->min_ns) {
        into->min_ns = from->min_ns;
    }
    for (unsigned m = 0; m < BENCH_HISTOGRAM_MAGNITUDES; m++) {
        for (unsigned s = 0; s < BENCH_HISTOGRAM_SUB_BUCKETS; s++) {
            into->buckets[m][s] += from->buckets[m][s];
        }
    }
}

/* The percentile is the value of the rank-th smallest recording, with
 * rank = ceil(count * percentile / 100) and at least 1 (nearest rank). */
uint64_t bench_histogram_percentile(const struct bench_histogram *histogram,
                                    double percentile)
{
    uint64_t rank;
    uint64_t seen = 0;
    double exact;

    if (histogram->count == 0) {
        return 0;
    }
    if (percentile <= 0) {
        return histogram->min_ns;
    }
    if (percentile >= 100) {
        return histogram->max_ns;
    }
    exact = (double)histogram->count * percentile / 100.0;
    rank = (uint64_t)exact;
    if ((double)rank < exact) {
        rank++;
    }
    if (rank == 0) {
        rank = 1;
    }
    for (unsigned m = 0; m < BENCH_HISTOGRAM_MAGNITUDES; m++) {
        for (unsigned s = 0; s < BENCH_HISTOGRAM_SUB_BUCKETS; s++) {
            seen += histogram->buckets[m][s];
            if (seen >= rank) {
                uint64_t top = histogram_bucket_top(m, s);
                return top < histogram->max_ns ? top : histogram->max_ns;
            }
        }
    }
    return histogram->max_ns;
}
