/* Bounded text building for blast's per-message work (commands, header
 * blocks, address templates): plain copies and decimal numbers, without
 * the cost of printf on every message. */
#ifndef RINGRELAY_BENCH_BLAST_TEXT_H
#define RINGRELAY_BENCH_BLAST_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* blast_text: text being built in a caller's buffer. Once something did
 * not fit, overflow is set and later appends are ignored. */
struct blast_text {
    char *buf;
    size_t cap;        /* bytes of buf, the final NUL included */
    size_t len;
    bool overflow;
};

static inline void blast_text_init(struct blast_text *text, char *buf,
                                   size_t cap)
{
    *text = (struct blast_text){.buf = buf, .cap = cap,
                                .overflow = cap == 0};
}

/* blast_text_put appends data[0..len), keeping room for the NUL. */
static inline void blast_text_put(struct blast_text *text, const char *data,
                                  size_t len)
{
    if (text->overflow || len >= text->cap - text->len) {
        text->overflow = true;
        return;
    }
    memcpy(text->buf + text->len, data, len);
    text->len += len;
}

static inline void blast_text_put_str(struct blast_text *text,
                                      const char *s)
{
    blast_text_put(text, s, strlen(s));
}

static inline void blast_text_put_u64(struct blast_text *text,
                                      uint64_t value)
{
    char digits[20];
    size_t n = sizeof(digits);

    do {
        digits[--n] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    blast_text_put(text, digits + n, sizeof(digits) - n);
}

/* blast_text_end NUL-terminates the text. Returns 0, or -1 when
 * something did not fit. */
static inline int blast_text_end(struct blast_text *text)
{
    if (text->overflow) {
        return -1;
    }
    text->buf[text->len] = '\0';
    return 0;
}

#endif
