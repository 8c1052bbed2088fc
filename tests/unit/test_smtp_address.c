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
