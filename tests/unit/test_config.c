/* Configuration tests: the UCL subset parser, config defaults and every
 * key read from real files in a mkdtemp directory, routes, and the address
 * helpers (HOST:PORT, CIDR parsing and matching). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/conf_parse.h"
#include "core/config.h"
#include "core/config_dest_name.h"
#include "core/netaddr.h"

/* ---------------------------------------------------------------------
 * Parser helpers */

static struct conf_node *parse_ok(const char *text)
{
    struct conf_node *root = NULL;
    struct conf_error err = {0};
    int rc = conf_parse(text, strlen(text), &root, &err);

    cr_assert_eq(rc, 0, "parse failed at line %u: %s\n%s", err.line,
                 err.reason, text);
    cr_assert_not_null(root);
    cr_assert_eq(root->type, CONF_OBJECT);
    return root;
}

static struct conf_error parse_fail(const char *text)
{
    struct conf_node *root = NULL;
    struct conf_error err = {0};
    int rc = conf_parse(text, strlen(text), &root, &err);

    cr_assert_eq(rc, -1, "parse succeeded:\n%s", text);
    cr_assert_null(root);
    return err;
}

static const struct conf_node *child(const struct conf_node *node,
                                     size_t index)
{
    const struct conf_node *c = node->first;

    for (size_t i = 0; i < index && c != NULL; i++) {
        c = c->next;
    }
    cr_assert_not_null(c, "no child %zu", index);
    return c;
}

static void expect_member(const struct conf_node *node, const char *key,
                          enum conf_type type, unsigned line)
{
    cr_assert_not_null(node->key);
    cr_expect_str_eq(node->key, key);
    cr_expect_eq(node->type, type, "%s: type %s", key,
                 conf_type_name(node->type));
    cr_expect_eq(node->line, line, "%s: line %u, expected %u", key,
                 node->line, line);
}

/* ---------------------------------------------------------------------
 * Parser: syntax forms */

Test(conf_parse, key_value_separators)
{
    struct conf_node *root = parse_ok("a = 1;\nb: 2;\nc 3;\n");

    cr_assert_eq(root->child_count, 3);
    expect_member(child(root, 0), "a", CONF_NUMBER, 1);
    expect_member(child(root, 1), "b", CONF_NUMBER, 2);
    expect_member(child(root, 2), "c", CONF_NUMBER, 3);
    cr_expect_eq(child(root, 0)->number, 1);
    cr_expect_eq(child(root, 1)->number, 2);
    cr_expect_eq(child(root, 2)->number, 3);
    conf_node_free(root);
}

Test(conf_parse, terminators)
{
    struct conf_node *root = parse_ok("a = 1, b = 2; c = 3\nd = 4");

    cr_assert_eq(root->child_count, 4);
    expect_member(child(root, 0), "a", CONF_NUMBER, 1);
    expect_member(child(root, 1), "b", CONF_NUMBER, 1);
    expect_member(child(root, 2), "c", CONF_NUMBER, 1);
    expect_member(child(root, 3), "d", CONF_NUMBER, 2);
    conf_node_free(root);
}

Test(conf_parse, empty_input)
{
    struct conf_node *root = parse_ok("");

    cr_expect_eq(root->child_count, 0);
    cr_expect_null(root->first);
    conf_node_free(root);
    root = parse_ok("# only a comment\n\n;;\n");
    cr_expect_eq(root->child_count, 0);
    conf_node_free(root);
}

Test(conf_parse, comments)
{
    const char *text = "# hash comment\n"
                       "a = 1 # after a value\n"
                       "// slash comment\n"
                       "b = 2 // after a value\n"
                       "/* block\n"
                       "   over lines */ c = 3\n"
                       "d /* inline */ = 4;\n";
    struct conf_node *root = parse_ok(text);

    cr_assert_eq(root->child_count, 4);
    expect_member(child(root, 0), "a", CONF_NUMBER, 2);
    expect_member(child(root, 1), "b", CONF_NUMBER, 4);
    expect_member(child(root, 2), "c", CONF_NUMBER, 6);
    expect_member(child(root, 3), "d", CONF_NUMBER, 7);
    cr_expect_eq(child(root, 3)->number, 4);
    conf_node_free(root);
}

Test(conf_parse, double_quoted_escapes)
{
    struct conf_node *root =
        parse_ok("a = \"q\\\"b\\\\s\\nn\\tt\"\nb = \"\"\nc = \"x # y\"\n"
                 "d = \"raw\ttab\"\n");
    const struct conf_node *a = child(root, 0);

    expect_member(a, "a", CONF_STRING, 1);
    cr_expect_str_eq(a->text, "q\"b\\s\nn\tt");
    cr_expect(a->quoted);
    cr_expect_str_eq(child(root, 1)->text, "");
    cr_expect_str_eq(child(root, 2)->text, "x # y");
    cr_expect_str_eq(child(root, 3)->text, "raw\ttab");
    conf_node_free(root);
}

Test(conf_parse, single_quoted)
{
    struct conf_node *root = parse_ok("a = 'it\\'s'\nb = 'c:\\dir \"x\"'\n");

    expect_member(child(root, 0), "a", CONF_STRING, 1);
    cr_expect_str_eq(child(root, 0)->text, "it's");
    cr_expect_str_eq(child(root, 1)->text, "c:\\dir \"x\"");
    conf_node_free(root);
}

Test(conf_parse, quoted_values_stay_strings)
{
    struct conf_node *root = parse_ok("a = \"10\"\nb = 'yes'\n");

    cr_expect_eq(child(root, 0)->type, CONF_STRING);
    cr_expect_eq(child(root, 1)->type, CONF_STRING);
    cr_expect_str_eq(child(root, 0)->text, "10");
    conf_node_free(root);
}

Test(conf_parse, unquoted_atoms)
{
    static const char *const atoms[] = {
        "127.0.0.1:2525", "./var/queue", "10.0.0.0/8", "user@example.com",
        "[::1]:2525", "mx.example.com", "::1", "/var//spool", "a_b-c",
    };
    char text[128];

    for (size_t i = 0; i < sizeof(atoms) / sizeof(atoms[0]); i++) {
        struct conf_node *root;

        snprintf(text, sizeof(text), "key = %s;\n", atoms[i]);
        root = parse_ok(text);
        cr_expect_eq(child(root, 0)->type, CONF_STRING, "%s", atoms[i]);
        cr_expect_str_eq(child(root, 0)->text, atoms[i]);
        cr_expect_not(child(root, 0)->quoted);
        conf_node_free(root);
    }
}

Test(conf_parse, colon_atom_after_colon_separator)
{
    struct conf_node *root = parse_ok("listen: 127.0.0.1:25\n");

    expect_member(child(root, 0), "listen", CONF_STRING, 1);
    cr_expect_str_eq(child(root, 0)->text, "127.0.0.1:25");
    conf_node_free(root);
}

Test(conf_parse, number_suffixes)
{
    static const struct {
        const char *text;
        int64_t value;
    } cases[] = {
        {"0", 0},
        {"25", 25},
        {"-5", -5},
        {"2k", 2000},
        {"2K", 2000},
        {"3m", 3000000},
        {"1g", 1000000000},
        {"1kb", 1024},
        {"1KB", 1024},
        {"10mb", 10485760},
        {"10Mb", 10485760},
        {"2gb", 2147483648},
    };
    char text[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf_node *root;

        snprintf(text, sizeof(text), "n = %s\n", cases[i].text);
        root = parse_ok(text);
        cr_expect_eq(child(root, 0)->type, CONF_NUMBER, "%s", cases[i].text);
        cr_expect_eq(child(root, 0)->number, cases[i].value, "%s: %lld",
                     cases[i].text, (long long)child(root, 0)->number);
        cr_expect_str_eq(child(root, 0)->text, cases[i].text);
        conf_node_free(root);
    }
}

Test(conf_parse, duration_suffixes)
{
    static const struct {
        const char *text;
        int64_t value;
        bool duration;
    } cases[] = {
        {"30s", 30, true},
        {"30S", 30, true},
        {"5min", 300, true},
        {"5MIN", 300, true},
        {"2h", 7200, true},
        {"1d", 86400, true},
        {"0s", 0, true},
        {"5m", 5000000, false},
        {"300", 300, false},
    };
    char text[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf_node *root;
        const struct conf_node *n;

        snprintf(text, sizeof(text), "t = %s\n", cases[i].text);
        root = parse_ok(text);
        n = child(root, 0);
        cr_expect_eq(n->type, CONF_NUMBER, "%s", cases[i].text);
        cr_expect_eq(n->number, cases[i].value, "%s: %lld", cases[i].text,
                     (long long)n->number);
        cr_expect_eq(n->duration, cases[i].duration, "%s", cases[i].text);
        conf_node_free(root);
    }
}

Test(conf_parse, number_like_atoms_are_strings)
{
    static const char *const atoms[] = {"10x", "1.5", "10kbb", "k", "-",
                                        "1-2", "5ms", "1mins", "s"};
    char text[64];

    for (size_t i = 0; i < sizeof(atoms) / sizeof(atoms[0]); i++) {
        struct conf_node *root;

        snprintf(text, sizeof(text), "n = %s\n", atoms[i]);
        root = parse_ok(text);
        cr_expect_eq(child(root, 0)->type, CONF_STRING, "%s", atoms[i]);
        conf_node_free(root);
    }
}

Test(conf_parse, booleans)
{
    static const struct {
        const char *text;
        bool value;
    } cases[] = {
        {"true", true}, {"yes", true}, {"on", true}, {"TRUE", true},
        {"false", false}, {"no", false}, {"off", false}, {"Off", false},
    };
    char text[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf_node *root;

        snprintf(text, sizeof(text), "b = %s\n", cases[i].text);
        root = parse_ok(text);
        cr_expect_eq(child(root, 0)->type, CONF_BOOL, "%s", cases[i].text);
        cr_expect_eq(child(root, 0)->boolean, cases[i].value, "%s",
                     cases[i].text);
        conf_node_free(root);
    }
}

Test(conf_parse, arrays)
{
    struct conf_node *root = parse_ok("a = [x, \"y\", 3]\n"
                                      "b = [x, y,]\n"
                                      "c = []\n"
                                      "d [\n"
                                      "  1,\n"
                                      "  [2, 3],\n"
                                      "  { k = v }\n"
                                      "]\n");
    const struct conf_node *a = child(root, 0);
    const struct conf_node *d = child(root, 3);

    expect_member(a, "a", CONF_ARRAY, 1);
    cr_assert_eq(a->child_count, 3);
    cr_expect_str_eq(child(a, 0)->text, "x");
    cr_expect_null(child(a, 0)->key);
    cr_expect_str_eq(child(a, 1)->text, "y");
    cr_expect_eq(child(a, 2)->number, 3);
    cr_expect_eq(child(root, 1)->child_count, 2);
    expect_member(child(root, 2), "c", CONF_ARRAY, 3);
    cr_expect_eq(child(root, 2)->child_count, 0);

    expect_member(d, "d", CONF_ARRAY, 4);
    cr_assert_eq(d->child_count, 3);
    cr_expect_eq(child(d, 0)->line, 5);
    cr_expect_eq(child(d, 1)->type, CONF_ARRAY);
    cr_expect_eq(child(d, 1)->child_count, 2);
    cr_expect_eq(child(d, 2)->type, CONF_OBJECT);
    expect_member(child(child(d, 2), 0), "k", CONF_STRING, 7);
    conf_node_free(root);
}

Test(conf_parse, array_of_ipv6_atoms)
{
    struct conf_node *root = parse_ok("l = [ [::1]:25, 127.0.0.1:25 ]\n");
    const struct conf_node *l = child(root, 0);

    cr_assert_eq(l->type, CONF_ARRAY);
    cr_assert_eq(l->child_count, 2);
    cr_expect_str_eq(child(l, 0)->text, "[::1]:25");
    cr_expect_str_eq(child(l, 1)->text, "127.0.0.1:25");
    conf_node_free(root);
}

Test(conf_parse, objects)
{
    struct conf_node *root = parse_ok("one {\n"
                                      "  a = 1\n"
                                      "  inner = {\n"
                                      "    \"example.test\" = \"mx:25\";\n"
                                      "    'quoted key' 2\n"
                                      "  }\n"
                                      "}\n"
                                      "two = { }\n"
                                      "three\n"
                                      "{\n"
                                      "  b: yes\n"
                                      "}\n"
                                      "after = 1\n");
    const struct conf_node *one = child(root, 0);
    const struct conf_node *inner = child(one, 1);

    cr_assert_eq(root->child_count, 4);
    expect_member(one, "one", CONF_OBJECT, 1);
    expect_member(child(one, 0), "a", CONF_NUMBER, 2);
    expect_member(inner, "inner", CONF_OBJECT, 3);
    expect_member(child(inner, 0), "example.test", CONF_STRING, 4);
    cr_expect_str_eq(child(inner, 0)->text, "mx:25");
    expect_member(child(inner, 1), "quoted key", CONF_NUMBER, 5);
    expect_member(child(root, 1), "two", CONF_OBJECT, 8);
    cr_expect_eq(child(root, 1)->child_count, 0);
    expect_member(child(root, 2), "three", CONF_OBJECT, 9);
    expect_member(child(child(root, 2), 0), "b", CONF_BOOL, 11);
    expect_member(child(root, 3), "after", CONF_NUMBER, 13);
    conf_node_free(root);
}

Test(conf_parse, object_then_key_on_same_line)
{
    struct conf_node *root = parse_ok("a { x = 1 } b = 2\n");

    cr_assert_eq(root->child_count, 2);
    expect_member(child(root, 1), "b", CONF_NUMBER, 1);
    conf_node_free(root);
}

Test(conf_parse, top_level_braces)
{
    struct conf_node *root = parse_ok("# leading comment\n"
                                      "{\n"
                                      "  a = 1\n"
                                      "  b { c = 2 }\n"
                                      "}\n"
                                      "// trailing comment\n");

    cr_assert_eq(root->child_count, 2);
    expect_member(child(root, 0), "a", CONF_NUMBER, 3);
    expect_member(child(root, 1), "b", CONF_OBJECT, 4);
    conf_node_free(root);
}

Test(conf_parse, duplicate_keys_kept_in_order)
{
    struct conf_node *root = parse_ok("a = 1\na = 2\n");

    cr_assert_eq(root->child_count, 2);
    cr_expect_eq(child(root, 0)->number, 1);
    cr_expect_eq(child(root, 1)->number, 2);
    conf_node_free(root);
}

Test(conf_parse, crlf_line_endings)
{
    struct conf_node *root = parse_ok("a = 1\r\nb = \"x\"\r\n");

    expect_member(child(root, 1), "b", CONF_STRING, 2);
    cr_expect_str_eq(child(root, 1)->text, "x");
    conf_node_free(root);
}

/* ---------------------------------------------------------------------
 * Parser: errors and their lines */

Test(conf_parse, error_lines_and_reasons)
{
    static const struct {
        const char *text;
        unsigned line;
        const char *reason;     /* a substring of the reason */
    } cases[] = {
        {"a = 1\nb = \"open\nc = 2\n", 2, "unterminated string"},
        {"a = 'open\n", 1, "unterminated string"},
        {"a = \"bad \\q escape\"\n", 1, "unknown escape"},
        {"a = \"\\u0041\"\n", 1, "unknown escape"},
        {"a = 1\nb = ;\n", 2, "missing value"},
        {"a = 1\n\nb\n", 3, "missing value"},
        {"a =\nb = 1\n", 1, "missing value"},
        {"a = 1\nb = = 2\n", 2, "expected value"},
        {"x = 1\no {\n  a = 1\n", 2, "missing '}'"},
        {"a = [1, 2\n\n", 1, "missing ']'"},
        {"a = [1 2]\n", 1, "expected ',' or ']'"},
        {"a = [1,,2]\n", 1, "expected value"},
        {"a = 1\n}\n", 2, "unexpected '}'"},
        {"a = 1\n/* open\ncomment\n", 2, "unterminated comment"},
        {"a = 1 2\n", 1, "expected ';', ',' or a newline"},
        {"\n\n= 1\n", 3, "expected key"},
        {"\"\" = 1\n", 1, "empty key"},
        {"{ a = 1 }\nb = 2\n", 2, "unexpected text"},
        {"a = 99999999999999999999\n", 1, "too large"},
        {"a = 90000000000000000kb\n", 1, "too large"},
        {"a = \"x\x01y\"\n", 1, "control character"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf_error err = parse_fail(cases[i].text);

        cr_expect_eq(err.line, cases[i].line, "case %zu: line %u: %s", i,
                     err.line, err.reason);
        cr_expect(strstr(err.reason, cases[i].reason) != NULL,
                  "case %zu: reason '%s', expected '%s'", i, err.reason,
                  cases[i].reason);
    }
}

Test(conf_parse, nul_byte_rejected)
{
    static const char text[] = "a = 1\nb = x\0y\n";
    struct conf_node *root = NULL;
    struct conf_error err = {0};

    cr_assert_eq(conf_parse(text, sizeof(text) - 1, &root, &err), -1);
    cr_expect_null(root);
    cr_expect_eq(err.line, 2);
    cr_expect(strstr(err.reason, "NUL") != NULL, "%s", err.reason);
}

Test(conf_parse, nesting_limit)
{
    char text[512];
    size_t len = 0;
    struct conf_error err;

    for (int i = 0; i < 40; i++) {
        len += (size_t)snprintf(text + len, sizeof(text) - len, "k {");
    }
    err = parse_fail(text);
    cr_expect(strstr(err.reason, "nesting") != NULL, "%s", err.reason);
}

Test(conf_parse, length_bounds_text)
{
    /* The parser reads len bytes and no further, so text need not end in
     * a NUL byte. */
    static const char text[] = "a = 1\nb = 2";
    struct conf_node *root = NULL;
    struct conf_error err = {0};

    cr_assert_eq(conf_parse(text, 5, &root, &err), 0, "%s", err.reason);
    cr_expect_eq(root->child_count, 1);
    conf_node_free(root);
}

Test(conf_parse, free_accepts_null)
{
    conf_node_free(NULL);
}

/* ---------------------------------------------------------------------
 * Config helpers: each test writes its file into its own mkdtemp
 * directory, because Criterion runs tests in parallel. */

static char tmp_dir[64];
static char tmp_file[128];

static void tmp_setup(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/ringrelay-config-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir), "mkdtemp: %s", strerror(errno));
    snprintf(tmp_file, sizeof(tmp_file), "%s/ringrelay.conf", tmp_dir);
}

static void tmp_teardown(void)
{
    unlink(tmp_file);
    rmdir(tmp_dir);
}

static void write_file(const char *text)
{
    FILE *f = fopen(tmp_file, "w");

    cr_assert_not_null(f, "fopen %s: %s", tmp_file, strerror(errno));
    cr_assert_eq(fputs(text, f) >= 0, true);
    cr_assert_eq(fclose(f), 0);
}

/* Loads text over the defaults in config; the caller cleans it up. */
static void load_ok(struct config *config, const char *text)
{
    char err[512] = "";

    write_file(text);
    cr_assert_eq(config_init(config), 0);
    cr_assert_eq(config_load(config, tmp_file, err, sizeof(err)), 0,
                 "load failed: %s\n%s", err, text);
}

/* Loads text and expects "FILE:LINE: <reason>" where reason starts with
 * the given text. */
static void load_fail(const char *text, unsigned line, const char *reason)
{
    struct config config;
    char err[512] = "";
    char expected[PATH_MAX + 64];

    write_file(text);
    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), -1,
                 "load succeeded:\n%s", text);
    snprintf(expected, sizeof(expected), "%s:%u: %s", tmp_file, line,
             reason);
    cr_expect_eq(strncmp(err, expected, strlen(expected)), 0,
                 "error '%s', expected it to start with '%s'", err,
                 expected);
    config_cleanup(&config);
}

/* Loads text and expects exactly "FILE:LINE: reason". */
static void load_fail_exact(const char *text, unsigned line,
                            const char *reason)
{
    struct config config;
    char err[512] = "";
    char expected[PATH_MAX + 300];

    write_file(text);
    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), -1,
                 "load succeeded:\n%s", text);
    snprintf(expected, sizeof(expected), "%s:%u: %s", tmp_file, line,
             reason);
    cr_expect_str_eq(err, expected);
    config_cleanup(&config);
}

static void sockaddr_v4(struct sockaddr_storage *ss, const char *ip)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;

    memset(ss, 0, sizeof(*ss));
    sin->sin_family = AF_INET;
    cr_assert_eq(inet_pton(AF_INET, ip, &sin->sin_addr), 1, "%s", ip);
}

static void sockaddr_v6(struct sockaddr_storage *ss, const char *ip)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    sin6->sin6_family = AF_INET6;
    cr_assert_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1, "%s", ip);
}

static const struct sockaddr *as_sa(const struct sockaddr_storage *ss)
{
    return (const struct sockaddr *)ss;
}

/* ---------------------------------------------------------------------
 * Config: defaults */

Test(config, defaults)
{
    struct config config;
    char host[256];
    char ip[INET6_ADDRSTRLEN];

    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config.listen_count, 1);
    cr_expect_str_eq(config.listen[0].host, "127.0.0.1");
    cr_expect_eq(config.listen[0].port, 2525);
    cr_expect_not(config.listen[0].is_name);
    cr_expect_eq(config.listen[0].addr.ss_family, AF_INET);
    cr_expect_eq(config.listen[0].addr_len, sizeof(struct sockaddr_in));
    cr_expect_eq(ntohs(((struct sockaddr_in *)&config.listen[0].addr)
                           ->sin_port), 2525);
    netaddr_format(as_sa(&config.listen[0].addr), ip, sizeof(ip));
    cr_expect_str_eq(ip, "127.0.0.1");

    cr_expect_str_eq(config.queue_dir, "./var/queue");
    cr_assert_not_null(config.hostname);
    cr_expect(netaddr_is_hostname(config.hostname), "%s", config.hostname);
    if (gethostname(host, sizeof(host)) == 0 && netaddr_is_hostname(host)) {
        cr_expect_str_eq(config.hostname, host);
    }

    cr_assert_eq(config.relay_network_count, 1);
    cr_expect_eq(config.relay_networks[0].family, AF_INET);
    cr_expect_eq(config.relay_networks[0].prefix, 32);
    cr_expect_eq(config.relay_domain_count, 0);
    cr_expect_not(config.has_resolver);
    cr_expect_not(config.has_smarthost);
    cr_expect_eq(config.route_count, 0);
    cr_expect_eq(config.durability, QUEUE_DURABILITY_FSYNC);
    cr_expect_eq(config.max_message_size, 10485760);
    cr_expect_eq(config.log_level, LOG_LEVEL_INFO);
    config_cleanup(&config);
}

Test(config, limit_defaults)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    cr_expect_eq(config.max_recipients, 1000);
    cr_expect_eq(config.max_line_length, 1024);
    cr_expect_eq(config.max_text_line_length, 1000);
    cr_expect_eq(config.max_connections, 1000);
    cr_expect_eq(config.max_connections_per_ip, 50);
    cr_expect_eq(config.max_errors, 20);
    cr_expect_eq(config.max_hops, 100);
    cr_expect_eq(config.max_junk_commands, 100);
    cr_expect_eq(config.timeout_command, 300);
    cr_expect_eq(config.timeout_data, 180);
    cr_expect_eq(config.greeting_delay, 1);
    cr_expect(config.reject_early_talkers);
    config_cleanup(&config);
}

Test(config, cleanup_twice_and_null)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    config_cleanup(&config);
    config_cleanup(&config);
    config_cleanup(NULL);
}

/* ---------------------------------------------------------------------
 * Config: every key from a file */

Test(config, full_file, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "# ringrelay test configuration\n"
                     "listen = [\"127.0.0.1:2526\", \"[::1]:2527\"]\n"
                     "queue_dir = \"/srv/queue\"\n"
                     "hostname = relay.example.com\n"
                     "relay_networks = [10.0.0.0/8, \"::1\", 192.0.2.7]\n"
                     "relay_domains = [Example.COM., example.org]\n"
                     "resolver = \"127.0.0.1:5353\"\n"
                     "smarthost = \"smtp.example.net:587\"\n"
                     "routes {\n"
                     "  \"example.test\" = \"127.0.0.1:2600\"\n"
                     "  other.test = \"mx.other.test\"\n"
                     "}\n"
                     "durability = batch\n"
                     "max_message_size = 25mb\n"
                     "log_level = debug\n");

    cr_assert_eq(config.listen_count, 2);
    cr_expect_eq(config.listen[0].port, 2526);
    cr_expect_str_eq(config.listen[1].host, "::1");
    cr_expect_eq(config.listen[1].port, 2527);
    cr_expect_eq(config.listen[1].addr.ss_family, AF_INET6);
    cr_expect_str_eq(config.queue_dir, "/srv/queue");
    cr_expect_str_eq(config.hostname, "relay.example.com");

    cr_assert_eq(config.relay_network_count, 3);
    cr_expect_eq(config.relay_networks[0].prefix, 8);
    cr_expect_eq(config.relay_networks[1].family, AF_INET6);
    cr_expect_eq(config.relay_networks[1].prefix, 128);
    cr_expect_eq(config.relay_networks[2].prefix, 32);
    cr_assert_eq(config.relay_domain_count, 2);
    cr_expect_str_eq(config.relay_domains[0], "example.com");
    cr_expect_str_eq(config.relay_domains[1], "example.org");

    cr_expect(config.has_resolver);
    cr_expect_eq(config.resolver.port, 5353);
    cr_expect(config.has_smarthost);
    cr_expect_str_eq(config.smarthost.host, "smtp.example.net");
    cr_expect(config.smarthost.is_name);
    cr_expect_eq(config.smarthost.port, 587);
    cr_assert_eq(config.route_count, 2);
    cr_expect_str_eq(config.routes[0].domain, "example.test");
    cr_expect_eq(config.routes[0].hop.port, 2600);
    cr_expect_not(config.routes[0].hop.is_name);
    cr_expect_str_eq(config.routes[1].hop.host, "mx.other.test");
    cr_expect_eq(config.routes[1].hop.port, 25);

    cr_expect_eq(config.durability, QUEUE_DURABILITY_BATCH);
    cr_expect_eq(config.max_message_size, 25 * 1024 * 1024);
    cr_expect_eq(config.log_level, LOG_LEVEL_DEBUG);
    config_cleanup(&config);
}

Test(config, top_level_braces_and_colons, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "{\n"
                     "  listen: 127.0.0.1:3000;\n"
                     "  durability none\n"
                     "}\n");
    cr_expect_eq(config.listen_count, 1);
    cr_expect_eq(config.listen[0].port, 3000);
    cr_expect_eq(config.durability, QUEUE_DURABILITY_NONE);
    cr_expect_str_eq(config.queue_dir, "./var/queue");
    config_cleanup(&config);
}

Test(config, empty_file_keeps_defaults, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "# nothing set\n");
    cr_expect_eq(config.listen_count, 1);
    cr_expect_eq(config.listen[0].port, 2525);
    cr_expect_eq(config.relay_network_count, 1);
    cr_expect_str_eq(config.queue_dir, "./var/queue");
    config_cleanup(&config);
}

Test(config, listen_single_string, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "listen = \"[::1]:2525\"\n");
    cr_assert_eq(config.listen_count, 1);
    cr_expect_eq(config.listen[0].addr.ss_family, AF_INET6);
    cr_expect_eq(config.listen[0].addr_len, sizeof(struct sockaddr_in6));
    cr_expect_eq(ntohs(((struct sockaddr_in6 *)&config.listen[0].addr)
                           ->sin6_port), 2525);
    config_cleanup(&config);
}

Test(config, listen_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    static const char *const values[] = {
        "\"localhost:25\"", "\"127.0.0.1\"", "\"127.0.0.1:0\"",
        "\"127.0.0.1:65536\"", "\"127.0.0.1:port\"", "[]", "2525", "{}",
        "[\"127.0.0.1:25\", 7]", "\"::1\"",
    };
    char text[128];

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(text, sizeof(text), "\nlisten = %s\n", values[i]);
        load_fail(text, 2, "invalid value for 'listen': ");
    }
}

Test(config, listen_too_many, .init = tmp_setup, .fini = tmp_teardown)
{
    char text[1024] = "listen = [";
    size_t len = strlen(text);

    for (int i = 0; i <= CONFIG_MAX_LISTEN; i++) {
        len += (size_t)snprintf(text + len, sizeof(text) - len,
                                "\"127.0.0.1:%d\", ", 3000 + i);
    }
    snprintf(text + len, sizeof(text) - len, "]\n");
    load_fail(text, 1, "invalid value for 'listen': more than 16");
}

Test(config, listen_error_names_item_line, .init = tmp_setup,
     .fini = tmp_teardown)
{
    load_fail("listen = [\n"
              "  \"127.0.0.1:25\",\n"
              "  \"bogus\",\n"
              "]\n",
              3, "invalid value for 'listen': 'bogus' is not IP:PORT");
}

Test(config, listen_duplicate_address, .init = tmp_setup,
     .fini = tmp_teardown)
{
    load_fail("listen = [\"127.0.0.1:2601\", \"127.0.0.1:2601\"];\n", 1,
              "invalid value for 'listen': '127.0.0.1:2601' is listed twice");
}

Test(config, queue_dir_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail("queue_dir = \"\"\n", 1, "invalid value for 'queue_dir'");
    load_fail("queue_dir = 5\n", 1,
              "invalid value for 'queue_dir': expected a string, found "
              "number");
    load_fail("queue_dir = [a]\n", 1, "invalid value for 'queue_dir'");
}

Test(config, hostname_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    static const char *const values[] = {
        "\".example.com\"", "\"bad_name\"", "\"a..b\"", "\"-a.example\"",
        "\"\"", "\"127.0.0.300\"", "true",
    };
    char text[128];

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(text, sizeof(text), "hostname = %s\n", values[i]);
        load_fail(text, 1, "invalid value for 'hostname': ");
    }
}

Test(config, relay_networks_replace_default, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct config config;
    struct sockaddr_storage ss;

    load_ok(&config, "relay_networks = []\n");
    cr_expect_eq(config.relay_network_count, 0);
    config_cleanup(&config);

    load_ok(&config, "relay_networks = \"192.0.2.0/24\"\n");
    cr_assert_eq(config.relay_network_count, 1);
    sockaddr_v4(&ss, "127.0.0.1");
    cr_expect_not(netaddr_cidr_match(&config.relay_networks[0], as_sa(&ss)));
    sockaddr_v4(&ss, "192.0.2.200");
    cr_expect(netaddr_cidr_match(&config.relay_networks[0], as_sa(&ss)));
    config_cleanup(&config);
}

Test(config, relay_networks_invalid, .init = tmp_setup,
     .fini = tmp_teardown)
{
    static const char *const values[] = {
        "[10.0.0.0/33]", "[\"::/129\"]", "[example.com]", "[10.0.0.0/]",
        "[\"10.0.0.0/-1\"]", "[1]", "yes",
    };
    char text[128];

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(text, sizeof(text), "relay_networks = %s\n", values[i]);
        load_fail(text, 1, "invalid value for 'relay_networks': ");
    }
}

Test(config, relay_domains_invalid, .init = tmp_setup,
     .fini = tmp_teardown)
{
    static const char *const values[] = {
        "[\"exa mple.com\"]", "[\".example.com\"]", "[\"example..com\"]",
        "[\".\"]", "[\"192.0.2.1\"]", "[{}]",
    };
    char text[128];

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(text, sizeof(text), "relay_domains = %s\n", values[i]);
        load_fail(text, 1, "invalid value for 'relay_domains': ");
    }
}

Test(config, resolver_values, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "resolver = 192.0.2.53\n");
    cr_expect(config.has_resolver);
    cr_expect_eq(config.resolver.port, 53);
    cr_expect_not(config.resolver.is_name);
    config_cleanup(&config);

    load_ok(&config, "resolver = \"[::1]:5353\"\n");
    cr_expect_eq(config.resolver.port, 5353);
    cr_expect_eq(config.resolver.addr.ss_family, AF_INET6);
    config_cleanup(&config);

    load_fail("resolver = \"ns.example.com\"\n", 1,
              "invalid value for 'resolver': 'ns.example.com' is not IP");
    load_fail("resolver = \"127.0.0.1:99999\"\n", 1,
              "invalid value for 'resolver': ");
}

Test(config, smarthost_values, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "smarthost = smtp.example.net\n");
    cr_expect(config.has_smarthost);
    cr_expect(config.smarthost.is_name);
    cr_expect_eq(config.smarthost.port, 25);
    config_cleanup(&config);

    load_ok(&config, "smarthost = \"[2001:db8::1]:2525\"\n");
    cr_expect_not(config.smarthost.is_name);
    cr_expect_str_eq(config.smarthost.host, "2001:db8::1");
    cr_expect_eq(config.smarthost.port, 2525);
    config_cleanup(&config);

    load_fail("smarthost = \"bad host:25\"\n", 1,
              "invalid value for 'smarthost': ");
    load_fail("smarthost = [a]\n", 1, "invalid value for 'smarthost': ");
}

Test(config, routes_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail("routes = [a]\n", 1,
              "invalid value for 'routes': expected an object, found "
              "array");
    load_fail("routes {\n  \"bad domain\" = \"mx:25\"\n}\n", 2,
              "invalid value for 'routes': 'bad domain' is not a domain");
    load_fail("routes {\n  a.test = \"mx:0\"\n}\n", 2,
              "invalid value for 'routes': 'mx:0' is not HOST");
    load_fail("routes {\n  a.test = 25\n}\n", 2,
              "invalid value for 'routes': expected a string");
    load_fail("routes {\n  a.test = \"mx\"\n  A.TEST. = \"mx2\"\n}\n", 3,
              "invalid value for 'routes': duplicate route for 'a.test'");
}

Test(config, durability_values, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "durability = \"none\"\n");
    cr_expect_eq(config.durability, QUEUE_DURABILITY_NONE);
    config_cleanup(&config);
    load_ok(&config, "durability = fsync\n");
    cr_expect_eq(config.durability, QUEUE_DURABILITY_FSYNC);
    config_cleanup(&config);

    load_fail("durability = sometimes\n", 1,
              "invalid value for 'durability': 'sometimes' is not fsync");
    load_fail("durability = FSYNC\n", 1, "invalid value for 'durability'");
}

Test(config, queue_sync_defaults)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    cr_expect_eq(config.batch_wait, 1000);
    cr_expect_eq(config.queue_max_size, 0);
    cr_expect_eq(config.queue_min_free, 64ULL * 1024 * 1024);
    config_cleanup(&config);
}

Test(config, batch_wait_bounds, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "batch_wait = 0\n");
    cr_expect_eq(config.batch_wait, 0);
    config_cleanup(&config);
    load_ok(&config, "batch_wait = 100k\n");
    cr_expect_eq(config.batch_wait, 100000);
    config_cleanup(&config);

    load_fail("batch_wait = 100001\n", 1,
              "invalid value for 'batch_wait': 100001 is outside 0..100000");
    load_fail("batch_wait = 1s\n", 1,
              "invalid value for 'batch_wait': expected a whole number");
}

Test(config, queue_space_keys, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;
    char err[512] = "";

    load_ok(&config, "queue_max_size = 2gb\nqueue_min_free = 0\n");
    cr_expect_eq(config.queue_max_size, 2147483648ULL);
    cr_expect_eq(config.queue_min_free, 0);
    config_cleanup(&config);
    load_ok(&config, "queue_max_size = 1mb\nmax_message_size = 1mb\n");
    cr_expect_eq(config.queue_max_size, 1048576);
    config_cleanup(&config);

    /* A message the limit cannot hold would be deferred forever. */
    write_file("queue_max_size = 1mb\nmax_message_size = 2mb\n");
    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), -1);
    cr_expect(strstr(err, ": queue_max_size (1048576 bytes) is smaller "
                     "than max_message_size (2097152 bytes)") != NULL,
              "%s", err);
    config_cleanup(&config);

    load_fail("queue_max_size = 1000\n", 1,
              "invalid value for 'queue_max_size': 1000 is outside 1mb");
    load_fail("queue_min_free = -5\n", 1,
              "invalid value for 'queue_min_free': -5 is outside");
    load_fail("queue_min_free = 10min\n", 1,
              "invalid value for 'queue_min_free': expected a number of "
              "bytes");
}

Test(config, segment_size_bounds, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    cr_expect_eq(config.segment_size, 64ULL * 1024 * 1024);
    config_cleanup(&config);
    load_ok(&config, "segment_size = 256kb\n");
    cr_expect_eq(config.segment_size, 262144);
    config_cleanup(&config);
    load_ok(&config, "segment_size = 1gb\n");
    cr_expect_eq(config.segment_size, 1073741824ULL);
    config_cleanup(&config);

    load_fail_exact("segment_size = 100kb\n", 1, "invalid value for "
                    "'segment_size': 100kb is outside 256kb..1024gb");
    load_fail("segment_size = 1h\n", 1, "invalid value for 'segment_size': "
              "expected a number of bytes");
}

Test(config, max_message_size_bounds, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "max_message_size = 1kb\n");
    cr_expect_eq(config.max_message_size, 1024);
    config_cleanup(&config);
    load_ok(&config, "max_message_size = 2GB\n");
    cr_expect_eq(config.max_message_size, 2147483648ULL);
    config_cleanup(&config);
    load_ok(&config, "max_message_size = 50000\n");
    cr_expect_eq(config.max_message_size, 50000);
    config_cleanup(&config);

    load_fail("max_message_size = 1023\n", 1,
              "invalid value for 'max_message_size': 1023 is outside");
    load_fail("max_message_size = 2147483649\n", 1,
              "invalid value for 'max_message_size': ");
    load_fail("max_message_size = -1\n", 1,
              "invalid value for 'max_message_size': ");
    load_fail("max_message_size = \"10mb\"\n", 1,
              "invalid value for 'max_message_size': expected a number");
}

Test(config, limits_from_file, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "max_recipients = 100\n"
                     "max_line_length = 512\n"
                     "max_text_line_length = 2k\n"
                     "max_connections = 20\n"
                     "max_connections_per_ip = 2\n"
                     "max_errors = 3\n"
                     "max_hops = 5\n"
                     "max_junk_commands = 7\n"
                     "timeout_command = 5min\n"
                     "timeout_data = 90\n"
                     "greeting_delay = 0s\n"
                     "reject_early_talkers = no\n");
    cr_expect_eq(config.max_recipients, 100);
    cr_expect_eq(config.max_line_length, 512);
    cr_expect_eq(config.max_text_line_length, 2000);
    cr_expect_eq(config.max_connections, 20);
    cr_expect_eq(config.max_connections_per_ip, 2);
    cr_expect_eq(config.max_errors, 3);
    cr_expect_eq(config.max_hops, 5);
    cr_expect_eq(config.max_junk_commands, 7);
    cr_expect_eq(config.timeout_command, 300);
    cr_expect_eq(config.timeout_data, 90);
    cr_expect_eq(config.greeting_delay, 0);
    cr_expect_not(config.reject_early_talkers);
    config_cleanup(&config);

    load_ok(&config, "max_text_line_length = 0\ntimeout_data = 1h\n"
                     "greeting_delay = 1min\n");
    cr_expect_eq(config.max_text_line_length, 0);
    cr_expect_eq(config.timeout_data, 3600);
    cr_expect_eq(config.greeting_delay, 60);
    config_cleanup(&config);
}

Test(config, limits_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    static const struct {
        const char *text;
        const char *reason;
    } cases[] = {
        {"max_recipients = 99\n", "invalid value for 'max_recipients': 99 "
         "is outside 100..100000"},
        {"max_recipients = 100001\n", "invalid value for 'max_recipients': "
         "100001 is outside 100..100000"},
        {"max_recipients = \"many\"\n", "invalid value for "
         "'max_recipients': expected a whole number, found string"},
        {"max_recipients = 200s\n", "invalid value for 'max_recipients': "
         "expected a whole number, found a duration"},
        {"batch_wait = 1.5\n", "invalid value for 'batch_wait': "
         "expected a whole number, found a fraction"},
        {"max_line_length = 511\n", "invalid value for 'max_line_length': "
         "511 is outside 512..65536"},
        {"max_text_line_length = 999\n", "invalid value for "
         "'max_text_line_length': 999 is outside 1000..1048576 (0 turns "
         "the check off)"},
        {"max_connections = 0\n", "invalid value for 'max_connections': 0 "
         "is outside 1..100000"},
        {"max_connections_per_ip = -1\n", "invalid value for "
         "'max_connections_per_ip': -1 is outside 1..100000"},
        {"max_errors = 1001\n", "invalid value for 'max_errors': 1001 is "
         "outside 1..1000"},
        {"max_hops = 0\n", "invalid value for 'max_hops': 0 is outside "
         "1..1000"},
        {"max_hops = 1001\n", "invalid value for 'max_hops': 1001 is "
         "outside 1..1000"},
        {"max_junk_commands = 0\n", "invalid value for "
         "'max_junk_commands': 0 is outside 1..1000000"},
        {"max_errors = [1]\n", "invalid value for 'max_errors': expected "
         "a whole number, found array"},
        {"timeout_command = 0\n", "invalid value for 'timeout_command': 0 "
         "is outside 1s..1h"},
        {"timeout_command = 5m\n", "invalid value for 'timeout_command': "
         "5m is outside 1s..1h (m multiplies by 1000000; write min for "
         "minutes)"},
        {"timeout_data = 2h\n", "invalid value for 'timeout_data': 2h is "
         "outside 1s..1h"},
        {"timeout_data = fast\n", "invalid value for 'timeout_data': "
         "expected a number of seconds such as 30 or 5min, found string"},
        {"greeting_delay = 61\n", "invalid value for 'greeting_delay': 61 "
         "is outside 0s..1min"},
        {"reject_early_talkers = 1\n", "invalid value for "
         "'reject_early_talkers': expected a boolean, found number"},
        {"max_message_size = 10s\n", "invalid value for "
         "'max_message_size': expected a number of bytes such as 10mb, "
         "found a duration"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        load_fail_exact(cases[i].text, 1, cases[i].reason);
    }
}

Test(config, mx_delivery_keys, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    cr_expect_not(config.mx_allow_loopback);
    cr_expect_eq(config.max_mx_hosts, 5);
    cr_expect_eq(config.max_mx_addresses, 10);
    config_cleanup(&config);

    load_ok(&config, "mx_allow_loopback = true\nmax_mx_hosts = 10\n"
                     "max_mx_addresses = 80\n");
    cr_expect(config.mx_allow_loopback);
    cr_expect_eq(config.max_mx_hosts, 10);
    cr_expect_eq(config.max_mx_addresses, 80);
    config_cleanup(&config);

    load_fail_exact("max_mx_hosts = 0\n", 1, "invalid value for "
                    "'max_mx_hosts': 0 is outside 1..10");
    load_fail_exact("max_mx_hosts = 11\n", 1, "invalid value for "
                    "'max_mx_hosts': 11 is outside 1..10");
    load_fail_exact("max_mx_addresses = 81\n", 1, "invalid value for "
                    "'max_mx_addresses': 81 is outside 1..80");
    load_fail_exact("mx_allow_loopback = 1\n", 1, "invalid value for "
                    "'mx_allow_loopback': expected a boolean, found number");
}

Test(config, resolver_max_queries, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    cr_expect_eq(config.resolver_max_queries, 100);
    config_cleanup(&config);

    load_ok(&config, "resolver_max_queries = 1\n");
    cr_expect_eq(config.resolver_max_queries, 1);
    config_cleanup(&config);

    load_ok(&config, "resolver_max_queries = 100000\n");
    cr_expect_eq(config.resolver_max_queries, 100000);
    config_cleanup(&config);

    load_fail_exact("resolver_max_queries = 0\n", 1, "invalid value for "
                    "'resolver_max_queries': 0 is outside 1..100000");
    load_fail_exact("resolver_max_queries = 100001\n", 1,
                    "invalid value for 'resolver_max_queries': 100001 is "
                    "outside 1..100000");
}

Test(config, retry_schedule, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;
    char err[512] = "";
    char expected[PATH_MAX + 300];

    cr_assert_eq(config_init(&config), 0);
    cr_expect_eq(config.retry_interval, 60);
    cr_expect_eq(config.retry_max_interval, 3600);
    config_cleanup(&config);

    load_ok(&config, "retry_interval = 5min\nretry_max_interval = 2h\n");
    cr_expect_eq(config.retry_interval, 300);
    cr_expect_eq(config.retry_max_interval, 7200);
    config_cleanup(&config);

    load_fail_exact("retry_interval = 0\n", 1, "invalid value for "
                    "'retry_interval': 0 is outside 1s..1d");
    load_fail_exact("retry_max_interval = 8d\n", 1, "invalid value for "
                    "'retry_max_interval': 8d is outside 1s..7d");

    /* Each value is valid alone; together the schedule would shrink. */
    write_file("retry_interval = 10min\nretry_max_interval = 5min\n");
    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), -1);
    snprintf(expected, sizeof(expected), "%s: retry_max_interval (300s) "
             "is shorter than retry_interval (600s); raise "
             "retry_max_interval too", tmp_file);
    cr_expect_str_eq(err, expected);
    cr_expect_eq(config.retry_interval, 60, "a failed load keeps values");
    config_cleanup(&config);
}

Test(config, lifetime_and_delay_warning, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    cr_expect_eq(config.queue_lifetime, 5 * 86400);
    cr_expect_eq(config.delay_warning, 0, "delay warnings are off");
    config_cleanup(&config);

    load_ok(&config, "queue_lifetime = 2d\ndelay_warning = 4h\n");
    cr_expect_eq(config.queue_lifetime, 2 * 86400);
    cr_expect_eq(config.delay_warning, 4 * 3600);
    config_cleanup(&config);

    load_ok(&config, "queue_lifetime = 5s\ndelay_warning = 0\n");
    cr_expect_eq(config.queue_lifetime, 5);
    cr_expect_eq(config.delay_warning, 0);
    config_cleanup(&config);

    load_fail_exact("queue_lifetime = 0\n", 1, "invalid value for "
                    "'queue_lifetime': 0 is outside 1s..365d");
    load_fail_exact("delay_warning = 400d\n", 1, "invalid value for "
                    "'delay_warning': 400d is outside 0s..365d");
    load_fail_exact("delay_warning = \"soon\"\n", 1, "invalid value "
                    "for 'delay_warning': expected a number of seconds "
                    "such as 30 or 5min, found string");
}

Test(config, queue_dir_fits_control_socket, .init = tmp_setup,
     .fini = tmp_teardown)
{
    char long_dir[120];
    char text[200];
    char err[512] = "";
    struct config config;

    /* 99 bytes plus "/control" is the longest path sun_path holds. */
    memset(long_dir, 'q', 99);
    long_dir[0] = '/';
    long_dir[99] = '\0';
    snprintf(text, sizeof(text), "queue_dir = \"%s\"\n", long_dir);
    load_ok(&config, text);
    config_cleanup(&config);

    strcat(long_dir, "q");
    snprintf(text, sizeof(text), "queue_dir = \"%s\"\n", long_dir);
    write_file(text);
    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), -1);
    cr_expect(strstr(err, "queue_dir is too long: the control socket ") !=
              NULL && strstr(err, "/control must fit in 107 bytes") != NULL,
              "%s", err);
    config_cleanup(&config);
}

Test(config, log_level_values, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "log_level = warning\n");
    cr_expect_eq(config.log_level, LOG_LEVEL_WARNING);
    config_cleanup(&config);
    load_ok(&config, "log_level = \"error\"\n");
    cr_expect_eq(config.log_level, LOG_LEVEL_ERROR);
    config_cleanup(&config);

    load_fail("log_level = verbose\n", 1,
              "invalid value for 'log_level': 'verbose' is not debug");
}

Test(config, unknown_key, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail("# comment\nlisten = \"127.0.0.1:25\"\nlisn = 1\n", 3,
              "unknown key 'lisn'");
    load_fail("Listen = \"127.0.0.1:25\"\n", 1, "unknown key 'Listen'");
}

Test(config, duplicate_key, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail("hostname = a.example\n\nhostname = b.example\n", 3,
              "duplicate key 'hostname' (first set at line 1)");
}

Test(config, parse_error_has_file_and_line, .init = tmp_setup,
     .fini = tmp_teardown)
{
    load_fail("hostname = a.example\nqueue_dir = \"open\n", 2,
              "unterminated string");
}

Test(config, missing_file)
{
    struct config config;
    char err[512];
    char expected[512];
    const char *path = "/nonexistent-ringrelay/ringrelay.conf";

    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, path, err, sizeof(err)), -1);
    snprintf(expected, sizeof(expected), "%s: cannot open: %s", path,
             strerror(ENOENT));
    cr_expect_str_eq(err, expected);
    config_cleanup(&config);
}

Test(config, directory_is_read_error, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct config config;
    char err[512];

    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, tmp_dir, err, sizeof(err)), -1);
    cr_expect(strstr(err, "cannot read") != NULL, "%s", err);
    config_cleanup(&config);
}

Test(config, failed_load_leaves_config_unchanged, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct config config;
    char err[512];

    load_ok(&config, "queue_dir = /first\nrelay_domains = [a.example]\n");
    write_file("queue_dir = /second\n"
               "relay_domains = [b.example]\n"
               "routes { c.example = mx.example }\n"
               "log_level = loud\n");
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), -1);
    cr_expect_str_eq(config.queue_dir, "/first");
    cr_assert_eq(config.relay_domain_count, 1);
    cr_expect_str_eq(config.relay_domains[0], "a.example");
    cr_expect_eq(config.route_count, 0);
    cr_expect_eq(config.log_level, LOG_LEVEL_INFO);
    config_cleanup(&config);
}

Test(config, second_load_replaces_values, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct config config;
    char err[512];

    load_ok(&config, "queue_dir = /first\nrelay_domains = [a.example]\n");
    write_file("relay_domains = [b.example, c.example]\n");
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), 0, "%s",
                 err);
    cr_expect_str_eq(config.queue_dir, "/first");
    cr_assert_eq(config.relay_domain_count, 2);
    cr_expect_str_eq(config.relay_domains[0], "b.example");
    config_cleanup(&config);
}

Test(config, route_lookup, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;
    const struct netaddr_hostport *hop;

    load_ok(&config, "routes {\n"
                     "  Example.TEST = \"127.0.0.1:2600\"\n"
                     "  \"other.test.\" = \"mx.other.test:2601\"\n"
                     "}\n");
    hop = config_route_for(&config, "example.test");
    cr_assert_not_null(hop);
    cr_expect_eq(hop->port, 2600);
    hop = config_route_for(&config, "EXAMPLE.test.");
    cr_assert_not_null(hop);
    cr_expect_eq(hop->port, 2600);
    hop = config_route_for(&config, "Other.Test");
    cr_assert_not_null(hop);
    cr_expect_eq(hop->port, 2601);
    cr_expect_null(config_route_for(&config, "sub.example.test"));
    cr_expect_null(config_route_for(&config, "example.tes"));
    cr_expect_null(config_route_for(&config, "example.test.."));
    config_cleanup(&config);
}

Test(config, route_falls_back_to_smarthost, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct config config;
    const struct netaddr_hostport *hop;

    load_ok(&config, "smarthost = relay.example.net:2525\n"
                     "routes { a.test = \"127.0.0.1:26\" }\n");
    hop = config_route_for(&config, "a.test");
    cr_assert_not_null(hop);
    cr_expect_eq(hop->port, 26);
    hop = config_route_for(&config, "b.test");
    cr_assert_not_null(hop);
    cr_expect_eq(hop, &config.smarthost);
    cr_expect_str_eq(hop->host, "relay.example.net");
    config_cleanup(&config);
}

/* ---------------------------------------------------------------------
 * netaddr */

Test(netaddr, hostport_valid)
{
    static const struct {
        const char *text;
        uint16_t default_port;
        const char *host;
        uint16_t port;
        bool is_name;
        int family;             /* 0 for names */
    } cases[] = {
        {"127.0.0.1:25", 0, "127.0.0.1", 25, false, AF_INET},
        {"[::1]:25", 0, "::1", 25, false, AF_INET6},
        {"mx.example.com:2526", 0, "mx.example.com", 2526, true, 0},
        {"mx.example.com", 25, "mx.example.com", 25, true, 0},
        {"192.0.2.1", 53, "192.0.2.1", 53, false, AF_INET},
        {"[2001:db8::1]", 25, "2001:db8::1", 25, false, AF_INET6},
        {"::1", 53, "::1", 53, false, AF_INET6},
        {"localhost:65535", 0, "localhost", 65535, true, 0},
        {"h:1", 0, "h", 1, true, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct netaddr_hostport hp;

        cr_assert_eq(netaddr_parse_hostport(cases[i].text,
                                            cases[i].default_port, &hp),
                     0, "%s", cases[i].text);
        cr_expect_str_eq(hp.host, cases[i].host, "%s", cases[i].text);
        cr_expect_eq(hp.port, cases[i].port, "%s", cases[i].text);
        cr_expect_eq(hp.is_name, cases[i].is_name, "%s", cases[i].text);
        if (cases[i].family != 0) {
            cr_expect_eq(hp.addr.ss_family, cases[i].family, "%s",
                         cases[i].text);
        } else {
            cr_expect_eq(hp.addr_len, 0, "%s", cases[i].text);
        }
    }
}

Test(netaddr, hostport_invalid)
{
    static const struct {
        const char *text;
        uint16_t default_port;
    } cases[] = {
        {"127.0.0.1", 0},        {"127.0.0.1:0", 0},
        {"127.0.0.1:65536", 0},  {"127.0.0.1:", 25},
        {"127.0.0.1:x", 0},      {"127.0.0.1:+25", 0},
        {"127.0.0.1:25x", 0},    {"127.0.0.1:123456", 0},
        {":25", 0},              {"", 25},
        {"[::1]", 0},            {"[::1]:", 25},
        {"[::1]25", 25},         {"[::1", 25},
        {"[1.2.3.4]:25", 0},     {"[mx.example.com]:25", 0},
        {"::1:25", 0},           {"bad_host:25", 0},
        {"-bad.example:25", 0},  {"a..b:25", 0},
        {"127.0.0.300:25", 0},   {"host name:25", 0},
        {".example.com", 25},    {"example.com.:25", 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct netaddr_hostport hp;

        cr_expect_eq(netaddr_parse_hostport(cases[i].text,
                                            cases[i].default_port, &hp),
                     -1, "'%s' was accepted", cases[i].text);
    }
}

Test(netaddr, hostport_long_name)
{
    char name[300];
    char text[320];
    struct netaddr_hostport hp;

    /* Four labels of 63 bytes and three dots make 255 bytes, over the
     * 253-byte limit. */
    memset(name, 'a', sizeof(name));
    for (int i = 63; i < 255; i += 64) {
        name[i] = '.';
    }
    name[255] = '\0';
    snprintf(text, sizeof(text), "%s:25", name);
    cr_expect_eq(netaddr_parse_hostport(text, 0, &hp), -1);

    name[253] = '\0';
    cr_expect(netaddr_is_hostname(name));
    snprintf(text, sizeof(text), "%s:25", name);
    cr_expect_eq(netaddr_parse_hostport(text, 0, &hp), 0);
}

Test(netaddr, hostname_labels)
{
    char label[70];

    cr_expect(netaddr_is_hostname("localhost"));
    cr_expect(netaddr_is_hostname("a-b.example"));
    cr_expect(netaddr_is_hostname("123.example"));
    cr_expect_not(netaddr_is_hostname(""));
    cr_expect_not(netaddr_is_hostname("a-.example"));
    cr_expect_not(netaddr_is_hostname("example."));
    cr_expect_not(netaddr_is_hostname("1234"));

    memset(label, 'a', 63);
    label[63] = '\0';
    cr_expect(netaddr_is_hostname(label));
    memset(label, 'a', 64);
    label[64] = '\0';
    cr_expect_not(netaddr_is_hostname(label));
}

Test(netaddr, cidr_parse)
{
    struct netaddr_cidr net;

    cr_assert_eq(netaddr_parse_cidr("10.1.2.3/8", &net), 0);
    cr_expect_eq(net.family, AF_INET);
    cr_expect_eq(net.prefix, 8);
    cr_expect_eq(net.bytes[3], 3, "host bits are kept as written");
    cr_assert_eq(netaddr_parse_cidr("192.0.2.1", &net), 0);
    cr_expect_eq(net.prefix, 32);
    cr_assert_eq(netaddr_parse_cidr("2001:db8::/32", &net), 0);
    cr_expect_eq(net.family, AF_INET6);
    cr_expect_eq(net.prefix, 32);
    cr_assert_eq(netaddr_parse_cidr("::1", &net), 0);
    cr_expect_eq(net.prefix, 128);
    cr_assert_eq(netaddr_parse_cidr("0.0.0.0/0", &net), 0);
    cr_expect_eq(net.prefix, 0);
    cr_assert_eq(netaddr_parse_cidr("::/0", &net), 0);
    cr_expect_eq(net.prefix, 0);

    cr_expect_eq(netaddr_parse_cidr("10.0.0.0/33", &net), -1);
    cr_expect_eq(netaddr_parse_cidr("::/129", &net), -1);
    cr_expect_eq(netaddr_parse_cidr("10.0.0.0/", &net), -1);
    cr_expect_eq(netaddr_parse_cidr("10.0.0.0/8x", &net), -1);
    cr_expect_eq(netaddr_parse_cidr("10.0.0.0/-8", &net), -1);
    cr_expect_eq(netaddr_parse_cidr("10.0.0.0/0008", &net), -1);
    cr_expect_eq(netaddr_parse_cidr("/8", &net), -1);
    cr_expect_eq(netaddr_parse_cidr("10.0.0/8", &net), -1);
    cr_expect_eq(netaddr_parse_cidr("example.com/8", &net), -1);
    cr_expect_eq(netaddr_parse_cidr("", &net), -1);
}

/* Parses net and reports whether ip, written as IPv4 or IPv6, is in it. */
static bool in_net(const char *net_text, const char *ip)
{
    struct netaddr_cidr net;
    struct sockaddr_storage ss;

    cr_assert_eq(netaddr_parse_cidr(net_text, &net), 0, "%s", net_text);
    if (strchr(ip, ':') != NULL) {
        sockaddr_v6(&ss, ip);
    } else {
        sockaddr_v4(&ss, ip);
    }
    return netaddr_cidr_match(&net, as_sa(&ss));
}

Test(netaddr, cidr_match_v4)
{
    cr_expect(in_net("127.0.0.1/32", "127.0.0.1"));
    cr_expect_not(in_net("127.0.0.1/32", "127.0.0.2"));
    cr_expect(in_net("127.0.0.1", "127.0.0.1"));
    cr_expect(in_net("10.0.0.0/8", "10.255.1.2"));
    cr_expect_not(in_net("10.0.0.0/8", "11.0.0.0"));
    cr_expect(in_net("10.9.9.9/8", "10.1.1.1"));
    cr_expect(in_net("192.0.2.0/20", "192.0.15.255"));
    cr_expect_not(in_net("192.0.2.0/20", "192.0.16.0"));
    cr_expect(in_net("0.0.0.0/0", "203.0.113.9"));
    cr_expect(in_net("0.0.0.0/0", "255.255.255.255"));
    cr_expect_not(in_net("0.0.0.0/0", "2001:db8::1"));
}

Test(netaddr, cidr_match_v6)
{
    cr_expect(in_net("::1/128", "::1"));
    cr_expect_not(in_net("::1/128", "::2"));
    cr_expect(in_net("2001:db8::/32", "2001:db8:ffff::1"));
    cr_expect_not(in_net("2001:db8::/32", "2001:db9::1"));
    cr_expect(in_net("2001:db8::/33", "2001:db8:7fff::1"));
    cr_expect_not(in_net("2001:db8::/33", "2001:db8:8000::1"));
    cr_expect(in_net("::/0", "2001:db8::1"));
    cr_expect_not(in_net("::1/128", "127.0.0.1"));
}

Test(netaddr, cidr_match_mapped)
{
    cr_expect(in_net("127.0.0.1/32", "::ffff:127.0.0.1"));
    cr_expect_not(in_net("127.0.0.1/32", "::ffff:127.0.0.2"));
    cr_expect(in_net("10.0.0.0/8", "::ffff:10.2.3.4"));
    cr_expect(in_net("0.0.0.0/0", "::ffff:192.0.2.1"));
    cr_expect_not(in_net("0.0.0.0/0", "::1"));
    cr_expect_not(in_net("127.0.0.1/32", "::127.0.0.1"));
    cr_expect(in_net("::ffff:10.0.0.0/104", "10.1.2.3"));
}

Test(netaddr, cidr_match_other_family)
{
    struct netaddr_cidr net;
    struct sockaddr_storage ss;

    cr_assert_eq(netaddr_parse_cidr("0.0.0.0/0", &net), 0);
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    cr_expect_not(netaddr_cidr_match(&net, as_sa(&ss)));
    cr_expect_not(netaddr_cidr_match(&net, NULL));
}

Test(netaddr, format)
{
    struct sockaddr_storage ss;
    char buf[INET6_ADDRSTRLEN];
    char small[4];

    sockaddr_v4(&ss, "192.0.2.1");
    cr_expect_str_eq(netaddr_format(as_sa(&ss), buf, sizeof(buf)),
                     "192.0.2.1");
    sockaddr_v6(&ss, "2001:db8::1");
    cr_expect_str_eq(netaddr_format(as_sa(&ss), buf, sizeof(buf)),
                     "2001:db8::1");
    sockaddr_v6(&ss, "::ffff:10.0.0.1");
    cr_expect_str_eq(netaddr_format(as_sa(&ss), buf, sizeof(buf)),
                     "::ffff:10.0.0.1");
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    cr_expect_str_eq(netaddr_format(as_sa(&ss), buf, sizeof(buf)),
                     "unknown");
    sockaddr_v4(&ss, "192.0.2.1");
    cr_expect_str_eq(netaddr_format(as_sa(&ss), small, sizeof(small)),
                     "unk");
}

Test(config, postmaster_default_none)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    cr_assert_null(config.postmaster);
    config_cleanup(&config);
}

Test(config, postmaster_address, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "postmaster = \"ops.team+mail@example.com\";\n");
    cr_assert_str_eq(config.postmaster, "ops.team+mail@example.com");
    config_cleanup(&config);
}

Test(config, postmaster_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    static const char *const values[] = {
        "\"postmaster\"", "\"@example.com\"", "\"a@\"", "\"a b@example.com\"",
        "\"<a@example.com>\"", "\"a..b@example.com\"", "\".a@example.com\"",
        "\"a.@example.com\"", "\"a@bad_host\"", "\"\"", "42",
        /* RFC 5321 section 4.5.3.1.1: a local part has at most 64
         * octets; this one has 65. */
        "\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "@example.com\"",
    };
    char text[160];

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(text, sizeof(text), "postmaster = %s\n", values[i]);
        load_fail(text, 1, "invalid value for 'postmaster': ");
    }
}

Test(config, auth_keys, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    cr_expect_null(config.auth_users_file);
    cr_expect_not(config.auth_plaintext);
    cr_expect_eq(config.auth_max_failures, 3);
    cr_expect(config.auth_received_header);
    config_cleanup(&config);

    load_ok(&config, "auth_users_file = \"/etc/ringrelay/users\"\n"
                     "auth_plaintext = true\n"
                     "auth_max_failures = 5\n"
                     "auth_received_header = false\n");
    cr_expect_str_eq(config.auth_users_file, "/etc/ringrelay/users");
    cr_expect(config.auth_plaintext);
    cr_expect_eq(config.auth_max_failures, 5);
    cr_expect_not(config.auth_received_header);
    config_cleanup(&config);
}

Test(config, auth_keys_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail("auth_users_file = \"\"\n", 1,
              "invalid value for 'auth_users_file': the file name must not "
              "be empty");
    load_fail("\nauth_plaintext = 1\n", 2,
              "invalid value for 'auth_plaintext': expected a boolean");
    load_fail("auth_max_failures = 0\n", 1,
              "invalid value for 'auth_max_failures'");
    load_fail("auth_max_failures = 101\n", 1,
              "invalid value for 'auth_max_failures'");
    load_fail("auth_received_header = \"yes\"\n", 1,
              "invalid value for 'auth_received_header'");
}

/* ---------------------------------------------------------------------
 * TLS keys */

Test(config, tls_default_off)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    cr_assert_null(config.tls_cert);
    cr_assert_null(config.tls_key);
    cr_assert_eq(config.tls_listen_count, 0);
    cr_assert_not(config.tls_min_version_1_3);
    cr_assert_null(config.tls_ciphers);
    cr_assert_eq(config.tls_sni_count, 0);
    config_cleanup(&config);
}

Test(config, tls_keys, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config,
            "tls_cert = /etc/ssl/relay.crt\n"
            "tls_key = \"/etc/ssl/relay.key\"\n"
            "tls_listen = [\"127.0.0.1:4650\", \"[::1]:4650\"]\n"
            "tls_min_version = 1.3\n"
            "tls_ciphers = \"ECDHE+AESGCM\"\n"
            "tls_sni {\n"
            "  \"Mail.Example.com.\" { cert = /a.crt; key = /a.key; }\n"
            "  \"*.example.org\" { key = /b.key; cert = /b.crt }\n"
            "}\n");
    cr_assert_str_eq(config.tls_cert, "/etc/ssl/relay.crt");
    cr_assert_str_eq(config.tls_key, "/etc/ssl/relay.key");
    cr_assert_eq(config.tls_listen_count, 2);
    cr_assert_eq(config.tls_listen[0].port, 4650);
    cr_assert_eq(config.tls_listen[1].addr.ss_family, AF_INET6);
    cr_assert(config.tls_min_version_1_3);
    cr_assert_str_eq(config.tls_ciphers, "ECDHE+AESGCM");
    cr_assert_eq(config.tls_sni_count, 2);
    cr_assert_str_eq(config.tls_sni[0].host, "mail.example.com");
    cr_assert_str_eq(config.tls_sni[0].cert, "/a.crt");
    cr_assert_str_eq(config.tls_sni[0].key, "/a.key");
    cr_assert_str_eq(config.tls_sni[1].host, "*.example.org");
    cr_assert_str_eq(config.tls_sni[1].cert, "/b.crt");
    cr_assert_str_eq(config.tls_sni[1].key, "/b.key");
    config_cleanup(&config);
}

Test(config, tls_min_version_invalid, .init = tmp_setup,
     .fini = tmp_teardown)
{
    load_fail("tls_min_version = 1.1\n", 1,
              "invalid value for 'tls_min_version': '1.1' is not 1.2 "
              "or 1.3");
    load_fail("tls_min_version = 13\n", 1,
              "invalid value for 'tls_min_version': expected a string");
}

Test(config, tls_empty_file_name, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail("tls_cert = \"\"\n", 1,
              "invalid value for 'tls_cert': the file name must not be "
              "empty");
}

Test(config, tls_half_pair, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;
    char err[512] = "";

    write_file("tls_cert = /a.crt\n");
    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), -1);
    cr_assert(strstr(err, "tls_cert needs both tls_cert and tls_key") !=
              NULL, "%s", err);
    config_cleanup(&config);

    write_file("tls_listen = 127.0.0.1:4650\n");
    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), -1);
    cr_assert(strstr(err, "tls_listen needs both") != NULL, "%s", err);
    config_cleanup(&config);

    write_file("tls_sni { a.example { cert = /a; key = /b } }\n");
    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), -1);
    cr_assert(strstr(err, "tls_sni needs both") != NULL, "%s", err);
    config_cleanup(&config);
}

Test(config, tls_listen_overlaps_listen, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct config config;
    char err[512] = "";

    write_file("tls_cert = /a.crt\ntls_key = /a.key\n"
               "tls_listen = 127.0.0.1:2525\n");
    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), -1);
    cr_assert(strstr(err, "127.0.0.1:2525 is in both listen and "
                          "tls_listen") != NULL, "%s", err);
    config_cleanup(&config);
}

Test(config, tls_sni_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail("tls_sni { \"bad_host\" { cert = /a; key = /b } }\n", 1,
              "invalid value for 'tls_sni': 'bad_host' is not a host name");
    load_fail("tls_sni { \"a.*.example\" { cert = /a; key = /b } }\n", 1,
              "invalid value for 'tls_sni': 'a.*.example' is not");
    load_fail("tls_sni {\n a.example { cert = /a }\n}\n", 2,
              "invalid value for 'tls_sni': 'a.example' needs both cert "
              "and key");
    load_fail("tls_sni {\n a.example { cert = /a; chain = /c }\n}\n", 2,
              "invalid value for 'tls_sni': 'chain' in 'a.example' is "
              "unknown");
    load_fail("tls_sni {\n a.example { cert = /a; cert = /c }\n}\n", 2,
              "invalid value for 'tls_sni': 'cert' in 'a.example' is "
              "repeated");
    load_fail("tls_sni {\n a.example { cert = /a; key = /b }\n"
              " A.example { cert = /a; key = /b }\n}\n", 3,
              "invalid value for 'tls_sni': 'a.example' is listed twice");
    load_fail("tls_sni = [a]\n", 1,
              "invalid value for 'tls_sni': expected an object");
}

/* ---------------------------------------------------------------------
 * Delivery limits and destinations */

Test(config, delivery_defaults)
{
    struct config config;
    struct config_delivery limits;

    cr_assert_eq(config_init(&config), 0);
    config_delivery_for(&config, "example.com", &limits);
    cr_expect_eq(limits.max_connections, 20);
    cr_expect_eq(limits.max_messages_per_connection, 100);
    cr_expect_eq(limits.max_rcpts_per_transaction, 100);
    cr_expect_eq(limits.max_messages_per_second, 0);
    cr_expect_eq(limits.connect_timeout, 30);
    cr_expect_eq(limits.timeout_greeting, 300);
    cr_expect_eq(limits.timeout_command, 300);
    cr_expect_eq(limits.timeout_data, 120);
    cr_expect_eq(limits.timeout_final, 600);
    cr_expect_eq(limits.connection_idle_timeout, 5);
    cr_expect_eq(limits.breaker_failures, 5);
    cr_expect_eq(limits.breaker_wait, 60);
    config_cleanup(&config);
}

Test(config, delivery_global_keys, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;
    struct config_delivery limits;

    load_ok(&config, "delivery_max_connections = 7;\n"
                     "delivery_max_messages_per_connection = 3;\n"
                     "delivery_max_rcpts_per_transaction = 50;\n"
                     "delivery_max_messages_per_second = 10;\n"
                     "delivery_connect_timeout = 5s;\n"
                     "delivery_timeout_final = 20min;\n"
                     "delivery_connection_idle_timeout = 0;\n"
                     "delivery_breaker_failures = 0;\n"
                     "delivery_breaker_wait = 2min;\n");
    config_delivery_for(&config, "any.test", &limits);
    cr_expect_eq(limits.max_connections, 7);
    cr_expect_eq(limits.max_messages_per_connection, 3);
    cr_expect_eq(limits.max_rcpts_per_transaction, 50);
    cr_expect_eq(limits.max_messages_per_second, 10);
    cr_expect_eq(limits.connect_timeout, 5);
    cr_expect_eq(limits.timeout_final, 1200);
    cr_expect_eq(limits.connection_idle_timeout, 0);
    cr_expect_eq(limits.breaker_failures, 0);
    cr_expect_eq(limits.breaker_wait, 120);
    config_cleanup(&config);
}

Test(config, delivery_total_cap, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    cr_expect_eq(config.delivery_max_connections_total, 1000);
    config_cleanup(&config);

    load_ok(&config, "delivery_max_connections_total = 4;\n");
    cr_expect_eq(config.delivery_max_connections_total, 4);
    config_cleanup(&config);

    load_ok(&config, "delivery_max_connections_total = 100000;\n");
    cr_expect_eq(config.delivery_max_connections_total, 100000);
    config_cleanup(&config);
}

Test(config, delivery_total_cap_range, .init = tmp_setup,
     .fini = tmp_teardown)
{
    load_fail("delivery_max_connections_total = 0;\n", 1,
              "invalid value for 'delivery_max_connections_total': 0 is "
              "outside 1..100000");
    load_fail("delivery_max_connections_total = 100001;\n", 1,
              "invalid value for 'delivery_max_connections_total': 100001 "
              "is outside 1..100000");
    load_fail("delivery_max_connections_total = 5s;\n", 1,
              "invalid value for 'delivery_max_connections_total': "
              "expected a whole number");
}

Test(config, delivery_total_cap_global_only, .init = tmp_setup,
     .fini = tmp_teardown)
{
    load_fail("destinations { \"a.test\" { max_connections_total = 4; } }"
              "\n", 1, "invalid value for 'destinations': unknown delivery "
              "limit 'max_connections_total'");
}

Test(config, destination_overrides, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;
    struct config_delivery limits;

    /* The destination comes before the global key it falls back on. */
    load_ok(&config, "destinations {\n"
                     "  \"Example.COM\" { max_connections = 5; }\n"
                     "  \"127.0.0.1:2526\" { max_messages_per_connection = 2;"
                     " connection_idle_timeout = 1s; }\n"
                     "}\n"
                     "delivery_max_connections = 9;\n"
                     "delivery_max_messages_per_connection = 40;\n");
    config_delivery_for(&config, "example.com", &limits);
    cr_expect_eq(limits.max_connections, 5);
    cr_expect_eq(limits.max_messages_per_connection, 40);
    config_delivery_for(&config, "127.0.0.1:2526", &limits);
    cr_expect_eq(limits.max_connections, 9);
    cr_expect_eq(limits.max_messages_per_connection, 2);
    cr_expect_eq(limits.connection_idle_timeout, 1);
    config_delivery_for(&config, "other.test", &limits);
    cr_expect_eq(limits.max_connections, 9);
    cr_expect_eq(limits.connection_idle_timeout, 5);
    config_cleanup(&config);
}

Test(config, delivery_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail_exact("delivery_max_connections = 0;\n", 1,
                    "invalid value for 'delivery_max_connections': "
                    "max_connections: 0 is outside 1..10000");
    load_fail("delivery_max_messages_per_connection = \"ten\";\n", 1,
              "invalid value for 'delivery_max_messages_per_connection': "
              "max_messages_per_connection: expected a whole number");
    load_fail("delivery_max_connections = 5s;\n", 1,
              "invalid value for 'delivery_max_connections': ");
    load_fail("delivery_timeout_final = 2h;\n", 1,
              "invalid value for 'delivery_timeout_final': timeout_final: "
              "2h is outside 1..3600 seconds");
    load_fail("delivery_max_rcpts_per_transaction = -1;\n", 1,
              "invalid value for 'delivery_max_rcpts_per_transaction': ");
}

Test(config, destination_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail_exact("destinations {\n  \"a.test\" { max_conections = 5; }\n"
                    "}\n", 2,
                    "invalid value for 'destinations': unknown delivery "
                    "limit 'max_conections' for destination 'a.test'");
    load_fail_exact("destinations {\n  \"a.test\" { max_connections = 0; }"
                    "\n}\n", 2,
                    "invalid value for 'destinations': destination "
                    "'a.test': max_connections: 0 is outside 1..10000");
    load_fail("destinations {\n  \"a.test\" = 5;\n}\n", 2,
              "invalid value for 'destinations': ");
    load_fail("destinations {\n  \"a.test\" { max_connections = 1; }\n"
              "  \"A.test\" { max_connections = 2; }\n}\n", 3,
              "invalid value for 'destinations': duplicate destination "
              "'a.test'");
    load_fail("destinations = 5;\n", 1,
              "invalid value for 'destinations': ");
}

Test(config, destination_name_syntax, .init = tmp_setup,
     .fini = tmp_teardown)
{
    static const struct {
        const char *name;
        const char *reason;
    } cases[] = {
        {"exa mple.com", "not a domain, HOST:PORT, mx:HOSTS or address "
                         "literal"},
        {"ex@mple.com", "not a domain, HOST:PORT, mx:HOSTS or address "
                        "literal"},
        {"127.0.0.1:99999", "port '99999' is not a number from 1 to "
                            "65535"},
        {"127.0.0.1:0", "port '0' is not a number from 1 to 65535"},
        {"a.test:", "port '' is not a number from 1 to 65535"},
        {"a_b.test:25", "'a_b.test' is neither a host name nor an IP "
                        "address"},
        {"[999.0.2.1]", "not a valid address literal such as [192.0.2.1] "
                        "or [IPv6:2001:db8::1]"},
        {"[192.0.2.1", "not a valid address literal such as [192.0.2.1] "
                       "or [IPv6:2001:db8::1]"},
        {"mx:a.test,;b.test", "an MX set lists host names separated by "
                              "',' and ';', with none empty"},
        {"mx:a.test;-b.test", "MX host '-b.test' is not a valid host "
                              "name"},
        {"mx:", "missing MX host names after 'mx:'"},
        {"mx:;", "an MX set lists host names separated by ',' and ';', "
                 "with none empty"},
    };
    char text[256];
    char reason[300];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "destinations {\n  \"%s\" "
                 "{ max_connections = 2; }\n}\n", cases[i].name);
        snprintf(reason, sizeof(reason), "invalid value for "
                 "'destinations': destination '%s': %s", cases[i].name,
                 cases[i].reason);
        load_fail_exact(text, 2, reason);
    }
}

Test(config, destination_name_kinds)
{
    static const struct {
        const char *name;
        enum config_dest_kind kind;
    } cases[] = {
        {"example.com", CONFIG_DEST_DOMAIN},
        {"127.0.0.1:2526", CONFIG_DEST_HOSTPORT},
        {"mx.example.net:25", CONFIG_DEST_HOSTPORT},
        {"2001:db8::1:25", CONFIG_DEST_HOSTPORT},
        {"mx:25", CONFIG_DEST_HOSTPORT},
        {"mx:mx1.example.net,mx2.example.net;backup.example.net",
         CONFIG_DEST_MX_SET},
        {"[192.0.2.1]", CONFIG_DEST_LITERAL},
        {"[ipv6:2001:db8::1]", CONFIG_DEST_LITERAL},
        {"127.0.0.1", CONFIG_DEST_BARE_IP},
        {"::1", CONFIG_DEST_BARE_IP},
        {"exa mple.com", CONFIG_DEST_INVALID},
    };
    char reason[160];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_expect_eq(config_dest_name_kind(cases[i].name, reason,
                                           sizeof(reason)),
                     cases[i].kind, "kind of '%s'", cases[i].name);
    }
}

/* Loads text and expects config_dest_name_advice to name use in its
 * advice for name, or with use NULL to have none. */
static void expect_dest_advice(const char *text, const char *name,
                               const char *use)
{
    struct config config;
    char advice[512] = "";
    bool advised;

    load_ok(&config, text);
    advised = config_dest_name_advice(&config, name, advice,
                                      sizeof(advice));
    if (use == NULL) {
        cr_expect(!advised, "advice for '%s': %s", name, advice);
    } else {
        cr_expect(advised, "no advice for '%s'", name);
        cr_expect(strstr(advice, use) != NULL,
                  "advice for '%s' lacks %s: %s", name, use, advice);
    }
    config_cleanup(&config);
}

Test(config, destination_name_advice, .init = tmp_setup,
     .fini = tmp_teardown)
{
    const char *routed = "routes {\n"
                         "  \"slow.test\" = \"127.0.0.4\";\n"
                         "  gone.test { transport = discard }\n"
                         "}\n";
    const char *smarthost = "smarthost = \"relay.example.net:587\";\n";

    expect_dest_advice(routed, "slow.test", "'127.0.0.4:25'");
    expect_dest_advice(routed, "127.0.0.4:25", NULL);
    expect_dest_advice(routed, "127.0.0.4:26", "no route or smarthost");
    expect_dest_advice(routed, "127.0.0.4", "'127.0.0.4:25'");
    expect_dest_advice(routed, "gone.test", NULL);
    expect_dest_advice(routed, "other.test", NULL);
    expect_dest_advice(routed, "[192.0.2.1]", NULL);
    expect_dest_advice(routed, "mx:a.test;b.test", NULL);
    expect_dest_advice(routed, "::1", "'[IPv6:::1]'");

    expect_dest_advice(smarthost, "example.com",
                       "'relay.example.net:587'");
    expect_dest_advice(smarthost, "[192.0.2.1]",
                       "'relay.example.net:587'");
    expect_dest_advice(smarthost, "relay.example.net:587", NULL);
    expect_dest_advice(smarthost, "relay.example.net",
                       "'relay.example.net:587'");
}

/* An MX-set name must be spelled as outbound_group.c builds it, or no
 * domain's MX set ever matches it. */
Test(config, destination_mx_set_spelling, .init = tmp_setup,
     .fini = tmp_teardown)
{
    const char *empty = "";
    char many[400] = "mx:";
    char longest[400] = "mx:";

    expect_dest_advice(empty, "mx:mx2.example,mx1.example",
                       "'mx:mx1.example,mx2.example'");
    expect_dest_advice(empty, "mx:a.test,a.test", "'mx:a.test'");
    expect_dest_advice(empty, "mx:a.test;b.test;a.test",
                       "'mx:a.test;b.test'");
    expect_dest_advice(empty, "mx:c.test;b.test,a.test,b.test",
                       "'mx:c.test;a.test,b.test'");
    expect_dest_advice(empty, "mx:a.test,b.test;c.test", NULL);
    expect_dest_advice(empty, "mx:b.test;a.test", NULL);

    for (int i = 0; i < 10; i++) {
        snprintf(many + strlen(many), sizeof(many) - strlen(many),
                 "%sh%02d.test", i > 0 ? ";" : "", i);
    }
    expect_dest_advice(empty, many, "fewer than 10 hosts");

    /* Five hosts of 59 characters: 3 + 5 * 59 + 4 = 302 characters
     * fit, six (362) do not. */
    for (int i = 0; i < 6; i++) {
        size_t at = strlen(longest);

        snprintf(longest + at, sizeof(longest) - at, "%s%c%053d.test",
                 i > 0 ? ";" : "", 'a' + i, 0);
        if (i == 4) {
            expect_dest_advice(empty, longest, NULL);
        }
    }
    expect_dest_advice(empty, longest, "at most 319 characters");
}

/* ---------------------------------------------------------------------
 * Config: outbound TLS policy */

Test(config, outbound_tls_defaults)
{
    struct config config;

    cr_assert_eq(config_init(&config), 0);
    cr_expect_eq(config.outbound_tls, TLS_POLICY_MAY);
    cr_expect_str_eq(config.outbound_tls_ca_file,
                     "/etc/ssl/certs/ca-certificates.crt");
    cr_expect_eq(config_tls_policy_for(&config, "example.com"),
                 TLS_POLICY_MAY);
    config_cleanup(&config);
}

Test(config, outbound_tls_keys, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;

    load_ok(&config, "outbound_tls = verify\n"
                     "outbound_tls_ca_file = \"/etc/ringrelay/ca.pem\"\n");
    cr_expect_eq(config.outbound_tls, TLS_POLICY_VERIFY);
    cr_expect_str_eq(config.outbound_tls_ca_file, "/etc/ringrelay/ca.pem");
    config_cleanup(&config);
}

Test(config, outbound_tls_every_policy, .init = tmp_setup,
     .fini = tmp_teardown)
{
    static const struct {
        const char *name;
        enum tls_policy policy;
    } cases[] = {
        {"none", TLS_POLICY_NONE},
        {"may", TLS_POLICY_MAY},
        {"encrypt", TLS_POLICY_ENCRYPT},
        {"verify", TLS_POLICY_VERIFY},
        {"dane", TLS_POLICY_DANE},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config config;
        char text[64];

        snprintf(text, sizeof(text), "outbound_tls = \"%s\"\n",
                 cases[i].name);
        load_ok(&config, text);
        cr_expect_eq(config.outbound_tls, cases[i].policy, "%s",
                     cases[i].name);
        cr_expect_str_eq(tls_policy_name(config.outbound_tls),
                         cases[i].name);
        config_cleanup(&config);
    }
}

Test(config, outbound_tls_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail_exact("outbound_tls = strict\n", 1,
                    "invalid value for 'outbound_tls': 'strict' is not a "
                    "TLS policy; use none, may, encrypt, verify or dane");
    load_fail("outbound_tls = VERIFY\n", 1,
              "invalid value for 'outbound_tls': 'VERIFY' is not a TLS "
              "policy");
    load_fail("outbound_tls = yes\n", 1,
              "invalid value for 'outbound_tls': expected a string, found "
              "boolean");
    load_fail("outbound_tls_ca_file = \"\"\n", 1,
              "invalid value for 'outbound_tls_ca_file': the file name "
              "must not be empty");
    load_fail("outbound_tls = may\noutbound_tls = none\n", 2,
              "duplicate key 'outbound_tls'");
}

Test(config, route_object_form, .init = tmp_setup, .fini = tmp_teardown)
{
    struct config config;
    const struct netaddr_hostport *hop;

    load_ok(&config, "outbound_tls = encrypt\n"
                     "routes {\n"
                     "  old.test = \"127.0.0.1:2600\"\n"
                     "  \"secure.test\" {\n"
                     "    host = \"mx.secure.test:2601\";\n"
                     "    tls = verify;\n"
                     "  }\n"
                     "  plain.test { host = \"127.0.0.1\"; tls = none }\n"
                     "  bare.test { host = \"127.0.0.2:2602\" }\n"
                     "}\n");
    cr_assert_eq(config.route_count, 4);
    cr_expect_not(config.routes[0].has_tls);
    cr_expect_str_eq(config.routes[1].domain, "secure.test");
    cr_expect(config.routes[1].has_tls);
    cr_expect_eq(config.routes[1].tls, TLS_POLICY_VERIFY);
    cr_expect_str_eq(config.routes[1].hop.host, "mx.secure.test");
    cr_expect_eq(config.routes[1].hop.port, 2601);
    cr_expect_eq(config.routes[2].hop.port, 25);
    cr_expect_not(config.routes[3].has_tls);

    hop = config_route_for(&config, "Secure.Test.");
    cr_assert_not_null(hop);
    cr_expect_eq(hop->port, 2601);
    hop = config_route_for(&config, "bare.test");
    cr_assert_not_null(hop);
    cr_expect_eq(hop->port, 2602);

    cr_expect_eq(config_tls_policy_for(&config, "old.test"),
                 TLS_POLICY_ENCRYPT);
    cr_expect_eq(config_tls_policy_for(&config, "SECURE.test"),
                 TLS_POLICY_VERIFY);
    cr_expect_eq(config_tls_policy_for(&config, "plain.test"),
                 TLS_POLICY_NONE);
    cr_expect_eq(config_tls_policy_for(&config, "bare.test"),
                 TLS_POLICY_ENCRYPT);
    cr_expect_eq(config_tls_policy_for(&config, "unrouted.test"),
                 TLS_POLICY_ENCRYPT);
    config_cleanup(&config);
}

Test(config, route_object_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail_exact("routes {\n a.test { tls = verify }\n}\n", 2,
                    "invalid value for 'routes': the route for 'a.test' "
                    "needs host");
    load_fail("routes {\n a.test {\n  host = mx\n  port = 26\n }\n}\n", 4,
              "invalid value for 'routes': 'port' in the route for "
              "'a.test' is unknown");
    load_fail("routes {\n a.test {\n  host = mx\n  host = mx2\n }\n}\n", 4,
              "invalid value for 'routes': 'host' in the route for "
              "'a.test' is repeated");
    load_fail("routes {\n a.test { host = mx; tls = may; tls = none }\n}\n",
              2, "invalid value for 'routes': 'tls' in the route for "
              "'a.test' is repeated");
    load_fail("routes {\n a.test { host = mx; tls = strict }\n}\n", 2,
              "invalid value for 'routes': 'strict' is not a TLS policy");
    load_fail("routes {\n a.test { host = \"mx:0\" }\n}\n", 2,
              "invalid value for 'routes': 'mx:0' is not HOST");
    load_fail("routes {\n a.test { host = 25 }\n}\n", 2,
              "invalid value for 'routes': expected a string");
    load_fail("routes {\n a.test { host = mx }\n A.test. = mx2\n}\n", 3,
              "invalid value for 'routes': duplicate route for 'a.test'");
}

Test(config, route_auth_and_transport, .init = tmp_setup,
     .fini = tmp_teardown)
{
    struct config config;
    const struct config_route *route;

    load_ok(&config, "smarthost = \"127.0.0.1:2600\"\n"
                     "smarthost_auth_user = \"relay\"\n"
                     "smarthost_auth_password = \"pw\"\n"
                     "routes {\n"
                     "  sub.test { host = \"mx.sub.test:587\"; "
                     "tls = encrypt; auth_user = u; auth_password = p }\n"
                     "  load.test { transport = discard }\n"
                     "  smtp.test { host = mx; transport = smtp }\n"
                     "}\n");
    route = config_route_entry(&config, "SUB.test.");
    cr_assert_not_null(route);
    cr_expect_str_eq(route->auth_user, "u");
    cr_expect_str_eq(route->auth_password, "p");
    cr_expect_not(route->discard);
    route = config_route_entry(&config, "load.test");
    cr_assert_not_null(route);
    cr_expect(route->discard);
    cr_expect_null(route->auth_user);
    route = config_route_entry(&config, "smtp.test");
    cr_assert_not_null(route);
    cr_expect_not(route->discard);
    cr_expect_null(config_route_entry(&config, "other.test"));
    cr_expect_str_eq(config.smarthost_auth_user, "relay");
    cr_expect_str_eq(config.smarthost_auth_password, "pw");
    config_cleanup(&config);
}

/* load_fail_with loads text and expects an error that contains reason. */
static void load_fail_with(const char *text, const char *reason)
{
    struct config config;
    char err[512] = "";

    write_file(text);
    cr_assert_eq(config_init(&config), 0);
    cr_assert_eq(config_load(&config, tmp_file, err, sizeof(err)), -1,
                 "load succeeded:\n%s", text);
    cr_expect_not_null(strstr(err, reason), "error '%s' lacks '%s'", err,
                       reason);
    config_cleanup(&config);
}

Test(config, route_auth_invalid, .init = tmp_setup, .fini = tmp_teardown)
{
    load_fail_with("routes {\n a.test { host = mx; auth_user = u }\n}\n",
                   "the route for 'a.test' needs both auth_user and "
                   "auth_password");
    load_fail_with("routes {\n a.test { host = mx; tls = none; "
                   "auth_user = u; auth_password = p }\n}\n",
                   "'a.test' has AUTH credentials with TLS policy none");
    load_fail_with("outbound_tls = none\nroutes {\n a.test { host = mx; "
                   "auth_user = u; auth_password = p }\n}\n",
                   "'a.test' has AUTH credentials with TLS policy none");
    load_fail_with("outbound_tls = none\nsmarthost = mx\n"
                   "smarthost_auth_user = u\n"
                   "smarthost_auth_password = p\n",
                   "smarthost_auth_user is set with outbound_tls");
    load_fail_with("routes {\n a.test { host = mx; auth_user = \"\"; "
                   "auth_password = p }\n}\n",
                   "'auth_user' must be 1 to 255 bytes");
    load_fail_with("routes {\n a.test { transport = lmtp }\n}\n",
                   "'lmtp' is not a transport; use smtp or discard");
    load_fail_with("routes {\n a.test { transport = smtp }\n}\n",
                   "the route for 'a.test' needs host");
    load_fail_with("routes {\n a.test { host = mx; transport = discard "
                   "}\n}\n",
                   "has transport discard, which makes no connection");
    load_fail_with("smarthost_auth_user = u\n"
                   "smarthost_auth_password = p\n",
                   "go together, with smarthost");
    load_fail_with("smarthost = mx\nsmarthost_auth_user = u\n",
                   "go together, with smarthost");
}
