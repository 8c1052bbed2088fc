#include "proto/smtp_hops.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

static const char hops_name[] = "received";

#define HOPS_NAME_LEN (sizeof(hops_name) - 1)

void smtp_hops_start(struct smtp_hops *h)
{
    h->state = SMTP_HOPS_LINE_START;
    h->matched = 0;
    h->count = 0;
}

/* hops_match_name moves over byte c while the line may still be a
 * Received: field. */
static enum smtp_hops_state hops_match_name(struct smtp_hops *h, char c)
{
    if (h->matched < HOPS_NAME_LEN) {
        if (tolower((unsigned char)c) != hops_name[h->matched]) {
            return SMTP_HOPS_SKIP;
        }
        h->matched++;
        return h->matched == HOPS_NAME_LEN ? SMTP_HOPS_BLANKS
                                           : SMTP_HOPS_NAME;
    }
    if (c == ' ' || c == '\t') {
        return SMTP_HOPS_BLANKS;
    }
    if (c == ':') {
        h->count++;
    }
    return SMTP_HOPS_SKIP;
}

/* hops_step moves the state over byte c. It never sees an LF, because
 * smtp_hops_scan() ends the line there. */
static enum smtp_hops_state hops_step(struct smtp_hops *h, char c)
{
    switch (h->state) {
    case SMTP_HOPS_LINE_START:
        if (c == '\r') {
            return SMTP_HOPS_EMPTY_CR;
        }
        h->matched = 0;
        return hops_match_name(h, c);
    case SMTP_HOPS_NAME:
    case SMTP_HOPS_BLANKS:
        return hops_match_name(h, c);
    case SMTP_HOPS_EMPTY_CR:
    case SMTP_HOPS_SKIP:
        return SMTP_HOPS_SKIP;
    case SMTP_HOPS_DONE:
        break;
    }
    return SMTP_HOPS_DONE;
}

void smtp_hops_scan(struct smtp_hops *h, const char *data, size_t len)
{
    const char *end = data + len;

    while (data < end && h->state != SMTP_HOPS_DONE) {
        if (h->state == SMTP_HOPS_SKIP) {
            /* Most header bytes are in lines that do not count. */
            const char *lf = memchr(data, '\n', (size_t)(end - data));

            if (lf == NULL) {
                return;
            }
            data = lf;
        }
        if (*data == '\n') {
            bool empty = h->state == SMTP_HOPS_LINE_START ||
                         h->state == SMTP_HOPS_EMPTY_CR;

            h->state = empty ? SMTP_HOPS_DONE : SMTP_HOPS_LINE_START;
        } else {
            h->state = hops_step(h, *data);
        }
        data++;
    }
}
