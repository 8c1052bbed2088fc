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
