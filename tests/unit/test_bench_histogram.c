/* Percentiles, bounds and merging of the bench latency histogram. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "bench/bench_histogram.h"

static struct bench_histogram *histogram_new(void)
{
    struct bench_histogram *histogram = malloc(sizeof(*histogram));

    cr_assert_not_null(histogram);
    bench_histogram_init(histogram);
    return histogram;
}

/* A percentile may exceed the true value by at most one bucket width,
 * which is 1/64 of the value's power of two. */
static void assert_close(uint64_t got, uint64_t want)
{
    cr_assert_geq(got, want, "got %llu, want at least %llu",
                  (unsigned long long)got, (unsigned long long)want);
    cr_assert_leq(got, want + want / 64 + 1, "got %llu, want about %llu",
                  (unsigned long long)got, (unsigned long long)want);
}

Test(bench_histogram, empty_returns_zero)
{
    struct bench_histogram *histogram = histogram_new();

    cr_assert_eq(bench_histogram_percentile(histogram, 50), 0);
    cr_assert_eq(bench_histogram_percentile(histogram, 100), 0);
    cr_assert_eq(histogram->count, 0);
    free(histogram);
}

Test(bench_histogram, small_values_exact)
{
    struct bench_histogram *histogram = histogram_new();

    for (uint64_t v = 1; v <= 50; v++) {
        bench_histogram_record(histogram, v);
    }
    cr_assert_eq(bench_histogram_percentile(histogram, 50), 25);
    cr_assert_eq(bench_histogram_percentile(histogram, 90), 45);
    cr_assert_eq(bench_histogram_percentile(histogram, 100), 50);
    cr_assert_eq(bench_histogram_percentile(histogram, 0), 1);
    free(histogram);
}

Test(bench_histogram, uniform_million_percentiles)
{
    struct bench_histogram *histogram = histogram_new();

    /* 1..1,000,000 microseconds, recorded in nanoseconds. */
    for (uint64_t v = 1; v <= 1000000; v++) {
        bench_histogram_record(histogram, v * 1000);
    }
    assert_close(bench_histogram_percentile(histogram, 50), 500000000);
    assert_close(bench_histogram_percentile(histogram, 90), 900000000);
    assert_close(bench_histogram_percentile(histogram, 99), 990000000);
    assert_close(bench_histogram_percentile(histogram, 99.9), 999000000);
    cr_assert_eq(bench_histogram_percentile(histogram, 100), 1000000000);
    cr_assert_eq(histogram->min_ns, 1000);
    free(histogram);
}

Test(bench_histogram, percentile_capped_at_max)
{
    struct bench_histogram *histogram = histogram_new();

    bench_histogram_record(histogram, 1000001);
    cr_assert_eq(bench_histogram_percentile(histogram, 50), 1000001);
    cr_assert_eq(bench_histogram_percentile(histogram, 99.9), 1000001);
    free(histogram);
}

Test(bench_histogram, overflow_counts_as_max)
{
    struct bench_histogram *histogram = histogram_new();
    uint64_t huge = (uint64_t)1 << 50;

    bench_histogram_record(histogram, 10);
    bench_histogram_record(histogram, huge);
    cr_assert_eq(histogram->overflow, 1);
    cr_assert_eq(histogram->count, 2);
    cr_assert_eq(bench_histogram_percentile(histogram, 50), 10);
    cr_assert_eq(bench_histogram_percentile(histogram, 99), huge);
    free(histogram);
}

Test(bench_histogram, merge_adds_counts)
{
    struct bench_histogram *left = histogram_new();
    struct bench_histogram *right = histogram_new();
    struct bench_histogram *empty = histogram_new();

    for (uint64_t v = 1; v <= 100; v++) {
        bench_histogram_record(left, v * 1000);
        bench_histogram_record(right, (v + 100) * 1000);
    }
    bench_histogram_merge(left, right);
    bench_histogram_merge(left, empty);
    cr_assert_eq(left->count, 200);
    cr_assert_eq(left->min_ns, 1000);
    cr_assert_eq(left->max_ns, 200000);
    assert_close(bench_histogram_percentile(left, 50), 100000);
    assert_close(bench_histogram_percentile(left, 75), 150000);
    free(left);
    free(right);
    free(empty);
}

Test(bench_histogram, bucket_boundaries)
{
    /* Each power of two and its neighbours land in a bucket whose top is
     * within the error bound. */
    for (unsigned bit = 6; bit < 48; bit++) {
        uint64_t values[3] = {
            ((uint64_t)1 << bit) - 1,
            (uint64_t)1 << bit,
            ((uint64_t)1 << bit) + 1,
        };

        for (unsigned i = 0; i < 3; i++) {
            struct bench_histogram *histogram = histogram_new();

            bench_histogram_record(histogram, values[i]);
            bench_histogram_record(histogram, values[i] * 2);
            assert_close(bench_histogram_percentile(histogram, 50),
                         values[i]);
            free(histogram);
        }
    }
}
