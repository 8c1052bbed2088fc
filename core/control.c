#include "core/control.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/config.h"
#include "core/control_proto.h"
#include "core/control_request.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/reactor.h"

/* Time a client has to send its request and read the reply. */
#define CONTROL_TIMEOUT_MS 10000u

/* Open control connections; more are closed at once. One operator with
 * a few scripts needs far fewer. */
#define CONTROL_MAX_CLIENTS 8

#define CONTROL_BACKLOG 16

/* How long a start waits for the listening socket of a process that is
 * no longer running, as the queue lock and the listeners wait. */
#define CONTROL_STALE_WAIT_MS 5000u
#define CONTROL_STALE_RETRY_MS 50u

/* Pause before accepting again after an accept error such as EMFILE. */
#define CONTROL_ACCEPT_RETRY_MS 1000u

struct control_client {
    struct control *control;
    struct control_client *prev;
    struct control_client *next;
    int fd;
    uid_t uid;
    struct reactor_op recv_op;
    struct reactor_op send_op;
    struct reactor_timer timer;
    char request[CONTROL_MAX_REQUEST];
    size_t request_len;
    char *reply;                 /* from open_memstream */
    size_t reply_len;
    size_t reply_sent;
    bool draining;               /* reply sent, reading until EOF */
    bool closing;
    bool denied;                 /* peer's uid may not use the socket; its
                                  * request line is read only to learn
                                  * the reply format */
};

struct control {
    struct daemon *daemon;
    int fd;
    struct sockaddr_un addr;
    socklen_t addr_len;
    struct reactor_op accept_op;
    struct reactor_timer retry_timer;
    struct control_client *clients;
    size_t client_count;
    bool bound;                  /* the socket file is ours to unlink */
    bool stopping;
};

static void control_accept_done(struct reactor_op *op, int result);
static void control_recv_done(struct reactor_op *op, int result);
static void control_send_done(struct reactor_op *op, int result);
static void control_client_close(struct control_client *client);

/* control_probe connects to the socket file and returns 1 when some
 * process accepts, with that listener's PID in *holder (0 when unknown),
 * 0 when none does, and -1 on an error it has logged. A full backlog
 * counts as a listener whose PID is unknown. */
static int control_probe(const struct control *control, pid_t *holder)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int fd;
    int rc;

    *holder = 0;
    /* Non-blocking, because each probe stays in the backlog of a
     * listener that no longer accepts, and connect() to a full backlog
     * fails with EAGAIN instead of blocking. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_error("event=control_failed path=%s error=\"socket failed: "
                  "%s\"", control->addr.sun_path, strerror(errno));
        return -1;
    }
    rc = connect(fd, (const struct sockaddr *)&control->addr,
                 control->addr_len);
    if (rc == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        *holder = cred.pid;
    }
    if (rc != 0 && errno == EAGAIN) {
        rc = 0;
    }
    close(fd);
    return rc == 0;
}

/* control_wait_stale waits while the process that listens on the socket
 * file is not running. A process killed with SIGKILL keeps its listening
 * socket for a moment after it has been reaped, because the kernel
 * closes the files of its io_uring instance later. Returns 0 once no
 * process accepts, and -1 when a running process does or the wait of
 * CONTROL_STALE_WAIT_MS runs out. */
static int control_wait_stale(const struct control *control)
{
    const struct timespec pause = {
        .tv_nsec = CONTROL_STALE_RETRY_MS * 1000000L,
    };
    const char *path = control->addr.sun_path;
    unsigned waited_ms = 0;
    pid_t holder;
    int rc;

    while ((rc = control_probe(control, &holder)) == 1) {
        bool running = holder > 0 &&
                       !(kill(holder, 0) != 0 && errno == ESRCH);

        if (running || waited_ms >= CONTROL_STALE_WAIT_MS) {
            log_error("event=control_failed path=%s holder_pid=%ld "
                      "waited_ms=%u error=\"another process accepts "
                      "connections on the control socket\"", path,
                      (long)holder, waited_ms);
            return -1;
        }
        if (waited_ms == 0) {
            log_warning("event=control_wait path=%s holder_pid=%ld "
                        "max_wait_ms=%u reason=\"the process that "
                        "listens is not running, such as a killed process "
                        "whose files are still being closed\"", path,
                        (long)holder, CONTROL_STALE_WAIT_MS);
        }
        nanosleep(&pause, NULL);
        waited_ms += CONTROL_STALE_RETRY_MS;
    }
    if (rc == 0 && waited_ms > 0) {
        log_info("event=control_released path=%s waited_ms=%u", path,
                 waited_ms);
    }
    return rc;
}

/* control_clear_stale removes a socket file that nothing listens on, the
 * trace of a daemon that did not stop cleanly. */
static int control_clear_stale(struct control *control)
{
    const char *path = control->addr.sun_path;
    struct stat st;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        log_error("event=control_failed "
                  "path=%s error=\"control socket stat failed: %s\"", path,
                  strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        log_error("event=control_failed "
                  "path=%s error=\"control socket path exists and is not a "
                  "socket; remove it\"", path);
        return -1;
    }
    if (control_wait_stale(control) < 0) {
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        log_error("event=control_failed "
                  "path=%s error=\"stale control socket unlink failed: %s\"",
                  path, strerror(errno));
        return -1;
    }
    log_info("event=control-stale-removed path=%s", path);
    return 0;
}

/* control_listen binds with umask 0177, so the socket is created with
 * mode 0600 and no other user can connect at any moment. */
static int control_listen(struct control *control)
{
    const char *path = control->addr.sun_path;
    mode_t old_mask;
    int rc;

    control->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (control->fd < 0) {
        log_error("error=\"socket failed: %s\"", strerror(errno));
        return -1;
    }
    old_mask = umask(0177);
    rc = bind(control->fd, (const struct sockaddr *)&control->addr,
              control->addr_len);
    umask(old_mask);
    control->bound = rc == 0;
    if (rc < 0 || listen(control->fd, CONTROL_BACKLOG) < 0) {
        log_error("event=control_failed "
                  "path=%s error=\"control socket listen failed: %s\"", path,
                  strerror(errno));
        return -1;
    }
    return 0;
}

static int control_arm_accept(struct control *control)
{
    int rc;

    control->accept_op.done = control_accept_done;
    control->accept_op.owner = control;
    rc = reactor_accept(control->daemon->reactor, &control->accept_op,
                        control->fd);
    if (rc < 0) {
        log_error("event=control_accept_failed "
                  "path=%s error=\"control accept failed: %s\"",
                  control->addr.sun_path, strerror(-rc));
    }
    return rc;
}

static void control_accept_retry(struct reactor_timer *timer)
{
    struct control *control = timer->owner;

    if (!control->stopping) {
        control_arm_accept(control);
    }
}

struct control *control_new(struct daemon *daemon)
{
    const char *dir = daemon->config->queue_dir;
    struct control *control = calloc(1, sizeof(*control));

    if (control == NULL) {
        log_error("error=\"out of memory\"");
        return NULL;
    }
    control->daemon = daemon;
    control->fd = -1;
    control->retry_timer.fire = control_accept_retry;
    control->retry_timer.owner = control;
    if (control_socket_address(dir, &control->addr, &control->addr_len) < 0) {
        log_error("event=control_path_too_long "
                  "queue_dir=%s error=\"control socket path %s/%s is longer "
                  "than the %zu bytes a unix socket path may have; use a "
                  "shorter queue_dir\"", dir, dir, CONTROL_SOCKET_NAME,
                  sizeof(control->addr.sun_path) - 1);
        free(control);
        return NULL;
    }
    if (control_clear_stale(control) < 0 || control_listen(control) < 0 ||
        control_arm_accept(control) < 0) {
        control_free(control);
        return NULL;
    }
    log_info("event=control-listen path=%s", control->addr.sun_path);
    return control;
}

static void control_client_unlink(struct control_client *client)
{
    struct control *control = client->control;

    if (client->prev != NULL) {
        client->prev->next = client->next;
    } else {
        control->clients = client->next;
    }
    if (client->next != NULL) {
        client->next->prev = client->prev;
    }
    control->client_count--;
}

/* control_client_free needs every op of the client finished. */
static void control_client_free(struct control_client *client)
{
    control_client_unlink(client);
    if (client->fd >= 0) {
        close(client->fd);
    }
    free(client->reply);
    free(client);
}

/* control_client_close stops the timer, cancels the ops in flight and
 * frees the client once none is left; each op's final callback calls it
 * again. */
static void control_client_close(struct control_client *client)
{
    struct reactor *reactor = client->control->daemon->reactor;

    if (!client->closing) {
        client->closing = true;
        reactor_timer_cancel(reactor, &client->timer);
        shutdown(client->fd, SHUT_RDWR);
    }
    if (client->recv_op.armed || client->send_op.armed) {
        reactor_cancel(reactor, &client->recv_op);
        reactor_cancel(reactor, &client->send_op);
        return;
    }
    control_client_free(client);
}

static int control_arm_recv(struct control_client *client);

/* control_drain waits for the client to close after the reply. Closing
 * with unread input would make the kernel reset the connection, and the
 * client could lose the reply. The client's timer bounds the wait. */
static void control_drain(struct control_client *client)
{
    int rc;

    client->draining = true;
    client->request_len = 0;
    shutdown(client->fd, SHUT_WR);
    rc = control_arm_recv(client);
    if (rc < 0) {
        log_warning("event=control-recv-failed user=%u error=\"%s\"",
                    (unsigned)client->uid, strerror(-rc));
        control_client_close(client);
    }
}

static void control_send_more(struct control_client *client)
{
    int rc;

    if (client->reply_sent >= client->reply_len) {
        control_drain(client);
        return;
    }
    client->send_op.done = control_send_done;
    client->send_op.owner = client;
    rc = reactor_send(client->control->daemon->reactor, &client->send_op,
                      client->fd, client->reply + client->reply_sent,
                      client->reply_len - client->reply_sent);
    if (rc < 0) {
        log_warning("event=control-send-failed user=%u error=\"%s\"",
                    (unsigned)client->uid, strerror(-rc));
        control_client_close(client);
    }
}

static void control_send_done(struct reactor_op *op, int result)
{
    struct control_client *client = op->owner;

    if (client->closing) {
        control_client_close(client);
        return;
    }
    if (result < 0) {
        log_warning("event=control-send-failed user=%u error=\"%s\"",
                    (unsigned)client->uid, strerror(-result));
        control_client_close(client);
        return;
    }
    client->reply_sent += (size_t)result;
    control_send_more(client);
}

/* control_reply builds the reply in memory, by run() for a request line
 * or as the error message, and starts sending it. The whole reply is in
 * memory first, so the reactor never waits for a slow reader. */
static void control_reply(struct control_client *client, const char *line,
                          const char *error)
{
    FILE *out = open_memstream(&client->reply, &client->reply_len);

    if (out == NULL) {
        log_error("event=control-reply error=\"open_memstream failed: %s\"",
                  strerror(errno));
        control_client_close(client);
        return;
    }
    if (line != NULL && client->denied) {
        control_reply_error(out, strncmp(line, "json ", 5) == 0,
                            "permission denied: only the daemon's user and "
                            "root may use the control socket");
    } else if (line != NULL) {
        control_request_run(client->control->daemon, line, client->uid, out);
    } else {
        control_reply_error(out, false, error);
    }
    if (ferror(out) != 0) {
        /* A memory stream fails only when memory runs out. */
        errno = ENOMEM;
        fclose(out);
        log_error("event=control-reply error=\"reply write failed: %s\"",
                  strerror(ENOMEM));
        control_client_close(client);
        return;
    }
    if (fclose(out) != 0) {
        log_error("event=control-reply error=\"reply write failed: %s\"",
                  strerror(errno));
        control_client_close(client);
        return;
    }
    control_send_more(client);
}

static int control_arm_recv(struct control_client *client)
{
    client->recv_op.done = control_recv_done;
    client->recv_op.owner = client;
    return reactor_recv(client->control->daemon->reactor, &client->recv_op,
                        client->fd, client->request + client->request_len,
                        sizeof(client->request) - client->request_len);
}

/* control_take_line replies once the request has its LF, and rejects a
 * request that fills the buffer without one. */
static void control_take_line(struct control_client *client)
{
    char *lf = memchr(client->request, '\n', client->request_len);
    int rc;

    if (lf != NULL) {
        *lf = '\0';
        if (lf > client->request && lf[-1] == '\r') {
            lf[-1] = '\0';
        }
        control_reply(client, client->request, NULL);
        return;
    }
    if (client->request_len >= sizeof(client->request)) {
        char error[80];

        snprintf(error, sizeof(error), "invalid request: line longer than "
                 "%d bytes", CONTROL_MAX_REQUEST);
        log_warning("event=control-rejected user=%u reason=\"request line "
                    "longer than %d bytes\"", (unsigned)client->uid,
                    CONTROL_MAX_REQUEST);
        control_reply(client, NULL, error);
        return;
    }
    rc = control_arm_recv(client);
    if (rc < 0) {
        log_warning("event=control-recv-failed error=\"%s\"", strerror(-rc));
        control_client_close(client);
    }
}

static void control_recv_done(struct reactor_op *op, int result)
{
    struct control_client *client = op->owner;

    if (client->closing) {
        control_client_close(client);
        return;
    }
    if (result <= 0) {
        if (result < 0 && !client->draining) {
            log_warning("event=control-recv-failed user=%u error=\"%s\"",
                        (unsigned)client->uid, strerror(-result));
        }
        control_client_close(client);
        return;
    }
    if (client->draining) {
        control_drain(client);
        return;
    }
    client->request_len += (size_t)result;
    control_take_line(client);
}

static void control_timer_fired(struct reactor_timer *timer)
{
    struct control_client *client = timer->owner;

    log_warning("event=control-timeout user=%u timeout=%ums",
                (unsigned)client->uid, CONTROL_TIMEOUT_MS);
    control_client_close(client);
}

static struct control_client *control_client_new(struct control *control,
                                                 int fd)
{
    struct control_client *client = calloc(1, sizeof(*client));

    if (client == NULL) {
        return NULL;
    }
    client->control = control;
    client->fd = fd;
    client->timer.fire = control_timer_fired;
    client->timer.owner = client;
    client->next = control->clients;
    if (control->clients != NULL) {
        control->clients->prev = client;
    }
    control->clients = client;
    control->client_count++;
    return client;
}

/* control_check_peer reads the peer's uid and rejects any user but the
 * daemon's own and root. The socket mode already keeps others out, and
 * this check still applies when an operator loosens the mode. */
static bool control_check_peer(struct control_client *client)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    uid_t self = geteuid();

    if (getsockopt(client->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        log_warning("event=control-rejected error=\"SO_PEERCRED failed: "
                    "%s\"", strerror(errno));
        return false;
    }
    client->uid = cred.uid;
    if (cred.uid != self && cred.uid != 0) {
        log_warning("event=control-rejected user=%u pid=%ld "
                    "reason=\"only uid %u and root may use the control "
                    "socket\"", (unsigned)cred.uid, (long)cred.pid,
                    (unsigned)self);
        return false;
    }
    return true;
}

/* control_reply_busy sends the error reply of a connection past the
 * limit without reading its request. The socket is new, so its send
 * buffer has room and the send does not block; a failure only costs the
 * client the message. The request is unknown, so the reply is text. */
static void control_reply_busy(int fd)
{
    char reply[128];
    int len;

    len = snprintf(reply, sizeof(reply), "%s\nthe daemon is busy: %d "
                   "control connections are open, try again later\n",
                   CONTROL_STATUS_ERROR, CONTROL_MAX_CLIENTS);
    if (send(fd, reply, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        log_warning("event=control-send-failed error=\"%s\"",
                    strerror(errno));
    }
}

static void control_client_start(struct control *control, int fd)
{
    struct control_client *client;

    if (control->client_count >= CONTROL_MAX_CLIENTS) {
        log_warning("event=control-rejected reason=\"%d control "
                    "connections are open already\"", CONTROL_MAX_CLIENTS);
        control_reply_busy(fd);
        close(fd);
        return;
    }
    client = control_client_new(control, fd);
    if (client == NULL) {
        log_error("event=control-rejected error=\"out of memory\"");
        close(fd);
        return;
    }
    reactor_timer_set(control->daemon->reactor, &client->timer,
                      CONTROL_TIMEOUT_MS);
    client->denied = !control_check_peer(client);
    control_take_line(client);
}

static void control_accept_done(struct reactor_op *op, int result)
{
    struct control *control = op->owner;

    if (result >= 0) {
        if (control->stopping) {
            close(result);
        } else {
            control_client_start(control, result);
        }
    } else if (result != -ECANCELED) {
        log_error("event=control_accept_failed "
                  "path=%s error=\"control accept failed: %s\"",
                  control->addr.sun_path, strerror(-result));
    }
    if (op->more || control->stopping) {
        return;
    }
    if (result < 0) {
        reactor_timer_set(control->daemon->reactor, &control->retry_timer,
                          CONTROL_ACCEPT_RETRY_MS);
    } else {
        control_arm_accept(control);
    }
}

void control_stop(struct control *control)
{
    struct reactor *reactor;

    if (control == NULL) {
        return;
    }
    reactor = control->daemon->reactor;
    control->stopping = true;
    reactor_cancel(reactor, &control->accept_op);
    reactor_timer_cancel(reactor, &control->retry_timer);
    for (struct control_client *c = control->clients; c != NULL;) {
        struct control_client *next = c->next;

        control_client_close(c);
        c = next;
    }
}

void control_free(struct control *control)
{
    if (control == NULL) {
        return;
    }

    /* After reactor_shutdown() no op of a client is armed, or one timed
     * out there and the reactor abandons it, so freeing is safe. */
    while (control->clients != NULL) {
        control_client_free(control->clients);
    }
    if (control->fd >= 0) {
        close(control->fd);
    }
    if (control->bound) {
        if (unlink(control->addr.sun_path) < 0 && errno != ENOENT) {
            log_warning("event=control_unlink_failed "
                        "path=%s error=\"control socket unlink failed: "
                        "%s\"", control->addr.sun_path, strerror(errno));
        }
    }
    reactor_timer_cancel(control->daemon->reactor, &control->retry_timer);
    free(control);
}
