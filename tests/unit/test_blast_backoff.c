/* Tests for blast's reconnect policy: the doubling wait, its cap, and
 * when a slot gives up. */
#include <criterion/criterion.h>

#include "bench/blast_backoff.h"

Test(blast_backoff, doubles_to_cap)
{
    struct blast_backoff b = {0};
    static const int64_t want[] = {10, 20, 40, 80, 160, 320, 640, 1000,
                                   1000};

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cr_assert_eq(blast_backoff_record(&b, false, true), want[i],
                     "wait %zu", i);
    }
    cr_assert_eq(b.failures, 0, "a busy server does not count");
}

Test(blast_backoff, gives_up_when_run_idle)
{
    struct blast_backoff b = {0};

    for (int i = 1; i < BLAST_BACKOFF_TRIES_MAX; i++) {
        cr_assert_gt(blast_backoff_record(&b, false, false), 0,
                     "try %d", i);
    }
    cr_assert_eq(blast_backoff_record(&b, false, false), -1);
}

Test(blast_backoff, progress_resets)
{
    struct blast_backoff b = {0};

    for (int i = 1; i < BLAST_BACKOFF_TRIES_MAX; i++) {
        blast_backoff_record(&b, false, false);
    }
    cr_assert_eq(blast_backoff_record(&b, true, false), 0);
    cr_assert_eq(b.failures, 0);
    cr_assert_eq(b.wait_ms, 0);
    cr_assert_eq(blast_backoff_record(&b, false, false),
                 BLAST_BACKOFF_FIRST_MS);
}
