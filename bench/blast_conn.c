#include "bench/blast_conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/bench_net.h"
#include "bench/blast_backoff.h"
#include "bench/blast_template.h"
#include "bench/blast_tls.h"
#include "bench/blast_text.h"
#include "proto/smtp_address.h"
#include "proto/smtp_outq.h"
#include "proto/smtp_reply.h"

#define BLAST_IOV_MAX 16

/* Reply lines may be up to 512 octets (RFC 5321 4.5.3.1.5); servers
 * exceed that in practice, so twice that much is accepted. */
#define BLAST_REPLY_LINE_MAX 1024

/* Unparsed input beyond this is not a sane SMTP reply. */
#define BLAST_INPUT_MAX 65536

/* Maximum command length: "RCPT TO:<" a 256-octet path ">\r\n" or EHLO
 * with a 255-octet name. */
#define BLAST_COMMAND_MAX 512

/* Connection errors printed before the rest are only counted. */
#define BLAST_ERRORS_PRINTED_MAX 10

/* Command whose reply the connection expects. */
enum blast_expect {
    BLAST_EXPECT_GREETING,
    BLAST_EXPECT_EHLO,
    BLAST_EXPECT_HELO,
    BLAST_EXPECT_STARTTLS,
    BLAST_EXPECT_AUTH,
    BLAST_EXPECT_MAIL,
    BLAST_EXPECT_RCPT,
    BLAST_EXPECT_DATA,
    BLAST_EXPECT_BODY,
    BLAST_EXPECT_RSET,
    BLAST_EXPECT_QUIT,
};

/* blast_pending_reply: a reply the server owes, and when its latency
 * started: when the command was queued (the connect, for the greeting),
 * or in open loop the message's due time. */
struct blast_pending_reply {
    uint64_t start_ns;
    uint8_t kind;          /* enum blast_expect */
};

struct blast_conn {
    struct blast_run *run;
    unsigned index;        /* slot */
    int fd;
    struct reactor_op connect_op;
    struct reactor_op recv_op;
    struct reactor_op send_op;
    struct smtp_outq out;
    struct iovec iov[BLAST_IOV_MAX];  /* in flight while send_op is armed */
    struct blast_tls tls;  /* after STARTTLS; out is then plaintext that
                            * tls encrypts into tls.out */
    bool authenticated;    /* AUTH got 235 */

    char *input;           /* a reply that arrived in part */
    size_t input_len;
    size_t input_cap;

    /* Ring of replies still owed by the server, oldest first. At most
     * RSET, a body, MAIL, every RCPT, DATA and QUIT are outstanding. */
    struct blast_pending_reply *expect;
    unsigned expect_cap;
    unsigned expect_head;
    unsigned expect_count;

    /* Work of this connection. */
    uint64_t left;         /* messages it may still start */
    bool reserved;         /* left is its share of --messages */
    bool has_pending;      /* pending was handed out, not yet started,
                            * or its MAIL got no reply before a break */
    struct blast_msg pending;
    unsigned open;         /* messages started and not yet counted */
    bool body_open;        /* one of open has its body sent */
    bool mail_replied;     /* cur got its MAIL reply */

    /* Reconnecting after a break. */
    struct blast_backoff backoff;
    struct reactor_timer retry_timer;
    bool broken;           /* closing because of a failure */
    bool server_closing;   /* a transaction got 421: the server closes */
    bool progress;         /* finished a message since it connected */
    uint64_t run_progress; /* the run's finished messages at connect */
    unsigned idle_pos;     /* index in run->idle while idle */
    bool idle;
    uint64_t connect_ns;   /* when the connect was started */
    uint64_t last_reply_ns; /* when the previous reply arrived, or 0 */

    /* End of the body in flight, as an offset in the stream. In closed
     * loop its latency starts when that byte is sent, not when it was
     * queued, because a large body takes a while to send. */
    uint64_t bytes_sent;
    uint64_t body_end;
    unsigned body_slot;    /* its entry in expect */
    bool body_end_pending; /* body_end not yet sent */
    size_t body_bytes;     /* header and body bytes of the body in flight */
    unsigned body_rcpts;   /* its recipients that got a 2xx RCPT reply */

    bool pipelining;       /* PIPELINING offered and --pipelining on */
    bool need_rset;        /* a failed transaction left MAIL accepted */
    bool closing;          /* no new work; close once I/O finished */
    bool closed;

    /* The transaction whose envelope replies are awaited. */
    struct blast_msg cur;
    bool mail_ok;
    unsigned rcpts_sent;
    unsigned rcpts_ok;
    int first_error;       /* code of its first failed reply, 0 if none */
};

static void blast_conn_step(struct blast_conn *c);
static void blast_conn_after_close(struct blast_conn *c);
static void blast_conn_on_retry(struct reactor_timer *timer);
static void blast_conn_drop_work(struct blast_conn *c);

static void blast_conn_cancel(struct blast_conn *c, struct reactor_op *op)
{
    int rc = reactor_cancel(c->run->reactor, op);

    if (rc < 0 && rc != -ENOENT && rc != -EALREADY) {
        fprintf(stderr, "blast: connection %u: cancelling I/O failed: %s\n",
                c->index, strerror(-rc));
    }
}

static void blast_conn_idle_add(struct blast_conn *c)
{
    struct blast_run *run = c->run;

    c->idle = true;
    c->idle_pos = run->idle_count;
    run->idle[run->idle_count++] = c;
}

/* Take c off the run's idle list; the last entry fills its place. */
static void blast_conn_idle_remove(struct blast_conn *c)
{
    struct blast_run *run = c->run;
    struct blast_conn *last;

    if (!c->idle) {
        return;
    }
    c->idle = false;
    last = run->idle[--run->idle_count];
    run->idle[c->idle_pos] = last;
    last->idle_pos = c->idle_pos;
}

/* Stop all I/O; blast_conn_step() closes the socket once the cancelled
 * operations have completed. */
static void blast_conn_close(struct blast_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    blast_conn_idle_remove(c);
    blast_conn_cancel(c, &c->connect_op);
    blast_conn_cancel(c, &c->recv_op);
    blast_conn_cancel(c, &c->send_op);
}

/* Settle the open messages of a connection that broke. A message whose
 * body was sent, or whose MAIL got a reply, was in flight and counts as
 * failed, or as rejected when a reply to its envelope was an error (a
 * 421 before the server closes, say). A pipelined envelope with no reply
 * yet never reached a server transaction, so it is kept to be sent again
 * on the next connection. */
static void blast_conn_settle_lost(struct blast_conn *c)
{
    struct blast_run *run = c->run;
    unsigned envelopes = c->open - (c->body_open ? 1 : 0);
    uint64_t lost = c->body_open ? 1 : 0;

    if (envelopes > 0 && c->mail_replied && c->first_error != 0) {
        bench_code_tally_add(&run->results.rejected, c->first_error);
        c->progress = true;
    } else if (envelopes > 0 && (c->mail_replied || c->has_pending)) {
        lost++;
    } else if (envelopes > 0) {
        c->pending = c->cur;
        c->has_pending = true;
    }
    run->results.failed += lost;
    c->progress = c->progress || lost > 0;
    c->open = 0;
    c->body_open = false;
}

/* Count the connection's messages in flight as failed, report why (the
 * first few times), and close it. Its other work waits for the next
 * connection of the slot (see blast_conn_after_close). */
static void blast_conn_fail(struct blast_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void blast_conn_fail(struct blast_conn *c, const char *fmt, ...)
{
    struct blast_run *run = c->run;
    char reason[512];
    va_list ap;

    if (c->closing) {
        return;
    }
    /* A server may close a session that waited idle too long (open loop
     * at a low rate). No message is lost, so it is not a failure. */
    if (c->idle && c->open == 0 && !c->has_pending
        && c->expect_count == 0) {
        run->results.idle_closed++;
        blast_conn_close(c);
        return;
    }
    blast_conn_settle_lost(c);
    c->broken = true;
    /* A 421 reply means that the server is closing the connection, so
     * the close that follows is no failure. */
    if (c->server_closing) {
        run->results.closed_after_421++;
        blast_conn_close(c);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);

    run->results.connection_failures++;
    if (run->errors_printed < BLAST_ERRORS_PRINTED_MAX) {
        fprintf(stderr, "blast: connection %u to %s: %s\n", c->index,
                run->options->server_text, reason);
        run->errors_printed++;
        if (run->errors_printed == BLAST_ERRORS_PRINTED_MAX) {
            fprintf(stderr, "blast: further connection errors are only "
                            "counted\n");
        }
    }
    blast_conn_close(c);
}

/* Record that the server owes one more reply of kind, whose latency
 * counts from start_ns. Returns 0 or -1 after failing the connection. */
static int blast_conn_expect(struct blast_conn *c, enum blast_expect kind,
                             uint64_t start_ns)
{
    unsigned slot;

    if (c->expect_count == c->expect_cap) {
        blast_conn_fail(c, "internal error: too many replies outstanding");
        return -1;
    }
    slot = (c->expect_head + c->expect_count) % c->expect_cap;
    c->expect[slot] = (struct blast_pending_reply){.start_ns = start_ns,
                                                   .kind = (uint8_t)kind};
    c->expect_count++;
    return 0;
}

/* Queue the command line[0..len) and the reply it is owed. Returns 0 or
 * -1 after failing the connection. */
static int blast_conn_queue(struct blast_conn *c, enum blast_expect kind,
                            uint64_t start_ns, const char *line, size_t len)
{
    if (smtp_outq_append(&c->out, line, len) < 0) {
        blast_conn_fail(c, "out of memory queueing a command");
        return -1;
    }
    return blast_conn_expect(c, kind, start_ns);
}

/* Queue a command whose text outlives the connection (a literal, or
 * run->ehlo_line) without copying it. A copy would take a 4 KiB output
 * chunk for each connection, and with --idle thousands send their QUIT
 * at once. Returns 0 or -1 after failing the connection. */
static int blast_conn_queue_ref(struct blast_conn *c, enum blast_expect kind,
                                uint64_t start_ns, const char *line)
{
    if (smtp_outq_append_ref(&c->out, line, strlen(line)) < 0) {
        blast_conn_fail(c, "out of memory queueing a command");
        return -1;
    }
    return blast_conn_expect(c, kind, start_ns);
}

/* Queue MAIL or RCPT: verb ("MAIL FROM:<" or "RCPT TO:<"), the address
 * and ">\r\n". These go out for every message, so without printf. */
static int blast_conn_path_command(struct blast_conn *c,
                                   enum blast_expect kind, uint64_t start_ns,
                                   const char *verb, const char *address)
{
    char line[BLAST_COMMAND_MAX];
    struct blast_text t;

    blast_text_init(&t, line, sizeof(line));
    blast_text_put_str(&t, verb);
    blast_text_put_str(&t, address);
    blast_text_put(&t, ">\r\n", 3);
    if (blast_text_end(&t) < 0) {
        blast_conn_fail(c, "internal error: command too long");
        return -1;
    }
    return blast_conn_queue(c, kind, start_ns, line, t.len);
}

static int blast_conn_pop_expect(struct blast_conn *c,
                                 struct blast_pending_reply *entry)
{
    if (c->expect_count == 0) {
        return -1;
    }
    if (c->body_end_pending && c->body_slot == c->expect_head) {
        c->body_end_pending = false;
    }
    *entry = c->expect[c->expect_head];
    c->expect_head = (c->expect_head + 1) % c->expect_cap;
    c->expect_count--;
    return 0;
}

/* When the latency of a command of the current transaction starts: in
 * open loop at the message's due time, else now. */
static uint64_t blast_conn_start_ns(const struct blast_conn *c)
{
    return c->run->open_loop ? c->cur.start_ns : c->run->now_ns;
}

/* Return the sender (rcpt 0) or recipient rcpt of the current message:
 * the template itself when it has no placeholder, else its expansion in
 * buf. Returns NULL after failing the connection. */
static const char *blast_conn_address(struct blast_conn *c, unsigned rcpt,
                                      char buf[SMTP_PATH_MAX])
{
    const struct blast_run *run = c->run;
    const struct blast_template *template = rcpt == 0 ? &run->from
                                                      : &run->to;
    struct blast_template_vars vars = {.seq = c->cur.seq, .rcpt = rcpt};
    size_t len;

    if (template->plain) {
        return template->text;
    }
    if (template->uses_domain) {
        vars.domain = blast_template_domain(c->cur.seq, rcpt, run->rcpts,
                                            run->options->domains);
    }
    if (blast_template_expand(template->text, &vars, buf, SMTP_PATH_MAX,
                              &len) < 0) {
        blast_conn_fail(c, "internal error: address of message %llu too "
                           "long",
                        (unsigned long long)c->cur.seq);
        return NULL;
    }
    return buf;
}

/* Queue RCPT for recipient rcpt (1-based) of the current message. */
static int blast_conn_rcpt(struct blast_conn *c, unsigned rcpt)
{
    char buf[SMTP_PATH_MAX];
    const char *address = blast_conn_address(c, rcpt, buf);

    if (address == NULL) {
        return -1;
    }
    return blast_conn_path_command(c, BLAST_EXPECT_RCPT,
                                   blast_conn_start_ns(c), "RCPT TO:<",
                                   address);
}

/* Start the transaction of msg. With PIPELINING the whole envelope goes
 * in one send; without it only MAIL, and each reply sends the next
 * command. Returns 0 or -1. */
static int blast_conn_begin(struct blast_conn *c, const struct blast_msg *msg)
{
    struct blast_run *run = c->run;
    char buf[SMTP_PATH_MAX];
    const char *sender;

    if (c->need_rset) {
        c->need_rset = false;
        if (blast_conn_queue(c, BLAST_EXPECT_RSET, run->now_ns, "RSET\r\n",
                             6) < 0) {
            return -1;
        }
        /* Without PIPELINING, MAIL waits for the RSET reply. */
        if (!c->pipelining) {
            c->pending = *msg;
            c->has_pending = true;
            return 0;
        }
    }

    c->open++;
    c->cur = *msg;
    if (!run->open_loop) {
        c->cur.start_ns = run->now_ns;
    }
    if (run->results.first_start_ns == 0) {
        run->results.first_start_ns = c->cur.start_ns;
    }
    c->mail_ok = false;
    c->mail_replied = false;
    c->rcpts_sent = 0;
    c->rcpts_ok = 0;
    c->first_error = 0;
    sender = blast_conn_address(c, 0, buf);
    if (sender == NULL
        || blast_conn_path_command(c, BLAST_EXPECT_MAIL,
                                   blast_conn_start_ns(c), "MAIL FROM:<",
                                   sender) < 0) {
        return -1;
    }
    if (!c->pipelining) {
        return 0;
    }
    for (unsigned i = 1; i <= run->rcpts; i++) {
        if (blast_conn_rcpt(c, i) < 0) {
            return -1;
        }
    }
    c->rcpts_sent = run->rcpts;
    return blast_conn_queue(c, BLAST_EXPECT_DATA, blast_conn_start_ns(c),
                            "DATA\r\n", 6);
}

/* Queue QUIT; the connection closes at its reply. */
static int blast_conn_queue_quit(struct blast_conn *c)
{
    return blast_conn_queue_ref(c, BLAST_EXPECT_QUIT, c->run->now_ns,
                                "QUIT\r\n");
}

/* The session can start a transaction: start the message handed to it,
 * or take the next one, or wait idle for one (open loop), or QUIT.
 * Returns 0 or -1. */
static int blast_conn_next_message(struct blast_conn *c)
{
    struct blast_run *run = c->run;
    struct blast_msg msg;

    /* After a 421 nothing more is sent: blast_conn_on_reply closes. */
    if (c->server_closing) {
        return 0;
    }
    if (run->stopping) {
        blast_conn_drop_work(c);
    }
    if (c->has_pending) {
        c->has_pending = false;
        msg = c->pending;
        return blast_conn_begin(c, &msg);
    }
    if (c->left > 0 && blast_run_take(run, &msg)) {
        c->left--;
        return blast_conn_begin(c, &msg);
    }
    if (c->left > 0 && blast_run_more_later(run)) {
        blast_conn_idle_add(c);
        return 0;
    }
    return blast_conn_queue_quit(c);
}

/* Queue header block, body and the final dot. */
static int blast_conn_send_body(struct blast_conn *c)
{
    struct blast_run *run = c->run;
    const struct blast_body *body = blast_message_body(&run->message,
                                                       c->cur.seq);
    char header[BLAST_HEADER_MAX];
    char sender[SMTP_PATH_MAX];
    char recipient[SMTP_PATH_MAX];
    struct blast_header_fields fields = {
        .seq = c->cur.seq,
        .sent_us = blast_run_wall_us(run, c->cur.start_ns),
        .rcpts = run->rcpts,
    };
    size_t header_len;

    /* Files carry their own From and To. */
    if (!run->message.from_files) {
        fields.from = blast_conn_address(c, 0, sender);
        fields.to = blast_conn_address(c, 1, recipient);
        if (fields.from == NULL || fields.to == NULL) {
            return -1;
        }
    }
    header_len = blast_message_header(&run->message, body, &fields, header);
    if (smtp_outq_append(&c->out, header, header_len) < 0
        || smtp_outq_append_ref(&c->out, body->data, body->len) < 0
        || smtp_outq_append(&c->out, ".\r\n", 3) < 0) {
        blast_conn_fail(c, "out of memory queueing a message");
        return -1;
    }
    c->body_bytes = header_len + body->len;
    c->body_rcpts = c->rcpts_ok;
    c->body_open = true;
    run->results.sent++;
    if (!run->open_loop) {
        c->body_end = c->bytes_sent + c->out.len;
        c->body_end_pending = true;
        c->body_slot = (c->expect_head + c->expect_count) % c->expect_cap;
    }
    return blast_conn_expect(c, BLAST_EXPECT_BODY, blast_conn_start_ns(c));
}

/* Count the current transaction as rejected with its first failed code
 * and move on to the next message. */
static int blast_conn_reject_message(struct blast_conn *c, int code)
{
    if (c->first_error == 0) {
        c->first_error = code;
    }
    bench_code_tally_add(&c->run->results.rejected, c->first_error);
    c->open--;
    c->progress = true;
    c->need_rset = c->mail_ok;
    return blast_conn_next_message(c);
}

static bool blast_code_ok(int code)
{
    return code >= 200 && code < 300;
}

static int blast_conn_on_greeting(struct blast_conn *c,
                                  const struct smtp_reply *reply,
                                  uint64_t latency_ns)
{
    bench_histogram_record(&c->run->results.connect, latency_ns);
    if (reply->code != 220) {
        blast_conn_fail(c, "greeting was %d %.*s", reply->code,
                        (int)reply->text_len, reply->text);
        return -1;
    }
    return blast_conn_queue_ref(c, BLAST_EXPECT_EHLO, c->run->now_ns,
                                c->run->ehlo_line);
}

/* Start sending messages, or with --idle hold the connection. */
static int blast_conn_ready(struct blast_conn *c)
{
    if (blast_run_holding(c->run)) {
        blast_conn_idle_add(c);
        blast_run_conn_held(c->run);
        return 0;
    }
    return blast_conn_next_message(c);
}

static int blast_conn_start_tls(struct blast_conn *c,
                                const struct smtp_reply *ehlo)
{
    if (!smtp_reply_has_keyword(ehlo, "STARTTLS")) {
        blast_conn_fail(c, "the server does not offer STARTTLS "
                        "(--starttls)");
        return -1;
    }
    return blast_conn_queue_ref(c, BLAST_EXPECT_STARTTLS, c->run->now_ns,
                                "STARTTLS\r\n");
}

static int blast_conn_start_auth(struct blast_conn *c,
                                 const struct smtp_reply *ehlo)
{
    if (!smtp_reply_has_keyword(ehlo, "AUTH")) {
        blast_conn_fail(c, "the server does not offer AUTH (--auth)%s",
                        c->tls.session == NULL ? "; it may need --starttls"
                                               : "");
        return -1;
    }
    return blast_conn_queue_ref(c, BLAST_EXPECT_AUTH, c->run->now_ns,
                                c->run->auth_line);
}

/* The 220 to STARTTLS: start the handshake. Nothing else is queued, as
 * blast sends STARTTLS alone and waits for its reply. */
static int blast_conn_on_starttls(struct blast_conn *c,
                                  const struct smtp_reply *reply)
{
    char err[300];

    if (reply->code != 220) {
        blast_conn_fail(c, "STARTTLS was answered %d %.*s", reply->code,
                        (int)reply->text_len, reply->text);
        return -1;
    }
    if (blast_tls_start(&c->tls, c->run->tls, err, sizeof(err)) < 0) {
        blast_conn_fail(c, "%s", err);
        return -1;
    }
    return 0;
}

static int blast_conn_on_auth(struct blast_conn *c,
                              const struct smtp_reply *reply)
{
    if (reply->code != 235) {
        blast_conn_fail(c, "AUTH PLAIN was answered %d %.*s", reply->code,
                        (int)reply->text_len, reply->text);
        return -1;
    }
    c->authenticated = true;
    return blast_conn_ready(c);
}

/* A server without ESMTP rejects EHLO with 5xx; HELO is the fallback
 * (RFC 5321 3.2). */
static int blast_conn_on_ehlo(struct blast_conn *c, enum blast_expect kind,
                              const struct smtp_reply *reply)
{
    const struct blast_options *o = c->run->options;

    if (blast_code_ok(reply->code)) {
        if (kind == BLAST_EXPECT_HELO && (o->starttls || o->auth != NULL)) {
            blast_conn_fail(c, "the server rejected EHLO, so %s cannot "
                            "be used", o->starttls ? "STARTTLS" : "AUTH");
            return -1;
        }
        if (o->starttls && c->tls.session == NULL) {
            return blast_conn_start_tls(c, reply);
        }
        if (o->auth != NULL && !c->authenticated) {
            return blast_conn_start_auth(c, reply);
        }
        c->pipelining = kind == BLAST_EXPECT_EHLO && o->pipelining
                        && smtp_reply_has_keyword(reply, "PIPELINING");
        return blast_conn_ready(c);
    }
    if (kind == BLAST_EXPECT_EHLO && reply->code >= 500) {
        return blast_conn_queue_ref(c, BLAST_EXPECT_HELO, c->run->now_ns,
                                    c->run->helo_line);
    }
    blast_conn_fail(c, "%s was answered %d %.*s",
                    kind == BLAST_EXPECT_EHLO ? "EHLO" : "HELO",
                    reply->code, (int)reply->text_len, reply->text);
    return -1;
}

static int blast_conn_on_mail(struct blast_conn *c, int code)
{
    c->mail_replied = true;
    if (!blast_code_ok(code)) {
        if (c->first_error == 0) {
            c->first_error = code;
        }
        /* With PIPELINING the RCPTs and DATA are already on their way
         * and the DATA reply ends the transaction. */
        return c->pipelining ? 0 : blast_conn_reject_message(c, code);
    }
    c->mail_ok = true;
    if (c->pipelining) {
        return 0;
    }
    c->rcpts_sent = 1;
    return blast_conn_rcpt(c, 1);
}

static int blast_conn_on_rcpt(struct blast_conn *c, int code)
{
    struct blast_run *run = c->run;

    if (blast_code_ok(code)) {
        c->rcpts_ok++;
    } else if (c->first_error == 0) {
        c->first_error = code;
    }
    if (c->pipelining) {
        return 0;
    }

    if (c->rcpts_sent < run->rcpts) {
        c->rcpts_sent++;
        return blast_conn_rcpt(c, c->rcpts_sent);
    }
    if (c->rcpts_ok == 0) {
        return blast_conn_reject_message(c, code);
    }
    return blast_conn_queue(c, BLAST_EXPECT_DATA, blast_conn_start_ns(c),
                            "DATA\r\n", 6);
}

/* After 354 the body goes out. With PIPELINING the next envelope follows
 * it in the same send, before the reply to the final dot. RFC 2197
 * section 4.1 allows this: message content may be the first command of
 * a group, so the next MAIL may share a send with the previous body.
 * NOTE: checked against RFC 2197, which RFC 2920 obsoletes. */
static int blast_conn_on_data(struct blast_conn *c, int code)
{
    if (code != 354) {
        return blast_conn_reject_message(c, code);
    }
    if (blast_conn_send_body(c) < 0) {
        return -1;
    }
    return c->pipelining ? blast_conn_next_message(c) : 0;
}

static int blast_conn_on_body(struct blast_conn *c, int code,
                              uint64_t latency_ns)
{
    blast_run_record_body(c->run, code, latency_ns, c->body_bytes,
                          c->body_rcpts);
    c->open--;
    c->body_open = false;
    c->progress = true;
    return c->pipelining ? 0 : blast_conn_next_message(c);
}

/* Count the reply owed for entry and send what follows it. Returns 0,
 * or -1 when the connection failed or closes. */
static int blast_conn_handle_reply(struct blast_conn *c,
                                   const struct blast_pending_reply *entry,
                                   const struct smtp_reply *reply,
                                   uint64_t latency_ns)
{
    struct blast_results *results = &c->run->results;

    switch ((enum blast_expect)entry->kind) {
    case BLAST_EXPECT_GREETING:
        return blast_conn_on_greeting(c, reply, latency_ns);
    case BLAST_EXPECT_EHLO:
    case BLAST_EXPECT_HELO:
        return blast_conn_on_ehlo(c, (enum blast_expect)entry->kind, reply);
    case BLAST_EXPECT_STARTTLS:
        return blast_conn_on_starttls(c, reply);
    case BLAST_EXPECT_AUTH:
        return blast_conn_on_auth(c, reply);
    case BLAST_EXPECT_MAIL:
        bench_code_tally_add(&results->mail_codes, reply->code);
        bench_histogram_record(&results->mail, latency_ns);
        return blast_conn_on_mail(c, reply->code);
    case BLAST_EXPECT_RCPT:
        bench_code_tally_add(&results->rcpt_codes, reply->code);
        bench_histogram_record(&results->rcpt, latency_ns);
        return blast_conn_on_rcpt(c, reply->code);
    case BLAST_EXPECT_DATA:
        bench_code_tally_add(&results->data_codes, reply->code);
        return blast_conn_on_data(c, reply->code);
    case BLAST_EXPECT_BODY:
        return blast_conn_on_body(c, reply->code, latency_ns);
    case BLAST_EXPECT_RSET:
        return c->pipelining ? 0 : blast_conn_next_message(c);
    case BLAST_EXPECT_QUIT:
        results->quit_replied++;
        blast_conn_close(c);
        return -1;
    }
    return 0;
}

/* Return the latency of the reply owed for entry. Replies arrive in
 * order, so in closed loop a pipelined command's latency starts no
 * earlier than the reply before it: the time spent waiting behind that
 * reply (a slow end of data, say) is already counted as that command's
 * latency. In open loop it counts from the due time as it is. */
static uint64_t blast_conn_latency_ns(const struct blast_conn *c,
                                      const struct blast_pending_reply *entry)
{
    uint64_t start_ns = entry->start_ns;

    if (!c->run->open_loop && c->last_reply_ns > start_ns) {
        start_ns = c->last_reply_ns;
    }
    return c->run->now_ns > start_ns ? c->run->now_ns - start_ns : 0;
}

/* Act on one reply. Returns 0, or -1 when the connection failed or
 * closes. */
static int blast_conn_on_reply(struct blast_conn *c,
                               const struct smtp_reply *reply)
{
    struct blast_pending_reply entry;
    uint64_t latency_ns;

    if (blast_conn_pop_expect(c, &entry) < 0) {
        blast_conn_fail(c, "unexpected reply %d %.*s", reply->code,
                        (int)reply->text_len, reply->text);
        return -1;
    }
    latency_ns = blast_conn_latency_ns(c, &entry);
    c->last_reply_ns = c->run->now_ns;
    if (reply->code == 421 && entry.kind >= BLAST_EXPECT_MAIL) {
        c->server_closing = true;
    }
    if (blast_conn_handle_reply(c, &entry, reply, latency_ns) < 0) {
        return -1;
    }
    /* A 421 reply means that the server is closing the connection, so
     * blast closes it too, sends nothing after it, and settles what the
     * session still owes as blast_conn_settle_lost describes. */
    if (c->server_closing) {
        blast_conn_fail(c, "the server replied 421");
        return -1;
    }
    return 0;
}

/* Parse and act on every whole reply in data[0..len). Returns the bytes
 * consumed; the rest is the start of a reply still arriving. */
static size_t blast_conn_parse(struct blast_conn *c, const char *data,
                               size_t len)
{
    size_t used = 0;

    while (!c->closing && used < len) {
        struct smtp_reply reply;
        enum smtp_reply_result result;

        result = smtp_reply_parse(data + used, len - used,
                                  BLAST_REPLY_LINE_MAX, &reply);
        if (result == SMTP_REPLY_INCOMPLETE) {
            break;
        }
        if (result == SMTP_REPLY_INVALID) {
            blast_conn_fail(c, "invalid reply from the server");
            break;
        }
        used += reply.len;
        if (blast_conn_on_reply(c, &reply) < 0) {
            break;
        }
    }
    return used;
}

/* Append data to the held-back input. Returns 0 or -1 after failing
 * the connection. */
static int blast_conn_keep(struct blast_conn *c, const char *data,
                           size_t len)
{
    size_t need;

    if (len > BLAST_INPUT_MAX - c->input_len) {
        blast_conn_fail(c, "reply longer than %d bytes", BLAST_INPUT_MAX);
        return -1;
    }
    need = c->input_len + len;
    if (need > c->input_cap) {
        size_t cap = c->input_cap == 0 ? 1024 : c->input_cap;
        char *input;

        while (cap < need) {
            cap *= 2;
        }
        input = realloc(c->input, cap);
        if (input == NULL) {
            blast_conn_fail(c, "out of memory for input");
            return -1;
        }
        c->input = input;
        c->input_cap = cap;
    }
    memcpy(c->input + c->input_len, data, len);
    c->input_len = need;
    return 0;
}

/* Feed received bytes. Whole replies are parsed in place in the
 * reactor's buffer; only a reply split across receives is copied. */
static void blast_conn_input(struct blast_conn *c, const char *data,
                             size_t len)
{
    size_t used;

    if (c->input_len == 0) {
        used = blast_conn_parse(c, data, len);
        if (!c->closing && used < len) {
            blast_conn_keep(c, data + used, len - used);
        }
        return;
    }

    if (blast_conn_keep(c, data, len) < 0) {
        return;
    }
    used = blast_conn_parse(c, c->input, c->input_len);
    memmove(c->input, c->input + used, c->input_len - used);
    c->input_len -= used;
}

/* Count n bytes of the stream as sent. In closed loop the body's reply
 * latency starts when its last byte is sent. */
static void blast_conn_account_sent(struct blast_conn *c, size_t n)
{
    c->bytes_sent += (uint64_t)n;
    if (c->body_end_pending && c->bytes_sent >= c->body_end) {
        c->body_end_pending = false;
        c->expect[c->body_slot].start_ns = bench_monotonic_ns();
    }
}

/* blast_conn_send_queue returns the queue the next send takes bytes
 * from: c->out, or with TLS the ciphertext of as much of c->out as fits
 * the TLS backlog. Under TLS a byte counts as sent when it is encrypted,
 * so a body's latency starts up to 256 KiB of ciphertext early. Returns
 * NULL after failing the connection. */
static struct smtp_outq *blast_conn_send_queue(struct blast_conn *c)
{
    char err[300];
    size_t moved;

    if (c->tls.session == NULL) {
        return &c->out;
    }
    if (blast_tls_encrypt(&c->tls, &c->out, &moved, err, sizeof(err)) < 0) {
        blast_conn_fail(c, "%s", err);
        return NULL;
    }
    blast_conn_account_sent(c, moved);
    return &c->tls.out;
}

static void blast_conn_flush(struct blast_conn *c)
{
    struct smtp_outq *queue;
    int count;
    int rc;

    if (c->closing || c->send_op.armed) {
        return;
    }
    queue = blast_conn_send_queue(c);
    if (queue == NULL || queue->len == 0) {
        return;
    }
    count = smtp_outq_peek(queue, c->iov, BLAST_IOV_MAX);
    rc = reactor_sendv(c->run->reactor, &c->send_op, c->fd, c->iov, count);
    if (rc < 0) {
        blast_conn_fail(c, "starting a send failed: %s", strerror(-rc));
    }
}

/* Send what is queued, and close the socket once a closing connection
 * has no operation left; then its slot goes back to the run. */
static void blast_conn_step(struct blast_conn *c)
{
    struct blast_run *run = c->run;

    blast_conn_flush(c);
    if (!c->closing || c->closed || c->connect_op.armed
        || c->recv_op.armed || c->send_op.armed) {
        return;
    }
    c->closed = true;
    if (close(c->fd) < 0) {
        fprintf(stderr, "blast: connection %u: close failed: %s\n",
                c->index, strerror(errno));
    }
    c->fd = -1;
    run->active--;
    blast_conn_after_close(c);
}

static bool blast_conn_deliver(void *owner, const char *data, size_t len)
{
    struct blast_conn *c = owner;

    blast_conn_input(c, data, len);
    return !c->closing;
}

/* Decrypt received bytes. The first EHLO inside TLS goes out once the
 * handshake completes, as RFC 3207 requires. */
static void blast_conn_tls_input(struct blast_conn *c, const char *data,
                                 size_t len)
{
    char err[300];
    bool done_now;

    if (blast_tls_receive(&c->tls, data, len, &done_now, blast_conn_deliver,
                          c, err, sizeof(err)) < 0) {
        blast_conn_fail(c, "%s", err);
        return;
    }
    if (done_now && !c->closing) {
        c->run->results.tls_sessions++;
        blast_conn_queue_ref(c, BLAST_EXPECT_EHLO, c->run->now_ns,
                             c->run->ehlo_line);
    }
}

static void blast_conn_on_recv(struct reactor_op *op, int result)
{
    struct blast_conn *c = op->owner;

    c->run->now_ns = bench_monotonic_ns();
    if (result > 0 && !c->closing) {
        if (c->tls.session == NULL) {
            blast_conn_input(c, op->data, (size_t)result);
        } else {
            blast_conn_tls_input(c, op->data, (size_t)result);
        }
    }
    if (!op->more && !c->closing) {
        if (result < 0) {
            blast_conn_fail(c, "receive failed: %s", strerror(-result));
        } else {
            blast_conn_fail(c, "the server closed the connection");
        }
    }
    blast_conn_step(c);
}

static void blast_conn_on_send(struct reactor_op *op, int result)
{
    struct blast_conn *c = op->owner;

    if (result < 0) {
        if (result != -ECANCELED) {
            blast_conn_fail(c, "send failed: %s", strerror(-result));
        }
    } else {
        if (c->tls.session != NULL) {
            smtp_outq_consume(&c->tls.out, (size_t)result);
        } else {
            smtp_outq_consume(&c->out, (size_t)result);
            blast_conn_account_sent(c, (size_t)result);
        }
    }
    blast_conn_step(c);
}

static void blast_conn_on_connect(struct reactor_op *op, int result)
{
    struct blast_conn *c = op->owner;
    int rc;

    if (c->closing) {
        blast_conn_step(c);
        return;
    }
    if (result < 0) {
        blast_conn_fail(c, "connect failed: %s", strerror(-result));
        blast_conn_step(c);
        return;
    }

    rc = reactor_recv_multishot(c->run->reactor, &c->recv_op, c->fd);
    if (rc < 0) {
        blast_conn_fail(c, "starting to receive failed: %s", strerror(-rc));
    } else {
        blast_conn_expect(c, BLAST_EXPECT_GREETING, c->connect_ns);
    }
    blast_conn_step(c);
}

struct blast_conn *blast_conn_new(struct blast_run *run, unsigned index)
{
    struct blast_conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->run = run;
    c->index = index;
    c->fd = -1;
    c->closed = true;
    c->connect_op = (struct reactor_op){.done = blast_conn_on_connect,
                                        .owner = c};
    c->recv_op = (struct reactor_op){.done = blast_conn_on_recv,
                                     .owner = c};
    c->send_op = (struct reactor_op){.done = blast_conn_on_send,
                                     .owner = c};
    c->retry_timer = (struct reactor_timer){.fire = blast_conn_on_retry,
                                            .owner = c};
    smtp_outq_init(&c->out);
    blast_tls_init(&c->tls);

    /* RSET, a body, MAIL, the RCPTs, DATA and QUIT, plus slack. */
    c->expect_cap = run->rcpts + 8;
    c->expect = calloc(c->expect_cap, sizeof(*c->expect));
    if (c->expect == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

/* Forget the previous connection of the slot but not its work (left,
 * pending) or its backoff; buffers are kept. */
static void blast_conn_reset(struct blast_conn *c)
{
    smtp_outq_cleanup(&c->out);
    smtp_outq_init(&c->out);
    blast_tls_reset(&c->tls);
    c->authenticated = false;
    c->input_len = 0;
    c->expect_head = 0;
    c->expect_count = 0;
    c->open = 0;
    c->body_open = false;
    c->bytes_sent = 0;
    c->body_end_pending = false;
    c->last_reply_ns = 0;
    c->pipelining = false;
    c->need_rset = false;
    c->closing = false;
    c->closed = false;
    c->broken = false;
    c->server_closing = false;
    c->progress = false;
    c->run_progress = blast_run_progress(c->run);
}

/* Open a connection for the work the slot holds. */
static void blast_conn_start(struct blast_conn *c)
{
    struct blast_run *run = c->run;
    int rc;

    blast_conn_reset(c);
    run->results.connections_opened++;
    c->connect_ns = bench_monotonic_ns();
    c->fd = socket(run->options->server.addr.ss_family,
                   SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = bench_socket_connected(c->fd);
    if (rc < 0) {
        goto fail;
    }
    rc = reactor_connect(run->reactor, &c->connect_op, c->fd,
                         (const struct sockaddr *)&run->options->server.addr,
                         run->options->server.addr_len);
    if (rc < 0) {
        goto fail;
    }
    run->active++;
    return;

fail:
    /* Not yet active, so blast_conn_step() must not close it. */
    blast_conn_fail(c, "cannot start a connection: %s", strerror(-rc));
    c->closed = true;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    blast_conn_after_close(c);
}

void blast_conn_open(struct blast_conn *c, uint64_t quota, bool reserved,
                     const struct blast_msg *first)
{
    c->left = quota;
    c->reserved = reserved;
    c->has_pending = false;
    c->backoff = (struct blast_backoff){0};
    if (first != NULL) {
        c->pending = *first;
        c->has_pending = true;
        c->left--;
    }
    blast_conn_start(c);
}

/* Return true when the slot has work that its next connection must do. */
static bool blast_conn_has_work(const struct blast_conn *c)
{
    return c->has_pending || (c->reserved && c->left > 0);
}

/* Drop the work of a slot whose run stops issuing messages: a message
 * handed to it was never started. */
static void blast_conn_drop_work(struct blast_conn *c)
{
    if (c->has_pending) {
        c->has_pending = false;
        c->run->results.not_started++;
    }
    c->left = 0;
}

static void blast_conn_on_retry(struct reactor_timer *timer)
{
    struct blast_conn *c = timer->owner;
    struct blast_run *run = c->run;

    run->now_ns = bench_monotonic_ns();
    run->retrying--;
    if (run->stopping) {
        blast_conn_drop_work(c);
    }
    if (blast_conn_has_work(c)) {
        blast_conn_start(c);
    } else {
        blast_run_conn_closed(run, c->index);
    }
}

/* Give up the work of a slot whose server stays unreachable: what it
 * still holds counts as failed, though it was never sent. */
static void blast_conn_give_up(struct blast_conn *c)
{
    struct blast_run *run = c->run;
    uint64_t unsent = (c->has_pending ? 1 : 0) + (c->reserved ? c->left
                                                              : 0);

    run->results.failed += unsent;
    run->results.given_up += unsent;
    c->has_pending = false;
    c->left = 0;
    fprintf(stderr, "blast: connection %u to %s: giving up after %d "
                    "connections in a row without progress; unsent "
                    "messages counted as failed: %llu\n",
            c->index, run->options->server_text, BLAST_BACKOFF_TRIES_MAX,
            (unsigned long long)unsent);
    blast_run_conn_dead(run);
}

/* Decide what the slot does after its socket closed: return to the run
 * after a normal end, or connect again for the work it still holds, at
 * once after progress and else after a growing wait, or give up. */
static void blast_conn_after_close(struct blast_conn *c)
{
    struct blast_run *run = c->run;
    bool run_progress = blast_run_progress(run) != c->run_progress;
    int64_t wait_ms;

    /* --idle opens each connection once, so a lost one is only
     * counted. */
    if (!c->broken || run->hold) {
        blast_run_conn_closed(run, c->index);
        return;
    }
    wait_ms = blast_backoff_record(&c->backoff, c->progress, run_progress);
    if (wait_ms < 0 && (blast_conn_has_work(c) || !run->shares)) {
        blast_conn_give_up(c);
        return;
    }
    if (wait_ms <= 0 && !blast_conn_has_work(c)) {
        blast_run_conn_closed(run, c->index);
        return;
    }
    /* Through the timer even without a wait, so that a connection that
     * fails at once does not recurse. */
    run->retrying++;
    reactor_timer_set(run->reactor, &c->retry_timer,
                      wait_ms > 0 ? (uint64_t)wait_ms : 0);
}

void blast_conn_give(struct blast_conn *c, const struct blast_msg *msg)
{
    blast_conn_idle_remove(c);
    c->left--;
    blast_conn_begin(c, msg);
    blast_conn_step(c);
}

void blast_conn_quit(struct blast_conn *c)
{
    blast_conn_idle_remove(c);
    blast_conn_queue_quit(c);
    blast_conn_step(c);
}

void blast_conn_free(struct blast_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->fd >= 0 && close(c->fd) < 0) {
        fprintf(stderr, "blast: connection %u: close failed: %s\n",
                c->index, strerror(errno));
    }
    smtp_outq_cleanup(&c->out);
    blast_tls_reset(&c->tls);
    free(c->input);
    free(c->expect);
    free(c);
}
