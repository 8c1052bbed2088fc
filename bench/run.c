#include "bench/run.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_net.h"
#include "bench/bench_stats.h"
#include "bench/blast_options.h"
#include "bench/run_child.h"
#include "bench/run_config.h"
#include "bench/run_log.h"
#include "bench/run_options.h"
#include "bench/run_report.h"
#include "bench/run_stats.h"
#include "bench/sink_track.h"

/* How long a stopped child may take to finish before SIGKILL: the relay
 * gives messages in flight up to 10 s, so a little more. */
#define RUN_STOP_GRACE_MS 12000
#define RUN_POLL_MS 100
/* Room for the arguments run puts in front of the user's blast options,
 * and for the terminating NULL. */
#define RUN_BLAST_FIXED_ARGS 10
/* Seconds past --timeout before run stops a blast that did not stop by
 * its own --timeout. */
#define RUN_BLAST_GRACE_S 30

/* Set by SIGINT and SIGTERM; every wait checks it. */
static volatile int run_interrupted;

struct run {
    struct run_options options;
    struct run_workdir workdir;
    bool have_workdir;
    char self_path[RUN_PATH_MAX];  /* this binary, for sink and blast */
    char relay_path[RUN_PATH_MAX];
    const char *target;            /* HOST:PORT blast sends to */
    struct run_child sink;
    struct run_child relay;
    struct run_child blast;
    uint64_t relay_peak_kib;       /* VmHWM read before the stop */
    bool relay_died;               /* seen and reported before the stop */
    bool usage_error;              /* blast rejected its options */
    bool blast_incomplete;         /* blast exited 1: not all accepted */
    struct run_stats blast_stats;
    struct run_stats sink_stats;
    struct run_report report;
};

static void run_on_signal(int signo)
{
    (void)signo;
    run_interrupted = 1;
}

static int run_install_signals(void)
{
    struct sigaction action = {0};

    action.sa_handler = run_on_signal;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGINT, &action, NULL) != 0
        || sigaction(SIGTERM, &action, NULL) != 0) {
        fprintf(stderr, "run: installing signal handlers failed: %s\n",
                strerror(errno));
        return -1;
    }
    return 0;
}

/* Print that SIGINT or SIGTERM stopped the step described by what. A
 * terminal echoes Ctrl-C as "^C" without a line end, so on a terminal
 * the message starts a line of its own. */
static void run_print_interrupted(const char *what)
{
    fprintf(stderr, "%srun: interrupted, %s\n",
            isatty(STDERR_FILENO) ? "\n" : "", what);
}

static uint64_t run_deadline(uint64_t seconds)
{
    return bench_monotonic_ns() + seconds * 1000000000u;
}

/* Find this binary and the default relay: ../ringrelay relative to the
 * directory of this binary, as in a meson build tree. */
static int run_find_binaries(struct run *run)
{
    char dir[RUN_PATH_MAX];
    ssize_t len;
    int written;

    len = readlink("/proc/self/exe", run->self_path,
                   sizeof(run->self_path) - 1);
    if (len < 0) {
        fprintf(stderr, "run: reading /proc/self/exe failed: %s\n",
                strerror(errno));
        return -1;
    }
    run->self_path[len] = '\0';
    if (run->options.relay_path != NULL) {
        written = snprintf(run->relay_path, sizeof(run->relay_path), "%s",
                           run->options.relay_path);
    } else {
        /* dirname() may modify its argument, so it gets a copy. */
        memcpy(dir, run->self_path, (size_t)len + 1);
        written = snprintf(run->relay_path, sizeof(run->relay_path),
                           "%s/../ringrelay", dirname(dir));
    }
    if (written < 0 || (size_t)written >= sizeof(run->relay_path)) {
        fprintf(stderr, "run: the relay path is too long\n");
        return -1;
    }
    /* An explicit --relay was checked with the options. */
    if (run->options.target == NULL && access(run->relay_path, X_OK) != 0) {
        fprintf(stderr, "run: relay %s is not executable: %s; pass "
                "--relay PATH\n", run->relay_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Returns true when a TCP connect to endpoint succeeds within a second. */
static bool run_probe(const struct bench_endpoint *endpoint)
{
    struct timeval limit = {.tv_sec = 1, .tv_usec = 0};
    bool connected;
    int fd;

    fd = socket(endpoint->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    /* SO_SNDTIMEO bounds a blocking connect on Linux. */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit))
        != 0) {
        fprintf(stderr, "run: setting a connect timeout failed: %s\n",
                strerror(errno));
    }
    connected = connect(fd, (const struct sockaddr *)&endpoint->addr,
                        endpoint->addr_len) == 0;
    if (close(fd) != 0) {
        fprintf(stderr, "run: closing a probe socket failed: %s\n",
                strerror(errno));
    }
    return connected;
}

/* Wait until child accepts TCP connections on endpoint. A probe opens
 * one session, which the sink counts in sessions_total. */
static int run_wait_listening(struct run *run, struct run_child *child,
                              const struct bench_endpoint *endpoint,
                              const char *log_path)
{
    uint64_t deadline = run_deadline(run->options.startup_timeout);
    char status[64];

    while (!run_probe(endpoint)) {
        uint64_t pause = bench_monotonic_ns() + RUN_POLL_MS * 1000000u;

        if (run_child_wait(child, pause, &run_interrupted) != 0) {
            fprintf(stderr, "run: %s stopped before it listened on %s "
                    "(%s)\n", child->name, endpoint->text,
                    run_child_describe_status(child, status,
                                              sizeof(status)));
            run_log_show_tail(child->name, log_path);
            return -1;
        }
        if (run_interrupted) {
            run_print_interrupted(child == &run->sink
                                  ? "waiting for the sink to listen"
                                  : "waiting for the relay to listen");
            return -1;
        }
        if (bench_monotonic_ns() >= deadline) {
            fprintf(stderr, "run: %s did not listen on %s within %llu s\n",
                    child->name, endpoint->text,
                    (unsigned long long)run->options.startup_timeout);
            run_log_show_tail(child->name, log_path);
            return -1;
        }
    }
    return 0;
}

/* Fail when something already accepts connections on endpoint, because
 * the probes that wait for our child would reach that process instead. */
static int run_check_free(const char *option,
                          const struct bench_endpoint *endpoint)
{
    if (run_probe(endpoint)) {
        fprintf(stderr, "run: another process already listens on %s; "
                "pass %s with a free address\n", endpoint->text, option);
        return -1;
    }
    return 0;
}

/* Return the --messages count of blast's options, or 0 when blast runs
 * for a --duration, holds connections (--idle) or rejects its options,
 * or when the count is above what the sink tracks. blast itself reports
 * a usage error later, so none is printed here. */
static uint64_t run_expected_messages(const struct run *run)
{
    int argc = run->options.blast_argc + 3;
    char **argv = calloc((size_t)argc + 1, sizeof(*argv));
    struct blast_options options;
    char error[512];
    uint64_t messages = 0;

    if (argv == NULL) {
        fprintf(stderr, "run: allocating blast's arguments failed: %s\n",
                strerror(errno));
        return 0;
    }
    /* A copy, because getopt permutes what it parses. */
    argv[0] = "blast";
    argv[1] = "--server";
    argv[2] = (char *)run->target;
    for (int i = 0; i < run->options.blast_argc; i++) {
        argv[i + 3] = run->options.blast_argv[i];
    }
    if (blast_options_parse(argc, argv, &options, error, sizeof(error))
            == BLAST_OPTIONS_RUN
        && !options.idle && options.messages <= SINK_TRACK_SEQ_MAX) {
        messages = options.messages;
    }
    free(argv);
    return messages;
}

/* Start the sink. With blast's --messages N known it gets --expect N,
 * so that messages missing at the end, the last ones included, count
 * as lost. */
static int run_start_sink(struct run *run)
{
    char max_seconds[32];
    char expect[32];
    uint64_t messages = run_expected_messages(run);
    char *argv[] = {
        run->self_path, "sink", "--listen",
        (char *)run->options.sink_listen, "--stats-file",
        run->workdir.sink_stats, "--max-seconds", max_seconds,
        messages > 0 ? "--expect" : NULL, expect, NULL,
    };

    /* The sink stops by itself shortly after every other limit of the
     * run has passed, even if this process is killed with SIGKILL. */
    snprintf(max_seconds, sizeof(max_seconds), "%llu",
             (unsigned long long)(run->options.startup_timeout * 2
                                  + run->options.timeout
                                  + run->options.drain_timeout + 60));
    snprintf(expect, sizeof(expect), "%llu", (unsigned long long)messages);
    if (run_child_start(&run->sink, "sink", argv, run->workdir.sink_log,
                        run->workdir.sink_log) < 0) {
        return -1;
    }
    return run_wait_listening(run, &run->sink,
                              &run->options.sink_endpoint,
                              run->workdir.sink_log);
}

/* Return -1 after printing the relay's exit status and the end of its
 * log when the relay has exited, else 0. The phrase when follows "the
 * relay exited" in the message. A relay that exits early, for example
 * because it could not bind its address, would leave blast's numbers to
 * whatever else answers there and its CPU and memory to a dead process. */
static int run_check_relay_alive(struct run *run, const char *when)
{
    char status[64];
    int rc = run_child_poll(&run->relay);

    if (rc == 0) {
        return 0;
    }
    if (rc > 0) {
        fprintf(stderr, "run: the relay exited %s (%s), so the run does "
                "not measure it\n", when,
                run_child_describe_status(&run->relay, status,
                                          sizeof(status)));
        run_log_show_tail("relay", run->workdir.relay_log);
    }
    return -1;
}

/* Fail when the relay's address already accepts connections once the
 * sink listens. A sink on a wildcard address, such as [::] with IPv4
 * mapped in, can cover it. The start-up probe would then reach the sink
 * even though the relay could not bind. */
static int run_check_sink_covers(const struct run *run)
{
    const struct run_options *options = &run->options;

    if (run_probe(&options->target_endpoint)) {
        fprintf(stderr, "run: --listen %s accepts connections as soon as "
                "the sink listens on %s, so blast would reach the sink "
                "instead of the relay; pass a --listen that --sink-listen "
                "does not cover\n", options->listen, options->sink_listen);
        return -1;
    }
    return 0;
}

static int run_start_relay(struct run *run)
{
    struct run_relay_settings settings = {
        .listen = run->options.listen,
        .smarthost = run->options.sink_listen,
        .resolver = run->options.resolver,
        .durability = run->options.durability,
    };
    char *argv[] = {run->relay_path, "-c", run->workdir.relay_config, NULL};

    if (run_check_sink_covers(run) < 0
        || run_config_write(&run->workdir, &settings) < 0
        || run_child_start(&run->relay, "relay", argv,
                           run->workdir.relay_log,
                           run->workdir.relay_log) < 0
        || run_wait_listening(run, &run->relay,
                              &run->options.target_endpoint,
                              run->workdir.relay_log) < 0) {
        return -1;
    }
    return run_check_relay_alive(run, "right after it began to listen");
}

/* Build blast's command line. blast gets --timeout first, so a
 * --timeout among the user's options wins. Returns NULL after printing
 * why. */
static char **run_blast_argv(struct run *run, char *timeout, size_t size)
{
    int argc = run->options.blast_argc;
    char **argv = calloc((size_t)argc + RUN_BLAST_FIXED_ARGS, sizeof(*argv));
    int n = 0;

    if (argv == NULL) {
        fprintf(stderr, "run: allocating blast's arguments failed: %s\n",
                strerror(errno));
        return NULL;
    }
    argv[n++] = run->self_path;
    argv[n++] = "blast";
    argv[n++] = "--server";
    argv[n++] = (char *)run->target;
    argv[n++] = "--stats-file";
    argv[n++] = run->workdir.blast_stats;
    snprintf(timeout, size, "%llu",
             (unsigned long long)run->options.timeout);
    argv[n++] = "--timeout";
    argv[n++] = timeout;
    for (int i = 0; i < argc; i++) {
        argv[n++] = run->options.blast_argv[i];
    }
    return argv;
}

/* Wait for blast until deadline_ns or an interruption, copying its
 * stderr to ours as it comes. Returns as run_child_wait does. */
static int run_wait_blast(struct run *run, uint64_t deadline_ns, int log_fd)
{
    int rc;

    do {
        uint64_t pause = bench_monotonic_ns() + RUN_POLL_MS * 1000000u;

        rc = run_child_wait(&run->blast,
                            pause < deadline_ns ? pause : deadline_ns,
                            &run_interrupted);
        if (log_fd >= 0 && run_log_forward(log_fd, run->workdir.blast_log)
                               < 0) {
            log_fd = -1;
        }
    } while (rc == 0 && !run_interrupted
             && bench_monotonic_ns() < deadline_ns);
    return rc;
}

/* Report how blast ended. Returns 0 when it ran to its end, whether or
 * not every message was accepted, else -1. */
static int run_check_blast_status(struct run *run)
{
    char status[64];
    char line[512];

    if (run_child_exited_ok(&run->blast)) {
        return 0;
    }
    run_child_describe_status(&run->blast, status, sizeof(status));
    if (WIFEXITED(run->blast.status) && WEXITSTATUS(run->blast.status) == 2) {
        run_log_last_line(run->workdir.blast_log, line, sizeof(line));
        fprintf(stderr, "run: blast rejected its options (%s): %s\n", status,
                line[0] != '\0' ? line : "it printed no reason");
        run->usage_error = true;
        return -1;
    }
    /* blast exits 1 when any message was not accepted; the report still
     * shows what was, and run_explain_blast prints the reason once its
     * stats are read. */
    if (WIFEXITED(run->blast.status) && WEXITSTATUS(run->blast.status) == 1) {
        run->blast_incomplete = true;
        return 0;
    }
    fprintf(stderr, "run: blast ended with %s\n", status);
    run_log_last_error(run->workdir.blast_log, line, sizeof(line));
    if (line[0] != '\0') {
        fprintf(stderr, "run: blast's last error: %s\n", line);
    }
    return -1;
}

/* Print why blast exited 1: its counts of messages that were not
 * accepted, and the last connection error it printed. */
static void run_explain_blast(const struct run *run)
{
    const struct run_stats *stats = &run->blast_stats;
    char line[512];

    if (!run->blast_incomplete) {
        return;
    }
    fprintf(stderr, "run: blast ended with exit status 1 because not every "
            "message was accepted: accepted %.0f, rejected %.0f, failed "
            "%.0f, not finished %.0f, connection failures %.0f (blast's "
            "summary above lists the reply codes)\n",
            run_stats_value(stats, "accepted", 0),
            run_stats_value(stats, "rejected", 0),
            run_stats_value(stats, "failed", 0),
            run_stats_value(stats, "not_finished", 0),
            run_stats_value(stats, "connection_failures", 0));
    run_log_last_error(run->workdir.blast_log, line, sizeof(line));
    if (line[0] != '\0') {
        fprintf(stderr, "run: blast's last error: %s\n", line);
    }
}

/* Run blast with its stdout on ours and its stderr in blast.log, which
 * is copied to our stderr while it runs, so that its error can be
 * quoted. */
static int run_blast(struct run *run)
{
    char timeout[32];
    char **argv = run_blast_argv(run, timeout, sizeof(timeout));
    int log_fd = -1;
    int rc = -1;

    if (argv == NULL) {
        return -1;
    }
    /* Created here, so that it can be read before blast has opened it. */
    log_fd = open(run->workdir.blast_log,
                  O_RDONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        fprintf(stderr, "run: creating %s failed: %s\n",
                run->workdir.blast_log, strerror(errno));
        goto out;
    }
    if (run_child_start(&run->blast, "blast", argv, NULL,
                        run->workdir.blast_log) < 0) {
        goto out;
    }
    rc = run_wait_blast(run,
                        run_deadline(run->options.timeout
                                     + RUN_BLAST_GRACE_S), log_fd);
    /* Ctrl-C on a terminal reaches blast too, which may exit before the
     * wait notices our own flag, so the flag is checked first. */
    if (rc > 0 && !run_interrupted) {
        rc = run_check_blast_status(run);
    } else {
        if (run_interrupted) {
            run_print_interrupted(rc == 0 ? "stopping blast"
                                          : "blast stopped");
        } else if (rc == 0) {
            fprintf(stderr, "run: blast did not stop by its --timeout, "
                    "stopping it\n");
        }
        (void)run_child_stop(&run->blast, RUN_STOP_GRACE_MS);
        (void)run_log_forward(log_fd, run->workdir.blast_log);
        rc = -1;
    }

out:
    if (log_fd >= 0 && close(log_fd) != 0) {
        fprintf(stderr, "run: closing %s failed: %s\n",
                run->workdir.blast_log, strerror(errno));
    }
    free(argv);
    return rc;
}

static int run_read_stats(const char *name, const char *path,
                          struct run_stats *stats)
{
    if (run_stats_read_file(path, stats) < 0) {
        fprintf(stderr, "run: reading the %s stats file %s failed: %s "
                "(does this %s support --stats-file?)\n", name, path,
                strerror(errno), name);
        return -1;
    }
    if (stats->invalid_lines > 0) {
        fprintf(stderr, "run: %s: skipped %u malformed lines\n", path,
                stats->invalid_lines);
    }
    return 0;
}

/* Poll the sink's stats file, which it rewrites every second, until it
 * has every message blast got accepted, or the drain timeout passes. */
static void run_drain(struct run *run)
{
    uint64_t deadline = run_deadline(run->options.drain_timeout);
    double accepted = run_stats_value(&run->blast_stats, "accepted", 0);
    double expected = run_stats_value(&run->blast_stats, "accepted_rcpts",
                                      accepted);
    struct run_stats stats;

    run->report.drained = false;
    while (!run_interrupted) {
        if (run_stats_read_file(run->workdir.sink_stats, &stats) == 0) {
            double copies = run_stats_value(&stats, "copies", 0);

            if (copies >= expected) {
                run->report.drained = true;
                break;
            }
        }
        if (bench_monotonic_ns() >= deadline) {
            fprintf(stderr, "run: the sink did not receive every "
                    "accepted recipient copy within --drain-timeout\n");
            break;
        }
        if (run_child_wait(&run->sink,
                           bench_monotonic_ns() + RUN_POLL_MS * 1000000u,
                           &run_interrupted) != 0) {
            fprintf(stderr, "run: the sink stopped while the run waited "
                    "for deliveries\n");
            break;
        }
        if (run->options.target == NULL
            && run_check_relay_alive(run, "while the run waited for "
                                     "deliveries") < 0) {
            run->relay_died = true;
            break;
        }
    }
    if (run_interrupted) {
        run_print_interrupted("no longer waiting for deliveries");
    }
}

/* Read VmHWM (KiB) of pid from /proc; 0 when it cannot be read. */
static uint64_t run_read_vmhwm(pid_t pid)
{
    char path[64];
    char line[256];
    unsigned long long kib = 0;
    FILE *status;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    status = fopen(path, "r");
    if (status == NULL) {
        fprintf(stderr, "run: opening %s failed: %s\n", path,
                strerror(errno));
        return 0;
    }
    while (fgets(line, sizeof(line), status) != NULL) {
        if (sscanf(line, "VmHWM: %llu kB", &kib) == 1) {
            break;
        }
    }
    if (fclose(status) != 0) {
        fprintf(stderr, "run: closing %s failed: %s\n", path,
                strerror(errno));
    }
    return kib;
}

/* Stop the relay and the sink, and collect what the report needs from
 * them. Returns 0, or -1 when the sink's final stats are missing. */
static int run_collect(struct run *run)
{
    struct run_relay_usage *usage = &run->report.relay;

    if (run->options.target == NULL
        && (run->relay_died
            || run_check_relay_alive(run, "before the run stopped it")
                   < 0)) {
        return -1;
    }
    if (run->relay.pid > 0) {
        run->relay_peak_kib = run_read_vmhwm(run->relay.pid);
        if (run_child_stop(&run->relay, RUN_STOP_GRACE_MS) == 0) {
            usage->measured = true;
            usage->cpu_seconds = run_child_cpu_seconds(&run->relay);
            /* ru_maxrss is in KiB on Linux and covers the same peak. */
            usage->peak_kib = run->relay_peak_kib > 0
                              ? run->relay_peak_kib
                              : (uint64_t)run->relay.usage.ru_maxrss;
        }
    }
    /* The sink writes its stats file a last time as it exits. */
    if (run_child_stop(&run->sink, RUN_STOP_GRACE_MS) < 0) {
        return -1;
    }
    return run_read_stats("sink", run->workdir.sink_stats,
                          &run->sink_stats);
}

static int run_report(struct run *run)
{
    struct run_report *report = &run->report;

    report->target = run->target;
    run_report_compute(report, &run->blast_stats, &run->sink_stats);
    run_report_print(report, stdout);
    if (run->options.json_path != NULL
        && run_report_write_json(report, run->options.json_path) < 0) {
        return -1;
    }
    if (!run_report_ok(report)) {
        run_report_print_failures(report, stderr);
        return -1;
    }
    return 0;
}

static int run_prepare(struct run *run)
{
    const char *target = run->options.target;

    if (run_install_signals() < 0 || run_find_binaries(run) < 0) {
        return -1;
    }
    run->target = target != NULL ? target : run->options.listen;
    /* Checked before any child starts, so nothing is left to stop. */
    if (run_check_free("--sink-listen", &run->options.sink_endpoint) < 0
        || (target == NULL
            && run_check_free("--listen", &run->options.target_endpoint)
                   < 0)) {
        return -1;
    }
    if (run_workdir_create(&run->workdir) < 0) {
        return -1;
    }
    run->have_workdir = true;
    return 0;
}

/* Every step; returns the exit status. The caller cleans up. */
static int run_execute(struct run *run)
{
    if (run_prepare(run) < 0 || run_start_sink(run) < 0
        || (run->options.target == NULL && run_start_relay(run) < 0)
        || run_blast(run) < 0
        || (run->options.target == NULL
            && run_check_relay_alive(run, "while blast ran") < 0)
        || run_read_stats("blast", run->workdir.blast_stats,
                          &run->blast_stats) < 0) {
        return run->usage_error ? 2 : 1;
    }
    run_explain_blast(run);
    run_drain(run);
    if (run_collect(run) < 0) {
        return 1;
    }
    return run_report(run) < 0 ? 1 : 0;
}

/* Stop every child, and remove the working directory after a run with
 * exit status 0 unless --keep-dir. A failed run keeps it for its logs,
 * but a usage error (status 2) measured nothing worth keeping. */
static void run_cleanup(struct run *run, int status)
{
    (void)run_child_stop(&run->blast, RUN_STOP_GRACE_MS);
    (void)run_child_stop(&run->relay, RUN_STOP_GRACE_MS);
    (void)run_child_stop(&run->sink, RUN_STOP_GRACE_MS);
    if (!run->have_workdir) {
        return;
    }
    if (run->options.keep_dir || status == 1) {
        fprintf(stderr, "run: kept logs, stats and queue in %s\n",
                run->workdir.dir);
    } else {
        (void)run_workdir_remove(&run->workdir);
    }
}

int run_main(int argc, char **argv)
{
    struct run *run = calloc(1, sizeof(*run));
    int rc;

    if (run == NULL) {
        fprintf(stderr, "run: allocating the run state failed: %s\n",
                strerror(errno));
        return 1;
    }
    rc = run_parse_options(argc, argv, &run->options);
    if (rc != 0) {
        free(run);
        return rc > 0 ? 0 : 2;
    }
    rc = run_execute(run);
    run_cleanup(run, rc);
    free(run);
    return rc;
}
