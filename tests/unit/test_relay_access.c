/* Which relay_networks entries count as trusting everyone. */
#include <criterion/criterion.h>

#include "core/netaddr.h"
#include "core/relay_access.h"

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
