/* Tests for the Received: field counter (proto/smtp_hops.h). Every case
 * is fed whole and cut at every byte, and both must give one count. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/smtp_hops.h"

static size_t count_in_pieces(const char *text, size_t step)
{
    struct smtp_hops h;
    size_t len = strlen(text);

    smtp_hops_start(&h);
    for (size_t pos = 0; pos < len; pos += step) {
        size_t n = len - pos < step ? len - pos : step;

        smtp_hops_scan(&h, text + pos, n);
    }
    return h.count;
}

static void expect_count(const char *name, const char *text, size_t want)
{
    size_t whole = count_in_pieces(text, strlen(text) + 1);
    size_t bytewise = count_in_pieces(text, 1);

    cr_expect_eq(whole, want, "%s: fed whole, counted %zu, want %zu",
                 name, whole, want);
    cr_expect_eq(bytewise, want, "%s: fed bytewise, counted %zu, want %zu",
                 name, bytewise, want);
}

Test(smtp_hops, counts_header_fields)
{
    static const struct {
        const char *name;
        const char *text;
        size_t count;
    } cases[] = {
        {"no header", "\r\nReceived: x\r\n", 0},
        {"one field", "Received: from a\r\n\r\nbody\r\n", 1},
        {"any case", "RECEIVED: a\r\nreceived: b\r\nReCeIvEd: c\r\n\r\n",
         3},
        {"blank before colon", "Received : a\r\nReceived\t: b\r\n\r\n", 2},
        {"folded field", "Received: from a\r\n\tby b\r\n Received: c\r\n"
         "\r\n", 1},
        {"body after empty line", "Received: a\r\n\r\nReceived: b\r\n"
         "Received: c\r\n", 1},
        {"other fields", "Subject: Received: x\r\nX-Received: y\r\n"
         "Received-SPF: pass\r\nReceivedx: z\r\nReceive: w\r\n\r\n", 0},
        {"name without colon", "Received\r\nReceived: a\r\n\r\n", 1},
        {"no empty line", "Received: a\r\nReceived: b", 2},
        {"bare LF lines", "Received: a\nReceived: b\n\nReceived: c\n", 2},
        {"CR inside a line", "\rReceived: a\r\nReceived: b\r\n\r\n", 1},
        {"dot-stuffed line", "..Received: a\r\nReceived: b\r\n\r\n", 1},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_count(cases[i].name, cases[i].text, cases[i].count);
    }
}

/* A header of many fields, cut into pieces of every size up to 40. */
Test(smtp_hops, split_header_every_step)
{
    char text[8192];
    size_t len = 0;

    for (int i = 0; i < 100; i++) {
        len += (size_t)snprintf(text + len, sizeof(text) - len,
                                "Received: from h%d\r\n\tby x\r\n", i);
    }
    snprintf(text + len, sizeof(text) - len, "\r\nReceived: body\r\n");
    for (size_t step = 1; step <= 40; step++) {
        size_t count = count_in_pieces(text, step);

        cr_expect_eq(count, 100, "step %zu: counted %zu, want 100", step,
                     count);
    }
}
