/* Facts about the TLS library the daemon is linked with. */
#ifndef RINGRELAY_TLS_TLS_LIBRARY_H
#define RINGRELAY_TLS_TLS_LIBRARY_H

/* tls_library_version returns the linked library's version text. */
const char *tls_library_version(void);

#endif
