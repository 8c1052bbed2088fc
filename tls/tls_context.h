/* TLS context: the settings, certificates and session caches that every
 * TLS session made from it shares.
 *
 * A context is reference-counted: each tls_session holds a reference, so
 * a context replaced by a reload lives until its last session ends. A
 * context serves one role. A server context needs a certificate chain
 * and key (PEM files) and may hold more certificates picked by the SNI
 * host name the client sends. A client context has no certificate of
 * its own and may hold a CA file: its sessions then check the server's
 * chain against that file and its name against the one the session
 * expects, and the caller reads the result after the handshake
 * (tls_session_verify_peer), so one context serves every outbound
 * policy. A client context keeps the latest session of each server
 * name (up to 1024 names), and a later session with that server_name
 * offers it for resumption.
 *
 * Resumption: a server context issues session tickets (BoringSSL's
 * default, with keys that BoringSSL makes at random and rotates) and
 * keeps a server-side session cache for TLS 1.2 clients without ticket
 * support. Both are per context, so sessions from before a reload cannot
 * resume after it. */
#ifndef RINGRELAY_TLS_TLS_CONTEXT_H
#define RINGRELAY_TLS_TLS_CONTEXT_H

#include <stddef.h>

struct tls_context;

enum tls_role {
    TLS_ROLE_SERVER,
    TLS_ROLE_CLIENT,
};

/* The lowest protocol version a context accepts. TLS 1.3 is the highest
 * either way. */
enum tls_version {
    TLS_VERSION_1_2,
    TLS_VERSION_1_3,
};

/* One certificate chosen by SNI. host is a host name matched without
 * regard to case, or "*.example.com", which matches one label in front
 * of example.com. */
struct tls_sni_certificate {
    const char *host;
    const char *cert_file;        /* PEM chain, leaf first */
    const char *key_file;         /* PEM private key */
};

struct tls_context_options {
    enum tls_role role;
    enum tls_version min_version;
    const char *ciphers;          /* TLS 1.2 cipher list in OpenSSL
                                   * syntax; NULL for BoringSSL's default.
                                   * TLS 1.3 suites are not
                                   * configurable in BoringSSL. */
    const char *cert_file;        /* server: PEM chain, leaf first */
    const char *key_file;         /* server: PEM private key */
    const char *ca_file;          /* client: PEM CA bundle to verify
                                   * servers against; NULL for none */
    const struct tls_sni_certificate *sni;
    size_t sni_count;
};

/* tls_context_new builds a context from opts, reading every file now.
 * Returns 0, or -1 after writing a message that names the file and the
 * reason into err[0..err_size). */
int tls_context_new(struct tls_context **out,
                    const struct tls_context_options *opts, char *err,
                    size_t err_size);

/* tls_context_ref adds a reference and returns ctx. */
struct tls_context *tls_context_ref(struct tls_context *ctx);

/* tls_context_unref drops a reference and frees the context with the
 * last one; NULL is accepted. */
void tls_context_unref(struct tls_context *ctx);

/* tls_version_parse reads "1.2" or "1.3". Returns 0, or -1 for any other
 * text. */
int tls_version_parse(const char *text, enum tls_version *version);

/* tls_context_separate_sni_sessions gives every SNI certificate of a
 * server context a session ID context of its own, so that a TLS 1.2
 * session resumes only under the certificate that issued it. Call it
 * once after tls_context_new(). Returns 0, or -1 when BoringSSL rejects
 * the value. */
int tls_context_separate_sni_sessions(struct tls_context *ctx);

#endif
