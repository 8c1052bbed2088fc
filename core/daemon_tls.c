#include "core/daemon_tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/config.h"
#include "core/daemon.h"
#include "core/log.h"
#include "tls/tls_context.h"

/* Returns true when the PEM file at path holds an encrypted private key
 * (PKCS #8 "ENCRYPTED PRIVATE KEY", or a traditional key with a
 * "Proc-Type: 4,ENCRYPTED" header). */
static bool key_file_encrypted(const char *path)
{
    FILE *file = fopen(path, "r");
    char line[256];
    bool encrypted = false;

    if (file == NULL) {
        return false;
    }
    while (!encrypted && fgets(line, sizeof(line), file) != NULL) {
        encrypted = strstr(line, "-----BEGIN ENCRYPTED PRIVATE KEY") !=
                        NULL ||
                    strncmp(line, "Proc-Type: 4,ENCRYPTED", 22) == 0;
    }
    fclose(file);
    return encrypted;
}

/* Returns true when err is about the key file key and that file is
 * encrypted. */
static bool error_is_encrypted_key(const char *err, const char *key)
{
    char prefix[600];

    snprintf(prefix, sizeof(prefix), "key file %s:", key);
    return strstr(err, prefix) != NULL && key_file_encrypted(key);
}

/* explain_encrypted_key replaces BoringSSL's BAD_PASSWORD_READ error for
 * an encrypted key file with one that says what to do, because the
 * daemon has no way to ask for a passphrase. */
static void explain_encrypted_key(const struct config *config, char *err,
                                  size_t err_size)
{
    const char *key = NULL;

    if (error_is_encrypted_key(err, config->tls_key)) {
        key = config->tls_key;
    }
    for (size_t i = 0; key == NULL && i < config->tls_sni_count; i++) {
        if (error_is_encrypted_key(err, config->tls_sni[i].key)) {
            key = config->tls_sni[i].key;
        }
    }
    if (key != NULL) {
        snprintf(err, err_size, "key file %s: encrypted private keys are "
                 "not supported; write it unencrypted with openssl pkey "
                 "-in FILE -out NEWFILE and keep that file readable by "
                 "the daemon only", key);
    }
}

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
    if (rc < 0) {
        explain_encrypted_key(config, err, err_size);
    }
    if (rc == 0 && tls_context_separate_sni_sessions(*out) < 0) {
        snprintf(err, err_size, "cannot set the session ID context of "
                 "an SNI certificate");
        tls_context_unref(*out);
        *out = NULL;
        rc = -1;
    }
    return rc;
}

/* Writes time as ASN1_TIME_print() does ("Jan  2 03:04:05 2025 GMT"),
 * or "unknown" when it cannot. */
static void format_asn1_time(const ASN1_TIME *time, char *date, size_t size)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const uint8_t *text = NULL;
    size_t len = 0;

    snprintf(date, size, "unknown");
    if (bio == NULL) {
        return;
    }
    if (ASN1_TIME_print(bio, time) == 1 &&
        BIO_mem_contents(bio, &text, &len) == 1) {
        snprintf(date, size, "%.*s", (int)len, (const char *)text);
    }
    BIO_free(bio);
}

/* Compares the validity of the first certificate in path, the leaf, with
 * now. Returns "expired" with its notAfter date, "not yet valid" with
 * its notBefore date, or NULL when it is valid or cannot be read, which
 * daemon_tls_build() reports. *field names the date: "notAfter" or
 * "notBefore". */
static const char *cert_date_problem(const char *path, time_t now,
                                     const char **field, char *date,
                                     size_t size)
{
    const char *problem = NULL;
    FILE *file = fopen(path, "r");
    X509 *cert;

    if (file == NULL) {
        return NULL;
    }
    cert = PEM_read_X509(file, NULL, NULL, NULL);
    fclose(file);
    if (cert == NULL) {
        ERR_clear_error();
        return NULL;
    }
    if (X509_cmp_time(X509_get0_notAfter(cert), &now) < 0) {
        problem = "expired";
        *field = "notAfter";
        format_asn1_time(X509_get0_notAfter(cert), date, size);
    } else if (X509_cmp_time(X509_get0_notBefore(cert), &now) > 0) {
        problem = "not yet valid";
        *field = "notBefore";
        format_asn1_time(X509_get0_notBefore(cert), date, size);
    }
    X509_free(cert);
    return problem;
}

static void warn_cert_dates(const char *path, time_t now, bool print)
{
    const char *field = NULL;
    char date[64];
    char quoted[1100];
    const char *problem = cert_date_problem(path, now, &field, date,
                                            sizeof(date));

    if (problem == NULL) {
        return;
    }
    if (print) {
        fprintf(stderr, "ringrelay: warning: certificate file %s: the "
                "certificate is %s (%s %s); it is still served, but "
                "clients that check it will reject it\n", path, problem,
                field, date);
        return;
    }
    log_quote(quoted, sizeof(quoted), path, strlen(path));
    log_warning("event=tls-cert-warning cert=%s problem=\"%s\" %s=\"%s\"",
                quoted, problem,
                strcmp(field, "notAfter") == 0 ? "not_after" : "not_before",
                date);
}

void daemon_tls_warn_dates(const struct config *config, bool print)
{
    time_t now = time(NULL);

    if (config->tls_cert == NULL) {
        return;
    }
    warn_cert_dates(config->tls_cert, now, print);
    for (size_t i = 0; i < config->tls_sni_count; i++) {
        warn_cert_dates(config->tls_sni[i].cert, now, print);
    }
}

void daemon_tls_reload(struct daemon *daemon)
{
    struct tls_context *fresh;
    char err[512];
    char quoted[1100];
    char cert[600];

    if (daemon->config->tls_cert == NULL) {
        if (daemon->auth_users == NULL) {
            log_warning("event=reload-ignored signal=SIGHUP reason=\"only "
                        "TLS certificates and keys and the users file are "
                        "reloaded, and neither is configured; restart the "
                        "daemon to apply configuration changes\"");
        }
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
             "reason=\"only TLS certificates and keys and the users file "
             "are reloaded; restart the daemon to apply other "
             "configuration changes\"",
             cert, daemon->config->tls_sni_count);
    daemon_tls_warn_dates(daemon->config, false);
}
