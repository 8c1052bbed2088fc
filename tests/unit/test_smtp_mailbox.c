/* Tests for smtp_mailbox_split: a stored address split into local part
 * and domain or address literal, as the outbound side groups and sends
 * recipients. */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/smtp_address.h"

static void expect_split(const char *address, size_t local_len,
                         const char *domain, enum smtp_domain_kind kind)
{
    struct smtp_mailbox mailbox;

    cr_assert_eq(smtp_mailbox_split(address, false, &mailbox), SMTP_PATH_OK,
                 "%s: not accepted", address);
    cr_expect_eq(mailbox.local_len, local_len,
                 "%s: local part length %zu, expected %zu", address,
                 mailbox.local_len, local_len);
    cr_expect_str_eq(mailbox.domain, domain, "%s: domain", address);
    cr_expect_eq(mailbox.kind, kind, "%s: kind %d, expected %d", address,
                 (int)mailbox.kind, (int)kind);
}

static void expect_result(const char *address, bool utf8,
                          enum smtp_path_result want)
{
    struct smtp_mailbox mailbox;
    enum smtp_path_result got = smtp_mailbox_split(address, utf8, &mailbox);

    cr_expect_eq(got, want, "\"%s\": result %d, expected %d", address,
                 (int)got, (int)want);
}

Test(smtp_mailbox, plain_address)
{
    expect_split("user@example.com", 4, "example.com", SMTP_DOMAIN_NAME);
}

Test(smtp_mailbox, case_kept)
{
    expect_split("User.Name@Example.COM", 9, "Example.COM",
                 SMTP_DOMAIN_NAME);
}

Test(smtp_mailbox, quoted_local_part_with_at)
{
    expect_split("\"a@b\"@c.test", 5, "c.test", SMTP_DOMAIN_NAME);
    expect_split("\"x@y.test\"@c.test", 10, "c.test", SMTP_DOMAIN_NAME);
}

Test(smtp_mailbox, quoted_pair_before_at)
{
    /* The local part is "a\"@b": an escaped quote does not end it. */
    expect_split("\"a\\\"@b\"@c.test", 7, "c.test", SMTP_DOMAIN_NAME);
}

Test(smtp_mailbox, ipv4_literal)
{
    static const unsigned char want[4] = {192, 0, 2, 1};
    struct smtp_mailbox mailbox;

    expect_split("user@[192.0.2.1]", 4, "[192.0.2.1]", SMTP_DOMAIN_IPV4);
    cr_assert_eq(smtp_mailbox_split("user@[192.0.2.1]", false, &mailbox),
                 SMTP_PATH_OK);
    cr_expect_arr_eq(mailbox.ip, want, sizeof(want));
}

Test(smtp_mailbox, ipv4_literal_leading_zeros_are_decimal)
{
    static const unsigned char want[4] = {10, 0, 8, 1};
    struct smtp_mailbox mailbox;

    cr_assert_eq(smtp_mailbox_split("u@[010.000.008.001]", false, &mailbox),
                 SMTP_PATH_OK);
    cr_expect_arr_eq(mailbox.ip, want, sizeof(want));
}

Test(smtp_mailbox, ipv6_literal)
{
    static const unsigned char want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0,
                                           0,    0,    0,    0,    0, 0, 0,
                                           0,    1};
    struct smtp_mailbox mailbox;

    expect_split("user@[IPv6:2001:db8::1]", 4, "[IPv6:2001:db8::1]",
                 SMTP_DOMAIN_IPV6);
    cr_assert_eq(smtp_mailbox_split("user@[IPv6:2001:db8::1]", false,
                                    &mailbox),
                 SMTP_PATH_OK);
    cr_expect_arr_eq(mailbox.ip, want, sizeof(want));
}

Test(smtp_mailbox, ipv6_literal_tag_case_kept)
{
    expect_split("u@[ipv6:::1]", 1, "[ipv6:::1]", SMTP_DOMAIN_IPV6);
}

Test(smtp_mailbox, ipv6_literal_with_ipv4_tail)
{
    static const unsigned char want[16] = {0, 0, 0,    0,    0,   0, 0, 0,
                                           0, 0, 0xff, 0xff, 192, 0, 2, 1};
    struct smtp_mailbox mailbox;

    cr_assert_eq(smtp_mailbox_split("u@[IPv6:::ffff:192.0.2.1]", false,
                                    &mailbox),
                 SMTP_PATH_OK);
    cr_expect_eq(mailbox.kind, SMTP_DOMAIN_IPV6);
    cr_expect_arr_eq(mailbox.ip, want, sizeof(want));
}

Test(smtp_mailbox, quoted_local_part_at_literal)
{
    expect_split("\"a@b\"@[127.0.0.1]", 5, "[127.0.0.1]", SMTP_DOMAIN_IPV4);
}

Test(smtp_mailbox, bare_postmaster)
{
    expect_split("postmaster", 10, "", SMTP_DOMAIN_NONE);
    expect_split("PostMaster", 10, "", SMTP_DOMAIN_NONE);
}

Test(smtp_mailbox, local_part_without_domain)
{
    expect_result("user", false, SMTP_PATH_SYNTAX);
    expect_result("user@", false, SMTP_PATH_SYNTAX);
}

Test(smtp_mailbox, null_path_not_a_mailbox)
{
    expect_result("", false, SMTP_PATH_SYNTAX);
}

Test(smtp_mailbox, brackets_and_source_route_rejected)
{
    expect_result("<user@example.com>", false, SMTP_PATH_SYNTAX);
    expect_result("user@example.com>", false, SMTP_PATH_SYNTAX);
    expect_result("postmaster>", false, SMTP_PATH_SYNTAX);
    expect_result("@relay.test:user@example.com", false, SMTP_PATH_SYNTAX);
}

Test(smtp_mailbox, control_bytes_rejected)
{
    expect_result("x@example.com\r\nRSET", false, SMTP_PATH_SYNTAX);
    expect_result("\"a\r\nb\"@example.com", false, SMTP_PATH_SYNTAX);
    expect_result("a\tb@example.com", false, SMTP_PATH_SYNTAX);
}

Test(smtp_mailbox, unquoted_at_in_local_part)
{
    expect_result("a@b@c.test", false, SMTP_PATH_SYNTAX);
}

Test(smtp_mailbox, bad_literals)
{
    expect_result("u@[300.0.0.1]", false, SMTP_PATH_SYNTAX);
    expect_result("u@[192.0.2]", false, SMTP_PATH_SYNTAX);
    expect_result("u@[IPv6:zz::1]", false, SMTP_PATH_SYNTAX);
    expect_result("u@[tag:abc]", false, SMTP_PATH_SYNTAX);
    expect_result("u@[192.0.2.1]x", false, SMTP_PATH_SYNTAX);
}

Test(smtp_mailbox, utf8_needs_smtputf8)
{
    expect_result("jos\xc3\xa9@example.com", false, SMTP_PATH_8BIT);
    expect_result("jos\xc3\xa9@example.com", true, SMTP_PATH_OK);
    expect_result("jos\xc3@example.com", true, SMTP_PATH_SYNTAX);
}

Test(smtp_mailbox, path_limit_counts_brackets)
{
    /* A path has at most 256 octets with its brackets, so a stored
     * address may have 254: 64 + '@' + 189. */
    char address[300];

    memset(address, 'a', 64);
    address[64] = '@';
    memset(address + 65, 'b', 63);
    address[128] = '.';
    memset(address + 129, 'c', 63);
    address[192] = '.';
    memset(address + 193, 'd', 61);
    address[254] = '\0';
    expect_result(address, false, SMTP_PATH_OK);

    address[254] = 'd';
    address[255] = '\0';
    expect_result(address, false, SMTP_PATH_TOO_LONG);
}

Test(smtp_mailbox, local_part_limit)
{
    char address[80];

    memset(address, 'a', 65);
    strcpy(address + 65, "@example.com");
    expect_result(address, false, SMTP_PATH_TOO_LONG);
}
