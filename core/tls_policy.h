/* Outbound TLS policy: how much TLS the relay demands of a next hop.
 *
 * none: never STARTTLS. may: STARTTLS when offered, plaintext when it is
 * not offered or fails, certificate unchecked. encrypt: STARTTLS
 * required, certificate unchecked. verify: STARTTLS required, chain
 * checked against the CA file and the name against the host the relay
 * connected to. dane: TLSA records of the MX host (DNSSEC-validated)
 * decide, as RFC 7672 specifies; without usable records it falls back to
 * may or encrypt. */
#ifndef RINGRELAY_CORE_TLS_POLICY_H
#define RINGRELAY_CORE_TLS_POLICY_H

#include <stdbool.h>

enum tls_policy {
    TLS_POLICY_NONE,
    TLS_POLICY_MAY,
    TLS_POLICY_ENCRYPT,
    TLS_POLICY_VERIFY,
    TLS_POLICY_DANE,
};

/* tls_policy_tlsa: what the TLSA lookup of one MX host found, in the
 * cases that RFC 7672 (SMTP with DANE) distinguishes. */
enum tls_policy_tlsa {
    TLS_POLICY_TLSA_FAILED,       /* the lookup failed (SERVFAIL, timeout) */
    TLS_POLICY_TLSA_INSECURE,     /* no records, or an answer without the
                                   * AD bit */
    TLS_POLICY_TLSA_UNUSABLE,     /* authentic records, none usable
                                   * (tls_dane_usable() false for each, or
                                   * all too malformed to keep) */
    TLS_POLICY_TLSA_USABLE,       /* authentic records, at least one
                                   * usable */
};

/* tls_policy_for_host turns the configured policy into the one that
 * applies to one MX host once its TLSA lookup is done: "dane" becomes
 * "may" for an insecure or missing TLSA set, "encrypt" for a set with no
 * usable record, and stays "dane" with usable records. Other policies
 * are returned as they are, and tlsa is ignored for them. Returns 0, or
 * -1 for "dane" when the lookup failed: RFC 7672 then treats the host as
 * unreachable, so the caller tries the next one or defers. */
int tls_policy_for_host(enum tls_policy policy, enum tls_policy_tlsa tlsa,
                        enum tls_policy *out);

/* tls_policy_requires_tls is true for the policies under which a
 * message must not go out in plaintext: encrypt, verify and dane. */
bool tls_policy_requires_tls(enum tls_policy policy);

/* tls_policy_parse reads a policy name ("none", "may", "encrypt",
 * "verify", "dane"; lower case). Returns 0, or -1 for any other text. */
int tls_policy_parse(const char *text, enum tls_policy *policy);

/* tls_policy_name returns the name that tls_policy_parse reads. */
const char *tls_policy_name(enum tls_policy policy);

#endif
