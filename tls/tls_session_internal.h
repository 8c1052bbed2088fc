/* Access to a session's internals for the other tls/ files (DANE
 * matching reads the peer chain, the client cache the expected name);
 * nothing outside tls/ includes this. */
#ifndef RINGRELAY_TLS_TLS_SESSION_INTERNAL_H
#define RINGRELAY_TLS_TLS_SESSION_INTERNAL_H

#include <openssl/ssl.h>

#include "tls/tls_session.h"

SSL *tls_session_ssl(const struct tls_session *session);

/* tls_session_expected_host returns a client's server_name, or NULL. */
const char *tls_session_expected_host(const struct tls_session *session);

#endif
