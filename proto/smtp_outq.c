#include "proto/smtp_outq.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Replies are short, so copied text goes into chunks of at least this many
 * bytes and a pipelined batch of replies usually fits in one. */
#define SMTP_OUTQ_CHUNK_MIN 4096

/* One run of queued bytes: data[start..end) is still to be sent. An owned
 * chunk keeps its bytes in storage[0..capacity); a borrowed chunk has
 * capacity 0 and points at the caller's memory. */
struct smtp_outq_chunk {
    struct smtp_outq_chunk *next;
    const char *data;
    size_t start;
    size_t end;
    size_t capacity;
    bool peeked;    /* handed out by peek, so never appended to again */
    char storage[];
};

void smtp_outq_init(struct smtp_outq *q)
{
    q->head = NULL;
    q->tail = NULL;
    q->len = 0;
}

void smtp_outq_cleanup(struct smtp_outq *q)
{
    struct smtp_outq_chunk *chunk = q->head;

    while (chunk != NULL) {
        struct smtp_outq_chunk *next = chunk->next;

        free(chunk);
        chunk = next;
    }
    smtp_outq_init(q);
}

static void outq_link(struct smtp_outq *q, struct smtp_outq_chunk *chunk)
{
    if (q->tail != NULL) {
        q->tail->next = chunk;
    } else {
        q->head = chunk;
    }
    q->tail = chunk;
}

/* outq_reserve returns room for len bytes at the end of the queue, in the
 * tail chunk when it is owned, not yet peeked and large enough, otherwise
 * in a new chunk. outq_commit then makes used bytes of it part of the
 * queue. Returns NULL when out of memory. */
static char *outq_reserve(struct smtp_outq *q, size_t len)
{
    struct smtp_outq_chunk *tail = q->tail;
    struct smtp_outq_chunk *chunk;
    size_t capacity = len < SMTP_OUTQ_CHUNK_MIN ? SMTP_OUTQ_CHUNK_MIN : len;

    if (tail != NULL && tail->capacity > 0 && !tail->peeked &&
        tail->capacity - tail->end >= len) {
        return tail->storage + tail->end;
    }

    chunk = malloc(sizeof(*chunk) + capacity);
    if (chunk == NULL) {
        return NULL;
    }
    chunk->next = NULL;
    chunk->data = chunk->storage;
    chunk->start = 0;
    chunk->end = 0;
    chunk->capacity = capacity;
    chunk->peeked = false;
    outq_link(q, chunk);
    return chunk->storage;
}

static void outq_commit(struct smtp_outq *q, size_t len)
{
    q->tail->end += len;
    q->len += len;
}

int smtp_outq_append(struct smtp_outq *q, const char *data, size_t len)
{
    char *room;

    if (len == 0) {
        return 0;
    }
    room = outq_reserve(q, len);
    if (room == NULL) {
        return -1;
    }
    memcpy(room, data, len);
    outq_commit(q, len);
    return 0;
}

int smtp_outq_printf(struct smtp_outq *q, const char *fmt, ...)
{
    va_list args;
    va_list again;
    char *room;
    int len;

    va_start(args, fmt);
    va_copy(again, args);
    len = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (len <= 0) {
        va_end(again);
        return len == 0 ? 0 : -1;
    }

    /* vsnprintf writes a terminating NUL that is not committed. */
    room = outq_reserve(q, (size_t)len + 1);
    if (room == NULL) {
        va_end(again);
        return -1;
    }
    vsnprintf(room, (size_t)len + 1, fmt, again);
    va_end(again);
    outq_commit(q, (size_t)len);
    return 0;
}

int smtp_outq_append_ref(struct smtp_outq *q, const char *data, size_t len)
{
    struct smtp_outq_chunk *chunk;

    if (len == 0) {
        return 0;
    }
    chunk = malloc(sizeof(*chunk));
    if (chunk == NULL) {
        return -1;
    }
    chunk->next = NULL;
    chunk->data = data;
    chunk->start = 0;
    chunk->end = len;
    chunk->capacity = 0;
    chunk->peeked = false;
    outq_link(q, chunk);
    q->len += len;
    return 0;
}

int smtp_outq_peek(struct smtp_outq *q, struct iovec *iov, int max)
{
    struct smtp_outq_chunk *chunk = q->head;
    int count = 0;

    while (chunk != NULL && count < max) {
        if (chunk->end > chunk->start) {
            iov[count].iov_base = (void *)(chunk->data + chunk->start);
            iov[count].iov_len = chunk->end - chunk->start;
            chunk->peeked = true;
            count++;
        }
        chunk = chunk->next;
    }
    return count;
}

void smtp_outq_consume(struct smtp_outq *q, size_t n)
{
    if (n > q->len) {
        n = q->len;
    }
    q->len -= n;

    while (q->head != NULL) {
        struct smtp_outq_chunk *chunk = q->head;
        size_t left = chunk->end - chunk->start;

        if (n < left) {
            chunk->start += n;
            return;
        }
        n -= left;
        q->head = chunk->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        free(chunk);
    }
}
