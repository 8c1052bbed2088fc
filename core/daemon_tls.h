/* The daemon's inbound TLS context: built from the configuration at
 * start and by `ringrelay -t`, and rebuilt from the same files on
 * SIGHUP. */
#ifndef RINGRELAY_CORE_DAEMON_TLS_H
#define RINGRELAY_CORE_DAEMON_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct daemon;
struct tls_context;

/* daemon_tls_build reads the certificate and key files that config
 * names into a server context. Returns 0 with *out NULL when TLS is not
 * configured, 0 with a new context, or -1 after writing a message that
 * names the file and the reason into err[0..err_size). */
int daemon_tls_build(const struct config *config, struct tls_context **out,
                     char *err, size_t err_size);

/* daemon_tls_warn_dates warns about each certificate in config (tls_cert
 * and the tls_sni ones) that has expired or is not yet valid: on stderr
 * when print is set (ringrelay -t), else as event=tls-cert-warning log
 * lines. Such a certificate is still loaded and served. */
void daemon_tls_warn_dates(const struct config *config, bool print);

/* daemon_tls_reload rebuilds daemon->tls from the files again. New
 * sessions use the new context and open sessions keep the one they
 * started with. On failure the old context stays. Logs the outcome. */
void daemon_tls_reload(struct daemon *daemon);

#endif
