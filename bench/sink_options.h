/* Command line of ringrelay-bench sink. */
#ifndef RINGRELAY_BENCH_SINK_OPTIONS_H
#define RINGRELAY_BENCH_SINK_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "bench/bench_net.h"
#include "bench/sink_fault.h"

#define SINK_DEFAULT_LISTEN "127.0.0.1:2526"
#define SINK_DEFAULT_PORT 2526
#define SINK_DEFAULT_IDLE_SECONDS 300
/* Large enough for any benchmark message. */
#define SINK_DEFAULT_MAX_SIZE (64u << 20)

struct sink_options {
    const char *listen;
    struct bench_endpoint endpoint; /* listen, resolved */
    const char *store_dir;
    const char *json_path;
    const char *stats_path;
    bool with_fsync;
    bool has_seed;
    uint64_t max_seconds;    /* 0: run until a signal */
    uint64_t idle_seconds;
    uint64_t expect;         /* 0: no --expect */
    uint64_t max_size;       /* bytes */
    uint64_t max_errors;     /* rejected commands before 421; 0: none */
    unsigned disabled_extensions; /* smtp_server_extension bits */
    const char *tls_cert;    /* PEM chain; with tls_key, offer STARTTLS */
    const char *tls_key;
    bool tls_fail;           /* answer STARTTLS with 454 */
    struct sink_faults faults;
};

/* sink_parse_options fills options from argv. Returns 0, 1 when help
 * was printed, or -1 after printing a usage error. */
int sink_parse_options(int argc, char **argv, struct sink_options *options);

#endif
