/* Which relay_networks entries count as trusting everyone. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/netaddr.h"
#include "core/relay_access.h"
#include "proto/smtp_address.h"

static bool too_wide(const char *text)
{
    struct netaddr_cidr net;

    cr_assert_eq(netaddr_parse_cidr(text, &net), 0, "parse %s", text);
    return relay_access_network_too_wide(&net);
}

Test(relay_access, ipv4_everyone)
{
    cr_assert(too_wide("0.0.0.0/0"));
    cr_assert(too_wide("128.0.0.0/1"));
    cr_assert(too_wide("10.0.0.0/7"));
}

Test(relay_access, ipv4_own_networks)
{
    cr_assert_not(too_wide("10.0.0.0/8"));
    cr_assert_not(too_wide("192.168.0.0/16"));
    cr_assert_not(too_wide("127.0.0.1/32"));
}

Test(relay_access, ipv6_everyone)
{
    cr_assert(too_wide("::/0"));
    cr_assert(too_wide("2000::/3"));
    cr_assert(too_wide("2001::/15"));
}

Test(relay_access, ipv6_own_networks)
{
    cr_assert_not(too_wide("2001:db8::/32"));
    cr_assert_not(too_wide("fd00::/16"));
    cr_assert_not(too_wide("::1/128"));
}

Test(relay_access, ipv4_mapped_ranges)
{
    /* These also match IPv4 clients, as ::ffff:a.b.c.d. */
    cr_assert(too_wide("::/80"));
    cr_assert(too_wide("::ffff:0:0/96"));
    cr_assert(too_wide("::ffff:0.0.0.0/100"));
    cr_assert_not(too_wide("::ffff:10.0.0.0/104"));
    cr_assert_not(too_wide("::ffff:127.0.0.1/128"));
    cr_assert_not(too_wide("::/96"));
}

static bool owned(const char *user, const char *path_text)
{
    struct smtp_path path;
    size_t end = 0;

    cr_assert_eq(smtp_path_parse(path_text, strlen(path_text), true, &path,
                                 &end), SMTP_PATH_OK, "parse %s",
                 path_text);
    return relay_access_sender_owned(user, &path);
}

Test(relay_access, sender_of_user_with_domain)
{
    cr_assert(owned("alice@example.com", "<alice@example.com>"));
    cr_assert(owned("alice@example.com", "<alice@EXAMPLE.com>"));
    cr_assert(owned("alice@example.com", "<>"));
    cr_assert_not(owned("alice@example.com", "<Alice@example.com>"));
    cr_assert_not(owned("alice@example.com", "<alice@example.org>"));
    cr_assert_not(owned("alice@example.com", "<bob@example.com>"));
    cr_assert_not(owned("alice@example.com", "<alic@example.com>"));
}

Test(relay_access, sender_of_bare_user)
{
    cr_assert(owned("alice", "<alice@example.com>"));
    cr_assert(owned("alice", "<alice@example.org>"));
    cr_assert_not(owned("alice", "<alice2@example.com>"));
    cr_assert_not(owned("alice", "<bob@example.com>"));
    cr_assert_not(owned("alice", "<postmaster>"));
}
