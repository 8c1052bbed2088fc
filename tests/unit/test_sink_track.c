/* Loss and duplicate accounting of the bench sink, fed with synthetic
 * sequence numbers and recipients. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "bench/sink_track.h"

/* Deliver seq, with rcpts expected recipients, to names[0..count) in
 * one transaction. */
static void deliver(struct sink_track *track, uint64_t seq, uint32_t rcpts,
                    const char *const *names, size_t count)
{
    uint64_t ids[16];

    cr_assert_leq(count, 16);
    for (size_t i = 0; i < count; i++) {
        ids[i] = sink_track_rcpt_id(names[i]);
    }
    sink_track_number_ids(ids, count);
    cr_assert_eq(sink_track_deliver(track, seq, rcpts, ids, count), 0);
}

static void deliver_one(struct sink_track *track, uint64_t seq)
{
    static const char *const user[] = {"user@example.test"};

    deliver(track, seq, 1, user, 1);
}

Test(sink_track, gap_and_repeat_without_expect)
{
    struct sink_track track;

    cr_assert_eq(sink_track_init(&track, 0), 0);
    for (uint64_t seq = 1; seq <= 100; seq++) {
        if (seq != 7) {
            deliver_one(&track, seq);
        }
    }
    deliver_one(&track, 9);
    cr_assert_eq(sink_track_lost(&track), 1);
    cr_assert_eq(track.duplicates, 1);
    cr_assert_eq(track.highest, 100);
    cr_assert_eq(track.unexpected, 0);

    deliver_one(&track, 7);
    cr_assert_eq(sink_track_lost(&track), 0);
    cr_assert_eq(track.duplicates, 1);
    sink_track_cleanup(&track);
}

Test(sink_track, empty_track_has_no_loss)
{
    struct sink_track track;

    cr_assert_eq(sink_track_init(&track, 0), 0);
    cr_assert_eq(sink_track_lost(&track), 0);
    cr_assert_eq(track.duplicates, 0);
    sink_track_cleanup(&track);
}

Test(sink_track, expect_counts_the_tail_as_lost)
{
    struct sink_track track;

    cr_assert_eq(sink_track_init(&track, 50), 0);
    cr_assert_eq(sink_track_lost(&track), 50);
    for (uint64_t seq = 1; seq <= 40; seq++) {
        deliver_one(&track, seq);
    }
    cr_assert_eq(sink_track_lost(&track), 10);

    /* Seqs past --expect are outside the range, not duplicates. */
    deliver_one(&track, 51);
    deliver_one(&track, 0);
    cr_assert_eq(track.unexpected, 2);
    cr_assert_eq(track.duplicates, 0);
    cr_assert_eq(sink_track_lost(&track), 10);
    sink_track_cleanup(&track);
}

Test(sink_track, recipients_split_over_transactions)
{
    static const char *const first[] = {"a@example.test", "b@example.test"};
    static const char *const second[] = {"c@example.test"};
    struct sink_track track;

    cr_assert_eq(sink_track_init(&track, 0), 0);
    deliver(&track, 1, 3, first, 2);
    cr_assert_eq(sink_track_lost(&track), 1);
    cr_assert_eq(track.pending_len, 1);
    deliver(&track, 1, 3, second, 1);
    cr_assert_eq(sink_track_lost(&track), 0);
    cr_assert_eq(track.duplicates, 0);
    cr_assert_eq(track.pending_len, 0, "a complete seq keeps its ids");

    /* The relay retries the first transaction: both pairs repeat. */
    deliver(&track, 1, 3, first, 2);
    cr_assert_eq(track.duplicates, 2);
    cr_assert_eq(sink_track_lost(&track), 0);
    sink_track_cleanup(&track);
}

/* One recipient twice and another never: the totals must show both,
 * which a plain count per seq could not. */
Test(sink_track, duplicate_and_loss_in_one_seq)
{
    static const char *const a[] = {"a@example.test"};
    struct sink_track track;

    cr_assert_eq(sink_track_init(&track, 0), 0);
    deliver(&track, 1, 2, a, 1);
    deliver(&track, 1, 2, a, 1);
    cr_assert_eq(track.duplicates, 1);
    cr_assert_eq(sink_track_lost(&track), 1);
    sink_track_cleanup(&track);
}

Test(sink_track, repeated_address_counts_per_occurrence)
{
    static const char *const same[] = {"u@example.test", "U@EXAMPLE.test"};
    struct sink_track track;

    cr_assert_eq(sink_track_init(&track, 0), 0);
    deliver(&track, 1, 2, same, 2);
    cr_assert_eq(track.duplicates, 0);
    cr_assert_eq(sink_track_lost(&track), 0);
    deliver(&track, 1, 2, same, 1);
    cr_assert_eq(track.duplicates, 1);
    sink_track_cleanup(&track);
}

Test(sink_track, extra_recipients_of_single_rcpt_seq)
{
    static const char *const two[] = {"a@example.test", "b@example.test"};
    struct sink_track track;

    cr_assert_eq(sink_track_init(&track, 0), 0);
    deliver(&track, 5, 1, two, 2);
    cr_assert_eq(track.duplicates, 1);
    cr_assert_eq(sink_track_lost(&track), 4, "seqs 1 to 4 never came");
    sink_track_cleanup(&track);
}

Test(sink_track, unseen_seqs_use_first_rcpts)
{
    static const char *const three[] = {"a@x.test", "b@x.test", "c@x.test"};
    struct sink_track track;

    cr_assert_eq(sink_track_init(&track, 4), 0);
    deliver(&track, 2, 3, three, 3);
    cr_assert_eq(sink_track_lost(&track), 9, "3 seqs of 3 recipients");
    sink_track_cleanup(&track);
}

/* Many seqs partly delivered, out of order, so the pending table grows
 * and entries are deleted from the middle of probe runs. */
Test(sink_track, many_partial_seqs)
{
    static const char *const a[] = {"a@example.test"};
    static const char *const b[] = {"b@example.test"};
    const uint64_t count = 20000;
    struct sink_track track;

    cr_assert_eq(sink_track_init(&track, 0), 0);
    for (uint64_t seq = count; seq >= 1; seq--) {
        deliver(&track, seq, 2, a, 1);
    }
    cr_assert_eq(track.pending_len, count);
    cr_assert_eq(sink_track_lost(&track), count);
    for (uint64_t seq = 1; seq <= count; seq += 2) {
        deliver(&track, seq, 2, b, 1);
    }
    cr_assert_eq(track.pending_len, count / 2);
    cr_assert_eq(sink_track_lost(&track), count / 2);
    for (uint64_t seq = 2; seq <= count; seq += 2) {
        deliver(&track, seq, 2, a, 1);
        deliver(&track, seq, 2, b, 1);
    }
    cr_assert_eq(track.pending_len, 0);
    cr_assert_eq(sink_track_lost(&track), 0);
    cr_assert_eq(track.duplicates, count / 2);
    sink_track_cleanup(&track);
}

Test(sink_track, growth_to_a_million_seqs)
{
    struct sink_track track;
    uint64_t id = sink_track_rcpt_id("user@example.test");

    cr_assert_eq(sink_track_init(&track, 0), 0);
    for (uint64_t seq = 1; seq <= 1000000; seq++) {
        cr_assert_eq(sink_track_deliver(&track, seq, 1, &id, 1), 0);
    }
    cr_assert_eq(sink_track_lost(&track), 0);
    cr_assert_eq(track.duplicates, 0);
    cr_assert_leq(track.state_len, 2u * 1048576u, "%llu bytes of state",
                  (unsigned long long)track.state_len);
    cr_assert_eq(sink_track_deliver(&track, SINK_TRACK_SEQ_MAX, 1, &id, 1),
                 0);
    cr_assert_eq(track.unexpected, 1, "seqs from 2^28 are not tracked");
    sink_track_cleanup(&track);
}
