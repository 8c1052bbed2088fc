#include "core/tls_policy.h"

#include <stddef.h>
#include <string.h>

static const char *const tls_policy_names[] = {
    [TLS_POLICY_NONE] = "none",
    [TLS_POLICY_MAY] = "may",
    [TLS_POLICY_ENCRYPT] = "encrypt",
    [TLS_POLICY_VERIFY] = "verify",
    [TLS_POLICY_DANE] = "dane",
};

#define TLS_POLICY_COUNT (sizeof(tls_policy_names) / \
                          sizeof(tls_policy_names[0]))

int tls_policy_parse(const char *text, enum tls_policy *policy)
{
    for (size_t i = 0; i < TLS_POLICY_COUNT; i++) {
        if (strcmp(text, tls_policy_names[i]) == 0) {
            *policy = (enum tls_policy)i;
            return 0;
        }
    }
    return -1;
}

const char *tls_policy_name(enum tls_policy policy)
{
    if ((size_t)policy >= TLS_POLICY_COUNT) {
        return "unknown";
    }
    return tls_policy_names[policy];
}

int tls_policy_for_host(enum tls_policy policy, enum tls_policy_tlsa tlsa,
                        enum tls_policy *out)
{
    *out = policy;
    if (policy != TLS_POLICY_DANE) {
        return 0;
    }
    switch (tlsa) {
    case TLS_POLICY_TLSA_FAILED:
        return -1;
    case TLS_POLICY_TLSA_INSECURE:
        *out = TLS_POLICY_MAY;
        return 0;
    case TLS_POLICY_TLSA_UNUSABLE:
        *out = TLS_POLICY_ENCRYPT;
        return 0;
    case TLS_POLICY_TLSA_USABLE:
        return 0;
    }
    return -1;
}

bool tls_policy_requires_tls(enum tls_policy policy)
{
    return policy == TLS_POLICY_ENCRYPT || policy == TLS_POLICY_VERIFY
           || policy == TLS_POLICY_DANE;
}
