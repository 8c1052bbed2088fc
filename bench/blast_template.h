/* Address templates of the load generator.
 *
 * A template is an address with placeholders that each message fills in:
 * %n is the message's sequence number (X-Blast-Seq), %r the recipient's
 * index within the message (1..R, --to only), %d a domain number in 1..D
 * (--domains D), and %% a literal percent sign. Domain numbers go round
 * robin: the sender of message n gets ((n - 1) mod D) + 1, and recipient
 * r of message n gets (((n - 1) * R + r - 1) mod D) + 1, so consecutive
 * recipients of a run cycle through all D domains. */
#ifndef RINGRELAY_BENCH_BLAST_TEMPLATE_H
#define RINGRELAY_BENCH_BLAST_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* blast_template_vars: the values for one expansion. */
struct blast_template_vars {
    uint64_t seq;     /* %n */
    uint64_t rcpt;    /* %r */
    uint64_t domain;  /* %d */
};

/* blast_template: a checked template and what it needs, so that each
 * message skips the work its template does not use. */
struct blast_template {
    const char *text;     /* borrowed */
    bool plain;           /* no placeholder: text is its own expansion */
    bool uses_domain;     /* has %d */
};

/* blast_template_init describes the checked template text. */
void blast_template_init(struct blast_template *template, const char *text);

/* blast_template_check checks the placeholders of text for the option
 * named option ("from" or "to"); %r is accepted only with allow_rcpt.
 * On an error it writes a message naming the option and value into
 * error[0..error_size). Returns 0 or -1. */
int blast_template_check(const char *option, const char *text,
                         bool allow_rcpt, char *error, size_t error_size);

/* blast_template_uses reports whether the checked template text contains
 * placeholder ('n', 'r' or 'd'). */
bool blast_template_uses(const char *text, char placeholder);

/* blast_template_expand writes text with its placeholders filled from
 * vars into out[0..out_size), NUL-terminated, and its length into *len.
 * text must have passed blast_template_check. Returns 0, or -1 when the
 * result does not fit. */
int blast_template_expand(const char *text,
                          const struct blast_template_vars *vars, char *out,
                          size_t out_size, size_t *len);

/* blast_template_domain returns the %d value of recipient rcpt (1-based)
 * of message seq with rcpts recipients each, over domains domains; rcpt
 * 0 gives the sender's. */
uint64_t blast_template_domain(uint64_t seq, uint64_t rcpt, uint64_t rcpts,
                               uint64_t domains);

#endif
