#include "core/outbound_waits.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "core/daemon.h"
#include "core/outbound_dest.h"
#include "core/outbound_job.h"
#include "core/queue.h"
#include "core/reactor.h"

/* The jobs that wait for a breaker, sorted by message address, so that
 * a list of the whole queue costs a binary search per message rather
 * than a scan of every job. */
struct outbound_waits {
    struct outbound *outbound;
    const struct outbound_job **jobs;
    size_t count;
};

/* waits_for_breaker reports whether job waits for its destination's
 * breaker: parked while the breaker is open, or in the ready list while
 * it is not closed, since a probing breaker lets one connection only. */
static bool waits_for_breaker(const struct outbound_job *job)
{
    if (job->state != OUTBOUND_JOB_WAITING) {
        return false;
    }
    if (job->suspended && !job->in_ready_list) {
        return true;
    }
    return job->in_ready_list &&
           job->dest->breaker != OUTBOUND_BREAKER_CLOSED;
}

static int waits_compare(const void *a, const void *b)
{
    uintptr_t left =
        (uintptr_t)(*(const struct outbound_job *const *)a)->msg;
    uintptr_t right =
        (uintptr_t)(*(const struct outbound_job *const *)b)->msg;

    return left < right ? -1 : left > right;
}

struct outbound_waits *outbound_waits_collect(struct outbound *outbound)
{
    struct outbound_waits *waits = calloc(1, sizeof(*waits));
    size_t count = 0;

    if (waits == NULL) {
        return NULL;
    }
    waits->outbound = outbound;
    for (const struct outbound_job *job = outbound_job_list(outbound);
         job != NULL; job = job->next) {
        count += waits_for_breaker(job) ? 1 : 0;
    }
    if (count == 0) {
        return waits;
    }

    waits->jobs = calloc(count, sizeof(*waits->jobs));
    if (waits->jobs == NULL) {
        free(waits);
        errno = ENOMEM;
        return NULL;
    }
    for (const struct outbound_job *job = outbound_job_list(outbound);
         job != NULL; job = job->next) {
        if (waits_for_breaker(job)) {
            waits->jobs[waits->count++] = job;
        }
    }
    qsort(waits->jobs, waits->count, sizeof(*waits->jobs), waits_compare);
    return waits;
}

/* waits_first returns the index of the first job of msg, or count when
 * none waits. */
static size_t waits_first(const struct outbound_waits *waits,
                          const struct queue_msg *msg)
{
    size_t low = 0;
    size_t high = waits->count;

    while (low < high) {
        size_t mid = low + (high - low) / 2;

        if ((uintptr_t)waits->jobs[mid]->msg < (uintptr_t)msg) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    return low;
}

static bool waits_job_has(const struct outbound_job *job, size_t index)
{
    for (size_t i = 0; i < job->rcpt_count; i++) {
        if (job->rcpt_index[i] == index) {
            return true;
        }
    }
    return false;
}

/* waits_probe_time returns the wall clock second at which dest's open
 * breaker lets the probe through, or 0 when that time has come. */
static time_t waits_probe_time(const struct outbound_dest *dest,
                               struct reactor *reactor)
{
    uint64_t now = reactor_now_us(reactor);

    if (dest->breaker != OUTBOUND_BREAKER_OPEN ||
        dest->breaker_until_us <= now) {
        return 0;
    }
    return time(NULL) +
           (time_t)((dest->breaker_until_us - now + 999999u) / 1000000u);
}

void outbound_waits_lookup(void *arg, const struct queue_msg *msg,
                           size_t index, struct queue_report_wait *wait)
{
    const struct outbound_waits *waits = arg;
    struct reactor *reactor = outbound_daemon(waits->outbound)->reactor;

    for (size_t i = waits_first(waits, msg);
         i < waits->count && waits->jobs[i]->msg == msg; i++) {
        const struct outbound_job *job = waits->jobs[i];

        if (waits_job_has(job, index)) {
            wait->breaker = true;
            wait->probe = waits_probe_time(job->dest, reactor);
            return;
        }
    }
}

void outbound_waits_free(struct outbound_waits *waits)
{
    if (waits == NULL) {
        return;
    }
    free(waits->jobs);
    free(waits);
}
