/* Tests for SMTP path and domain syntax (RFC 5321 section 4.1.2). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/smtp_address.h"

struct path_case {
    const char *input;
    bool utf8;
    enum smtp_path_result want;
    const char *address; /* expected address on SMTP_PATH_OK */
    const char *domain;  /* expected domain on SMTP_PATH_OK */
};

static const char *result_name(enum smtp_path_result rc)
{
    switch (rc) {
    case SMTP_PATH_OK:
        return "OK";
    case SMTP_PATH_SYNTAX:
        return "SYNTAX";
    case SMTP_PATH_TOO_LONG:
        return "TOO_LONG";
    case SMTP_PATH_8BIT:
        return "8BIT";
    }
    return "?";
}

static const struct path_case path_cases[] = {
    {"<user@example.com>", false, SMTP_PATH_OK, "user@example.com",
     "example.com"},
    {"<User.Name+tag@Example.COM>", false, SMTP_PATH_OK,
     "User.Name+tag@Example.COM", "Example.COM"},
    {"<>", false, SMTP_PATH_OK, "", ""},
    {"<postmaster>", false, SMTP_PATH_OK, "postmaster", ""},
    {"<PostMaster>", false, SMTP_PATH_OK, "PostMaster", ""},
    {"<postmaster@example.com>", false, SMTP_PATH_OK,
     "postmaster@example.com", "example.com"},
    {"<\"john doe\"@example.com>", false, SMTP_PATH_OK,
     "\"john doe\"@example.com", "example.com"},
    {"<\"a\\\"b\\\\c\"@example.com>", false, SMTP_PATH_OK,
     "\"a\\\"b\\\\c\"@example.com", "example.com"},
    {"<\"a@b\"@example.com>", false, SMTP_PATH_OK, "\"a@b\"@example.com",
     "example.com"},
    {"<\"\"@example.com>", false, SMTP_PATH_OK, "\"\"@example.com",
     "example.com"},
    {"<user@[192.0.2.1]>", false, SMTP_PATH_OK, "user@[192.0.2.1]",
     "[192.0.2.1]"},
    {"<user@[IPv6:2001:db8::1]>", false, SMTP_PATH_OK,
     "user@[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]"},
    {"<user@[ipv6:::ffff:192.0.2.1]>", false, SMTP_PATH_OK,
     "user@[ipv6:::ffff:192.0.2.1]", "[ipv6:::ffff:192.0.2.1]"},
    {"<@relay.example:user@example.com>", false, SMTP_PATH_OK,
     "user@example.com", "example.com"},
    {"<@a.example,@b.example:user@example.com>", false, SMTP_PATH_OK,
     "user@example.com", "example.com"},
    {"<a-b.c1@x-1.example>", false, SMTP_PATH_OK, "a-b.c1@x-1.example",
     "x-1.example"},
    {"<user@localhost>", false, SMTP_PATH_OK, "user@localhost",
     "localhost"},
    {"<\xc3\xbc@example.com>", true, SMTP_PATH_OK, "\xc3\xbc@example.com",
     "example.com"},
    {"<u@b\xc3\xbc.example>", true, SMTP_PATH_OK, "u@b\xc3\xbc.example",
     "b\xc3\xbc.example"},
    {"<\xc3\xbc@example.com>", false, SMTP_PATH_8BIT, NULL, NULL},
    {"<u@b\xc3\xbc.example>", false, SMTP_PATH_8BIT, NULL, NULL},
    {"<\"\xc3\xbc\"@example.com>", false, SMTP_PATH_8BIT, NULL, NULL},
    {"<\xc3(@example.com>", true, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<\xed\xa0\x80@example.com>", true, SMTP_PATH_SYNTAX, NULL, NULL},
    {"user@example.com", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@example.com", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"user@example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<postmaster@>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<a@b@c>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user @example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@ example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"< user@example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@example.com >", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<.user@example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user.@example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<us..er@example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@example..com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@example.com.>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@-example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@example-.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@exa_mple.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<@example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<\"unterminated@example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@[192.0.2.256]>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@[192.0.2]>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@[192.0.2.1.5]>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@192.0.2.1]>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@[192.0.2.1>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@[IPv6:2001:db8::g]>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@[IPv6:]>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<user@[x-tag:abc]>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<@relay.example user@example.com>", false, SMTP_PATH_SYNTAX, NULL,
     NULL},
    {"<@relay.example,user@example.com>", false, SMTP_PATH_SYNTAX, NULL,
     NULL},
    {"<@:user@example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
    {"<us\x01er@example.com>", false, SMTP_PATH_SYNTAX, NULL, NULL},
};

Test(smtp_path, table_of_cases)
{
    for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]);
         i++) {
        const struct path_case *c = &path_cases[i];
        struct smtp_path path;
        size_t end = 0;
        enum smtp_path_result rc;

        rc = smtp_path_parse(c->input, strlen(c->input), c->utf8, &path,
                             &end);
        cr_expect_eq(rc, c->want, "%s: got %s, want %s", c->input,
                     result_name(rc), result_name(c->want));
        if (rc != SMTP_PATH_OK || c->want != SMTP_PATH_OK) {
            continue;
        }
        cr_expect_str_eq(path.address, c->address,
                         "%s: address got \"%s\", want \"%s\"", c->input,
                         path.address, c->address);
        cr_expect_str_eq(path.domain, c->domain,
                         "%s: domain got \"%s\", want \"%s\"", c->input,
                         path.domain, c->domain);
        cr_expect_eq(end, strlen(c->input), "%s: end got %zu, want %zu",
                     c->input, end, strlen(c->input));
    }
}

Test(smtp_path, null_and_postmaster_flags)
{
    struct smtp_path path;
    size_t end = 0;

    cr_assert_eq(smtp_path_parse("<>", 2, false, &path, &end),
                 SMTP_PATH_OK);
    cr_expect(path.is_null, "<> should set is_null");
    cr_expect(!path.is_postmaster, "<> should not set is_postmaster");

    cr_assert_eq(smtp_path_parse("<Postmaster>", 12, false, &path, &end),
                 SMTP_PATH_OK);
    cr_expect(path.is_postmaster, "<Postmaster> should set is_postmaster");
    cr_expect(!path.is_null, "<Postmaster> should not set is_null");

    cr_assert_eq(smtp_path_parse("<postmaster@example.com>", 24, false,
                                 &path, &end),
                 SMTP_PATH_OK);
    cr_expect(!path.is_postmaster,
              "postmaster with a domain is an ordinary address");
}

Test(smtp_path, end_points_past_bracket)
{
    const char *text = "<a@example.com> SIZE=10";
    struct smtp_path path;
    size_t end = 0;

    cr_assert_eq(smtp_path_parse(text, strlen(text), false, &path, &end),
                 SMTP_PATH_OK);
    cr_expect_eq(end, 15, "end got %zu, want 15", end);
}

static void fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
}

Test(smtp_path, length_limits)
{
    char local[80];
    char text[600];
    char label[70];
    struct smtp_path path;
    size_t end = 0;
    enum smtp_path_result rc;

    fill(local, 'a', 64);
    snprintf(text, sizeof(text), "<%s@example.com>", local);
    rc = smtp_path_parse(text, strlen(text), false, &path, &end);
    cr_expect_eq(rc, SMTP_PATH_OK, "64-octet local part: got %s, want OK",
                 result_name(rc));

    fill(local, 'a', 65);
    snprintf(text, sizeof(text), "<%s@example.com>", local);
    rc = smtp_path_parse(text, strlen(text), false, &path, &end);
    cr_expect_eq(rc, SMTP_PATH_TOO_LONG,
                 "65-octet local part: got %s, want TOO_LONG",
                 result_name(rc));

    fill(label, 'b', 64);
    snprintf(text, sizeof(text), "<a@%s.example>", label);
    rc = smtp_path_parse(text, strlen(text), false, &path, &end);
    cr_expect_eq(rc, SMTP_PATH_TOO_LONG,
                 "64-octet label: got %s, want TOO_LONG", result_name(rc));

    /* Four 60-octet labels and a 10-octet tail: a 253-octet domain that
     * is valid by itself in a 257-octet path. */
    fill(label, 'c', 60);
    snprintf(text, sizeof(text), "<a@%s.%s.%s.%s.examplexy>", label,
             label, label, label);
    cr_assert_eq(strlen(text), 257);
    rc = smtp_path_parse(text, strlen(text), false, &path, &end);
    cr_expect_eq(rc, SMTP_PATH_TOO_LONG,
                 "257-octet path: got %s, want TOO_LONG", result_name(rc));

    /* 256 octets with the brackets is the maximum (RFC 5321 4.5.3.1.3). */
    fill(label, 'c', 60);
    snprintf(text, sizeof(text), "<a@%s.%s.%s.%s.examplex>", label, label,
             label, label);
    cr_assert_eq(strlen(text), 256);
    rc = smtp_path_parse(text, strlen(text), false, &path, &end);
    cr_expect_eq(rc, SMTP_PATH_OK, "256-octet path: got %s, want OK",
                 result_name(rc));
    cr_expect_eq(strlen(path.address), 254);
}

struct domain_case {
    const char *input;
    bool want;
};

static const struct domain_case domain_cases[] = {
    {"example.com", true},
    {"localhost", true},
    {"mx-1.Example.COM", true},
    {"[192.0.2.1]", true},
    {"[IPv6:::1]", true},
    {"192.0.2.1", true},
    {"", false},
    {"a b", false},
    {"example.com.", false},
    {".example.com", false},
    {"ex ample", false},
    {"<example.com>", false},
    {"[192.0.2.1", false},
    {"exa_mple.com", false},
    {"b\xc3\xbc.example", false},
};

Test(smtp_domain, table_of_cases)
{
    for (size_t i = 0; i < sizeof(domain_cases) / sizeof(domain_cases[0]);
         i++) {
        const struct domain_case *c = &domain_cases[i];
        bool got = smtp_domain_valid(c->input, strlen(c->input), false);

        cr_expect_eq(got, c->want, "\"%s\": got %d, want %d", c->input, got,
                     c->want);
    }
    cr_expect(smtp_domain_valid("b\xc3\xbc.example", 10, true),
              "a UTF-8 label is valid with SMTPUTF8");
}

/* One test per rule of RFC 5321 section 4.1.2 and RFC 6531 below. Each
 * case is checked for its result and, when accepted, for the offset past
 * the closing '>' and for the address kept (unless address is NULL). */

static void expect_path(const char *input, bool utf8,
                        enum smtp_path_result want, const char *address)
{
    struct smtp_path path;
    size_t end = 0;
    enum smtp_path_result rc;

    rc = smtp_path_parse(input, strlen(input), utf8, &path, &end);
    cr_expect_eq(rc, want, "%s: got %s, want %s", input, result_name(rc),
                 result_name(want));
    if (rc != SMTP_PATH_OK || want != SMTP_PATH_OK) {
        return;
    }
    cr_expect_eq(end, strlen(input), "%s: end %zu, want %zu", input, end,
                 strlen(input));
    if (address != NULL) {
        cr_expect_str_eq(path.address, address, "%s: address \"%s\", "
                         "want \"%s\"", input, path.address, address);
    }
}

static void expect_ok(const char *input, const char *address)
{
    expect_path(input, false, SMTP_PATH_OK, address);
}

static void expect_syntax(const char *input)
{
    expect_path(input, false, SMTP_PATH_SYNTAX, NULL);
}

Test(smtp_address, quoted_local_part_with_spaces)
{
    expect_ok("<\"john doe\"@example.com>", "\"john doe\"@example.com");
    expect_ok("<\" leading and trailing \"@example.com>",
              "\" leading and trailing \"@example.com");
}

Test(smtp_address, quoted_local_part_escaped_quote)
{
    expect_ok("<\"say \\\"hi\\\"\"@example.com>",
              "\"say \\\"hi\\\"\"@example.com");
}

Test(smtp_address, quoted_pair_takes_any_printable)
{
    /* quoted-pairSMTP is a backslash and one of %d32-126. */
    expect_ok("<\"a\\\\b\"@example.com>", "\"a\\\\b\"@example.com");
    expect_ok("<\"\\ \"@example.com>", "\"\\ \"@example.com");
    expect_ok("<\"\\a\\@\\~\"@example.com>", "\"\\a\\@\\~\"@example.com");
}

Test(smtp_address, quoted_pair_rejects_control)
{
    expect_syntax("<\"a\\\tb\"@example.com>");
    expect_syntax("<\"a\\\x7f\"@example.com>");
}

Test(smtp_address, quoted_string_rejects_control)
{
    /* qtextSMTP is %d32-33 / %d35-91 / %d93-126: no TAB, no DEL. */
    expect_syntax("<\"a\tb\"@example.com>");
    expect_syntax("<\"a\x7f\"@example.com>");
}

Test(smtp_address, quoted_string_needs_closing_quote)
{
    expect_syntax("<\"abc@example.com>");
    expect_syntax("<\"abc\\\"@example.com>");
}

Test(smtp_address, quoted_string_keeps_specials)
{
    expect_ok("<\"a@b,c:d<e>\"@example.com>",
              "\"a@b,c:d<e>\"@example.com");
    expect_ok("<\"\"@example.com>", "\"\"@example.com");
}

Test(smtp_address, dot_atom_local_part)
{
    expect_ok("<first.last@example.com>", "first.last@example.com");
    expect_ok("<!#$%&'*+-/=?^_`{|}~@example.com>",
              "!#$%&'*+-/=?^_`{|}~@example.com");
}

Test(smtp_address, atom_rejects_specials)
{
    expect_syntax("<a(b)@example.com>");
    expect_syntax("<a,b@example.com>");
    expect_syntax("<a\"b@example.com>");
    expect_syntax("<a\\b@example.com>");
}

Test(smtp_address, local_part_leading_dot)
{
    expect_syntax("<.user@example.com>");
}

Test(smtp_address, local_part_trailing_dot)
{
    expect_syntax("<user.@example.com>");
}

Test(smtp_address, local_part_double_dot)
{
    expect_syntax("<us..er@example.com>");
}

Test(smtp_address, domain_leading_dot)
{
    expect_syntax("<user@.example.com>");
}

Test(smtp_address, domain_trailing_dot)
{
    expect_syntax("<user@example.com.>");
}

Test(smtp_address, domain_double_dot)
{
    expect_syntax("<user@example..com>");
}

Test(smtp_address, domain_label_hyphens)
{
    expect_ok("<u@a--b.example>", "u@a--b.example");
    expect_ok("<u@3com.example>", "u@3com.example");
    expect_syntax("<u@-a.example>");
    expect_syntax("<u@a-.example>");
}

Test(smtp_address, ipv4_literal)
{
    expect_ok("<user@[192.0.2.1]>", "user@[192.0.2.1]");
    expect_ok("<user@[0.0.0.0]>", "user@[0.0.0.0]");
    expect_ok("<user@[255.255.255.255]>", "user@[255.255.255.255]");
}

Test(smtp_address, ipv4_literal_out_of_range)
{
    expect_syntax("<user@[300.1.1.1]>");
    expect_syntax("<user@[1.1.1.256]>");
}

Test(smtp_address, ipv4_literal_wrong_shape)
{
    expect_syntax("<user@[1.2.3]>");
    expect_syntax("<user@[1.2.3.4.5]>");
    expect_syntax("<user@[1..2.3]>");
    expect_syntax("<user@[1.2.3.4>");
    expect_syntax("<user@[1234.1.1.1]>");
    expect_syntax("<user@[]>");
}

Test(smtp_address, ipv6_literal)
{
    expect_ok("<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]");
    expect_ok("<user@[IPv6:2001:db8:0:0:0:0:0:1]>",
              "user@[IPv6:2001:db8:0:0:0:0:0:1]");
    expect_ok("<user@[IPv6:::1]>", "user@[IPv6:::1]");
    expect_ok("<user@[IPv6:::ffff:192.0.2.1]>",
              "user@[IPv6:::ffff:192.0.2.1]");
}

Test(smtp_address, ipv6_literal_tag_case)
{
    /* RFC 5321 ABNF strings such as "IPv6:" match in any case. */
    expect_ok("<user@[ipv6:2001:db8::1]>", "user@[ipv6:2001:db8::1]");
}

Test(smtp_address, ipv6_literal_invalid)
{
    expect_syntax("<user@[IPv6:zz]>");
    expect_syntax("<user@[IPv6:2001:db8::g]>");
    expect_syntax("<user@[IPv6:1:2:3:4:5:6:7:8:9]>");
    expect_syntax("<user@[IPv6:1::2::3]>");
    expect_syntax("<user@[IPv6:fe80::1%eth0]>");
    expect_syntax("<user@[IPv6:]>");
}

Test(smtp_address, ipv6_literal_needs_tag)
{
    expect_syntax("<user@[2001:db8::1]>");
}

Test(smtp_address, general_literal_rejected)
{
    /* A General-address-literal needs a Standardized-tag registered
     * with IANA, and the parser knows only IPv6, the one RFC 5321
     * defines. */
    expect_syntax("<user@[x-tag:abc]>");
    expect_syntax("<user@[tag:192.0.2.1]>");
}

Test(smtp_address, null_path)
{
    struct smtp_path path;
    size_t end = 0;

    cr_assert_eq(smtp_path_parse("<> SIZE=1", 9, false, &path, &end),
                 SMTP_PATH_OK);
    cr_expect(path.is_null, "<> sets is_null");
    cr_expect_str_eq(path.address, "");
    cr_expect_eq(end, 2);
    expect_syntax("< >");
}

Test(smtp_address, postmaster_without_domain)
{
    struct smtp_path path;
    size_t end = 0;

    cr_assert_eq(smtp_path_parse("<POSTMASTER>", 12, false, &path, &end),
                 SMTP_PATH_OK);
    cr_expect(path.is_postmaster, "<POSTMASTER> sets is_postmaster");
    cr_expect_str_eq(path.address, "POSTMASTER", "case is kept");
    cr_expect_str_eq(path.domain, "");
    expect_syntax("<webmaster>");
    expect_syntax("<\"postmaster\">");
}

Test(smtp_address, source_route_ignored)
{
    expect_ok("<@a.example,@b.example:user@c.example>", "user@c.example");
    expect_ok("<@a.example:\"q u\"@[192.0.2.1]>", "\"q u\"@[192.0.2.1]");
}

Test(smtp_address, source_route_malformed)
{
    expect_syntax("<@a.example:@b.example:user@c.example>");
    expect_syntax("<@a.example,b.example:user@c.example>");
    expect_syntax("<@a.example>");
    expect_syntax("<@a.example:>");
    expect_syntax("<@[192.0.2.1]:user@c.example>");
}

Test(smtp_address, case_kept)
{
    struct smtp_path path;
    size_t end = 0;
    const char *text = "<John.DOE@Mail.Example.COM>";

    cr_assert_eq(smtp_path_parse(text, strlen(text), false, &path, &end),
                 SMTP_PATH_OK);
    cr_expect_str_eq(path.address, "John.DOE@Mail.Example.COM");
    cr_expect_str_eq(path.domain, "Mail.Example.COM");
}

Test(smtp_address, local_part_64_octets)
{
    char local[70];
    char text[100];

    memset(local, 'l', 64);
    local[64] = '\0';
    snprintf(text, sizeof(text), "<%s@x.example>", local);
    expect_path(text, false, SMTP_PATH_OK, NULL);

    /* The quotes count toward the 64 octets. */
    local[0] = '"';
    local[63] = '"';
    snprintf(text, sizeof(text), "<%s@x.example>", local);
    expect_path(text, false, SMTP_PATH_OK, NULL);
}

Test(smtp_address, local_part_65_octets)
{
    char local[70];
    char text[100];

    memset(local, 'l', 65);
    local[65] = '\0';
    snprintf(text, sizeof(text), "<%s@x.example>", local);
    expect_path(text, false, SMTP_PATH_TOO_LONG, NULL);

    local[0] = '"';
    local[64] = '"';
    snprintf(text, sizeof(text), "<%s@x.example>", local);
    expect_path(text, false, SMTP_PATH_TOO_LONG, NULL);
}

/* make_domain writes a domain of len octets, made of 62-octet labels
 * joined by dots and a last label of up to 63 octets. */
static void make_domain(char *out, size_t len)
{
    size_t pos = 0;

    while (pos < len) {
        size_t label = len - pos < 63 ? len - pos : 63;

        memset(out + pos, 'd', label);
        pos += label;
        if (pos < len) {
            out[pos - 1] = '.';
        }
    }
    out[len] = '\0';
}

Test(smtp_address, domain_255_octets)
{
    char domain[300];

    make_domain(domain, 255);
    cr_assert_eq(strlen(domain), 255);
    cr_expect(smtp_domain_valid(domain, 255, false),
              "a 255-octet domain is valid");
    make_domain(domain, 256);
    cr_expect(!smtp_domain_valid(domain, 256, false),
              "a 256-octet domain is invalid");
}

Test(smtp_address, domain_label_63_octets)
{
    char text[100];
    char label[70];

    memset(label, 'b', 63);
    label[63] = '\0';
    snprintf(text, sizeof(text), "<a@%s.example>", label);
    expect_path(text, false, SMTP_PATH_OK, NULL);
    strcat(label, "b");
    snprintf(text, sizeof(text), "<a@%s.example>", label);
    expect_path(text, false, SMTP_PATH_TOO_LONG, NULL);
}

Test(smtp_address, path_256_octets)
{
    char text[400];
    char domain[300];

    /* "<a@" + domain + ">" is 4 octets around the domain. */
    make_domain(domain, 252);
    snprintf(text, sizeof(text), "<a@%s>", domain);
    cr_assert_eq(strlen(text), 256);
    expect_path(text, false, SMTP_PATH_OK, NULL);

    make_domain(domain, 253);
    snprintf(text, sizeof(text), "<a@%s>", domain);
    cr_assert_eq(strlen(text), 257);
    expect_path(text, false, SMTP_PATH_TOO_LONG, NULL);
}

Test(smtp_address, path_limit_counts_source_route)
{
    char text[400];
    char domain[300];

    /* The mailbox alone is short, but the whole path is 257 octets. */
    make_domain(domain, 242);
    snprintf(text, sizeof(text), "<@%s:a@b.example>", domain);
    cr_assert_eq(strlen(text), 257);
    expect_path(text, false, SMTP_PATH_TOO_LONG, NULL);
}

Test(smtp_address, utf8_needs_smtputf8)
{
    expect_path("<j\xc3\xb6rg@example.com>", false, SMTP_PATH_8BIT, NULL);
    expect_path("<u@m\xc3\xbcnchen.example>", false, SMTP_PATH_8BIT, NULL);
    expect_path("<\"j\xc3\xb6 rg\"@example.com>", false, SMTP_PATH_8BIT,
                NULL);
}

Test(smtp_address, utf8_with_smtputf8)
{
    expect_path("<j\xc3\xb6rg@example.com>", true, SMTP_PATH_OK,
                "j\xc3\xb6rg@example.com");
    expect_path("<u@m\xc3\xbcnchen.example>", true, SMTP_PATH_OK,
                "u@m\xc3\xbcnchen.example");
    expect_path("<\"j\xc3\xb6 rg\"@example.com>", true, SMTP_PATH_OK,
                "\"j\xc3\xb6 rg\"@example.com");
    expect_path("<\xe2\x82\xac\xf0\x9f\x93\xa7@example.com>", true,
                SMTP_PATH_OK, "\xe2\x82\xac\xf0\x9f\x93\xa7@example.com");
}

Test(smtp_address, utf8_malformed)
{
    /* RFC 3629: no overlong forms, surrogates, or truncated sequences. */
    expect_path("<\xc0\xafx@example.com>", true, SMTP_PATH_SYNTAX, NULL);
    expect_path("<\xed\xa0\x80@example.com>", true, SMTP_PATH_SYNTAX, NULL);
    expect_path("<\xe2\x82@example.com>", true, SMTP_PATH_SYNTAX, NULL);
    expect_path("<\xf5\x80\x80\x80@example.com>", true, SMTP_PATH_SYNTAX,
                NULL);
    expect_path("<\xff@example.com>", true, SMTP_PATH_SYNTAX, NULL);
}

/* RFC 6531 allows UTF-8 in atoms, quoted text and labels only, so with
 * SMTPUTF8 on, UTF-8 elsewhere is a syntax error, not SMTP_PATH_8BIT. */
Test(smtp_address, utf8_not_in_literal)
{
    expect_path("<u@[192.0.2.\xc3\xa9]>", true, SMTP_PATH_SYNTAX, NULL);
    expect_path("<u@[192.0.2.\xc3\xa9]>", false, SMTP_PATH_8BIT, NULL);
}

Test(smtp_address, utf8_not_in_quoted_pair)
{
    expect_path("<\"a\\\xc3\xa9\"@example.com>", true, SMTP_PATH_SYNTAX,
                NULL);
    expect_path("<\"a\\\xc3\xa9\"@example.com>", false, SMTP_PATH_8BIT,
                NULL);
}

Test(smtp_address, ehlo_domain_literals)
{
    cr_expect(smtp_domain_valid("[192.0.2.1]", 11, false));
    cr_expect(smtp_domain_valid("[IPv6:2001:db8::1]", 18, false));
    cr_expect(!smtp_domain_valid("[300.1.1.1]", 11, false));
    cr_expect(!smtp_domain_valid("[IPv6:zz]", 9, false));
    cr_expect(!smtp_domain_valid("[x-tag:abc]", 11, false));
}

Test(smtp_address, ipv6_literal_compressed_groups)
{
    /* RFC 5321 section 4.1.3: "::" is at least two zero groups, so at
     * most 6 groups, or 4 before an IPv4 tail, may stand beside it. */
    expect_ok("<u@[IPv6:1:2:3:4:5:6::]>", "u@[IPv6:1:2:3:4:5:6::]");
    expect_ok("<u@[IPv6:1:2:3::4:5:6]>", "u@[IPv6:1:2:3::4:5:6]");
    expect_ok("<u@[IPv6:1:2:3:4::192.0.2.1]>",
              "u@[IPv6:1:2:3:4::192.0.2.1]");
    expect_syntax("<u@[IPv6:1:2:3:4:5:6:7::]>");
    expect_syntax("<u@[IPv6:::2:3:4:5:6:7:8]>");
    expect_syntax("<u@[IPv6:1:2:3:4::5:6:7]>");
    expect_syntax("<u@[IPv6:1:2:3:4:5::192.0.2.1]>");
}
