#include "tls/tls_dane.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls/tls_session_internal.h"

bool tls_dane_usable(const struct tls_dane_record *r)
{
    if (r->usage != TLS_DANE_TA && r->usage != TLS_DANE_EE) {
        return false;
    }
    if (r->selector != TLS_DANE_CERT && r->selector != TLS_DANE_SPKI) {
        return false;
    }
    switch (r->matching) {
    case TLS_DANE_FULL:
        return r->data_len > 0;
    case TLS_DANE_SHA256:
        return r->data_len == SHA256_DIGEST_LENGTH;
    case TLS_DANE_SHA512:
        return r->data_len == SHA512_DIGEST_LENGTH;
    default:
        return false;
    }
}

/* tls_dane_matches encodes cert as r's selector asks, hashes it as its
 * matching type asks and compares the result with r's data. */
static bool tls_dane_matches(const struct tls_dane_record *r, X509 *cert)
{
    uint8_t *der = NULL;
    uint8_t digest[SHA512_DIGEST_LENGTH];
    const uint8_t *value;
    size_t value_len;
    bool matched = false;
    int len;

    if (r->selector == TLS_DANE_CERT) {
        len = i2d_X509(cert, &der);
    } else {
        len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    }
    if (len <= 0) {
        ERR_clear_error();
        return false;
    }
    value = der;
    value_len = (size_t)len;
    if (r->matching == TLS_DANE_SHA256) {
        SHA256(der, value_len, digest);
        value = digest;
        value_len = SHA256_DIGEST_LENGTH;
    } else if (r->matching == TLS_DANE_SHA512) {
        SHA512(der, value_len, digest);
        value = digest;
        value_len = SHA512_DIGEST_LENGTH;
    }
    matched = value_len == r->data_len &&
              memcmp(value, r->data, value_len) == 0;
    OPENSSL_free(der);
    return matched;
}

/* tls_dane_chain_to checks that leaf chains to anchor through the
 * certificates the server sent and names host. The anchor need not be
 * self-signed, so partial chains are allowed. Returns X509_V_OK or the
 * verification error. */
static long tls_dane_chain_to(X509 *anchor, X509 *leaf,
                              STACK_OF(X509) *sent, const char *host)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_VERIFY_PARAM *param;
    long result = X509_V_ERR_OUT_OF_MEM;

    if (store == NULL || ctx == NULL || X509_STORE_add_cert(store, anchor) !=
        1 || X509_STORE_CTX_init(ctx, store, leaf, sent) != 1) {
        goto done;
    }
    param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_VERIFY_PARAM_set1_host(param, host, strlen(host)) != 1) {
        goto done;
    }
    if (X509_verify_cert(ctx) == 1) {
        result = X509_V_OK;
    } else {
        result = X509_STORE_CTX_get_error(ctx);
    }

done:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return result;
}

/* tls_dane_try_ta looks for a certificate in the chain that r names as
 * trust anchor and checks the leaf against it. Returns X509_V_OK, the
 * chain error, or -1 when no certificate matched r. */
static long tls_dane_try_ta(const struct tls_dane_record *r,
                            STACK_OF(X509) *chain, const char *host)
{
    X509 *leaf = sk_X509_value(chain, 0);
    long last = -1;

    for (size_t i = 0; i < sk_X509_num(chain); i++) {
        X509 *cert = sk_X509_value(chain, i);

        if (!tls_dane_matches(r, cert)) {
            continue;
        }
        last = tls_dane_chain_to(cert, leaf, chain, host);
        if (last == X509_V_OK) {
            return X509_V_OK;
        }
    }
    return last;
}

int tls_dane_check(const struct tls_session *session, const char *host,
                   const struct tls_dane_record *records, size_t count,
                   char *err, size_t err_size)
{
    STACK_OF(X509) *chain = SSL_get_peer_full_cert_chain(
        tls_session_ssl(session));
    size_t usable = 0;
    long ta_error = -1;

    for (size_t i = 0; i < count; i++) {
        if (tls_dane_usable(&records[i])) {
            usable++;
        }
    }
    if (usable == 0) {
        return TLS_DANE_NO_USABLE;
    }
    if (chain == NULL || sk_X509_num(chain) == 0) {
        snprintf(err, err_size, "DANE: server %s sent no certificate",
                 host);
        return TLS_DANE_FAILED;
    }
    for (size_t i = 0; i < count; i++) {
        const struct tls_dane_record *r = &records[i];
        long result;

        if (!tls_dane_usable(r)) {
            continue;
        }
        if (r->usage == TLS_DANE_EE) {
            if (tls_dane_matches(r, sk_X509_value(chain, 0))) {
                return TLS_DANE_MATCHED;
            }
            continue;
        }
        result = tls_dane_try_ta(r, chain, host);
        if (result == X509_V_OK) {
            return TLS_DANE_MATCHED;
        }
        if (result != -1) {
            ta_error = result;
        }
    }
    if (ta_error != -1) {
        snprintf(err, err_size, "DANE: a trust anchor of %s matched but "
                 "the chain failed: %s", host,
                 X509_verify_cert_error_string(ta_error));
    } else {
        snprintf(err, err_size, "DANE: no certificate of %s matches its "
                 "%zu usable TLSA records", host, usable);
    }
    return TLS_DANE_FAILED;
}
