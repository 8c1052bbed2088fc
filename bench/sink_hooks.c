/* Protocol hooks of the sink's sessions: they accept every sender and
 * recipient unless a scripted fault draws another reply, collect what the
 * accounting and the store need, and choose the delays and cuts. */
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench_stats.h"
#include "bench/sink_session_internal.h"
#include "bench/sink_tls.h"
#include "bench/sink_track.h"
#include "tls/tls_session.h"

/* Reply for a session past --max-connections. */
#define SINK_OVER_LIMIT_REPLY "421 4.7.0 too many connections"

/* Reply to a command pipelined behind a body that --disconnect-in-data
 * cuts. The 421 stops the session from parsing further input, and the
 * cut drops the reply, so the client never sees it. */
#define SINK_CUT_REPLY "421 4.4.0 connection cut by --disconnect-in-data"

/* Count the current body as aborted, once however many ways it ends:
 * the session's data_abort, the cut, or both. */
static void sink_hooks_abort_body(struct sink_session *s)
{
    if (s->in_body) {
        s->in_body = false;
        s->server->aborted++;
    }
}

/* Reject a command that arrives behind a body that is being cut. A
 * pipelining client sends the next MAIL, RCPT and DATA right after the
 * final dot. Without this check the sink would open a transaction for
 * them and draw its faults, and the cut would count its DATA as one
 * more aborted body. */
static int sink_hooks_check_cut(const struct sink_session *s, char *reply)
{
    if (!s->cut_now) {
        return 0;
    }
    snprintf(reply, SMTP_REPLY_MAX, "%s", SINK_CUT_REPLY);
    return -1;
}

/* Hold the reply about to be queued, and every later one, for the
 * stage's delay. Delays of pipelined commands add up, as on a server
 * that replies to one command after the other.
 * NOTE: all replies held by one chain of delays go out together at its
 * end, not each at its own deadline. */
static void sink_hooks_delay(struct sink_session *s,
                               enum sink_fault_stage stage)
{
    struct sink_fault_stage_rules *rules = &s->server->faults.stages[stage];
    uint64_t now = reactor_now_ms(s->server->reactor);

    if (rules->delay_ms == 0) {
        return;
    }
    rules->delayed++;
    if (!s->holding) {
        s->holding = true;
        s->hold_len = smtp_server_output(s->smtp)->len;
        s->hold_until_ms = now;
    }
    s->hold_until_ms += rules->delay_ms;
    sink_session_arm_timer(s);
}

/* Draw the fault for a MAIL or RCPT reply. Returns 0 to accept (reply
 * may hold a 2xx text), or -1 with the refusal in reply. */
static int sink_hooks_fault(struct sink_session *s,
                              enum sink_fault_stage stage, char *reply)
{
    struct sink_fault_rule *rule;

    sink_hooks_delay(s, stage);
    rule = sink_fault_draw(&s->server->faults, stage, &s->random);
    if (rule == NULL) {
        return 0;
    }
    snprintf(reply, SMTP_REPLY_MAX, "%s", rule->reply);
    return rule->code < 300 ? 0 : -1;
}

static int sink_hook_mail(void *ctx, const struct smtp_path *from,
                          const struct smtp_mail_params *params,
                          char *reply)
{
    struct sink_session *s = ctx;

    if (sink_hooks_check_cut(s, reply) < 0
        || sink_hooks_fault(s, SINK_STAGE_MAIL, reply) < 0) {
        return -1;
    }
    s->rcpt_count = 0;
    if (s->server->store != NULL
        && sink_message_add_mail(&s->message, from->address) < 0) {
        snprintf(reply, SMTP_REPLY_MAX,
                 "452 4.3.1 Error: out of memory for the envelope");
        return -1;
    }
    s->message.raw = params->body == SMTP_BODY_BINARYMIME;
    return 0;
}

static int sink_session_add_rcpt_id(struct sink_session *s,
                                    const char *address)
{
    if (s->rcpt_count == s->rcpt_capacity) {
        size_t capacity = s->rcpt_capacity != 0 ? s->rcpt_capacity * 2 : 8;
        uint64_t *grown = realloc(s->rcpt_ids, capacity * sizeof(*grown));

        if (grown == NULL) {
            return -1;
        }
        s->rcpt_ids = grown;
        s->rcpt_capacity = capacity;
    }
    s->rcpt_ids[s->rcpt_count++] = sink_track_rcpt_id(address);
    return 0;
}

static int sink_hook_rcpt(void *ctx, const struct smtp_path *to,
                          const struct smtp_rcpt_params *params, char *reply)
{
    struct sink_session *s = ctx;

    (void)params;

    if (sink_hooks_check_cut(s, reply) < 0
        || sink_hooks_fault(s, SINK_STAGE_RCPT, reply) < 0) {
        return -1;
    }
    if (sink_session_add_rcpt_id(s, to->address) < 0
        || (s->server->store != NULL
            && sink_message_add_rcpt(&s->message, to->address) < 0)) {
        snprintf(reply, SMTP_REPLY_MAX,
                 "452 4.3.1 Error: out of memory for the envelope");
        return -1;
    }
    return 0;
}

static int sink_hook_data_begin(void *ctx, char *reply)
{
    struct sink_session *s = ctx;

    if (sink_hooks_check_cut(s, reply) < 0) {
        return -1;
    }
    s->body_bytes = 0;
    sink_headers_reset(&s->headers);
    s->cut_in_data = sink_fault_chance(&s->random,
                                       s->server->faults.disconnect_in_data);
    if (s->server->store != NULL
        && ((s->tls != NULL
             && sink_message_add_tls(&s->message,
                                     tls_session_version(s->tls),
                                     tls_session_cipher(s->tls)) < 0)
            || sink_message_begin_body(&s->message) < 0)) {
        snprintf(reply, SMTP_REPLY_MAX,
                 "452 4.3.1 Error: out of memory for the message");
        return -1;
    }
    s->in_body = true;
    return 0;
}

static int sink_hook_data_write(void *ctx, const char *data, size_t len)
{
    struct sink_session *s = ctx;

    if (s->cut_in_data) {
        /* Failing the write makes the session drop the rest of the body;
         * sink_session_on_recv() then cuts the connection. */
        s->cut_now = true;
        return -1;
    }
    s->body_bytes += len;
    if (!s->headers.done) {
        sink_headers_feed(&s->headers, data, len);
    }
    if (s->server->store != NULL
        && sink_message_add_body(&s->message, data, len) < 0) {
        return -1;
    }
    return 0;
}

static void sink_hook_data_end(void *ctx)
{
    struct sink_session *s = ctx;
    uint64_t delay_ms = s->server->faults.stages[SINK_STAGE_DATA].delay_ms;

    if (s->cut_in_data) {
        /* An empty body gets no data_write, so the cut happens here, and
         * the session calls no data_abort for a body that ended. */
        s->cut_now = true;
        sink_hooks_abort_body(s);
        return;
    }
    s->in_body = false;
    s->received_us = bench_wall_us();

    /* sink_session_commit() sends the reply after smtp_server_feed() has
     * returned, so the session is never re-entered from its own hook. */
    if (delay_ms == 0) {
        s->commit = SINK_COMMIT_PENDING;
        return;
    }
    s->server->faults.stages[SINK_STAGE_DATA].delayed++;
    s->commit = SINK_COMMIT_DELAYED;
    s->commit_at_ms = reactor_now_ms(s->server->reactor) + delay_ms;
    sink_session_arm_timer(s);
}

static void sink_hook_data_abort(void *ctx, const char *reply)
{
    struct sink_session *s = ctx;

    (void)reply;
    sink_hooks_abort_body(s);
    s->body_bytes = 0;
    sink_message_clear(&s->message);
}

static void sink_hook_reset(void *ctx)
{
    struct sink_session *s = ctx;

    s->rcpt_count = 0;
    sink_message_clear(&s->message);
}

const struct smtp_server_hooks sink_hooks = {
    .mail = sink_hook_mail,
    .rcpt = sink_hook_rcpt,
    .data_begin = sink_hook_data_begin,
    .data_write = sink_hook_data_write,
    .data_end = sink_hook_data_end,
    .data_abort = sink_hook_data_abort,
    .reset = sink_hook_reset,
    .starttls = sink_tls_starttls,
};

/* Queue the greeting: 421 past --max-connections, else after the
 * connect delay the normal 220 or a drawn --connect-reply. */
void sink_hooks_greet(struct sink_session *s)
{
    struct sink_faults *faults = &s->server->faults;
    struct sink_fault_rule *rule;

    /* sessions_open already counts this session. */
    if (faults->max_connections != 0
        && s->server->sessions_open > faults->max_connections) {
        faults->over_limit++;
        smtp_server_greet_reply(s->smtp, SINK_OVER_LIMIT_REPLY);
        return;
    }
    sink_hooks_delay(s, SINK_STAGE_CONNECT);
    rule = sink_fault_draw(faults, SINK_STAGE_CONNECT, &s->random);
    if (rule != NULL) {
        smtp_server_greet_reply(s->smtp, rule->reply);
    } else {
        smtp_server_greet(s->smtp);
    }
}

