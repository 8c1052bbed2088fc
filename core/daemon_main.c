/* ringrelay: the relay daemon's entry point.
 *
 * Usage: ringrelay [-c FILE] [-t] | --version | --help
 * Exit status: 0 after a clean stop or a valid -t check, 1 when the
 * configuration or start-up failed, 2 on a usage error. */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "core/auth_users.h"
#include "core/auth_worker.h"
#include "core/config.h"
#include "core/config_dest_name.h"
#include "core/control.h"
#include "core/daemon.h"
#include "core/daemon_tls.h"
#include "core/inbound.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/outbound.h"
#include "core/queue.h"
#include "core/reactor.h"
#include "core/relay_access.h"
#include "dns/resolver.h"
#include "tls/tls_context.h"
#include "tls/tls_library.h"

/* How long a stop waits for sessions and deliveries in flight. */
#define DAEMON_DRAIN_MS 10000u
#define DAEMON_DRAIN_POLL_MS 100u

struct daemon_signals {
    struct daemon *daemon;
    int fd;
    struct reactor_op op;
    struct signalfd_siginfo info;
    struct reactor_timer drain_timer;
    uint64_t drain_deadline_ms;
};

static void daemon_usage(FILE *out)
{
    fprintf(out,
            "usage: ringrelay [-c FILE] [-t]\n"
            "       ringrelay --version\n"
            "  -c FILE   read the configuration from FILE (UCL syntax);\n"
            "            without it every key has its default\n"
            "  -t        check the configuration and exit (0 when valid)\n");
}

static void daemon_drain_check(struct reactor_timer *timer)
{
    struct daemon_signals *signals = timer->owner;
    struct daemon *daemon = signals->daemon;
    size_t sessions = inbound_session_count(daemon->inbound);
    size_t deliveries = outbound_active_count(daemon->outbound);
    bool syncing = daemon->queue != NULL &&
                   queue_sync_pending(daemon->queue);

    /* The journal fsync of the last delivery may still be in flight, so
     * the queue gets the drain time as well. */
    if ((sessions > 0 || deliveries > 0 || syncing) &&
        reactor_now_ms(daemon->reactor) < signals->drain_deadline_ms) {
        reactor_timer_set(daemon->reactor, timer, DAEMON_DRAIN_POLL_MS);
        return;
    }
    log_info("event=stop sessions=%zu deliveries=%zu queue_syncing=%s",
             sessions, deliveries, syncing ? "yes" : "no");
    reactor_stop(daemon->reactor);
}

static int daemon_arm_signals(struct daemon_signals *signals);

/* A signal read that cannot be queued again leaves the daemon deaf to
 * SIGTERM, so it stops at once rather than run unstoppable. */
static void daemon_rearm_signals(struct daemon_signals *signals)
{
    int rc = daemon_arm_signals(signals);

    /* ECANCELED: reactor_shutdown() ran, and nothing reads signals now. */
    if (rc < 0 && rc != -ECANCELED) {
        log_error("error=\"signal read failed: %s\"", strerror(-rc));
        reactor_stop(signals->daemon->reactor);
    }
}

/* daemon_warn_users_mode warns when the users file may be read by its
 * group or by others, who could then try to crack the hashes offline. */
static void daemon_warn_users_mode(const char *path,
                                   const struct auth_users *users, bool print)
{
    unsigned mode = auth_users_file_mode(users);

    if ((mode & 077) == 0) {
        return;
    }
    if (print) {
        fprintf(stderr, "ringrelay: warning: auth_users_file %s has mode "
                "%04o, so its group or others may read the password "
                "hashes; chmod 600 it\n", path, mode);
    } else {
        log_warning("event=auth-users-warning file=%s mode=%04o "
                    "reason=\"group or others may read the password "
                    "hashes; chmod 600 the file\"", path, mode);
    }
}

static void daemon_log_users(const struct daemon *daemon, const char *event)
{
    log_info("event=%s file=%s users=%zu disabled=%zu plaintext=%s", event,
             daemon->config->auth_users_file,
             auth_users_count(daemon->auth_users),
             auth_users_disabled_count(daemon->auth_users),
             daemon->config->auth_plaintext ? "yes" : "no");
}

/* daemon_reload_users reads the users file again on SIGHUP. A file that
 * fails to load leaves the old users in place. Password checks in flight
 * hold copies of their hashes, so the old table can go at once. */
static void daemon_reload_users(struct daemon *daemon)
{
    const char *path = daemon->config->auth_users_file;
    struct auth_users *fresh = NULL;
    char err[512];
    char quoted[1100];

    if (daemon->auth_users == NULL) {
        return;
    }
    if (auth_users_load(path, &fresh, err, sizeof(err)) < 0) {
        log_quote(quoted, sizeof(quoted), err, strlen(err));
        log_error("event=reload-failed auth_users=kept-old error=%s",
                  quoted);
        return;
    }
    auth_users_free(daemon->auth_users);
    daemon->auth_users = fresh;
    daemon_log_users(daemon, "auth-users-reloaded");
    daemon_warn_users_mode(path, fresh, false);
}

static void daemon_signal_done(struct reactor_op *op, int result)
{
    struct daemon_signals *signals = op->owner;
    struct daemon *daemon = signals->daemon;

    if (result == -ECANCELED) {
        return;
    }
    if (result < 0) {
        log_error("error=\"signal read failed: %s\"", strerror(-result));
        reactor_stop(daemon->reactor);
        return;
    }
    if (signals->info.ssi_signo == SIGHUP) {
        /* TODO: reload the rest of the configuration on SIGHUP. */
        daemon_reload_users(daemon);
        daemon_tls_reload(daemon);
        daemon_rearm_signals(signals);
        return;
    }
    if (!daemon->stopping) {
        log_info("event=stopping signal=%s",
                 strsignal((int)signals->info.ssi_signo));
        daemon->stopping = true;
        inbound_stop(daemon->inbound);
        control_stop(daemon->control);
        outbound_stop(daemon->outbound);
        signals->drain_deadline_ms =
            reactor_now_ms(daemon->reactor) + DAEMON_DRAIN_MS;
        signals->drain_timer.fire = daemon_drain_check;
        signals->drain_timer.owner = signals;
        reactor_timer_set(daemon->reactor, &signals->drain_timer, 0);
    }
    daemon_rearm_signals(signals);
}

static int daemon_arm_signals(struct daemon_signals *signals)
{
    signals->op.done = daemon_signal_done;
    signals->op.owner = signals;
    return reactor_read(signals->daemon->reactor, &signals->op, signals->fd,
                        &signals->info, sizeof(signals->info));
}

static int daemon_open_signals(struct daemon_signals *signals)
{
    sigset_t mask;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
        log_error("error=\"sigprocmask failed: %s\"", strerror(errno));
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    signals->fd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (signals->fd < 0) {
        log_error("error=\"signalfd failed: %s\"", strerror(errno));
        return -1;
    }
    return daemon_arm_signals(signals) < 0 ? -1 : 0;
}

static int daemon_open_resolver(struct daemon *daemon)
{
    const struct config *config = daemon->config;
    struct dns_options opts = {
        .max_queries = config->resolver_max_queries,
    };
    int rc;

    if (config->has_resolver) {
        memcpy(&opts.servers[0], &config->resolver.addr,
               sizeof(opts.servers[0]));
        opts.server_lens[0] = config->resolver.addr_len;
        opts.server_count = 1;
    } else if (dns_options_from_resolv_conf(&opts, "/etc/resolv.conf") < 0 ||
               opts.server_count == 0) {
        /* Without a name server, routes and the smarthost still work. */
        log_warning("event=resolver-missing reason=\"no nameserver in "
                    "/etc/resolv.conf and no resolver key\"");
    }
    rc = dns_resolver_new(&daemon->resolver, daemon->reactor, &opts);
    if (rc < 0) {
        log_error("error=\"resolver start failed: %s\"", strerror(-rc));
        return -1;
    }
    return 0;
}

static int daemon_open_queue(struct daemon *daemon)
{
    const struct config *config = daemon->config;
    struct queue_options opts = {
        .dir = config->queue_dir,
        .durability = config->durability,
        .batch_wait_us = config->batch_wait,
        .max_size = config->queue_max_size,
        .min_free = config->queue_min_free,
        .segment_size = config->segment_size,
    };

    if (queue_open(&daemon->queue, daemon->reactor, &opts, outbound_enqueue,
                   daemon->outbound) < 0) {
        /* On EWOULDBLOCK, queue_open has logged the lock file and the
         * holder's PID, or that the holder is unknown. */
        const char *reason = errno == EWOULDBLOCK
            ? "the queue directory is locked by another process"
            : strerror(errno);

        log_error("event=queue_open_failed "
                  "queue_dir=%s error=\"queue open failed: %s\"",
                  config->queue_dir, reason);
        return -1;
    }
    return 0;
}

/* daemon_warn_relay_networks warns about each relay_networks entry that
 * trusts nearly everyone (relay_access_network_too_wide): on stderr when
 * print is set (ringrelay -t), else in the log. The daemon still runs. */
static void daemon_warn_relay_networks(const struct config *config,
                                       bool print)
{
    for (size_t i = 0; i < config->relay_network_count; i++) {
        const struct netaddr_cidr *net = &config->relay_networks[i];
        char addr[INET6_ADDRSTRLEN] = "?";

        if (!relay_access_network_too_wide(net)) {
            continue;
        }
        inet_ntop(net->family, net->bytes, addr, sizeof(addr));
        if (print) {
            fprintf(stderr, "ringrelay: warning: relay_networks entry "
                    "%s/%u covers nearly every address, so the relay is "
                    "open to almost anyone; list only your own "
                    "networks\n", addr, net->prefix);
        } else {
            log_warning("event=open-relay-warning network=%s/%u "
                        "reason=\"relay_networks covers nearly every "
                        "address, so almost anyone may relay\"", addr,
                        net->prefix);
        }
    }
}

/* daemon_warn_destinations warns about each destinations entry that no
 * delivery can use (config_dest_name_advice): on stderr when print is
 * set (ringrelay -t), else in the log. The daemon still runs. */
static void daemon_warn_destinations(const struct config *config,
                                     const char *path, bool print)
{
    for (size_t i = 0; i < config->destination_count; i++) {
        const struct config_destination *dest = &config->destinations[i];
        char advice[512];

        if (!config_dest_name_advice(config, dest->name, advice,
                                     sizeof(advice))) {
            continue;
        }
        if (print) {
            fprintf(stderr, "ringrelay: warning: %s:%u: destination '%s' "
                    "matches no delivery: %s\n", path, dest->line,
                    dest->name, advice);
        } else {
            log_warning("event=destination-unused dest=%s file=%s line=%u "
                        "reason=\"%s\"", dest->name, path, dest->line,
                        advice);
        }
    }
}

/* daemon_run builds every part, runs the reactor until a stop, and tears
 * down in reverse order. Returns the process exit status. */
static int daemon_run(struct daemon *daemon)
{
    struct daemon_signals signals = {.daemon = daemon, .fd = -1};
    bool started = false;
    int status = 1;
    int rc;

    rc = reactor_new(&daemon->reactor, NULL);
    if (rc < 0) {
        log_error("error=\"reactor start failed: %s\"", strerror(-rc));
        return 1;
    }
    daemon->outbound = outbound_new(daemon);
    if (daemon->outbound == NULL || daemon_open_resolver(daemon) < 0 ||
        daemon_open_queue(daemon) < 0) {
        goto out;
    }
    if (daemon->auth_users != NULL) {
        daemon->auth_worker = auth_worker_new(daemon->reactor);
        if (daemon->auth_worker == NULL) {
            goto out;
        }
    }
    daemon->inbound = inbound_new(daemon);
    if (daemon->inbound == NULL) {
        goto out;
    }
    daemon->control = control_new(daemon);
    if (daemon->control == NULL || daemon_open_signals(&signals) < 0) {
        goto out;
    }
    log_info("event=start version=%s backend=%s hostname=%s queue_dir=%s",
             RINGRELAY_VERSION, reactor_backend_name(daemon->reactor),
             daemon->config->hostname, daemon->config->queue_dir);
    started = true;

    rc = reactor_run(daemon->reactor);
    if (rc < 0) {
        log_error("error=\"reactor failed: %s\"", strerror(-rc));
        goto out;
    }
    status = 0;

out:
    /* Every part still exists here, so each cancelled operation reaches
     * its owner, and parts that free memory in a callback do so now. */
    reactor_shutdown(daemon->reactor);
    if (daemon->queue != NULL && queue_sync_now(daemon->queue) < 0) {
        log_error("error=\"queue sync failed: %s\"", strerror(errno));
        status = 1;
    }
    if (started) {
        queue_log_sync_stats(daemon->queue);
    }
    /* Sessions cancel their password checks, so the worker goes after
     * them. */
    inbound_free(daemon->inbound);
    auth_worker_free(daemon->auth_worker);
    control_free(daemon->control);
    outbound_free(daemon->outbound);
    dns_resolver_free(daemon->resolver);
    queue_close(daemon->queue);
    if (signals.fd >= 0) {
        close(signals.fd);
    }
    reactor_free(daemon->reactor);
    return status;
}

int main(int argc, char **argv)
{
    struct config config;
    struct daemon daemon = {.config = &config};
    const char *path = NULL;
    bool check_only = false;
    char err[512];
    int opt;
    int status;

    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("ringrelay %s (%s)\n", RINGRELAY_VERSION,
               tls_library_version());
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        daemon_usage(stdout);
        return 0;
    }
    while ((opt = getopt(argc, argv, "c:th")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'h':
            daemon_usage(stdout);
            return 0;
        default:
            daemon_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        daemon_usage(stderr);
        return 2;
    }

    if (config_init(&config) < 0) {
        fprintf(stderr, "ringrelay: out of memory\n");
        return 1;
    }
    if (path != NULL &&
        config_load(&config, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "ringrelay: %s\n", err);
        config_cleanup(&config);
        return 1;
    }
    if (config.auth_users_file != NULL &&
        auth_users_load(config.auth_users_file, &daemon.auth_users, err,
                        sizeof(err)) < 0) {
        fprintf(stderr, "ringrelay: auth_users_file: %s\n", err);
        config_cleanup(&config);
        return 1;
    }
    if (daemon_tls_build(&config, &daemon.tls, err, sizeof(err)) < 0) {
        fprintf(stderr, "ringrelay: %s: TLS: %s\n",
                path != NULL ? path : "(defaults)", err);
        auth_users_free(daemon.auth_users);
        config_cleanup(&config);
        return 1;
    }
    if (check_only) {
        daemon_tls_warn_dates(&config, true);
        daemon_warn_relay_networks(&config, true);
        daemon_warn_destinations(&config, path, true);
        if (daemon.auth_users != NULL) {
            daemon_warn_users_mode(config.auth_users_file,
                                   daemon.auth_users, true);
        }
        tls_context_unref(daemon.tls);
        printf("ringrelay: configuration %s is valid\n",
               path != NULL ? path : "(defaults)");
        auth_users_free(daemon.auth_users);
        config_cleanup(&config);
        return 0;
    }
    log_set_level(config.log_level);
    daemon_tls_warn_dates(&config, false);
    daemon_warn_relay_networks(&config, false);
    daemon_warn_destinations(&config, path, false);
    if (daemon.auth_users != NULL) {
        daemon_log_users(&daemon, "auth-users");
        daemon_warn_users_mode(config.auth_users_file, daemon.auth_users,
                               false);
    }
    status = daemon_run(&daemon);
    auth_users_free(daemon.auth_users);
    tls_context_unref(daemon.tls);
    config_cleanup(&config);
    return status;
}
