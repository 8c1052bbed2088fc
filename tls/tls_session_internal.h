/* Access to a session's BoringSSL object for the other tls/ files
 * (DANE matching reads the peer chain); nothing outside tls/ includes
 * this. */
#ifndef RINGRELAY_TLS_TLS_SESSION_INTERNAL_H
#define RINGRELAY_TLS_TLS_SESSION_INTERNAL_H

#include <openssl/ssl.h>

#include "tls/tls_session.h"

SSL *tls_session_ssl(const struct tls_session *session);

#endif
