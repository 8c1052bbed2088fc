/* Command line of `ringrelay-bench run`. */
#ifndef RINGRELAY_BENCH_RUN_OPTIONS_H
#define RINGRELAY_BENCH_RUN_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/bench_net.h"

struct run_options {
    const char *relay_path;   /* NULL: ringrelay beside the bench dir */
    const char *target;       /* NULL: start a relay */
    const char *listen;       /* the relay's listen address */
    const char *sink_listen;
    const char *durability;   /* NULL: the relay's default */
    const char *resolver;     /* NULL: the sink is the smarthost */
    const char *json_path;    /* NULL: no JSON report */
    struct bench_endpoint sink_endpoint;   /* --sink-listen, resolved */
    struct bench_endpoint target_endpoint; /* --target, else --listen */
    uint64_t startup_timeout; /* seconds for sink and relay to listen */
    uint64_t timeout;         /* seconds blast may run */
    uint64_t drain_timeout;   /* seconds to wait for deliveries */
    bool keep_dir;
    int blast_argc;           /* blast options after "--" */
    char **blast_argv;
};

void run_usage(FILE *out);

/* run_parse_options fills options from argv and resolves the sink's and
 * the target's addresses. Returns 0, 1 when help was printed, or -1 on a
 * usage error (printed), which includes a relay or target address that
 * overlaps the sink's. */
int run_parse_options(int argc, char **argv, struct run_options *options);

#endif
