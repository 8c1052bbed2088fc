#include "bench/blast_options.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/blast_template.h"
#include "proto/smtp_address.h"

#define BLAST_DEFAULT_SERVER "127.0.0.1:2525"
#define BLAST_DEFAULT_PORT 2525
#define BLAST_DEFAULT_CONNECTIONS 10
#define BLAST_DEFAULT_MESSAGES 1000
#define BLAST_DEFAULT_SIZE 1024
#define BLAST_DEFAULT_TIMEOUT 300
#define BLAST_DEFAULT_HELO "blast.example.test"
#define BLAST_DEFAULT_FROM "blast@example.test"
#define BLAST_DEFAULT_TO "user@example.test"

/* RFC 5321 4.5.3.1.2: a domain name is at most 255 octets. */
#define BLAST_HELO_MAX 255

/* Upper bounds of the numeric options. */
#define BLAST_MESSAGES_MAX (UINT64_C(1) << 40)
#define BLAST_SECONDS_MAX (7 * 86400)

/* Option codes beyond the characters getopt uses. */
enum {
    OPT_SERVER = 256,
    OPT_CONNECTIONS,
    OPT_MESSAGES,
    OPT_DURATION,
    OPT_PER_CONNECTION,
    OPT_RATE,
    OPT_SIZE,
    OPT_RCPTS,
    OPT_DOMAINS,
    OPT_TIMEOUT,
    OPT_HELO,
    OPT_FROM,
    OPT_TO,
    OPT_BODY_DIR,
    OPT_PIPELINING,
    OPT_JSON,
    OPT_STATS_FILE,
    OPT_STARTTLS,
    OPT_AUTH,
    OPT_IDLE,
};

static const struct option blast_long_options[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"messages", required_argument, NULL, OPT_MESSAGES},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"per-connection", required_argument, NULL, OPT_PER_CONNECTION},
    {"rate", required_argument, NULL, OPT_RATE},
    {"size", required_argument, NULL, OPT_SIZE},
    {"rcpts", required_argument, NULL, OPT_RCPTS},
    {"domains", required_argument, NULL, OPT_DOMAINS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"helo", required_argument, NULL, OPT_HELO},
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"body-dir", required_argument, NULL, OPT_BODY_DIR},
    {"pipelining", required_argument, NULL, OPT_PIPELINING},
    {"json", required_argument, NULL, OPT_JSON},
    {"stats-file", required_argument, NULL, OPT_STATS_FILE},
    {"starttls", no_argument, NULL, OPT_STARTTLS},
    {"auth", required_argument, NULL, OPT_AUTH},
    {"idle", no_argument, NULL, OPT_IDLE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One numeric option: where its value goes and its range. */
struct blast_number_option {
    int code;
    uint64_t min;
    uint64_t max;
    size_t offset;          /* of the uint64_t in struct blast_options */
};

static const struct blast_number_option blast_number_options[] = {
    {OPT_CONNECTIONS, 1, 100000,
     offsetof(struct blast_options, connections)},
    {OPT_MESSAGES, 1, BLAST_MESSAGES_MAX,
     offsetof(struct blast_options, messages)},
    {OPT_DURATION, 1, BLAST_SECONDS_MAX,
     offsetof(struct blast_options, duration_s)},
    {OPT_PER_CONNECTION, 1, BLAST_MESSAGES_MAX,
     offsetof(struct blast_options, per_connection)},
    {OPT_RATE, 1, 10000000, offsetof(struct blast_options, rate)},
    {OPT_SIZE, 0, UINT64_C(1) << 30, offsetof(struct blast_options, size)},
    {OPT_RCPTS, 1, 1000, offsetof(struct blast_options, rcpts)},
    {OPT_DOMAINS, 1, 1000000, offsetof(struct blast_options, domains)},
    {OPT_TIMEOUT, 1, BLAST_SECONDS_MAX,
     offsetof(struct blast_options, timeout_s)},
};

void blast_options_usage(FILE *out)
{
    fputs(
        "usage: ringrelay-bench blast [OPTION]...\n"
        "\n"
        "Send messages to an SMTP server, as fast as it answers (closed "
        "loop) or on a\n"
        "fixed schedule (--rate, open loop), and report rates, reply codes "
        "and latency.\n"
        "\n"
        "Load:\n"
        "  --server HOST:PORT    server to send to; HOST is a name, an IPv4 "
        "address\n"
        "                        or [IPv6] (default " BLAST_DEFAULT_SERVER
        ")\n"
        "  --connections C       concurrent connections, 1 to 100000 "
        "(default 10)\n"
        "  --messages N          messages in total, 1 to 2^40 "
        "(default 1000)\n"
        "  --duration SECONDS    instead of --messages: start messages for "
        "this many\n"
        "                        seconds, then let those in flight finish\n"
        "  --per-connection M    messages per connection, then QUIT and a "
        "new one;\n"
        "                        1 opens a connection per message "
        "(default: each\n"
        "                        connection sends N/C back to back, or "
        "without end\n"
        "                        with --duration)\n"
        "  --rate MSGS_PER_S     open loop: message i is due i/rate seconds "
        "after the\n"
        "                        start, sent then on an idle or a new "
        "connection (or\n"
        "                        queued while C are busy), and its latencies "
        "count\n"
        "                        from then; 1 to 10000000 (default: closed "
        "loop)\n"
        "  --idle                send no messages: open the connections, "
        "read the\n"
        "                        greeting, send EHLO and hold them until "
        "--duration\n"
        "                        ends or a signal, then QUIT each; a "
        "connection that\n"
        "                        fails or is closed is not opened again. "
        "Needs\n"
        "                        --duration and no message options\n"
        "  --timeout SECONDS     give up on the whole run after this long; "
        "unfinished\n"
        "                        messages count as not finished (default "
        "300, or\n"
        "                        with --duration 300 more than the "
        "duration)\n"
        "\n"
        "Messages:\n"
        "  --size BYTES          message size, header included, 0 to 2^30 "
        "(default\n"
        "                        1024)\n"
        "  --body-dir DIR        send the regular files of DIR instead, "
        "round robin,\n"
        "                        converted to CRLF and dot-stuffed at load "
        "time;\n"
        "                        names starting with '.' are skipped\n"
        "  --rcpts R             recipients (RCPT commands) per message, 1 "
        "to 1000\n"
        "                        (default 1)\n"
        "  --from ADDR           envelope and From: sender (default\n"
        "                        " BLAST_DEFAULT_FROM ")\n"
        "  --to ADDR             envelope recipients, the first also in "
        "To: (default\n"
        "                        " BLAST_DEFAULT_TO ")\n"
        "                        In --from and --to, %n is the message's "
        "sequence\n"
        "                        number, %d a domain number and %% a "
        "percent sign;\n"
        "                        in --to, %r is the recipient's index, 1 to "
        "R.\n"
        "  --domains D           %d takes the values 1 to D round robin, "
        "per message in\n"
        "                        --from and per recipient in --to; 1 to "
        "1000000\n"
        "                        (default 1)\n"
        "  --helo NAME           EHLO name (default " BLAST_DEFAULT_HELO
        ")\n"
        "  --pipelining on|off   on: send MAIL, RCPT and DATA in one batch "
        "when the\n"
        "                        server offers PIPELINING; off: one command "
        "at a time\n"
        "                        (default on)\n"
        "  --starttls            send STARTTLS after EHLO on every "
        "connection and EHLO\n"
        "                        again inside TLS; the server's "
        "certificate is not\n"
        "                        checked\n"
        "  --auth USER:PASS      authenticate with AUTH PLAIN after EHLO "
        "(after the\n"
        "                        second EHLO with --starttls); USER and PASS"
        " have at\n"
        "                        most 255 bytes each\n"
        "\n"
        "Output:\n"
        "  --json FILE           write the summary and a per-second series "
        "as JSON\n"
        "  --stats-file FILE     write totals as key=value lines at exit, "
        "through a\n"
        "                        temporary file in the same directory\n"
        "  --help                show this help\n"
        "\n"
        "Every second a progress line goes to stderr; the summary goes to "
        "stdout.\n"
        "Latencies are in milliseconds, 1 MB is 10^6 bytes.\n"
        "Exit status: 0 when every message was accepted (with --idle: "
        "when every\n"
        "connection was held to the end and closed with QUIT), 1 "
        "otherwise, 2 on a\n"
        "usage error.\n",
        out);
}

static const char *blast_option_name(int code)
{
    for (const struct option *o = blast_long_options; o->name != NULL;
         o++) {
        if (o->val == code) {
            return o->name;
        }
    }
    return "?";
}

static void blast_error(char *error, size_t error_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void blast_error(char *error, size_t error_size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(error, error_size, fmt, ap);
    va_end(ap);
}

/* Parse text as a decimal integer in [number->min, number->max]. Only
 * plain digit strings pass: strtoull would take a sign and wrap "-1". */
static int blast_parse_number(const struct blast_number_option *number,
                              const char *text,
                              struct blast_options *options, char *error,
                              size_t error_size)
{
    unsigned long long value = 0;
    char *end = NULL;

    if (text[0] >= '0' && text[0] <= '9') {
        errno = 0;
        value = strtoull(text, &end, 10);
    }
    if (end == NULL || errno != 0 || *end != '\0' || value < number->min
        || value > number->max) {
        blast_error(error, error_size,
                    "invalid value \"%s\" for --%s: expected an integer "
                    "from %" PRIu64 " to %" PRIu64,
                    text, blast_option_name(number->code), number->min,
                    number->max);
        return -1;
    }
    *(uint64_t *)((char *)options + number->offset) = value;
    return 0;
}

/* Check that the expansion of template for the option named option is a
 * valid non-null ASCII path for MAIL and RCPT, using the same parser as
 * the server side. */
static int blast_check_expansion(const char *option, const char *template,
                                 const struct blast_template_vars *vars,
                                 char *error, size_t error_size)
{
    char address[SMTP_PATH_MAX];
    char bracketed[SMTP_PATH_MAX + 3];
    struct smtp_path path;
    size_t address_len;
    size_t end;
    int len;

    if (blast_template_expand(template, vars, address, sizeof(address),
                              &address_len) < 0) {
        blast_error(error, error_size,
                    "invalid address \"%s\" for --%s: it expands to more "
                    "than %d octets (%%n=%" PRIu64 "); expected at most %d",
                    template, option, SMTP_PATH_MAX - 2, vars->seq,
                    SMTP_PATH_MAX - 2);
        return -1;
    }
    len = snprintf(bracketed, sizeof(bracketed), "<%s>", address);
    if (len > 0 && (size_t)len < sizeof(bracketed)
        && smtp_path_parse(bracketed, (size_t)len, false, &path, &end)
               == SMTP_PATH_OK
        && end == (size_t)len && !path.is_null) {
        return 0;
    }
    if (strcmp(template, address) == 0) {
        blast_error(error, error_size,
                    "invalid address \"%s\" for --%s: expected "
                    "local@domain in ASCII, at most %d octets",
                    template, option, SMTP_PATH_MAX - 2);
    } else {
        blast_error(error, error_size,
                    "invalid address \"%s\" for --%s: it expands to "
                    "\"%s\" (%%n=%" PRIu64 ", %%r=%" PRIu64 ", %%d=%" PRIu64
                    "); expected local@domain in ASCII, at most %d octets",
                    template, option, address, vars->seq, vars->rcpt,
                    vars->domain, SMTP_PATH_MAX - 2);
    }
    return -1;
}

/* Check --from and --to: placeholders, then the addresses they give with
 * the smallest and the largest numbers of the run, because only the
 * number of digits varies between messages. */
static int blast_check_templates(const struct blast_options *options,
                                 char *error, size_t error_size)
{
    uint64_t last_seq = options->messages;
    struct blast_template_vars low = {.seq = 1, .rcpt = 1, .domain = 1};
    struct blast_template_vars high;

    if (blast_template_check("from", options->from, false, error,
                             error_size) < 0
        || blast_template_check("to", options->to, true, error, error_size)
               < 0) {
        return -1;
    }
    if (last_seq == 0) {
        last_seq = options->rate != 0
                       ? options->duration_s * options->rate
                       : BLAST_MESSAGES_MAX;
    }
    high = (struct blast_template_vars){.seq = last_seq,
                                        .rcpt = options->rcpts,
                                        .domain = options->domains};
    if (blast_check_expansion("from", options->from, &low, error,
                              error_size) < 0
        || blast_check_expansion("from", options->from, &high, error,
                                 error_size) < 0
        || blast_check_expansion("to", options->to, &low, error, error_size)
               < 0
        || blast_check_expansion("to", options->to, &high, error,
                                 error_size) < 0) {
        return -1;
    }
    if (options->domains > 1 && !blast_template_uses(options->from, 'd')
        && !blast_template_uses(options->to, 'd')) {
        blast_error(error, error_size,
                    "--domains %" PRIu64 " has no effect: expected %%d in "
                    "--from or --to",
                    options->domains);
        return -1;
    }
    return 0;
}

/* Check that the output file path can be written at the end of the run:
 * its directory can take a new file (the stats file goes through a
 * temporary file beside it), and the path is not a directory or a file
 * that cannot be written. */
static int blast_check_output(const char *option, const char *path,
                              char *error, size_t error_size)
{
    char copy[PATH_MAX];
    const char *dir;
    struct stat st;

    if (path[0] == '\0' || strlen(path) >= sizeof(copy)) {
        blast_error(error, error_size,
                    "invalid --%s \"%s\": expected a file name", option,
                    path);
        return -1;
    }
    strcpy(copy, path);
    dir = dirname(copy);
    if (access(dir, W_OK | X_OK) < 0) {
        blast_error(error, error_size,
                    "invalid --%s \"%s\": cannot create files in \"%s\": "
                    "%s; expected a path in a writable directory",
                    option, path, dir, strerror(errno));
        return -1;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        blast_error(error, error_size,
                    "invalid --%s \"%s\": %s; expected a file name",
                    option, path, strerror(EISDIR));
        return -1;
    }
    if (access(path, F_OK) == 0 && access(path, W_OK) < 0) {
        blast_error(error, error_size,
                    "invalid --%s \"%s\": %s; expected a writable file",
                    option, path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Check the port of --server, which must have one. */
static int blast_check_port(const char *text, char *error,
                            size_t error_size)
{
    int rc = bench_endpoint_port_check(text);

    if (rc == 0) {
        blast_error(error, error_size,
                    "invalid --server \"%s\": missing port; expected "
                    "HOST:PORT or [IPV6]:PORT",
                    text);
        return -1;
    }
    if (rc < 0) {
        blast_error(error, error_size,
                    "invalid --server \"%s\": expected HOST:PORT with a "
                    "port from 1 to 65535",
                    text);
        return -1;
    }
    return 0;
}

/* Check that --body-dir names a directory that can be listed; its files
 * are read later, when the run starts. */
static int blast_check_body_dir(const char *dir, char *error,
                                size_t error_size)
{
    struct stat st;

    errno = 0;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)
        || access(dir, R_OK | X_OK) < 0) {
        blast_error(error, error_size,
                    "invalid --body-dir \"%s\": %s; expected a readable "
                    "directory of message files",
                    dir, errno != 0 ? strerror(errno) : "not a directory");
        return -1;
    }
    return 0;
}

/* Check --idle against the other options. message_option is the first
 * option given that shapes messages, or NULL. */
static int blast_check_idle(const struct blast_options *options,
                            const char *message_option, char *error,
                            size_t error_size)
{
    if (options->duration_s == 0) {
        blast_error(error, error_size,
                    "--idle needs --duration SECONDS: expected how long to "
                    "hold the connections");
        return -1;
    }
    if (message_option != NULL) {
        blast_error(error, error_size,
                    "--%s has no effect with --idle, which sends no "
                    "messages: expected --idle without it",
                    message_option);
        return -1;
    }
    return 0;
}

/* Check how the options combine, once all are known. */
static int blast_check_combination(struct blast_options *options,
                                   bool timeout_given, bool size_given,
                                   const char *message_option, char *error,
                                   size_t error_size)
{
    size_t helo_len = strlen(options->helo);

    if (options->idle
        && blast_check_idle(options, message_option, error, error_size)
               < 0) {
        return -1;
    }
    if (options->messages != 0 && options->duration_s != 0) {
        blast_error(error, error_size,
                    "--messages %" PRIu64 " and --duration %" PRIu64
                    " exclude each other: expected one of them",
                    options->messages, options->duration_s);
        return -1;
    }
    if (options->messages == 0 && options->duration_s == 0) {
        options->messages = BLAST_DEFAULT_MESSAGES;
    }
    if (options->duration_s != 0 && options->rate != 0
        && options->duration_s * options->rate > BLAST_MESSAGES_MAX) {
        blast_error(error, error_size,
                    "--duration %" PRIu64 " at --rate %" PRIu64
                    " makes more than 2^40 messages: expected a shorter "
                    "run",
                    options->duration_s, options->rate);
        return -1;
    }
    if (options->duration_s != 0 && !timeout_given) {
        options->timeout_s = options->duration_s + BLAST_DEFAULT_TIMEOUT;
    }
    if (options->duration_s != 0 && options->timeout_s <= options->duration_s) {
        blast_error(error, error_size,
                    "invalid --timeout %" PRIu64 " with --duration %" PRIu64
                    ": expected more than %" PRIu64 " seconds, because "
                    "--timeout bounds the whole run",
                    options->timeout_s, options->duration_s,
                    options->duration_s);
        return -1;
    }
    if (options->body_dir != NULL
        && blast_check_body_dir(options->body_dir, error, error_size) < 0) {
        return -1;
    }
    if (options->body_dir != NULL && size_given) {
        blast_error(error, error_size,
                    "--size %" PRIu64 " and --body-dir \"%s\" exclude each "
                    "other: expected one of them (the files set the size)",
                    options->size, options->body_dir);
        return -1;
    }
    if (helo_len == 0 || helo_len > BLAST_HELO_MAX
        || !smtp_domain_valid(options->helo, helo_len, false)) {
        blast_error(error, error_size,
                    "invalid --helo \"%s\": expected a domain name or "
                    "address literal of at most %d characters",
                    options->helo, BLAST_HELO_MAX);
        return -1;
    }
    if (blast_check_templates(options, error, error_size) < 0) {
        return -1;
    }
    if ((options->json_path != NULL
         && blast_check_output("json", options->json_path, error,
                               error_size) < 0)
        || (options->stats_path != NULL
            && blast_check_output("stats-file", options->stats_path, error,
                                  error_size) < 0)) {
        return -1;
    }
    return 0;
}

/* blast_parse_auth checks --auth USER:PASS. The user ends at the first
 * colon, so a password may contain colons. */
static int blast_parse_auth(const char *arg, struct blast_options *options,
                            char *error, size_t error_size)
{
    const char *colon = strchr(arg, ':');

    if (colon == NULL || colon == arg) {
        blast_error(error, error_size,
                    "invalid value \"%s\" for --auth: expected USER:PASS "
                    "with a non-empty USER", arg);
        return -1;
    }
    if (colon - arg > BLAST_AUTH_PART_MAX
        || strlen(colon + 1) > BLAST_AUTH_PART_MAX) {
        blast_error(error, error_size,
                    "invalid value for --auth: too long; expected USER "
                    "and PASS of at most %d bytes each",
                    BLAST_AUTH_PART_MAX);
        return -1;
    }
    options->auth = arg;
    return 0;
}

/* Handle one option that takes a string or stands alone. Returns 0 or
 * -1 with error. */
static int blast_parse_text(int opt, const char *arg,
                            struct blast_options *options, char *error,
                            size_t error_size)
{
    switch (opt) {
    case OPT_SERVER:
        options->server_text = arg;
        return 0;
    case OPT_HELO:
        options->helo = arg;
        return 0;
    case OPT_FROM:
        options->from = arg;
        return 0;
    case OPT_TO:
        options->to = arg;
        return 0;
    case OPT_BODY_DIR:
        options->body_dir = arg;
        return 0;
    case OPT_JSON:
        options->json_path = arg;
        return 0;
    case OPT_STATS_FILE:
        options->stats_path = arg;
        return 0;
    case OPT_IDLE:
        options->idle = true;
        return 0;
    case OPT_PIPELINING:
        if (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0) {
            options->pipelining = arg[1] == 'n';
            return 0;
        }
        blast_error(error, error_size,
                    "invalid value \"%s\" for --pipelining: expected on or "
                    "off",
                    arg);
        return -1;
    case OPT_STARTTLS:
        options->starttls = true;
        return 0;
    case OPT_AUTH:
        return blast_parse_auth(arg, options, error, error_size);
    default:
        blast_error(error, error_size, "internal error: option %d", opt);
        return -1;
    }
}

/* Whether option code opt shapes the messages, which --idle excludes. */
static bool blast_is_message_option(int opt)
{
    switch (opt) {
    case OPT_MESSAGES:
    case OPT_PER_CONNECTION:
    case OPT_RATE:
    case OPT_SIZE:
    case OPT_RCPTS:
    case OPT_DOMAINS:
    case OPT_FROM:
    case OPT_TO:
    case OPT_BODY_DIR:
        return true;
    default:
        return false;
    }
}

enum blast_options_result blast_options_parse(int argc, char **argv,
                                              struct blast_options *options,
                                              char *error, size_t error_size)
{
    bool timeout_given = false;
    bool size_given = false;
    const char *message_option = NULL;
    char reason[512];
    int opt;

    *options = (struct blast_options){
        .server_text = BLAST_DEFAULT_SERVER,
        .connections = BLAST_DEFAULT_CONNECTIONS,
        .size = BLAST_DEFAULT_SIZE,
        .rcpts = 1,
        .domains = 1,
        .timeout_s = BLAST_DEFAULT_TIMEOUT,
        .pipelining = true,
        .helo = BLAST_DEFAULT_HELO,
        .from = BLAST_DEFAULT_FROM,
        .to = BLAST_DEFAULT_TO,
    };

    /* optind 0 makes glibc's getopt start afresh, so the parser can run
     * more than once in a process (the unit tests do). ':' first makes a
     * missing value return ':' instead of '?'; opterr 0 keeps getopt's
     * own messages off stderr. */
    optind = 0;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", blast_long_options, NULL))
           != -1) {
        const struct blast_number_option *number = NULL;

        if (opt == 'h') {
            return BLAST_OPTIONS_HELP;
        }
        if (opt == '?') {
            blast_error(error, error_size,
                        "unknown or ambiguous option \"%s\": expected an "
                        "option from --help",
                        argv[optind - 1]);
            return BLAST_OPTIONS_ERROR;
        }
        if (opt == ':') {
            blast_error(error, error_size,
                        "option --%s needs a value: expected --%s VALUE "
                        "(see --help)",
                        blast_option_name(optopt), blast_option_name(optopt));
            return BLAST_OPTIONS_ERROR;
        }
        if (message_option == NULL && blast_is_message_option(opt)) {
            message_option = blast_option_name(opt);
        }
        for (size_t i = 0; i < sizeof(blast_number_options)
                                   / sizeof(blast_number_options[0]);
             i++) {
            if (blast_number_options[i].code == opt) {
                number = &blast_number_options[i];
            }
        }
        if (number != NULL) {
            if (blast_parse_number(number, optarg, options, error,
                                   error_size) < 0) {
                return BLAST_OPTIONS_ERROR;
            }
            timeout_given |= opt == OPT_TIMEOUT;
            size_given |= opt == OPT_SIZE;
        } else if (blast_parse_text(opt, optarg, options, error,
                                    error_size) < 0) {
            return BLAST_OPTIONS_ERROR;
        }
    }
    if (optind != argc) {
        blast_error(error, error_size,
                    "unexpected argument \"%s\": expected options only",
                    argv[optind]);
        return BLAST_OPTIONS_ERROR;
    }
    if (blast_check_combination(options, timeout_given, size_given,
                                message_option, error, error_size) < 0) {
        return BLAST_OPTIONS_ERROR;
    }
    if (blast_check_port(options->server_text, error, error_size) < 0) {
        return BLAST_OPTIONS_ERROR;
    }
    if (bench_endpoint_parse(options->server_text, BLAST_DEFAULT_PORT,
                             &options->server, reason, sizeof(reason)) < 0) {
        blast_error(error, error_size, "invalid --server \"%s\": %s%s",
                    options->server_text, reason,
                    strstr(reason, "expected") != NULL
                        ? ""
                        : "; expected HOST:PORT, [IPV6]:PORT or HOST");
        return BLAST_OPTIONS_ERROR;
    }
    return BLAST_OPTIONS_RUN;
}
