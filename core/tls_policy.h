/* Outbound TLS policy: how much TLS the relay demands of a next hop.
 *
 * none: never STARTTLS. may: STARTTLS when offered, plaintext when it is
 * not offered or fails, certificate unchecked. encrypt: STARTTLS
 * required, certificate unchecked. verify: STARTTLS required, chain
 * checked against the CA file and the name against the host the relay
 * connected to. dane: TLSA records of the MX host (DNSSEC-validated)
 * decide, as RFC 7672 says; without usable records it falls back to
 * may or encrypt. */
#ifndef RINGRELAY_CORE_TLS_POLICY_H
#define RINGRELAY_CORE_TLS_POLICY_H

enum tls_policy {
    TLS_POLICY_NONE,
    TLS_POLICY_MAY,
    TLS_POLICY_ENCRYPT,
    TLS_POLICY_VERIFY,
    TLS_POLICY_DANE,
};

/* tls_policy_parse reads a policy name ("none", "may", "encrypt",
 * "verify", "dane"; lower case). Returns 0, or -1 for any other text. */
int tls_policy_parse(const char *text, enum tls_policy *policy);

/* tls_policy_name returns the name that tls_policy_parse reads. */
const char *tls_policy_name(enum tls_policy policy);

#endif
