/* The TLS wrapper with a server and a client session in one process,
 * joined through their memory buffers. Certificates come from the
 * openssl command in a temporary directory. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls/tls_context.h"
#include "tls/tls_session.h"

static char dir[] = "/tmp/ringrelay-tls-XXXXXX";

static const char *file_path(const char *name)
{
    static char paths[8][300];
    static int next;
    char *path = paths[next++ % 8];

    snprintf(path, sizeof(paths[0]), "%s/%s", dir, name);
    return path;
}

/* make_cert writes NAME.crt and NAME.key, self-signed for common name
 * cn, with a P-256 key because it is quick to make. */
static void make_cert(const char *name, const char *cn)
{
    char command[1024];

    snprintf(command, sizeof(command),
             "openssl req -x509 -newkey ec -pkeyopt "
             "ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=%s "
             "-keyout %s/%s.key -out %s/%s.crt 2>/dev/null",
             cn, dir, name, dir, name);
    cr_assert_eq(system(command), 0, "openssl req failed for %s", name);
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    make_cert("default", "default.test");
    make_cert("mail", "mail.example.com");
    make_cert("wild", "wild.example.org");
}

static void teardown(void)
{
    char command[400];

    snprintf(command, sizeof(command), "rm -rf %s", dir);
    if (system(command) != 0) {
        fprintf(stderr, "cannot remove %s\n", dir);
    }
}

TestSuite(tls, .init = setup, .fini = teardown);

static struct tls_context *server_context(
    const struct tls_sni_certificate *sni, size_t sni_count)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_SERVER,
        .min_version = TLS_VERSION_1_2,
        .cert_file = file_path("default.crt"),
        .key_file = file_path("default.key"),
        .sni = sni,
        .sni_count = sni_count,
    };
    struct tls_context *ctx;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&ctx, &opts, err, sizeof(err)), 0,
                 "server context failed: %s", err);
    return ctx;
}

static struct tls_context *client_context(void)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_CLIENT,
        .min_version = TLS_VERSION_1_2,
    };
    struct tls_context *ctx;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&ctx, &opts, err, sizeof(err)), 0,
                 "client context failed: %s", err);
    return ctx;
}

/* move_output passes one side's ciphertext to the other. Returns the
 * bytes moved. */
static size_t move_output(struct tls_session *from, struct tls_session *to)
{
    char buf[4096];
    size_t total = 0;
    size_t n;

    while ((n = tls_session_output(from, buf, sizeof(buf))) > 0) {
        cr_assert_eq(tls_session_input(to, buf, n), TLS_OK);
        total += n;
    }
    return total;
}

/* handshake runs both sides until each is established, failing the test
 * when a side fails or 20 rounds do not finish it. */
static void handshake(struct tls_session *client, struct tls_session *server)
{
    for (int round = 0; round < 20; round++) {
        int c = tls_session_handshake(client);
        int s;

        cr_assert_neq(c, TLS_FAILED, "client: %s", tls_session_error(client));
        move_output(client, server);
        s = tls_session_handshake(server);
        cr_assert_neq(s, TLS_FAILED, "server: %s", tls_session_error(server));
        move_output(server, client);
        if (c == TLS_OK && s == TLS_OK) {
            return;
        }
    }
    cr_assert_fail("handshake did not finish in 20 rounds");
}

static void send_text(struct tls_session *from, struct tls_session *to,
                      const char *text)
{
    char buf[256];
    int n;

    cr_assert_eq(tls_session_write(from, text, strlen(text)), TLS_OK);
    move_output(from, to);
    n = tls_session_read(to, buf, sizeof(buf) - 1);
    cr_assert_gt(n, 0, "read failed: %d %s", n, tls_session_error(to));
    buf[n] = '\0';
    cr_assert_str_eq(buf, text);
}

Test(tls, handshake_and_data_both_ways)
{
    struct tls_context *sctx = server_context(NULL, 0);
    struct tls_context *cctx = client_context();
    struct tls_session *server = tls_session_new(sctx, NULL);
    struct tls_session *client = tls_session_new(cctx, "default.test");
    char buf[64];

    cr_assert_not_null(server);
    cr_assert_not_null(client);
    cr_assert_eq(tls_session_read(server, buf, sizeof(buf)), TLS_WANT_INPUT);
    handshake(client, server);
    cr_assert(tls_session_established(server));
    cr_assert_str_eq(tls_session_version(server), "TLSv1.3");
    cr_assert_str_eq(tls_session_cipher(server),
                     tls_session_cipher(client));
    cr_assert_geq(tls_session_cipher_bits(server), 128);
    cr_assert_not(tls_session_reused(server));

    send_text(client, server, "EHLO client.test\r\n");
    send_text(server, client, "250 server.test\r\n");

    /* The client's close_notify reaches the server as TLS_CLOSED. */
    tls_session_close(client);
    move_output(client, server);
    cr_assert_eq(tls_session_read(server, buf, sizeof(buf)), TLS_CLOSED);

    tls_session_free(client);
    tls_session_free(server);
    tls_context_unref(cctx);
    tls_context_unref(sctx);
}

Test(tls, session_outlives_context_ref)
{
    struct tls_context *sctx = server_context(NULL, 0);
    struct tls_context *cctx = client_context();
    struct tls_session *server = tls_session_new(sctx, NULL);
    struct tls_session *client = tls_session_new(cctx, NULL);

    /* A reload drops the daemon's reference while sessions run. */
    tls_context_unref(sctx);
    tls_context_unref(cctx);
    handshake(client, server);
    send_text(client, server, "QUIT\r\n");
    tls_session_free(client);
    tls_session_free(server);
}

Test(tls, missing_certificate_file)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_SERVER,
        .cert_file = file_path("absent.crt"),
        .key_file = file_path("default.key"),
    };
    struct tls_context *ctx = (struct tls_context *)1;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&ctx, &opts, err, sizeof(err)), -1);
    cr_assert_null(ctx);
    cr_assert(strstr(err, "absent.crt") != NULL, "%s", err);
    cr_assert(strstr(err, "No such file or directory") != NULL, "%s", err);
}

Test(tls, certificate_not_pem)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_SERVER,
        .cert_file = file_path("default.key"),
        .key_file = file_path("default.key"),
    };
    struct tls_context *ctx;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&ctx, &opts, err, sizeof(err)), -1);
    cr_assert(strstr(err, "certificate file") != NULL, "%s", err);
    cr_assert(strstr(err, "not a valid PEM certificate chain") != NULL,
              "%s", err);
}

Test(tls, key_of_other_certificate)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_SERVER,
        .cert_file = file_path("default.crt"),
        .key_file = file_path("mail.key"),
    };
    struct tls_context *ctx;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&ctx, &opts, err, sizeof(err)), -1);
    cr_assert(strstr(err, "mail.key") != NULL, "%s", err);
    cr_assert(strstr(err, "does not match") != NULL ||
              strstr(err, "not a valid PEM private key") != NULL, "%s", err);
}

Test(tls, invalid_cipher_list)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_SERVER,
        .ciphers = "NO-SUCH-CIPHER",
        .cert_file = file_path("default.crt"),
        .key_file = file_path("default.key"),
    };
    struct tls_context *ctx;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&ctx, &opts, err, sizeof(err)), -1);
    cr_assert(strstr(err, "NO-SUCH-CIPHER") != NULL, "%s", err);
}

Test(tls, bad_sni_certificate_path)
{
    struct tls_sni_certificate sni = {"mail.example.com",
                                      file_path("mail.crt"),
                                      file_path("missing.key")};
    struct tls_context_options opts = {
        .role = TLS_ROLE_SERVER,
        .cert_file = file_path("default.crt"),
        .key_file = file_path("default.key"),
        .sni = &sni,
        .sni_count = 1,
    };
    struct tls_context *ctx;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&ctx, &opts, err, sizeof(err)), -1);
    cr_assert(strstr(err, "missing.key") != NULL, "%s", err);
}

/* check_sni connects with SNI name (NULL: none) and checks that the
 * server presented the certificate with common name expected. */
static void check_sni(const char *name, const char *expected)
{
    struct tls_sni_certificate sni[] = {
        {"mail.example.com", file_path("mail.crt"), file_path("mail.key")},
        {"*.example.org", file_path("wild.crt"), file_path("wild.key")},
    };
    struct tls_context *sctx = server_context(sni, 2);
    struct tls_context *cctx = client_context();
    struct tls_session *server = tls_session_new(sctx, NULL);
    struct tls_session *client = tls_session_new(cctx, name);
    char cn[128];

    handshake(client, server);
    cr_assert_str_eq(tls_session_peer_name(client, cn, sizeof(cn)),
                     expected, "SNI %s", name != NULL ? name : "(none)");
    if (name != NULL) {
        cr_assert_str_eq(tls_session_server_name(server), name);
    } else {
        cr_assert_null(tls_session_server_name(server));
    }
    send_text(client, server, "NOOP\r\n");
    tls_session_free(client);
    tls_session_free(server);
    tls_context_unref(cctx);
    tls_context_unref(sctx);
}

Test(tls, sni_selects_certificate)
{
    check_sni("mail.example.com", "mail.example.com");
    check_sni("MAIL.Example.COM", "mail.example.com");
    check_sni("a.example.org", "wild.example.org");
    check_sni("a.b.example.org", "default.test");
    check_sni("example.org", "default.test");
    check_sni("other.test", "default.test");
    check_sni(NULL, "default.test");
}

Test(tls, plaintext_fails_handshake)
{
    struct tls_context *sctx = server_context(NULL, 0);
    struct tls_session *server = tls_session_new(sctx, NULL);
    const char *text = "EHLO client.test\r\n";

    cr_assert_eq(tls_session_input(server, text, strlen(text)), TLS_OK);
    cr_assert_eq(tls_session_handshake(server), TLS_FAILED);
    cr_assert_neq(tls_session_error(server)[0], '\0');
    tls_session_free(server);
    tls_context_unref(sctx);
}

Test(tls, version_parse)
{
    enum tls_version version;

    cr_assert_eq(tls_version_parse("1.2", &version), 0);
    cr_assert_eq(version, TLS_VERSION_1_2);
    cr_assert_eq(tls_version_parse("1.3", &version), 0);
    cr_assert_eq(version, TLS_VERSION_1_3);
    cr_assert_eq(tls_version_parse("1.1", &version), -1);
    cr_assert_eq(tls_version_parse("", &version), -1);
}

Test(tls, minimum_version_1_3)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_SERVER,
        .min_version = TLS_VERSION_1_3,
        .cert_file = file_path("default.crt"),
        .key_file = file_path("default.key"),
    };
    struct tls_context *sctx;
    struct tls_context *cctx = client_context();
    struct tls_session *server;
    struct tls_session *client;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&sctx, &opts, err, sizeof(err)), 0, "%s",
                 err);
    server = tls_session_new(sctx, NULL);
    client = tls_session_new(cctx, NULL);
    handshake(client, server);
    cr_assert_str_eq(tls_session_version(client), "TLSv1.3");
    tls_session_free(client);
    tls_session_free(server);
    tls_context_unref(cctx);
    tls_context_unref(sctx);
}
