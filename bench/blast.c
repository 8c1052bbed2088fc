#include "bench/blast.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_args.h"
#include "bench/bench_net.h"
#include "bench/bench_stats.h"
#include "bench/blast_conn.h"
#include "bench/blast_message.h"
#include "core/reactor.h"
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

struct blast_options {
    const char *server;
    uint64_t connections;
    uint64_t messages;
    uint64_t size;          /* bytes per message, header included */
    uint64_t rcpts;
    uint64_t timeout;       /* seconds for the whole run */
    const char *helo;
    const char *from;
    const char *to;
};

static void blast_usage(FILE *out)
{
    fprintf(out,
        "usage: ringrelay-bench blast [--server HOST:PORT] "
        "[--connections C]\n"
        "                             [--messages N] [--size BYTES] "
        "[--rcpts R]\n"
        "                             [--helo NAME] [--from ADDR] "
        "[--to ADDR]\n"
        "                             [--timeout SECONDS]\n"
        "\n"
        "Send N messages over C SMTP connections, each connection "
        "sending its\n"
        "share back to back on one session, and report the rate.\n"
        "\n"
        "  --server HOST:PORT   SMTP server (default "
        BLAST_DEFAULT_SERVER ")\n"
        "  --connections C      concurrent connections (default 10)\n"
        "  --messages N         messages in total (default 1000)\n"
        "  --size BYTES         approximate message size, header "
        "included\n"
        "                       (default 1024)\n"
        "  --rcpts R            RCPT commands per message (default 1)\n"
        "  --helo NAME          EHLO name (default " BLAST_DEFAULT_HELO
        ")\n"
        "  --from ADDR          envelope and header sender (default "
        BLAST_DEFAULT_FROM ")\n"
        "  --to ADDR            envelope and header recipient (default "
        BLAST_DEFAULT_TO ")\n"
        "  --timeout SECONDS    give up on the run after this long "
        "(default 300)\n"
        "\n"
        "Exit status: 0 when every message was accepted, 1 otherwise, "
        "2 on a\n"
        "usage error.\n");
}

/* Check that address is a valid non-null ASCII path for MAIL and RCPT,
 * using the same parser as the server side. */
static int blast_check_address(const char *option, const char *address)
{
    char bracketed[SMTP_PATH_MAX + 3];
    struct smtp_path path;
    size_t end;
    int len;

    len = snprintf(bracketed, sizeof(bracketed), "<%s>", address);
    if (len < 0 || (size_t)len >= sizeof(bracketed)
        || smtp_path_parse(bracketed, (size_t)len, false, &path, &end)
               != SMTP_PATH_OK
        || end != (size_t)len || path.is_null) {
        fprintf(stderr,
                "blast: invalid address \"%s\" for --%s: expected "
                "local@domain in ASCII, at most %d octets\n",
                address, option, SMTP_PATH_MAX - 2);
        return -1;
    }
    return 0;
}

static int blast_check_helo(const char *helo)
{
    size_t len = strlen(helo);

    if (len == 0 || len > BLAST_HELO_MAX
        || !smtp_domain_valid(helo, len, false)) {
        fprintf(stderr,
                "blast: invalid --helo \"%s\": expected a domain name or "
                "address literal of at most %d characters\n",
                helo, BLAST_HELO_MAX);
        return -1;
    }
    return 0;
}

static int blast_parse_number(int opt, const char *text,
                              struct blast_options *options)
{
    switch (opt) {
    case 'c':
        return bench_parse_u64("blast", "connections", text, 1, 100000,
                               &options->connections);
    case 'n':
        return bench_parse_u64("blast", "messages", text, 1,
                               UINT64_C(1) << 40, &options->messages);
    case 'z':
        return bench_parse_u64("blast", "size", text, 0, UINT64_C(1) << 30,
                               &options->size);
    case 'r':
        return bench_parse_u64("blast", "rcpts", text, 1, 1000,
                               &options->rcpts);
    default:
        return bench_parse_u64("blast", "timeout", text, 1, 7 * 86400,
                               &options->timeout);
    }
}

/* Returns 0, 1 when help was printed, or -1 on a usage error. */
static int blast_parse_options(int argc, char **argv,
                               struct blast_options *options)
{
    static const struct option long_options[] = {
        {"server", required_argument, NULL, 's'},
        {"connections", required_argument, NULL, 'c'},
        {"messages", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 'z'},
        {"rcpts", required_argument, NULL, 'r'},
        {"timeout", required_argument, NULL, 't'},
        {"helo", required_argument, NULL, 'H'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    *options = (struct blast_options){
        .server = BLAST_DEFAULT_SERVER,
        .connections = BLAST_DEFAULT_CONNECTIONS,
        .messages = BLAST_DEFAULT_MESSAGES,
        .size = BLAST_DEFAULT_SIZE,
        .rcpts = 1,
        .timeout = BLAST_DEFAULT_TIMEOUT,
        .helo = BLAST_DEFAULT_HELO,
        .from = BLAST_DEFAULT_FROM,
        .to = BLAST_DEFAULT_TO,
    };
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (opt == 's') {
            options->server = optarg;
        } else if (opt == 'H') {
            options->helo = optarg;
        } else if (opt == 'f') {
            options->from = optarg;
        } else if (opt == 'T') {
            options->to = optarg;
        } else if (opt == 'h') {
            blast_usage(stdout);
            return 1;
        } else if (opt == '?') {
            blast_usage(stderr);
            return -1;
        } else if (blast_parse_number(opt, optarg, options) < 0) {
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "blast: unexpected argument \"%s\"\n",
                argv[optind]);
        return -1;
    }
    if (blast_check_helo(options->helo) < 0
        || blast_check_address("from", options->from) < 0
        || blast_check_address("to", options->to) < 0) {
        return -1;
    }
    return 0;
}

struct blast_state {
    struct blast_run run;
    struct blast_conn **conns;
    unsigned conn_count;
    struct reactor_timer timeout_timer;
    uint64_t requested;
    uint64_t size;          /* requested bytes per message */
    uint64_t timeout_s;
    bool timed_out;
    uint64_t start_ns;
    uint64_t end_ns;
};

static void blast_on_timeout(struct reactor_timer *timer)
{
    struct blast_state *state = timer->owner;

    state->timed_out = true;
    reactor_stop(state->run.reactor);
}

/* Create the connections, spreading the messages evenly: the first
 * messages % connections ones send one message more. */
static int blast_create_conns(struct blast_state *state,
                              const struct blast_options *options)
{
    uint64_t count = options->connections;
    uint64_t share;
    uint64_t extra;

    if (count > options->messages) {
        count = options->messages;
    }
    share = options->messages / count;
    extra = options->messages % count;

    state->conns = calloc(count, sizeof(*state->conns));
    if (state->conns == NULL) {
        return -1;
    }
    state->conn_count = (unsigned)count;
    for (unsigned i = 0; i < state->conn_count; i++) {
        state->conns[i] = blast_conn_new(&state->run, i,
                                         share + (i < extra ? 1 : 0));
        if (state->conns[i] == NULL) {
            return -1;
        }
    }
    return 0;
}

/* Returns 0 or -1 after printing the failure. */
static int blast_setup(struct blast_state *state,
                       const struct blast_options *options)
{
    struct blast_run *run = &state->run;
    char error[512];
    int rc;

    if (bench_endpoint_parse(options->server, BLAST_DEFAULT_PORT,
                             &run->server, error, sizeof(error)) < 0) {
        fprintf(stderr, "blast: invalid --server \"%s\": %s\n",
                options->server, error);
        return -1;
    }
    run->helo = options->helo;
    run->from = options->from;
    run->to = options->to;
    run->rcpts = (unsigned)options->rcpts;
    state->requested = options->messages;
    state->size = options->size;
    state->timeout_s = options->timeout;

    if (blast_message_init(&run->message, options->from, options->to,
                           options->helo, (size_t)options->size) < 0
        || blast_create_conns(state, options) < 0) {
        fprintf(stderr, "blast: out of memory setting up the run\n");
        return -1;
    }
    rc = reactor_new(&run->reactor, NULL);
    if (rc < 0) {
        fprintf(stderr, "blast: creating the reactor failed: %s\n",
                strerror(-rc));
        return -1;
    }
    state->timeout_timer.fire = blast_on_timeout;
    state->timeout_timer.owner = state;
    return 0;
}

/* Returns 0, or -1 when the reactor itself failed. */
static int blast_execute(struct blast_state *state)
{
    struct blast_run *run = &state->run;
    int rc = 0;

    reactor_timer_set(run->reactor, &state->timeout_timer,
                      state->timeout_s * 1000);
    state->start_ns = bench_monotonic_ns();
    for (unsigned i = 0; i < state->conn_count; i++) {
        blast_conn_start(state->conns[i]);
    }
    if (run->active > 0) {
        rc = reactor_run(run->reactor);
    }
    state->end_ns = bench_monotonic_ns();
    if (rc < 0) {
        fprintf(stderr, "blast: the reactor failed: %s\n", strerror(-rc));
        return -1;
    }
    return 0;
}

static void blast_print_report(const struct blast_state *state)
{
    const struct blast_run *run = &state->run;
    double elapsed = (double)(state->end_ns - state->start_ns) / 1e9;
    uint64_t rejected = bench_code_tally_total(&run->rejected);
    uint64_t finished = run->accepted + rejected + run->failed;

    printf("blast: %" PRIu64 " messages of about %" PRIu64 " bytes to %s "
           "over %u connections (%s backend)\n",
           state->requested, state->size, run->server.text,
           state->conn_count, reactor_backend_name(run->reactor));
    printf("  messages sent:        %" PRIu64 "\n", run->sent);
    printf("  accepted (2xx):       %" PRIu64 "\n", run->accepted);
    printf("  rejected:             %" PRIu64 "\n", rejected);
    bench_code_tally_print(&run->rejected, "    rejected with", stdout);
    printf("  recipients rejected:  %" PRIu64 "\n",
           bench_code_tally_total(&run->rcpt_rejected));
    bench_code_tally_print(&run->rcpt_rejected, "    recipients rejected with",
                           stdout);
    printf("  failed (connection):  %" PRIu64 "\n", run->failed);
    printf("  not finished:         %" PRIu64 "\n",
           state->requested - finished);
    printf("  connection failures:  %" PRIu64 "\n", run->connection_failures);
    printf("  elapsed:              %.3f s\n", elapsed);
    printf("  messages/s:           %.1f\n",
           bench_rate((double)run->accepted, elapsed));
    printf("  MB/s:                 %.2f (accepted header and body bytes, "
           "1 MB = 10^6 bytes)\n",
           bench_rate((double)run->bytes_accepted, elapsed) / 1e6);
    fflush(stdout);
}

static void blast_cleanup(struct blast_state *state)
{
    /* Connections may still have operations in flight after a timeout;
     * the reactor abandons them before their memory is released. */
    reactor_free(state->run.reactor);
    if (state->conns != NULL) {
        for (unsigned i = 0; i < state->conn_count; i++) {
            blast_conn_free(state->conns[i]);
        }
        free(state->conns);
    }
    blast_message_cleanup(&state->run.message);
}

int blast_main(int argc, char **argv)
{
    struct blast_options options;
    struct blast_state *state;
    int status = 1;
    int rc;

    rc = blast_parse_options(argc, argv, &options);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        fprintf(stderr, "blast: ignoring SIGPIPE failed: %s\n",
                strerror(errno));
        return 1;
    }
    bench_raise_open_files();

    /* The state contains two reply-code tallies of a few KiB each, so it
     * lives on the heap. */
    state = calloc(1, sizeof(*state));
    if (state == NULL) {
        fprintf(stderr, "blast: out of memory\n");
        return 1;
    }
    if (blast_setup(state, &options) == 0 && blast_execute(state) == 0) {
        if (state->timed_out) {
            fprintf(stderr, "blast: timed out after %" PRIu64 " s; "
                            "unfinished messages are counted as not "
                            "finished\n", options.timeout);
        }
        blast_print_report(state);
        if (state->run.accepted == options.messages) {
            status = 0;
        }
    }
    blast_cleanup(state);
    free(state);
    return status;
}
