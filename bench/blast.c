#include "bench/blast.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_net.h"
#include "bench/blast_idle_report.h"
#include "bench/blast_options.h"
#include "bench/blast_report.h"
#include "bench/blast_run.h"
#include "bench/blast_signal.h"
#include "bench/blast_template.h"

/* Warn when the recipients of one message can repeat: a server that
 * merges duplicate recipients (ringrelay does) then delivers fewer
 * copies than X-Blast-Rcpts says. */
static void blast_warn_duplicates(const struct blast_options *options)
{
    bool by_rcpt = blast_template_uses(options->to, 'r');
    bool by_domain = blast_template_uses(options->to, 'd')
                     && options->domains >= options->rcpts;

    if (options->rcpts > 1 && !by_rcpt && !by_domain) {
        fprintf(stderr,
                "blast: warning: --to \"%s\" gives %llu recipients of a "
                "message the same address more than once; add %%r to make "
                "them distinct\n",
                options->to, (unsigned long long)options->rcpts);
    }
}

/* Write the reports the options ask for. Returns 0 or -1. */
static int blast_write_reports(const struct blast_run *run)
{
    const struct blast_options *options = run->options;
    int rc = 0;

    blast_report_print(run, stdout);
    if (options->json_path != NULL
        && blast_report_json(run, options->json_path) < 0) {
        rc = -1;
    }
    if (options->stats_path != NULL
        && blast_report_stats_file(run, options->stats_path) < 0) {
        rc = -1;
    }
    return rc;
}

/* Say on stderr why the run ended early, if it did. */
static void blast_print_early_end(const struct blast_run *run)
{
    if (run->timed_out) {
        fprintf(stderr, "blast: timed out after %llu s; unfinished "
                        "messages are counted as not finished\n",
                (unsigned long long)run->options->timeout_s);
    }
    if (run->drain_expired && run->hold) {
        fprintf(stderr, "blast: connections without a reply to QUIT %d s "
                        "after the end of the hold were closed\n",
                BLAST_RUN_DRAIN_S);
    } else if (run->drain_expired) {
        fprintf(stderr, "blast: messages still in flight %d s after the "
                        "interrupt are counted as not finished\n",
                BLAST_RUN_DRAIN_S);
    }
}

/* Descriptors that blast needs besides one per connection: stdio, the
 * reactor, signals, report files, with room to spare. */
#define BLAST_SPARE_FILES 64

/* Raise the soft RLIMIT_NOFILE to the hard limit, and fail with a clear
 * message when even that is too low for --connections. Returns 0 or
 * -1. */
static int blast_check_open_files(const struct blast_options *options)
{
    uint64_t need = options->connections + BLAST_SPARE_FILES;
    uint64_t limit = bench_raise_open_files();

    if (limit != 0 && limit < need) {
        fprintf(stderr,
                "blast: --connections %llu needs %llu open files, but "
                "RLIMIT_NOFILE is %llu after raising it to the hard limit; "
                "raise the hard limit (ulimit -Hn, as root) or use fewer "
                "connections\n",
                (unsigned long long)options->connections,
                (unsigned long long)need, (unsigned long long)limit);
        return -1;
    }
    return 0;
}

/* Whether the run did all it was asked to, for the exit status. A
 * signal fails the run, with --idle too: the hold ended before its
 * --duration. */
static bool blast_succeeded(const struct blast_run *run, int ended)
{
    if (run->hold) {
        return ended == 0 && blast_idle_succeeded(run);
    }
    return ended == 0 && blast_run_requested(run) > 0
           && run->results.accepted == blast_run_requested(run);
}

/* Run with signals read by the reactor through sig, which must outlive
 * the reactor. Returns 0 when the run ended by itself, 1 when it was
 * interrupted, -1 when it failed (printed). */
static int blast_execute(struct blast_run *run, struct blast_signal *sig)
{
    if (blast_signal_open(sig, run) < 0 || blast_run_execute(run) < 0) {
        return -1;
    }
    return run->interrupted != 0 ? 1 : 0;
}

int blast_main(int argc, char **argv)
{
    struct blast_options options;
    struct blast_signal sig = {.fd = -1};
    struct blast_run *run;
    char error[1024];
    int init;
    int status = 1;

    switch (blast_options_parse(argc, argv, &options, error,
                                sizeof(error))) {
    case BLAST_OPTIONS_HELP:
        blast_options_usage(stdout);
        return 0;
    case BLAST_OPTIONS_ERROR:
        fprintf(stderr, "blast: %s\n", error);
        return 2;
    case BLAST_OPTIONS_RUN:
        break;
    }
    blast_warn_duplicates(&options);
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        fprintf(stderr, "blast: ignoring SIGPIPE failed: %s\n",
                strerror(errno));
        return 1;
    }
    if (blast_check_open_files(&options) < 0) {
        return 1;
    }

    /* The run holds histograms and reply-code tallies of some 150 KiB,
     * so it lives on the heap. */
    run = calloc(1, sizeof(*run));
    if (run == NULL) {
        fprintf(stderr, "blast: out of memory\n");
        return 1;
    }
    init = blast_run_init(run, &options);
    if (init == -2) {
        status = 2;
    } else if (init == 0) {
        int ended = blast_execute(run, &sig);

        if (ended >= 0) {
            blast_print_early_end(run);
        }
        if (ended >= 0 && blast_write_reports(run) == 0
            && blast_succeeded(run, ended)) {
            status = 0;
        }
    }
    blast_run_cleanup(run);
    blast_signal_close(&sig);
    free(run);
    return status;
}
