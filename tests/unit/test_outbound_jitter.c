/* Tests for the retry jitter of the outbound engine
 * (core/outbound_jitter.h). */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>

#include "core/outbound_jitter.h"

Test(outbound_jitter, same_input_same_value)
{
    double first = outbound_retry_jitter("0006252D1C5A3001", 3);
    double second = outbound_retry_jitter("0006252D1C5A3001", 3);

    cr_assert_eq(first, second);
}

Test(outbound_jitter, values_within_unit_interval)
{
    char id[17];

    for (uint64_t n = 0; n < 2000; n++) {
        double value;

        snprintf(id, sizeof(id), "%016" PRIX64, UINT64_C(0x6252D1C5A3000) + n);
        value = outbound_retry_jitter(id, (uint32_t)(n % 7) + 1);
        cr_assert_geq(value, 0.0, "%s", id);
        cr_assert_lt(value, 1.0, "%s", id);
    }
}

Test(outbound_jitter, attempt_changes_value)
{
    double first = outbound_retry_jitter("0006252D1C5A3001", 1);
    double second = outbound_retry_jitter("0006252D1C5A3001", 2);

    cr_assert_neq(first, second);
}

/* Queue IDs issued one after another differ only in their last digits.
 * Their values must still cover the whole interval, or else deferred
 * messages that arrived together would retry together. */
Test(outbound_jitter, consecutive_ids_spread)
{
    unsigned buckets[10] = {0};
    char id[17];

    for (uint64_t n = 0; n < 1000; n++) {
        double value;

        snprintf(id, sizeof(id), "%016" PRIX64, UINT64_C(0x6252D1C5A3000) + n);
        value = outbound_retry_jitter(id, 1);
        buckets[(unsigned)(value * 10.0)]++;
    }
    for (size_t i = 0; i < 10; i++) {
        cr_assert_gt(buckets[i], 50, "tenth %zu got %u of 1000 values", i,
                     buckets[i]);
        cr_assert_lt(buckets[i], 150, "tenth %zu got %u of 1000 values", i,
                     buckets[i]);
    }
}
