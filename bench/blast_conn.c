#include "bench/blast_conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    BLAST_EXPECT_MAIL,
    BLAST_EXPECT_RCPT,
    BLAST_EXPECT_DATA,
    BLAST_EXPECT_BODY,
    BLAST_EXPECT_RSET,
    BLAST_EXPECT_QUIT,
};

struct blast_conn {
    struct blast_run *run;
    unsigned index;
    int fd;
    struct reactor_op connect_op;
    struct reactor_op recv_op;
    struct reactor_op send_op;
    struct smtp_outq out;
    struct iovec iov[BLAST_IOV_MAX];  /* in flight while send_op is armed */

    char *input;           /* a reply that arrived in part */
    size_t input_len;
    size_t input_cap;

    /* Ring of replies still owed by the server, oldest first. At most
     * RSET, a body, MAIL, every RCPT, DATA and QUIT are outstanding. */
    uint8_t *expect;
    unsigned expect_cap;
    unsigned expect_head;
    unsigned expect_count;

    uint64_t remaining;    /* messages not yet started */
    unsigned open;         /* messages started and not yet counted */
    size_t body_bytes;     /* header and body bytes of the body in flight */
    bool pipelining;       /* the server offered PIPELINING */
    bool need_rset;        /* a failed transaction left MAIL accepted */
    bool closing;          /* no new work; close once I/O finished */
    bool closed;

    /* The transaction whose envelope replies are awaited. */
    bool mail_ok;
    unsigned rcpts_sent;
    unsigned rcpts_ok;
    int first_error;       /* code of its first failed reply, 0 if none */
};

static void blast_conn_step(struct blast_conn *c);

static void blast_conn_cancel(struct blast_conn *c, struct reactor_op *op)
{
    int rc = reactor_cancel(c->run->reactor, op);

    if (rc < 0 && rc != -ENOENT && rc != -EALREADY) {
        fprintf(stderr, "blast: connection %u: cancelling I/O failed: %s\n",
                c->index, strerror(-rc));
    }
}

/* Stop all I/O; blast_conn_step() closes the socket once the cancelled
 * operations have completed. */
static void blast_conn_close(struct blast_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    blast_conn_cancel(c, &c->connect_op);
    blast_conn_cancel(c, &c->recv_op);
    blast_conn_cancel(c, &c->send_op);
}

/* Count the connection's open and remaining messages as failed, report
 * why (the first few times), and close it. */
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
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);

    run->connection_failures++;
    run->failed += c->open + c->remaining;
    c->open = 0;
    c->remaining = 0;
    if (run->errors_printed < BLAST_ERRORS_PRINTED_MAX) {
        fprintf(stderr, "blast: connection %u to %s: %s\n", c->index,
                run->server.text, reason);
        run->errors_printed++;
        if (run->errors_printed == BLAST_ERRORS_PRINTED_MAX) {
            fprintf(stderr, "blast: further connection errors are only "
                            "counted\n");
        }
    }
    blast_conn_close(c);
}

/* Record that the server owes one more reply of kind. Returns 0 or -1
 * after failing the connection. */
static int blast_conn_expect(struct blast_conn *c, enum blast_expect kind)
{
    unsigned slot;

    if (c->expect_count == c->expect_cap) {
        blast_conn_fail(c, "internal error: too many replies outstanding");
        return -1;
    }
    slot = (c->expect_head + c->expect_count) % c->expect_cap;
    c->expect[slot] = (uint8_t)kind;
    c->expect_count++;
    return 0;
}

/* Queue a command and the reply it is owed. Returns 0 or -1 after
 * failing the connection. */
static int blast_conn_command(struct blast_conn *c, enum blast_expect kind,
                              const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int blast_conn_command(struct blast_conn *c, enum blast_expect kind,
                              const char *fmt, ...)
{
    char line[BLAST_COMMAND_MAX];
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(line)) {
        blast_conn_fail(c, "internal error: command too long");
        return -1;
    }
    if (smtp_outq_append(&c->out, line, (size_t)len) < 0) {
        blast_conn_fail(c, "out of memory queueing a command");
        return -1;
    }
    return blast_conn_expect(c, kind);
}

static int blast_conn_pop_expect(struct blast_conn *c,
                                 enum blast_expect *kind)
{
    if (c->expect_count == 0) {
        return -1;
    }
    *kind = (enum blast_expect)c->expect[c->expect_head];
    c->expect_head = (c->expect_head + 1) % c->expect_cap;
    c->expect_count--;
    return 0;
}

/* Queue the envelope of the next message, or QUIT when none is left.
 * With PIPELINING the whole envelope goes in one send; without it only
 * MAIL, and each reply sends the next command. Returns 0 or -1. */
static int blast_conn_next_message(struct blast_conn *c)
{
    struct blast_run *run = c->run;

    if (c->remaining == 0) {
        return blast_conn_command(c, BLAST_EXPECT_QUIT, "QUIT\r\n");
    }
    if (c->need_rset) {
        c->need_rset = false;
        if (blast_conn_command(c, BLAST_EXPECT_RSET, "RSET\r\n") < 0) {
            return -1;
        }
        /* Without PIPELINING, MAIL waits for the RSET reply. */
        if (!c->pipelining) {
            return 0;
        }
    }

    c->remaining--;
    c->open++;
    c->mail_ok = false;
    c->rcpts_sent = 0;
    c->rcpts_ok = 0;
    c->first_error = 0;
    if (blast_conn_command(c, BLAST_EXPECT_MAIL, "MAIL FROM:<%s>\r\n",
                           run->from) < 0) {
        return -1;
    }
    if (!c->pipelining) {
        return 0;
    }

    /* NOTE: every RCPT names the same --to address; a server that drops
     * duplicate recipients counts them once. */
    for (unsigned i = 0; i < run->rcpts; i++) {
        if (blast_conn_command(c, BLAST_EXPECT_RCPT, "RCPT TO:<%s>\r\n",
                               run->to) < 0) {
            return -1;
        }
    }
    c->rcpts_sent = run->rcpts;
    return blast_conn_command(c, BLAST_EXPECT_DATA, "DATA\r\n");
}

/* Queue header block, shared body and the final dot. */
static int blast_conn_send_body(struct blast_conn *c)
{
    struct blast_run *run = c->run;
    char header[BLAST_HEADER_MAX];
    size_t header_len;

    run->next_seq++;
    header_len = blast_message_header(&run->message, run->next_seq,
                                      bench_wall_us(), header);
    if (smtp_outq_append(&c->out, header, header_len) < 0
        || smtp_outq_append_ref(&c->out, run->message.body,
                                run->message.body_len) < 0
        || smtp_outq_append(&c->out, ".\r\n", 3) < 0) {
        blast_conn_fail(c, "out of memory queueing a message");
        return -1;
    }
    c->body_bytes = header_len + run->message.body_len;
    run->sent++;
    return blast_conn_expect(c, BLAST_EXPECT_BODY);
}

/* Count the current transaction as rejected with its first failed code
 * and move on to the next message. */
static int blast_conn_reject_message(struct blast_conn *c, int code)
{
    if (c->first_error == 0) {
        c->first_error = code;
    }
    bench_code_tally_add(&c->run->rejected, c->first_error);
    c->open--;
    c->need_rset = c->mail_ok;
    return blast_conn_next_message(c);
}

static bool blast_code_ok(int code)
{
    return code >= 200 && code < 300;
}

static int blast_conn_on_greeting(struct blast_conn *c,
                                  const struct smtp_reply *reply)
{
    if (reply->code != 220) {
        blast_conn_fail(c, "greeting was %d %.*s", reply->code,
                        (int)reply->text_len, reply->text);
        return -1;
    }
    return blast_conn_command(c, BLAST_EXPECT_EHLO, "EHLO %s\r\n",
                              c->run->helo);
}

/* A server without ESMTP rejects EHLO with 5xx; HELO is the fallback
 * (RFC 5321 3.2). */
static int blast_conn_on_ehlo(struct blast_conn *c, enum blast_expect kind,
                              const struct smtp_reply *reply)
{
    if (blast_code_ok(reply->code)) {
        c->pipelining = kind == BLAST_EXPECT_EHLO
                        && smtp_reply_has_keyword(reply, "PIPELINING");
        return blast_conn_next_message(c);
    }
    if (kind == BLAST_EXPECT_EHLO && reply->code >= 500) {
        return blast_conn_command(c, BLAST_EXPECT_HELO, "HELO %s\r\n",
                                  c->run->helo);
    }
    blast_conn_fail(c, "%s was answered %d %.*s",
                    kind == BLAST_EXPECT_EHLO ? "EHLO" : "HELO",
                    reply->code, (int)reply->text_len, reply->text);
    return -1;
}

static int blast_conn_on_mail(struct blast_conn *c, int code)
{
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
    return blast_conn_command(c, BLAST_EXPECT_RCPT, "RCPT TO:<%s>\r\n",
                              c->run->to);
}

static int blast_conn_on_rcpt(struct blast_conn *c, int code)
{
    struct blast_run *run = c->run;

    if (blast_code_ok(code)) {
        c->rcpts_ok++;
    } else {
        bench_code_tally_add(&run->rcpt_rejected, code);
        if (c->first_error == 0) {
            c->first_error = code;
        }
    }
    if (c->pipelining) {
        return 0;
    }

    if (c->rcpts_sent < run->rcpts) {
        c->rcpts_sent++;
        return blast_conn_command(c, BLAST_EXPECT_RCPT, "RCPT TO:<%s>\r\n",
                                  run->to);
    }
    if (c->rcpts_ok == 0) {
        return blast_conn_reject_message(c, code);
    }
    return blast_conn_command(c, BLAST_EXPECT_DATA, "DATA\r\n");
}

/* After 354 the body goes out. With PIPELINING the next envelope follows
 * it in the same send, because RFC 2920 lets message content start a
 * group of commands (section 3.1, as remembered; the sink accepts it). */
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

static int blast_conn_on_body(struct blast_conn *c, int code)
{
    struct blast_run *run = c->run;

    if (blast_code_ok(code)) {
        run->accepted++;
        run->bytes_accepted += c->body_bytes;
    } else {
        bench_code_tally_add(&run->rejected, code);
    }
    c->open--;
    return c->pipelining ? 0 : blast_conn_next_message(c);
}

/* Act on one reply. Returns 0, or -1 when the connection failed. */
static int blast_conn_on_reply(struct blast_conn *c,
                               const struct smtp_reply *reply)
{
    enum blast_expect kind;

    if (blast_conn_pop_expect(c, &kind) < 0) {
        blast_conn_fail(c, "unexpected reply %d %.*s", reply->code,
                        (int)reply->text_len, reply->text);
        return -1;
    }
    switch (kind) {
    case BLAST_EXPECT_GREETING:
        return blast_conn_on_greeting(c, reply);
    case BLAST_EXPECT_EHLO:
    case BLAST_EXPECT_HELO:
        return blast_conn_on_ehlo(c, kind, reply);
    case BLAST_EXPECT_MAIL:
        return blast_conn_on_mail(c, reply->code);
    case BLAST_EXPECT_RCPT:
        return blast_conn_on_rcpt(c, reply->code);
    case BLAST_EXPECT_DATA:
        return blast_conn_on_data(c, reply->code);
    case BLAST_EXPECT_BODY:
        return blast_conn_on_body(c, reply->code);
    case BLAST_EXPECT_RSET:
        return c->pipelining ? 0 : blast_conn_next_message(c);
    case BLAST_EXPECT_QUIT:
        blast_conn_close(c);
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

static void blast_conn_flush(struct blast_conn *c)
{
    int count;
    int rc;

    if (c->closing || c->send_op.armed || c->out.len == 0) {
        return;
    }
    count = smtp_outq_peek(&c->out, c->iov, BLAST_IOV_MAX);
    rc = reactor_sendv(c->run->reactor, &c->send_op, c->fd, c->iov, count);
    if (rc < 0) {
        blast_conn_fail(c, "starting a send failed: %s", strerror(-rc));
    }
}

/* Send what is queued, and close the socket once a closing connection
 * has no operation left; the last one to close stops the run. */
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
    if (run->active == 0) {
        reactor_stop(run->reactor);
    }
}

static void blast_conn_on_recv(struct reactor_op *op, int result)
{
    struct blast_conn *c = op->owner;

    if (result > 0 && !c->closing) {
        blast_conn_input(c, op->data, (size_t)result);
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
        smtp_outq_consume(&c->out, (size_t)result);
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
        blast_conn_expect(c, BLAST_EXPECT_GREETING);
    }
    blast_conn_step(c);
}

struct blast_conn *blast_conn_new(struct blast_run *run, unsigned index,
                                  uint64_t messages)
{
    struct blast_conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->run = run;
    c->index = index;
    c->fd = -1;
    c->remaining = messages;
    c->connect_op = (struct reactor_op){.done = blast_conn_on_connect,
                                        .owner = c};
    c->recv_op = (struct reactor_op){.done = blast_conn_on_recv,
                                     .owner = c};
    c->send_op = (struct reactor_op){.done = blast_conn_on_send,
                                     .owner = c};
    smtp_outq_init(&c->out);

    /* RSET, a body, MAIL, the RCPTs, DATA and QUIT, plus slack. */
    c->expect_cap = run->rcpts + 8;
    c->expect = calloc(c->expect_cap, sizeof(*c->expect));
    if (c->expect == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

void blast_conn_start(struct blast_conn *c)
{
    struct blast_run *run = c->run;
    int rc;

    c->fd = socket(run->server.addr.ss_family,
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
                         (const struct sockaddr *)&run->server.addr,
                         run->server.addr_len);
    if (rc < 0) {
        goto fail;
    }
    run->active++;
    return;

fail:
    /* Not yet active, so blast_conn_step() must not close it. */
    blast_conn_fail(c, "cannot start a connection: %s", strerror(-rc));
    c->closed = true;
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
    free(c->input);
    free(c->expect);
    free(c);
}
