#include "dns/dns_limit.h"

void dns_limit_init(struct dns_limit *limit, unsigned max_running)
{
    limit->max_running = max_running > 0 ? max_running : 1;
    limit->running = 0;
    limit->queued = 0;
    limit->head = NULL;
    limit->tail = NULL;
}

bool dns_limit_enter(struct dns_limit *limit, struct dns_limit_entry *entry,
                     dns_limit_start_fn start, void *owner)
{
    entry->start = start;
    entry->owner = owner;
    entry->next = NULL;
    if (limit->running < limit->max_running) {
        entry->prev = NULL;
        entry->state = DNS_LIMIT_RUNNING;
        limit->running++;
        return true;
    }

    entry->prev = limit->tail;
    entry->state = DNS_LIMIT_QUEUED;
    if (limit->tail != NULL) {
        limit->tail->next = entry;
    } else {
        limit->head = entry;
    }
    limit->tail = entry;
    limit->queued++;
    return false;
}

static void dns_limit_unqueue(struct dns_limit *limit,
                              struct dns_limit_entry *entry)
{
    if (entry->prev != NULL) {
        entry->prev->next = entry->next;
    } else {
        limit->head = entry->next;
    }
    if (entry->next != NULL) {
        entry->next->prev = entry->prev;
    } else {
        limit->tail = entry->prev;
    }
    entry->prev = NULL;
    entry->next = NULL;
    limit->queued--;
}

void dns_limit_leave(struct dns_limit *limit, struct dns_limit_entry *entry)
{
    struct dns_limit_entry *oldest;

    if (entry->state == DNS_LIMIT_QUEUED) {
        dns_limit_unqueue(limit, entry);
        entry->state = DNS_LIMIT_IDLE;
        return;
    }
    if (entry->state != DNS_LIMIT_RUNNING) {
        return;
    }
    entry->state = DNS_LIMIT_IDLE;
    limit->running--;

    oldest = limit->head;
    if (oldest == NULL) {
        return;
    }
    dns_limit_unqueue(limit, oldest);
    oldest->state = DNS_LIMIT_RUNNING;
    limit->running++;
    oldest->start(oldest);
}
