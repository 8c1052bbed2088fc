/* The cap on the DNS queries one resolver has in flight.
 *
 * A query takes a slot at its first try and keeps it, over its retries,
 * until its answer, its last timeout or its cancellation. A query that finds
 * every slot taken waits in a first-in, first-out queue and is started
 * when a slot frees. Without the cap, a burst of lookups (a bulk run to
 * many new domains) sends every query at once, and a name server drops
 * what overflows its receive buffer or rate-limits the burst; each drop
 * then costs a whole try timeout. */
#ifndef RINGRELAY_DNS_LIMIT_H
#define RINGRELAY_DNS_LIMIT_H

#include <stdbool.h>
#include <stddef.h>

struct dns_limit_entry;

/* dns_limit_start_fn starts a query that waited for its slot. It is
 * called from inside dns_limit_leave of another entry, so it must not
 * call back into the limit or into that entry's owner: arming a timer is
 * the intended use. */
typedef void (*dns_limit_start_fn)(struct dns_limit_entry *entry);

enum dns_limit_state {
    DNS_LIMIT_IDLE,    /* neither queued nor holding a slot */
    DNS_LIMIT_QUEUED,  /* waiting for a slot */
    DNS_LIMIT_RUNNING, /* holding a slot */
};

/* dns_limit_entry: one query's place in the limit, owned by the query,
 * which must not move it while queued. */
struct dns_limit_entry {
    struct dns_limit_entry *prev; /* in the queue, older */
    struct dns_limit_entry *next; /* in the queue, newer */
    enum dns_limit_state state;
    dns_limit_start_fn start;
    void *owner;
};

struct dns_limit {
    unsigned max_running;  /* slots, at least 1 */
    unsigned running;      /* slots taken */
    size_t queued;         /* entries in the queue */
    struct dns_limit_entry *head; /* oldest, started next */
    struct dns_limit_entry *tail;
};

/* dns_limit_init sets up an empty limit of max_running slots (0 is
 * taken as 1). */
void dns_limit_init(struct dns_limit *limit, unsigned max_running);

/* dns_limit_enter gives entry a slot and returns true, or queues it and
 * returns false; entry->start is then called once it gets its slot. */
bool dns_limit_enter(struct dns_limit *limit, struct dns_limit_entry *entry,
                     dns_limit_start_fn start, void *owner);

/* dns_limit_leave frees entry's slot and starts the oldest queued entry
 * in it, or takes entry out of the queue. An idle entry is accepted. */
void dns_limit_leave(struct dns_limit *limit, struct dns_limit_entry *entry);

#endif
