/* Outbound TLS: the client context and the checks that the outbound TLS
 * policies make of a next hop. The byte moving lives in outbound_conn.c.
 * Private to the outbound engine. */
#ifndef RINGRELAY_CORE_OUTBOUND_TLS_H
#define RINGRELAY_CORE_OUTBOUND_TLS_H

#include <stddef.h>

#include "core/tls_policy.h"
#include "dns/resolver.h"
#include "proto/smtp_client.h"

struct config;
struct tls_context;
struct tls_session;

/* outbound_tls_context builds the client context of config, with
 * outbound_tls_ca_file as its CA bundle. When that file cannot be read,
 * it logs the error and builds a context without one, whose sessions
 * fail every "verify" check. Returns NULL when even that fails, after
 * logging why. */
struct tls_context *outbound_tls_context(const struct config *config);

/* outbound_tls_classify sorts a TLSA lookup into the cases that
 * tls_policy_for_host() takes. */
enum tls_policy_tlsa outbound_tls_classify(
    const struct dns_tlsa_result *result);

/* outbound_tls_mode returns the STARTTLS mode of the SMTP client for
 * policy. */
enum smtp_client_tls outbound_tls_mode(enum tls_policy policy);

/* outbound_tls_check_peer checks the server of a finished handshake as
 * policy asks: nothing for may and encrypt, the chain and host name for
 * verify, a DANE match against tlsa for dane. Returns 0, or -1 after
 * writing why into err[0..err_size). */
int outbound_tls_check_peer(const struct tls_session *session,
                            enum tls_policy policy, const char *host,
                            const struct dns_tlsa_result *tlsa, char *err,
                            size_t err_size);

#endif
