/* Queue administration: finding messages, the operator's hold, release
 * and delete, and the last error kept per recipient. */
#include "core/queue_admin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/queue_internal.h"

static struct queue_item *queue_admin_item(const struct queue_msg *msg)
{
    return (struct queue_item *)msg;
}

/* queue_parse_id decodes QUEUE_ID_LEN hex digits of either case. */
static bool queue_parse_id(const char *text, uint64_t *id)
{
    uint64_t value = 0;

    if (text == NULL || strlen(text) != QUEUE_ID_LEN) {
        return false;
    }
    for (size_t i = 0; i < QUEUE_ID_LEN; i++) {
        char c = text[i];
        unsigned digit;

        if (c >= '0' && c <= '9') {
            digit = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            digit = (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            digit = (unsigned)(c - 'A' + 10);
        } else {
            return false;
        }
        value = value << 4 | digit;
    }
    *id = value;
    return true;
}

/* queue_admin_durable returns item or the first durable item after it,
 * or NULL. */
static struct queue_item *queue_admin_durable(struct queue_item *item)
{
    while (item != NULL && !item->durable) {
        item = item->next;
    }
    return item;
}

struct queue_msg *queue_find(struct queue *queue, const char *id)
{
    uint64_t key;

    if (queue_parse_id(id, &key)) {
        for (struct queue_item *item = queue_admin_durable(queue->items);
             item != NULL; item = queue_admin_durable(item->next)) {
            if (item->id == key) {
                return &item->msg;
            }
        }
    }
    errno = ENOENT;
    return NULL;
}

struct queue_msg *queue_first(struct queue *queue)
{
    struct queue_item *item = queue_admin_durable(queue->items);

    return item != NULL ? &item->msg : NULL;
}

struct queue_msg *queue_next(struct queue *queue, const struct queue_msg *msg)
{
    struct queue_item *next = queue_admin_durable(queue_admin_item(msg)->next);

    (void)queue;
    return next != NULL ? &next->msg : NULL;
}

/* queue_admin_append writes one operator entry for recipient rcpt. The
 * attempt count goes along so the entry reads like the others. */
static int queue_admin_append(struct queue *queue, struct queue_msg *msg,
                              size_t rcpt, uint16_t state)
{
    uint32_t attempts = msg->rcpts[rcpt].attempts;
    struct queue_journal_entry entry = {
        .id = queue_admin_item(msg)->id,
        .rcpt = (uint32_t)rcpt,
        .state = state,
        .attempts = attempts > UINT16_MAX ? UINT16_MAX : (uint16_t)attempts,
        .time = (int64_t)time(NULL),
    };

    if (queue_journal_append(&queue->journal, &entry) != 0) {
        log_error("id=%s event=queue_journal_write_failed rcpt=%zu "
                  "state=%u error=\"%s\"", msg->id, rcpt, (unsigned)state,
                  strerror(errno));
        return -1;
    }
    return 0;
}

static int queue_admin_writable(const struct queue *queue)
{
    if (queue->read_only) {
        errno = EROFS;
        return -1;
    }
    return 0;
}

/* queue_admin_finish schedules the journal sync for count new entries
 * and returns count, or -1 when an append failed. Entries written before
 * a failure stay, so the caller may retry the rest. The caller logs the
 * action with the operator's uid. */
static int queue_admin_finish(struct queue *queue, int count, bool failed)
{
    if (count > 0) {
        queue_schedule_sync(queue);
    }
    return failed ? -1 : count;
}

int queue_hold(struct queue *queue, struct queue_msg *msg)
{
    bool failed = false;
    int count = 0;

    if (queue_admin_writable(queue) != 0) {
        return -1;
    }
    for (size_t i = 0; i < msg->rcpt_count && !failed; i++) {
        struct queue_rcpt *rcpt = &msg->rcpts[i];

        if (rcpt->state != QUEUE_RCPT_QUEUED || rcpt->held) {
            continue;
        }
        if (queue_admin_append(queue, msg, i, QUEUE_JOURNAL_HELD) != 0) {
            failed = true;
            continue;
        }
        rcpt->held = true;
        count++;
    }
    return queue_admin_finish(queue, count, failed);
}

int queue_release(struct queue *queue, struct queue_msg *msg)
{
    bool failed = false;
    int count = 0;

    if (queue_admin_writable(queue) != 0) {
        return -1;
    }
    for (size_t i = 0; i < msg->rcpt_count && !failed; i++) {
        struct queue_rcpt *rcpt = &msg->rcpts[i];

        if (rcpt->state != QUEUE_RCPT_QUEUED || !rcpt->held) {
            continue;
        }
        if (queue_admin_append(queue, msg, i, QUEUE_JOURNAL_RELEASED) != 0) {
            failed = true;
            continue;
        }
        rcpt->held = false;
        rcpt->next_attempt = 0;
        count++;
    }
    return queue_admin_finish(queue, count, failed);
}

int queue_delete(struct queue *queue, struct queue_msg *msg)
{
    struct queue_item *item = queue_admin_item(msg);
    bool failed = false;
    int count = 0;
    int result;

    if (queue_admin_writable(queue) != 0) {
        return -1;
    }
    for (size_t i = 0; i < msg->rcpt_count && !failed; i++) {
        struct queue_rcpt *rcpt = &msg->rcpts[i];

        if (rcpt->state != QUEUE_RCPT_QUEUED) {
            continue;
        }
        if (queue_admin_append(queue, msg, i, QUEUE_RCPT_DELETED) != 0) {
            failed = true;
            continue;
        }
        rcpt->state = QUEUE_RCPT_DELETED;
        rcpt->held = false;
        item->queued--;
        count++;
    }
    result = queue_admin_finish(queue, count, failed);

    /* Last, because dropping the queue's reference may free msg. */
    if (count > 0 && item->queued == 0) {
        queue_item_unref(queue, item);
    }
    return result;
}

int queue_note_error(struct queue *queue, struct queue_msg *msg, size_t rcpt,
                     const char *text)
{
    char *copy;

    (void)queue;
    if (rcpt >= msg->rcpt_count || text == NULL) {
        errno = EINVAL;
        return -1;
    }
    copy = strdup(text);
    if (copy == NULL) {
        log_error("id=%s event=queue_note_error_failed rcpt=%zu "
                  "error=\"%s\"", msg->id, rcpt, strerror(errno));
        return -1;
    }
    free((char *)msg->rcpts[rcpt].last_error);
    msg->rcpts[rcpt].last_error = copy;
    return 0;
}

void queue_item_free(struct queue_item *item)
{
    if (item->queued == 0) {
        queue_tombstone_add(item);
    }
    for (size_t i = 0; i < item->msg.rcpt_count; i++) {
        free((char *)item->msg.rcpts[i].last_error);
    }
    free(item);
}
