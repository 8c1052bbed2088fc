#include "core/daemon_tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/daemon.h"
#include "core/log.h"
#include "tls/tls_context.h"

int daemon_tls_build(const struct config *config, struct tls_context **out,
                     char *err, size_t err_size)
{
    struct tls_sni_certificate *sni = NULL;
    struct tls_context_options opts = {
        .role = TLS_ROLE_SERVER,
        .min_version = config->tls_min_version_1_3 ? TLS_VERSION_1_3
                                                   : TLS_VERSION_1_2,
        .ciphers = config->tls_ciphers,
        .cert_file = config->tls_cert,
        .key_file = config->tls_key,
        .sni_count = config->tls_sni_count,
    };
    int rc;

    *out = NULL;
    if (config->tls_cert == NULL) {
        return 0;
    }
    if (config->tls_sni_count > 0) {
        sni = calloc(config->tls_sni_count, sizeof(*sni));
        if (sni == NULL) {
            snprintf(err, err_size, "out of memory for the TLS context");
            return -1;
        }
    }
    for (size_t i = 0; i < config->tls_sni_count; i++) {
        sni[i].host = config->tls_sni[i].host;
        sni[i].cert_file = config->tls_sni[i].cert;
        sni[i].key_file = config->tls_sni[i].key;
    }
    opts.sni = sni;
    rc = tls_context_new(out, &opts, err, err_size);
    free(sni);
    return rc;
}

void daemon_tls_reload(struct daemon *daemon)
{
    struct tls_context *fresh;
    char err[512];
    char quoted[1100];
    char cert[600];

    if (daemon->config->tls_cert == NULL) {
        log_warning("event=reload-ignored signal=SIGHUP reason=\"only TLS "
                    "certificates and keys are reloaded, and no tls_cert is "
                    "configured; restart the daemon to apply configuration "
                    "changes\"");
        return;
    }
    if (daemon_tls_build(daemon->config, &fresh, err, sizeof(err)) < 0) {
        log_quote(quoted, sizeof(quoted), err, strlen(err));
        log_error("event=reload-failed tls=kept-old error=%s", quoted);
        return;
    }
    tls_context_unref(daemon->tls);
    daemon->tls = fresh;
    log_quote(cert, sizeof(cert), daemon->config->tls_cert,
              strlen(daemon->config->tls_cert));
    log_info("event=reload tls=reloaded cert=%s sni_certs=%zu "
             "reason=\"only TLS certificates and keys are reloaded; "
             "restart the daemon to apply other configuration changes\"",
             cert, daemon->config->tls_sni_count);
}
