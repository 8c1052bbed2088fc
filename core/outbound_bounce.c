#include "core/outbound_bounce.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/outbound.h"
#include "core/outbound_job.h"
#include "core/queue.h"
#include "proto/smtp_client.h"

/* Bytes of a report besides the returned original, per report and per
 * recipient. NOTE: estimates from the field lengths, not measured; they
 * keep a RET=FULL report near max_message_size. */
#define BOUNCE_REPORT_BASE 4096
#define BOUNCE_REPORT_PER_RCPT 2048

/* One recipient of the next report. */
struct bounce_entry {
    size_t index;                       /* into msg->rcpts */
    enum smtp_dsn_action action;
    char status[16];                    /* "X.Y.Z" */
    char reply[SMTP_CLIENT_TEXT_MAX];
    char remote_mta[256];               /* "" when no host was reached */
    time_t when;
};

struct outbound_bounce {
    struct bounce_entry *entries;
    size_t count;
    size_t cap;
    bool *warned;                       /* per msg->rcpts entry */
};

static const struct config *bounce_config(const struct outbound_job *job)
{
    return outbound_daemon(job->outbound)->config;
}

void outbound_bounce_free(struct outbound_bounce *bounce)
{
    if (bounce == NULL) {
        return;
    }
    free(bounce->entries);
    free(bounce->warned);
    free(bounce);
}

/* bounce_of returns the job's collector, made on first use, or NULL when
 * out of memory. */
static struct outbound_bounce *bounce_of(struct outbound_job *job)
{
    struct outbound_bounce *bounce = job->bounce;

    if (bounce != NULL) {
        return bounce;
    }
    bounce = calloc(1, sizeof(*bounce));
    if (bounce == NULL) {
        return NULL;
    }
    bounce->warned = calloc(job->msg->rcpt_count, sizeof(*bounce->warned));
    if (bounce->warned == NULL) {
        free(bounce);
        return NULL;
    }
    job->bounce = bounce;
    return bounce;
}

static struct bounce_entry *bounce_add_entry(struct outbound_bounce *bounce)
{
    if (bounce->count == bounce->cap) {
        size_t cap = bounce->cap > 0 ? bounce->cap * 2 : 4;
        struct bounce_entry *grown = realloc(bounce->entries,
                                             cap * sizeof(*grown));

        if (grown == NULL) {
            return NULL;
        }
        bounce->entries = grown;
        bounce->cap = cap;
    }
    return &bounce->entries[bounce->count++];
}

/* bounce_notify_allows applies RFC 3461 NOTIFY=: without it, failures are
 * reported and so are delays once delay_warning is set. */
static bool bounce_notify_allows(unsigned notify, enum smtp_dsn_action action)
{
    unsigned bit = action == SMTP_DSN_ACTION_FAILED
                       ? QUEUE_DSN_NOTIFY_FAILURE
                       : QUEUE_DSN_NOTIFY_DELAY;

    return notify == 0 || (notify & bit) != 0;
}

/* bounce_remote_mta copies the host name out of a relay string
 * "host[ip]:port". */
static void bounce_remote_mta(const char *relay, char *out, size_t size)
{
    size_t len = strcspn(relay, "[");

    snprintf(out, size, "%.*s", (int)len, relay);
}

void outbound_bounce_note(struct outbound_job *job, size_t index,
                          enum smtp_dsn_action action, const char *status,
                          const char *reply)
{
    const struct queue_rcpt *rcpt = &job->msg->rcpts[index];
    const char *kind = action == SMTP_DSN_ACTION_FAILED ? "failure"
                                                         : "delay";
    struct outbound_bounce *bounce;
    struct bounce_entry *entry;
    char logged[LOG_PATH_MAX];

    if (!bounce_notify_allows(rcpt->dsn_notify, action)) {
        log_info("id=%s event=bounce-skipped to=%s kind=%s "
                 "reason=\"NOTIFY excludes it\"",
                 job->msg->id,
                 log_path(logged, sizeof(logged), rcpt->address), kind);
        return;
    }
    bounce = bounce_of(job);
    entry = bounce != NULL ? bounce_add_entry(bounce) : NULL;
    if (entry == NULL) {
        log_error("id=%s to=%s kind=%s error=\"out of memory, no "
                  "delivery report sent\"",
                  job->msg->id,
                  log_path(logged, sizeof(logged), rcpt->address), kind);
        return;
    }
    entry->index = index;
    entry->action = action;
    snprintf(entry->status, sizeof(entry->status), "%s", status);
    snprintf(entry->reply, sizeof(entry->reply), "%s",
             reply != NULL ? reply : "");
    bounce_remote_mta(job->relay, entry->remote_mta,
                      sizeof(entry->remote_mta));
    entry->when = time(NULL);
}

bool outbound_bounce_claim_warning(struct outbound_job *job, size_t index)
{
    struct outbound_bounce *bounce = bounce_of(job);

    /* Out of memory: no warning, which loses nothing but the warning. */
    if (bounce == NULL || bounce->warned[index]) {
        return false;
    }
    bounce->warned[index] = true;
    return true;
}

/* bounce_fill_rcpts turns the collected entries into report fields. */
static void bounce_fill_rcpts(const struct outbound_job *job,
                              struct smtp_dsn_report_rcpt *rcpts)
{
    const struct outbound_bounce *bounce = job->bounce;
    const struct config *config = bounce_config(job);
    time_t until = job->msg->arrival + (time_t)config->queue_lifetime;

    for (size_t i = 0; i < bounce->count; i++) {
        const struct bounce_entry *entry = &bounce->entries[i];
        const struct queue_rcpt *rcpt = &job->msg->rcpts[entry->index];

        rcpts[i] = (struct smtp_dsn_report_rcpt){
            .address = rcpt->address,
            .orcpt = rcpt->orcpt != NULL ? rcpt->orcpt : "",
            .action = entry->action,
            .status = entry->status,
            .diagnostic = entry->reply,
            .remote_mta = entry->remote_mta,
            .last_attempt = entry->when,
            .retry_until = until,
        };
    }
}

/* bounce_build makes the report bytes. The Message-ID is made of the
 * original's queue ID, the time and a random number, because the
 * bounce's own ID is assigned only once the envelope, whose flags depend
 * on the report, is known. */
static int bounce_build(const struct outbound_job *job,
                        struct smtp_dsn_report_rcpt *rcpts, char **out,
                        size_t *out_len)
{
    const struct config *config = bounce_config(job);
    const struct queue_msg *msg = job->msg;
    uint64_t reserve = BOUNCE_REPORT_BASE +
                       (uint64_t)job->bounce->count * BOUNCE_REPORT_PER_RCPT;
    char message_id[QUEUE_ID_LEN + 300];
    struct smtp_dsn_report report = {
        .reporting_mta = config->hostname,
        .sender = msg->sender,
        .envid = msg->envid,
        .message_id = message_id,
        .arrival = msg->arrival,
        .now = time(NULL),
        .rcpts = rcpts,
        .rcpt_count = job->bounce->count,
        .ret = msg->dsn_ret == QUEUE_DSN_RET_FULL ? SMTP_DSN_RETURN_FULL
                                                  : SMTP_DSN_RETURN_HEADERS,
        .full_max = config->max_message_size > reserve
                        ? (size_t)(config->max_message_size - reserve)
                        : 0,
        .original = msg->body,
        .original_len = msg->body_len,
        .binary = (msg->flags & QUEUE_ENV_BINARYMIME) != 0,
    };

    snprintf(message_id, sizeof(message_id), "%s.%lld.%08" PRIx32 "@%s",
             msg->id, (long long)report.now, arc4random(), config->hostname);
    bounce_fill_rcpts(job, rcpts);
    return smtp_dsn_report_build(&report, out, out_len);
}

static void bounce_committed(void *arg, int status, const char *id)
{
    (void)arg;
    (void)id;
    if (status != 0) {
        /* The queue passes no ID for a failed commit; the bounce-queued
         * line before it has the ID. */
        log_error("event=bounce-lost error=\"bounce commit failed: %s\"",
                  strerror(-status));
    }
}

/* bounce_flags returns the envelope flags of a report: SMTPUTF8 when the
 * original had it, since the sender may be a UTF-8 address, and 8BITMIME
 * when the original had it or the report has an 8-bit byte. That makes
 * an 8-bit original sent without BODY=8BITMIME return as 8BITMIME. */
static uint32_t bounce_flags(const struct queue_msg *msg, const char *data,
                             size_t len)
{
    uint32_t flags = msg->flags & QUEUE_ENV_SMTPUTF8;

    if ((msg->flags & QUEUE_ENV_8BITMIME) != 0) {
        flags |= QUEUE_ENV_8BITMIME;
    }
    for (size_t i = 0; i < len && (flags & QUEUE_ENV_8BITMIME) == 0; i++) {
        if ((unsigned char)data[i] >= 0x80) {
            flags |= QUEUE_ENV_8BITMIME;
        }
    }
    return flags;
}

/* bounce_queue writes the report as a new message from "" to the
 * sender. */
static int bounce_queue(struct outbound_job *job)
{
    struct queue *queue = outbound_daemon(job->outbound)->queue;
    const char *to[1] = {job->msg->sender};
    struct queue_envelope env = {
        .sender = "",
        .rcpts = to,
        .rcpt_count = 1,
    };
    struct smtp_dsn_report_rcpt *rcpts = NULL;
    struct queue_writer *writer = NULL;
    char logged[LOG_PATH_MAX];
    char *data = NULL;
    size_t len = 0;
    int rc = -1;

    rcpts = calloc(job->bounce->count, sizeof(*rcpts));
    if (rcpts == NULL ||
        bounce_build(job, rcpts, &data, &len) < 0) {
        goto out;
    }
    env.flags = bounce_flags(job->msg, data, len);
    if (queue_writer_begin(queue, &writer, &env, len) < 0 ||
        queue_writer_append(writer, data, len) < 0) {
        goto out;
    }
    log_info("id=%s event=bounce-queued orig_id=%s to=%s rcpts=%zu "
             "size=%zu",
             queue_writer_id(writer), job->msg->id,
             log_path(logged, sizeof(logged), job->msg->sender),
             job->bounce->count, len);
    rc = queue_writer_commit(writer, bounce_committed, NULL);
    writer = NULL;

out:
    queue_writer_abort(writer);
    free(data);
    free(rcpts);
    return rc;
}

/* bounce_hand_over moves the collected entries to a job of the same
 * message whose attempt is still in flight, so that the recipients of
 * all domains tried at once share one report. Returns false, with
 * nothing moved, when there is no such job or memory runs out. */
static bool bounce_hand_over(struct outbound_job *job)
{
    struct outbound_job *sibling = outbound_job_in_flight_sibling(job);
    struct outbound_bounce *target;
    size_t before;

    if (sibling == NULL || (target = bounce_of(sibling)) == NULL) {
        return false;
    }
    before = target->count;
    for (size_t i = 0; i < job->bounce->count; i++) {
        struct bounce_entry *entry = bounce_add_entry(target);

        if (entry == NULL) {
            target->count = before;
            return false;
        }
        *entry = job->bounce->entries[i];
    }
    return true;
}

void outbound_bounce_send(struct outbound_job *job)
{
    struct outbound_bounce *bounce = job->bounce;

    if (bounce == NULL || bounce->count == 0) {
        return;
    }
    if (bounce_hand_over(job)) {
        /* NOTE: a stop before the sibling's attempt ends loses them. */
        bounce->count = 0;
        return;
    }
    if (job->msg->sender[0] == '\0') {
        /* Mail from the null reverse path, such as a bounce, gets no
         * bounce: it has no address to go to, and two relays could
         * otherwise bounce reports back and forth. */
        log_info("id=%s event=bounce-skipped rcpts=%zu "
                 "reason=\"null sender\"",
                 job->msg->id, bounce->count);
    } else if (bounce_queue(job) < 0) {
        log_error("id=%s event=bounce-lost rcpts=%zu error=\"bounce not "
                  "queued: %s\"",
                  job->msg->id, bounce->count, strerror(errno));
    }
    bounce->count = 0;
}
