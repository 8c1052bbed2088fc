#include "core/outbound_dest.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/outbound_conn.h"
#include "core/outbound_job.h"
#include "proto/smtp_address.h"

static void dest_start_ready(struct reactor_hook *hook);
static void dest_timer_fired(struct reactor_timer *timer);

static struct reactor *dest_reactor(struct outbound_dest *dest)
{
    return outbound_daemon(dest->outbound)->reactor;
}

void outbound_dest_name(const struct config *config,
                        const struct smtp_mailbox *mailbox, char *buf,
                        size_t size)
{
    const struct netaddr_hostport *route = NULL;

    if (mailbox == NULL) {
        snprintf(buf, size, "[invalid]");
        return;
    }
    if (mailbox->kind == SMTP_DOMAIN_NAME) {
        const struct config_route *entry =
            config_route_entry(config, mailbox->domain);

        /* A discard route has no host, so the domain names it. */
        route = entry != NULL && entry->discard
                    ? NULL
                    : config_route_for(config, mailbox->domain);
    } else if (config->has_smarthost) {
        route = &config->smarthost;
    }
    if (route != NULL) {
        snprintf(buf, size, "%s:%u", route->host, (unsigned)route->port);
    } else {
        snprintf(buf, size, "%s", mailbox->domain);
    }
    if (route != NULL || mailbox->kind == SMTP_DOMAIN_NAME) {
        for (char *p = buf; *p != '\0'; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
    }
}

struct outbound_dest *outbound_dest_get(struct outbound *outbound,
                                        struct outbound_dest **list,
                                        const char *name)
{
    struct outbound_dest *dest;

    for (dest = *list; dest != NULL; dest = dest->next) {
        if (strcmp(dest->name, name) == 0) {
            dest->job_count++;
            return dest;
        }
    }
    dest = calloc(1, sizeof(*dest));
    if (dest == NULL) {
        return NULL;
    }
    dest->outbound = outbound;
    snprintf(dest->name, sizeof(dest->name), "%s", name);
    config_delivery_for(outbound_daemon(outbound)->config, name,
                        &dest->limits);
    dest->timer.owner = dest;
    dest->timer.fire = dest_timer_fired;
    dest->kick_hook.owner = dest;
    dest->kick_hook.run = dest_start_ready;
    dest->job_count = 1;
    dest->next = *list;
    if (*list != NULL) {
        (*list)->prev = dest;
    }
    *list = dest;
    return dest;
}

/* dest_unlink takes dest off the engine's list. */
static void dest_unlink(struct outbound_dest *dest,
                        struct outbound_dest **list)
{
    if (dest->prev != NULL) {
        dest->prev->next = dest->next;
    } else {
        *list = dest->next;
    }
    if (dest->next != NULL) {
        dest->next->prev = dest->prev;
    }
}

void outbound_dest_release(struct outbound_dest *dest)
{
    struct reactor *reactor = dest_reactor(dest);

    if (dest->job_count > 0 || dest->conns != NULL) {
        return;
    }
    reactor_timer_cancel(reactor, &dest->timer);
    reactor_defer_cancel(reactor, &dest->kick_hook);
    dest_unlink(dest, outbound_dest_list(dest->outbound));
    free(dest);
}

void outbound_dest_put(struct outbound_dest *dest)
{
    dest->job_count--;
    outbound_dest_release(dest);
}

void outbound_dest_push(struct outbound_dest *dest, struct outbound_job *job)
{
    job->state = OUTBOUND_JOB_WAITING;
    job->ready_next = NULL;
    job->in_ready_list = true;
    if (dest->ready_tail != NULL) {
        dest->ready_tail->ready_next = job;
    } else {
        dest->ready_head = job;
    }
    dest->ready_tail = job;
    outbound_dest_kick(dest);
}

void outbound_dest_unlink(struct outbound_dest *dest,
                          struct outbound_job *job)
{
    struct outbound_job *prev = NULL;

    if (!job->in_ready_list) {
        return;
    }
    for (struct outbound_job *at = dest->ready_head; at != NULL;
         prev = at, at = at->ready_next) {
        if (at != job) {
            continue;
        }
        if (prev != NULL) {
            prev->ready_next = job->ready_next;
        } else {
            dest->ready_head = job->ready_next;
        }
        if (dest->ready_tail == job) {
            dest->ready_tail = prev;
        }
        break;
    }
    job->in_ready_list = false;
    job->ready_next = NULL;
}

void outbound_dest_kick(struct outbound_dest *dest)
{
    reactor_defer(dest_reactor(dest), &dest->kick_hook);
}

/* dest_idle_conn returns an idle connection of dest that job may reuse
 * (outbound_conn_fits), or with fits false any idle one, or NULL. */
static struct outbound_conn *dest_idle_conn(struct outbound_dest *dest,
                                            const struct outbound_job *job,
                                            bool fits)
{
    for (struct outbound_conn *conn = dest->conns; conn != NULL;
         conn = conn->next) {
        if (conn->state == OUTBOUND_CONN_IDLE &&
            (!fits || outbound_conn_fits(conn, job))) {
            return conn;
        }
    }
    return NULL;
}

/* dest_rate_wait returns the microseconds until the rate limit lets the
 * next transaction start, 0 when it may start now. */
static uint64_t dest_rate_wait(struct outbound_dest *dest, uint64_t now)
{
    if (dest->limits.max_messages_per_second == 0 ||
        dest->next_start_us <= now) {
        return 0;
    }
    return dest->next_start_us - now;
}

static void dest_rate_count(struct outbound_dest *dest, uint64_t now)
{
    uint64_t step;

    if (dest->limits.max_messages_per_second == 0) {
        return;
    }
    step = 1000000u / dest->limits.max_messages_per_second;
    if (dest->next_start_us < now) {
        dest->next_start_us = now;
    }
    dest->next_start_us += step;
}

/* dest_suspend_job defers a ready job without a connection while the
 * breaker is open, so its recipients follow their retry schedule and
 * the next hop gets no new connection until the probe. */
static void dest_suspend_job(struct outbound_dest *dest,
                             struct outbound_job *job)
{
    char text[SMTP_CLIENT_TEXT_MAX];

    outbound_dest_unlink(dest, job);
    if (!outbound_job_start(job)) {
        return;
    }
    snprintf(text, sizeof(text), "451 4.4.1 Delivery to %s suspended "
             "after %u failed connections in a row", dest->name,
             dest->failures);
    outbound_record_all(job, 451, text);
    outbound_job_finished(job);
}

/* dest_start_ready gives ready jobs to idle connections, then to new
 * ones while the connection limit allows. An open breaker defers them
 * all, and a probing one allows a single connection. */
static void dest_start_ready(struct reactor_hook *hook)
{
    struct outbound_dest *dest = hook->owner;
    struct reactor *reactor = dest_reactor(dest);

    /* A job that ends here may drop the last reference to dest, so the
     * loop holds one of its own. */
    dest->job_count++;
    while (dest->ready_head != NULL &&
           !outbound_stopping(dest->outbound) &&
           outbound_daemon(dest->outbound)->queue != NULL) {
        struct outbound_job *job = dest->ready_head;
        struct outbound_conn *conn = dest_idle_conn(dest, job, true);
        struct outbound_conn *other;
        size_t limit = dest->breaker == OUTBOUND_BREAKER_PROBING
                           ? 1
                           : dest->limits.max_connections;
        uint64_t now = reactor_now_us(reactor);
        uint64_t wait = dest_rate_wait(dest, now);

        if (dest->breaker == OUTBOUND_BREAKER_OPEN) {
            dest_suspend_job(dest, job);
            continue;
        }
        if (conn == NULL && dest->conn_count >= limit) {
            /* An idle connection with another route's TLS policy or
             * credentials makes room; its release starts the job. */
            other = dest_idle_conn(dest, job, false);
            if (other != NULL) {
                outbound_conn_quit(other);
            }
            break;
        }
        if (wait > 0) {
            reactor_timer_set_us(reactor, &dest->timer, wait);
            break;
        }
        outbound_dest_unlink(dest, job);
        if (!outbound_job_start(job)) {
            continue;
        }
        dest_rate_count(dest, now);
        if (conn != NULL) {
            outbound_conn_reuse(conn, job);
        } else {
            outbound_conn_open(dest, job);
        }
    }
    outbound_dest_put(dest);
}

/* dest_timer_fired ends a breaker wait (the next start is a probe) or a
 * rate-limit wait. */
static void dest_timer_fired(struct reactor_timer *timer)
{
    struct outbound_dest *dest = timer->owner;

    if (dest->breaker == OUTBOUND_BREAKER_OPEN) {
        dest->breaker = OUTBOUND_BREAKER_PROBING;
        log_info("event=breaker-probe dest=%s", dest->name);
    }
    outbound_dest_kick(dest);
}

static void dest_open_breaker(struct outbound_dest *dest)
{
    dest->breaker = OUTBOUND_BREAKER_OPEN;
    log_warning("event=breaker-open dest=%s failures=%u wait=%us "
                "reason=\"connections to the next hop keep failing\"",
                dest->name, dest->failures, dest->limits.breaker_wait);
    reactor_timer_set(dest_reactor(dest), &dest->timer,
                      (uint64_t)dest->limits.breaker_wait * 1000u);
}

void outbound_dest_note(struct outbound_dest *dest, bool reached)
{
    if (reached) {
        if (dest->breaker != OUTBOUND_BREAKER_CLOSED) {
            log_info("event=breaker-closed dest=%s failures=%u", dest->name,
                     dest->failures);
            dest->breaker = OUTBOUND_BREAKER_CLOSED;
            reactor_timer_cancel(dest_reactor(dest), &dest->timer);
            outbound_dest_kick(dest);
        }
        dest->failures = 0;
        return;
    }
    dest->failures++;
    if (dest->breaker == OUTBOUND_BREAKER_PROBING ||
        (dest->breaker == OUTBOUND_BREAKER_CLOSED &&
         dest->limits.breaker_failures > 0 &&
         dest->failures >= dest->limits.breaker_failures)) {
        dest_open_breaker(dest);
    }
}

void outbound_dest_stop_all(struct outbound_dest *list)
{
    for (struct outbound_dest *dest = list; dest != NULL;
         dest = dest->next) {
        struct outbound_conn *conn = dest->conns;

        while (conn != NULL) {
            struct outbound_conn *next = conn->next;

            if (conn->state == OUTBOUND_CONN_IDLE) {
                outbound_conn_quit(conn);
            }
            conn = next;
        }
    }
}

void outbound_dest_close_all(struct outbound_dest *list)
{
    for (struct outbound_dest *dest = list; dest != NULL;
         dest = dest->next) {
        while (dest->conns != NULL) {
            outbound_conn_free(dest->conns);
        }
    }
}

void outbound_dest_free_all(struct outbound_dest **list)
{
    while (*list != NULL) {
        struct outbound_dest *dest = *list;
        struct reactor *reactor = dest_reactor(dest);

        reactor_timer_cancel(reactor, &dest->timer);
        reactor_defer_cancel(reactor, &dest->kick_hook);
        dest_unlink(dest, list);
        free(dest);
    }
}
