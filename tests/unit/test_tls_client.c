/* The client role of the TLS wrapper: chain and name verification
 * against a CA file, and DANE matching of TLSA records, with a server
 * and a client session in one process joined through their memory
 * buffers. Certificates, their DER encodings and digests come from the
 * openssl command in a temporary directory, so the expected TLSA data is
 * computed by a different implementation than the one under test. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls/tls_context.h"
#include "tls/tls_dane.h"
#include "tls/tls_session.h"

#define MX_HOST "mx.example.com"

static char dir[] = "/tmp/ringrelay-tlsc-XXXXXX";

static const char *file_path(const char *name)
{
    static char paths[8][300];
    static int next;
    char *path = paths[next++ % 8];

    snprintf(path, sizeof(paths[0]), "%s/%s", dir, name);
    return path;
}

static void run(const char *command)
{
    char line[2048];

    snprintf(line, sizeof(line), "cd %s && (%s) 2>/dev/null", dir, command);
    cr_assert_eq(system(line), 0, "command failed: %s", command);
}

/* make_ca writes NAME.crt and NAME.key, a self-signed CA. */
static void make_ca(const char *name)
{
    char command[1024];

    snprintf(command, sizeof(command),
             "openssl req -x509 -newkey ec -pkeyopt "
             "ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "
             "/CN=%s -addext basicConstraints=critical,CA:TRUE -addext "
             "keyUsage=critical,keyCertSign -keyout %s.key -out %s.crt",
             name, name, name);
    run(command);
}

/* make_leaf_san writes NAME.crt and NAME.key with common name cn and
 * subjectAltName san ("DNS:host" or "IP:address"), signed by ca, and
 * NAME.chain with the leaf and then the CA certificate. */
static void make_leaf_san(const char *name, const char *host,
                          const char *san, const char *ca)
{
    char command[1024];

    snprintf(command, sizeof(command),
             "printf 'subjectAltName=%s\\n' > %s.ext && "
             "openssl req -new -newkey ec -pkeyopt "
             "ec_paramgen_curve:prime256v1 -nodes -subj /CN=%s "
             "-keyout %s.key -out %s.csr && "
             "openssl x509 -req -in %s.csr -CA %s.crt -CAkey %s.key "
             "-CAcreateserial -days 2 -extfile %s.ext -out %s.crt && "
             "cat %s.crt %s.crt > %s.chain",
             san, name, host, name, name, name, ca, ca, name, name, name,
             ca, name);
    run(command);
}

/* make_leaf is make_leaf_san for the host name host. */
static void make_leaf(const char *name, const char *host, const char *ca)
{
    char san[300];

    snprintf(san, sizeof(san), "DNS:%s", host);
    make_leaf_san(name, host, san, ca);
}

/* make_tlsa_data writes NAME.{cert,spki} with the DER encodings and
 * NAME.{cert,spki}.{sha256,sha512} with their digests. */
static void make_tlsa_data(const char *name)
{
    char command[1024];

    snprintf(command, sizeof(command),
             "openssl x509 -in %s.crt -outform DER -out %s.cert && "
             "openssl x509 -in %s.crt -pubkey -noout | "
             "openssl pkey -pubin -outform DER -out %s.spki && "
             "for f in %s.cert %s.spki; do "
             "openssl dgst -sha256 -binary $f > $f.sha256 && "
             "openssl dgst -sha512 -binary $f > $f.sha512; done",
             name, name, name, name, name, name);
    run(command);
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    make_ca("ca");
    make_ca("other");
    make_leaf("leaf", MX_HOST, "ca");
    make_leaf("stranger", MX_HOST, "other");
    make_leaf("wild", "*.example.com", "ca");
    make_leaf_san("ipleaf", "127.0.0.1", "IP:127.0.0.1", "ca");
    run("openssl req -x509 -newkey ec -pkeyopt "
        "ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-subj /CN=elsewhere.test -keyout self.key -out self.crt");
    make_tlsa_data("ca");
    make_tlsa_data("other");
    make_tlsa_data("leaf");
    make_tlsa_data("stranger");
    make_tlsa_data("self");
}

static void teardown(void)
{
    char command[400];

    snprintf(command, sizeof(command), "rm -rf %s", dir);
    if (system(command) != 0) {
        fprintf(stderr, "cannot remove %s\n", dir);
    }
}

TestSuite(tls_client, .init = setup, .fini = teardown);

static struct tls_context *server_context(const char *cert, const char *key)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_SERVER,
        .min_version = TLS_VERSION_1_2,
        .cert_file = file_path(cert),
        .key_file = file_path(key),
    };
    struct tls_context *ctx;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&ctx, &opts, err, sizeof(err)), 0,
                 "server context failed: %s", err);
    return ctx;
}

static struct tls_context *client_context(const char *ca_file)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_CLIENT,
        .min_version = TLS_VERSION_1_2,
        .ca_file = ca_file != NULL ? file_path(ca_file) : NULL,
    };
    struct tls_context *ctx;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&ctx, &opts, err, sizeof(err)), 0,
                 "client context failed: %s", err);
    return ctx;
}

static void move_output(struct tls_session *from, struct tls_session *to)
{
    char buf[4096];
    size_t n;

    while ((n = tls_session_output(from, buf, sizeof(buf))) > 0) {
        cr_assert_eq(tls_session_input(to, buf, n), TLS_OK);
    }
}

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

/* A client session connected to a server with one certificate file. */
struct pair {
    struct tls_context *sctx;
    struct tls_context *cctx;
    struct tls_session *server;
    struct tls_session *client;
};

static void pair_open(struct pair *p, const char *cert, const char *key,
                      const char *ca_file, const char *host)
{
    p->sctx = server_context(cert, key);
    p->cctx = client_context(ca_file);
    p->server = tls_session_new(p->sctx, NULL);
    p->client = tls_session_new(p->cctx, host);
    cr_assert_not_null(p->server);
    cr_assert_not_null(p->client);
    handshake(p->client, p->server);
}

static void pair_close(struct pair *p)
{
    tls_session_free(p->client);
    tls_session_free(p->server);
    tls_context_unref(p->cctx);
    tls_context_unref(p->sctx);
}

/* ---- verify policy ---------------------------------------------------- */

Test(tls_client, verify_accepts_chain_and_name)
{
    struct pair p;
    char err[512] = "";

    pair_open(&p, "leaf.chain", "leaf.key", "ca.crt", MX_HOST);
    cr_assert_str_eq(tls_session_server_name(p.server), MX_HOST);
    cr_assert_eq(tls_session_verify_peer(p.client, err, sizeof(err)), 0,
                 "%s", err);
    pair_close(&p);
}

Test(tls_client, verify_leaf_without_chain)
{
    struct pair p;
    char err[512] = "";

    /* The CA file contains the issuer, so the server need not send it. */
    pair_open(&p, "leaf.crt", "leaf.key", "ca.crt", MX_HOST);
    cr_assert_eq(tls_session_verify_peer(p.client, err, sizeof(err)), 0,
                 "%s", err);
    pair_close(&p);
}

Test(tls_client, verify_rejects_wrong_name)
{
    struct pair p;
    char err[512] = "";

    pair_open(&p, "leaf.chain", "leaf.key", "ca.crt", "mx.example.net");
    cr_assert_eq(tls_session_verify_peer(p.client, err, sizeof(err)), -1);
    cr_assert(strstr(err, "mx.example.net") != NULL, "%s", err);
    cr_assert(strstr(err, "ostname mismatch") != NULL, "%s", err);
    pair_close(&p);
}

Test(tls_client, verify_rejects_unknown_ca)
{
    struct pair p;
    char err[512] = "";

    pair_open(&p, "stranger.chain", "stranger.key", "ca.crt", MX_HOST);
    cr_assert_eq(tls_session_verify_peer(p.client, err, sizeof(err)), -1);
    cr_assert(strstr(err, "failed verification") != NULL, "%s", err);
    pair_close(&p);
}

Test(tls_client, verify_rejects_self_signed)
{
    struct pair p;
    char err[512] = "";

    pair_open(&p, "self.crt", "self.key", "ca.crt", "elsewhere.test");
    cr_assert_eq(tls_session_verify_peer(p.client, err, sizeof(err)), -1);
    cr_assert(strstr(err, "self") != NULL, "%s", err);
    pair_close(&p);
}

Test(tls_client, verify_ip_address)
{
    struct pair p;
    char err[512] = "";

    pair_open(&p, "ipleaf.chain", "ipleaf.key", "ca.crt", "127.0.0.1");
    cr_assert_null(tls_session_server_name(p.server),
                   "an IP address went out as SNI");
    cr_assert_eq(tls_session_verify_peer(p.client, err, sizeof(err)), 0,
                 "%s", err);
    pair_close(&p);

    pair_open(&p, "ipleaf.chain", "ipleaf.key", "ca.crt", "127.0.0.2");
    cr_assert_eq(tls_session_verify_peer(p.client, err, sizeof(err)), -1);
    cr_assert(strstr(err, "127.0.0.2") != NULL, "%s", err);
    pair_close(&p);

    /* A host name certificate does not cover an address. */
    pair_open(&p, "leaf.chain", "leaf.key", "ca.crt", "127.0.0.1");
    cr_assert_eq(tls_session_verify_peer(p.client, err, sizeof(err)), -1);
    pair_close(&p);
}

Test(tls_client, verify_needs_ca_file)
{
    struct pair p;
    char err[512] = "";

    pair_open(&p, "leaf.chain", "leaf.key", NULL, MX_HOST);
    cr_assert_eq(tls_session_verify_peer(p.client, err, sizeof(err)), -1);
    cr_assert(strstr(err, "no CA certificates were loaded") != NULL, "%s", err);
    pair_close(&p);
}

Test(tls_client, verify_needs_expected_name)
{
    struct pair p;
    char err[512] = "";

    pair_open(&p, "leaf.chain", "leaf.key", "ca.crt", NULL);
    cr_assert_eq(tls_session_verify_peer(p.client, err, sizeof(err)), -1);
    cr_assert(strstr(err, "no expected server name") != NULL, "%s", err);
    pair_close(&p);
}

Test(tls_client, missing_ca_file_fails)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_CLIENT,
        .min_version = TLS_VERSION_1_2,
        .ca_file = "/nonexistent/ca.pem",
    };
    struct tls_context *ctx = NULL;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&ctx, &opts, err, sizeof(err)), -1);
    cr_assert_null(ctx);
    cr_assert(strstr(err, "/nonexistent/ca.pem") != NULL, "%s", err);
    cr_assert(strstr(err, "No such file") != NULL, "%s", err);
}

Test(tls_client, invalid_ca_file_fails)
{
    struct tls_context_options opts = {
        .role = TLS_ROLE_CLIENT,
        .min_version = TLS_VERSION_1_2,
        .ca_file = file_path("leaf.ext"),
    };
    struct tls_context *ctx = NULL;
    char err[512] = "";

    cr_assert_eq(tls_context_new(&ctx, &opts, err, sizeof(err)), -1);
    cr_assert(strstr(err, "no valid PEM certificate") != NULL, "%s", err);
}

/* ---- resumption ------------------------------------------------------- */

/* connect_once runs one client session of cctx against sctx for host,
 * moves a line from server to client so that the client reads the TLS
 * 1.3 ticket, and returns whether the session was resumed. */
static bool connect_once(struct tls_context *sctx, struct tls_context *cctx,
                         const char *host)
{
    struct tls_session *server = tls_session_new(sctx, NULL);
    struct tls_session *client = tls_session_new(cctx, host);
    const char line[] = "220 ready\r\n";
    char buf[64];
    char err[512] = "";
    bool reused;

    cr_assert_not_null(server);
    cr_assert_not_null(client);
    handshake(client, server);
    cr_assert_eq(tls_session_write(server, line, sizeof(line) - 1), TLS_OK);
    move_output(server, client);
    cr_assert_eq(tls_session_read(client, buf, sizeof(buf)),
                 (int)sizeof(line) - 1, "%s", tls_session_error(client));
    reused = tls_session_reused(client);
    cr_assert_eq(tls_session_reused(server), reused);
    /* A resumed session keeps the verification of its full handshake. */
    cr_assert_eq(tls_session_verify_peer(client, err, sizeof(err)), 0,
                 "resumed=%d: %s", reused, err);
    tls_session_free(client);
    tls_session_free(server);
    return reused;
}

Test(tls_client, resumes_per_server_name)
{
    struct tls_context *sctx = server_context("wild.chain", "wild.key");
    struct tls_context *cctx = client_context("ca.crt");

    cr_expect_not(connect_once(sctx, cctx, "a.example.com"),
                  "first connection to a.example.com resumed");
    cr_expect(connect_once(sctx, cctx, "a.example.com"),
              "second connection to a.example.com did not resume");
    cr_expect(connect_once(sctx, cctx, "A.Example.COM"),
              "name case changed the cache key");
    cr_expect_not(connect_once(sctx, cctx, "b.example.com"),
                  "b.example.com resumed the session of a.example.com");
    cr_expect(connect_once(sctx, cctx, "b.example.com"),
              "second connection to b.example.com did not resume");
    tls_context_unref(cctx);
    tls_context_unref(sctx);
}

Test(tls_client, no_resumption_without_name)
{
    struct tls_context *sctx = server_context("leaf.chain", "leaf.key");
    struct tls_context *cctx = client_context(NULL);
    struct pair p;

    for (int i = 0; i < 2; i++) {
        p.sctx = sctx;
        p.cctx = cctx;
        p.server = tls_session_new(sctx, NULL);
        p.client = tls_session_new(cctx, NULL);
        handshake(p.client, p.server);
        cr_expect_not(tls_session_reused(p.client), "round %d", i);
        tls_session_free(p.client);
        tls_session_free(p.server);
    }
    tls_context_unref(cctx);
    tls_context_unref(sctx);
}

/* ---- DANE ------------------------------------------------------------- */

struct blob {
    uint8_t data[4096];
    size_t len;
};

/* load_tlsa_data reads the TLSA data for cert (a make_tlsa_data name)
 * with selector and matching type. */
static void load_tlsa_data(struct blob *b, const char *cert, int selector,
                           int matching)
{
    static const char *suffix[] = {"", ".sha256", ".sha512"};
    char name[200];
    FILE *file;

    snprintf(name, sizeof(name), "%s.%s%s", cert,
             selector == 0 ? "cert" : "spki", suffix[matching]);
    file = fopen(file_path(name), "rb");
    cr_assert_not_null(file, "cannot open %s", name);
    b->len = fread(b->data, 1, sizeof(b->data), file);
    fclose(file);
    cr_assert_gt(b->len, 0, "%s is empty", name);
}

/* dane_result runs one handshake with server_cert on the server and
 * checks one TLSA record made from data_cert against it. */
static int dane_result(const char *server_cert, int usage, int selector,
                       int matching, const char *data_cert, char *err,
                       size_t err_size)
{
    char chain[64];
    char key[64];
    struct blob b;
    struct tls_dane_record r;
    struct pair p;
    int result;

    snprintf(chain, sizeof(chain), "%s", server_cert);
    snprintf(key, sizeof(key), "%.*s.key",
             (int)strcspn(server_cert, "."), server_cert);
    load_tlsa_data(&b, data_cert, selector, matching);
    r = (struct tls_dane_record){
        .usage = (uint8_t)usage,
        .selector = (uint8_t)selector,
        .matching = (uint8_t)matching,
        .data = b.data,
        .data_len = b.len,
    };
    pair_open(&p, chain, key, NULL, MX_HOST);
    result = tls_dane_check(p.client, MX_HOST, &r, 1, err, err_size);
    pair_close(&p);
    return result;
}

Test(tls_client, dane_ee_all_combinations)
{
    char err[512];

    for (int selector = 0; selector <= 1; selector++) {
        for (int matching = 0; matching <= 2; matching++) {
            err[0] = '\0';
            cr_expect_eq(dane_result("leaf.chain", 3, selector, matching,
                                     "leaf", err, sizeof(err)),
                         TLS_DANE_MATCHED, "3 %d %d match: %s", selector,
                         matching, err);
            err[0] = '\0';
            cr_expect_eq(dane_result("leaf.chain", 3, selector, matching,
                                     "stranger", err, sizeof(err)),
                         TLS_DANE_FAILED, "3 %d %d mismatch", selector,
                         matching);
            cr_expect(strstr(err, "no certificate of " MX_HOST) != NULL,
                      "3 %d %d: %s", selector, matching, err);
        }
    }
}

Test(tls_client, dane_ee_ignores_name)
{
    char err[512] = "";

    /* self.crt names elsewhere.test and no CA signed it. */
    cr_assert_eq(dane_result("self.crt", 3, 1, 1, "self", err, sizeof(err)),
                 TLS_DANE_MATCHED, "%s", err);
}

Test(tls_client, dane_ee_does_not_match_ca)
{
    char err[512] = "";

    cr_assert_eq(dane_result("leaf.chain", 3, 0, 1, "ca", err, sizeof(err)),
                 TLS_DANE_FAILED);
}

Test(tls_client, dane_ta_all_combinations)
{
    char err[512];

    for (int selector = 0; selector <= 1; selector++) {
        for (int matching = 0; matching <= 2; matching++) {
            err[0] = '\0';
            cr_expect_eq(dane_result("leaf.chain", 2, selector, matching,
                                     "ca", err, sizeof(err)),
                         TLS_DANE_MATCHED, "2 %d %d match: %s", selector,
                         matching, err);
            err[0] = '\0';
            cr_expect_eq(dane_result("leaf.chain", 2, selector, matching,
                                     "other", err, sizeof(err)),
                         TLS_DANE_FAILED, "2 %d %d mismatch", selector,
                         matching);
        }
    }
}

Test(tls_client, dane_ta_needs_anchor_in_chain)
{
    char err[512] = "";

    /* The server sends only its leaf, so the anchor is not available. */
    cr_assert_eq(dane_result("leaf.crt", 2, 0, 1, "ca", err, sizeof(err)),
                 TLS_DANE_FAILED);
    cr_assert(strstr(err, "no certificate") != NULL, "%s", err);
}

Test(tls_client, dane_ta_checks_host_name)
{
    char err[512] = "";
    struct blob b;
    struct tls_dane_record r;
    struct pair p;

    load_tlsa_data(&b, "ca", 1, 1);
    r = (struct tls_dane_record){2, 1, 1, b.data, b.len};
    pair_open(&p, "leaf.chain", "leaf.key", NULL, "mx.example.net");
    cr_assert_eq(tls_dane_check(p.client, "mx.example.net", &r, 1, err,
                                sizeof(err)),
                 TLS_DANE_FAILED);
    cr_assert(strstr(err, "trust anchor") != NULL, "%s", err);
    cr_assert(strstr(err, "ostname mismatch") != NULL, "%s", err);
    pair_close(&p);
}

Test(tls_client, dane_ta_rejects_other_chain)
{
    char err[512] = "";

    /* stranger.chain carries the other CA, not ca. */
    cr_assert_eq(dane_result("stranger.chain", 2, 0, 1, "ca", err,
                             sizeof(err)),
                 TLS_DANE_FAILED);
}

Test(tls_client, dane_unusable_records_ignored)
{
    struct blob leaf256;
    struct blob leaf_full;
    struct tls_dane_record records[6];
    struct pair p;
    char err[512] = "";

    load_tlsa_data(&leaf256, "leaf", 0, 1);
    load_tlsa_data(&leaf_full, "leaf", 0, 0);
    /* Each would match the leaf if its usage or parameters were usable. */
    records[0] = (struct tls_dane_record){0, 0, 1, leaf256.data, 32};
    records[1] = (struct tls_dane_record){1, 0, 1, leaf256.data, 32};
    records[2] = (struct tls_dane_record){3, 2, 1, leaf256.data, 32};
    records[3] = (struct tls_dane_record){3, 0, 3, leaf256.data, 32};
    records[4] = (struct tls_dane_record){3, 0, 1, leaf256.data, 31};
    records[5] = (struct tls_dane_record){3, 0, 2, leaf256.data, 32};
    for (size_t i = 0; i < 6; i++) {
        cr_expect_not(tls_dane_usable(&records[i]), "record %zu", i);
    }
    pair_open(&p, "leaf.chain", "leaf.key", NULL, MX_HOST);
    cr_assert_eq(tls_dane_check(p.client, MX_HOST, records, 6, err,
                                sizeof(err)),
                 TLS_DANE_NO_USABLE);
    cr_assert_eq(tls_dane_check(p.client, MX_HOST, records, 0, err,
                                sizeof(err)),
                 TLS_DANE_NO_USABLE);
    pair_close(&p);
}

Test(tls_client, dane_usable_among_unusable)
{
    struct blob leaf256;
    struct blob other256;
    struct tls_dane_record records[3];
    struct pair p;
    char err[512] = "";

    load_tlsa_data(&leaf256, "leaf", 0, 1);
    load_tlsa_data(&other256, "other", 1, 1);
    records[0] = (struct tls_dane_record){1, 0, 1, leaf256.data, 32};
    records[1] = (struct tls_dane_record){2, 1, 1, other256.data, 32};
    records[2] = (struct tls_dane_record){3, 0, 1, leaf256.data, 32};
    pair_open(&p, "leaf.chain", "leaf.key", NULL, MX_HOST);
    cr_assert_eq(tls_dane_check(p.client, MX_HOST, records, 3, err,
                                sizeof(err)),
                 TLS_DANE_MATCHED, "%s", err);
    /* Without the DANE-EE record only the unmatched DANE-TA is usable. */
    cr_assert_eq(tls_dane_check(p.client, MX_HOST, records, 2, err,
                                sizeof(err)),
                 TLS_DANE_FAILED);
    cr_assert(strstr(err, "1 usable TLSA records") != NULL, "%s", err);
    pair_close(&p);
}
