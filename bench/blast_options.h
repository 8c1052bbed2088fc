/* Command line of ringrelay-bench blast. */
#ifndef RINGRELAY_BENCH_BLAST_OPTIONS_H
#define RINGRELAY_BENCH_BLAST_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/bench_net.h"

/* Bytes of the user and of the password in --auth. */
#define BLAST_AUTH_PART_MAX 255

/* blast_options: the parsed command line. Strings point into argv. */
struct blast_options {
    const char *server_text;
    struct bench_endpoint server;  /* resolved --server */
    uint64_t connections;
    uint64_t messages;        /* 0 with --duration */
    uint64_t duration_s;      /* 0 without --duration */
    uint64_t per_connection;  /* 0: each connection sends its share */
    uint64_t rate;            /* messages per second; 0: closed loop */
    uint64_t size;            /* bytes per message, header included */
    uint64_t rcpts;           /* recipients per message */
    uint64_t domains;         /* values of %d: 1..domains */
    uint64_t timeout_s;       /* seconds for the whole run */
    bool pipelining;          /* use PIPELINING when offered */
    bool idle;                /* --idle: hold connections, no messages */
    bool starttls;            /* STARTTLS after EHLO, then EHLO again */
    const char *auth;         /* --auth USER:PASS for AUTH PLAIN, or NULL */
    const char *helo;
    const char *from;         /* template, see blast_template.h */
    const char *to;           /* template */
    const char *body_dir;     /* NULL: synthetic bodies of size bytes */
    const char *json_path;    /* NULL: no JSON report */
    const char *stats_path;   /* NULL: no stats file */
};

enum blast_options_result {
    BLAST_OPTIONS_RUN,    /* options are valid */
    BLAST_OPTIONS_HELP,   /* --help: print blast_options_usage to stdout */
    BLAST_OPTIONS_ERROR,  /* usage error, described in error */
};

/* blast_options_parse parses argv[1..argc) (argv[0] is "blast") into
 * *options; getopt may permute argv. It resolves --server (which may
 * block on DNS for a name) and checks every value, including the
 * templates expanded with their smallest and largest numbers, and that
 * the directories of --json and --stats-file are writable. On a usage
 * error it writes one line naming the option, the value and what is
 * expected into error[0..error_size), without a trailing newline. */
enum blast_options_result blast_options_parse(int argc, char **argv,
                                              struct blast_options *options,
                                              char *error,
                                              size_t error_size);

/* blast_options_usage writes the --help text to out. */
void blast_options_usage(FILE *out);

#endif
