/* The cap on outbound connections over all destinations,
 * delivery_max_connections_total. Private to the outbound engine.
 *
 * A destination that needs a new connection while the total is at the
 * cap joins a FIFO of waiting destinations, and for each waiting
 * destination one idle connection of another destination is closed
 * with QUIT, least recently used first. Each slot that frees goes to
 * the head of the FIFO, so every waiting destination gets its turn.
 * Destinations with a steady backlog leave no connection idle. So while
 * destinations wait, a connection whose destination has another one
 * ends with QUIT after its transaction, and its slot goes to the FIFO. */
#ifndef RINGRELAY_CORE_OUTBOUND_SLOTS_H
#define RINGRELAY_CORE_OUTBOUND_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/reactor.h"

struct outbound;
struct outbound_conn;
struct outbound_dest;

struct outbound_slots {
    struct outbound *outbound;
    size_t cap;                       /* delivery_max_connections_total */
    size_t open;                      /* connections from creation to
                                       * free, in any state */
    size_t granted;                   /* slots kept for destinations
                                       * called from the FIFO */
    size_t reclaiming;                /* idle connections quitting to
                                       * free a slot */
    struct outbound_dest *wait_head;  /* FIFO of waiting destinations */
    struct outbound_dest *wait_tail;
    size_t wait_count;
    struct outbound_conn *idle_head;  /* idle connections, least recently
                                       * used first. An entry that left
                                       * the idle state goes at the next
                                       * scan. */
    struct outbound_conn *idle_tail;
    struct reactor_hook grant_hook;   /* gives free slots to the FIFO */
    uint64_t waits;                   /* destinations that joined the
                                       * FIFO, for the stop line */
    uint64_t reclaimed;               /* idle connections closed for a
                                       * slot */
    uint64_t yielded;                 /* busy connections that ended
                                       * after their transaction for a
                                       * slot */
    size_t peak;                      /* most connections at once */
};

void outbound_slots_init(struct outbound_slots *slots,
                         struct outbound *outbound, unsigned cap);

/* outbound_slots_take returns true when dest may open a connection now:
 * a slot was kept for it from the FIFO, or the total is below the cap
 * and no destination waits. Otherwise a dest with has_busy set (a
 * connection that carries a job) waits for that connection, and any
 * other dest joins the FIFO, idle connections of other destinations
 * start to close, and dest is kicked once a slot is kept for it. At the
 * cap, each destination thus gets one connection before any gets a
 * second. */
bool outbound_slots_take(struct outbound_dest *dest, bool has_busy);

/* outbound_slots_keep keeps the slot that dest took for a job with
 * nothing left to deliver, for its next job. */
void outbound_slots_keep(struct outbound_dest *dest);

/* outbound_slots_done ends a start pass of dest: a kept slot that dest
 * did not use goes to the next waiting destination, and idle
 * connections are closed for the destinations still waiting. */
void outbound_slots_done(struct outbound_dest *dest);

/* outbound_slots_forget takes dest off the FIFO and gives back its kept
 * slot, before dest is freed. */
void outbound_slots_forget(struct outbound_dest *dest);

/* The connection code calls these when a connection is created, when a
 * transaction ends and it waits idle, and when it is freed. */
void outbound_slots_conn_opened(struct outbound_conn *conn);
void outbound_slots_conn_idle(struct outbound_conn *conn);
void outbound_slots_conn_closed(struct outbound_conn *conn);

/* outbound_slots_conn_yields decides whether conn gives up its slot when
 * its transaction ends. It does when more destinations wait than slots
 * are free or closing for them, and conn's destination has another
 * connection that stays open, so a destination with a single connection
 * keeps it. On true, conn counts as closing for a waiting destination,
 * and the caller must end it with QUIT. */
bool outbound_slots_conn_yields(struct outbound_conn *conn);

/* outbound_slots_conn_busy takes an idle connection that gets a new
 * transaction off the list of idle connections. */
void outbound_slots_conn_busy(struct outbound_conn *conn);

/* outbound_slots_cancel cancels the pending grant pass, at teardown. */
void outbound_slots_cancel(struct outbound_slots *slots);

#endif
