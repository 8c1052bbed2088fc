#include "bench/run_options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench_args.h"

#define RUN_DEFAULT_LISTEN "127.0.0.1:2525"
#define RUN_DEFAULT_SINK_LISTEN "127.0.0.1:2526"
/* Port of a --listen, --target or --sink-listen given without one. */
#define RUN_DEFAULT_PORT 25
/* Port of a --resolver given without one. */
#define RUN_DEFAULT_DNS_PORT 53

void run_usage(FILE *out)
{
    fprintf(out,
        "usage: ringrelay-bench run [--relay PATH] [--listen HOST:PORT]\n"
        "                           [--durability fsync|batch|none]\n"
        "                           [--resolver IP:PORT]\n"
        "                           [--target HOST:PORT] "
        "[--sink-listen HOST:PORT]\n"
        "                           [--json FILE] [--timeout SECONDS]\n"
        "                           [--drain-timeout SECONDS] "
        "[--keep-dir]\n"
        "                           [-- BLAST-OPTIONS]\n"
        "\n"
        "Start a sink and a relay that delivers to it, send messages to "
        "the relay\n"
        "with blast, wait until the sink has every accepted message, and "
        "report\n"
        "end-to-end rates, latency, loss and the relay's CPU time and "
        "memory.\n"
        "\n"
        "  --relay PATH              ringrelay binary (default: "
        "../ringrelay next\n"
        "                            to the directory of this binary)\n"
        "  --listen HOST:PORT        where the relay listens (default "
        RUN_DEFAULT_LISTEN ")\n"
        "  --durability MODE         the relay's durability setting "
        "(default: the\n"
        "                            relay's own, fsync)\n"
        "  --resolver IP:PORT        deliver by MX lookups through this "
        "name server,\n"
        "                            with mx_allow_loopback on, instead "
        "of to the\n"
        "                            sink as smarthost. Its zone must "
        "point the\n"
        "                            recipient domains at the sink\n"
        "  --target HOST:PORT        use a relay that already runs there "
        "and start\n"
        "                            only the sink; that relay must "
        "deliver to\n"
        "                            --sink-listen\n"
        "  --sink-listen HOST:PORT   where the sink listens (default "
        RUN_DEFAULT_SINK_LISTEN ")\n"
        "  --json FILE               also write the report as JSON to "
        "FILE\n"
        "  --timeout SECONDS         blast's --timeout, unless given "
        "after \"--\";\n"
        "                            run stops blast 30 s later "
        "(default 600)\n"
        "  --drain-timeout SECONDS   wait this long after blast for "
        "deliveries\n"
        "                            (default 60)\n"
        "  --keep-dir                keep the working directory with "
        "logs, stats\n"
        "                            and queue after a success too; a run "
        "that\n"
        "                            fails after its start always keeps "
        "it\n"
        "\n"
        "Options after \"--\" go to blast, except --server and "
        "--stats-file,\n"
        "which run sets.\n"
        "\n"
        "Exit status: 0 when every message was accepted and delivered "
        "once,\n"
        "1 otherwise, 2 on a usage error.\n");
}

/* Reject blast options that run sets itself. */
static int run_check_blast_args(int argc, char **argv)
{
    static const char *const reserved[] = {"--server", "--stats-file"};

    for (int i = 0; i < argc; i++) {
        for (size_t r = 0; r < sizeof(reserved) / sizeof(reserved[0]);
             r++) {
            size_t len = strlen(reserved[r]);

            if (strncmp(argv[i], reserved[r], len) == 0
                && (argv[i][len] == '\0' || argv[i][len] == '=')) {
                fprintf(stderr, "run: %s is set by run; pass --target or "
                        "--listen instead\n", reserved[r]);
                return -1;
            }
        }
    }
    return 0;
}

static int run_check_durability(const char *mode)
{
    if (strcmp(mode, "fsync") != 0 && strcmp(mode, "batch") != 0
        && strcmp(mode, "none") != 0) {
        fprintf(stderr, "run: invalid --durability \"%s\": expected "
                "fsync, batch or none\n", mode);
        return -1;
    }
    return 0;
}

/* Check that --resolver is an IP address with an optional port (53),
 * because the relay's resolver key takes no host name. */
static int run_check_resolver(const char *text)
{
    struct bench_endpoint endpoint;
    char error[200];
    char host[64];
    const char *start = text[0] == '[' ? text + 1 : text;
    const char *end = text[0] == '[' ? strchr(start, ']')
                                     : strrchr(start, ':');
    size_t len = end != NULL ? (size_t)(end - start) : strlen(start);
    unsigned char addr[sizeof(struct in6_addr)];

    if (len >= sizeof(host)) {
        len = sizeof(host) - 1;
    }
    memcpy(host, start, len);
    host[len] = '\0';
    if ((inet_pton(AF_INET, host, addr) != 1
         && inet_pton(AF_INET6, host, addr) != 1)
        || bench_endpoint_port_check(text) < 0
        || bench_endpoint_parse(text, RUN_DEFAULT_DNS_PORT, &endpoint, error,
                                sizeof(error)) < 0) {
        fprintf(stderr, "run: invalid --resolver \"%s\": expected IP:PORT "
                "or [IPV6]:PORT with an IP address\n", text);
        return -1;
    }
    return 0;
}

static int run_resolve(const char *option, const char *text,
                       struct bench_endpoint *endpoint)
{
    char error[200];
    int port = bench_endpoint_port_check(text);

    /* The sink rejects a --listen without a port, so run does too. */
    if (port == 0 && strcmp(option, "--sink-listen") == 0) {
        fprintf(stderr, "run: invalid --sink-listen \"%s\": missing port; "
                        "expected HOST:PORT or [IPV6]:PORT\n", text);
        return -1;
    }
    if (port < 0) {
        fprintf(stderr, "run: invalid %s \"%s\": expected HOST:PORT with "
                        "a port from 1 to 65535\n",
                option, text);
        return -1;
    }
    if (bench_endpoint_parse(text, RUN_DEFAULT_PORT, endpoint, error,
                             sizeof(error)) < 0) {
        fprintf(stderr, "run: invalid %s \"%s\": %s\n", option, text,
                error);
        return -1;
    }
    return 0;
}

/* Returns whether a listener on a would take connections meant for b or
 * the other way round: same family and port, and the same address or a
 * wildcard on either side. An IPv6 wildcard that also accepts IPv4 is
 * not caught here, so run probes the relay's address again once the
 * sink listens. */
static bool run_endpoints_overlap(const struct bench_endpoint *a,
                                  const struct bench_endpoint *b)
{
    if (a->addr.ss_family != b->addr.ss_family) {
        return false;
    }
    if (a->addr.ss_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)&a->addr;
        const struct sockaddr_in *b4 = (const struct sockaddr_in *)&b->addr;

        return a4->sin_port == b4->sin_port
               && (a4->sin_addr.s_addr == b4->sin_addr.s_addr
                   || a4->sin_addr.s_addr == htonl(INADDR_ANY)
                   || b4->sin_addr.s_addr == htonl(INADDR_ANY));
    }
    if (a->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 =
            (const struct sockaddr_in6 *)&a->addr;
        const struct sockaddr_in6 *b6 =
            (const struct sockaddr_in6 *)&b->addr;

        return a6->sin6_port == b6->sin6_port
               && (IN6_ARE_ADDR_EQUAL(&a6->sin6_addr, &b6->sin6_addr)
                   || IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr)
                   || IN6_IS_ADDR_UNSPECIFIED(&b6->sin6_addr));
    }
    return false;
}

/* Resolve --sink-listen and the address blast sends to, and reject a
 * pair where blast would reach the sink directly: the run would then
 * measure the sink and report a relay that may not even run. */
static int run_check_endpoints(struct run_options *options)
{
    const char *option = options->target != NULL ? "--target" : "--listen";
    const char *target = options->target != NULL ? options->target
                                                 : options->listen;

    if (run_resolve("--sink-listen", options->sink_listen,
                    &options->sink_endpoint) < 0
        || run_resolve(option, target, &options->target_endpoint) < 0) {
        return -1;
    }
    if (run_endpoints_overlap(&options->sink_endpoint,
                              &options->target_endpoint)) {
        fprintf(stderr, "run: %s %s and --sink-listen %s are the same "
                "address, so blast would send to the sink instead of the "
                "relay; pass different ports\n", option, target,
                options->sink_listen);
        return -1;
    }
    return 0;
}

static int run_apply_option(int opt, struct run_options *options)
{
    switch (opt) {
    case 'r':
        options->relay_path = optarg;
        return 0;
    case 'l':
        options->listen = optarg;
        return 0;
    case 'd':
        options->durability = optarg;
        return run_check_durability(optarg);
    case 'R':
        options->resolver = optarg;
        return run_check_resolver(optarg);
    case 't':
        options->target = optarg;
        return 0;
    case 's':
        options->sink_listen = optarg;
        return 0;
    case 'j':
        options->json_path = optarg;
        return 0;
    case 'T':
        return bench_parse_u64("run", "timeout", optarg, 1, 7 * 86400,
                               &options->timeout);
    case 'D':
        return bench_parse_u64("run", "drain-timeout", optarg, 1, 86400,
                               &options->drain_timeout);
    case 'k':
        options->keep_dir = true;
        return 0;
    default:
        return -1;
    }
}

int run_parse_options(int argc, char **argv, struct run_options *options)
{
    static const struct option long_options[] = {
        {"relay", required_argument, NULL, 'r'},
        {"listen", required_argument, NULL, 'l'},
        {"durability", required_argument, NULL, 'd'},
        {"resolver", required_argument, NULL, 'R'},
        {"target", required_argument, NULL, 't'},
        {"sink-listen", required_argument, NULL, 's'},
        {"json", required_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 'T'},
        {"drain-timeout", required_argument, NULL, 'D'},
        {"keep-dir", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    *options = (struct run_options){
        .listen = RUN_DEFAULT_LISTEN,
        .sink_listen = RUN_DEFAULT_SINK_LISTEN,
        .startup_timeout = 10,
        .timeout = 600,
        .drain_timeout = 60,
    };
    optind = 1;
    /* "+": stop at the first non-option, so nothing after "--" is
     * reordered or read as an option of run. */
    while ((opt = getopt_long(argc, argv, "+h", long_options, NULL))
           != -1) {
        if (opt == 'h') {
            run_usage(stdout);
            return 1;
        }
        if (opt == '?' || run_apply_option(opt, options) < 0) {
            if (opt == '?') {
                run_usage(stderr);
            }
            return -1;
        }
    }
    if (optind < argc && strcmp(argv[optind - 1], "--") != 0) {
        fprintf(stderr, "run: unexpected argument \"%s\"; put blast "
                "options after \"--\"\n", argv[optind]);
        return -1;
    }
    if (options->target != NULL
        && (options->relay_path != NULL || options->durability != NULL
            || options->resolver != NULL)) {
        fprintf(stderr, "run: --target uses a running relay, so --relay, "
                "--durability and --resolver do not apply\n");
        return -1;
    }
    if (options->relay_path != NULL && access(options->relay_path, X_OK)
                                           != 0) {
        fprintf(stderr, "run: invalid --relay %s: not executable: %s\n",
                options->relay_path, strerror(errno));
        return -1;
    }
    options->blast_argc = argc - optind;
    options->blast_argv = argv + optind;
    if (run_check_blast_args(options->blast_argc, options->blast_argv) < 0
        || (options->json_path != NULL
            && bench_check_output_path("run", "json", options->json_path) < 0)) {
        return -1;
    }
    return run_check_endpoints(options);
}
