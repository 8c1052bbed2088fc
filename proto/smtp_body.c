#include "proto/smtp_body.h"

#include <string.h>

#include "proto/smtp_chars.h"

/* Bytes that the scan of a line's middle stops at: CR, LF and NUL. */
#define SMTP_BODY_STOP (SMTP_CHAR_EOL | SMTP_CHAR_LINE_BAD)

void smtp_body_start(struct smtp_body *b, uint64_t max_size,
                     size_t max_line, smtp_body_write_fn *write, void *ctx)
{
    b->state = SMTP_BODY_LINE_START;
    b->held = 0;
    b->size = 0;
    b->max_size = max_size;
    b->line_len = 0;
    b->max_line = max_line;
    b->bare_eol = false;
    b->nul = false;
    b->too_big = false;
    b->line_too_long = false;
    b->write_failed = false;
    b->no_space = false;
    b->raw = false;
    smtp_hops_start(&b->hops);
    b->max_hops = 0;
    b->too_many_hops = false;
    b->write = write;
    b->ctx = ctx;
}

bool smtp_body_failed(const struct smtp_body *b)
{
    return b->bare_eol || b->nul || b->too_big || b->line_too_long ||
           b->too_many_hops || b->write_failed;
}

/* body_measure_lines adds data[0..len) to the length of the current line
 * and sets line_too_long when a line goes over max_line. Every LF passed
 * on ends a CRLF, since a bare one fails the body first. */
static void body_measure_lines(struct smtp_body *b, const char *data,
                               size_t len)
{
    const char *end = data + len;

    while (data < end) {
        const char *lf = memchr(data, '\n', (size_t)(end - data));
        const char *next = lf != NULL ? lf + 1 : end;

        b->line_len += (size_t)(next - data);
        if (b->line_len > b->max_line) {
            b->line_too_long = true;
            return;
        }
        if (lf != NULL) {
            b->line_len = 0;
        }
        data = next;
    }
}

static void body_pass(struct smtp_body *b, const char *data, size_t len)
{
    /* A bare CR or LF and a NUL are found by the scanner whatever the
     * pieces, and their reply wins over every other, so counting may
     * stop there. */
    if (len == 0 || b->bare_eol || b->nul || b->too_big) {
        return;
    }
    if (b->max_size != 0 && len > b->max_size - b->size) {
        b->too_big = true;
        return;
    }
    b->size += len;
    if (b->max_line != 0 && !b->line_too_long) {
        body_measure_lines(b, data, len);
    }

    /* Counting goes on past the limit, so the reply gives the number of
     * Received: fields the message has. */
    smtp_hops_scan(&b->hops, data, len);
    if (b->max_hops != 0 && b->hops.count > b->max_hops) {
        b->too_many_hops = true;
    }

    /* Bytes are still counted after a failed write or a long line. So a
     * body over the limit gets 552 wherever its pieces were cut, never 451
     * or 554 just because the other failure came first. */
    if (!smtp_body_failed(b)) {
        int rc = b->write(b->ctx, data, len);

        b->write_failed = rc < 0;
        b->no_space = rc == SMTP_BODY_NO_SPACE;
    }
}

/* body_release passes on the ".CR" bytes held from earlier pieces once
 * they turned out not to end the body. */
static void body_release(struct smtp_body *b)
{
    if (b->held > 0) {
        body_pass(b, ".\r", b->held);
        b->held = 0;
    }
}

/* body_step moves the state machine over byte c. Returns true when c was
 * the LF of the final CRLF.CRLF. */
static bool body_step(struct smtp_body *b, char c)
{
    enum smtp_body_state next = SMTP_BODY_LINE;

    b->nul = b->nul || c == '\0';
    switch (b->state) {
    case SMTP_BODY_LINE_START:
    case SMTP_BODY_LINE:
        if (c == '.' && b->state == SMTP_BODY_LINE_START) {
            next = SMTP_BODY_DOT;
        } else if (c == '\r') {
            next = SMTP_BODY_CR;
        } else if (c == '\n') {
            b->bare_eol = true;
        }
        break;
    case SMTP_BODY_CR:
        if (c == '\n') {
            next = SMTP_BODY_LINE_START;
        } else {
            b->bare_eol = true;
            next = c == '\r' ? SMTP_BODY_CR : SMTP_BODY_LINE;
        }
        break;
    case SMTP_BODY_DOT:
        if (c == '\r') {
            next = SMTP_BODY_DOT_CR;
            break;
        }
        body_release(b);
        b->bare_eol = b->bare_eol || c == '\n';
        break;
    case SMTP_BODY_DOT_CR:
        if (c == '\n') {
            b->held = 0;
            return true;
        }
        body_release(b);
        b->bare_eol = true;
        next = c == '\r' ? SMTP_BODY_CR : SMTP_BODY_LINE;
        break;
    }
    b->state = next;
    return false;
}

size_t smtp_body_scan(struct smtp_body *b, const char *data, size_t len,
                      bool *done)
{
    size_t from = 0; /* first byte neither passed on nor held */
    size_t i = 0;

    *done = false;
    while (i < len) {
        if (b->state == SMTP_BODY_LINE) {
            while (i < len && !smtp_char_is(data[i], SMTP_BODY_STOP)) {
                i++;
            }
            if (i == len) {
                break;
            }
        }

        /* A dot at the start of a line may begin the end of the body, so
         * it and the bytes after it wait until that is decided. */
        if (b->state == SMTP_BODY_LINE_START && data[i] == '.') {
            body_pass(b, data + from, i - from);
            from = i;
        }
        if (body_step(b, data[i])) {
            *done = true;
            return i + 1;
        }
        i++;
    }

    if (b->state == SMTP_BODY_DOT || b->state == SMTP_BODY_DOT_CR) {
        b->held += len - from;
    } else {
        body_pass(b, data + from, len - from);
    }
    return len;
}

/* stuff_step moves the line state over byte c of BDAT data. Returns true
 * when c is a '.' that starts a line and so needs a second '.'. */
static bool stuff_step(struct smtp_body *b, char c)
{
    enum smtp_body_state next = SMTP_BODY_LINE;
    bool dot = false;

    b->nul = b->nul || c == '\0';
    switch (b->state) {
    case SMTP_BODY_LINE_START:
    case SMTP_BODY_LINE:
        if (c == '\r') {
            next = SMTP_BODY_CR;
        } else if (c == '\n') {
            b->bare_eol = true;
        } else {
            dot = c == '.' && b->state == SMTP_BODY_LINE_START;
        }
        break;
    case SMTP_BODY_CR:
        if (c == '\n') {
            next = SMTP_BODY_LINE_START;
        } else {
            b->bare_eol = true;
            next = c == '\r' ? SMTP_BODY_CR : SMTP_BODY_LINE;
        }
        break;
    case SMTP_BODY_DOT:
    case SMTP_BODY_DOT_CR:
        /* DATA states, never entered while stuffing. */
        b->bare_eol = true;
        break;
    }
    b->state = next;
    return dot;
}

void smtp_body_stuff(struct smtp_body *b, const char *data, size_t len)
{
    size_t from = 0; /* first byte not yet passed on */
    size_t i = 0;

    if (b->raw) {
        body_pass(b, data, len);
        return;
    }
    while (i < len) {
        if (b->state == SMTP_BODY_LINE) {
            while (i < len && !smtp_char_is(data[i], SMTP_BODY_STOP)) {
                i++;
            }
            if (i == len) {
                break;
            }
        }
        if (stuff_step(b, data[i])) {
            /* The extra dot goes out before the dot itself. */
            body_pass(b, data + from, i - from);
            body_pass(b, ".", 1);
            from = i;
        }
        i++;
    }
    body_pass(b, data + from, len - from);
}

void smtp_body_finish_stuffed(struct smtp_body *b)
{
    if (b->raw) {
        return;
    }
    if (b->state == SMTP_BODY_CR) {
        b->bare_eol = true;
    } else if (b->state == SMTP_BODY_LINE) {
        body_pass(b, "\r\n", 2);
    }
    b->state = SMTP_BODY_LINE_START;
}
