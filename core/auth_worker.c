/* The password-check thread and its hand-off through an eventfd. */
#include "core/auth_worker.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/auth_users.h"
#include "core/log.h"
#include "core/reactor.h"

struct auth_worker {
    struct reactor *reactor;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;                  /* under lock */
    struct auth_check *pending; /* under lock; FIFO by pending_tail */
    struct auth_check **pending_tail;
    unsigned pending_count;     /* under lock; checks in pending */
    struct auth_check *finished; /* under lock; any order */
    int event_fd;
    uint64_t event_count;       /* read buffer of read_op */
    struct reactor_op read_op;
    struct crypt_data crypt;    /* scratch space of the thread */
};

static void check_free(struct auth_check *check)
{
    explicit_bzero(check->password, sizeof(check->password));
    free(check);
}

static void worker_signal(struct auth_worker *worker)
{
    uint64_t one = 1;

    /* Only a counter near 2^64 blocks a write, and the reactor resets it
     * with every read. */
    if (write(worker->event_fd, &one, sizeof(one)) < 0) {
        log_error("event=auth-worker error=\"eventfd write failed: %s\"",
                  strerror(errno));
    }
}

static void *worker_main(void *arg)
{
    struct auth_worker *worker = arg;

    pthread_mutex_lock(&worker->lock);
    for (;;) {
        struct auth_check *check;

        while (!worker->stop && worker->pending == NULL) {
            pthread_cond_wait(&worker->wake, &worker->lock);
        }
        if (worker->stop) {
            break;
        }
        check = worker->pending;
        worker->pending = check->next;
        if (worker->pending == NULL) {
            worker->pending_tail = &worker->pending;
        }
        worker->pending_count--;
        pthread_mutex_unlock(&worker->lock);

        /* The hash is checked for an unknown or disabled user too, so
         * the reply time does not tell which users exist. */
        check->ok = auth_users_verify(check->hash, check->password,
                                      &worker->crypt) &&
                    check->known && !check->disabled;
        explicit_bzero(check->password, sizeof(check->password));

        pthread_mutex_lock(&worker->lock);
        check->next = worker->finished;
        worker->finished = check;
        worker_signal(worker);
    }
    pthread_mutex_unlock(&worker->lock);
    return NULL;
}

static int worker_arm(struct auth_worker *worker);

/* worker_read_done runs on the reactor thread: it takes every finished
 * check and calls its owner. */
static void worker_read_done(struct reactor_op *op, int result)
{
    struct auth_worker *worker = op->owner;
    struct auth_check *check;

    if (result == -ECANCELED) {
        return;
    }
    if (result < 0) {
        log_error("event=auth-worker error=\"eventfd read failed: %s\"",
                  strerror(-result));
    }
    pthread_mutex_lock(&worker->lock);
    check = worker->finished;
    worker->finished = NULL;
    pthread_mutex_unlock(&worker->lock);

    while (check != NULL) {
        struct auth_check *next = check->next;

        if (check->cancelled) {
            check_free(check);
        } else {
            check->done(check);
        }
        check = next;
    }
    worker_arm(worker);
}

static int worker_arm(struct auth_worker *worker)
{
    int rc = reactor_read(worker->reactor, &worker->read_op,
                          worker->event_fd, &worker->event_count,
                          sizeof(worker->event_count));

    if (rc < 0 && rc != -ECANCELED) {
        log_error("event=auth-worker error=\"eventfd read failed: %s\"",
                  strerror(-rc));
    }
    return rc;
}

/* worker_start_thread starts the thread with every signal blocked, so
 * that SIGTERM and the others reach the daemon's signalfd rather than
 * this thread. Returns 0 or an error number. */
static int worker_start_thread(struct auth_worker *worker)
{
    sigset_t all;
    sigset_t old;
    int rc;

    sigfillset(&all);
    rc = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (rc != 0) {
        return rc;
    }
    rc = pthread_create(&worker->thread, NULL, worker_main, worker);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

struct auth_worker *auth_worker_new(struct reactor *reactor)
{
    struct auth_worker *worker = calloc(1, sizeof(*worker));
    int rc;

    if (worker == NULL) {
        log_error("event=auth-worker error=\"out of memory\"");
        return NULL;
    }
    worker->reactor = reactor;
    worker->pending_tail = &worker->pending;
    worker->read_op.done = worker_read_done;
    worker->read_op.owner = worker;
    pthread_mutex_init(&worker->lock, NULL);
    pthread_cond_init(&worker->wake, NULL);
    /* Blocking, because io_uring may fail a read of a non-blocking
     * descriptor with EAGAIN rather than wait. */
    worker->event_fd = eventfd(0, EFD_CLOEXEC);
    if (worker->event_fd < 0) {
        log_error("event=auth-worker error=\"eventfd failed: %s\"",
                  strerror(errno));
        goto fail;
    }
    rc = worker_start_thread(worker);
    if (rc != 0) {
        log_error("event=auth-worker error=\"pthread_create failed: %s\"",
                  strerror(rc));
        goto fail;
    }
    worker->thread_started = true;
    if (worker_arm(worker) < 0) {
        goto fail;
    }
    return worker;

fail:
    auth_worker_free(worker);
    return NULL;
}

/* Counts the queued checks from client. Called under the lock; the queue
 * holds at most the overall cap, so the walk is short. */
static unsigned count_client(const struct auth_worker *worker,
                             const char *client)
{
    unsigned count = 0;

    for (const struct auth_check *c = worker->pending; c != NULL;
         c = c->next) {
        if (strcmp(c->client, client) == 0) {
            count++;
        }
    }
    return count;
}

int auth_worker_submit(struct auth_worker *worker, struct auth_check *check,
                       unsigned max_queued, unsigned max_per_client)
{
    int rc = 0;

    check->next = NULL;
    check->cancelled = false;
    pthread_mutex_lock(&worker->lock);
    if (worker->pending_count >= max_queued) {
        rc = AUTH_WORKER_FULL;
    } else if (count_client(worker, check->client) >= max_per_client) {
        rc = AUTH_WORKER_CLIENT_FULL;
    } else {
        *worker->pending_tail = check;
        worker->pending_tail = &check->next;
        worker->pending_count++;
        pthread_cond_signal(&worker->wake);
    }
    pthread_mutex_unlock(&worker->lock);
    return rc;
}

/* Removes check from the queue when the thread has not taken it yet.
 * Called under the lock. Returns true when it was removed. */
static bool unlink_pending(struct auth_worker *worker,
                           struct auth_check *check)
{
    struct auth_check **link = &worker->pending;

    while (*link != NULL && *link != check) {
        link = &(*link)->next;
    }
    if (*link == NULL) {
        return false;
    }
    *link = check->next;
    if (worker->pending_tail == &check->next) {
        worker->pending_tail = link;
    }
    worker->pending_count--;
    return true;
}

void auth_worker_cancel(struct auth_worker *worker, struct auth_check *check)
{
    bool unlinked;

    pthread_mutex_lock(&worker->lock);
    unlinked = unlink_pending(worker, check);
    if (!unlinked) {
        check->cancelled = true;
    }
    pthread_mutex_unlock(&worker->lock);
    /* A check still queued is never hashed, so a client that sends AUTH
     * and closes costs no CPU. */
    if (unlinked) {
        check_free(check);
    }
}

static void free_list(struct auth_check *check)
{
    while (check != NULL) {
        struct auth_check *next = check->next;

        check_free(check);
        check = next;
    }
}

void auth_worker_free(struct auth_worker *worker)
{
    if (worker == NULL) {
        return;
    }
    if (worker->thread_started) {
        pthread_mutex_lock(&worker->lock);
        worker->stop = true;
        pthread_cond_signal(&worker->wake);
        pthread_mutex_unlock(&worker->lock);
        pthread_join(worker->thread, NULL);
    }

    /* Owners are gone by now, so no done() runs. */
    free_list(worker->pending);
    free_list(worker->finished);
    if (worker->event_fd >= 0) {
        close(worker->event_fd);
    }
    pthread_mutex_destroy(&worker->lock);
    pthread_cond_destroy(&worker->wake);
    explicit_bzero(&worker->crypt, sizeof(worker->crypt));
    free(worker);
}
