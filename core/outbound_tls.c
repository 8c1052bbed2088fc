#include "core/outbound_tls.h"

#include <stdio.h>

#include "core/config.h"
#include "core/log.h"
#include "tls/tls_context.h"
#include "tls/tls_dane.h"
#include "tls/tls_session.h"

struct tls_context *outbound_tls_context(const struct config *config)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_CLIENT,
        .min_version = TLS_VERSION_1_2,
        .ca_file = config->outbound_tls_ca_file,
    };
    struct tls_context *ctx = NULL;
    char err[512];

    if (tls_context_new(&ctx, &opts, err, sizeof(err)) == 0) {
        return ctx;
    }
    log_warning("event=tls-outbound-ca-missing file=%s error=\"%s\" "
                "effect=\"next hops under the verify policy are deferred\"",
                config->outbound_tls_ca_file, err);
    opts.ca_file = NULL;
    if (tls_context_new(&ctx, &opts, err, sizeof(err)) == 0) {
        return ctx;
    }
    log_error("event=tls-outbound-unavailable error=\"%s\"", err);
    return NULL;
}

static void outbound_tls_record(const struct dns_tlsa_record *in,
                                struct tls_dane_record *out)
{
    *out = (struct tls_dane_record){
        .usage = in->usage,
        .selector = in->selector,
        .matching = in->matching_type,
        .data = in->data,
        .data_len = in->data_len,
    };
}

enum tls_policy_tlsa outbound_tls_classify(
    const struct dns_tlsa_result *result)
{
    size_t usable = 0;

    if (result->status == DNS_TEMPFAIL) {
        return TLS_POLICY_TLSA_FAILED;
    }
    if (result->status != DNS_OK || !result->authenticated) {
        return TLS_POLICY_TLSA_INSECURE;
    }
    for (size_t i = 0; i < result->count; i++) {
        struct tls_dane_record record;

        outbound_tls_record(&result->records[i], &record);
        if (tls_dane_usable(&record)) {
            usable++;
        }
    }
    return usable > 0 ? TLS_POLICY_TLSA_USABLE : TLS_POLICY_TLSA_UNUSABLE;
}

enum smtp_client_tls outbound_tls_mode(enum tls_policy policy)
{
    if (policy == TLS_POLICY_NONE) {
        return SMTP_CLIENT_TLS_OFF;
    }
    return tls_policy_requires_tls(policy) ? SMTP_CLIENT_TLS_REQUIRE
                                           : SMTP_CLIENT_TLS_TRY;
}

int outbound_tls_check_peer(const struct tls_session *session,
                            enum tls_policy policy, const char *host,
                            const struct dns_tlsa_result *tlsa, char *err,
                            size_t err_size)
{
    struct tls_dane_record records[DNS_MAX_TLSA_RECORDS];
    size_t count = 0;

    if (policy == TLS_POLICY_VERIFY) {
        return tls_session_verify_peer(session, err, err_size);
    }
    if (policy != TLS_POLICY_DANE) {
        return 0;
    }
    if (tlsa == NULL) {
        snprintf(err, err_size, "no TLSA records of %s are at hand", host);
        return -1;
    }
    for (size_t i = 0; i < tlsa->count && i < DNS_MAX_TLSA_RECORDS; i++) {
        outbound_tls_record(&tlsa->records[i], &records[count++]);
    }
    if (tls_dane_check(session, host, records, count, err, err_size) !=
        TLS_DANE_MATCHED) {
        return -1;
    }
    return 0;
}
