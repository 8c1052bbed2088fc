#include "bench/sink_track.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Per-seq states in track->state. */
enum {
    TRACK_UNSEEN = 0,
    TRACK_PARTIAL = 1,   /* some pairs seen; the seq has a pending entry */
    TRACK_COMPLETE = 2,  /* every expected pair seen */
};

/* Per-seq bytes allocated at first, and the pending table's first size. */
#define TRACK_STATE_MIN 4096
#define TRACK_PENDING_MIN 64

/* A seq with more than one expected recipient whose pairs have not all
 * arrived; seq 0 marks a free slot. */
struct sink_track_pending {
    uint64_t seq;
    uint32_t rcpts;  /* pairs expected */
    uint32_t seen;   /* pairs seen, ids[0..seen) sorted */
    uint64_t *ids;
};

/* A 64-bit finalizer (splitmix64's) that spreads every input bit. */
static uint64_t track_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

int sink_track_init(struct sink_track *track, uint64_t expect)
{
    memset(track, 0, sizeof(*track));
    track->expect = expect;
    if (expect == 0) {
        return 0;
    }
    track->state = calloc(expect + 1, 1);
    if (track->state == NULL) {
        return -1;
    }
    track->state_len = expect + 1;
    return 0;
}

void sink_track_cleanup(struct sink_track *track)
{
    for (size_t i = 0; i < track->pending_cap; i++) {
        free(track->pending[i].ids);
    }
    free(track->pending);
    free(track->state);
    memset(track, 0, sizeof(*track));
}

uint64_t sink_track_rcpt_id(const char *address)
{
    /* FNV-1a over the address with ASCII letters folded to lower case,
     * because relays may change the case of a domain. */
    uint64_t hash = UINT64_C(0xcbf29ce484222325);

    for (const char *c = address; *c != '\0'; c++) {
        unsigned char byte = (unsigned char)*c;

        if (byte >= 'A' && byte <= 'Z') {
            byte = (unsigned char)(byte - 'A' + 'a');
        }
        hash = (hash ^ byte) * UINT64_C(0x100000001b3);
    }
    return track_mix(hash);
}

static int track_compare_ids(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

void sink_track_number_ids(uint64_t *ids, size_t count)
{
    size_t run_start = 0;
    uint64_t run_id = 0;

    qsort(ids, count, sizeof(*ids), track_compare_ids);
    for (size_t i = 0; i < count; i++) {
        if (i == 0 || ids[i] != run_id) {
            run_start = i;
            run_id = ids[i];
            continue;
        }
        ids[i] = track_mix(run_id + (uint64_t)(i - run_start));
    }
}

static size_t track_home(const struct sink_track *track, uint64_t seq)
{
    return (size_t)track_mix(seq) & (track->pending_cap - 1);
}

/* Returns the slot of seq, or the free slot where it would go. */
static size_t track_slot(const struct sink_track *track, uint64_t seq)
{
    size_t mask = track->pending_cap - 1;
    size_t i = track_home(track, seq);

    while (track->pending[i].seq != 0 && track->pending[i].seq != seq) {
        i = (i + 1) & mask;
    }
    return i;
}

/* Keep the table at most half full, so probes stay short. */
static int track_pending_reserve(struct sink_track *track)
{
    struct sink_track_pending *old = track->pending;
    size_t old_cap = track->pending_cap;
    size_t cap = old_cap != 0 ? old_cap * 2 : TRACK_PENDING_MIN;

    if ((track->pending_len + 1) * 2 <= old_cap) {
        return 0;
    }
    track->pending = calloc(cap, sizeof(*track->pending));
    if (track->pending == NULL) {
        track->pending = old;
        return -1;
    }
    track->pending_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].seq != 0) {
            track->pending[track_slot(track, old[i].seq)] = old[i];
        }
    }
    free(old);
    return 0;
}

/* Delete slot i, moving later entries of its probe run back so that
 * every entry stays reachable from its home slot. */
static void track_pending_delete(struct sink_track *track, size_t i)
{
    size_t mask = track->pending_cap - 1;
    size_t j = i;

    free(track->pending[i].ids);
    for (;;) {
        size_t home;
        bool stays;

        j = (j + 1) & mask;
        if (track->pending[j].seq == 0) {
            break;
        }
        home = track_home(track, track->pending[j].seq);
        stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            track->pending[i] = track->pending[j];
            i = j;
        }
    }
    track->pending[i] = (struct sink_track_pending){0};
    track->pending_len--;
}

static int track_state_reserve(struct sink_track *track, uint64_t seq)
{
    uint64_t len = track->state_len != 0 ? track->state_len
                                         : TRACK_STATE_MIN;
    uint8_t *grown;

    if (seq < track->state_len) {
        return 0;
    }
    while (len <= seq) {
        len *= 2;
    }
    if (len > SINK_TRACK_SEQ_MAX) {
        len = SINK_TRACK_SEQ_MAX;
    }
    grown = realloc(track->state, len);
    if (grown == NULL) {
        return -1;
    }
    memset(grown + track->state_len, 0, len - track->state_len);
    track->state = grown;
    track->state_len = len;
    return 0;
}

/* Open a pending entry for the first delivery of a seq with rcpts > 1.
 * Returns its slot, or -1 when out of memory. */
static long track_pending_open(struct sink_track *track, uint64_t seq,
                               uint32_t rcpts)
{
    uint64_t *ids = malloc(rcpts * sizeof(*ids));
    size_t slot;

    if (ids == NULL || track_pending_reserve(track) < 0) {
        free(ids);
        return -1;
    }
    slot = track_slot(track, seq);
    track->pending[slot] = (struct sink_track_pending){
        .seq = seq, .rcpts = rcpts, .ids = ids};
    track->pending_len++;
    return (long)slot;
}

/* Returns true when the pair is new, inserting it into ids. */
static bool track_pending_add(struct sink_track_pending *entry, uint64_t id)
{
    size_t low = 0;
    size_t high = entry->seen;

    while (low < high) {
        size_t mid = low + (high - low) / 2;

        if (entry->ids[mid] < id) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    if (low < entry->seen && entry->ids[low] == id) {
        return false;
    }
    memmove(entry->ids + low + 1, entry->ids + low,
            (entry->seen - low) * sizeof(*entry->ids));
    entry->ids[low] = id;
    entry->seen++;
    return true;
}

/* Record the pairs of a seq whose pairs have not all arrived. */
static void track_deliver_partial(struct sink_track *track, uint64_t seq,
                                  size_t slot, const uint64_t *ids,
                                  size_t count)
{
    struct sink_track_pending *entry = &track->pending[slot];

    for (size_t i = 0; i < count; i++) {
        if (!track_pending_add(entry, ids[i])) {
            track->duplicates++;
            continue;
        }
        track->pairs_seen++;
        if (entry->seen == entry->rcpts) {
            track->duplicates += count - i - 1;
            track_pending_delete(track, slot);
            track->state[seq] = TRACK_COMPLETE;
            return;
        }
    }
}

int sink_track_deliver(struct sink_track *track, uint64_t seq,
                       uint32_t rcpts, const uint64_t *ids, size_t count)
{
    uint64_t limit = track->expect != 0 ? track->expect
                                        : SINK_TRACK_SEQ_MAX - 1;
    long slot = -1;

    if (count == 0) {
        return 0;
    }
    if (seq == 0 || seq > limit) {
        track->unexpected += count;
        return 0;
    }
    if (rcpts == 0) {
        rcpts = 1;
    }
    if (track_state_reserve(track, seq) < 0) {
        return -1;
    }

    switch (track->state[seq]) {
    case TRACK_COMPLETE:
        track->duplicates += count;
        return 0;
    case TRACK_PARTIAL:
        slot = (long)track_slot(track, seq);
        break;
    default:
        if (rcpts == 1) {
            track->state[seq] = TRACK_COMPLETE;
            track->pairs_seen++;
            track->duplicates += count - 1;
        } else {
            slot = track_pending_open(track, seq, rcpts);
            if (slot < 0) {
                return -1;
            }
            track->state[seq] = TRACK_PARTIAL;
        }
        track->seqs_seen++;
        track->rcpts_sum += rcpts;
        if (track->default_rcpts == 0) {
            track->default_rcpts = rcpts;
        }
        if (seq > track->highest) {
            track->highest = seq;
        }
        if (rcpts == 1) {
            return 0;
        }
        break;
    }
    track_deliver_partial(track, seq, (size_t)slot, ids, count);
    return 0;
}

uint64_t sink_track_lost(const struct sink_track *track)
{
    uint64_t range = track->expect != 0 ? track->expect : track->highest;
    uint64_t per_seq = track->default_rcpts != 0 ? track->default_rcpts
                                                 : 1;
    uint64_t expected = track->rcpts_sum
                        + (range - track->seqs_seen) * per_seq;

    return expected - track->pairs_seen;
}
