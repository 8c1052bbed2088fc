/* TEMPORARY stand-in for queue_admin.c and queue_report.c from the qcore
 * branch, so the control socket and ringrelay-queue build and run before
 * that code lands. Drop this file and its meson.build line at the merge.
 * Hold, release and delete change memory only (no journal entries), and
 * last errors live in a small fixed table. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/queue_admin.h"
#include "core/queue_internal.h"
#include "core/queue_report.h"

#define STUB_ERRORS 64

struct stub_error {
    const struct queue_msg *msg;
    size_t rcpt;
    char text[256];
};

static struct stub_error stub_errors[STUB_ERRORS];

struct queue_msg *queue_find(struct queue *queue, const char *id)
{
    if (strlen(id) == QUEUE_ID_LEN) {
        for (struct queue_item *i = queue->items; i != NULL; i = i->next) {
            if (strcasecmp(i->msg.id, id) == 0) {
                return &i->msg;
            }
        }
    }
    errno = ENOENT;
    return NULL;
}

struct queue_msg *queue_first(struct queue *queue)
{
    return queue->items != NULL ? &queue->items->msg : NULL;
}

struct queue_msg *queue_next(struct queue *queue, const struct queue_msg *msg)
{
    const struct queue_item *item = (const struct queue_item *)msg;

    (void)queue;
    return item->next != NULL ? &item->next->msg : NULL;
}

int queue_hold(struct queue *queue, struct queue_msg *msg)
{
    int n = 0;

    (void)queue;
    for (size_t i = 0; i < msg->rcpt_count; i++) {
        if (msg->rcpts[i].state == QUEUE_RCPT_QUEUED && !msg->rcpts[i].held) {
            msg->rcpts[i].held = true;
            n++;
        }
    }
    return n;
}

int queue_release(struct queue *queue, struct queue_msg *msg)
{
    int n = 0;

    (void)queue;
    for (size_t i = 0; i < msg->rcpt_count; i++) {
        if (msg->rcpts[i].held) {
            msg->rcpts[i].held = false;
            msg->rcpts[i].next_attempt = 0;
            n++;
        }
    }
    return n;
}

int queue_delete(struct queue *queue, struct queue_msg *msg)
{
    struct queue_item *item = (struct queue_item *)msg;
    int n = 0;

    for (size_t i = 0; i < msg->rcpt_count; i++) {
        if (msg->rcpts[i].state == QUEUE_RCPT_QUEUED) {
            msg->rcpts[i].state = QUEUE_RCPT_DELETED;
            msg->rcpts[i].held = false;
            item->queued--;
            n++;
        }
    }
    if (n > 0 && item->queued == 0) {
        queue_item_unref(queue, item);
    }
    return n;
}

int queue_note_error(struct queue *queue, struct queue_msg *msg, size_t rcpt,
                     const char *text)
{
    struct stub_error *slot = NULL;

    (void)queue;
    for (size_t i = 0; i < STUB_ERRORS; i++) {
        if (stub_errors[i].msg == msg && stub_errors[i].rcpt == rcpt) {
            slot = &stub_errors[i];
            break;
        }
        if (slot == NULL && stub_errors[i].msg == NULL) {
            slot = &stub_errors[i];
        }
    }
    if (slot == NULL) {
        slot = &stub_errors[0];
    }
    slot->msg = msg;
    slot->rcpt = rcpt;
    snprintf(slot->text, sizeof(slot->text), "%s", text);
    msg->rcpts[rcpt].last_error = slot->text;
    return 0;
}

static const char *stub_state(const struct queue_rcpt *rcpt)
{
    if (rcpt->state == QUEUE_RCPT_QUEUED) {
        return rcpt->held ? "held" : "queued";
    }
    if (rcpt->state == QUEUE_RCPT_DELIVERED) {
        return "delivered";
    }
    return rcpt->state == QUEUE_RCPT_BOUNCED ? "bounced" : "deleted";
}

static void stub_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            fprintf(out, "\\%c", c);
        } else if (c < 0x20) {
            fprintf(out, "\\u%04x", c);
        } else {
            fputc(c, out);
        }
    }
    fputc('"', out);
}

static void stub_msg(FILE *out, const struct queue_msg *msg, bool json,
                     bool show)
{
    long age = (long)(time(NULL) - msg->arrival);

    if (!json) {
        fprintf(out, "%s %zu %lds <%s>\n", msg->id, msg->body_len, age,
                msg->sender);
    } else {
        fprintf(out, "{\"id\":\"%s\",\"size\":%zu,\"age\":%ld,\"sender\":",
                msg->id, msg->body_len, age);
        stub_json_string(out, msg->sender);
        fprintf(out, ",\"recipients\":[");
    }
    for (size_t i = 0; i < msg->rcpt_count; i++) {
        const struct queue_rcpt *r = &msg->rcpts[i];
        const char *err = r->last_error != NULL ? r->last_error : "";

        if (!json) {
            fprintf(out, "  <%s> %s next=%lld%s%s\n", r->address,
                    stub_state(r), (long long)r->next_attempt,
                    show ? " error=" : "", show ? err : "");
            continue;
        }
        fprintf(out, "%s{\"address\":", i > 0 ? "," : "");
        stub_json_string(out, r->address);
        fprintf(out, ",\"state\":\"%s\",\"next_attempt\":%lld,"
                "\"last_error\":", stub_state(r), (long long)r->next_attempt);
        stub_json_string(out, err);
        fputc('}', out);
    }
    if (json) {
        fputc(']', out);
    }
    if (show) {
        const char *end = memmem(msg->body, msg->body_len, "\r\n\r\n", 4);
        size_t len = end != NULL ? (size_t)(end - msg->body) : msg->body_len;
        char headers[8192];

        snprintf(headers, sizeof(headers), "%.*s", (int)len, msg->body);
        if (json) {
            fprintf(out, ",\"headers\":");
            stub_json_string(out, headers);
        } else {
            fprintf(out, "%s\n", headers);
        }
    }
    if (json) {
        fputc('}', out);
    }
}

int queue_report_list(struct queue *queue, FILE *out,
                      enum queue_report_format format)
{
    bool json = format == QUEUE_REPORT_JSON;
    bool first = true;

    if (json) {
        fprintf(out, "{\"messages\":[");
    }
    for (struct queue_msg *m = queue_first(queue); m != NULL;
         m = queue_next(queue, m)) {
        if (json && !first) {
            fputc(',', out);
        }
        first = false;
        stub_msg(out, m, json, false);
    }
    if (json) {
        fprintf(out, "]}\n");
    }
    return ferror(out) ? -1 : 0;
}

int queue_report_show(struct queue *queue, const char *id, FILE *out,
                      enum queue_report_format format)
{
    struct queue_msg *msg = queue_find(queue, id);

    if (msg == NULL) {
        return -1;
    }
    stub_msg(out, msg, format == QUEUE_REPORT_JSON, true);
    fputc('\n', out);
    return ferror(out) ? -1 : 0;
}

int queue_report_stats(struct queue *queue, FILE *out,
                       enum queue_report_format format)
{
    size_t queued = 0;
    size_t held = 0;

    for (struct queue_msg *m = queue_first(queue); m != NULL;
         m = queue_next(queue, m)) {
        for (size_t i = 0; i < m->rcpt_count; i++) {
            if (m->rcpts[i].state == QUEUE_RCPT_QUEUED) {
                queued += !m->rcpts[i].held;
                held += m->rcpts[i].held;
            }
        }
    }
    if (format == QUEUE_REPORT_JSON) {
        fprintf(out, "{\"by_state\":{\"queued\":%zu,\"held\":%zu},"
                "\"by_destination\":{", queued, held);
    } else {
        fprintf(out, "queued %zu\nheld %zu\n", queued, held);
    }
    for (struct queue_msg *m = queue_first(queue); m != NULL;
         m = queue_next(queue, m)) {
        const char *at = strrchr(m->rcpts[0].address, '@');

        if (format == QUEUE_REPORT_JSON) {
            fprintf(out, "%s\"%s\":1", m == queue_first(queue) ? "" : ",",
                    at != NULL ? at + 1 : "");
        } else {
            fprintf(out, "%s 1\n", at != NULL ? at + 1 : "");
        }
    }
    if (format == QUEUE_REPORT_JSON) {
        fprintf(out, "}}\n");
    }
    return ferror(out) ? -1 : 0;
}
