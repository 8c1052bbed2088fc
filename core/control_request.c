#include "core/control_request.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/control_proto.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/outbound.h"
#include "core/outbound_waits.h"
#include "core/queue.h"
#include "core/queue_admin.h"
#include "core/queue_report.h"
#include "core/queue_report_escape.h"

struct control_call {
    struct daemon *daemon;
    uid_t uid;
    bool json;
    FILE *body;
    char error[CONTROL_MAX_REQUEST + 128];
};

enum control_arg {
    CONTROL_ARG_NONE,
    CONTROL_ARG_OPTIONAL,
    CONTROL_ARG_REQUIRED,
};

struct control_command {
    const char *name;
    enum control_arg arg;
    const char *arg_name;        /* for "missing argument" replies */
    int (*run)(struct control_call *call, const char *arg);
};

static int control_fail(struct control_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int control_fail(struct control_call *call, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(call->error, sizeof(call->error), fmt, ap);
    va_end(ap);
    return -1;
}

/* control_printable copies text with every byte outside printable ASCII,
 * and the quote and backslash, replaced by '?', so it can be echoed in a
 * text or JSON reply without escaping. */
static const char *control_printable(char *buf, size_t size, const char *text)
{
    size_t i = 0;

    for (; text[i] != '\0' && i + 1 < size; i++) {
        unsigned char c = (unsigned char)text[i];

        buf[i] = (isprint(c) && c != '"' && c != '\\') ? (char)c : '?';
    }
    buf[i] = '\0';
    return buf;
}

/* control_find returns the message with queue ID id, or NULL after
 * storing the error for an invalid or unknown ID. */
static struct queue_msg *control_find(struct control_call *call,
                                      const char *id)
{
    char shown[CONTROL_MAX_REQUEST];
    struct queue_msg *msg;

    if (!control_id_valid(id)) {
        control_fail(call, "invalid queue ID \"%s\": expected %d hex digits",
                     control_printable(shown, sizeof(shown), id),
                     QUEUE_ID_LEN);
        return NULL;
    }
    msg = queue_find(call->daemon->queue, id);
    if (msg == NULL) {
        control_fail(call, "queue ID %s not found", id);
    }
    return msg;
}

static enum queue_report_format control_format(const struct control_call *c)
{
    return c->json ? QUEUE_REPORT_JSON : QUEUE_REPORT_TEXT;
}

/* control_list adds to the stored schedule the recipients that the
 * outbound engine keeps waiting for a circuit breaker. */
static int control_list(struct control_call *call, const char *arg)
{
    struct outbound_waits *waits;
    int rc = 0;

    (void)arg;
    waits = outbound_waits_collect(call->daemon->outbound);
    if (waits == NULL) {
        return control_fail(call, "list failed: %s", strerror(errno));
    }
    if (queue_report_list_waits(call->daemon->queue, call->body,
                                control_format(call), outbound_waits_lookup,
                                waits) < 0) {
        rc = control_fail(call, "list failed: %s", strerror(errno));
    }
    outbound_waits_free(waits);
    return rc;
}

static int control_show(struct control_call *call, const char *arg)
{
    if (control_find(call, arg) == NULL) {
        return -1;
    }
    if (queue_report_show(call->daemon->queue, arg, call->body,
                          control_format(call)) < 0) {
        return control_fail(call, "show failed: %s", strerror(errno));
    }
    return 0;
}

static int control_stats(struct control_call *call, const char *arg)
{
    (void)arg;
    if (queue_report_stats(call->daemon->queue, call->body,
                           control_format(call)) < 0) {
        return control_fail(call, "stats failed: %s", strerror(errno));
    }
    return 0;
}

/* control_done writes the reply body of a changing command: the queue
 * ID ("all" for every message), what was done and to how many, and a
 * second count named extra unless that is NULL. */
static void control_done(struct control_call *call, const char *id,
                         const char *action, const char *unit, size_t count,
                         const char *extra, size_t extra_count)
{
    if (call->json) {
        fprintf(call->body, "{\"id\": \"%s\", \"action\": \"%s\", "
                "\"%s\": %zu", id, action, unit, count);
        if (extra != NULL) {
            fprintf(call->body, ", \"%s\": %zu", extra, extra_count);
        }
        fputs("}\n", call->body);
    } else {
        fprintf(call->body, "%s: %s, %s=%zu", id, action, unit, count);
        if (extra != NULL) {
            fprintf(call->body, ", %s=%zu", extra, extra_count);
        }
        fputc('\n', call->body);
    }
}

/* control_count_held counts the QUEUED recipients of msg, or of every
 * message when msg is NULL, and how many of them are held. */
static void control_count_held(struct queue *queue,
                               const struct queue_msg *msg,
                               size_t *queued, size_t *held)
{
    const struct queue_msg *cur = msg != NULL ? msg : queue_first(queue);

    *queued = 0;
    *held = 0;
    while (cur != NULL) {
        for (size_t i = 0; i < cur->rcpt_count; i++) {
            if (cur->rcpts[i].state == QUEUE_RCPT_QUEUED) {
                (*queued)++;
                *held += cur->rcpts[i].held ? 1 : 0;
            }
        }
        cur = msg != NULL ? NULL : queue_next(queue, cur);
    }
}

/* control_flush makes waiting jobs ready now. Held recipients stay held,
 * so a message that has only held recipients is an error, and the reply
 * counts the held ones. NOTE: jobs counts every job made ready, including
 * a job whose recipients are all held and which therefore sends nothing. */
static int control_flush(struct control_call *call, const char *arg)
{
    struct queue_msg *msg = NULL;
    size_t queued;
    size_t held;
    size_t jobs;

    if (arg != NULL && (msg = control_find(call, arg)) == NULL) {
        return -1;
    }
    control_count_held(call->daemon->queue, msg, &queued, &held);
    if (msg != NULL && queued > 0 && held == queued) {
        return control_fail(call, "%s is held, so flush does not deliver "
                            "it: release it with \"release %s\"", msg->id,
                            msg->id);
    }
    jobs = outbound_flush(call->daemon->outbound, msg);
    if (msg != NULL) {
        log_info("id=%s event=queue_flush jobs=%zu held=%zu user=%u",
                 msg->id, jobs, held, (unsigned)call->uid);
    } else {
        log_info("event=queue_flush id=all jobs=%zu held=%zu user=%u", jobs,
                 held, (unsigned)call->uid);
    }
    control_done(call, msg != NULL ? msg->id : "all", "flushed", "jobs",
                 jobs, "held", held);
    return 0;
}

/* control_hold_one holds msg and logs it. Returns the recipients held
 * or -1 after storing the error. */
static int control_hold_one(struct control_call *call, struct queue_msg *msg)
{
    int count = queue_hold(call->daemon->queue, msg);

    if (count < 0) {
        log_error("id=%s event=queue_hold user=%u error=\"%s\"", msg->id,
                  (unsigned)call->uid, strerror(errno));
        return control_fail(call, "hold of %s failed: %s", msg->id,
                            strerror(errno));
    }
    log_info("id=%s event=queue_hold rcpts=%d in_flight=%s user=%u",
             msg->id, count, queue_msg_in_flight(msg) ? "yes" : "no",
             (unsigned)call->uid);
    return count;
}

/* control_release_one releases msg and logs it. Returns the recipients
 * released or -1 after storing the error. */
static int control_release_one(struct control_call *call,
                               struct queue_msg *msg)
{
    int count = queue_release(call->daemon->queue, msg);

    if (count < 0) {
        log_error("id=%s event=queue_release user=%u error=\"%s\"", msg->id,
                  (unsigned)call->uid, strerror(errno));
        return control_fail(call, "release of %s failed: %s", msg->id,
                            strerror(errno));
    }
    /* Nothing was held: waiting recipients keep their retry time, so a
     * stray release does not cost them an attempt. */
    if (count > 0) {
        outbound_release(call->daemon->outbound, msg);
    }
    log_info("id=%s event=queue_release rcpts=%d user=%u", msg->id, count,
             (unsigned)call->uid);
    return count;
}

/* control_change_all runs one() on every message and replies with the
 * recipients and messages it changed. It goes on past a failure, which
 * it reports after the others were changed. Neither hold nor release
 * frees a message, so the walk needs no extra reference. */
static int control_change_all(struct control_call *call, const char *event,
                              const char *action,
                              int (*one)(struct control_call *,
                                         struct queue_msg *))
{
    struct queue *queue = call->daemon->queue;
    size_t rcpts = 0;
    size_t messages = 0;
    int rc = 0;

    for (struct queue_msg *msg = queue_first(queue); msg != NULL;
         msg = queue_next(queue, msg)) {
        int count = one(call, msg);

        if (count < 0) {
            rc = -1;
        } else if (count > 0) {
            rcpts += (size_t)count;
            messages++;
        }
    }
    log_info("event=%s id=all rcpts=%zu messages=%zu user=%u", event, rcpts,
             messages, (unsigned)call->uid);
    if (rc == 0) {
        control_done(call, "all", action, "rcpts", rcpts, "messages",
                     messages);
    }
    return rc;
}

static int control_hold(struct control_call *call, const char *arg)
{
    struct queue_msg *msg;
    int count;

    if (strcmp(arg, "--all") == 0) {
        return control_change_all(call, "queue_hold", "held",
                                  control_hold_one);
    }
    msg = control_find(call, arg);
    if (msg == NULL || (count = control_hold_one(call, msg)) < 0) {
        return -1;
    }

    /* A delivery attempt under way is not stopped: the recipients it
     * delivers or bounces are final, and those it defers stay held. */
    control_done(call, msg->id, "held", "rcpts", (size_t)count, "in_flight",
                 queue_msg_in_flight(msg) ? 1 : 0);
    return 0;
}

static int control_release(struct control_call *call, const char *arg)
{
    struct queue_msg *msg;
    int count;

    if (strcmp(arg, "--all") == 0) {
        return control_change_all(call, "queue_release", "released",
                                  control_release_one);
    }
    msg = control_find(call, arg);
    if (msg == NULL || (count = control_release_one(call, msg)) < 0) {
        return -1;
    }
    control_done(call, msg->id, "released", "rcpts", (size_t)count, NULL,
                 0);
    return 0;
}

/* control_delete_one deletes msg. The extra reference keeps msg valid
 * after the queue drops its own, and jobs waiting for a retry are made
 * ready so the engine frees them at once. With quiet set, a message with
 * nothing left to delete, such as one deleted during its delivery
 * attempt, is not logged. Returns the recipient count or -1. */
static int control_delete_one(struct control_call *call, struct queue_msg *msg,
                              bool quiet)
{
    struct queue *queue = call->daemon->queue;
    int count;

    queue_msg_ref(msg);
    count = queue_delete(queue, msg);
    if (count < 0) {
        log_error("id=%s event=queue_delete user=%u error=\"%s\"", msg->id,
                  (unsigned)call->uid, strerror(errno));
        control_fail(call, "delete of %s failed: %s", msg->id,
                     strerror(errno));
    } else {
        outbound_flush(call->daemon->outbound, msg);
        if (count > 0 || !quiet) {
            log_info("id=%s event=queue_delete rcpts=%d user=%u", msg->id,
                     count, (unsigned)call->uid);
        }
    }
    queue_msg_unref(queue, msg);
    return count;
}

static int control_delete_all(struct control_call *call)
{
    struct queue *queue = call->daemon->queue;
    struct queue_msg *msg = queue_first(queue);
    size_t messages = 0;
    int rc = 0;

    /* The reference on msg keeps it in the list until its successor is
     * known, even when the delete dropped the queue's own. */
    while (msg != NULL) {
        struct queue_msg *next;

        queue_msg_ref(msg);
        if (control_delete_one(call, msg, true) > 0) {
            messages++;
        } else if (call->error[0] != '\0') {
            rc = -1;
        }
        next = queue_next(queue, msg);
        queue_msg_unref(queue, msg);
        msg = next;
    }
    log_info("event=queue_delete id=all messages=%zu user=%u", messages,
             (unsigned)call->uid);
    if (rc == 0) {
        control_done(call, "all", "deleted", "messages", messages, NULL, 0);
    }
    return rc;
}

static int control_delete(struct control_call *call, const char *arg)
{
    struct queue_msg *msg;
    int count;

    if (strcmp(arg, "--all") == 0) {
        return control_delete_all(call);
    }
    msg = control_find(call, arg);
    if (msg == NULL) {
        return -1;
    }
    count = control_delete_one(call, msg, false);
    if (count < 0) {
        return -1;
    }
    control_done(call, arg, "deleted", "rcpts", (size_t)count, NULL, 0);
    return 0;
}

static const struct control_command control_commands[] = {
    {"list", CONTROL_ARG_NONE, NULL, control_list},
    {"show", CONTROL_ARG_REQUIRED, "a queue ID", control_show},
    {"stats", CONTROL_ARG_NONE, NULL, control_stats},
    {"flush", CONTROL_ARG_OPTIONAL, NULL, control_flush},
    {"hold", CONTROL_ARG_REQUIRED, "a queue ID or --all", control_hold},
    {"release", CONTROL_ARG_REQUIRED, "a queue ID or --all",
     control_release},
    {"delete", CONTROL_ARG_REQUIRED, "a queue ID or --all", control_delete},
};

/* control_dispatch checks the command's argument count and runs it. */
static int control_dispatch(struct control_call *call, const char *name,
                            const char *arg, const char *extra)
{
    char shown[CONTROL_MAX_REQUEST];

    for (size_t i = 0; i < sizeof(control_commands) /
                               sizeof(control_commands[0]); i++) {
        const struct control_command *cmd = &control_commands[i];

        if (strcmp(cmd->name, name) != 0) {
            continue;
        }
        if (arg == NULL && cmd->arg == CONTROL_ARG_REQUIRED) {
            return control_fail(call, "%s: missing argument, expected %s",
                                name, cmd->arg_name);
        }
        if ((arg != NULL && cmd->arg == CONTROL_ARG_NONE) || extra != NULL) {
            return control_fail(call, "%s: too many arguments", name);
        }
        return cmd->run(call, arg);
    }
    return control_fail(call, "unknown command \"%s\"",
                        control_printable(shown, sizeof(shown), name));
}

void control_reply_error(FILE *out, bool json, const char *message)
{
    fprintf(out, "%s\n", CONTROL_STATUS_ERROR);
    if (json) {
        fputs("{\"error\": ", out);
        queue_report_json_str(out, message);
        fputs("}\n", out);
    } else {
        fprintf(out, "%s\n", message);
    }
}

/* control_parse splits the line into FORMAT COMMAND [ARG [EXTRA]] and
 * runs the command, leaving the body in call->body. */
static int control_parse(struct control_call *call, char *line)
{
    char *save = NULL;
    char *format = strtok_r(line, " ", &save);
    char *name = strtok_r(NULL, " ", &save);
    char *arg = strtok_r(NULL, " ", &save);
    char *extra = strtok_r(NULL, " ", &save);

    if (format != NULL && strcmp(format, "json") == 0) {
        call->json = true;
    } else if (format == NULL || strcmp(format, "text") != 0) {
        return control_fail(call, "invalid request: expected \"text\" or "
                            "\"json\" before the command");
    }
    if (name == NULL) {
        return control_fail(call, "invalid request: missing command");
    }
    return control_dispatch(call, name, arg, extra);
}

void control_request_run(struct daemon *daemon, const char *line, uid_t uid,
                         FILE *out)
{
    struct control_call call = {.daemon = daemon, .uid = uid};
    char copy[CONTROL_MAX_REQUEST];
    char *body = NULL;
    size_t body_len = 0;
    int rc;

    snprintf(copy, sizeof(copy), "%s", line);
    call.body = open_memstream(&body, &body_len);
    if (call.body == NULL) {
        log_error("event=control-request error=\"open_memstream failed: "
                  "%s\"", strerror(errno));
        control_reply_error(out, false, "out of memory");
        return;
    }
    rc = control_parse(&call, copy);
    if (ferror(call.body) != 0 && rc == 0) {
        rc = control_fail(&call, "reply failed: out of memory");
    }
    if (fclose(call.body) != 0 && rc == 0) {
        rc = control_fail(&call, "reply failed: %s", strerror(errno));
    }
    if (rc < 0) {
        char quoted[sizeof(call.error) * 4 + 3];

        log_info("event=control-rejected user=%u reason=%s", (unsigned)uid,
                 log_quote(quoted, sizeof(quoted), call.error,
                           strlen(call.error)));
        control_reply_error(out, call.json, call.error);
    } else {
        fprintf(out, "%s\n", CONTROL_STATUS_OK);
        fwrite(body, 1, body_len, out);
    }
    free(body);
}
