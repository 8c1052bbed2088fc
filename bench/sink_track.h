/* Loss and duplicate accounting over blast sequence numbers.
 *
 * A delivery is one envelope recipient of one accepted message. The
 * sink expects every (seq, recipient) pair once: seqs 1..expect, or
 * without an expected count 1..the highest seq seen, and for each seq as
 * many recipients as its X-Blast-Rcpts header gives. duplicates counts
 * deliveries beyond the first of a pair, lost the expected pairs not
 * delivered (yet: while mail is in flight it counts as lost).
 *
 * Memory: one byte per seq up to the highest seq seen, plus, for
 * messages with more than one recipient whose pairs have not all
 * arrived, the identities of the pairs seen. Once all pairs of a seq
 * have arrived only the byte remains, because any later delivery of
 * that seq must repeat one of them.
 *
 * Exactness: a recipient's identity is a 64-bit hash of its address
 * (ASCII case folded) and of how often the address occurred before it
 * in the same transaction, so the counts are exact up to hash
 * collisions within one seq. A seq never delivered counts with the
 * X-Blast-Rcpts value of the first tracked message, because blast sends
 * the same number with every message of a run. */
#ifndef RINGRELAY_BENCH_SINK_TRACK_H
#define RINGRELAY_BENCH_SINK_TRACK_H

#include <stddef.h>
#include <stdint.h>

/* Highest seq tracked without --expect: 2^28, so the per-seq bytes stay
 * under 256 MiB. Higher seqs count as unexpected. */
#define SINK_TRACK_SEQ_MAX ((uint64_t)1 << 28)

struct sink_track_pending;

struct sink_track {
    uint64_t expect;        /* seqs 1..expect expected; 0: up to highest */
    uint8_t *state;         /* per seq: unseen, partial or complete */
    uint64_t state_len;     /* seqs 0..state_len-1 have a byte */
    struct sink_track_pending *pending; /* open-addressed by seq */
    size_t pending_cap;     /* slots, a power of two, or 0 */
    size_t pending_len;

    uint64_t highest;       /* highest seq tracked */
    uint64_t seqs_seen;     /* distinct seqs with a delivery */
    uint64_t rcpts_sum;     /* X-Blast-Rcpts summed over those seqs */
    uint64_t pairs_seen;    /* distinct (seq, recipient) pairs */
    uint64_t duplicates;
    uint64_t unexpected;    /* deliveries of a seq outside the range */
    uint32_t default_rcpts; /* for seqs never delivered; 0 until known */
};

/* sink_track_init starts empty accounting; expect is 0 or the number of
 * messages that will be sent (seqs 1..expect). Returns 0, or -1 when the
 * per-seq bytes for expect cannot be allocated. */
int sink_track_init(struct sink_track *track, uint64_t expect);

void sink_track_cleanup(struct sink_track *track);

/* sink_track_rcpt_id hashes a recipient address for sink_track_deliver. */
uint64_t sink_track_rcpt_id(const char *address);

/* sink_track_number_ids makes the ids of one transaction distinct by
 * mixing into each id how often it occurred before; the order of ids
 * changes. */
void sink_track_number_ids(uint64_t *ids, size_t count);

/* sink_track_deliver records one accepted message with sequence number
 * seq and rcpts expected recipients (its X-Blast-Rcpts), delivered to
 * ids[0..count) from sink_track_number_ids. Returns 0, or -1 when out of
 * memory, in which case the delivery is not recorded. */
int sink_track_deliver(struct sink_track *track, uint64_t seq,
                       uint32_t rcpts, const uint64_t *ids, size_t count);

/* sink_track_lost returns the expected pairs not delivered so far. */
uint64_t sink_track_lost(const struct sink_track *track);

#endif
