#include "bench/sink.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/bench_net.h"
#include "bench/bench_stats.h"
#include "bench/sink_options.h"
#include "bench/sink_report.h"
#include "bench/sink_session.h"
#include "bench/sink_store.h"
#include "core/reactor.h"
#include "tls/tls_context.h"

#define SINK_PROGRESS_MS 1000
/* Pause before re-arming an accept that stopped, e.g. on EMFILE, so a
 * persistent error does not spin. */
#define SINK_ACCEPT_RETRY_MS 100

struct sink_run {
    struct sink_server server;
    struct sink_report report;
    struct bench_endpoint endpoint;
    int listen_fd;
    int signal_fds[2];       /* [0] read by the reactor, [1] by handlers */
    char signal_byte;
    struct reactor_op accept_op;
    struct reactor_op signal_op;
    struct reactor_timer progress_timer;
    struct reactor_timer stop_timer;
    struct reactor_timer accept_timer;
    uint64_t accept_error_ms;   /* when an accept error was last printed */
    bool stopping;
};

/* Write end of the signal socket pair; -1 when no handler may write. */
static volatile sig_atomic_t sink_signal_fd = -1;

static void sink_on_signal(int signo)
{
    int saved_errno = errno;
    char byte = (char)signo;

    /* write() is async-signal-safe; the reactor reads the byte and does
     * the actual work. A failed write is ignored, because a full socket
     * already contains a pending stop. */
    if (sink_signal_fd >= 0) {
        ssize_t written = write(sink_signal_fd, &byte, 1);

        (void)written;
    }
    errno = saved_errno;
}

static void sink_on_signal_byte(struct reactor_op *op, int result)
{
    struct sink_run *run = op->owner;

    if (result < 0 && result != -ECANCELED) {
        fprintf(stderr, "sink: reading the signal socket failed: %s\n",
                strerror(-result));
    } else if (result > 0) {
        fprintf(stderr, "sink: stopping on %s\n",
                strsignal(run->signal_byte));
    }
    run->stopping = true;
    reactor_stop(run->server.reactor);
}

static void sink_on_stop_timer(struct reactor_timer *timer)
{
    struct sink_run *run = timer->owner;

    fprintf(stderr, "sink: stopping after --max-seconds\n");
    run->stopping = true;
    reactor_stop(run->server.reactor);
}

static void sink_on_progress(struct reactor_timer *timer)
{
    struct sink_run *run = timer->owner;

    sink_report_tick(&run->report, &run->server);
    reactor_timer_set(run->server.reactor, timer, SINK_PROGRESS_MS);
}

static void sink_arm_accept(struct sink_run *run)
{
    int rc = reactor_accept(run->server.reactor, &run->accept_op,
                            run->listen_fd);

    if (rc < 0) {
        fprintf(stderr, "sink: starting accept on %s failed: %s\n",
                run->endpoint.text, strerror(-rc));
        reactor_timer_set(run->server.reactor, &run->accept_timer,
                          SINK_ACCEPT_RETRY_MS);
    }
}

static void sink_on_accept_timer(struct reactor_timer *timer)
{
    struct sink_run *run = timer->owner;

    if (!run->stopping && !run->accept_op.armed) {
        sink_arm_accept(run);
    }
}

/* Accept errors such as EMFILE can repeat for every connection attempt,
 * so at most one is printed per second. */
static void sink_report_accept_error(struct sink_run *run, int err)
{
    uint64_t now = reactor_now_ms(run->server.reactor);

    if (run->accept_error_ms != 0 && now - run->accept_error_ms < 1000) {
        return;
    }
    run->accept_error_ms = now;
    fprintf(stderr, "sink: accepting a connection on %s failed: %s\n",
            run->endpoint.text, strerror(-err));
}

static void sink_on_accept(struct reactor_op *op, int result)
{
    struct sink_run *run = op->owner;

    if (result >= 0) {
        int rc = sink_session_start(&run->server, result);

        if (rc < 0) {
            sink_report_accept_error(run, rc);
        }
    } else if (result != -ECANCELED) {
        sink_report_accept_error(run, result);
    }
    if (!op->more && !run->stopping) {
        reactor_timer_set(run->server.reactor, &run->accept_timer,
                          SINK_ACCEPT_RETRY_MS);
    }
}

static int sink_setup_signals(struct sink_run *run)
{
    struct sigaction action = {0};
    int rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   run->signal_fds) < 0) {
        fprintf(stderr, "sink: creating the signal socket pair failed: %s\n",
                strerror(errno));
        return -1;
    }
    sink_signal_fd = run->signal_fds[1];

    action.sa_handler = sink_on_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    /* SIGHUP too, because a closed terminal or SSH session should end
     * the sink with its summary and report files like a stop does. */
    if (sigaction(SIGINT, &action, NULL) < 0
        || sigaction(SIGTERM, &action, NULL) < 0
        || sigaction(SIGHUP, &action, NULL) < 0) {
        fprintf(stderr, "sink: installing signal handlers failed: %s\n",
                strerror(errno));
        return -1;
    }

    run->signal_op = (struct reactor_op){.done = sink_on_signal_byte,
                                         .owner = run};
    rc = reactor_recv(run->server.reactor, &run->signal_op,
                      run->signal_fds[0], &run->signal_byte, 1);
    if (rc < 0) {
        fprintf(stderr, "sink: receiving on the signal socket failed: %s\n",
                strerror(-rc));
        return -1;
    }
    return 0;
}

static void sink_init_server(struct sink_run *run,
                             const struct sink_options *options)
{
    struct sink_server *server = &run->server;

    server->idle_timeout_ms = options->idle_seconds * 1000;
    server->smtp_options = (struct smtp_server_options){
        .hostname = "sink",
        /* RFC 5321 4.5.3.1 requires at least 512 octets per command
         * line and 100 recipients per transaction. */
        .max_message_size = options->max_size,
        .max_line = 2048,
        .max_rcpts = 1000,
        /* A client that pipelines DATA behind recipients refused by a
         * --rcpt-reply fault gets 503 for it (RFC 2920 allows that), so
         * a default limit would end sessions over the sink's own
         * faults. */
        .max_errors = (unsigned)options->max_errors,
        .disabled_extensions = options->disabled_extensions,
        .starttls = options->tls_cert != NULL || options->tls_fail,
    };
    server->tls_fail = options->tls_fail;
    server->faults = options->faults;
    if (!options->has_seed) {
        server->faults.seed = bench_wall_us() ^ (uint64_t)getpid();
    }
    bench_histogram_init(&server->latency);
    bench_histogram_init(&server->latency_tick);

    run->accept_op = (struct reactor_op){.done = sink_on_accept,
                                         .owner = run};
    run->progress_timer.fire = sink_on_progress;
    run->progress_timer.owner = run;
    run->stop_timer.fire = sink_on_stop_timer;
    run->stop_timer.owner = run;
    run->accept_timer.fire = sink_on_accept_timer;
    run->accept_timer.owner = run;
}

/* sink_setup_tls reads --tls-cert and --tls-key into a server context.
 * Returns 0 or -1 after printing the failure. */
static int sink_setup_tls(struct sink_run *run,
                          const struct sink_options *options)
{
    struct tls_context_options tls_options = {
        .role = TLS_ROLE_SERVER,
        .min_version = TLS_VERSION_1_2,
        .cert_file = options->tls_cert,
        .key_file = options->tls_key,
    };
    char err[512];

    if (options->tls_cert == NULL) {
        return 0;
    }
    if (tls_context_new(&run->server.tls, &tls_options, err, sizeof(err))
        < 0) {
        fprintf(stderr, "sink: TLS: %s\n", err);
        return -1;
    }
    return 0;
}

/* Returns 0 or -1 after printing the failure. */
static int sink_setup(struct sink_run *run,
                      const struct sink_options *options)
{
    int rc;

    run->endpoint = options->endpoint;
    sink_init_server(run, options);
    if (sink_track_init(&run->server.track, options->expect) < 0) {
        fprintf(stderr, "sink: allocating the seq table for --expect "
                "%" PRIu64 " failed: %s\n", options->expect,
                strerror(errno));
        return -1;
    }
    if (options->store_dir != NULL
        && sink_store_open(options->store_dir, options->with_fsync,
                           &run->server.store) < 0) {
        return -1;
    }
    if (sink_setup_tls(run, options) < 0) {
        return -1;
    }

    rc = reactor_new(&run->server.reactor, NULL);
    if (rc < 0) {
        fprintf(stderr, "sink: creating the reactor failed: %s\n",
                strerror(-rc));
        return -1;
    }
    run->listen_fd = bench_listen(&run->endpoint);
    if (run->listen_fd < 0) {
        fprintf(stderr, "sink: cannot listen on %s: %s\n",
                run->endpoint.text, strerror(-run->listen_fd));
        return -1;
    }
    if (sink_setup_signals(run) < 0) {
        return -1;
    }

    sink_arm_accept(run);
    sink_report_init(&run->report, options->json_path, options->stats_path,
                     reactor_now_ms(run->server.reactor));

    /* A poller finds the stats file from the start, with zeros. */
    if (options->stats_path != NULL
        && sink_report_write_stats(&run->report, &run->server) < 0) {
        return -1;
    }
    reactor_timer_set(run->server.reactor, &run->progress_timer,
                      SINK_PROGRESS_MS);
    if (options->max_seconds > 0) {
        reactor_timer_set(run->server.reactor, &run->stop_timer,
                          options->max_seconds * 1000);
    }
    return 0;
}

static void sink_cleanup(struct sink_run *run)
{
    /* Sessions may still have operations in flight; the reactor abandons
     * them, and only then is the sessions' memory released. */
    reactor_free(run->server.reactor);
    sink_session_free_all(&run->server);

    sink_signal_fd = -1;
    for (int i = 0; i < 2; i++) {
        if (run->signal_fds[i] >= 0 && close(run->signal_fds[i]) < 0) {
            fprintf(stderr, "sink: closing the signal socket failed: %s\n",
                    strerror(errno));
        }
    }
    if (run->listen_fd >= 0 && close(run->listen_fd) < 0) {
        fprintf(stderr, "sink: closing the listener failed: %s\n",
                strerror(errno));
    }
    sink_store_free(run->server.store);
    tls_context_unref(run->server.tls);
    sink_track_cleanup(&run->server.track);
    sink_report_cleanup(&run->report);
}

/* Write the final reports. Returns 0, or -1 when a file failed. */
static int sink_finish_reports(struct sink_run *run)
{
    int status = 0;

    sink_report_finish(&run->report, &run->server);
    sink_report_print_summary(&run->report, &run->server, stdout);
    if (run->report.stats_path != NULL
        && sink_report_write_stats(&run->report, &run->server) < 0) {
        status = -1;
    }
    if (run->report.json_path != NULL
        && sink_report_write_json(&run->report, &run->server) < 0) {
        status = -1;
    }
    return status;
}

int sink_main(int argc, char **argv)
{
    struct sink_options options;
    struct sink_run run = {
        .listen_fd = -1,
        .signal_fds = {-1, -1},
    };
    int status = 1;
    int rc;

    rc = sink_parse_options(argc, argv, &options);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        fprintf(stderr, "sink: ignoring SIGPIPE failed: %s\n",
                strerror(errno));
        return 1;
    }
    bench_raise_open_files();

    if (sink_setup(&run, &options) == 0) {
        fprintf(stderr, "sink: listening on %s (%s backend)%s%s\n",
                run.endpoint.text,
                reactor_backend_name(run.server.reactor),
                options.store_dir != NULL ? ", storing in " : "",
                options.store_dir != NULL ? options.store_dir : "");
        rc = reactor_run(run.server.reactor);
        if (rc < 0) {
            fprintf(stderr, "sink: the reactor failed: %s\n", strerror(-rc));
        } else {
            status = 0;
        }
        if (sink_finish_reports(&run) < 0) {
            status = 1;
        }
    }
    sink_cleanup(&run);
    return status;
}
