/* BDAT chunk data (RFC 3030): the octets after "BDAT size [LAST]" are
 * message data whatever they contain, so they are counted, not scanned
 * for an end. Every chunk is read to its end, even one that is rejected,
 * so the next command is found where the client put it. */
#include <inttypes.h>
#include <stdio.h>

#include "proto/smtp_server_internal.h"

/* chunk_discard makes the chunk one whose octets are dropped and whose
 * reply is reply. A 503 counts toward max_errors; a reply from a
 * hook or a failed body does not. */
static void chunk_discard(struct smtp_server *s, const char *reply,
                          bool counts_error)
{
    struct smtp_chunk *c = &s->chunk;

    c->discard = true;
    c->counts_error = counts_error;
    snprintf(c->reply, sizeof(c->reply), "%s", reply);
}

/* chunk_check_sequence discards a chunk sent where no transaction with a
 * recipient is open. Returns true when it did. */
static bool chunk_check_sequence(struct smtp_server *s)
{
    const char *reply = NULL;

    if (s->refused) {
        reply = "503 5.5.1 Error: service not available, send QUIT";
    } else if (s->state == SMTP_STATE_CONNECTED) {
        reply = "503 5.5.1 Error: send HELO/EHLO first";
    } else if (!s->esmtp) {
        /* CHUNKING is an extension, and HELO offers none. */
        reply = "503 5.5.1 Error: BDAT needs EHLO, not HELO";
    } else if (s->state == SMTP_STATE_READY) {
        reply = "503 5.5.1 Error: need MAIL command";
    } else if (s->state == SMTP_STATE_MAIL && s->rcpt_tried) {
        /* Pipelined after refused recipients: not a client error. */
        chunk_discard(s, "554 5.5.1 Error: no valid recipients", false);
        return true;
    } else if (s->state == SMTP_STATE_MAIL) {
        reply = "503 5.5.1 Error: need RCPT command";
    }
    if (reply == NULL) {
        return false;
    }
    chunk_discard(s, reply, true);
    return true;
}

/* chunk_open_storage calls data_begin() for the first chunk of a
 * transaction. Returns 0, or -1 when the hook refused and the chunk is
 * to be discarded. */
static int chunk_open_storage(struct smtp_server *s)
{
    char reply[SMTP_REPLY_MAX] = "";

    s->bdat_used = true;
    if (s->hooks->data_begin != NULL &&
        s->hooks->data_begin(s->ctx, reply) < 0) {
        s->bdat_failed = true;
        chunk_discard(s, reply, false);
        return -1;
    }
    s->storing = true;
    smtp_server_start_body(s);
    return 0;
}

/* chunk_end_discarded sends the reply to a chunk that was dropped. */
static void chunk_end_discarded(struct smtp_server *s)
{
    struct smtp_chunk *c = &s->chunk;

    s->state = c->after;
    if (c->counts_error) {
        smtp_server_reject(s, "%s", c->reply);
    } else {
        smtp_server_hook_reply(s, c->reply);
    }
    if (c->last && s->bdat_failed) {
        smtp_server_end_transaction(s);
    }
}

/* chunk_end_stored ends a chunk that went to storage: 250 for one more
 * chunk, the commit for LAST, or the error that failed the body. */
static void chunk_end_stored(struct smtp_server *s)
{
    struct smtp_chunk *c = &s->chunk;
    const struct smtp_body *b = &s->body;

    if (c->last) {
        smtp_body_finish_stuffed(&s->body);
        s->storing = false;
        smtp_server_end_body(s);
        return;
    }
    s->state = SMTP_STATE_RCPT;
    if (!smtp_body_failed(b)) {
        smtp_server_reply(s, "250 2.0.0 %" PRIu64 " octets received",
                          c->size);
        return;
    }

    /* Later chunks up to LAST get the same reply, because RFC 3030
     * fails the whole transaction with its first failed chunk. */
    smtp_server_body_error(s, c->reply);
    smtp_server_abort_storage(s, c->reply);
    s->bdat_failed = true;
    smtp_server_hook_reply(s, c->reply);
}

static void chunk_end(struct smtp_server *s)
{
    s->command_waits++;
    if (s->chunk.discard) {
        chunk_end_discarded(s);
    } else {
        chunk_end_stored(s);
    }
}

void smtp_chunk_begin(struct smtp_server *s, uint64_t size, bool last)
{
    struct smtp_chunk *c = &s->chunk;

    c->left = size;
    c->size = size;
    c->last = last;
    c->discard = false;
    c->counts_error = false;
    c->after = s->state;
    if (!chunk_check_sequence(s)) {
        if (s->bdat_failed) {
            /* c->reply still contains the reply of the failed chunk. */
            c->discard = true;
        } else if (!s->storing) {
            chunk_open_storage(s);
        }
    }
    s->state = SMTP_STATE_CHUNK;
    if (size == 0) {
        chunk_end(s);
    }
}

size_t smtp_chunk_input(struct smtp_server *s, const char *data,
                        size_t len)
{
    struct smtp_chunk *c = &s->chunk;
    size_t used = len;

    if (c->left < used) {
        used = (size_t)c->left;
    }
    if (!c->discard) {
        smtp_body_stuff(&s->body, data, used);
    }
    c->left -= used;
    if (c->left == 0) {
        chunk_end(s);
    }
    return used;
}
