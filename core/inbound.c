#include "core/inbound.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/daemon.h"
#include "core/inbound_clients.h"
#include "core/inbound_session.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/reactor.h"
#include "proto/smtp_server.h"

/* Pending connections the kernel holds for a listener. */
#define INBOUND_BACKLOG 1024

/* How long and how often a bind that fails with EADDRINUSE is retried at
 * start, in milliseconds; see inbound_listener_bind(). */
#define INBOUND_BIND_WAIT_MS 5000u
#define INBOUND_BIND_RETRY_MS 50u

/* Pause before accepting again after an accept error such as EMFILE, so
 * that a process out of descriptors does not spin. */
#define INBOUND_ACCEPT_RETRY_MS 1000u

/* Descriptors the daemon needs besides one per session: listeners, queue
 * files, resolver sockets and outbound connections. An estimate, used
 * only for the warning of inbound_check_open_files(). */
#define INBOUND_FD_RESERVE 256u

struct inbound_listener {
    struct inbound *inbound;
    int fd;
    struct reactor_op accept_op;
    struct reactor_timer retry_timer; /* re-arms accept after an error */
    char text[300];             /* the configured "IP:PORT" */
    bool implicit_tls;          /* a tls_listen address */
};

struct inbound {
    struct daemon *daemon;
    struct inbound_listener listeners[2 * CONFIG_MAX_LISTEN]; /* listen,
                                  * then tls_listen */
    size_t listener_count;
    struct smtp_server_options smtp_options; /* shared by all sessions */
    struct inbound_session *sessions; /* every open session */
    size_t session_count;
    size_t admitted_count;        /* sessions counted toward the limits */
    struct inbound_clients clients; /* admitted sessions per address */
    uint64_t next_session_id;
    bool stopping;
};

static void inbound_accept_done(struct reactor_op *op, int result);
static void inbound_accept_retry(struct reactor_timer *timer);

/* inbound_listener_bind binds fd to where. A process killed with SIGKILL
 * keeps its listening socket for a moment after it has been reaped,
 * because the kernel closes the files of its io_uring instance later, so
 * EADDRINUSE is retried for up to INBOUND_BIND_WAIT_MS. A port that
 * another program keeps fails after that wait. */
static int inbound_listener_bind(struct inbound_listener *listener, int fd,
                                 const struct netaddr_hostport *where)
{
    const struct timespec pause = {
        .tv_nsec = INBOUND_BIND_RETRY_MS * 1000000L,
    };
    unsigned waited_ms = 0;

    while (bind(fd, (const struct sockaddr *)&where->addr,
                where->addr_len) < 0) {
        if (errno != EADDRINUSE || waited_ms >= INBOUND_BIND_WAIT_MS) {
            return -1;
        }
        if (waited_ms == 0) {
            log_warning("event=listen_wait listen=%s max_wait_ms=%u "
                        "reason=\"address in use, waiting for it to be "
                        "released, such as by a killed process whose "
                        "files are still being closed\"", listener->text,
                        INBOUND_BIND_WAIT_MS);
        }
        nanosleep(&pause, NULL);
        waited_ms += INBOUND_BIND_RETRY_MS;
    }
    if (waited_ms > 0) {
        log_info("event=listen_bound listen=%s waited_ms=%u",
                 listener->text, waited_ms);
    }
    return 0;
}

static int inbound_listener_open(struct inbound_listener *listener,
                                 const struct netaddr_hostport *where)
{
    int one = 1;
    int fd;

    fd = socket(where->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("event=listen_failed "
                  "listen=%s error=\"socket failed: %s\"", listener->text,
                  strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        inbound_listener_bind(listener, fd, where) < 0 ||
        listen(fd, INBOUND_BACKLOG) < 0) {
        log_error("event=listen_failed "
                  "listen=%s error=\"cannot listen: %s\"", listener->text,
                  strerror(errno));
        close(fd);
        return -1;
    }
    listener->fd = fd;
    return 0;
}

static int inbound_listener_arm(struct inbound_listener *listener)
{
    struct reactor *reactor = listener->inbound->daemon->reactor;
    int rc;

    listener->accept_op.done = inbound_accept_done;
    listener->accept_op.owner = listener;
    rc = reactor_accept(reactor, &listener->accept_op, listener->fd);
    if (rc < 0) {
        log_error("event=accept_failed "
                  "listen=%s error=\"accept failed: %s\"", listener->text,
                  strerror(-rc));
    }
    return rc;
}

/* Raises the soft open-file limit to the hard one and warns when
 * max_connections sessions do not fit in it, because accept then fails
 * with EMFILE and retries once a second. */
static void inbound_check_open_files(const struct config *config)
{
    struct rlimit limit;
    struct rlimit raised;

    if (getrlimit(RLIMIT_NOFILE, &limit) < 0) {
        log_warning("event=open-file-limit error=\"getrlimit failed: %s\"",
                    strerror(errno));
        return;
    }
    raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (raised.rlim_cur > limit.rlim_cur) {
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            limit = raised;
        } else {
            log_warning("event=open-file-limit error=\"setrlimit failed: "
                        "%s\"", strerror(errno));
        }
    }
    if (limit.rlim_cur != RLIM_INFINITY &&
        (uint64_t)config->max_connections + INBOUND_FD_RESERVE >
            (uint64_t)limit.rlim_cur) {
        log_warning("event=open-file-limit max_connections=%u "
                    "open_files=%llu reason=\"sessions past the open file "
                    "limit are not accepted; raise ulimit -n or lower "
                    "max_connections\"",
                    config->max_connections,
                    (unsigned long long)limit.rlim_cur);
    }
}

struct inbound *inbound_new(struct daemon *daemon)
{
    const struct config *config = daemon->config;
    struct inbound *inbound;

    inbound = calloc(1, sizeof(*inbound));
    if (inbound == NULL) {
        log_error("error=\"out of memory\"");
        return NULL;
    }
    inbound->daemon = daemon;
    inbound->next_session_id = 1;
    inbound_check_open_files(config);
    inbound->smtp_options.hostname = config->hostname;
    inbound->smtp_options.max_message_size = config->max_message_size;
    inbound->smtp_options.max_line = config->max_line_length;
    inbound->smtp_options.max_text_line = config->max_text_line_length;
    inbound->smtp_options.max_rcpts = config->max_recipients;
    inbound->smtp_options.max_errors = config->max_errors;
    inbound->smtp_options.max_hops = config->max_hops;
    inbound->smtp_options.max_junk_commands = config->max_junk_commands;
    inbound->smtp_options.auth_plaintext = config->auth_plaintext;
    inbound->smtp_options.starttls = daemon->tls != NULL;
    if (inbound_clients_init(&inbound->clients, config->max_connections) <
        0) {
        log_error("error=\"out of memory\"");
        free(inbound);
        return NULL;
    }

    for (size_t i = 0; i < config->listen_count + config->tls_listen_count;
         i++) {
        struct inbound_listener *listener = &inbound->listeners[i];
        bool implicit_tls = i >= config->listen_count;
        const struct netaddr_hostport *where =
            implicit_tls ? &config->tls_listen[i - config->listen_count]
                         : &config->listen[i];

        listener->inbound = inbound;
        listener->implicit_tls = implicit_tls;
        listener->fd = -1;
        listener->retry_timer.fire = inbound_accept_retry;
        listener->retry_timer.owner = listener;
        snprintf(listener->text, sizeof(listener->text),
                 where->addr.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
                 where->host, (unsigned)where->port);
        inbound->listener_count++;
        if (inbound_listener_open(listener, where) < 0 ||
            inbound_listener_arm(listener) < 0) {
            inbound_free(inbound);
            return NULL;
        }
        log_info("event=listen address=%s%s", listener->text,
                 implicit_tls ? " tls=implicit" : "");
    }
    return inbound;
}

static void inbound_accept_done(struct reactor_op *op, int result)
{
    struct inbound_listener *listener = op->owner;
    struct inbound *inbound = listener->inbound;

    if (result >= 0) {
        if (inbound->stopping) {
            close(result);
        } else {
            inbound_session_start(inbound, result, listener->implicit_tls);
        }
    } else if (result != -ECANCELED) {
        log_error("event=accept_failed "
                  "listen=%s error=\"accept failed: %s\"", listener->text,
                  strerror(-result));
    }
    if (op->more || inbound->stopping || listener->fd < 0) {
        return;
    }
    if (result < 0) {
        reactor_timer_set(inbound->daemon->reactor, &listener->retry_timer,
                          INBOUND_ACCEPT_RETRY_MS);
    } else {
        inbound_listener_arm(listener);
    }
}

static void inbound_accept_retry(struct reactor_timer *timer)
{
    struct inbound_listener *listener = timer->owner;

    if (!listener->inbound->stopping) {
        inbound_listener_arm(listener);
    }
}

void inbound_stop(struct inbound *inbound)
{
    struct reactor *reactor = inbound->daemon->reactor;

    inbound->stopping = true;
    for (size_t i = 0; i < inbound->listener_count; i++) {
        reactor_cancel(reactor, &inbound->listeners[i].accept_op);
        reactor_timer_cancel(reactor, &inbound->listeners[i].retry_timer);
    }
    for (struct inbound_session *s = inbound->sessions; s != NULL;) {
        struct inbound_session *next = s->next;

        inbound_session_shutdown(s);
        s = next;
    }
}

size_t inbound_session_count(const struct inbound *inbound)
{
    return inbound->session_count;
}

void inbound_free(struct inbound *inbound)
{
    if (inbound == NULL) {
        return;
    }
    while (inbound->sessions != NULL) {
        inbound_session_free(inbound->sessions);
    }
    for (size_t i = 0; i < inbound->listener_count; i++) {
        if (inbound->listeners[i].fd >= 0) {
            close(inbound->listeners[i].fd);
        }
    }
    inbound_clients_cleanup(&inbound->clients);
    free(inbound);
}

/* The accessors below let the session module reach the shared state
 * without exposing struct inbound. */

struct daemon *inbound_daemon(struct inbound *inbound)
{
    return inbound->daemon;
}

const struct smtp_server_options *inbound_smtp_options(struct inbound *inbound)
{
    return &inbound->smtp_options;
}

uint64_t inbound_attach(struct inbound *inbound,
                        struct inbound_session *session)
{
    session->prev = NULL;
    session->next = inbound->sessions;
    if (inbound->sessions != NULL) {
        inbound->sessions->prev = session;
    }
    inbound->sessions = session;
    inbound->session_count++;
    return inbound->next_session_id++;
}

enum inbound_admission inbound_admit(struct inbound *inbound,
                                     struct inbound_session *session)
{
    const struct config *config = inbound->daemon->config;
    int rc;

    if (inbound->admitted_count >= config->max_connections) {
        return INBOUND_REFUSED_TOTAL;
    }
    rc = inbound_clients_add(&inbound->clients,
                             (const struct sockaddr *)&session->peer,
                             config->max_connections_per_ip,
                             &session->client);
    if (rc != 0) {
        session->client = NULL;
        return rc > 0 ? INBOUND_REFUSED_PER_IP : INBOUND_REFUSED_MEMORY;
    }
    inbound->admitted_count++;
    return INBOUND_ADMITTED;
}

void inbound_detach(struct inbound *inbound, struct inbound_session *session)
{
    if (session->client != NULL) {
        inbound_clients_remove(&inbound->clients, session->client);
        session->client = NULL;
        inbound->admitted_count--;
    }
    if (session->prev != NULL) {
        session->prev->next = session->next;
    } else {
        inbound->sessions = session->next;
    }
    if (session->next != NULL) {
        session->next->prev = session->prev;
    }
    inbound->session_count--;
}
