#include "core/outbound_slots.h"

#include "core/daemon.h"
#include "core/log.h"
#include "core/outbound_conn.h"
#include "core/outbound_dest.h"
#include "core/outbound_job.h"

static void slots_grant(struct reactor_hook *hook);

void outbound_slots_init(struct outbound_slots *slots,
                         struct outbound *outbound, unsigned cap)
{
    slots->outbound = outbound;
    slots->cap = cap;
    slots->grant_hook.owner = slots;
    slots->grant_hook.run = slots_grant;
}

static struct outbound_slots *dest_slots(const struct outbound_dest *dest)
{
    return outbound_slots_of(dest->outbound);
}

/* slots_schedule_grant runs the grant pass at the turn's end, not at
 * once: a connection that closes to be replaced by a new one for the
 * same job (a reused connection found dead) frees and takes its slot in
 * the same turn, and the pass then sees the total after both. */
static void slots_schedule_grant(struct outbound_slots *slots)
{
    if (slots->wait_head == NULL || outbound_stopping(slots->outbound)) {
        return;
    }
    reactor_defer(outbound_daemon(slots->outbound)->reactor,
                  &slots->grant_hook);
}

/* slots_grant keeps each free slot for the destination at the head of
 * the FIFO and kicks it. */
static void slots_grant(struct reactor_hook *hook)
{
    struct outbound_slots *slots = hook->owner;

    while (slots->wait_head != NULL &&
           slots->open + slots->granted < slots->cap) {
        struct outbound_dest *dest = slots->wait_head;

        slots->wait_head = dest->wait_next;
        if (slots->wait_head == NULL) {
            slots->wait_tail = NULL;
        }
        dest->wait_next = NULL;
        dest->waiting = false;
        slots->wait_count--;
        dest->slot_granted = true;
        slots->granted++;
        outbound_dest_kick(dest);
    }
}

static void slots_idle_unlink(struct outbound_slots *slots,
                              struct outbound_conn *conn)
{
    if (!conn->idle_listed) {
        return;
    }
    if (conn->idle_prev != NULL) {
        conn->idle_prev->idle_next = conn->idle_next;
    } else {
        slots->idle_head = conn->idle_next;
    }
    if (conn->idle_next != NULL) {
        conn->idle_next->idle_prev = conn->idle_prev;
    } else {
        slots->idle_tail = conn->idle_prev;
    }
    conn->idle_prev = NULL;
    conn->idle_next = NULL;
    conn->idle_listed = false;
}

/* slots_reclaim closes idle connections, least recently used first,
 * until each waiting destination has one closing for it. It skips the
 * connections of destinations with ready jobs, which take them in
 * their own start pass of this turn. */
static void slots_reclaim(struct outbound_slots *slots)
{
    struct outbound_conn *conn = slots->idle_head;

    while (conn != NULL && slots->wait_count > slots->reclaiming) {
        struct outbound_conn *next = conn->idle_next;

        if (conn->state != OUTBOUND_CONN_IDLE) {
            slots_idle_unlink(slots, conn);
        } else if (conn->dest->ready_head == NULL) {
            slots_idle_unlink(slots, conn);
            conn->reclaimed = true;
            slots->reclaiming++;
            slots->reclaimed++;
            log_debug("event=idle-connection-reclaimed dest=%s relay=%s "
                      "open=%zu waiting=%zu",
                      conn->dest->name, conn->relay, slots->open,
                      slots->wait_count);
            outbound_conn_quit(conn);
        }
        conn = next;
    }
}

/* slots_count_staying counts the connections of conn's destination other
 * than conn that will still be open after their current step: those not
 * quitting, closing or already given up for a slot. */
static size_t slots_count_staying(const struct outbound_conn *conn)
{
    size_t count = 0;

    for (const struct outbound_conn *other = conn->dest->conns;
         other != NULL; other = other->next) {
        if (other != conn && !other->reclaimed &&
            other->state != OUTBOUND_CONN_QUITTING &&
            other->state != OUTBOUND_CONN_CLOSING) {
            count++;
        }
    }
    return count;
}

bool outbound_slots_conn_yields(struct outbound_conn *conn)
{
    struct outbound_slots *slots = dest_slots(conn->dest);
    size_t used = slots->open + slots->granted;
    size_t free_slots = used < slots->cap ? slots->cap - used : 0;

    if (slots->wait_count <= slots->reclaiming + free_slots ||
        slots_count_staying(conn) == 0) {
        return false;
    }
    conn->reclaimed = true;
    slots->reclaiming++;
    slots->yielded++;
    log_debug("event=connection-yielded dest=%s relay=%s open=%zu "
              "waiting=%zu",
              conn->dest->name, conn->relay, slots->open, slots->wait_count);
    return true;
}

bool outbound_slots_take(struct outbound_dest *dest, bool has_busy)
{
    struct outbound_slots *slots = dest_slots(dest);

    if (dest->slot_granted) {
        dest->slot_granted = false;
        slots->granted--;
        return true;
    }
    if (slots->wait_head == NULL &&
        slots->open + slots->granted < slots->cap) {
        return true;
    }
    if (has_busy) {
        return false;
    }
    if (!dest->waiting) {
        dest->waiting = true;
        if (slots->wait_tail != NULL) {
            slots->wait_tail->wait_next = dest;
        } else {
            slots->wait_head = dest;
        }
        slots->wait_tail = dest;
        slots->wait_count++;
        slots->waits++;
        log_debug("event=connection-slot-wait dest=%s open=%zu cap=%zu "
                  "waiting=%zu",
                  dest->name, slots->open, slots->cap, slots->wait_count);
    }
    slots_schedule_grant(slots);
    slots_reclaim(slots);
    return false;
}

void outbound_slots_keep(struct outbound_dest *dest)
{
    if (!dest->slot_granted) {
        dest->slot_granted = true;
        dest_slots(dest)->granted++;
    }
}

void outbound_slots_done(struct outbound_dest *dest)
{
    struct outbound_slots *slots = dest_slots(dest);

    if (dest->slot_granted) {
        dest->slot_granted = false;
        slots->granted--;
        slots_schedule_grant(slots);
    }
    slots_reclaim(slots);
}

void outbound_slots_forget(struct outbound_dest *dest)
{
    struct outbound_slots *slots = dest_slots(dest);

    if (dest->waiting) {
        struct outbound_dest **link = &slots->wait_head;
        struct outbound_dest *prev = NULL;

        while (*link != dest) {
            prev = *link;
            link = &prev->wait_next;
        }
        *link = dest->wait_next;
        if (slots->wait_tail == dest) {
            slots->wait_tail = prev;
        }
        dest->wait_next = NULL;
        dest->waiting = false;
        slots->wait_count--;
    }
    if (dest->slot_granted) {
        dest->slot_granted = false;
        slots->granted--;
        slots_schedule_grant(slots);
    }
}

void outbound_slots_conn_opened(struct outbound_conn *conn)
{
    struct outbound_slots *slots = dest_slots(conn->dest);

    slots->open++;
    if (slots->open > slots->peak) {
        slots->peak = slots->open;
    }
}

void outbound_slots_conn_idle(struct outbound_conn *conn)
{
    struct outbound_slots *slots = dest_slots(conn->dest);

    slots_idle_unlink(slots, conn);
    conn->idle_prev = slots->idle_tail;
    if (slots->idle_tail != NULL) {
        slots->idle_tail->idle_next = conn;
    } else {
        slots->idle_head = conn;
    }
    slots->idle_tail = conn;
    conn->idle_listed = true;
}

void outbound_slots_conn_busy(struct outbound_conn *conn)
{
    slots_idle_unlink(dest_slots(conn->dest), conn);
}

void outbound_slots_conn_closed(struct outbound_conn *conn)
{
    struct outbound_slots *slots = dest_slots(conn->dest);

    slots_idle_unlink(slots, conn);
    slots->open--;
    if (conn->reclaimed) {
        conn->reclaimed = false;
        slots->reclaiming--;
    }
    slots_schedule_grant(slots);
}

void outbound_slots_cancel(struct outbound_slots *slots)
{
    reactor_defer_cancel(outbound_daemon(slots->outbound)->reactor,
                         &slots->grant_hook);
}
