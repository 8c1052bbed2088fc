#include "core/outbound.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/config.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/outbound_bounce.h"
#include "core/outbound_conn.h"
#include "core/outbound_dest.h"
#include "core/outbound_group.h"
#include "core/outbound_job.h"
#include "core/outbound_jitter.h"
#include "core/outbound_slots.h"
#include "core/outbound_tls.h"
#include "core/queue.h"
#include "core/queue_admin.h"
#include "core/reactor.h"
#include "dns/resolver.h"
#include "proto/smtp_address.h"
#include "tls/tls_context.h"

/* The retry schedule comes from retry_interval and retry_max_interval;
 * up to 20% jitter keeps deferred mail from retrying in lockstep. */

/* Each destination has its own connection limit, and slots caps the
 * total over all destinations. A slow next hop uses at most its own
 * limit of slots. At the cap its idle connections are closed for other
 * destinations, but its busy ones are not. */
struct outbound {
    struct daemon *daemon;
    struct outbound_job *jobs;        /* every job */
    struct outbound_dest *dests;      /* every destination */
    struct outbound_dest *dest_index[OUTBOUND_DEST_BUCKETS];
    struct outbound_group *groups;    /* messages waiting for MX lookups
                                       * before their jobs are made */
    size_t active;                    /* jobs past WAITING */
    struct outbound_slots slots;
    bool stopping;
    struct tls_context *tls;          /* client context; NULL when it
                                       * could not be built */
};

struct outbound_job *outbound_job_in_flight_sibling(
    const struct outbound_job *job)
{
    for (struct outbound_job *other = job->outbound->jobs; other != NULL;
         other = other->next) {
        if (other != job && other->msg == job->msg &&
            other->state != OUTBOUND_JOB_WAITING) {
            return other;
        }
    }
    return NULL;
}

static void job_retry_fired(struct reactor_timer *timer);
static void job_wait_or_ready(struct outbound_job *job);

struct outbound *outbound_new(struct daemon *daemon)
{
    struct outbound *outbound = calloc(1, sizeof(*outbound));

    if (outbound == NULL) {
        log_error("error=\"out of memory\"");
        return NULL;
    }
    outbound->daemon = daemon;
    outbound_slots_init(&outbound->slots, outbound,
                        daemon->config->delivery_max_connections_total);
    outbound->tls = outbound_tls_context(daemon->config);
    return outbound;
}

struct tls_context *outbound_tls_client(struct outbound *outbound)
{
    return outbound->tls;
}

struct daemon *outbound_daemon(struct outbound *outbound)
{
    return outbound->daemon;
}

struct outbound_job *outbound_job_list(struct outbound *outbound)
{
    return outbound->jobs;
}

struct outbound_dest **outbound_dest_list(struct outbound *outbound)
{
    return &outbound->dests;
}

struct outbound_dest **outbound_dest_index(struct outbound *outbound)
{
    return outbound->dest_index;
}

struct outbound_group **outbound_groups(struct outbound *outbound)
{
    return &outbound->groups;
}

struct outbound_slots *outbound_slots_of(struct outbound *outbound)
{
    return &outbound->slots;
}

bool outbound_stopping(const struct outbound *outbound)
{
    return outbound->stopping;
}

static void outbound_make_ready(struct outbound_job *job)
{
    outbound_dest_push(job->dest, job);
}

/* job_set_target stores the next-hop key of mailbox in job: a domain
 * name in lower case, or an address literal as stored with its IP. A
 * NULL mailbox makes the INVALID job, whose domain stays "". */
static void job_set_target(struct outbound_job *job,
                           const struct smtp_mailbox *mailbox)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&job->literal;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&job->literal;
    bool lower;

    if (mailbox == NULL) {
        job->target = OUTBOUND_TARGET_INVALID;
        return;
    }
    job->target = mailbox->kind == SMTP_DOMAIN_NAME ? OUTBOUND_TARGET_DOMAIN
                                                    : OUTBOUND_TARGET_LITERAL;
    if (mailbox->kind == SMTP_DOMAIN_IPV4) {
        v4->sin_family = AF_INET;
        memcpy(&v4->sin_addr, mailbox->ip, sizeof(v4->sin_addr));
    } else if (mailbox->kind == SMTP_DOMAIN_IPV6) {
        v6->sin6_family = AF_INET6;
        memcpy(&v6->sin6_addr, mailbox->ip, sizeof(v6->sin6_addr));
    }

    /* A parsed domain has at most 255 bytes, so it always fits. */
    lower = job->target == OUTBOUND_TARGET_DOMAIN;
    for (size_t i = 0; mailbox->domain[i] != '\0' &&
                       i + 1 < sizeof(job->domain);
         i++) {
        unsigned char c = (unsigned char)mailbox->domain[i];

        job->domain[i] = lower ? (char)tolower(c) : (char)c;
    }
}

/* job_new makes the job of msg for destination dest_name: mailbox is
 * its first recipient, or NULL for the recipients whose stored address
 * does not parse. */
static struct outbound_job *job_new(struct outbound *outbound,
                                    struct queue_msg *msg,
                                    const struct smtp_mailbox *mailbox,
                                    const char *dest_name)
{
    struct outbound_job *job = calloc(1, sizeof(*job));

    if (job == NULL) {
        return NULL;
    }
    job->dest = outbound_dest_get(outbound, &outbound->dests, dest_name);
    if (job->dest == NULL) {
        free(job);
        return NULL;
    }
    job->rcpt_index = calloc(msg->rcpt_count, sizeof(*job->rcpt_index));
    job->attempt_index = calloc(msg->rcpt_count, sizeof(*job->attempt_index));
    job->attempt_rcpts = calloc(msg->rcpt_count, sizeof(*job->attempt_rcpts));
    job->attempt_notify = calloc(msg->rcpt_count,
                                 sizeof(*job->attempt_notify));
    job->attempt_orcpt = calloc(msg->rcpt_count, sizeof(*job->attempt_orcpt));
    job->attempt_number = calloc(msg->rcpt_count,
                                 sizeof(*job->attempt_number));
    job->rcpt_due = calloc(msg->rcpt_count, sizeof(*job->rcpt_due));
    if (job->rcpt_index == NULL || job->attempt_index == NULL ||
        job->attempt_rcpts == NULL || job->attempt_notify == NULL ||
        job->attempt_orcpt == NULL || job->attempt_number == NULL ||
        job->rcpt_due == NULL) {
        free(job->rcpt_index);
        free(job->attempt_index);
        free(job->attempt_number);
        free(job->rcpt_due);
        free(job->attempt_rcpts);
        free(job->attempt_notify);
        free(job->attempt_orcpt);
        outbound_dest_put(job->dest);
        free(job);
        return NULL;
    }
    job->outbound = outbound;
    job->msg = msg;
    job->timer.owner = job;
    job_set_target(job, mailbox);
    queue_msg_ref(msg);
    job->next = outbound->jobs;
    if (outbound->jobs != NULL) {
        outbound->jobs->prev = job;
    }
    outbound->jobs = job;
    return job;
}

static void job_free(struct outbound_job *job)
{
    struct outbound *outbound = job->outbound;

    if (job->prev != NULL) {
        job->prev->next = job->next;
    } else {
        outbound->jobs = job->next;
    }
    if (job->next != NULL) {
        job->next->prev = job->prev;
    }
    outbound_dest_unlink(job->dest, job);
    reactor_timer_cancel(outbound->daemon->reactor, &job->timer);
    dns_request_cancel(job->dns);
    free(job->hops);
    free(job->rcpt_index);
    free(job->attempt_index);
    free(job->attempt_number);
    free(job->rcpt_due);
    free(job->attempt_rcpts);
    free(job->attempt_notify);
    free(job->attempt_orcpt);
    outbound_bounce_free(job->bounce);
    if (outbound->daemon->queue != NULL) {
        queue_msg_unref(outbound->daemon->queue, job->msg);
    }
    outbound_dest_put(job->dest);
    free(job);
}

const struct smtp_mailbox *outbound_rcpt_mailbox(
    const struct queue_msg *msg, const char *address,
    struct smtp_mailbox *mailbox)
{
    bool utf8 = (msg->flags & QUEUE_ENV_SMTPUTF8) != 0;

    if (smtp_mailbox_split(address, utf8, mailbox) != SMTP_PATH_OK ||
        mailbox->kind == SMTP_DOMAIN_NONE) {
        return NULL;
    }
    return mailbox;
}

/* job_same_profile reports whether mailbox's domain gets the same TLS
 * policy and AUTH credentials as job's: routes of one next hop may
 * differ in them, and one transaction runs under one of each. */
static bool job_same_profile(const struct config *config,
                             const struct outbound_job *job,
                             const struct smtp_mailbox *mailbox)
{
    struct outbound_job probe = {.outbound = job->outbound};
    struct outbound_profile mine;
    struct outbound_profile theirs;

    job_set_target(&probe, mailbox);
    outbound_profile(config, job->target, job->domain, &mine);
    outbound_profile(config, probe.target, probe.domain, &theirs);
    return outbound_profile_equal(&mine, &theirs);
}

/* job_matches reports whether job takes recipients of mailbox: those
 * whose next hop is the job's destination and whose TLS policy and AUTH
 * credentials are the job's. Domains that share a route share a job, so
 * one transaction carries them all, and so do domains and address
 * literals that both go to the smarthost. A domain whose route logs in
 * with other credentials than the smarthost at the same HOST:PORT keeps
 * apart from literals. */
static bool job_matches(const struct config *config,
                        const struct outbound_job *job,
                        const struct smtp_mailbox *mailbox,
                        const char *dest_name)
{
    if (mailbox == NULL || job->target == OUTBOUND_TARGET_INVALID) {
        return mailbox == NULL && job->target == OUTBOUND_TARGET_INVALID;
    }
    if (strcmp(job->dest->name, dest_name) != 0) {
        return false;
    }
    return job_same_profile(config, job, mailbox);
}

/* job_find returns the job of msg for mailbox among the jobs made by
 * this enqueue call, which are at the head of the job list. */
static struct outbound_job *job_find(const struct config *config,
                                     struct outbound_job *head,
                                     struct outbound_job *stop,
                                     const struct smtp_mailbox *mailbox,
                                     const char *dest_name)
{
    for (struct outbound_job *job = head; job != stop; job = job->next) {
        if (job_matches(config, job, mailbox, dest_name)) {
            return job;
        }
    }
    return NULL;
}

static uint64_t job_retry_max_ms(const struct outbound_job *job)
{
    return (uint64_t)job->outbound->daemon->config->retry_max_interval *
           1000u;
}

/* job_start_or_wait resumes the retry schedule that the queue recovered
 * for each of the job's recipients. A new message has no wait, so it is
 * made ready at once, and so is every recipient with due_now (a flush
 * while the MX lookups ran). */
static void job_start_or_wait(struct outbound_job *job, bool due_now)
{
    time_t now = time(NULL);
    time_t longest = (time_t)((job_retry_max_ms(job) * 6 / 5) / 1000);

    for (size_t i = 0; i < job->rcpt_count; i++) {
        size_t index = job->rcpt_index[i];
        time_t next = job->msg->rcpts[index].next_attempt;

        /* A stored time beyond the longest interval plus its jitter
         * means the wall clock went back or the schedule was shortened,
         * so the wait is cut to that interval. */
        if (next > now && next - now > longest) {
            next = now + longest;
        }
        job->rcpt_due[index] = due_now ? 0 : next;
    }
    job_wait_or_ready(job);
}

/* job_has_rcpt reports whether a job of msg already lists recipient
 * index, so a release does not deliver it twice. */
static bool job_has_rcpt(const struct outbound *outbound,
                         const struct queue_msg *msg, size_t index)
{
    for (const struct outbound_job *job = outbound->jobs; job != NULL;
         job = job->next) {
        if (job->msg != msg) {
            continue;
        }
        for (size_t i = 0; i < job->rcpt_count; i++) {
            if (job->rcpt_index[i] == index) {
                return true;
            }
        }
    }
    return false;
}

void outbound_make_jobs(struct outbound *outbound, struct queue_msg *msg,
                        const size_t *index, size_t count,
                        const struct outbound_group *group)
{
    struct outbound_job *old_head = outbound->jobs;
    bool due_now = outbound_group_due_now(group);
    char logged[LOG_PATH_MAX];

    for (size_t n = 0; n < count; n++) {
        size_t i = index[n];
        struct smtp_mailbox parsed;
        const struct smtp_mailbox *mailbox;
        struct outbound_job *job;
        char dest_name[320];

        /* A group makes its jobs after its lookups, and an operator may
         * have held, bounced or deleted the recipient since. */
        if (msg->rcpts[i].state != QUEUE_RCPT_QUEUED || msg->rcpts[i].held) {
            continue;
        }
        mailbox = outbound_rcpt_mailbox(msg, msg->rcpts[i].address,
                                        &parsed);
        outbound_dest_name(outbound->daemon->config, mailbox, dest_name,
                           sizeof(dest_name));
        outbound_group_rename(group, mailbox, dest_name, sizeof(dest_name));
        job = job_find(outbound->daemon->config, outbound->jobs, old_head,
                       mailbox, dest_name);
        if (job == NULL) {
            job = job_new(outbound, msg, mailbox, dest_name);
        }
        if (job == NULL) {
            /* The recipient stays queued and is found again at the next
             * start; nothing is lost. */
            log_error("id=%s to=%s error=\"out of memory, delivery "
                      "postponed until restart\"",
                      msg->id, log_path(logged, sizeof(logged),
                                        msg->rcpts[i].address));
            continue;
        }
        job->rcpt_index[job->rcpt_count++] = i;
        job->lookup_failed = job->lookup_failed ||
                             outbound_group_failed(group, mailbox);
    }
    for (struct outbound_job *job = outbound->jobs, *next; job != old_head;
         job = next) {
        next = job->next;
        job->grouped = strncmp(job->dest->name, OUTBOUND_GROUP_PREFIX,
                               strlen(OUTBOUND_GROUP_PREFIX)) == 0;
        if (due_now) {
            outbound_dest_probe_now(job->dest);
        }
        job_start_or_wait(job, due_now);
    }
}

/* outbound_schedule makes the jobs of msg's recipients index[0..count):
 * after the MX lookups of a group when lookups is true, else at once,
 * and at once too when the group cannot be made. keep is a destination
 * that a group keeps alive meanwhile, or NULL. */
static void outbound_schedule(struct outbound *outbound,
                              struct queue_msg *msg, const size_t *index,
                              size_t count, bool lookups,
                              struct outbound_dest *keep)
{
    if (!lookups ||
        outbound_group_start(outbound, msg, index, count, keep) <= 0) {
        outbound_make_jobs(outbound, msg, index, count, NULL);
    }
}

/* outbound_add_rcpts schedules every QUEUED recipient of msg, skipping
 * held ones and, with skip_listed, those a job or a group already lists.
 * Returns how many recipients it took. */
static size_t outbound_add_rcpts(struct outbound *outbound,
                                 struct queue_msg *msg, bool skip_listed)
{
    const struct config *config = outbound->daemon->config;
    size_t *index = malloc(msg->rcpt_count * sizeof(*index) + 1);
    bool lookups = false;
    size_t count = 0;

    if (index == NULL) {
        log_error("id=%s error=\"out of memory, delivery postponed until "
                  "restart\"", msg->id);
        return 0;
    }
    for (size_t i = 0; i < msg->rcpt_count; i++) {
        struct smtp_mailbox parsed;
        const struct smtp_mailbox *mailbox;

        if (msg->rcpts[i].state != QUEUE_RCPT_QUEUED || msg->rcpts[i].held ||
            (skip_listed && (job_has_rcpt(outbound, msg, i) ||
                             outbound_group_lists(outbound, msg, i)))) {
            continue;
        }
        index[count++] = i;
        mailbox = outbound_rcpt_mailbox(msg, msg->rcpts[i].address,
                                        &parsed);
        lookups = lookups || outbound_group_wanted(config, mailbox);
    }
    if (count > 0) {
        outbound_schedule(outbound, msg, index, count, lookups, NULL);
    }
    free(index);
    return count;
}

/* Held recipients get no job here; outbound_release() adds them once an
 * operator releases them. */
void outbound_enqueue(void *arg, struct queue_msg *msg)
{
    outbound_add_rcpts(arg, msg, false);
}

size_t outbound_flush(struct outbound *outbound, const struct queue_msg *msg)
{
    struct reactor *reactor = outbound->daemon->reactor;
    size_t count = 0;

    for (struct outbound_job *job = outbound->jobs; job != NULL;
         job = job->next) {
        if ((msg != NULL && job->msg != msg) ||
            job->state != OUTBOUND_JOB_WAITING || job->in_ready_list) {
            continue;
        }
        reactor_timer_cancel(reactor, &job->timer);

        /* The stored time goes too, in memory only, so a job grouped
         * again by MX set keeps the flush. */
        for (size_t i = 0; i < job->rcpt_count; i++) {
            size_t index = job->rcpt_index[i];

            job->rcpt_due[index] = 0;
            if (job->msg->rcpts[index].state == QUEUE_RCPT_QUEUED) {
                job->msg->rcpts[index].next_attempt = 0;
            }
        }
        job->suspended = false;
        outbound_dest_probe_now(job->dest);
        outbound_make_ready(job);
        count++;
    }
    return count + outbound_group_flush(outbound, msg);
}

size_t outbound_release(struct outbound *outbound, struct queue_msg *msg)
{
    size_t added = outbound_add_rcpts(outbound, msg, true);

    outbound_flush(outbound, msg);
    return added;
}

/* job_smtp_notify turns stored NOTIFY bits into the client's bits. */
static unsigned job_smtp_notify(unsigned stored)
{
    unsigned bits = 0;

    if ((stored & QUEUE_DSN_NOTIFY_SUCCESS) != 0) {
        bits |= SMTP_DSN_NOTIFY_SUCCESS;
    }
    if ((stored & QUEUE_DSN_NOTIFY_FAILURE) != 0) {
        bits |= SMTP_DSN_NOTIFY_FAILURE;
    }
    if ((stored & QUEUE_DSN_NOTIFY_DELAY) != 0) {
        bits |= SMTP_DSN_NOTIFY_DELAY;
    }
    if ((stored & QUEUE_DSN_NOTIFY_NEVER) != 0) {
        bits |= SMTP_DSN_NOTIFY_NEVER;
    }
    return bits;
}

/* job_rcpt_waiting reports whether the job's recipient index is still
 * queued and not held. */
static bool job_rcpt_waiting(const struct outbound_job *job, size_t index)
{
    const struct queue_rcpt *rcpt = &job->msg->rcpts[index];

    return rcpt->state == QUEUE_RCPT_QUEUED && !rcpt->held;
}

/* job_collect_attempt lists up to limit recipients of the job that are
 * still queued, not held and due at now. Returns how many it listed. */
static size_t job_collect_attempt(struct outbound_job *job, size_t limit,
                                  time_t now)
{
    job->attempt_count = 0;
    for (size_t i = 0; i < job->rcpt_count && job->attempt_count < limit;
         i++) {
        size_t index = job->rcpt_index[i];
        const struct queue_rcpt *rcpt = &job->msg->rcpts[index];

        if (job_rcpt_waiting(job, index) && job->rcpt_due[index] <= now) {
            job->attempt_number[job->attempt_count] = rcpt->attempts + 1;
            job->attempt_index[job->attempt_count] = index;
            job->attempt_rcpts[job->attempt_count] = rcpt->address;
            job->attempt_notify[job->attempt_count] =
                job_smtp_notify(rcpt->dsn_notify);
            job->attempt_orcpt[job->attempt_count] = rcpt->orcpt;
            job->attempt_count++;
        }
    }
    return job->attempt_count;
}

bool outbound_job_start(struct outbound_job *job)
{
    size_t limit = job->dest->limits.max_rcpts_per_transaction;

    /* A job is made ready only with a recipient due, but a recipient
     * may have been delivered, deleted or held since: the job then
     * waits for the next one that comes due, or is freed. */
    if (job_collect_attempt(job, limit, time(NULL)) == 0) {
        job_wait_or_ready(job);
        return false;
    }
    job->outbound->active++;
    job->attempt++;
    job->state = OUTBOUND_JOB_RUNNING;
    job->results_recorded = false;
    job->attempt_deferred = false;
    job->reuse_retried = false;
    queue_msg_busy(job->msg, true);
    return true;
}

void outbound_attempt_drop(struct outbound_job *job, size_t i)
{
    size_t tail = job->attempt_count - i - 1;

    memmove(&job->attempt_index[i], &job->attempt_index[i + 1],
            tail * sizeof(job->attempt_index[0]));
    memmove(&job->attempt_rcpts[i], &job->attempt_rcpts[i + 1],
            tail * sizeof(job->attempt_rcpts[0]));
    memmove(&job->attempt_notify[i], &job->attempt_notify[i + 1],
            tail * sizeof(job->attempt_notify[0]));
    memmove(&job->attempt_orcpt[i], &job->attempt_orcpt[i + 1],
            tail * sizeof(job->attempt_orcpt[0]));
    memmove(&job->attempt_number[i], &job->attempt_number[i + 1],
            tail * sizeof(job->attempt_number[0]));
    job->attempt_count--;
}

/* outbound_record_result applies one recipient's final reply: 2xx is
 * delivered, 5xx bounced and noted for the report that
 * outbound_job_finished() queues, anything else deferred. Returns true
 * when the recipient was deferred. */
bool outbound_record_result(struct outbound_job *job, size_t i, int code,
                            const char *text)
{
    struct daemon *daemon = job->outbound->daemon;
    struct queue_msg *msg = job->msg;
    size_t index = job->attempt_index[i];
    const char *status = "deferred";
    char logged[LOG_PATH_MAX];
    char quoted[SMTP_CLIENT_TEXT_MAX + 16];
    enum queue_rcpt_state state = QUEUE_RCPT_QUEUED;

    if (msg->rcpts[index].state != QUEUE_RCPT_QUEUED) {
        /* An operator deleted the recipient while this attempt ran. */
        log_info("id=%s event=result-ignored to=%s reply=%s "
                 "reason=\"recipient deleted during the attempt\"",
                 msg->id,
                 log_path(logged, sizeof(logged), msg->rcpts[index].address),
                 log_quote(quoted, sizeof(quoted), text, strlen(text)));
        return false;
    }
    if (code >= 200 && code < 300) {
        status = "delivered";
        state = QUEUE_RCPT_DELIVERED;
    } else if (code >= 500 && code < 600) {
        status = "bounced";
        state = QUEUE_RCPT_BOUNCED;
    }
    log_info("id=%s event=%s to=%s dest=%s relay=%s tls=%s reply=%s "
             "attempt=%" PRIu32 " delay=%lds",
             msg->id, status,
             log_path(logged, sizeof(logged), msg->rcpts[index].address),
             job->dest->name, job->relay[0] ? job->relay : "none",
             job->tls[0] ? job->tls : "none",
             log_quote(quoted, sizeof(quoted), text, strlen(text)),
             job->attempt_number[i], (long)(time(NULL) - msg->arrival));
    msg->rcpts[index].attempts = job->attempt_number[i];
    if (state != QUEUE_RCPT_DELIVERED &&
        queue_note_error(daemon->queue, msg, index, text) < 0) {
        log_error("id=%s to=%s error=\"last error not kept: %s\"", msg->id,
                  log_path(logged, sizeof(logged), msg->rcpts[index].address),
                  strerror(errno));
    }
    if (state == QUEUE_RCPT_QUEUED) {
        job->attempt_deferred = true;
    }
    if (state != QUEUE_RCPT_QUEUED &&
        queue_mark(daemon->queue, msg, index, state) < 0) {
        log_error("id=%s to=%s error=\"journal write failed: %s\"",
                  msg->id,
                  log_path(logged, sizeof(logged), msg->rcpts[index].address),
                  strerror(errno));
    }
    if (state == QUEUE_RCPT_BOUNCED &&
        msg->rcpts[index].state == QUEUE_RCPT_BOUNCED) {
        char dsn_status[16];

        smtp_dsn_status_from_reply(text, dsn_status, sizeof(dsn_status));
        outbound_bounce_note(job, index, SMTP_DSN_ACTION_FAILED, dsn_status,
                             text);
    }
    return state == QUEUE_RCPT_QUEUED;
}

/* outbound_record_all gives every recipient of the attempt one result. */
void outbound_record_all(struct outbound_job *job, int code, const char *text)
{
    for (size_t i = 0; i < job->attempt_count; i++) {
        outbound_record_result(job, i, code, text);
    }
    job->results_recorded = true;
}

/* job_retry_delay_ms returns the wait after a recipient's attempt number
 * attempt. jitter, from 0 to 1, is outbound_retry_jitter() of the
 * message and attempt, so the wait is the same for every recipient of
 * the message with that attempt count. */
static uint64_t job_retry_delay_ms(const struct outbound_job *job,
                                   uint32_t attempt, double jitter)
{
    const struct config *config = job->outbound->daemon->config;
    uint64_t delay = (uint64_t)config->retry_interval * 1000u;
    uint64_t max = job_retry_max_ms(job);

    for (uint32_t i = 1; i < attempt && delay < max; i++) {
        delay *= 2;
    }
    if (delay > max) {
        delay = max;
    }
    return delay + (uint64_t)((double)(delay / 5) * jitter);
}

/* job_due_after returns the next-attempt time, in whole seconds rounded
 * up, of a recipient that failed attempt number attempt at time
 * deferred. */
static time_t job_due_after(const struct outbound_job *job,
                            uint32_t attempt, time_t deferred)
{
    uint64_t delay_ms = job_retry_delay_ms(
        job, attempt, outbound_retry_jitter(job->msg->id, attempt));

    return deferred + (time_t)((delay_ms + 999) / 1000);
}

/* job_wait_or_ready makes the job ready when one of its recipients is
 * due, or else arms its timer for the first one to come due, which ends
 * the round (see round_deferred). A job with no recipient left is
 * freed. */
static void job_wait_or_ready(struct outbound_job *job)
{
    time_t now = time(NULL);
    time_t first = 0;
    uint32_t first_attempt = 0;
    size_t waiting = 0;
    size_t first_count = 0;

    for (size_t i = 0; i < job->rcpt_count; i++) {
        size_t index = job->rcpt_index[i];
        time_t due = job->rcpt_due[index];

        if (!job_rcpt_waiting(job, index)) {
            continue;
        }
        if (due <= now) {
            outbound_make_ready(job);
            return;
        }
        if (waiting == 0 || due < first) {
            first = due;
            first_attempt = job->msg->rcpts[index].attempts + 1;
            first_count = 0;
        }
        if (due == first) {
            first_count++;
        }
        waiting++;
    }
    job->round_deferred = 0;
    if (waiting == 0) {
        job_free(job);
        return;
    }
    log_info("id=%s event=retry-scheduled domain=%s dest=%s rcpts=%zu "
             "next_attempt=%" PRIu32 " in=%llds rcpts_later=%zu",
             job->msg->id, job->domain, job->dest->name, first_count,
             first_attempt, (long long)(first - now), waiting - first_count);
    job->state = OUTBOUND_JOB_WAITING;
    job->timer.fire = job_retry_fired;
    reactor_timer_set(job->outbound->daemon->reactor, &job->timer,
                      (uint64_t)(first - now) * 1000u);
}

/* job_defer_until journals that recipient index failed attempt number
 * attempt and waits until next. A failed write is logged and the retry
 * goes on from memory. */
static void job_defer_until(struct outbound_job *job, size_t index,
                            uint32_t attempt, time_t next)
{
    struct queue *queue = job->outbound->daemon->queue;
    char logged[LOG_PATH_MAX];

    job->rcpt_due[index] = next;
    if (queue_defer(queue, job->msg, index, attempt, next) < 0) {
        log_error("id=%s to=%s error=\"journal write failed, retry "
                  "schedule kept in memory only: %s\"",
                  job->msg->id,
                  log_path(logged, sizeof(logged),
                           job->msg->rcpts[index].address),
                  strerror(errno));
    }
}

/* job_share_due moves to next the job's waiting recipients with attempt
 * count attempt that an earlier transaction of this round deferred, so
 * that they retry together with the last transaction's recipients. Each
 * transaction's wait starts when it ends, so without this the
 * transactions of one round keep their gaps on every retry.
 *
 * The jitter depends only on the message and the attempt number, so a
 * recipient deferred in this round, at round_deferred or later, has a
 * time from job_due_after(round_deferred) on. One deferred in an
 * earlier round has an earlier time and keeps it. A recipient that came
 * due while the later transactions ran moves too, or else it would
 * retry a transaction apart from them again. A moved wait is never cut,
 * only lengthened by the time the transactions after it took. */
static void job_share_due(struct outbound_job *job, uint32_t attempt,
                          time_t next)
{
    time_t round_due = job_due_after(job, attempt, job->round_deferred);

    for (size_t i = 0; i < job->rcpt_count; i++) {
        size_t index = job->rcpt_index[i];
        time_t due = job->rcpt_due[index];

        if (job_rcpt_waiting(job, index) &&
            job->msg->rcpts[index].attempts == attempt &&
            due >= round_due && due < next) {
            job_defer_until(job, index, attempt, next);
        }
    }
}

/* job_schedule_deferred gives each recipient that this attempt deferred
 * its next-attempt time from its own attempt count, moves the others of
 * this round with the same count to that time (job_share_due), and
 * journals every new time so that a restart keeps the schedule. */
static void job_schedule_deferred(struct outbound_job *job)
{
    time_t now = time(NULL);
    uint32_t shared = 0;

    if (job->round_deferred == 0) {
        job->round_deferred = now;
    }
    for (size_t i = 0; i < job->attempt_count; i++) {
        size_t index = job->attempt_index[i];
        uint32_t attempt = job->attempt_number[i];

        if (job->msg->rcpts[index].state != QUEUE_RCPT_QUEUED ||
            job->msg->rcpts[index].attempts != attempt) {
            continue;
        }
        job_defer_until(job, index, attempt,
                        job_due_after(job, attempt, now));
    }

    /* Every recipient of this attempt has its time now, so the sharing
     * below moves only those of earlier transactions. An attempt
     * usually has one attempt number, so one pass per run of equal
     * numbers is enough, and a repeated pass finds nothing to move. */
    for (size_t i = 0; i < job->attempt_count; i++) {
        size_t index = job->attempt_index[i];
        uint32_t attempt = job->attempt_number[i];

        if (attempt == shared ||
            job->msg->rcpts[index].state != QUEUE_RCPT_QUEUED ||
            job->msg->rcpts[index].attempts != attempt) {
            continue;
        }
        job_share_due(job, attempt, job_due_after(job, attempt, now));
        shared = attempt;
    }
}

/* job_expire_rcpt bounces deferred recipient index of the job because
 * its message outlived queue_lifetime. */
static void job_expire_rcpt(struct outbound_job *job, size_t index)
{
    struct queue_msg *msg = job->msg;
    struct queue_rcpt *rcpt = &msg->rcpts[index];
    const char *reply = rcpt->last_error != NULL ? rcpt->last_error : "";
    char logged[LOG_PATH_MAX];
    char quoted[SMTP_CLIENT_TEXT_MAX + 16];

    log_info("id=%s event=bounced to=%s dest=%s relay=%s tls=%s "
             "reason=\"queue_lifetime exceeded\" reply=%s attempt=%" PRIu32
             " delay=%lds",
             msg->id, log_path(logged, sizeof(logged), rcpt->address),
             job->dest->name, job->relay[0] ? job->relay : "none",
             job->tls[0] ? job->tls : "none",
             log_quote(quoted, sizeof(quoted), reply, strlen(reply)),
             rcpt->attempts, (long)(time(NULL) - msg->arrival));
    if (queue_mark(job->outbound->daemon->queue, msg, index,
                   QUEUE_RCPT_BOUNCED) < 0) {
        log_error("id=%s to=%s error=\"journal write failed: %s\"",
                  msg->id, log_path(logged, sizeof(logged), rcpt->address),
                  strerror(errno));
    }
    if (rcpt->state == QUEUE_RCPT_BOUNCED) {
        /* RFC 3463 4.4.7: delivery time expired. */
        outbound_bounce_note(job, index, SMTP_DSN_ACTION_FAILED, "4.4.7",
                             reply);
    }
}

/* job_check_age bounces the recipients this attempt deferred once their
 * message is older than queue_lifetime, and notes a delay warning for
 * those older than delay_warning that got none yet. */
static void job_check_age(struct outbound_job *job)
{
    const struct config *config = job->outbound->daemon->config;
    time_t age = time(NULL) - job->msg->arrival;

    for (size_t i = 0; i < job->attempt_count; i++) {
        size_t index = job->attempt_index[i];
        const struct queue_rcpt *rcpt = &job->msg->rcpts[index];
        char status[16];

        if (rcpt->state != QUEUE_RCPT_QUEUED ||
            rcpt->attempts != job->attempt_number[i]) {
            continue;
        }
        if (age >= (time_t)config->queue_lifetime) {
            job_expire_rcpt(job, index);
        } else if (config->delay_warning > 0 &&
                   age >= (time_t)config->delay_warning &&
                   outbound_bounce_claim_warning(job, index)) {
            smtp_dsn_status_from_reply(rcpt->last_error != NULL
                                           ? rcpt->last_error
                                           : "",
                                       status, sizeof(status));
            outbound_bounce_note(job, index, SMTP_DSN_ACTION_DELAYED,
                                 status, rcpt->last_error);
        }
    }
}

/* outbound_job_finished ends an attempt: it queues the report about the
 * recipients that failed or were delayed, schedules the retry of those
 * deferred, then starts the next transaction at once for recipients
 * that are due (those the transaction limit left out), waits for the
 * first retry, or frees a job with nothing left. */
void outbound_job_finished(struct outbound_job *job)
{
    struct outbound *outbound = job->outbound;

    outbound->active--;
    outbound_dest_kick(job->dest);
    if (job->attempt_deferred) {
        job_check_age(job);
    }

    /* NOTE: the bounced marks reach the journal before the report is
     * durable, so a crash between the two loses the report. */
    outbound_bounce_send(job);

    /* The report above may copy the body, so the move waits for it. */
    queue_msg_busy(job->msg, false);
    free(job->hops);
    job->hops = NULL;
    job->relay[0] = '\0';
    job->tls[0] = '\0';
    if (job->attempt_deferred) {
        job_schedule_deferred(job);
    }
    job_wait_or_ready(job);
}

void outbound_job_requeue(struct outbound_job *job)
{
    job->outbound->active--;
    job->attempt--;
    queue_msg_busy(job->msg, false);
    free(job->hops);
    job->hops = NULL;
    job->relay[0] = '\0';
    job->tls[0] = '\0';
    job->last_error[0] = '\0';
    outbound_make_ready(job);
}

/* job_regroup frees a job whose destination is an MX set and gives its
 * waiting recipients to a new group. Each domain's MX hosts are then
 * looked up again before the next attempt, because the domains that
 * shared the set may have parted since. The destination is kept
 * meanwhile, with its breaker. Out of memory, the job just becomes
 * ready. */
static void job_regroup(struct outbound_job *job)
{
    struct outbound *outbound = job->outbound;
    struct queue_msg *msg = job->msg;
    size_t *index = malloc(job->rcpt_count * sizeof(*index));
    struct outbound_dest *keep;
    size_t count = 0;

    keep = outbound_dest_get(outbound, &outbound->dests, job->dest->name);
    if (index == NULL || keep == NULL) {
        free(index);
        if (keep != NULL) {
            outbound_dest_put(keep);
        }
        outbound_make_ready(job);
        return;
    }
    for (size_t i = 0; i < job->rcpt_count; i++) {
        if (job_rcpt_waiting(job, job->rcpt_index[i])) {
            index[count++] = job->rcpt_index[i];
        }
    }

    /* The job's reference to msg goes with it. */
    queue_msg_ref(msg);
    job_free(job);
    if (count > 0) {
        outbound_schedule(outbound, msg, index, count, true, keep);
    }
    queue_msg_unref(outbound->daemon->queue, msg);
    outbound_dest_put(keep);
    free(index);
}

static void job_retry_fired(struct reactor_timer *timer)
{
    struct outbound_job *job = timer->owner;

    /* A job parked by its breaker is grouped again too: its domain may
     * have moved away from the failing hosts. */
    job->suspended = false;
    if (job->grouped) {
        job_regroup(job);
        return;
    }
    outbound_make_ready(job);
}

void outbound_wake_suspended(struct outbound *outbound,
                             const struct outbound_dest *dest)
{
    struct reactor *reactor = outbound->daemon->reactor;

    for (struct outbound_job *job = outbound->jobs; job != NULL;
         job = job->next) {
        if (job->dest != dest || !job->suspended ||
            job->state != OUTBOUND_JOB_WAITING || job->in_ready_list) {
            continue;
        }
        reactor_timer_cancel(reactor, &job->timer);
        job->suspended = false;
        outbound_make_ready(job);
    }
}

/* job_expire_parked bounces the due recipients of a job that an open
 * breaker would park once its message outlived queue_lifetime: parked
 * recipients make no attempt, so no deferral would ever expire them.
 * reason is kept as the last error of those that never got a reply.
 * Returns false when the message is younger. */
static bool job_expire_parked(struct outbound_job *job, const char *reason)
{
    struct daemon *daemon = job->outbound->daemon;
    struct queue_msg *msg = job->msg;
    time_t now = time(NULL);
    char text[SMTP_CLIENT_TEXT_MAX];

    if (now - msg->arrival < (time_t)daemon->config->queue_lifetime) {
        return false;
    }
    snprintf(text, sizeof(text), "451 4.4.1 %s", reason);
    queue_msg_busy(msg, true);
    for (size_t i = 0; i < job->rcpt_count; i++) {
        size_t index = job->rcpt_index[i];

        if (!job_rcpt_waiting(job, index) || job->rcpt_due[index] > now) {
            continue;
        }
        if (msg->rcpts[index].last_error == NULL) {
            (void)queue_note_error(daemon->queue, msg, index, text);
        }
        job_expire_rcpt(job, index);
    }
    outbound_bounce_send(job);
    queue_msg_busy(msg, false);
    return true;
}

void outbound_job_suspend(struct outbound_job *job, uint64_t delay_ms,
                          const char *reason)
{
    const struct config *config = job->outbound->daemon->config;
    time_t expires = job->msg->arrival + (time_t)config->queue_lifetime -
                     time(NULL) + 1;
    char quoted[SMTP_CLIENT_TEXT_MAX + 16];

    if (job_expire_parked(job, reason)) {
        job->state = OUTBOUND_JOB_WAITING;
        job_wait_or_ready(job);
        return;
    }

    /* The job wakes by the end of queue_lifetime at the latest, to
     * bounce what the breaker still parks then. */
    if (expires > 0 && (uint64_t)expires * 1000u < delay_ms) {
        delay_ms = (uint64_t)expires * 1000u;
    }
    log_info("id=%s event=suspended domain=%s dest=%s rcpts=%zu "
             "in=%" PRIu64 "s reason=%s",
             job->msg->id, job->domain, job->dest->name, job->rcpt_count,
             (delay_ms + 999) / 1000,
             log_quote(quoted, sizeof(quoted), reason, strlen(reason)));
    job->state = OUTBOUND_JOB_WAITING;
    job->suspended = true;
    job->round_deferred = 0;
    job->timer.fire = job_retry_fired;
    reactor_timer_set(job->outbound->daemon->reactor, &job->timer,
                      delay_ms);
}

void outbound_stop(struct outbound *outbound)
{
    outbound->stopping = true;
    outbound_dest_stop_all(outbound->dests);
}

size_t outbound_active_count(const struct outbound *outbound)
{
    return outbound->active;
}

void outbound_free(struct outbound *outbound)
{
    if (outbound == NULL) {
        return;
    }
    log_info("event=outbound-connections peak=%zu cap=%zu slot_waits=%llu "
             "idle_reclaimed=%llu yielded=%llu",
             outbound->slots.peak, outbound->slots.cap,
             (unsigned long long)outbound->slots.waits,
             (unsigned long long)outbound->slots.reclaimed,
             (unsigned long long)outbound->slots.yielded);
    outbound_dest_close_all(outbound->dests);
    outbound_group_free_all(outbound);
    while (outbound->jobs != NULL) {
        job_free(outbound->jobs);
    }
    outbound_slots_cancel(&outbound->slots);
    outbound_dest_free_all(&outbound->dests);
    tls_context_unref(outbound->tls);
    free(outbound);
}
