/* Destinations of the outbound engine: one per next hop, with its ready
 * jobs, its connections (busy and idle), its limits and its circuit
 * breaker. Private to the outbound engine.
 *
 * A destination is named after the next hop: "HOST:PORT" of the route or
 * smarthost that applies, else the MX set of the recipient domain
 * ("mx:HOST,...", see outbound_group.h), else the domain in lower case
 * (its MX hosts, when they could not be shared), else the address
 * literal as stored. The destinations configuration object uses the
 * same names. */
#ifndef RINGRELAY_CORE_OUTBOUND_DEST_H
#define RINGRELAY_CORE_OUTBOUND_DEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config_delivery.h"
#include "core/reactor.h"

struct outbound;
struct outbound_conn;
struct outbound_job;
struct smtp_mailbox;
struct config;

/* Buckets of the index of destinations by name. Every job looks its
 * destination up by name. With 1,000 destinations a scan of the list
 * took about a tenth of the relay's CPU samples (perf, in
 * bench/delivery-domains). */
#define OUTBOUND_DEST_BUCKETS 4096

enum outbound_breaker {
    OUTBOUND_BREAKER_CLOSED,  /* connections open as limits allow */
    OUTBOUND_BREAKER_OPEN,    /* no connection until breaker_wait ends */
    OUTBOUND_BREAKER_PROBING, /* one connection tests the next hop */
};

struct outbound_dest {
    struct outbound *outbound;
    struct outbound_dest *prev;       /* list of all destinations */
    struct outbound_dest *next;
    struct outbound_dest *bucket_next; /* same bucket of the name index */
    char name[320];
    struct config_delivery limits;
    struct outbound_job *ready_head;  /* jobs waiting for a connection */
    struct outbound_job *ready_tail;
    size_t ready_count;               /* jobs in the ready list */
    struct outbound_conn *conns;      /* every connection, idle or not */
    size_t conn_count;
    size_t job_count;                 /* jobs that refer to it */
    unsigned failures;                /* attempts in a row whose new
                                       * connections reached no greeted
                                       * session */
    enum outbound_breaker breaker;
    struct reactor_timer timer;       /* breaker wait or rate wait */
    uint64_t breaker_until_us;        /* reactor time the open breaker
                                       * lets a probe through */
    struct reactor_hook kick_hook;    /* starts ready jobs after a turn */
    uint64_t next_start_us;           /* rate limit: earliest start */
    struct outbound_dest *wait_next;  /* FIFO of outbound_slots.h */
    bool waiting;                     /* in that FIFO */
    bool slot_granted;                /* a slot under the total cap is
                                       * kept for its next connection */
    size_t conn_cap;                  /* connections the next hop took
                                       * when it refused one more; 0 for
                                       * no cap below max_connections */
    uint64_t conn_cap_until_us;       /* reactor time the cap ends */
};

/* outbound_dest_name writes the destination name of a recipient (NULL:
 * one whose stored address does not parse) into buf. For a domain
 * delivered by MX that is the domain, which outbound_group_rename() may
 * then replace with its MX set. */
void outbound_dest_name(const struct config *config,
                        const struct smtp_mailbox *mailbox, char *buf,
                        size_t size);

/* outbound_dest_get returns the destination called name, created with
 * its configured limits when new, and takes a job reference on it.
 * Returns NULL when out of memory. */
struct outbound_dest *outbound_dest_get(struct outbound *outbound,
                                        struct outbound_dest **list,
                                        const char *name);

/* outbound_dest_put drops a job reference, then releases dest. */
void outbound_dest_put(struct outbound_dest *dest);

/* outbound_dest_release frees dest once no job refers to it and it has
 * no connection. Its breaker state goes with it: a failing next hop
 * keeps it through the deferred jobs that wait for a retry. */
void outbound_dest_release(struct outbound_dest *dest);

/* outbound_dest_push appends job to the ready list and schedules a
 * start. */
void outbound_dest_push(struct outbound_dest *dest, struct outbound_job *job);

/* outbound_dest_unlink takes job off the ready list when it is there. */
void outbound_dest_unlink(struct outbound_dest *dest,
                          struct outbound_job *job);

/* outbound_dest_kick schedules a start of ready jobs at the turn's end. */
void outbound_dest_kick(struct outbound_dest *dest);

/* outbound_dest_probe_now ends an open breaker's wait, so the next ready
 * job makes the probe connection at once: an operator's flush asks for
 * delivery now. */
void outbound_dest_probe_now(struct outbound_dest *dest);

/* outbound_dest_note records whether a new connection reached a greeted
 * SMTP session; failures in a row open the breaker. */
void outbound_dest_note(struct outbound_dest *dest, bool reached);

/* outbound_dest_working_conns counts the open connections of dest,
 * except the one given, that reached a greeted session. It returns 0
 * unless one of them goes to the address ("[ip]:port" of the relay
 * text) that except last tried. A host that refuses one more session
 * while its own sessions work limits connections, but a host with none
 * working has failed, even while other hosts of the MX set work. */
size_t outbound_dest_working_conns(const struct outbound_dest *dest,
                                   const struct outbound_conn *except);

/* outbound_dest_lower_limit caps dest's connections at working for
 * breaker_wait (60 s when that is 0), because the next hop refused one
 * more session while those worked. */
void outbound_dest_lower_limit(struct outbound_dest *dest, size_t working);

/* outbound_dest_stop_all closes the idle connections of every
 * destination with QUIT, for shutdown. */
void outbound_dest_stop_all(struct outbound_dest *list);

/* outbound_dest_close_all frees every connection without callbacks,
 * after the reactor stopped, so the jobs can be freed next. */
void outbound_dest_close_all(struct outbound_dest *list);

/* outbound_dest_free_all frees the destinations left, once the jobs are
 * gone. */
void outbound_dest_free_all(struct outbound_dest **list);

#endif
