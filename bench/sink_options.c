#include "bench/sink_options.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench_args.h"
#include "bench/sink_track.h"
#include "proto/smtp_server.h"

/* Upper bound of the delay options: one hour in milliseconds. */
#define SINK_DELAY_MAX_MS 3600000u

enum sink_option {
    SINK_OPT_LISTEN = 256,
    SINK_OPT_STORE,
    SINK_OPT_FSYNC,
    SINK_OPT_MAX_SECONDS,
    SINK_OPT_IDLE_TIMEOUT,
    SINK_OPT_EXPECT,
    SINK_OPT_JSON,
    SINK_OPT_STATS_FILE,
    SINK_OPT_SEED,
    SINK_OPT_CONNECT_REPLY,
    SINK_OPT_MAIL_REPLY,
    SINK_OPT_RCPT_REPLY,
    SINK_OPT_DATA_REPLY,
    SINK_OPT_CONNECT_DELAY,
    SINK_OPT_MAIL_DELAY,
    SINK_OPT_RCPT_DELAY,
    SINK_OPT_DATA_DELAY,
    SINK_OPT_DISCONNECT_IN_DATA,
    SINK_OPT_MAX_CONNECTIONS,
    SINK_OPT_MAX_SIZE,
    SINK_OPT_MAX_ERRORS,
    SINK_OPT_NO_PIPELINING,
    SINK_OPT_NO_8BITMIME,
    SINK_OPT_NO_SIZE,
    SINK_OPT_NO_SMTPUTF8,
    SINK_OPT_NO_CHUNKING,
    SINK_OPT_NO_BINARYMIME,
    SINK_OPT_TLS_CERT,
    SINK_OPT_TLS_KEY,
    SINK_OPT_TLS_FAIL,
};

static const struct option sink_long_options[] = {
    {"listen", required_argument, NULL, SINK_OPT_LISTEN},
    {"store", required_argument, NULL, SINK_OPT_STORE},
    {"fsync", no_argument, NULL, SINK_OPT_FSYNC},
    {"max-seconds", required_argument, NULL, SINK_OPT_MAX_SECONDS},
    {"idle-timeout", required_argument, NULL, SINK_OPT_IDLE_TIMEOUT},
    {"expect", required_argument, NULL, SINK_OPT_EXPECT},
    {"json", required_argument, NULL, SINK_OPT_JSON},
    {"stats-file", required_argument, NULL, SINK_OPT_STATS_FILE},
    {"seed", required_argument, NULL, SINK_OPT_SEED},
    {"connect-reply", required_argument, NULL, SINK_OPT_CONNECT_REPLY},
    {"mail-reply", required_argument, NULL, SINK_OPT_MAIL_REPLY},
    {"rcpt-reply", required_argument, NULL, SINK_OPT_RCPT_REPLY},
    {"data-reply", required_argument, NULL, SINK_OPT_DATA_REPLY},
    {"connect-delay", required_argument, NULL, SINK_OPT_CONNECT_DELAY},
    {"mail-delay", required_argument, NULL, SINK_OPT_MAIL_DELAY},
    {"rcpt-delay", required_argument, NULL, SINK_OPT_RCPT_DELAY},
    {"data-delay", required_argument, NULL, SINK_OPT_DATA_DELAY},
    {"disconnect-in-data", required_argument, NULL,
     SINK_OPT_DISCONNECT_IN_DATA},
    {"max-connections", required_argument, NULL, SINK_OPT_MAX_CONNECTIONS},
    {"max-size", required_argument, NULL, SINK_OPT_MAX_SIZE},
    {"max-errors", required_argument, NULL, SINK_OPT_MAX_ERRORS},
    {"no-pipelining", no_argument, NULL, SINK_OPT_NO_PIPELINING},
    {"no-8bitmime", no_argument, NULL, SINK_OPT_NO_8BITMIME},
    {"no-size", no_argument, NULL, SINK_OPT_NO_SIZE},
    {"no-smtputf8", no_argument, NULL, SINK_OPT_NO_SMTPUTF8},
    {"no-chunking", no_argument, NULL, SINK_OPT_NO_CHUNKING},
    {"no-binarymime", no_argument, NULL, SINK_OPT_NO_BINARYMIME},
    {"tls-cert", required_argument, NULL, SINK_OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, SINK_OPT_TLS_KEY},
    {"tls-fail", no_argument, NULL, SINK_OPT_TLS_FAIL},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void sink_usage(FILE *out)
{
    fprintf(out,
"usage: ringrelay-bench sink [OPTION]...\n"
"\n"
"Accept messages over SMTP, count them, measure delivery latency, loss\n"
"and duplicates from the X-Blast-* headers of blast, optionally store\n"
"them, and answer with scripted faults.\n"
"\n"
"Server:\n"
"  --listen HOST:PORT      address to listen on (default "
SINK_DEFAULT_LISTEN ")\n"
"  --idle-timeout SECONDS  send 421 to sessions idle this long "
"(default 300)\n"
"  --max-seconds N         stop after N seconds (default: run until "
"SIGINT,\n"
"                          SIGTERM or SIGHUP)\n"
"  --max-size BYTES        largest message body accepted, advertised "
"with\n"
"                          SIZE (default 67108864)\n"
"  --max-errors N          after N rejected commands of a session "
"(replies\n"
"                          500, 501, 503, 553, 555) send 421 and close it;"
"\n"
"                          0 means no limit (default 0, so the sink's own\n"
"                          faults do not end sessions)\n"
"  --no-pipelining         leave PIPELINING out of the EHLO reply\n"
"  --no-8bitmime           leave 8BITMIME out; MAIL BODY= gets 555\n"
"  --no-size               leave SIZE out; MAIL SIZE= gets 555\n"
"  --no-smtputf8           leave SMTPUTF8 out; MAIL SMTPUTF8 gets 555 and\n"
"                          non-ASCII addresses get 553\n"
"  --no-chunking           leave CHUNKING out; BDAT gets 500 and\n"
"                          BINARYMIME is left out too\n"
"  --no-binarymime         leave BINARYMIME out; MAIL BODY=BINARYMIME "
"gets 555\n"
"  --tls-cert FILE         PEM certificate chain, leaf first; with "
"--tls-key\n"
"                          the sink offers STARTTLS (TLS 1.2 and 1.3)\n"
"  --tls-key FILE          PEM private key of --tls-cert\n"
"  --tls-fail              offer STARTTLS but answer it with 454 4.7.0;\n"
"                          needs no certificate\n"
"\n"
"Storage:\n"
"  --store DIR             write each accepted message to "
"DIR/NNNNNNNNNNNN.msg\n"
"                          (12-digit sequence, from 000000000001 or after\n"
"                          the highest number already there); DIR is\n"
"                          created when missing; temporary files that a\n"
"                          killed sink left there are removed at start\n"
"  --fsync                 fsync each stored file before the reply\n"
"\n"
"Reports (the summary goes to stdout, a progress line per second to\n"
"stderr while mail arrives or sessions are open):\n"
"  --expect N              blast sends seqs 1..N: count every missing "
"one as\n"
"                          lost (default: the gaps up to the highest "
"seq)\n"
"  --json FILE             write the summary and a per-second series "
"as JSON\n"
"                          at exit\n"
"  --stats-file FILE       replace FILE every second and at exit with\n"
"                          key=value counters (through a temporary "
"file)\n"
"\n"
"Faults (SPEC is 'CODE TEXT:PROB', e.g. '451 4.3.0 try later:0.1'; "
"CODE\n"
"from 200 to 599, PROB from 0 to 1; an option may be repeated, the\n"
"probabilities of one stage add up to at most 1; a 2xx code accepts "
"with\n"
"that text, 421 closes the connection):\n"
"  --seed N                seed of the fault draws (default: from the "
"clock,\n"
"                          printed in the summary)\n"
"  --connect-reply SPEC    greeting instead of 220; a code other than "
"2xx\n"
"                          and 421 gets 503 for every command but QUIT\n"
"  --mail-reply SPEC       reply to MAIL FROM\n"
"  --rcpt-reply SPEC       reply to RCPT TO\n"
"  --data-reply SPEC       reply to the end of data; a body refused "
"this way\n"
"                          is neither counted nor stored\n"
"  --connect-delay MS      wait MS milliseconds before the greeting "
"(default 0)\n"
"  --mail-delay MS         wait before the reply to MAIL (default 0)\n"
"  --rcpt-delay MS         wait before each reply to RCPT (default 0)\n"
"  --data-delay MS         wait after the final dot before the reply "
"(default 0)\n"
"  --disconnect-in-data PROB\n"
"                          close the connection once part of a body "
"arrived,\n"
"                          for this share of bodies (default 0)\n"
"  --max-connections N     answer connections past N open ones with\n"
"                          \"421 4.7.0 too many connections\" "
"(default: none)\n"
"\n"
"Exit status: 0 after SIGINT, SIGTERM, SIGHUP or --max-seconds, 1 on a\n"
"runtime failure, 2 on a usage error.\n");
}

static int sink_parse_rule(struct sink_options *options,
                           enum sink_fault_stage stage, const char *spec)
{
    char error[256];

    if (sink_fault_parse_rule(&options->faults, stage, spec, error,
                              sizeof(error)) < 0) {
        fprintf(stderr, "sink: invalid --%s-reply '%s': %s\n",
                sink_fault_stage_name(stage), spec, error);
        return -1;
    }
    return 0;
}

static int sink_parse_delay(struct sink_options *options,
                            enum sink_fault_stage stage, const char *text)
{
    char name[32];

    snprintf(name, sizeof(name), "%s-delay", sink_fault_stage_name(stage));
    return bench_parse_u64("sink", name, text, 0, SINK_DELAY_MAX_MS,
                           &options->faults.stages[stage].delay_ms);
}

static int sink_parse_disconnect(struct sink_options *options,
                                 const char *text)
{
    if (sink_fault_parse_probability(text,
                                     &options->faults.disconnect_in_data)
        < 0) {
        fprintf(stderr, "sink: invalid value \"%s\" for "
                "--disconnect-in-data: expected a probability from 0 "
                "to 1\n", text);
        return -1;
    }
    return 0;
}

/* Apply one server or report option. Returns 0, -1 on a bad value, or
 * 1 when opt is not one of them. */
static int sink_apply_server_option(struct sink_options *options, int opt,
                                    const char *arg)
{
    switch (opt) {
    case SINK_OPT_LISTEN:
        options->listen = arg;
        return 0;
    case SINK_OPT_STORE:
        options->store_dir = arg;
        return 0;
    case SINK_OPT_FSYNC:
        options->with_fsync = true;
        return 0;
    case SINK_OPT_MAX_SECONDS:
        return bench_parse_u64("sink", "max-seconds", arg, 1, UINT32_MAX,
                               &options->max_seconds);
    case SINK_OPT_IDLE_TIMEOUT:
        return bench_parse_u64("sink", "idle-timeout", arg, 1, UINT32_MAX,
                               &options->idle_seconds);
    case SINK_OPT_EXPECT:
        return bench_parse_u64("sink", "expect", arg, 1,
                               SINK_TRACK_SEQ_MAX, &options->expect);
    case SINK_OPT_JSON:
        options->json_path = arg;
        return 0;
    case SINK_OPT_STATS_FILE:
        options->stats_path = arg;
        return 0;
    case SINK_OPT_MAX_SIZE:
        /* 2^40 keeps the per-session message buffer bound in range. */
        return bench_parse_u64("sink", "max-size", arg, 1,
                               (uint64_t)1 << 40, &options->max_size);
    case SINK_OPT_MAX_ERRORS:
        return bench_parse_u64("sink", "max-errors", arg, 0, UINT32_MAX,
                               &options->max_errors);
    case SINK_OPT_NO_PIPELINING:
        options->disabled_extensions |= SMTP_EXT_PIPELINING;
        return 0;
    case SINK_OPT_NO_8BITMIME:
        options->disabled_extensions |= SMTP_EXT_8BITMIME;
        return 0;
    case SINK_OPT_NO_SIZE:
        options->disabled_extensions |= SMTP_EXT_SIZE;
        return 0;
    case SINK_OPT_NO_SMTPUTF8:
        options->disabled_extensions |= SMTP_EXT_SMTPUTF8;
        return 0;
    case SINK_OPT_NO_CHUNKING:
        options->disabled_extensions |= SMTP_EXT_CHUNKING;
        return 0;
    case SINK_OPT_NO_BINARYMIME:
        options->disabled_extensions |= SMTP_EXT_BINARYMIME;
        return 0;
    case SINK_OPT_TLS_CERT:
        options->tls_cert = arg;
        return 0;
    case SINK_OPT_TLS_KEY:
        options->tls_key = arg;
        return 0;
    case SINK_OPT_TLS_FAIL:
        options->tls_fail = true;
        return 0;
    }
    return 1;
}

/* Apply one fault option. Returns 0, -1 on a bad value, or 1 when opt is
 * not one of them. */
static int sink_apply_fault_option(struct sink_options *options, int opt,
                                   const char *arg)
{
    struct sink_faults *faults = &options->faults;

    switch (opt) {
    case SINK_OPT_SEED:
        options->has_seed = true;
        return bench_parse_u64("sink", "seed", arg, 0, UINT64_MAX,
                               &faults->seed);
    case SINK_OPT_CONNECT_REPLY:
        return sink_parse_rule(options, SINK_STAGE_CONNECT, arg);
    case SINK_OPT_MAIL_REPLY:
        return sink_parse_rule(options, SINK_STAGE_MAIL, arg);
    case SINK_OPT_RCPT_REPLY:
        return sink_parse_rule(options, SINK_STAGE_RCPT, arg);
    case SINK_OPT_DATA_REPLY:
        return sink_parse_rule(options, SINK_STAGE_DATA, arg);
    case SINK_OPT_CONNECT_DELAY:
        return sink_parse_delay(options, SINK_STAGE_CONNECT, arg);
    case SINK_OPT_MAIL_DELAY:
        return sink_parse_delay(options, SINK_STAGE_MAIL, arg);
    case SINK_OPT_RCPT_DELAY:
        return sink_parse_delay(options, SINK_STAGE_RCPT, arg);
    case SINK_OPT_DATA_DELAY:
        return sink_parse_delay(options, SINK_STAGE_DATA, arg);
    case SINK_OPT_DISCONNECT_IN_DATA:
        return sink_parse_disconnect(options, arg);
    case SINK_OPT_MAX_CONNECTIONS:
        return bench_parse_u64("sink", "max-connections", arg, 1,
                               UINT32_MAX, &faults->max_connections);
    }
    return 1;
}

int sink_parse_options(int argc, char **argv, struct sink_options *options)
{
    char error[512];
    int port;
    int opt;

    *options = (struct sink_options){
        .listen = SINK_DEFAULT_LISTEN,
        .idle_seconds = SINK_DEFAULT_IDLE_SECONDS,
        .max_size = SINK_DEFAULT_MAX_SIZE,
    };
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", sink_long_options, NULL))
           != -1) {
        int rc;

        if (opt == 'h') {
            sink_usage(stdout);
            return 1;
        }
        rc = sink_apply_server_option(options, opt, optarg);
        if (rc > 0) {
            rc = sink_apply_fault_option(options, opt, optarg);
        }
        if (rc > 0) {
            sink_usage(stderr);
            return -1;
        }
        if (rc < 0) {
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sink: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (options->with_fsync && options->store_dir == NULL) {
        fprintf(stderr, "sink: --fsync needs --store DIR\n");
        return -1;
    }
    if ((options->tls_cert != NULL) != (options->tls_key != NULL)) {
        fprintf(stderr, "sink: --%s needs --%s FILE too\n",
                options->tls_cert != NULL ? "tls-cert" : "tls-key",
                options->tls_cert != NULL ? "tls-key" : "tls-cert");
        return -1;
    }
    if (options->json_path != NULL
        && bench_check_output_path("sink", "json", options->json_path) < 0) {
        return -1;
    }
    /* A bare host would listen on a port the user did not choose. */
    port = bench_endpoint_port_check(options->listen);
    if (port == 0) {
        fprintf(stderr, "sink: invalid --listen \"%s\": missing port; "
                        "expected HOST:PORT or [IPV6]:PORT\n",
                options->listen);
        return -1;
    }
    if (port < 0) {
        fprintf(stderr, "sink: invalid --listen \"%s\": expected "
                        "HOST:PORT with a port from 1 to 65535\n",
                options->listen);
        return -1;
    }
    if (bench_endpoint_parse(options->listen, SINK_DEFAULT_PORT,
                             &options->endpoint, error, sizeof(error)) < 0) {
        fprintf(stderr, "sink: invalid --listen \"%s\": %s\n",
                options->listen, error);
        return -1;
    }
    return 0;
}
