#include "bench/blast_backoff.h"

int64_t blast_backoff_record(struct blast_backoff *b, bool progress,
                             bool run_progress)
{
    if (progress) {
        b->wait_ms = 0;
        b->failures = 0;
        return 0;
    }
    /* A busy server (one that rejects connections over a limit) lets
     * the slot in once others are done, so only an idle run counts
     * toward giving up. */
    if (!run_progress) {
        b->failures++;
        if (b->failures >= BLAST_BACKOFF_TRIES_MAX) {
            return -1;
        }
    }
    if (b->wait_ms == 0) {
        b->wait_ms = BLAST_BACKOFF_FIRST_MS;
    } else if (b->wait_ms < BLAST_BACKOFF_MAX_MS) {
        b->wait_ms *= 2;
        if (b->wait_ms > BLAST_BACKOFF_MAX_MS) {
            b->wait_ms = BLAST_BACKOFF_MAX_MS;
        }
    }
    return (int64_t)b->wait_ms;
}
