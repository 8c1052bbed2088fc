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
#include "core/outbound_slots.h"
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

/* dest_bucket returns the index bucket of name (FNV-1a hash). */
static size_t dest_bucket(const char *name)
{
    uint64_t hash = 14695981039346656037u;

    for (const unsigned char *p = (const unsigned char *)name; *p != '\0';
         p++) {
        hash = (hash ^ *p) * 1099511628211u;
    }
    return (size_t)(hash % OUTBOUND_DEST_BUCKETS);
}

struct outbound_dest *outbound_dest_get(struct outbound *outbound,
                                        struct outbound_dest **list,
                                        const char *name)
{
    struct outbound_dest **bucket =
        &outbound_dest_index(outbound)[dest_bucket(name)];
    struct outbound_dest *dest;

    for (dest = *bucket; dest != NULL; dest = dest->bucket_next) {
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
    dest->bucket_next = *bucket;
    *bucket = dest;
    return dest;
}

/* dest_unlink takes dest off the engine's list and its name index. */
static void dest_unlink(struct outbound_dest *dest,
                        struct outbound_dest **list)
{
    struct outbound_dest **link =
        &outbound_dest_index(dest->outbound)[dest_bucket(dest->name)];

    while (*link != NULL && *link != dest) {
        link = &(*link)->bucket_next;
    }
    if (*link == dest) {
        *link = dest->bucket_next;
    }
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

    /* The lowered limit ends with dest, and a later job starts from
     * max_connections again. */
    if (dest->conn_cap > 0) {
        log_info("event=connection-limit-restored dest=%s limit=%u "
                 "reason=\"no jobs left\"",
                 dest->name, dest->limits.max_connections);
    }
    outbound_slots_forget(dest);
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
    dest->ready_count++;
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
        dest->ready_count--;
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

/* dest_busy_conns returns the connections of dest that carry a job:
 * those opening (DNS lookup, connect, greeting) and those in a
 * transaction. */
static size_t dest_busy_conns(const struct outbound_dest *dest)
{
    size_t count = 0;

    for (const struct outbound_conn *conn = dest->conns; conn != NULL;
         conn = conn->next) {
        if (conn->job != NULL) {
            count++;
        }
    }
    return count;
}

/* dest_may_open reports whether dest may open one more connection: it
 * is below its own limit, its ready jobs outnumber the connections that
 * will be free for them once their current job ends, and the total cap
 * gives it a slot. Without the second check a burst of jobs opened a
 * connection for each while the first ones were still connecting. */
static bool dest_may_open(struct outbound_dest *dest, size_t limit)
{
    size_t busy = dest_busy_conns(dest);

    if (dest->conn_count >= limit || dest->ready_count <= busy) {
        return false;
    }
    return outbound_slots_take(dest, busy > 0);
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

/* dest_suspend_job parks a ready job until the open breaker lets its
 * probe through. The job makes no attempt, so its attempt count and
 * backoff do not grow while the next hop is known to be down. */
static void dest_suspend_job(struct outbound_dest *dest,
                             struct outbound_job *job)
{
    uint64_t now = reactor_now_us(dest_reactor(dest));
    uint64_t wait_us = dest->breaker_until_us > now
                           ? dest->breaker_until_us - now
                           : 0;
    char text[SMTP_CLIENT_TEXT_MAX];

    outbound_dest_unlink(dest, job);
    snprintf(text, sizeof(text), "Delivery to %s suspended after %u "
             "failed attempts in a row", dest->name, dest->failures);

    /* The job wakes just after the probe is allowed, so it finds the
     * breaker probing rather than open. */
    outbound_job_suspend(job, wait_us / 1000u + 1u, text);
}

/* dest_conn_limit returns how many connections dest may have at now:
 * one while its breaker probes, else max_connections, or less while a
 * cap set by outbound_dest_lower_limit() lasts. */
static size_t dest_conn_limit(struct outbound_dest *dest, uint64_t now)
{
    size_t limit = dest->limits.max_connections;

    if (dest->breaker == OUTBOUND_BREAKER_PROBING) {
        return 1;
    }
    if (dest->conn_cap > 0 && now >= dest->conn_cap_until_us) {
        log_info("event=connection-limit-restored dest=%s limit=%zu",
                 dest->name, limit);
        dest->conn_cap = 0;
    }
    if (dest->conn_cap > 0 && dest->conn_cap < limit) {
        limit = dest->conn_cap;
    }
    return limit;
}

/* dest_relay_address returns the "[ip]:port" part of a connection's
 * relay text "host[ip]:port", or "" before its first connect. */
static const char *dest_relay_address(const struct outbound_conn *conn)
{
    const char *address = strchr(conn->relay, '[');

    return address != NULL ? address : "";
}

size_t outbound_dest_working_conns(const struct outbound_dest *dest,
                                   const struct outbound_conn *except)
{
    const char *address = except != NULL ? dest_relay_address(except) : "";
    size_t count = 0;
    bool same_address = except == NULL;

    for (const struct outbound_conn *conn = dest->conns; conn != NULL;
         conn = conn->next) {
        if (conn == except || !conn->reached ||
            (conn->state != OUTBOUND_CONN_TALKING &&
             conn->state != OUTBOUND_CONN_IDLE)) {
            continue;
        }
        count++;
        if (address[0] != '\0' &&
            strcmp(dest_relay_address(conn), address) == 0) {
            same_address = true;
        }
    }
    return same_address ? count : 0;
}

void outbound_dest_lower_limit(struct outbound_dest *dest, size_t working)
{
    unsigned wait_s = dest->limits.breaker_wait > 0
                          ? dest->limits.breaker_wait
                          : 60u;

    if (dest->conn_cap == 0 || working < dest->conn_cap) {
        log_warning("event=connection-limit-lowered dest=%s limit=%zu "
                    "for=%us reason=\"next hop refused a session while "
                    "%zu worked\"", dest->name, working, wait_s, working);
        dest->conn_cap = working;
    }
    dest->conn_cap_until_us = reactor_now_us(dest_reactor(dest)) +
                              (uint64_t)wait_s * 1000000u;
}

/* dest_start_ready gives ready jobs to idle connections, then to new
 * ones while dest_may_open allows. An open breaker defers them all, and
 * a probing one allows a single connection. The jobs left wait for a
 * connection of dest to end its transaction or close, or for a slot
 * under the total cap. */
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
        uint64_t now = reactor_now_us(reactor);
        size_t limit = dest_conn_limit(dest, now);
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
        if (conn == NULL && !dest_may_open(dest, limit)) {
            break;
        }
        outbound_dest_unlink(dest, job);
        if (!outbound_job_start(job)) {
            if (conn == NULL) {
                outbound_slots_keep(dest);
            }
            continue;
        }
        dest_rate_count(dest, now);
        if (conn != NULL) {
            outbound_slots_conn_busy(conn);
            outbound_conn_reuse(conn, job);
        } else {
            outbound_conn_open(dest, job);
        }
    }
    outbound_slots_done(dest);
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

void outbound_dest_probe_now(struct outbound_dest *dest)
{
    if (dest->breaker != OUTBOUND_BREAKER_OPEN) {
        return;
    }
    reactor_timer_cancel(dest_reactor(dest), &dest->timer);
    dest->breaker = OUTBOUND_BREAKER_PROBING;
    dest->breaker_until_us = 0;
    log_info("event=breaker-probe dest=%s reason=flush", dest->name);
}

static void dest_open_breaker(struct outbound_dest *dest)
{
    dest->breaker = OUTBOUND_BREAKER_OPEN;
    dest->breaker_until_us =
        reactor_now_us(dest_reactor(dest)) +
        (uint64_t)dest->limits.breaker_wait * 1000000u;
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
            outbound_wake_suspended(dest->outbound, dest);
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

        outbound_slots_forget(dest);
        reactor_timer_cancel(reactor, &dest->timer);
        reactor_defer_cancel(reactor, &dest->kick_hook);
        dest_unlink(dest, list);
        free(dest);
    }
}
