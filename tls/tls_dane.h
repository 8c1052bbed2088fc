/* DANE for SMTP (RFC 7672 over RFC 6698): match the certificate chain of
 * a finished client handshake against the MX host's TLSA records.
 *
 * Only DANE-TA(2) and DANE-EE(3) are usable for SMTP. PKIX-TA(0) and
 * PKIX-EE(1) records, unknown selectors or matching types, and digests
 * of the wrong length are ignored. A TLSA set with no usable record
 * leaves the session at plain "encrypt": the caller needs TLS but checks
 * no certificate. tls/ does no DNS, so the caller passes records that
 * came from a DNSSEC-validated (AD bit) answer. */
#ifndef RINGRELAY_TLS_TLS_DANE_H
#define RINGRELAY_TLS_TLS_DANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls/tls_session.h"

enum tls_dane_usage {
    TLS_DANE_PKIX_TA = 0,
    TLS_DANE_PKIX_EE = 1,
    TLS_DANE_TA = 2,
    TLS_DANE_EE = 3,
};

enum tls_dane_selector {
    TLS_DANE_CERT = 0,            /* the whole certificate, DER */
    TLS_DANE_SPKI = 1,            /* its SubjectPublicKeyInfo, DER */
};

enum tls_dane_matching {
    TLS_DANE_FULL = 0,            /* the DER bytes themselves */
    TLS_DANE_SHA256 = 1,
    TLS_DANE_SHA512 = 2,
};

/* One TLSA record's RDATA fields. data is borrowed. */
struct tls_dane_record {
    uint8_t usage;
    uint8_t selector;
    uint8_t matching;
    const uint8_t *data;
    size_t data_len;
};

enum tls_dane_result {
    TLS_DANE_MATCHED = 0,         /* a usable record matched */
    TLS_DANE_NO_USABLE = 1,       /* none usable: treat as "encrypt" */
    TLS_DANE_FAILED = -1,         /* usable records, none matched */
};

/* tls_dane_usable is true when RFC 7672 lets an SMTP client use r. */
bool tls_dane_usable(const struct tls_dane_record *r);

/* tls_dane_check matches the peer chain of the established client
 * session against records[0..count).
 *
 * DANE-EE matches the leaf certificate and ignores its names and
 * validity dates (RFC 7672 section 3.1.1). DANE-TA matches any
 * certificate the server sent; the leaf must then chain to that
 * certificate, be within its validity dates and name host, the MX host
 * name (RFC 7672 section 3.1.2).
 *
 * Returns a tls_dane_result. On TLS_DANE_FAILED err[0..err_size) says
 * why, naming host and the count of usable records.
 *
 * NOTE: DANE-TA matches only certificates the server sends, so a trust
 * anchor published as a bare public key (selector 1, matching type 0)
 * that the server leaves out of its chain does not match. The name check
 * takes one host. When CNAMEs make the TLSA base domain differ from the
 * MX host name, RFC 7672 accepts that name too, and the caller checks it
 * with a second call. */
int tls_dane_check(const struct tls_session *session, const char *host,
                   const struct tls_dane_record *records, size_t count,
                   char *err, size_t err_size);

#endif
