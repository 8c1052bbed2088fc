/* The outbound TLS policy names and the policy that RFC 7672's TLSA
 * cases give one MX host. */
#include <criterion/criterion.h>

#include "core/tls_policy.h"

Test(tls_policy, names_round_trip)
{
    static const char *const names[] = {"none", "may", "encrypt", "verify",
                                        "dane"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        enum tls_policy policy;

        cr_assert_eq(tls_policy_parse(names[i], &policy), 0, "%s",
                     names[i]);
        cr_expect_str_eq(tls_policy_name(policy), names[i]);
    }
}

Test(tls_policy, parse_rejects_others)
{
    enum tls_policy policy = TLS_POLICY_MAY;

    cr_expect_eq(tls_policy_parse("Dane", &policy), -1);
    cr_expect_eq(tls_policy_parse("", &policy), -1);
    cr_expect_eq(tls_policy_parse("secure", &policy), -1);
    cr_expect_eq(policy, TLS_POLICY_MAY);
    cr_expect_str_eq(tls_policy_name((enum tls_policy)99), "unknown");
}

Test(tls_policy, dane_by_tlsa_result)
{
    enum tls_policy out = TLS_POLICY_NONE;

    cr_expect_eq(tls_policy_for_host(TLS_POLICY_DANE,
                                     TLS_POLICY_TLSA_FAILED, &out), -1);
    cr_expect_eq(tls_policy_for_host(TLS_POLICY_DANE,
                                     TLS_POLICY_TLSA_INSECURE, &out), 0);
    cr_expect_eq(out, TLS_POLICY_MAY);
    cr_expect_eq(tls_policy_for_host(TLS_POLICY_DANE,
                                     TLS_POLICY_TLSA_UNUSABLE, &out), 0);
    cr_expect_eq(out, TLS_POLICY_ENCRYPT);
    cr_expect_eq(tls_policy_for_host(TLS_POLICY_DANE,
                                     TLS_POLICY_TLSA_USABLE, &out), 0);
    cr_expect_eq(out, TLS_POLICY_DANE);
}

Test(tls_policy, others_ignore_tlsa)
{
    enum tls_policy out;

    cr_expect_eq(tls_policy_for_host(TLS_POLICY_VERIFY,
                                     TLS_POLICY_TLSA_FAILED, &out), 0);
    cr_expect_eq(out, TLS_POLICY_VERIFY);
    cr_expect_eq(tls_policy_for_host(TLS_POLICY_NONE,
                                     TLS_POLICY_TLSA_USABLE, &out), 0);
    cr_expect_eq(out, TLS_POLICY_NONE);
}

Test(tls_policy, requires_tls)
{
    cr_expect_not(tls_policy_requires_tls(TLS_POLICY_NONE));
    cr_expect_not(tls_policy_requires_tls(TLS_POLICY_MAY));
    cr_expect(tls_policy_requires_tls(TLS_POLICY_ENCRYPT));
    cr_expect(tls_policy_requires_tls(TLS_POLICY_VERIFY));
    cr_expect(tls_policy_requires_tls(TLS_POLICY_DANE));
}
