#include "tls/tls_library.h"

#include <openssl/crypto.h>

const char *tls_library_version(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}
